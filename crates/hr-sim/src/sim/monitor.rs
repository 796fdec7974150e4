//! One patient's monitor: its heart, its device clock, its silences (planned and drawn) and the
//! faults counted against it.

use std::collections::VecDeque;

use hr_model::Event;
use rand::RngExt;
use rand_distr::{Distribution, Exp};
use rand_pcg::Pcg64Mcg;

use super::{SimConfig, patient_id};
use crate::faults::{FaultConfig, FaultCounts};
use crate::patient::Patient;
use crate::seed::stream;
use crate::truth::{EpisodeTruth, PatientTruth, Silence};

/// A monitor: one patient's heart, its device clock and its faults.
pub(super) struct Monitor {
    /// The event rewritten for every reading, so the id is formatted once per run.
    pub(super) event: Event,
    pub(super) patient: Patient,
    pub(super) skew_ms: i64,
    pub(super) fault_rng: Pcg64Mcg,
    next_silence_ms: i64,
    silent_until_ms: i64,
    /// Planned silences not begun yet, `(from, until)` on the simulation clock, by start.
    planned: VecDeque<(i64, i64)>,
    silences: Vec<Silence>,
    pub(super) counts: FaultCounts,
    /// Reading time of the newest valid record sent (malformed ones move no watermark).
    pub(super) newest_sent_ms: i64,
}

impl Monitor {
    /// The monitor of patient `index` (0-based), reading every `interval_ms`, with its first
    /// drawn silence scheduled when `silence_gap` (the time between silences) is given.
    pub(super) fn new(
        config: &SimConfig,
        index: usize,
        interval_ms: f64,
        silence_gap: Option<&Exp<f64>>,
    ) -> Self {
        let id = patient_id(index);
        let skew_ms = config
            .faults
            .clock_skew
            .iter()
            .rev()
            .find(|(p, _)| *p == id)
            .map_or(0, |&(_, s)| s);
        let mut fault_rng = stream(config.seed, index, 3);
        let mut planned: Vec<(i64, i64)> = config
            .faults
            .planned_silences
            .iter()
            .filter(|p| p.patient_id == id)
            .map(|p| {
                let from = config.start_ms.saturating_add(p.after_ms);
                (from, from.saturating_add(p.duration_ms))
            })
            .collect();
        planned.sort_unstable();
        let next_silence_ms = match silence_gap {
            Some(d) => config.start_ms + d.sample(&mut fault_rng) as i64,
            None => i64::MAX,
        };
        Monitor {
            event: Event {
                patient_id: id,
                event_time_ms: 0,
                heart_rate_bpm: 0,
            },
            patient: Patient::new(
                config.seed,
                index,
                config.start_ms,
                interval_ms,
                &config.episodes,
            ),
            skew_ms,
            fault_rng,
            next_silence_ms,
            silent_until_ms: i64::MIN,
            planned: planned.into(),
            newest_sent_ms: i64::MIN,
            silences: Vec::new(),
            counts: FaultCounts::default(),
        }
    }

    /// Starts every silence due at `t`, planned or drawn, and says whether the reading taken at
    /// `t` is swallowed by one (counting it if so).
    pub(super) fn swallows(
        &mut self,
        t: i64,
        faults: &FaultConfig,
        silence_gap: Option<&Exp<f64>>,
    ) -> bool {
        self.start_planned_silences(t);
        if t >= self.next_silence_ms && t >= self.silent_until_ms {
            self.start_drawn_silence(t, faults, silence_gap);
        }
        if t < self.silent_until_ms {
            self.counts.silenced_readings += 1;
            return true;
        }
        false
    }

    /// Starts (or extends the current silence with) every planned silence due at `t`.
    fn start_planned_silences(&mut self, t: i64) {
        while let Some(&(from, until)) = self.planned.front() {
            if t < from {
                break;
            }
            self.planned.pop_front();
            if until <= t {
                // It lay wholly between two readings: no reading was lost to it.
                continue;
            }
            if t < self.silent_until_ms {
                // Already silent: one longer gap, not two back to back.
                if until > self.silent_until_ms {
                    self.silent_until_ms = until;
                    if let Some(last) = self.silences.last_mut() {
                        last.end_ms = until + self.skew_ms;
                    }
                }
            } else {
                self.silent_until_ms = until;
                self.silences.push(Silence {
                    start_ms: t + self.skew_ms,
                    end_ms: until + self.skew_ms,
                });
                self.counts.silences += 1;
            }
        }
    }

    /// Starts a silence of drawn (or fixed) length at `t` and draws when the next one begins.
    fn start_drawn_silence(
        &mut self,
        t: i64,
        faults: &FaultConfig,
        silence_gap: Option<&Exp<f64>>,
    ) {
        // A fixed length spends no draw, so runs without a range keep their bytes.
        let length = match faults.silence_max_ms {
            Some(max) if max > faults.silence_ms => {
                self.fault_rng.random_range(faults.silence_ms..=max)
            }
            _ => faults.silence_ms,
        };
        let until = t + length;
        self.silent_until_ms = until;
        self.silences.push(Silence {
            start_ms: t + self.skew_ms,
            end_ms: until + self.skew_ms,
        });
        self.counts.silences += 1;
        let gap = silence_gap.expect("silences are scheduled only with a rate");
        self.next_silence_ms = until + gap.sample(&mut self.fault_rng) as i64;
    }

    /// What this monitor has injected so far: its episodes (in the device's clock, like the
    /// data), silences and fault counts.
    pub(super) fn truth(&self) -> PatientTruth {
        PatientTruth {
            patient_id: self.event.patient_id.clone(),
            baseline_bpm: (self.patient.baseline_bpm() * 10.0).round() / 10.0,
            clock_skew_ms: self.skew_ms,
            episodes: self
                .patient
                .episodes()
                .iter()
                .map(|e| EpisodeTruth::new(e, self.skew_ms))
                .collect(),
            silences: self.silences.clone(),
            faults: self.counts.clone(),
        }
    }
}
