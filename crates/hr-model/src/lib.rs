//! Heart-rate events and alerts: what a reading is, when it is invalid and why, and what an
//! alert says.
//!
//! This is the leaf crate of hr-stream: pure types and functions with no I/O, no async and no
//! Kafka, so every other crate (and any other project) can depend on it. It may depend on serde,
//! serde_json and time only.
#![deny(missing_docs)]

mod alert;
mod event;

pub use alert::{Alert, AlertType, HrStats, Thresholds, classify_window};
pub use event::Event;
