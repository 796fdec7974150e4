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

/// Parses a non-negative duration such as `500ms`, `5s`, `1.5m`, `2h` with hr-model's
/// [`parse_duration_ms`](hr_model::parse_duration_ms), the parser every hr-stream binary shares.
///
/// # Errors
/// A message quoting the text when it is not a duration with a unit, or is negative.
///
/// # Example
/// ```
/// use std::time::Duration;
/// assert_eq!(hr_pipeline::parse_duration("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(hr_pipeline::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// ```
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let ms = hr_model::parse_duration_ms(s).map_err(|e| e.to_string())?;
    u64::try_from(ms)
        .map(std::time::Duration::from_millis)
        .map_err(|_| format!("`{s}` is negative; this setting needs zero or more"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7").is_err(), "a bare number is ambiguous");
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
