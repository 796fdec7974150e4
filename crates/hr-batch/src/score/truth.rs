//! What was injected: the parts of hr-sim's ground truth that scoring reads, and the
//! injections a score is measured against.

use hr_model::EpisodeKind;
use serde::Deserialize;

use super::{ScoreOptions, ScoredInjection};

/// The parts of hr-sim's `--truth` file that scoring reads (other fields are ignored, so the
/// simulator may add some).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Truth {
    /// Event time of the first reading, epoch ms.
    pub start_ms: i64,
    /// Time of the latest reading taken, epoch ms (`None`: no reading at all).
    pub last_reading_ms: Option<i64>,
    /// Per patient.
    pub patients: Vec<TruthPatient>,
}

/// One patient's injected episodes and silences.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TruthPatient {
    /// `p001`, ...
    pub patient_id: String,
    /// Tachycardia and bradycardia episodes.
    #[serde(default)]
    pub episodes: Vec<TruthEpisode>,
    /// Intervals in which the monitor sent nothing.
    #[serde(default)]
    pub silences: Vec<TruthSilence>,
}

/// An injected rate episode.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TruthEpisode {
    /// `tachycardia` or `bradycardia`.
    pub kind: EpisodeKind,
    /// Onset ramp begins, epoch ms.
    pub start_ms: i64,
    /// Plateau begins.
    pub plateau_start_ms: i64,
    /// Plateau ends.
    pub plateau_end_ms: i64,
    /// Recovery ends.
    pub end_ms: i64,
}

/// An injected silence: `start_ms..end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TruthSilence {
    /// First reading not sent, epoch ms.
    pub start_ms: i64,
    /// The monitor sends again from here.
    pub end_ms: i64,
}

/// Every injected episode and silence of `truth`, none detected yet, with how much of it counts
/// and whether it is required (see the [scoring rules](super)), by patient, kind and start.
pub(super) fn injections(truth: &Truth, options: &ScoreOptions) -> Vec<ScoredInjection> {
    let run_end = truth.last_reading_ms.unwrap_or(truth.start_ms);
    let mut injected: Vec<ScoredInjection> = Vec::new();
    for p in &truth.patients {
        for e in &p.episodes {
            let heard = |from: i64, to: i64| heard_stretches(from, to.min(run_end), &p.silences);
            let plateau = heard(e.plateau_start_ms, e.plateau_end_ms)
                .iter()
                .map(|(a, b)| b - a)
                .max()
                .unwrap_or(0);
            let mut inj = ScoredInjection::new(
                &p.patient_id,
                e.kind,
                e.start_ms,
                e.end_ms,
                plateau,
                plateau >= 2 * options.window_ms,
            );
            if let Some(&(first, _)) = heard(e.start_ms, e.end_ms).first() {
                inj.observed_start_ms = first;
            }
            injected.push(inj);
        }
        for s in &p.silences {
            let observed = s.end_ms.min(run_end) - s.start_ms;
            injected.push(ScoredInjection::new(
                &p.patient_id,
                EpisodeKind::SignalLoss,
                s.start_ms,
                s.end_ms,
                observed.max(0),
                observed > options.silence_after_ms,
            ));
        }
    }
    injected.sort_by(|a, b| {
        (&a.patient_id, a.kind, a.start_ms).cmp(&(&b.patient_id, b.kind, b.start_ms))
    });
    injected
}

/// The parts of `from..to` outside every silence, in order.
pub(super) fn heard_stretches(from: i64, to: i64, silences: &[TruthSilence]) -> Vec<(i64, i64)> {
    let mut silences: Vec<&TruthSilence> = silences
        .iter()
        .filter(|s| s.start_ms < to && s.end_ms > from)
        .collect();
    silences.sort_by_key(|s| s.start_ms);
    let mut out = Vec::new();
    let mut at = from;
    for s in silences {
        if s.start_ms > at {
            out.push((at, s.start_ms));
        }
        at = at.max(s.end_ms);
    }
    if at < to {
        out.push((at, to));
    }
    out
}
