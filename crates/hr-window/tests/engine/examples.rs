//! Hand-computed scenarios, one per rule.

use std::time::{Duration, Instant};

use hr_window::{
    Emission, EngineConfig, FiredWindow, Outcome, WatermarkScope, WindowEngine, WindowSpec,
};

use crate::support::{Stats, StatsAcc};

type Engine = WindowEngine<String, Stats>;
type Out = Vec<Emission<String, StatsAcc>>;

/// 2025-11-19T07:15:00Z.
const MINUTE: i64 = 1_763_536_500_000;

fn engine(config: EngineConfig) -> Engine {
    WindowEngine::new(config, Stats).unwrap()
}

fn window(
    partition: u32,
    key: &str,
    start: i64,
    end: i64,
    readings: &[i64],
    revision: u32,
) -> Emission<String, StatsAcc> {
    let mut acc = StatsAcc {
        count: 0,
        sum: 0,
        min: i64::MAX,
        max: i64::MIN,
    };
    for &r in readings {
        acc.count += 1;
        acc.sum += r;
        acc.min = acc.min.min(r);
        acc.max = acc.max.max(r);
    }
    Emission::Fired(FiredWindow {
        partition,
        key: key.to_owned(),
        start,
        end,
        acc,
        revision,
    })
}

/// The classroom job: 1-minute tumbling windows, 5 s bounded out-of-orderness.
#[test]
fn seed_scenario_fires_at_end_plus_delay_and_not_one_ms_earlier() {
    let mut engine = engine(EngineConfig::default());
    let mut out = Out::new();
    let readings = [
        (23_123, 94),
        (41_000, 102),
        (59_999, 110),
        (58_000, 98),
        (64_999, 80),
    ];
    for (offset, bpm) in readings {
        let outcome = engine.process(0, "p001", MINUTE + offset, &bpm, &mut out);
        assert_eq!(outcome, Outcome::Aggregated);
    }
    assert!(
        out.is_empty(),
        "watermark {:?} is one ms short",
        engine.watermark(0, "p001")
    );
    assert_eq!(engine.watermark(0, "p001"), Some(MINUTE + 59_998));

    engine.process(0, "p001", MINUTE + 65_000, &85, &mut out);
    assert_eq!(
        out,
        vec![window(
            0,
            "p001",
            MINUTE,
            MINUTE + 60_000,
            &[94, 102, 110, 98],
            0
        )]
    );
    let counters = engine.counters();
    assert_eq!((counters.aggregated, counters.windows_fired), (6, 1));
    assert_eq!((counters.open_panes, counters.pending_windows), (1, 1));
}

#[test]
fn sliding_windows_start_before_the_first_event() {
    let config = EngineConfig {
        window: WindowSpec::Sliding {
            size_ms: 60_000,
            slide_ms: 20_000,
        },
        ..EngineConfig::default()
    };
    let mut engine = engine(config);
    let mut out = Out::new();
    engine.process(0, "a", 5_000, &70, &mut out);
    assert_eq!(engine.counters().open_panes, 1, "one pane, three windows");
    assert_eq!(engine.counters().pending_windows, 3);
    engine.finish(&mut out);
    assert_eq!(
        out,
        vec![
            window(0, "a", -40_000, 20_000, &[70], 0),
            window(0, "a", -20_000, 40_000, &[70], 0),
            window(0, "a", 0, 60_000, &[70], 0),
        ]
    );
}

#[test]
fn negative_timestamps_use_floor_alignment() {
    let mut engine = engine(EngineConfig::default());
    let mut out = Out::new();
    engine.process(0, "a", -60_001, &2, &mut out);
    engine.process(0, "a", -1, &1, &mut out);
    assert_eq!(out.len(), 1, "-1 - 5 001 is past [-120 s, -60 s)");
    engine.finish(&mut out);
    assert_eq!(
        out,
        vec![
            window(0, "a", -120_000, -60_000, &[2], 0),
            window(0, "a", -60_000, 0, &[1], 0),
        ]
    );
}

#[test]
fn allowed_lateness_re_fires_with_the_next_revision_then_turns_late() {
    let config = EngineConfig {
        out_of_orderness_ms: 0,
        allowed_lateness_ms: 10_000,
        ..EngineConfig::default()
    };
    let mut engine = engine(config);
    let mut out = Out::new();
    engine.process(0, "a", 1_000, &60, &mut out);
    engine.process(0, "a", 60_000, &61, &mut out);
    assert_eq!(out, vec![window(0, "a", 0, 60_000, &[60], 0)]);
    out.clear();

    // The watermark (59 999) has passed the window, but 59 999 + 10 000 is still ahead of it.
    assert_eq!(
        engine.process(0, "a", 30_000, &62, &mut out),
        Outcome::Aggregated
    );
    assert_eq!(out, vec![window(0, "a", 0, 60_000, &[60, 62], 1)]);
    out.clear();

    // Watermark 70 000 >= 59 999 + 10 000: the window is final and its state gone.
    engine.process(0, "a", 70_001, &63, &mut out);
    assert!(out.is_empty());
    assert_eq!(engine.counters().retained_windows, 0);
    assert_eq!(
        engine.process(0, "a", 30_001, &64, &mut out),
        Outcome::Late {
            watermark_ms: 70_000,
            lateness_ms: 39_999
        }
    );
    let counters = engine.counters();
    assert_eq!(
        (
            counters.windows_fired,
            counters.windows_refired,
            counters.late
        ),
        (1, 1, 1)
    );
}

/// One partition, two devices: `a` is 90 s ahead of `b`.
#[test]
fn a_lagging_key_is_late_under_a_partition_clock_but_not_under_its_own() {
    for (scope, expected) in [
        (
            WatermarkScope::Partition,
            Outcome::Late {
                watermark_ms: 94_999,
                lateness_ms: 84_999,
            },
        ),
        (WatermarkScope::Key, Outcome::Aggregated),
    ] {
        let mut engine = engine(EngineConfig {
            scope,
            ..EngineConfig::default()
        });
        let mut out = Out::new();
        engine.process(0, "a", 100_000, &70, &mut out);
        assert_eq!(
            engine.process(0, "b", 10_000, &70, &mut out),
            expected,
            "{scope:?}"
        );
    }
}

#[test]
fn a_silent_key_is_closed_and_reported_once_per_silence() {
    let config = EngineConfig {
        key_idle_timeout_ms: Some(30_000),
        ..EngineConfig::default()
    };
    let mut engine = engine(config);
    let mut out = Out::new();
    engine.process(0, "a", 1_000, &70, &mut out);
    engine.process(0, "b", 1_000, &80, &mut out);
    engine.process(0, "b", 20_000, &81, &mut out);
    assert!(out.is_empty());
    // The partition is now 39 s past the last time it heard from `a`.
    engine.process(0, "b", 40_000, &82, &mut out);
    assert_eq!(
        out,
        vec![
            window(0, "a", 0, 60_000, &[70], 0),
            Emission::KeyIdle {
                partition: 0,
                key: "a".to_owned(),
                last_event_time_ms: 1_000
            },
        ]
    );
    out.clear();

    // Closing moved a's clock past the window, so a straggler for it is late, not a second copy.
    assert_eq!(
        engine.process(0, "a", 2_000, &71, &mut out),
        Outcome::Late {
            watermark_ms: 59_999,
            lateness_ms: 57_999
        }
    );
    // Even a late record is a sign of life: the silence is over, said once.
    assert_eq!(
        out,
        vec![Emission::KeyResumed {
            partition: 0,
            key: "a".to_owned(),
            event_time_ms: 2_000
        }]
    );
    out.clear();
    // Hearing from `a` re-arms it: silent again 30 s of partition time later (heard at 40 000).
    engine.process(0, "b", 70_001, &83, &mut out);
    assert_eq!(
        out,
        vec![
            window(0, "b", 0, 60_000, &[80, 81, 82], 0),
            Emission::KeyIdle {
                partition: 0,
                key: "a".to_owned(),
                last_event_time_ms: 2_000
            },
        ]
    );
    assert_eq!(engine.counters().keys_went_idle, 2);
}

#[test]
fn an_idle_partition_stops_holding_the_global_watermark_back() {
    let config = EngineConfig {
        scope: WatermarkScope::Global,
        partition_idle_timeout: Some(Duration::from_secs(1)),
        ..EngineConfig::default()
    };
    let mut engine = engine(config);
    engine.add_partition(0);
    engine.add_partition(1);
    let mut out = Out::new();
    engine.process(0, "a", 1_000, &70, &mut out);
    engine.process(0, "a", 70_000, &71, &mut out);
    assert!(
        out.is_empty(),
        "partition 1 has sent nothing and holds the watermark"
    );
    assert_eq!(engine.watermark(0, "a"), None);

    let now = Instant::now();
    engine.on_processing_time(now, &mut out);
    engine.on_processing_time(now + Duration::from_millis(500), &mut out);
    assert!(out.is_empty(), "quiet for 0.5 s of a 1 s timeout");
    engine.on_processing_time(now + Duration::from_millis(1_500), &mut out);
    assert_eq!(out, vec![window(0, "a", 0, 60_000, &[70], 0)]);
    assert_eq!(engine.watermark(1, "a"), Some(64_999));

    // Partition 1 wakes up behind the global watermark, which never moves back.
    assert_eq!(
        engine.process(1, "b", 10_000, &72, &mut out),
        Outcome::Late {
            watermark_ms: 64_999,
            lateness_ms: 54_999
        }
    );
}

#[test]
fn end_of_input_fires_everything_and_later_events_are_late() {
    let config = EngineConfig {
        scope: WatermarkScope::Partition,
        ..EngineConfig::default()
    };
    let mut engine = engine(config);
    let mut out = Out::new();
    engine.process(1, "b", 61_000, &90, &mut out);
    engine.process(1, "a", 1_000, &70, &mut out);
    engine.process(0, "c", 1_000, &50, &mut out);
    engine.finish(&mut out);
    assert_eq!(
        out,
        vec![
            window(1, "a", 0, 60_000, &[70], 0),
            window(0, "c", 0, 60_000, &[50], 0),
            window(1, "b", 60_000, 120_000, &[90], 0),
        ]
    );
    assert_eq!(engine.counters().open_panes, 0);
    assert_eq!(
        engine.process(2, "d", 5_000, &60, &mut out),
        Outcome::Late {
            watermark_ms: i64::MAX,
            lateness_ms: i64::MAX - 5_000
        }
    );
}

#[test]
fn a_silenced_partition_closes_its_keys_windows_and_resumes_each_key_on_its_next_record() {
    let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Stats).unwrap();
    let mut out = Vec::new();
    engine.process(0, "a", 1_000, &70, &mut out);
    engine.process(0, "b", 2_000, &80, &mut out);
    engine.process(1, "c", 2_000, &90, &mut out);
    assert!(out.is_empty());
    engine.silence_partition(0, &mut out);
    assert_eq!(
        out,
        vec![
            window(0, "a", 0, 60_000, &[70], 0),
            window(0, "b", 0, 60_000, &[80], 0),
            Emission::KeyIdle {
                partition: 0,
                key: "a".to_owned(),
                last_event_time_ms: 1_000
            },
            Emission::KeyIdle {
                partition: 0,
                key: "b".to_owned(),
                last_event_time_ms: 2_000
            },
        ]
    );
    out.clear();
    engine.silence_partition(0, &mut out);
    assert!(out.is_empty(), "reported once per silence");
    engine.process(0, "a", 61_000, &71, &mut out);
    assert_eq!(
        out,
        vec![Emission::KeyResumed {
            partition: 0,
            key: "a".to_owned(),
            event_time_ms: 61_000
        }]
    );
}

#[test]
fn partition_clocks_for_metrics_follow_the_newest_event_and_the_scope() {
    let key_scope = EngineConfig::default();
    let mut keyed = engine(key_scope.clone());
    let mut out = Out::new();
    keyed.add_partition(1);
    assert_eq!(keyed.max_event_time(1), None);
    assert_eq!(keyed.partition_watermark(1), None);
    assert_eq!(keyed.max_event_time(7), None, "a partition not owned");
    keyed.process(1, "fast", MINUTE + 30_000, &80, &mut out);
    keyed.process(1, "slow", MINUTE + 10_000, &80, &mut out);
    // The newest event sets the partition's clock; the slow key keeps its own, behind it.
    assert_eq!(keyed.max_event_time(1), Some(MINUTE + 30_000));
    assert_eq!(keyed.partition_watermark(1), Some(MINUTE + 24_999));
    assert_eq!(keyed.watermark(1, "slow"), Some(MINUTE + 4_999));
    keyed.finish(&mut out);
    assert_eq!(keyed.partition_watermark(1), Some(i64::MAX));

    // Global scope: the minimum over partitions, so an empty partition holds it back.
    let mut global = engine(EngineConfig {
        scope: WatermarkScope::Global,
        ..key_scope
    });
    global.add_partition(0);
    global.add_partition(1);
    global.process(0, "a", MINUTE + 30_000, &80, &mut out);
    assert_eq!(global.max_event_time(0), Some(MINUTE + 30_000));
    assert_eq!(global.partition_watermark(0), None);
    global.process(1, "b", MINUTE + 20_000, &80, &mut out);
    assert_eq!(global.partition_watermark(0), Some(MINUTE + 14_999));
    assert_eq!(global.partition_watermark(1), Some(MINUTE + 14_999));
}
