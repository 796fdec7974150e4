//! Simulated bedside monitors for hr-stream: heart-rate readings worth testing a streaming
//! pipeline against, with a ground truth that says what the pipeline should find.
//!
//! Each patient has a resting baseline, a slow drift and Gaussian reading-to-reading noise
//! (see [`Patient`]), and now and then a tachycardia or bradycardia episode with an onset ramp,
//! a plateau and a recovery ramp. Between the monitors and the output sit the faults a real
//! fleet shows, each off by default and each counted: readings out of order within a bound,
//! readings late beyond it, malformed records of every kind `hr_model::parse_event` rejects,
//! duplicates, monitors that go silent, and devices whose clock lags or leads ([`FaultConfig`]).
//!
//! # The design decision: one event-time clock, delivery as a queue on it
//!
//! A run is a pure function of its [`SimConfig`]: readings are taken on a simulated clock
//! (reading `k` at `start + k / rate`), every random draw comes from per-patient streams of one
//! seed, and faults that change *when* a record arrives are a priority queue ordered by delivery
//! time on that same clock. So the same seed gives the same bytes, and the two clocks the
//! binary offers differ only in pacing: simulated time emits the records as fast as the sink
//! takes them; real time starts the clock now and waits for each record's delivery time.
//! Late and out-of-order records are therefore genuinely late in both, relative to the
//! readings around them, which is what a windowing pipeline measures.
//!
//! # Example
//! ```
//! use hr_sim::{EpisodeConfig, Fault, FaultConfig, SimConfig, Simulation};
//!
//! let config = SimConfig {
//!     seed: 7,
//!     patients: 5,
//!     duration_ms: Some(600_000),
//!     episodes: EpisodeConfig { rate_per_hour: 3.0, ..EpisodeConfig::default() },
//!     faults: FaultConfig { malformed: 0.01, duplicate: 0.01, ..FaultConfig::default() },
//!     ..SimConfig::default()
//! };
//! let records: Vec<_> = Simulation::new(config.clone())?.collect();
//! // Same configuration, same bytes.
//! let again: Vec<_> = Simulation::new(config)?.collect();
//! assert_eq!(records, again);
//!
//! for r in &records {
//!     let parsed = hr_model::parse_event(&r.payload);
//!     match r.fault {
//!         Some(Fault::Malformed(kind)) => assert_eq!(parsed.unwrap_err().code(), kind.code()),
//!         _ => assert_eq!(parsed.unwrap(), r.event().unwrap()),
//!     }
//! }
//! # Ok::<(), hr_sim::ConfigError>(())
//! ```
//!
//! The `hr-sim` binary wraps this with Kafka, stdout and JSON-lines outputs, a progress bar for
//! preloads and a `--truth` file; `hr-sim --help` lists every flag with examples.
#![deny(missing_docs)]

mod config;
mod faults;
mod patient;
mod run;
mod seed;
mod sim;
mod sink;
mod truth;

pub use faults::{
    Fault, FaultConfig, FaultCounts, MalformedCounts, MalformedKind, PlannedSilence,
    write_malformed,
};
pub use patient::{Episode, EpisodeConfig, EpisodeKind, Patient};
pub use run::{Pace, RunReport, run, wall_clock_ms};
pub use sim::{ConfigError, Record, RecordRef, SimConfig, Simulation, patient_id};
pub use sink::{Delivery, JsonLinesSink, KafkaSink, Sink, SinkError, producer_settings};
pub use truth::{EpisodeTruth, GroundTruth, PatientTruth, Silence};

use hr_model::Event;
use rand::RngExt;
use rand_distr::{Distribution, Normal};

/// One reading for `patient_id`, timestamped now: the seed script's
/// `generate_heart_rate_event(patient_id)`, with a resting rate drawn around 74 bpm instead of
/// uniformly from a range.
///
/// Each call is an independent draw from the thread's random generator; for reproducible data
/// build a [`Simulation`].
///
/// # Example
/// ```
/// let event = hr_sim::generate_heart_rate_event("p001");
/// assert_eq!(event.patient_id, "p001");
/// assert!((40..=130).contains(&event.heart_rate_bpm));
/// let json = event.to_json();
/// assert_eq!(hr_model::parse_event(json.as_bytes()), Ok(event));
/// ```
pub fn generate_heart_rate_event(patient_id: &str) -> Event {
    let mut rng = rand::rng();
    let baseline = Normal::new(74.0_f64, 7.0).expect("constant parameters are valid");
    let noise = Normal::new(0.0, rng.random_range(1.5..4.0)).expect("positive spread is valid");
    let bpm = (baseline.sample(&mut rng) + noise.sample(&mut rng))
        .round()
        .clamp(40.0, 130.0) as u16;
    Event {
        patient_id: patient_id.to_owned(),
        event_time_ms: wall_clock_ms(),
        heart_rate_bpm: bpm,
    }
}
