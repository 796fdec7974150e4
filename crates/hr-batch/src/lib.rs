//! Polars analytics over hr-stream alerts.
#![deny(missing_docs)]
