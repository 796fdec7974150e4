//! The engine against a naive batch computation and a reference sequential simulation.

use std::collections::BTreeMap;

use hr_window::{Emission, EngineConfig, Outcome, WatermarkScope, WindowEngine, WindowSpec};
use proptest::prelude::*;

use crate::support::{
    Collect, Event, Row, config, naive_batch, naive_windows, rows, scope_strategy, sorted, stream,
    window_strategy,
};

type Run = (
    Vec<Outcome>,
    Vec<Emission<u32, Vec<u64>>>,
    hr_window::Counters,
);

/// Per window of the reference: ids in arrival order, how many arrived before the watermark
/// passed it, and how many after.
type RefWindow = (Vec<u64>, usize, usize);

/// Runs `events` through a fresh engine (all partitions assigned up front, as a Kafka consumer
/// knows its assignment) and then ends the input.
fn run(config: EngineConfig, partitions: u32, events: &[Event]) -> Run {
    let mut engine = WindowEngine::new(config, Collect).unwrap();
    for p in 0..partitions {
        engine.add_partition(p);
    }
    let mut out = Vec::new();
    let outcomes = events
        .iter()
        .map(|e| engine.process(e.partition, &e.key, e.t, &e.id, &mut out))
        .collect();
    engine.finish(&mut out);
    (outcomes, out, engine.counters())
}

/// A straight re-statement of the rules, event by event, with no panes, timers or firing: which
/// events are late (and under which watermark), which events each window receives, and how many
/// times each window is emitted.
struct Reference {
    outcomes: Vec<Outcome>,
    /// Every revision each window should be emitted with, and its contents.
    rows: Vec<Row>,
}

fn reference(config: &EngineConfig, partitions: u32, events: &[Event]) -> Reference {
    let (size, slide) = config.window.size_and_slide();
    let (d, l) = (config.out_of_orderness_ms, config.allowed_lateness_ms);
    let wm_of = |max: i64| max.saturating_sub(d + 1);
    let mut key_max: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    let mut part_max: BTreeMap<u32, i64> = (0..partitions).map(|p| (p, i64::MIN)).collect();
    let mut global = i64::MIN;
    let mut windows: BTreeMap<(u32, u32, i64), RefWindow> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for e in events {
        let wm = match config.scope {
            WatermarkScope::Key => wm_of(*key_max.get(&(e.partition, e.key)).unwrap_or(&i64::MIN)),
            WatermarkScope::Partition => wm_of(part_max[&e.partition]),
            WatermarkScope::Global => global,
        };
        let starts = naive_windows(e.t, size, slide);
        let last = *starts.last().unwrap();
        if last + size - 1 + l <= wm {
            outcomes.push(Outcome::Late {
                watermark_ms: wm,
                lateness_ms: wm - e.t,
            });
        } else {
            outcomes.push(Outcome::Aggregated);
            for start in starts {
                if start + size - 1 + l <= wm {
                    continue;
                }
                let w = windows.entry((e.partition, e.key, start)).or_default();
                w.0.push(e.id);
                if start + size - 1 <= wm {
                    w.2 += 1;
                } else {
                    w.1 += 1;
                }
            }
        }
        let k = key_max.entry((e.partition, e.key)).or_insert(i64::MIN);
        *k = (*k).max(e.t);
        let p = part_max.get_mut(&e.partition).unwrap();
        *p = (*p).max(e.t);
        global = global.max(part_max.values().map(|&m| wm_of(m)).min().unwrap());
    }
    let mut rows = Vec::new();
    for ((p, k, start), (ids, before, after)) in windows {
        // A window with data when the watermark passes it fires once then; every event after that
        // re-fires it. A window empty when passed is first emitted by the event that fills it.
        let first = if before > 0 { before } else { 1 };
        for revision in 0..=(ids.len() - first) {
            let mut contents = ids[..first + revision].to_vec();
            contents.sort_unstable();
            rows.push((p, k, start, start + size, revision as u32, contents));
        }
        debug_assert_eq!(
            ids.len() - first + 1,
            if before > 0 { 1 + after } else { after }
        );
    }
    Reference { outcomes, rows }
}

fn within_delay_case()
-> impl Strategy<Value = (WindowSpec, i64, i64, WatermarkScope, u32, Vec<Event>)> {
    (
        window_strategy(),
        0..25i64,
        0..30i64,
        scope_strategy(),
        1..=3u32,
    )
        .prop_flat_map(|(window, delay, lateness, scope, partitions)| {
            (
                Just(window),
                Just(delay),
                Just(lateness),
                Just(scope),
                Just(partitions),
                stream(250, partitions, 4, delay, false),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Disorder within the delay: nothing is late and the streaming result is the batch result,
    /// whatever the scope, window or interleaving of partitions.
    #[test]
    fn within_the_delay_streaming_equals_the_naive_batch_in_every_scope(
        (window, delay, lateness, scope, partitions, events) in within_delay_case()
    ) {
        let (outcomes, out, counters) =
            run(config(window, delay, lateness, scope), partitions, &events);
        prop_assert!(outcomes.iter().all(|o| *o == Outcome::Aggregated));
        prop_assert_eq!(sorted(rows(&out)), naive_batch(&events, window));
        prop_assert_eq!(counters.open_panes, 0);
        prop_assert_eq!(counters.pending_windows, 0);
    }

    /// Key scope only needs each key to stay within the delay of itself: keys far apart in event
    /// time, interleaved arbitrarily in one partition, still give the batch result.
    #[test]
    fn key_scope_tolerates_any_skew_between_keys(
        (window, delay, events) in (window_strategy(), 0..25i64).prop_flat_map(|(w, d)| {
            (Just(w), Just(d), stream(250, 2, 5, d, true))
        })
    ) {
        let (outcomes, out, _) =
            run(config(window, delay, 0, WatermarkScope::Key), 2, &events);
        prop_assert!(outcomes.iter().all(|o| *o == Outcome::Aggregated));
        prop_assert_eq!(sorted(rows(&out)), naive_batch(&events, window));
    }

    /// Sliding windows built from panes equal windows recomputed one by one from raw events.
    #[test]
    fn sliding_windows_equal_per_window_recomputation(
        size_in_slides in 1..=8i64,
        slide in 1..=20i64,
        remainder in 0..20i64,
        events in stream(300, 1, 3, 0, false),
    ) {
        let window = WindowSpec::Sliding { size_ms: slide * size_in_slides + remainder % slide, slide_ms: slide };
        let (_, out, _) = run(config(window, 0, 0, WatermarkScope::Partition), 1, &events);
        let (size, _) = window.size_and_slide();
        let mut expected = Vec::new();
        let mut starts: Vec<(u32, i64)> = events
            .iter()
            .flat_map(|e| naive_windows(e.t, size, slide).into_iter().map(move |s| (e.key, s)))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        for (key, start) in starts {
            let mut ids: Vec<u64> = events
                .iter()
                .filter(|e| e.key == key && start <= e.t && e.t < start + size)
                .map(|e| e.id)
                .collect();
            ids.sort_unstable();
            expected.push((0, key, start, start + size, 0, ids));
        }
        prop_assert_eq!(sorted(rows(&out)), expected);
    }

    /// Disorder beyond the delay: exactly the events the reference calls late come back late (with
    /// the same watermark), aggregated + late = input, and every window is emitted with exactly the
    /// revisions and contents the reference predicts.
    #[test]
    fn late_events_and_revisions_match_a_reference_simulation(
        (window, delay, lateness, scope, partitions, events) in
            (window_strategy(), 0..15i64, prop_oneof![Just(0i64), 1..40i64], scope_strategy(), 1..=3u32)
                .prop_flat_map(|(w, d, l, s, p)| {
                    (Just(w), Just(d), Just(l), Just(s), Just(p), stream(250, p, 3, 3 * d + 60, false))
                })
    ) {
        let config = config(window, delay, lateness, scope);
        let (outcomes, out, counters) = run(config.clone(), partitions, &events);
        let expected = reference(&config, partitions, &events);
        prop_assert_eq!(&outcomes, &expected.outcomes);
        let late = outcomes.iter().filter(|o| matches!(o, Outcome::Late { .. })).count() as u64;
        prop_assert_eq!(counters.late, late);
        prop_assert_eq!(counters.aggregated + counters.late, events.len() as u64);
        prop_assert_eq!(sorted(rows(&out)), expected.rows);
        let refired = out.iter().filter(|e| matches!(e, Emission::Fired(w) if w.revision > 0)).count() as u64;
        prop_assert_eq!(counters.windows_refired, refired);
        prop_assert_eq!(counters.retained_windows + counters.open_panes, 0);
    }
}

#[test]
fn each_call_emits_in_window_end_then_key_order() {
    let config = config(
        WindowSpec::Sliding {
            size_ms: 20,
            slide_ms: 10,
        },
        0,
        0,
        WatermarkScope::Partition,
    );
    let mut engine = WindowEngine::new(config, Collect).unwrap();
    let mut out = Vec::new();
    for (id, (key, t)) in [(7u32, 1i64), (3, 2), (5, 9)].into_iter().enumerate() {
        engine.process(0, &key, t, &(id as u64), &mut out);
    }
    assert!(out.is_empty());
    engine.process(0, &9, 100, &3, &mut out);
    let order: Vec<(i64, u32)> = rows(&out).iter().map(|r| (r.3, r.1)).collect();
    assert_eq!(
        order,
        vec![(10, 3), (10, 5), (10, 7), (20, 3), (20, 5), (20, 7)]
    );
}
