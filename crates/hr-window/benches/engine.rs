//! Throughput and state size of the window engine: 10 000 keys over 3 partitions, one reading per
//! key per second, arrival jitter up to 3 s (inside the 5 s delay) and 0.1 % of readings held back
//! 10 to 30 s (mostly late). Each iteration feeds 2 M events to a fresh engine and ends the input.
//!
//! The windows fire by key-scoped watermarks (the default) unless a name says otherwise.
//!
//! `baseline/hashmap` does the least any keyed aggregation must (one hash lookup and one add per
//! event) so the engine's cost reads as a ratio to it. Before the timings, the state held per open
//! key-window is measured with a counting allocator and printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group};
use hr_window::{Aggregator, EngineConfig, WatermarkScope, WindowEngine, WindowSpec};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// avg/min/max/count of heart rates, as hr-pipeline aggregates them.
struct HeartRate;

#[derive(Clone, Copy)]
struct Acc {
    count: u32,
    sum: u32,
    min: u16,
    max: u16,
}

impl Aggregator for HeartRate {
    type Input = u16;
    type Acc = Acc;
    fn create(&self) -> Acc {
        Acc {
            count: 0,
            sum: 0,
            min: u16::MAX,
            max: 0,
        }
    }
    fn add(&self, acc: &mut Acc, bpm: &u16) {
        acc.count += 1;
        acc.sum += u32::from(*bpm);
        acc.min = acc.min.min(*bpm);
        acc.max = acc.max.max(*bpm);
    }
    fn merge(&self, acc: &mut Acc, other: &Acc) {
        acc.count += other.count;
        acc.sum += other.sum;
        acc.min = acc.min.min(other.min);
        acc.max = acc.max.max(other.max);
    }
}

const KEYS: u64 = 10_000;
const EVENTS: usize = 2_000_000;

struct Event {
    partition: u32,
    key: u64,
    name: String,
    t: i64,
    bpm: u16,
}

/// SplitMix64: deterministic inputs without a dependency.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn events() -> Vec<Event> {
    let mut rng = 42;
    let phase: Vec<i64> = (0..KEYS).map(|_| (next(&mut rng) % 1_000) as i64).collect();
    let mut events = Vec::with_capacity(EVENTS);
    let mut second = 0i64;
    while events.len() < EVENTS {
        for key in 0..KEYS {
            let r = next(&mut rng);
            let jitter = if r.is_multiple_of(1_000) {
                10_000 + (r >> 20) as i64 % 20_000
            } else {
                (r >> 20) as i64 % 3_000
            };
            events.push(Event {
                partition: (key % 3) as u32,
                key,
                name: format!("patient-{key:05}"),
                t: 1_763_536_500_000 + second * 1_000 + phase[key as usize] - jitter,
                bpm: 50 + (r >> 40) as u16 % 100,
            });
        }
        second += 1;
    }
    events.truncate(EVENTS);
    events
}

fn config(window: WindowSpec) -> EngineConfig {
    EngineConfig {
        window,
        ..EngineConfig::default()
    }
}

fn scoped(window: WindowSpec, scope: WatermarkScope) -> EngineConfig {
    EngineConfig {
        scope,
        ..config(window)
    }
}

const TUMBLING: WindowSpec = WindowSpec::Tumbling { size_ms: 60_000 };
const SLIDING: WindowSpec = WindowSpec::Sliding {
    size_ms: 60_000,
    slide_ms: 10_000,
};

fn run_u64(window: WindowSpec, events: &[Event]) -> usize {
    run_u64_with(config(window), events)
}

fn run_u64_with(config: EngineConfig, events: &[Event]) -> usize {
    let mut engine = WindowEngine::<u64, _>::new(config, HeartRate).unwrap();
    let mut out = Vec::new();
    let mut fired = 0;
    for e in events {
        engine.process(e.partition, &e.key, e.t, &e.bpm, &mut out);
        fired += out.len();
        out.clear();
    }
    engine.finish(&mut out);
    fired + out.len()
}

fn run_str(window: WindowSpec, events: &[Event]) -> usize {
    let mut engine = WindowEngine::<String, _>::new(config(window), HeartRate).unwrap();
    let mut out = Vec::new();
    let mut fired = 0;
    for e in events {
        engine.process(e.partition, e.name.as_str(), e.t, &e.bpm, &mut out);
        fired += out.len();
        out.clear();
    }
    engine.finish(&mut out);
    fired + out.len()
}

fn baseline(events: &[Event]) -> usize {
    let mut map: HashMap<u64, Acc> = HashMap::new();
    for e in events {
        let acc = map.entry(e.key).or_insert_with(|| HeartRate.create());
        HeartRate.add(acc, &e.bpm);
    }
    map.len()
}

/// Live heap bytes of an engine holding every key's first windows open, per open pane and per
/// pending key-window.
fn report_state_size(events: &[Event]) {
    for (name, window) in [
        ("tumbling 60 s", TUMBLING),
        ("sliding 60 s / 10 s", SLIDING),
    ] {
        // 50 s of readings: each key has its first windows open and nothing has fired yet.
        let prefix = &events[..50 * KEYS as usize];
        let before = LIVE.load(Ordering::Relaxed);
        let mut engine = WindowEngine::<u64, _>::new(config(window), HeartRate).unwrap();
        let mut out = Vec::new();
        for e in prefix {
            engine.process(e.partition, &e.key, e.t, &e.bpm, &mut out);
        }
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let counters = engine.counters();
        println!(
            "state {name}: {bytes} bytes for {} keys, {} panes, {} pending key-windows: \
             {:.0} bytes per pane, {:.0} bytes per pending key-window, {:.0} bytes per key",
            counters.keys,
            counters.open_panes,
            counters.pending_windows,
            bytes as f64 / counters.open_panes as f64,
            bytes as f64 / counters.pending_windows as f64,
            bytes as f64 / counters.keys as f64,
        );
        black_box(engine);
    }
}

fn benches(c: &mut Criterion) {
    let events = events();
    report_state_size(&events);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("baseline/hashmap", |b| {
        b.iter(|| baseline(black_box(&events)))
    });
    group.bench_function("tumbling_60s/u64", |b| {
        b.iter(|| run_u64(TUMBLING, black_box(&events)))
    });
    group.bench_function("tumbling_60s/str", |b| {
        b.iter(|| run_str(TUMBLING, black_box(&events)))
    });
    group.bench_function("sliding_60s_10s/u64", |b| {
        b.iter(|| run_u64(SLIDING, black_box(&events)))
    });
    group.bench_function("sliding_60s_10s/str", |b| {
        b.iter(|| run_str(SLIDING, black_box(&events)))
    });
    // The default above is key scope; the other two fire from per-partition timer queues.
    group.bench_function("tumbling_60s/u64/partition_scope", |b| {
        let config = scoped(TUMBLING, WatermarkScope::Partition);
        b.iter(|| run_u64_with(config.clone(), black_box(&events)))
    });
    group.bench_function("tumbling_60s/u64/global_scope", |b| {
        let config = scoped(TUMBLING, WatermarkScope::Global);
        b.iter(|| run_u64_with(config.clone(), black_box(&events)))
    });
    group.finish();
}

criterion_group!(engine, benches);

fn main() {
    engine();
    Criterion::default().configure_from_args().final_summary();
}
