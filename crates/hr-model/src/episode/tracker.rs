//! [`EpisodeTracker`]: one patient's episode state machine under an [`EpisodePolicy`], and the
//! form it takes in a state snapshot.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Episode, EpisodeKind, EpisodePolicy, EpisodeState, WindowOutcome};
use crate::{Alert, AlertType};

/// One patient's episode state machine.
///
/// It is plain data (serde, `Clone`, `PartialEq`) so it can live in the window state snapshot
/// and the changelog; restoring it and feeding it the rest of the input gives exactly the
/// records of an uninterrupted run. It reads no clock: every time in a record comes from its
/// input.
///
/// # Rules
///
/// Windows are counted in the order they fire, and only first firings count:
///
/// - A tachycardia or bradycardia episode is **raised** by the
///   [`raise_after`](EpisodePolicy::raise_after)-th consecutive window of that type; a window
///   of any other classification resets the count. At most one of the two is open at a time.
/// - An open episode is **cleared** by the [`clear_after`](EpisodePolicy::clear_after)-th
///   consecutive `normal` window. If instead `raise_after` consecutive windows of the *other*
///   type arrive, the window that raises the new episode also clears the old one (the cleared
///   record comes first): the patient's condition changed, and the pager should say so.
/// - `insufficient_data` windows are skipped, as if they had not fired: they neither count
///   towards raising or clearing nor break a run. Too few readings say nothing about the
///   patient, which is also why windows that never fire (no readings at all) break nothing.
///   For the same reason a signal-loss gap between two windows does not break a run.
/// - A window re-fired by allowed lateness (`revision > 0`) is ignored: the pager has acted on
///   the first firing, and counting the window twice would shorten the hysteresis. So is a
///   window that does not end after the last one counted (a duplicate delivered again after a
///   restart), so feeding the same window twice is harmless.
/// - **Signal loss** is an episode of its own, independent of the rate episode (both can be
///   open): raised by [`EpisodeTracker::on_signal_lost`], cleared by
///   [`EpisodeTracker::on_signal_restored`]; a repeated notice changes nothing.
///
/// # Records
///
/// An [`Episode`]'s `window_start`/`window_end` are those of the window that raised or cleared
/// it. For signal loss they are the gap: `window_start` is the patient's last reading before
/// the loss in both records; `window_end` is the event time the loss was declared at in the
/// `raised` record and the restoring reading's time in the `cleared` one.
///
/// `episode_id` is `"{patient_id}:{kind}:{onset_ms}"`, where `onset_ms` is the start of the
/// run's first window (for signal loss: the last reading's time, see
/// [`EpisodeTracker::on_signal_lost`] for the one exception), so a replay gives the same
/// ids. Within one patient and kind an onset belongs to one episode only, and a kind and a
/// number cannot contain `:`, so the id splits back from the right even if the patient id has
/// colons.
///
/// # Example
/// ```
/// use hr_model::{AlertType, EpisodePolicy, EpisodeState, EpisodeTracker, WindowOutcome};
///
/// let policy = EpisodePolicy::new(2, 2)?;
/// let mut tracker = EpisodeTracker::new();
/// let window = |i: i64, alert_type, avg_hr| WindowOutcome {
///     window_start: i * 60_000,
///     window_end: (i + 1) * 60_000,
///     alert_type,
///     avg_hr,
///     revision: 0,
/// };
/// assert!(tracker.on_window("p1", &window(0, AlertType::Tachycardia, 130.0), &policy).is_empty());
/// let raised = tracker.on_window("p1", &window(1, AlertType::Tachycardia, 142.5), &policy);
/// assert_eq!(raised[0].state, EpisodeState::Raised);
/// assert_eq!(raised[0].episode_id, "p1:tachycardia:0");
/// assert_eq!(raised[0].to_json(), r#"{"patient_id":"p1","episode_id":"p1:tachycardia:0","state":"raised","kind":"tachycardia","window_start":60000,"window_end":120000,"extreme_avg_hr":142.5}"#);
///
/// assert!(tracker.on_window("p1", &window(2, AlertType::Normal, 80.0), &policy).is_empty());
/// let cleared = tracker.on_window("p1", &window(3, AlertType::Normal, 78.0), &policy);
/// assert_eq!((cleared[0].state, cleared[0].window_start), (EpisodeState::Cleared, 180_000));
/// assert_eq!(cleared[0].episode_id, "p1:tachycardia:0");
/// # Ok::<(), hr_model::EpisodePolicyError>(())
/// ```
///
/// # State
///
/// The patient id and the [`EpisodePolicy`] are passed to each call rather than stored, so a
/// snapshot holds only what the input has changed, and a tracker restored under a different
/// policy applies the new counts from its next window on. A tracker with nothing open or
/// pending serialises to a few bytes (see [`EpisodeTracker::is_quiet`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodeTracker {
    /// The open tachycardia or bradycardia episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    open: Option<Run>,
    /// Consecutive windows of an abnormal type other than the open episode's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<Run>,
    /// Consecutive normal windows while an episode is open.
    #[serde(skip_serializing_if = "is_zero")]
    normal_run: u32,
    /// End of the last window counted, to ignore one delivered again.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_window_end: Option<i64>,
    /// The last reading's time, while signal loss is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    signal_lost_since: Option<i64>,
    /// The id onset of the latest signal-loss episode, open or cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    signal_onset_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A run of windows of one abnormal type: a pending streak or an open episode (whose
/// `windows` stays the length of the streak that raised it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    kind: EpisodeKind,
    onset_ms: i64,
    windows: u32,
    extreme: ExactF64,
}

impl Run {
    fn episode_id(&self, patient_id: &str) -> String {
        episode_id(patient_id, self.kind, self.onset_ms)
    }
}

fn episode_id(patient_id: &str, kind: EpisodeKind, onset_ms: i64) -> String {
    format!("{patient_id}:{kind}:{onset_ms}")
}

/// An `f64` written as its shortest round-trip decimal string: serde_json's default float
/// parser may come back one ulp off, and a restored tracker must be bit-for-bit the one
/// that was saved.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ExactF64(f64);

impl Serialize for ExactF64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ExactF64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse()
            .map(ExactF64)
            .map_err(|_| serde::de::Error::custom(format!("not a number: {text:?}")))
    }
}

impl EpisodeTracker {
    /// A tracker with nothing open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one fired window of `patient_id` and returns the records it causes: none, one,
    /// or two (a `cleared` then a `raised`, when the type switches).
    ///
    /// # Example
    /// ```
    /// use hr_model::{AlertType, EpisodePolicy, EpisodeTracker, WindowOutcome};
    /// let mut tracker = EpisodeTracker::new();
    /// let w = WindowOutcome { window_start: 0, window_end: 60_000,
    ///     alert_type: AlertType::Bradycardia, avg_hr: 44.0, revision: 0 };
    /// let out = tracker.on_window("p7", &w, &EpisodePolicy::DEFAULT);
    /// assert_eq!(out[0].episode_id, "p7:bradycardia:0");
    /// // The same window again (a redelivery) or re-fired by allowed lateness changes nothing.
    /// assert!(tracker.on_window("p7", &w, &EpisodePolicy::DEFAULT).is_empty());
    /// let refired = WindowOutcome { revision: 1, avg_hr: 40.0, ..w };
    /// assert!(tracker.on_window("p7", &refired, &EpisodePolicy::DEFAULT).is_empty());
    /// ```
    pub fn on_window(
        &mut self,
        patient_id: &str,
        window: &WindowOutcome,
        policy: &EpisodePolicy,
    ) -> Vec<Episode> {
        let mut out = Vec::new();
        if window.revision > 0
            || self
                .last_window_end
                .is_some_and(|end| window.window_end <= end)
        {
            return out;
        }
        self.last_window_end = Some(window.window_end);
        let record = |run: &Run, state| Episode {
            patient_id: patient_id.to_owned(),
            episode_id: run.episode_id(patient_id),
            state,
            kind: run.kind,
            window_start: window.window_start,
            window_end: window.window_end,
            extreme_avg_hr: Some(run.extreme.0),
        };
        match window.alert_type {
            AlertType::InsufficientData => {}
            AlertType::Normal => {
                self.pending = None;
                if let Some(open) = self.open {
                    self.normal_run += 1;
                    if self.normal_run >= policy.clear_after {
                        out.push(record(&open, EpisodeState::Cleared));
                        self.open = None;
                        self.normal_run = 0;
                    }
                }
            }
            AlertType::Tachycardia | AlertType::Bradycardia => {
                let kind = EpisodeKind::of_alert_type(window.alert_type)
                    .expect("tachycardia and bradycardia are rate episodes");
                let avg = window.avg_hr;
                self.normal_run = 0;
                if let Some(open) = self.open.as_mut().filter(|o| o.kind == kind) {
                    if kind.more_extreme(avg, open.extreme.0) {
                        open.extreme = ExactF64(avg);
                    }
                    self.pending = None;
                    return out;
                }
                let run = match self.pending.as_mut().filter(|p| p.kind == kind) {
                    Some(run) => {
                        run.windows += 1;
                        if kind.more_extreme(avg, run.extreme.0) {
                            run.extreme = ExactF64(avg);
                        }
                        *run
                    }
                    None => *self.pending.insert(Run {
                        kind,
                        onset_ms: window.window_start,
                        windows: 1,
                        extreme: ExactF64(avg),
                    }),
                };
                if run.windows >= policy.raise_after {
                    if let Some(previous) = self.open.take() {
                        out.push(record(&previous, EpisodeState::Cleared));
                    }
                    out.push(record(&run, EpisodeState::Raised));
                    self.open = Some(run);
                    self.pending = None;
                }
            }
        }
        out
    }

    /// [`EpisodeTracker::on_window`] for the alert published for the window.
    pub fn on_alert(&mut self, alert: &Alert, policy: &EpisodePolicy) -> Vec<Episode> {
        self.on_window(&alert.patient_id, &WindowOutcome::from(alert), policy)
    }

    /// The patient's monitor has gone silent: raises a `signal_loss` episode unless one is
    /// open. `last_reading_ms` is the event time of the patient's last reading;
    /// `detected_ms` the event time the loss is declared at (normally the partition's event
    /// time, at least `silence_after` later).
    ///
    /// The id's onset is `last_reading_ms`, unless that is not after the previous signal-loss
    /// episode's onset (a restoring reading no newer than the last one before the gap, then
    /// silence again): then it is the previous onset + 1 ms, so no two episodes share an id.
    /// The record's `window_start` is `last_reading_ms` either way.
    pub fn on_signal_lost(
        &mut self,
        patient_id: &str,
        last_reading_ms: i64,
        detected_ms: i64,
    ) -> Option<Episode> {
        if self.signal_lost_since.is_some() {
            return None;
        }
        let onset_ms = match self.signal_onset_ms {
            Some(previous) if last_reading_ms <= previous => previous.saturating_add(1),
            _ => last_reading_ms,
        };
        self.signal_lost_since = Some(last_reading_ms);
        self.signal_onset_ms = Some(onset_ms);
        Some(self.signal_record(patient_id, EpisodeState::Raised, detected_ms))
    }

    /// A reading from the patient arrived at event time `restored_ms`: clears the open
    /// `signal_loss` episode, if any.
    pub fn on_signal_restored(&mut self, patient_id: &str, restored_ms: i64) -> Option<Episode> {
        self.signal_lost_since?;
        let record = self.signal_record(patient_id, EpisodeState::Cleared, restored_ms);
        self.signal_lost_since = None;
        Some(record)
    }

    fn signal_record(&self, patient_id: &str, state: EpisodeState, at: i64) -> Episode {
        let onset = self
            .signal_onset_ms
            .expect("an onset is set with every signal loss");
        Episode {
            patient_id: patient_id.to_owned(),
            episode_id: episode_id(patient_id, EpisodeKind::SignalLoss, onset),
            state,
            kind: EpisodeKind::SignalLoss,
            window_start: self
                .signal_lost_since
                .expect("a signal-loss record is made while the loss is open"),
            window_end: at,
            extreme_avg_hr: None,
        }
    }

    /// The kind of the open tachycardia or bradycardia episode, if any.
    pub fn open_episode(&self) -> Option<EpisodeKind> {
        self.open.map(|o| o.kind)
    }

    /// `true` while a `signal_loss` episode is open.
    pub fn is_signal_lost(&self) -> bool {
        self.signal_lost_since.is_some()
    }

    /// `true` if no episode is open and no run is under way: a state store may then drop the
    /// tracker (a changelog tombstone) and start again from [`EpisodeTracker::new`]. What is
    /// lost are two guards for unusual input: against a redelivered last window, and the
    /// floor that keeps a signal-loss id distinct from the previous one's.
    pub fn is_quiet(&self) -> bool {
        self.open.is_none() && self.pending.is_none() && self.signal_lost_since.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: AlertType = AlertType::Tachycardia;
    const B: AlertType = AlertType::Bradycardia;
    const N: AlertType = AlertType::Normal;
    const I: AlertType = AlertType::InsufficientData;

    fn window(i: i64, alert_type: AlertType, avg_hr: f64) -> WindowOutcome {
        WindowOutcome {
            window_start: i * 10,
            window_end: i * 10 + 10,
            alert_type,
            avg_hr,
            revision: 0,
        }
    }

    /// Feeds windows 0, 1, 2, ... and returns `(window index, state, kind, extreme)` per record.
    fn run(
        policy: EpisodePolicy,
        types: &[(AlertType, f64)],
    ) -> Vec<(i64, EpisodeState, EpisodeKind, Option<f64>)> {
        let mut tracker = EpisodeTracker::new();
        let mut out = Vec::new();
        for (i, &(t, avg)) in types.iter().enumerate() {
            let w = window(i as i64, t, avg);
            for e in tracker.on_window("p", &w, &policy) {
                assert_eq!(e.window_start, w.window_start);
                out.push((i as i64, e.state, e.kind, e.extreme_avg_hr));
            }
        }
        out
    }

    use EpisodeKind::{Bradycardia as KB, Tachycardia as KT};
    use EpisodeState::{Cleared, Raised};

    #[test]
    fn default_policy_raises_on_the_first_abnormal_window_and_clears_after_two_normal() {
        let out = run(
            EpisodePolicy::DEFAULT,
            &[
                (N, 70.),
                (T, 120.),
                (T, 130.),
                (N, 80.),
                (T, 125.),
                (N, 80.),
                (N, 80.),
            ],
        );
        assert_eq!(
            out,
            [(1, Raised, KT, Some(120.)), (6, Cleared, KT, Some(130.))]
        );
    }

    #[test]
    fn raise_after_counts_consecutive_windows_of_one_type() {
        let policy = EpisodePolicy::new(3, 1).unwrap();
        let out = run(
            policy,
            &[
                (T, 110.),
                (T, 111.),
                (B, 45.), // a switch of type restarts the count
                (T, 112.),
                (T, 115.),
                (N, 90.), // so does a normal window
                (T, 101.),
                (T, 104.),
                (T, 102.),
                (N, 90.),
            ],
        );
        assert_eq!(
            out,
            [(8, Raised, KT, Some(104.)), (9, Cleared, KT, Some(104.))]
        );
    }

    #[test]
    fn insufficient_data_neither_counts_nor_breaks_a_run() {
        let policy = EpisodePolicy::new(2, 2).unwrap();
        let out = run(
            policy,
            &[(B, 40.), (I, 200.), (B, 42.), (N, 70.), (I, 30.), (N, 70.)],
        );
        assert_eq!(
            out,
            [(2, Raised, KB, Some(40.)), (5, Cleared, KB, Some(40.))]
        );
        assert!(run(policy, &[(I, 200.), (I, 200.), (I, 30.)]).is_empty());
    }

    #[test]
    fn a_run_of_the_other_type_clears_and_raises_in_one_window() {
        let policy = EpisodePolicy::new(2, 3).unwrap();
        let out = run(
            policy,
            &[
                (T, 120.),
                (T, 140.),
                (B, 45.),
                (T, 150.),
                (B, 44.),
                (B, 41.),
                (N, 60.),
            ],
        );
        // The lone bradycardia window at 2 does not clear; tachycardia at 3 raises the peak.
        assert_eq!(
            out,
            [
                (1, Raised, KT, Some(140.)),
                (5, Cleared, KT, Some(150.)),
                (5, Raised, KB, Some(41.)),
            ]
        );
    }

    #[test]
    fn an_abnormal_window_restarts_the_clearing_count() {
        let policy = EpisodePolicy::new(1, 2).unwrap();
        let out = run(
            policy,
            &[(T, 120.), (N, 80.), (T, 121.), (N, 80.), (N, 80.)],
        );
        assert_eq!(
            out,
            [(0, Raised, KT, Some(120.)), (4, Cleared, KT, Some(121.))]
        );
    }

    #[test]
    fn records_and_ids_are_exact() {
        let mut tracker = EpisodeTracker::new();
        let policy = EpisodePolicy::new(2, 1).unwrap();
        assert!(
            tracker
                .on_window("p:1", &window(6, B, 48.25), &policy)
                .is_empty()
        );
        let raised = tracker.on_window("p:1", &window(7, B, 47.5), &policy);
        assert_eq!(
            raised,
            [Episode {
                patient_id: "p:1".into(),
                episode_id: "p:1:bradycardia:60".into(),
                state: Raised,
                kind: KB,
                window_start: 70,
                window_end: 80,
                extreme_avg_hr: Some(47.5),
            }]
        );
        let id = &raised[0].episode_id;
        let mut parts = id.rsplitn(3, ':');
        assert_eq!(
            (parts.next(), parts.next(), parts.next()),
            (Some("60"), Some("bradycardia"), Some("p:1"))
        );
        let cleared = tracker.on_window("p:1", &window(8, N, 70.), &policy);
        assert_eq!(
            cleared[0].to_json(),
            r#"{"patient_id":"p:1","episode_id":"p:1:bradycardia:60","state":"cleared","kind":"bradycardia","window_start":80,"window_end":90,"extreme_avg_hr":47.5}"#
        );
        let back: Episode = serde_json::from_str(&cleared[0].to_json()).unwrap();
        assert_eq!(back, cleared[0]);
    }

    #[test]
    fn refired_and_redelivered_windows_do_not_advance_the_state() {
        let policy = EpisodePolicy::new(2, 1).unwrap();
        let mut tracker = EpisodeTracker::new();
        assert!(
            tracker
                .on_window("p", &window(0, T, 120.), &policy)
                .is_empty()
        );
        let before = tracker.clone();
        let refired = WindowOutcome {
            revision: 1,
            ..window(0, T, 125.)
        };
        assert!(tracker.on_window("p", &refired, &policy).is_empty());
        assert!(
            tracker
                .on_window("p", &window(0, T, 120.), &policy)
                .is_empty()
        );
        assert_eq!(tracker, before);
        assert_eq!(
            tracker.on_window("p", &window(1, T, 121.), &policy).len(),
            1
        );
        // A late first firing of an earlier window cannot raise or clear either.
        assert!(
            tracker
                .on_window("p", &window(0, N, 70.), &policy)
                .is_empty()
        );
        assert_eq!(tracker.open_episode(), Some(KT));
    }

    #[test]
    fn signal_loss_is_its_own_episode() {
        let policy = EpisodePolicy::DEFAULT;
        let mut tracker = EpisodeTracker::new();
        assert_eq!(
            tracker.on_window("p", &window(0, T, 130.), &policy).len(),
            1
        );
        let lost = tracker.on_signal_lost("p", 9, 40).unwrap();
        assert_eq!(
            (lost.state, lost.kind, lost.window_start, lost.window_end),
            (Raised, EpisodeKind::SignalLoss, 9, 40)
        );
        assert_eq!(lost.episode_id, "p:signal_loss:9");
        assert_eq!(lost.extreme_avg_hr, None);
        assert!(tracker.on_signal_lost("p", 9, 50).is_none());
        assert!(tracker.is_signal_lost());
        assert_eq!(tracker.open_episode(), Some(KT));

        let restored = tracker.on_signal_restored("p", 95).unwrap();
        assert_eq!(
            (restored.state, restored.window_start, restored.window_end),
            (Cleared, 9, 95)
        );
        assert_eq!(restored.episode_id, lost.episode_id);
        assert!(tracker.on_signal_restored("p", 96).is_none());
        assert_eq!(
            restored.to_json(),
            r#"{"patient_id":"p","episode_id":"p:signal_loss:9","state":"cleared","kind":"signal_loss","window_start":9,"window_end":95,"extreme_avg_hr":null}"#
        );
        // The tachycardia episode is untouched and still needs two normal windows.
        assert!(
            tracker
                .on_window("p", &window(9, N, 80.), &policy)
                .is_empty()
        );
        assert_eq!(
            tracker.on_window("p", &window(10, N, 80.), &policy)[0].state,
            Cleared
        );
        assert!(tracker.is_quiet());
    }

    #[test]
    fn a_repeated_loss_at_the_same_last_reading_gets_a_new_id() {
        let mut tracker = EpisodeTracker::new();
        let first = tracker.on_signal_lost("p", 500, 30_500).unwrap();
        // Restored by a late reading no newer than the last one, then silent again.
        tracker.on_signal_restored("p", 400).unwrap();
        let second = tracker.on_signal_lost("p", 500, 61_000).unwrap();
        assert_eq!(first.episode_id, "p:signal_loss:500");
        assert_eq!(second.episode_id, "p:signal_loss:501");
        assert_eq!((second.window_start, second.window_end), (500, 61_000));
        let cleared = tracker.on_signal_restored("p", 70_000).unwrap();
        assert_eq!(cleared.episode_id, second.episode_id);
        assert_eq!(cleared.window_start, 500);
        assert_eq!(
            tracker
                .on_signal_lost("p", 80_000, 110_000)
                .unwrap()
                .episode_id,
            "p:signal_loss:80000"
        );
    }

    #[test]
    fn snapshot_is_small_and_exact() {
        let policy = EpisodePolicy::new(3, 2).unwrap();
        let mut tracker = EpisodeTracker::new();
        assert_eq!(serde_json::to_string(&tracker).unwrap(), "{}");
        // Not a short decimal: the string form must still read back to the same bits.
        let awkward = 0.1f64 + 0.2 + 100.0;
        tracker.on_window("p", &window(0, T, awkward), &policy);
        tracker.on_signal_lost("p", 5, 40);
        let json = serde_json::to_string(&tracker).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"pending":{{"kind":"tachycardia","onset_ms":0,"windows":1,"extreme":"{awkward}"}},"last_window_end":10,"signal_lost_since":5,"signal_onset_ms":5}}"#
            )
        );
        let back: EpisodeTracker = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tracker);
        assert!(serde_json::from_str::<EpisodeTracker>(r#"{"opened":null}"#).is_err());
    }
}
