//! Heart-rate events and alerts: what a reading is, when it is invalid and why, what an
//! alert says, and when a run of alerts is an episode worth paging for.
//!
//! This is the leaf crate of hr-stream: pure types and functions with no I/O, no async and no
//! Kafka, so every other crate (and any other project) can depend on it. It depends on serde,
//! serde_json, thiserror and time only.
//!
//! # The design decision: every invalid message says why, in a stable code
//!
//! A reading that cannot be trusted is never guessed at and never silently dropped. Parsing
//! returns either a validated [`Event`] or a [`ParseError`] whose [`code`](ParseError::code)
//! (`"naive_timestamp"`, `"bpm_out_of_range"`, ...) and message, naming the field and quoting
//! the value seen, travel as headers on the dead-letter record. In particular a timestamp
//! without a UTC offset is refused rather than read as UTC: guessing a zone on clinical data
//! is worse than refusing it. Event time is kept as epoch milliseconds, floored, so a reading
//! at `07:15:59.9999` never rounds into the next window.
//!
//! serde_json does the JSON and `time` the RFC 3339 (no hand-rolled JSON parser). A valid
//! message takes one typed pass that borrows its strings (the only allocation is the patient
//! id's `String`); an invalid one is read a second time from each field's raw JSON text, so the
//! error can quote the value exactly as sent. Timestamps in the fixed-width shape every
//! producer writes are converted by a few lines of calendar arithmetic that a property test
//! holds to `time`'s answer; anything else, and every error, goes through `time`. Writing goes the other way without allocating:
//! [`Event::write_json`] appends the seed's JSON shape to a reusable buffer.
//!
//! # Clinical alerting
//!
//! - [`Thresholds`] (validated by [`Thresholds::new`], refused with a [`ThresholdError`] that
//!   names the field) hold the bpm limits and `min_readings`; [`classify_stats`] is the one
//!   place a window is classified, as `insufficient_data` when it has too few readings.
//!   Every [`Alert`] records the thresholds it was classified with.
//! - [`parse_profile`] reads a `patient_profiles` record into a [`PatientProfile`];
//!   [`ProfileTable`] is the topic as a table (tombstones included) and gives each patient's
//!   effective thresholds, keeping the previous profile when a record is refused.
//! - [`EpisodeTracker`] turns one patient's fired windows and signal-loss notices into
//!   [`Episode`] records (`raised` / `cleared`) under an [`EpisodePolicy`]: a pager pages once
//!   per episode. It is plain serde data, so it lives in the window state snapshot, and it
//!   reads no clock, so a replay gives the same records byte for byte.
//!
//! # Example
//! ```
//! use hr_model::{Alert, AlertType, HrStats, Thresholds, parse_event};
//!
//! let msg = br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":104}"#;
//! let event = parse_event(msg)?;
//! assert_eq!(event.event_time_ms, 1_763_536_523_123);
//!
//! let mut stats = HrStats::default();
//! stats.add(event.heart_rate_bpm);
//! stats.add(101);
//! let window_start = event.event_time_ms - event.event_time_ms.rem_euclid(60_000);
//! let alert = Alert::from_stats(&event.patient_id, window_start, window_start + 60_000, &stats, 0, &Thresholds::default());
//! assert_eq!(alert.alert_type, AlertType::Tachycardia);
//!
//! // Invalid input is an error with a stable code for the dead-letter headers.
//! let err = parse_event(br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23","heart_rate_bpm":94}"#)
//!     .unwrap_err();
//! assert_eq!(err.code(), "naive_timestamp");
//! assert_eq!(err.to_string(),
//!     "field `timestamp` has no UTC offset (expected `Z` or `+HH:MM`/`-HH:MM`): \"2025-11-19T07:15:23\"");
//! # Ok::<(), hr_model::ParseError>(())
//! ```
//!
//! # Speed
//!
//! `cargo bench -p hr-model --bench parse` measures [`parse_event`] and [`Event::write_json`]
//! on the seed's message shape against serde_json deserialising (and serialising) a plain
//! struct of the same three fields, with no validation, in the same run. It also measures the
//! UTF-8 check with JSON decoding and the RFC 3339 conversion alone: serde_json's decoding is
//! most of [`parse_event`]'s time.
//!
//! # Fuzzing
//!
//! `fuzz/` holds a [cargo-fuzz](https://github.com/rust-fuzz/cargo-fuzz) target that feeds
//! arbitrary bytes to [`parse_event`] and checks that whatever parses writes back out and
//! parses to the same event. It is its own Cargo workspace, so normal builds ignore it. Run it
//! from this crate's directory with a nightly toolchain:
//!
//! ```text
//! cargo install cargo-fuzz
//! cd crates/hr-model
//! cargo +nightly fuzz run parse_event -- -max_total_time=60
//! ```
#![deny(missing_docs)]

mod alert;
mod duration;
mod episode;
mod error;
mod event;
mod parse;
mod profile;
mod thresholds;
mod timestamp;

pub use alert::{Alert, AlertType, HrStats, classify_stats, classify_window};
pub use duration::{DurationError, parse_duration_ms};
pub use episode::{
    Episode, EpisodeKind, EpisodePolicy, EpisodePolicyError, EpisodeState, EpisodeTracker,
    WindowOutcome,
};
pub use error::{Field, MAX_RAW_LEN, ParseError, ParseErrorKind};
pub use event::Event;
pub use parse::{Validation, parse_event};
pub use profile::{PatientProfile, ProfileError, ProfileTable, parse_profile};
pub use thresholds::{ThresholdError, ThresholdField, Thresholds};
pub use timestamp::{
    MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, TIMESTAMP_LEN, format_timestamp, parse_timestamp,
    write_timestamp,
};
