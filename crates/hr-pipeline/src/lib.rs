//! The hr-stream service as a library: Kafka readings to windowed heart-rate alerts.
//!
//! Two layers, so that the rules can be tested without a broker:
//!
//! - [`processor`]: pure. One record in (partition, offset, record time, parsed reading);
//!   alerts, a verdict (windowed, dead letter, late) and changelog records out. It owns the
//!   window engine, the classification and the counters.
//! - [`driver`]: the Kafka side. A reader thread polls; the job thread runs the processor,
//!   commits one transaction per commit interval (outputs, changelog, offsets: KIP-447, so a
//!   paused member that lost its partitions is fenced), restores partitions from the changelog on
//!   assignment, and rides out broker outages.
//!
//! [`changelog`] is the state's layout in Kafka: a compacted topic co-partitioned with the input,
//! one record per patient and one per partition, only changed keys written at each commit.
//! [`profiles`] is the per-patient thresholds topic as `hr-pipeline profiles` edits it: read,
//! merge, check as the job would, write.
//!
//! # Example
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use hr_pipeline::driver::{RunConfig, run};
//!
//! let mut cfg = RunConfig::new("localhost:9092");
//! cfg.bounded = true;
//! let counters = run(&cfg, &AtomicBool::new(false))?;
//! assert_eq!(counters.read, counters.parsed + counters.invalid);
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]

pub mod changelog;
pub mod driver;
pub mod http;
pub mod metrics;
pub mod processor;
pub mod profiles;
