//! `parse_event` and `Event::write_json` on the seed's message shape, each against serde_json
//! doing the plain job (a derived struct, no validation, no time parsing) in the same run.
//!
//! `cargo bench -p hr-model --bench parse`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hr_model::{Event, parse_event};
use serde::{Deserialize, Serialize};

/// What the seed's consumer did: read the fields, check nothing.
#[derive(Deserialize, Serialize)]
#[allow(dead_code)] // Fields are read only by the deserialiser.
struct PlainEvent {
    patient_id: String,
    timestamp: String,
    heart_rate_bpm: i64,
}

const BATCH: usize = 1024;

/// Seed-shaped events with varied ids, times and rates, so branch predictors do not learn one
/// message; the timestamp has Python's six fractional digits and `+00:00`.
fn events() -> Vec<Event> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start_ms = 1_763_536_523_123;
    (0..BATCH)
        .map(|i| Event {
            patient_id: format!("p{:03}", next() % 1000),
            event_time_ms: start_ms + i as i64 * 37 + (next() % 1000) as i64,
            heart_rate_bpm: 40 + (next() % 120) as u16,
        })
        .collect()
}

fn messages(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            // Microsecond digits as the seed's producer writes them, not always `000`.
            let json = e.to_json();
            let micros = format!("{:03}", e.heart_rate_bpm);
            json.replacen("000+00:00", &format!("{micros}+00:00"), 1)
                .into_bytes()
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let events = events();
    let msgs = messages(&events);
    assert!(msgs.iter().all(|m| parse_event(m).is_ok()));
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("serde_json_plain_struct", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(serde_json::from_slice::<PlainEvent>(black_box(m)).unwrap());
            }
        })
    });
    group.bench_function("parse_event", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(parse_event(black_box(m)).unwrap());
            }
        })
    });
    // The RFC 3339 part alone, to show where the time goes.
    let stamps: Vec<String> = msgs
        .iter()
        .map(|m| serde_json::from_slice::<PlainEvent>(m).unwrap().timestamp)
        .collect();
    group.bench_function("parse_timestamp_only", |b| {
        b.iter(|| {
            for t in &stamps {
                black_box(hr_model::parse_timestamp(black_box(t)).unwrap());
            }
        })
    });
    group.finish();
}

fn write(c: &mut Criterion) {
    let events = events();
    let plain: Vec<PlainEvent> = messages(&events)
        .iter()
        .map(|m| serde_json::from_slice(m).unwrap())
        .collect();
    let mut buf = Vec::with_capacity(256);
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("serde_json_plain_struct", |b| {
        b.iter(|| {
            for e in &plain {
                buf.clear();
                serde_json::to_writer(&mut buf, black_box(e)).unwrap();
                black_box(&buf);
            }
        })
    });
    group.bench_function("write_json", |b| {
        b.iter(|| {
            for e in &events {
                buf.clear();
                black_box(e).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parse, write);
criterion_main!(benches);
