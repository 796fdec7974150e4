//! The recomputation equals the streaming job, byte for byte, on a seeded simulation without
//! late readings: the readings go through hr-pipeline's own processor (key-scoped watermarks,
//! HrStats panes, classification), and through `hr-batch recompute`'s path (JSONL file,
//! validation, Polars windows).

use hr_batch::{ReadOptions, RecomputeOptions};
use hr_model::{Alert, Event, Thresholds, Validation};
use hr_pipeline::processor::{Emitted, InputRecord, Processor, ProcessorConfig, Verdict};
use hr_window::{EngineConfig, WatermarkScope};

/// SplitMix64, so the simulation is the same on every machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Readings of `patients` monitors over 20 minutes, one a second each with jitter, around
/// baselines that switch between normal, tachycardia and bradycardia, and arrival order shuffled by less than the
/// out-of-orderness bound so that nothing is late.
fn simulate(seed: u64, patients: u32, disorder_ms: i64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let start = 1_763_536_523_123i64;
    let mut events = Vec::new();
    for p in 0..patients {
        let phase = rng.below(1000) as i64;
        let mut base = 75;
        for s in 0..1_200i64 {
            // Every five minutes a monitor may enter or leave an episode.
            if s % 300 == 0 {
                base = [42, 75, 75, 118][rng.below(4) as usize];
            }
            let bpm = base + rng.below(21) as i64 - 10;
            let t = start + s * 1_000 + phase + rng.below(900) as i64;
            events.push(Event {
                patient_id: format!("p{p:03}"),
                event_time_ms: t,
                heart_rate_bpm: bpm as u16,
            });
        }
    }
    // Arrival order: by event time plus a bounded delay, which keeps every reading on time.
    let mut arrival: Vec<(i64, Event)> = events
        .into_iter()
        .map(|e| (e.event_time_ms + rng.below(disorder_ms as u64) as i64, e))
        .collect();
    arrival.sort_by_key(|(a, _)| *a);
    arrival.into_iter().map(|(_, e)| e).collect()
}

fn stream(events: &[Event], window: hr_window::WindowSpec) -> Vec<String> {
    // hr-pipeline's own processor, as the job runs it (signal loss off: the simulation has no
    // silences, and the recomputation has no notion of them).
    let mut processor = Processor::new(ProcessorConfig {
        engine: EngineConfig {
            window,
            scope: WatermarkScope::Key,
            ..EngineConfig::new()
        },
        silence_after_ms: None,
        max_clock_skew_ms: None,
        ..ProcessorConfig::default()
    })
    .unwrap();
    processor.assign(0, None).unwrap();
    let mut out = Emitted::default();
    for (offset, e) in events.iter().enumerate() {
        let parsed = Ok(e.clone());
        let verdict = processor.process(
            InputRecord {
                partition: 0,
                offset: offset as i64,
                timestamp_ms: None,
                parsed: &parsed,
            },
            &mut out,
        );
        assert_eq!(
            verdict,
            Verdict::Windowed,
            "the simulation must have no late readings"
        );
    }
    processor.finish(&mut out);
    let mut alerts: Vec<Alert> = out.alerts.into_iter().map(|a| a.alert).collect();
    alerts.sort_by(|a, b| {
        (a.window_end, &a.patient_id, a.window_start).cmp(&(
            b.window_end,
            &b.patient_id,
            b.window_start,
        ))
    });
    alerts.iter().map(Alert::to_json).collect()
}

fn batch(events: &[Event], window: hr_batch::WindowSpec) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heart_rate_events.jsonl");
    let text: String = events.iter().map(|e| e.to_json() + "\n").collect();
    std::fs::write(&file, text).unwrap();
    let (readings, report) =
        hr_batch::read_readings(&file, &Validation::default(), ReadOptions::default()).unwrap();
    assert_eq!((report.malformed, report.rows), (0, events.len() as u64));
    let opts = RecomputeOptions {
        window,
        thresholds: Thresholds::DEFAULT,
        abnormal_only: false,
    };
    hr_batch::window_alerts(readings, &opts)
        .unwrap()
        .iter()
        .map(Alert::to_json)
        .collect()
}

#[test]
fn tumbling_recompute_equals_the_stream() {
    let events = simulate(7, 6, 4_000);
    let streamed = stream(&events, hr_window::WindowSpec::Tumbling { size_ms: 60_000 });
    let recomputed = batch(&events, hr_batch::WindowSpec::tumbling(60_000).unwrap());
    assert!(streamed.len() >= 6 * 20, "{}", streamed.len());
    assert!(streamed.iter().any(|l| l.contains("tachycardia")));
    assert!(streamed.iter().any(|l| l.contains("bradycardia")));
    assert_eq!(recomputed, streamed);
}

#[test]
fn sliding_recompute_equals_the_stream() {
    let events = simulate(11, 4, 4_000);
    let streamed = stream(
        &events,
        hr_window::WindowSpec::Sliding {
            size_ms: 60_000,
            slide_ms: 15_000,
        },
    );
    let recomputed = batch(
        &events,
        hr_batch::WindowSpec::sliding(60_000, 15_000).unwrap(),
    );
    assert!(streamed.len() >= 4 * 80, "{}", streamed.len());
    assert_eq!(recomputed, streamed);
}
