//! Scoring the pipeline's episodes against hr-sim's ground truth: which injected episodes and
//! silences were raised, how long after they began, and which raised episodes match nothing.
//!
//! Plain Rust over a few thousand rows: the ground truth is one JSON file and the episodes a
//! topic of a few records per patient-hour, so a DataFrame would only add ceremony.
//!
//! # Rules
//!
//! - **Injected**: every tachycardia and bradycardia episode of the truth file (its whole span,
//!   onset ramp to end of recovery) and every silence (first reading not sent to the first one
//!   sent again), in the device's clock, as the data shows them.
//! - **Matching**: a `raised` record matches an injected episode of the same patient and kind
//!   (a silence is kind `signal_loss`) when the record's window, widened by the tolerance on
//!   both sides, overlaps the injected span. The tolerance defaults to one window length: a
//!   window that raises an episode may begin up to a window before the onset (sliding windows
//!   see the first elevated readings at their end) and the ramps blur the edges. An episode is
//!   detected by its first matching record; further records matching it are *repeats* (the
//!   hysteresis let it clear and raise again), counted but not false. A `raised` record that
//!   matches no injected episode is **false**. Records repeated with the same `episode_id`
//!   (an at-least-once replay) count once.
//! - **Covered**: an injected episode that begins while the pipeline still has an episode of
//!   that patient and kind open (raised by a record that matched an injected episode, and not
//!   cleared before this one's start) gets no
//!   record of its own, by design: hysteresis keeps one alarm for a patient who is abnormal
//!   again before the alarm cleared. It counts as detected, with no delay of its own (the
//!   alarm was already on), and names the open episode.
//! - **Detection time**: for a rate episode, the raising window's `window_end` plus the
//!   out-of-orderness delay: the watermark passes the window's end only once a reading
//!   `delay` later has arrived, so that is the earliest event time at which the alert can
//!   exist. For signal loss, the raised record's `window_end`, which is already the event time
//!   the loss was declared at. **Delay** = detection time - injected start, where a rate
//!   episode that began while its monitor was silent starts when the monitor sends again (no
//!   pipeline can see a heart rate that was never sent).
//! - **Required**: an injected episode the targets say must be found. A rate episode whose
//!   plateau has a stretch of at least two window lengths inside the run and outside its
//!   monitor's silences (the ramps may average either side of the threshold, so they do not
//!   count towards its length), and a silence whose observed part (up to the last reading
//!   taken) is longer than `silence_after`.

mod matching;
mod summary;
mod truth;

use hr_model::{Episode, EpisodeKind};
use serde::Serialize;

pub use truth::{Truth, TruthEpisode, TruthPatient, TruthSilence};

/// How the pipeline that produced the episodes was configured, as far as scoring needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreOptions {
    /// The pipeline's window size, ms.
    pub window_ms: i64,
    /// The pipeline's out-of-orderness bound (`--delay`), ms.
    pub delay_ms: i64,
    /// The pipeline's `--silence-after`, ms.
    pub silence_after_ms: i64,
    /// Matching tolerance, ms (`None`: one window length).
    pub tolerance_ms: Option<i64>,
}

impl Default for ScoreOptions {
    /// hr-pipeline's defaults: 60 s windows, 5 s out-of-orderness, 30 s silence.
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            delay_ms: 5_000,
            silence_after_ms: 30_000,
            tolerance_ms: None,
        }
    }
}

impl ScoreOptions {
    fn tolerance(&self) -> i64 {
        self.tolerance_ms.unwrap_or(self.window_ms)
    }
}

/// One injected episode or silence and what the pipeline made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredInjection {
    /// The patient.
    pub patient_id: String,
    /// `tachycardia`, `bradycardia`, or `signal_loss` for a silence.
    pub kind: EpisodeKind,
    /// Injected start, epoch ms.
    pub start_ms: i64,
    /// Injected end, epoch ms (may lie after the run's last reading).
    pub end_ms: i64,
    /// Where its delay is measured from: `start_ms`, or for a rate episode that began while
    /// the monitor was silent, the end of that silence.
    pub observed_start_ms: i64,
    /// How long of it the targets count, ms: the longest stretch of the plateau inside the run
    /// and outside silences for a rate episode, the silence up to the last reading for signal
    /// loss.
    pub counted_ms: i64,
    /// Whether the targets require it to be detected (see the module's Rules).
    pub required: bool,
    /// Whether a raised record matched it.
    pub detected: bool,
    /// The first matching record's `episode_id`.
    pub episode_id: Option<String>,
    /// Its detection time, epoch ms.
    pub detected_at_ms: Option<i64>,
    /// `detected_at_ms - start_ms`.
    pub delay_ms: Option<i64>,
    /// Raised records matching it after the first.
    pub repeats: u32,
    /// The pipeline episode that was already open when it began (see the module's Rules).
    pub covered_by: Option<String>,
}

/// A raised record that matches no injected episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseRaised {
    /// The record.
    pub episode: Episode,
    /// Its detection time, epoch ms.
    pub detected_at_ms: i64,
}

/// Totals for one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindSummary {
    /// The kind.
    pub kind: EpisodeKind,
    /// Injected.
    pub injected: usize,
    /// Of them, detected.
    pub detected: usize,
    /// Required by the targets.
    pub required: usize,
    /// Required and detected.
    pub required_detected: usize,
    /// Raised records matching nothing.
    pub false_raised: usize,
    /// Raised records matching an episode already detected.
    pub repeats: u32,
    /// Of the detected, covered by an episode already open.
    pub covered: usize,
    /// Median delay over the detected, ms.
    pub median_delay_ms: Option<i64>,
    /// Largest delay over the detected, ms.
    pub max_delay_ms: Option<i64>,
}

/// The whole score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Every injected episode and silence, by patient, kind and start.
    pub injected: Vec<ScoredInjection>,
    /// Raised records that match no injected episode, by detection time.
    pub false_raised: Vec<FalseRaised>,
    /// One row per kind, in `EpisodeKind::ALL` order.
    pub kinds: Vec<KindSummary>,
    /// Median delay over every detected rate episode (tachycardia and bradycardia), ms.
    pub median_rate_delay_ms: Option<i64>,
    /// Largest of those delays, ms.
    pub max_rate_delay_ms: Option<i64>,
    /// Raised records read (after dropping repeats of one `episode_id`).
    pub raised_records: usize,
}

impl Score {
    /// Whether every required injection was detected.
    pub fn all_required_detected(&self) -> bool {
        self.kinds.iter().all(|k| k.required_detected == k.required)
    }

    /// The summary line: detected/total per kind, false raised, median and max delay.
    pub fn summary_line(&self) -> String {
        let mut parts: Vec<String> = self
            .kinds
            .iter()
            .map(|k| {
                format!(
                    "{} {}/{} detected ({}/{} required)",
                    k.kind, k.detected, k.injected, k.required_detected, k.required
                )
            })
            .collect();
        parts.push(format!("{} false raised", self.false_raised.len()));
        parts.push(format!(
            "rate-episode delay median {} max {}",
            seconds(self.median_rate_delay_ms),
            seconds(self.max_rate_delay_ms)
        ));
        let loss = self
            .kinds
            .iter()
            .find(|k| k.kind == EpisodeKind::SignalLoss);
        if let Some(k) = loss {
            parts.push(format!(
                "signal-loss delay median {} max {}",
                seconds(k.median_delay_ms),
                seconds(k.max_delay_ms)
            ));
        }
        parts.join("; ")
    }
}

/// Milliseconds as seconds with one decimal, or `-`.
pub fn seconds(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{:.1} s", ms as f64 / 1000.0),
    )
}

/// The detection time of a raised record (see the module's Rules).
pub fn detected_at(episode: &Episode, options: &ScoreOptions) -> i64 {
    match episode.kind {
        EpisodeKind::SignalLoss => episode.window_end,
        EpisodeKind::Tachycardia | EpisodeKind::Bradycardia => {
            episode.window_end + options.delay_ms
        }
    }
}

/// Scores `episodes` (every record read; `cleared` ones are ignored) against `truth`.
///
/// # Example
/// ```
/// use hr_batch::score::{ScoreOptions, Truth, score};
/// use hr_model::{Episode, EpisodeKind, EpisodeState};
///
/// let truth: Truth = serde_json::from_str(r#"{"start_ms": 0, "last_reading_ms": 3600000,
///     "patients": [{"patient_id": "p001", "silences": [],
///       "episodes": [{"kind": "tachycardia", "start_ms": 600000, "plateau_start_ms": 610000,
///                     "plateau_end_ms": 900000, "end_ms": 920000}]}]}"#).unwrap();
/// let raised = Episode {
///     patient_id: "p001".into(),
///     episode_id: "p001:tachycardia:600000".into(),
///     state: EpisodeState::Raised,
///     kind: EpisodeKind::Tachycardia,
///     window_start: 600_000,
///     window_end: 660_000,
///     extreme_avg_hr: Some(121.0),
/// };
/// let s = score(&truth, &[raised], &ScoreOptions::default());
/// assert!(s.injected[0].detected);
/// // Window end + 5 s of out-of-orderness - injected start.
/// assert_eq!(s.injected[0].delay_ms, Some(65_000));
/// assert!(s.false_raised.is_empty());
/// ```
pub fn score(truth: &Truth, episodes: &[Episode], options: &ScoreOptions) -> Score {
    let mut injected = truth::injections(truth, options);
    let raised = matching::raised_once(episodes, options);
    let false_raised = matching::detect(&mut injected, &raised, options.tolerance());
    // What is left undetected may have begun while an alarm of its kind was still on.
    matching::mark_covered(&mut injected, &raised, &false_raised, episodes);
    summary::summarise(injected, false_raised, raised.len())
}

impl ScoredInjection {
    fn new(
        patient_id: &str,
        kind: EpisodeKind,
        start_ms: i64,
        end_ms: i64,
        counted_ms: i64,
        required: bool,
    ) -> Self {
        Self {
            patient_id: patient_id.to_owned(),
            kind,
            start_ms,
            end_ms,
            observed_start_ms: start_ms,
            counted_ms,
            required,
            detected: false,
            episode_id: None,
            detected_at_ms: None,
            delay_ms: None,
            repeats: 0,
            covered_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truth::heard_stretches;
    use super::*;
    use hr_model::EpisodeState;

    const MIN: i64 = 60_000;

    fn truth(patients: Vec<TruthPatient>) -> Truth {
        Truth {
            start_ms: 0,
            last_reading_ms: Some(120 * MIN),
            patients,
        }
    }

    fn patient(id: &str, episodes: Vec<TruthEpisode>, silences: Vec<TruthSilence>) -> TruthPatient {
        TruthPatient {
            patient_id: id.into(),
            episodes,
            silences,
        }
    }

    /// An episode with 10 s ramps around a plateau.
    fn injected(kind: EpisodeKind, start_ms: i64, plateau_ms: i64) -> TruthEpisode {
        TruthEpisode {
            kind,
            start_ms,
            plateau_start_ms: start_ms + 10_000,
            plateau_end_ms: start_ms + 10_000 + plateau_ms,
            end_ms: start_ms + 20_000 + plateau_ms,
        }
    }

    fn raised(id: &str, kind: EpisodeKind, window_start: i64, window_end: i64) -> Episode {
        Episode {
            patient_id: id.into(),
            episode_id: format!("{id}:{kind}:{window_start}"),
            state: EpisodeState::Raised,
            kind,
            window_start,
            window_end,
            extreme_avg_hr: None,
        }
    }

    fn cleared(e: &Episode) -> Episode {
        Episode {
            state: EpisodeState::Cleared,
            window_start: e.window_start + 5 * MIN,
            window_end: e.window_end + 5 * MIN,
            ..e.clone()
        }
    }

    use EpisodeKind::{Bradycardia as Brady, SignalLoss as Loss, Tachycardia as Tachy};

    #[test]
    fn a_detected_episode_has_its_delay_from_the_injected_start() {
        let t = truth(vec![patient(
            "p001",
            vec![injected(Tachy, 10 * MIN + 20_000, 4 * MIN)],
            vec![],
        )]);
        let r = raised("p001", Tachy, 11 * MIN, 12 * MIN);
        let s = score(&t, &[r.clone(), cleared(&r)], &ScoreOptions::default());
        let i = &s.injected[0];
        assert!(i.detected && i.required);
        assert_eq!(i.detected_at_ms, Some(12 * MIN + 5_000));
        assert_eq!(i.delay_ms, Some(105_000));
        assert_eq!(i.episode_id.as_deref(), Some(r.episode_id.as_str()));
        assert_eq!(s.median_rate_delay_ms, Some(105_000));
        assert_eq!(s.raised_records, 1);
        assert!(s.all_required_detected());
    }

    #[test]
    fn wrong_patient_wrong_kind_or_far_away_is_false() {
        let t = truth(vec![
            patient("p001", vec![injected(Tachy, 10 * MIN, 4 * MIN)], vec![]),
            patient("p002", vec![], vec![]),
        ]);
        let records = [
            raised("p002", Tachy, 11 * MIN, 12 * MIN),
            raised("p001", Brady, 11 * MIN, 12 * MIN),
            // The episode ends at 14m20s; a window starting a window length after that is out.
            raised("p001", Tachy, 15 * MIN + 20_000, 16 * MIN + 20_000),
        ];
        let s = score(&t, &records, &ScoreOptions::default());
        assert!(!s.injected[0].detected);
        assert!(!s.all_required_detected());
        assert_eq!(s.false_raised.len(), 3);
        let k = |kind| s.kinds.iter().find(|k| k.kind == kind).unwrap();
        assert_eq!((k(Tachy).false_raised, k(Brady).false_raised), (2, 1));
        assert_eq!(k(Tachy).required_detected, 0);
    }

    #[test]
    fn the_tolerance_is_one_window_by_default_and_can_be_set() {
        let t = truth(vec![patient(
            "p001",
            vec![injected(Tachy, 10 * MIN, 4 * MIN)],
            vec![],
        )]);
        // Ends 50 s before the episode: inside a 60 s tolerance, outside a 30 s one.
        let early = raised("p001", Tachy, 8 * MIN + 10_000, 9 * MIN + 10_000);
        let s = score(&t, std::slice::from_ref(&early), &ScoreOptions::default());
        assert!(s.injected[0].detected);
        assert_eq!(s.injected[0].delay_ms, Some(-45_000));
        let strict = ScoreOptions {
            tolerance_ms: Some(30_000),
            ..ScoreOptions::default()
        };
        let s = score(&t, &[early], &strict);
        assert!(!s.injected[0].detected);
        assert_eq!(s.false_raised.len(), 1);
    }

    #[test]
    fn a_second_raise_of_one_episode_is_a_repeat_not_false() {
        let t = truth(vec![patient(
            "p001",
            vec![injected(Tachy, 10 * MIN, 6 * MIN)],
            vec![],
        )]);
        let first = raised("p001", Tachy, 11 * MIN, 12 * MIN);
        let again = raised("p001", Tachy, 14 * MIN, 15 * MIN);
        // The same raised record twice (an at-least-once replay) counts once.
        let s = score(
            &t,
            &[again.clone(), first.clone(), first.clone()],
            &ScoreOptions::default(),
        );
        assert_eq!(s.raised_records, 2);
        assert_eq!(
            s.injected[0].episode_id.as_deref(),
            Some(first.episode_id.as_str())
        );
        assert_eq!(s.injected[0].repeats, 1);
        assert!(s.false_raised.is_empty());
        assert_eq!(s.kinds[0].repeats, 1);
    }

    #[test]
    fn two_episodes_close_together_each_get_their_own_record() {
        let t = truth(vec![patient(
            "p001",
            vec![
                injected(Brady, 10 * MIN, 2 * MIN),
                injected(Brady, 13 * MIN, 3 * MIN),
            ],
            vec![],
        )]);
        // Both records overlap the first episode's tolerance; the second goes to the second
        // episode because the first is already detected.
        let records = [
            raised("p001", Brady, 11 * MIN, 12 * MIN),
            raised("p001", Brady, 13 * MIN, 14 * MIN),
        ];
        let s = score(&t, &records, &ScoreOptions::default());
        assert!(s.injected.iter().all(|i| i.detected));
        assert_eq!(s.injected[1].delay_ms, Some(65_000));
        assert_eq!(s.median_rate_delay_ms, Some(95_000));
        assert_eq!(s.max_rate_delay_ms, Some(125_000));
    }

    #[test]
    fn an_episode_beginning_while_the_alarm_is_still_on_is_covered() {
        let t = truth(vec![patient(
            "p001",
            vec![
                injected(Tachy, 10 * MIN, 4 * MIN),
                // 30 s after the first ends: the pipeline has not cleared yet.
                injected(Tachy, 14 * MIN + 50_000, 4 * MIN),
                // Long after the clear: needs a record of its own.
                injected(Tachy, 40 * MIN, 4 * MIN),
            ],
            vec![],
        )]);
        let first = raised("p001", Tachy, 10 * MIN, 11 * MIN);
        let clear = Episode {
            state: EpisodeState::Cleared,
            window_start: 20 * MIN,
            window_end: 21 * MIN,
            ..first.clone()
        };
        let s = score(
            &t,
            &[first.clone(), clear.clone()],
            &ScoreOptions::default(),
        );
        let i = &s.injected;
        assert!(i[0].detected && i[0].covered_by.is_none());
        assert!(i[1].detected);
        assert_eq!(i[1].covered_by.as_deref(), Some(first.episode_id.as_str()));
        assert_eq!(i[1].delay_ms, None);
        assert!(!i[2].detected && i[2].covered_by.is_none());
        assert_eq!((s.kinds[0].detected, s.kinds[0].covered), (2, 1));
        assert_eq!(s.median_rate_delay_ms, Some(65_000));
        // Never cleared: it covers everything after it.
        let s = score(&t, &[first], &ScoreOptions::default());
        assert!(s.injected.iter().all(|i| i.detected));
        // A clear before the second episode's start leaves it uncovered.
        let early = Episode {
            window_end: 14 * MIN + 40_000,
            ..clear
        };
        let s = score(
            &t,
            &[raised("p001", Tachy, 10 * MIN, 11 * MIN), early],
            &ScoreOptions::default(),
        );
        assert!(!s.injected[1].detected);
    }

    #[test]
    fn required_means_a_plateau_of_two_windows_inside_the_run() {
        let t = Truth {
            last_reading_ms: Some(60 * MIN),
            ..truth(vec![patient(
                "p001",
                vec![
                    injected(Tachy, 0, 2 * MIN),
                    injected(Tachy, 10 * MIN, 2 * MIN - 1),
                    // Its plateau is cut by the end of the run.
                    injected(Brady, 58 * MIN, 5 * MIN),
                ],
                vec![],
            )])
        };
        let s = score(&t, &[], &ScoreOptions::default());
        let required: Vec<bool> = s.injected.iter().map(|i| i.required).collect();
        // Sorted by kind (tachycardia first), then start.
        assert_eq!(required, [true, false, false]);
        assert_eq!(s.injected[2].counted_ms, 2 * MIN - 10_000);
        let short_windows = ScoreOptions {
            window_ms: 10_000,
            ..ScoreOptions::default()
        };
        let s = score(&t, &[], &short_windows);
        assert!(s.injected.iter().all(|i| i.required));
    }

    #[test]
    fn silences_are_scored_as_signal_loss_from_the_declared_time() {
        let t = Truth {
            last_reading_ms: Some(60 * MIN),
            ..truth(vec![patient(
                "p001",
                vec![],
                vec![
                    TruthSilence {
                        start_ms: 10 * MIN,
                        end_ms: 13 * MIN,
                    },
                    // Not longer than silence_after: not required.
                    TruthSilence {
                        start_ms: 20 * MIN,
                        end_ms: 20 * MIN + 30_000,
                    },
                    // Runs past the last reading: 50 s of it were observed.
                    TruthSilence {
                        start_ms: 59 * MIN + 10_000,
                        end_ms: 62 * MIN,
                    },
                ],
            )])
        };
        // Last reading 1 s before the gap, declared 31 s later.
        let loss = raised("p001", Loss, 10 * MIN - 1_000, 10 * MIN + 30_000);
        let s = score(
            &t,
            &[loss.clone(), cleared(&loss)],
            &ScoreOptions::default(),
        );
        let i = &s.injected;
        assert_eq!(i[0].delay_ms, Some(30_000));
        assert_eq!(
            i.iter().map(|i| i.required).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(i[2].counted_ms, 50_000);
        let k = s.kinds.iter().find(|k| k.kind == Loss).unwrap();
        assert_eq!((k.detected, k.required, k.required_detected), (1, 2, 1));
        // Signal loss is not a rate episode.
        assert_eq!(s.median_rate_delay_ms, None);
        assert!(
            s.summary_line()
                .contains("signal_loss 1/3 detected (1/2 required)")
        );
        assert!(
            s.summary_line()
                .contains("signal-loss delay median 30.0 s max 30.0 s")
        );
    }

    #[test]
    fn silences_hide_part_of_an_episode() {
        let t = truth(vec![patient(
            "p001",
            vec![
                // Plateau 10m10s..14m10s, silent 9m..12m30s: 100 s of plateau were sent.
                injected(Tachy, 10 * MIN, 4 * MIN),
                // Plateau 30m10s..34m10s with a 30 s gap at 31m: at most 160 s heard in one stretch.
                injected(Brady, 30 * MIN, 4 * MIN),
            ],
            vec![
                TruthSilence {
                    start_ms: 9 * MIN,
                    end_ms: 12 * MIN + 30_000,
                },
                TruthSilence {
                    start_ms: 31 * MIN,
                    end_ms: 31 * MIN + 30_000,
                },
            ],
        )]);
        let r = raised("p001", Tachy, 12 * MIN + 30_000, 13 * MIN + 30_000);
        let s = score(&t, &[r], &ScoreOptions::default());
        let (tachy, brady) = (&s.injected[0], &s.injected[1]);
        assert_eq!((tachy.counted_ms, tachy.required), (100_000, false));
        assert_eq!(tachy.observed_start_ms, 12 * MIN + 30_000);
        // Measured from when the monitor sent again, not from the onset nobody could see.
        assert_eq!(tachy.delay_ms, Some(65_000));
        assert_eq!((brady.counted_ms, brady.required), (160_000, true));
        assert_eq!(brady.observed_start_ms, 30 * MIN);
        assert_eq!(
            heard_stretches(
                0,
                100,
                &[TruthSilence {
                    start_ms: 0,
                    end_ms: 100
                }]
            ),
            []
        );
        assert_eq!(
            heard_stretches(
                0,
                100,
                &[
                    TruthSilence {
                        start_ms: 50,
                        end_ms: 60
                    },
                    TruthSilence {
                        start_ms: 10,
                        end_ms: 20
                    },
                    TruthSilence {
                        start_ms: 15,
                        end_ms: 30
                    },
                ]
            ),
            [(0, 10), (30, 50), (60, 100)]
        );
    }

    #[test]
    fn the_truth_file_of_hr_sim_parses_with_its_extra_fields() {
        let text = r#"{"seed": 1, "start_ms": 0, "last_reading_ms": 1000, "readings": 5,
            "patients": [{"patient_id": "p001", "baseline_bpm": 70.1, "clock_skew_ms": 0,
              "episodes": [{"kind": "bradycardia", "start_ms": 1, "plateau_start_ms": 2,
                "plateau_end_ms": 3, "end_ms": 4, "start": "x", "end": "y", "target_bpm": 40}],
              "silences": [{"start_ms": 5, "end_ms": 6}], "faults": {}}]}"#;
        let t: Truth = serde_json::from_str(text).unwrap();
        assert_eq!(t.patients[0].episodes[0].kind, Brady);
        assert_eq!(t.patients[0].silences[0].end_ms, 6);
    }
}
