//! Aggregators, stream generators and output helpers shared by the tests.

use std::collections::BTreeMap;

use hr_window::{Aggregator, Emission, EngineConfig, FiredWindow, WatermarkScope, WindowSpec};
use proptest::prelude::*;

/// Collects event ids, so a window's contents can be compared exactly.
pub struct Collect;

impl Aggregator for Collect {
    type Input = u64;
    type Acc = Vec<u64>;
    fn create(&self) -> Vec<u64> {
        Vec::new()
    }
    fn add(&self, acc: &mut Vec<u64>, id: &u64) {
        acc.push(*id);
    }
    fn merge(&self, acc: &mut Vec<u64>, other: &Vec<u64>) {
        acc.extend_from_slice(other);
    }
}

/// Count, sum, min and max of readings: the shape of the heart-rate aggregate.
pub struct Stats;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsAcc {
    pub count: u64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
}

impl Aggregator for Stats {
    type Input = i64;
    type Acc = StatsAcc;
    fn create(&self) -> StatsAcc {
        StatsAcc {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
        }
    }
    fn add(&self, acc: &mut StatsAcc, x: &i64) {
        acc.count += 1;
        acc.sum += x;
        acc.min = acc.min.min(*x);
        acc.max = acc.max.max(*x);
    }
    fn merge(&self, acc: &mut StatsAcc, other: &StatsAcc) {
        acc.count += other.count;
        acc.sum += other.sum;
        acc.min = acc.min.min(other.min);
        acc.max = acc.max.max(other.max);
    }
}

/// One input record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub partition: u32,
    pub key: u32,
    pub t: i64,
    pub id: u64,
}

/// A fired window with its ids sorted: `(partition, key, start, end, revision, ids)`.
pub type Row = (u32, u32, i64, i64, u32, Vec<u64>);

pub fn rows(out: &[Emission<u32, Vec<u64>>]) -> Vec<Row> {
    out.iter()
        .filter_map(|e| match e {
            Emission::Fired(FiredWindow {
                partition,
                key,
                start,
                end,
                acc,
                revision,
            }) => {
                let mut ids = acc.clone();
                ids.sort_unstable();
                Some((*partition, *key, *start, *end, *revision, ids))
            }
            Emission::KeyIdle { .. } | Emission::KeyResumed { .. } => None,
        })
        .collect()
}

/// Every window start holding `t`, by brute force over the slide grid.
pub fn naive_windows(t: i64, size: i64, slide: i64) -> Vec<i64> {
    let lo = t.div_euclid(slide) - size / slide - 2;
    let hi = t.div_euclid(slide) + 2;
    (lo..=hi)
        .map(|k| k * slide)
        .filter(|&s| s <= t && t < s + size)
        .collect()
}

/// What a batch job computes from all events at once: each window with every event in it.
pub fn naive_batch(events: &[Event], window: WindowSpec) -> Vec<Row> {
    let (size, slide) = window.size_and_slide();
    let mut windows: BTreeMap<(u32, u32, i64), Vec<u64>> = BTreeMap::new();
    for e in events {
        for start in naive_windows(e.t, size, slide) {
            windows
                .entry((e.partition, e.key, start))
                .or_default()
                .push(e.id);
        }
    }
    windows
        .into_iter()
        .map(|((p, k, start), mut ids)| {
            ids.sort_unstable();
            (p, k, start, start + size, 0, ids)
        })
        .collect()
}

pub fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

pub fn window_strategy() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        (1..=40i64).prop_map(|size_ms| WindowSpec::Tumbling { size_ms }),
        // Sizes that the slide does not divide exercise panes smaller than the slide.
        (1..=15i64, 1..=4i64, 0..=14i64).prop_map(|(slide_ms, n, extra)| {
            WindowSpec::Sliding {
                size_ms: slide_ms * n + extra % slide_ms,
                slide_ms,
            }
        }),
    ]
}

pub fn scope_strategy() -> impl Strategy<Value = WatermarkScope> {
    prop_oneof![
        Just(WatermarkScope::Global),
        Just(WatermarkScope::Partition),
        Just(WatermarkScope::Key),
    ]
}

pub fn config(
    window: WindowSpec,
    delay: i64,
    lateness: i64,
    scope: WatermarkScope,
) -> EngineConfig {
    EngineConfig {
        window,
        out_of_orderness_ms: delay,
        allowed_lateness_ms: lateness,
        scope,
        ..EngineConfig::default()
    }
}

/// Records whose event time is drawn relative to a running maximum: per partition (`per_key =
/// false`) or per key, each key starting at its own offset. With `back` at most the delay, no
/// record falls behind that maximum by more than the delay.
pub fn stream(
    len: usize,
    partitions: u32,
    keys: u32,
    back: i64,
    per_key: bool,
) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (0..partitions, 0..keys, -back..=12i64, -300..300i64),
        0..len,
    )
    .prop_map(move |draws| {
        let mut max: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        draws
            .into_iter()
            .enumerate()
            .map(|(i, (partition, key, step, offset))| {
                let clock = if per_key {
                    (partition, key)
                } else {
                    (partition, 0)
                };
                let base = if per_key { offset } else { 0 };
                let m = max.entry(clock).or_insert(base);
                let t = *m + step;
                *m = (*m).max(t);
                Event {
                    partition,
                    key: partition * 100 + key,
                    t,
                    id: i as u64,
                }
            })
            .collect()
    })
}
