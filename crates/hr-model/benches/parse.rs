//! `parse_event` and `Event::write_json` on the seed's message shape, each against serde_json
//! doing the plain job (a derived struct, no validation, no time parsing) in the same run.
//! Two parts of `parse_event` are also measured alone, to show where its time goes: the UTF-8
//! check with JSON decoding into borrowed strings (`serde_json_borrowed_struct`), and the
//! RFC 3339 conversion (`parse_timestamp_only`).
//!
//! `cargo bench -p hr-model --bench parse`
//!
//! Time is the benchmark thread's CPU time, not wall time: on a machine shared with other
//! builds, being descheduled would otherwise count as parsing, and by a different amount for
//! the baseline and the contender. Set `HR_BENCH_WALL_TIME=1` for criterion's usual wall time.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
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

/// The JSON decoding alone of `parse_event`'s valid path: strings borrowed, no checks, no time
/// parsing. With `parse_timestamp_only` it shows where `parse_event`'s time goes.
#[derive(Deserialize)]
#[allow(dead_code)] // Fields are read only by the deserialiser.
struct BorrowedEvent<'a> {
    #[serde(borrow)]
    patient_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
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

fn parse<M: Measurement>(c: &mut Criterion<M>) {
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
    // The parts alone, to show where the time goes: UTF-8 check and JSON decoding, then the
    // RFC 3339 conversion.
    group.bench_function("serde_json_borrowed_struct", |b| {
        b.iter(|| {
            for m in &msgs {
                let text = std::str::from_utf8(black_box(m)).unwrap();
                black_box(serde_json::from_str::<BorrowedEvent>(text).unwrap());
            }
        })
    });
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

fn write<M: Measurement>(c: &mut Criterion<M>) {
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

fn main() {
    if std::env::var_os("HR_BENCH_WALL_TIME").is_some() {
        let mut c = Criterion::default().configure_from_args();
        parse(&mut c);
        write(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        parse(&mut c);
        write(&mut c);
        c.final_summary();
    }
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and this clock id exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now() - start
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Formats CPU nanoseconds like criterion formats wall-clock ones.
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iter = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n,
            _ => unreachable!("these benches count events"),
        } as f64;
        let (divisor, unit) = match per_iter * 1e9 / typical_ns {
            r if r < 1e3 => (1.0, " elem/s"),
            r if r < 1e6 => (1e3, "Kelem/s"),
            r if r < 1e9 => (1e6, "Melem/s"),
            _ => (1e9, "Gelem/s"),
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_iter * 1e9 / *v / divisor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
