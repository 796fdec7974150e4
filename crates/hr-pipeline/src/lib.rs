//! The hr-stream service as a library: Kafka readings to windowed heart-rate alerts.
//!
//! [`job::run`] is the whole streaming job on the calling thread; the binary only turns flags
//! into a [`job::RunConfig`] and a stop flag. The one decision that shapes it: delivery is
//! at-least-once through a compacted changelog of window state written before offsets are
//! committed, so a restart replays from a consistent (state, offset) pair and repeats only
//! byte-identical alerts (see [`job`]).
//!
//! # Example
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use hr_pipeline::job::{RunConfig, run};
//!
//! let mut cfg = RunConfig::new("localhost:9092");
//! cfg.bounded = true;
//! cfg.from_beginning = true;
//! let counters = run(&cfg, &AtomicBool::new(false))?;
//! assert_eq!(counters.read, counters.parsed + counters.invalid);
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]

pub mod job;

/// Parses a duration such as `500ms`, `5s`, `1m`, `2h` (a bare number is seconds).
///
/// # Errors
/// A message naming the text when it is not a non-negative integer with one of those units.
///
/// # Example
/// ```
/// use std::time::Duration;
/// assert_eq!(hr_pipeline::parse_duration("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(hr_pipeline::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// ```
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 5s or 500ms, got '{s}'"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "unknown duration unit in '{s}' (use ms, s, m or h)"
            ));
        }
    }
    .ok_or_else(|| format!("duration '{s}' is too large"))?;
    Ok(std::time::Duration::from_millis(ms))
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
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
