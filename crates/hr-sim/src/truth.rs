//! The ground-truth file: what a run injected, so a test or a demo can say which alerts must
//! appear and where every unusual record should end up.

use serde::Serialize;

use crate::faults::FaultCounts;
use crate::patient::{Episode, EpisodeKind};

/// Everything a run injected. Serialises to the `--truth` JSON file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroundTruth {
    /// The run's seed.
    pub seed: u64,
    /// Event time of the first reading, epoch milliseconds.
    pub start_ms: i64,
    /// Time of the latest reading taken (simulation clock), if any.
    pub last_reading_ms: Option<i64>,
    /// Readings taken, including swallowed and still-held-back ones.
    pub readings: u64,
    /// Records sent.
    pub records: u64,
    /// Held-back (out-of-order or late) readings still waiting when the run ended, never sent
    /// and not counted as faults. `records + unsent = readings - silenced_readings + duplicate`.
    pub unsent: u64,
    /// Fault counts over all patients.
    pub faults: FaultCounts,
    /// Per patient, in id order.
    pub patients: Vec<PatientTruth>,
}

impl GroundTruth {
    /// Pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("ground truth always serialises")
    }
}

/// One patient's injected episodes, silences and faults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientTruth {
    /// `p001`, ...
    pub patient_id: String,
    /// Resting rate, bpm (one decimal).
    pub baseline_bpm: f64,
    /// How far the device clock is off: negative lags, positive leads, milliseconds.
    pub clock_skew_ms: i64,
    /// Episodes that began during the run, in the device's clock (as the data shows them).
    pub episodes: Vec<EpisodeTruth>,
    /// Intervals in which the monitor sent nothing, in the device's clock.
    pub silences: Vec<Silence>,
    /// This patient's fault counts.
    pub faults: FaultCounts,
}

/// An injected episode as the ground truth reports it.
///
/// Windows that lie within `plateau_start_ms..plateau_end_ms` must raise an alert of `kind`;
/// windows overlapping only the ramps may or may not, depending on how much of the ramp they see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpisodeTruth {
    /// `tachycardia` or `bradycardia`.
    pub kind: EpisodeKind,
    /// Onset ramp begins, epoch ms.
    pub start_ms: i64,
    /// Plateau begins, epoch ms.
    pub plateau_start_ms: i64,
    /// Plateau ends (recovery begins), epoch ms.
    pub plateau_end_ms: i64,
    /// Recovery ends, epoch ms.
    pub end_ms: i64,
    /// `start_ms` as RFC 3339.
    pub start: String,
    /// `end_ms` as RFC 3339.
    pub end: String,
    /// The plateau's rate before noise, bpm.
    pub target_bpm: u16,
}

impl EpisodeTruth {
    /// `episode` shifted into a device clock that is `skew_ms` off.
    pub(crate) fn new(episode: &Episode, skew_ms: i64) -> Self {
        let start_ms = episode.start_ms + skew_ms;
        let end_ms = episode.end_ms + skew_ms;
        Self {
            kind: episode.kind,
            start_ms,
            plateau_start_ms: episode.plateau_start_ms + skew_ms,
            plateau_end_ms: episode.plateau_end_ms + skew_ms,
            end_ms,
            start: hr_model::format_timestamp(start_ms),
            end: hr_model::format_timestamp(end_ms),
            target_bpm: episode.target_bpm,
        }
    }
}

/// A stretch in which a monitor sent nothing: `start_ms..end_ms`, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Silence {
    /// First reading not sent.
    pub start_ms: i64,
    /// The monitor sends again from here.
    pub end_ms: i64,
}
