//! A snapshot taken at any point, serialised, restored into a fresh engine and followed by the rest
//! of the records gives exactly what an uninterrupted run gives (key and partition scope).

use hr_window::{Emission, EngineConfig, Outcome, PartitionSnapshot, WatermarkScope, WindowEngine};
use proptest::prelude::*;

use crate::support::{Collect, Event, stream, window_strategy};

type Out = Vec<Emission<String, Vec<u64>>>;

fn feed(engine: &mut WindowEngine<String, Collect>, events: &[Event]) -> Vec<(Outcome, Out)> {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            let key = format!("k{}", e.key);
            let outcome = engine.process(e.partition, key.as_str(), e.t, &e.id, &mut out);
            (outcome, out)
        })
        .collect()
}

fn snapshots_json(engine: &WindowEngine<String, Collect>) -> Vec<(u32, String)> {
    let ids: Vec<u32> = engine.partitions().collect();
    ids.into_iter()
        .map(|p| {
            (
                p,
                serde_json::to_string(&engine.snapshot(p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn restart_case() -> impl Strategy<Value = (EngineConfig, Vec<Event>, prop::sample::Index)> {
    (
        window_strategy(),
        0..15i64,
        prop_oneof![Just(0i64), 1..40i64],
        prop_oneof![Just(WatermarkScope::Key), Just(WatermarkScope::Partition)],
        prop_oneof![Just(None), (1..80i64).prop_map(Some)],
        1..=3u32,
    )
        .prop_flat_map(|(window, delay, lateness, scope, idle, partitions)| {
            let config = EngineConfig {
                window,
                out_of_orderness_ms: delay,
                allowed_lateness_ms: lateness,
                scope,
                key_idle_timeout_ms: idle,
                partition_idle_timeout: None,
            };
            (
                Just(config),
                stream(300, partitions, 4, 2 * delay + 50, false),
                any::<prop::sample::Index>(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn snapshot_restore_and_replay_equals_an_uninterrupted_run(
        (config, events, split) in restart_case()
    ) {
        let split = split.index(events.len() + 1);
        let mut whole = WindowEngine::new(config.clone(), Collect).unwrap();
        let expected = feed(&mut whole, &events);

        let mut before = WindowEngine::new(config.clone(), Collect).unwrap();
        let first = feed(&mut before, &events[..split]);
        prop_assert_eq!(&first[..], &expected[..split]);

        let mut after = WindowEngine::new(config, Collect).unwrap();
        for (partition, json) in snapshots_json(&before) {
            let snapshot: PartitionSnapshot<String, Vec<u64>> = serde_json::from_str(&json).unwrap();
            after.restore(partition, snapshot).unwrap();
        }
        let rest = feed(&mut after, &events[split..]);
        prop_assert_eq!(&rest[..], &expected[split..]);
        // The state itself converges, byte for byte.
        prop_assert_eq!(snapshots_json(&after), snapshots_json(&whole));

        let (mut end_whole, mut end_after) = (Vec::new(), Vec::new());
        whole.finish(&mut end_whole);
        after.finish(&mut end_after);
        prop_assert_eq!(end_after, end_whole);
    }
}

#[test]
fn restore_refuses_a_snapshot_taken_under_other_settings() {
    let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Collect).unwrap();
    let mut out = Vec::new();
    engine.process(0, "a", 1_000, &1, &mut out);
    let snapshot = engine.snapshot(0).unwrap();
    assert_eq!(snapshot.key_count(), 1);
    assert_eq!(snapshot.max_event_time_ms(), Some(1_000));
    let other = EngineConfig {
        out_of_orderness_ms: 1,
        ..EngineConfig::default()
    };
    let mut engine = WindowEngine::<String, _>::new(other, Collect).unwrap();
    let err = engine.restore(0, snapshot).unwrap_err();
    assert_eq!(
        err.to_string(),
        "snapshot was taken with a different out_of_orderness_ms than this engine's"
    );
    assert!(
        engine.snapshot(0).is_none(),
        "a refused snapshot leaves no state behind"
    );
}

#[test]
fn restore_refuses_panes_off_the_grid() {
    let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Collect).unwrap();
    let mut out = Vec::new();
    engine.process(0, "a", 1_000, &1, &mut out);
    let json = serde_json::to_string(&engine.snapshot(0).unwrap()).unwrap();
    assert!(json.contains("[[0,[1]]]"), "{json}");
    let bad: PartitionSnapshot<String, Vec<u64>> =
        serde_json::from_str(&json.replace("[[0,[1]]]", "[[7,[1]]]")).unwrap();
    assert!(matches!(
        engine.restore(0, bad),
        Err(hr_window::RestoreError::Corrupt { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A changelog that keeps the latest record of every key `take_changes` ever reported, plus
    /// the latest meta record, holds exactly the state of a whole snapshot: whatever the points
    /// at which changes were taken, and in every scope.
    #[test]
    fn changed_keys_add_up_to_the_whole_snapshot(
        (config, events, _) in restart_case(),
        takes in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut engine = WindowEngine::<String, Collect>::new(config, Collect).unwrap();
        let mut cuts: Vec<usize> = takes.iter().map(|i| i.index(events.len() + 1)).collect();
        cuts.sort_unstable();
        let mut log: std::collections::BTreeMap<(u32, String), String> = Default::default();
        let mut metas: std::collections::BTreeMap<u32, String> = Default::default();
        let mut take = |engine: &mut WindowEngine<String, Collect>| {
            let ids: Vec<u32> = engine.partitions().collect();
            for p in ids {
                let changes = engine.take_changes(p).unwrap();
                metas.insert(p, serde_json::to_string(&changes.meta).unwrap());
                for key in changes.keys {
                    log.insert((p, key.key().clone()), serde_json::to_string(&key).unwrap());
                }
            }
        };
        let mut done = 0;
        for cut in cuts.into_iter().chain([events.len()]) {
            feed(&mut engine, &events[done..cut]);
            done = cut;
            take(&mut engine);
        }
        for (p, whole) in snapshots_json(&engine) {
            let keys = log
                .iter()
                .filter(|((q, _), _)| *q == p)
                .map(|(_, json)| serde_json::from_str(json).unwrap())
                .collect();
            let meta = serde_json::from_str(&metas[&p]).unwrap();
            let rebuilt: PartitionSnapshot<String, Vec<u64>> = PartitionSnapshot::from_parts(meta, keys);
            prop_assert_eq!(serde_json::to_string(&rebuilt).unwrap(), whole);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Silence is reported once per silence: per key, idle and resumed notices alternate,
    /// starting with idle; and a restored run reports exactly the same notices.
    #[test]
    fn each_silence_is_reported_once_and_replays_the_same((mut config, events, cut) in restart_case()) {
        config.key_idle_timeout_ms = config.key_idle_timeout_ms.or(Some(30));
        let mut whole = WindowEngine::<String, Collect>::new(config.clone(), Collect).unwrap();
        let all: Vec<Emission<String, Vec<u64>>> =
            feed(&mut whole, &events).into_iter().flat_map(|(_, out)| out).collect();
        let mut silent: std::collections::BTreeMap<(u32, String), bool> = Default::default();
        for e in &all {
            match e {
                Emission::KeyIdle { partition, key, .. } => {
                    let was = silent.insert((*partition, key.clone()), true).unwrap_or(false);
                    prop_assert!(!was, "{key} reported idle twice without a record between");
                }
                Emission::KeyResumed { partition, key, .. } => {
                    let was = silent.insert((*partition, key.clone()), false).unwrap_or(false);
                    prop_assert!(was, "{key} resumed without being idle");
                }
                Emission::Fired(_) => {}
            }
        }
        let cut = cut.index(events.len() + 1);
        let mut first = WindowEngine::<String, Collect>::new(config.clone(), Collect).unwrap();
        let mut got: Vec<Emission<String, Vec<u64>>> =
            feed(&mut first, &events[..cut]).into_iter().flat_map(|(_, out)| out).collect();
        let mut second = WindowEngine::<String, Collect>::new(config, Collect).unwrap();
        for (p, json) in snapshots_json(&first) {
            second.restore(p, serde_json::from_str(&json).unwrap()).unwrap();
        }
        got.extend(feed(&mut second, &events[cut..]).into_iter().flat_map(|(_, out)| out));
        prop_assert_eq!(got, all);
    }
}
