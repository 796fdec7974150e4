//! Properties of the episode state machine over random patient histories: pairing of raised
//! and cleared records, agreement with a naive batch reference, and snapshot/restore in the
//! middle of a history.

use std::collections::{BTreeMap, BTreeSet};

use hr_model::{
    AlertType, Episode, EpisodeKind, EpisodePolicy, EpisodeState, EpisodeTracker, WindowOutcome,
};
use proptest::prelude::*;

const PATIENT: &str = "p:7";
const WINDOW_MS: i64 = 10_000;

/// One thing that happens to a patient. Windows are numbered by their position in the
/// history, so their ends increase unless a step repeats an earlier window.
#[derive(Debug, Clone)]
enum Step {
    /// The next window fires for the first time.
    Window(AlertType, f64),
    /// The previous window fires again with a higher revision (allowed lateness).
    Refire(AlertType, f64),
    /// The previous window is delivered again unchanged (a replay after a restart).
    Redeliver,
    /// The monitor goes silent.
    Lost,
    /// A reading arrives again.
    Restored,
}

fn avg_for(t: AlertType) -> BoxedStrategy<f64> {
    match t {
        AlertType::Tachycardia => (100.000_1f64..220.0).boxed(),
        AlertType::Bradycardia => (20.0f64..49.999).boxed(),
        AlertType::Normal => (50.0f64..=100.0).boxed(),
        AlertType::InsufficientData => (20.0f64..220.0).boxed(),
    }
}

fn alert_type() -> impl Strategy<Value = AlertType> {
    prop_oneof![
        4 => Just(AlertType::Tachycardia),
        3 => Just(AlertType::Bradycardia),
        5 => Just(AlertType::Normal),
        1 => Just(AlertType::InsufficientData),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let classified = || alert_type().prop_flat_map(|t| avg_for(t).prop_map(move |avg| (t, avg)));
    prop_oneof![
        20 => classified().prop_map(|(t, avg)| Step::Window(t, avg)),
        1 => classified().prop_map(|(t, avg)| Step::Refire(t, avg)),
        1 => Just(Step::Redeliver),
        1 => Just(Step::Lost),
        1 => Just(Step::Restored),
    ]
}

fn policy() -> impl Strategy<Value = EpisodePolicy> {
    (1u32..=4, 1u32..=4).prop_map(|(r, c)| EpisodePolicy::new(r, c).unwrap())
}

/// What the caller hands the tracker, derived from the steps once, so the tracker and the
/// reference see the same inputs.
#[derive(Debug, Clone, Copy)]
enum Input {
    Window(WindowOutcome),
    Lost {
        last_reading_ms: i64,
        detected_ms: i64,
    },
    Restored {
        at_ms: i64,
    },
}

fn inputs(steps: &[Step]) -> Vec<Input> {
    let mut out = Vec::new();
    let mut next = 0i64;
    // The previous window's first firing, and its latest revision.
    let mut last: Option<(WindowOutcome, u32)> = None;
    // The patient's latest reading: in the last window, or the one that restored the signal.
    let mut last_reading = -1i64;
    for step in steps {
        let clock = next * WINDOW_MS;
        match *step {
            Step::Window(alert_type, avg_hr) => {
                let w = WindowOutcome {
                    window_start: clock,
                    window_end: clock + WINDOW_MS,
                    alert_type,
                    avg_hr,
                    revision: 0,
                };
                next += 1;
                last = Some((w, 0));
                last_reading = w.window_end - 1;
                out.push(Input::Window(w));
            }
            Step::Refire(alert_type, avg_hr) => {
                if let Some((first, revision)) = last.as_mut() {
                    *revision += 1;
                    out.push(Input::Window(WindowOutcome {
                        alert_type,
                        avg_hr,
                        revision: *revision,
                        ..*first
                    }));
                }
            }
            Step::Redeliver => {
                if let Some((first, _)) = last {
                    out.push(Input::Window(first));
                }
            }
            Step::Lost => out.push(Input::Lost {
                last_reading_ms: last_reading,
                detected_ms: last_reading + 30_000,
            }),
            Step::Restored => {
                // Restoring is a reading, between the last window and the next one.
                last_reading = clock + 5;
                out.push(Input::Restored {
                    at_ms: last_reading,
                })
            }
        }
    }
    out
}

fn feed(tracker: &mut EpisodeTracker, input: &Input, policy: &EpisodePolicy) -> Vec<Episode> {
    match *input {
        Input::Window(w) => tracker.on_window(PATIENT, &w, policy),
        Input::Lost {
            last_reading_ms,
            detected_ms,
        } => tracker
            .on_signal_lost(PATIENT, last_reading_ms, detected_ms)
            .into_iter()
            .collect(),
        Input::Restored { at_ms } => tracker
            .on_signal_restored(PATIENT, at_ms)
            .into_iter()
            .collect(),
    }
}

fn run(inputs: &[Input], policy: &EpisodePolicy) -> (Vec<Episode>, EpisodeTracker) {
    let mut tracker = EpisodeTracker::new();
    let out = inputs
        .iter()
        .flat_map(|i| feed(&mut tracker, i, policy))
        .collect();
    (out, tracker)
}

/// The rules written the slow, obvious way: keep every counted window, and at each new one
/// look back over the last `raise_after` (or `clear_after`) of them.
fn reference(inputs: &[Input], policy: &EpisodePolicy) -> Vec<Episode> {
    let (n, m) = (policy.raise_after as usize, policy.clear_after as usize);
    let mut out = Vec::new();
    let mut counted: Vec<WindowOutcome> = Vec::new();
    let mut last_end: Option<i64> = None;
    // (kind, index in `counted` of the run's first window)
    let mut open: Option<(EpisodeKind, usize)> = None;
    let mut lost_since: Option<i64> = None;
    let mut signal_onsets: Vec<i64> = Vec::new();
    let kind_of = |w: &WindowOutcome| EpisodeKind::of_alert_type(w.alert_type);
    let extreme = |counted: &[WindowOutcome], kind: EpisodeKind| {
        let avgs = counted
            .iter()
            .filter(|w| kind_of(w) == Some(kind))
            .map(|w| w.avg_hr);
        match kind {
            EpisodeKind::Bradycardia => avgs.fold(f64::INFINITY, f64::min),
            _ => avgs.fold(f64::NEG_INFINITY, f64::max),
        }
    };
    let record = |state, kind: EpisodeKind, onset: i64, start, end, extreme_avg_hr| Episode {
        patient_id: PATIENT.to_owned(),
        episode_id: format!("{PATIENT}:{}:{onset}", kind.as_str()),
        state,
        kind,
        window_start: start,
        window_end: end,
        extreme_avg_hr,
    };
    for input in inputs {
        match *input {
            Input::Window(w) => {
                if w.revision > 0 || last_end.is_some_and(|e| w.window_end <= e) {
                    continue;
                }
                last_end = Some(w.window_end);
                if w.alert_type == AlertType::InsufficientData {
                    continue;
                }
                counted.push(w);
                let len = counted.len();
                let last = |k: usize| &counted[len.saturating_sub(k)..];
                // The record for the rate episode whose run began at `counted[onset]`.
                let rate_record = |state, kind, onset: usize| {
                    let x = extreme(&counted[onset..], kind);
                    let onset_ms = counted[onset].window_start;
                    record(state, kind, onset_ms, w.window_start, w.window_end, Some(x))
                };
                if let Some((kind, onset)) = open
                    && len >= m
                    && last(m).iter().all(|w| w.alert_type == AlertType::Normal)
                {
                    out.push(rate_record(EpisodeState::Cleared, kind, onset));
                    open = None;
                }
                if let Some(kind) = kind_of(&w) {
                    let run_of_kind = len >= n && last(n).iter().all(|w| kind_of(w) == Some(kind));
                    if run_of_kind && open.map(|o| o.0) != Some(kind) {
                        if let Some((old, onset)) = open {
                            out.push(rate_record(EpisodeState::Cleared, old, onset));
                        }
                        out.push(rate_record(EpisodeState::Raised, kind, len - n));
                        open = Some((kind, len - n));
                    }
                }
            }
            Input::Lost {
                last_reading_ms,
                detected_ms,
            } => {
                if lost_since.is_none() {
                    lost_since = Some(last_reading_ms);
                    // An onset not after every earlier one moves to just past the latest.
                    let onset = match signal_onsets.iter().max() {
                        Some(&latest) if last_reading_ms <= latest => latest + 1,
                        _ => last_reading_ms,
                    };
                    signal_onsets.push(onset);
                    out.push(record(
                        EpisodeState::Raised,
                        EpisodeKind::SignalLoss,
                        onset,
                        last_reading_ms,
                        detected_ms,
                        None,
                    ));
                }
            }
            Input::Restored { at_ms } => {
                if let Some(since) = lost_since.take() {
                    let onset = *signal_onsets.last().unwrap();
                    out.push(record(
                        EpisodeState::Cleared,
                        EpisodeKind::SignalLoss,
                        onset,
                        since,
                        at_ms,
                        None,
                    ));
                }
            }
        }
    }
    out
}

fn history() -> impl Strategy<Value = (Vec<Step>, EpisodePolicy)> {
    (prop::collection::vec(step(), 0..120), policy())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn records_pair_up_and_open_ones_are_still_open_at_the_end((steps, policy) in history()) {
        let inputs = inputs(&steps);
        let (out, tracker) = run(&inputs, &policy);
        let mut open: BTreeMap<EpisodeKind, String> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for e in &out {
            match e.state {
                EpisodeState::Raised => {
                    prop_assert!(!open.contains_key(&e.kind), "raised twice: {e:?}");
                    prop_assert!(ids.insert(e.episode_id.clone()), "id reused: {e:?}");
                    open.insert(e.kind, e.episode_id.clone());
                    let rate_open = open.keys().filter(|k| **k != EpisodeKind::SignalLoss).count();
                    prop_assert!(rate_open <= 1, "tachycardia and bradycardia both open");
                }
                EpisodeState::Cleared => {
                    prop_assert_eq!(open.remove(&e.kind), Some(e.episode_id.clone()), "{:?}", e);
                }
            }
            prop_assert_eq!(e.extreme_avg_hr.is_none(), e.kind == EpisodeKind::SignalLoss);
        }
        let rate_open = open.keys().copied().find(|k| *k != EpisodeKind::SignalLoss);
        prop_assert_eq!(tracker.open_episode(), rate_open);
        prop_assert_eq!(tracker.is_signal_lost(), open.contains_key(&EpisodeKind::SignalLoss));
        prop_assert!(open.is_empty() || !tracker.is_quiet());
    }

    #[test]
    fn records_match_the_naive_reference((steps, policy) in history()) {
        let inputs = inputs(&steps);
        let (out, _) = run(&inputs, &policy);
        prop_assert_eq!(out, reference(&inputs, &policy));
    }

    #[test]
    fn a_restored_snapshot_continues_as_if_uninterrupted(
        (steps, policy) in history(),
        split in any::<prop::sample::Index>(),
    ) {
        let inputs = inputs(&steps);
        let (whole, end_state) = run(&inputs, &policy);
        let at = split.index(inputs.len() + 1);
        let (mut out, before) = run(&inputs[..at], &policy);
        let bytes = serde_json::to_vec(&before).unwrap();
        let mut restored: EpisodeTracker = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&restored, &before);
        prop_assert_eq!(serde_json::to_vec(&restored).unwrap(), bytes);
        for input in &inputs[at..] {
            out.extend(feed(&mut restored, input, &policy));
        }
        prop_assert_eq!(out, whole);
        prop_assert_eq!(serde_json::to_vec(&restored).unwrap(), serde_json::to_vec(&end_state).unwrap());
    }

    #[test]
    fn a_replayed_history_gives_byte_identical_records((steps, policy) in history()) {
        let inputs = inputs(&steps);
        let json = |out: Vec<Episode>| out.iter().map(Episode::to_json).collect::<Vec<_>>();
        prop_assert_eq!(json(run(&inputs, &policy).0), json(run(&inputs, &policy).0));
    }
}

#[test]
fn the_generator_reaches_every_branch() {
    // Guards the properties against a generator that never raises, switches or clears.
    let policy = EpisodePolicy::new(2, 2).unwrap();
    let steps = [
        Step::Window(AlertType::Tachycardia, 120.0),
        Step::Refire(AlertType::Normal, 90.0),
        Step::Window(AlertType::Tachycardia, 130.0),
        Step::Redeliver,
        Step::Lost,
        Step::Window(AlertType::Bradycardia, 45.0),
        Step::Window(AlertType::InsufficientData, 200.0),
        Step::Window(AlertType::Bradycardia, 40.0),
        Step::Restored,
        Step::Window(AlertType::Normal, 70.0),
        Step::Window(AlertType::Normal, 71.0),
    ];
    let inputs = inputs(&steps);
    let (out, tracker) = run(&inputs, &policy);
    let summary: Vec<(EpisodeState, EpisodeKind)> = out.iter().map(|e| (e.state, e.kind)).collect();
    use EpisodeKind::*;
    use EpisodeState::*;
    assert_eq!(
        summary,
        [
            (Raised, Tachycardia),
            (Raised, SignalLoss),
            (Cleared, Tachycardia),
            (Raised, Bradycardia),
            (Cleared, SignalLoss),
            (Cleared, Bradycardia),
        ]
    );
    assert_eq!(out, reference(&inputs, &policy));
    assert!(tracker.is_quiet());
}
