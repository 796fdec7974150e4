//! `probe`: readings produced in real time, and the latency from the reading that closes each
//! window to the window's alert becoming visible downstream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::ClientContext;
use hr_kafka::rdkafka::Offset;
use hr_kafka::rdkafka::consumer::BaseConsumer;
use hr_kafka::rdkafka::error::KafkaError;
use hr_kafka::rdkafka::message::Message;
use hr_kafka::rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use hr_kafka::rdkafka::types::RDKafkaErrorCode;

use crate::{assign_all, now_ms, read_committed_consumer};

#[derive(clap::Args)]
pub(super) struct ProbeArgs {
    /// Readings topic the job reads.
    #[arg(long)]
    topic: String,
    /// Alerts topic the job writes.
    #[arg(long)]
    alerts_topic: String,
    /// Readings per second over all patients.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Number of patients (p00000, p00001, ...).
    #[arg(long, default_value_t = 1_000)]
    patients: usize,
    /// The job's window size (tumbling), in ms.
    #[arg(long, default_value_t = 1_000)]
    size_ms: i64,
    /// The job's out-of-orderness bound (`--delay`), in ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: i64,
    /// How long to produce.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Windows closed in the first this many seconds are not counted (the job warming up).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// How long to wait for the last windows' alerts after producing stops, in ms.
    #[arg(long, default_value_t = 3_000)]
    grace_ms: u64,
    /// Also write one line per second of the run to this file (`second wall_ms acks ack_p99_ms
    /// ack_max_ms windows p50_ms p99_ms max_ms`, by when the reading was handed to the
    /// producer; windows of the warm-up included), to see when in a run a tail happened.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
}

/// When each window's closing reading was handed to the producer, keyed by (patient, window end),
/// and whether the window counts (it closed after the warm-up).
type Closes = Arc<Mutex<HashMap<(usize, i64), (Instant, bool)>>>;

/// The producer's acknowledgement times: from a reading handed to the producer to the broker's
/// answer, the part of the latency that is the broker's and not the job's; each with when the
/// reading was handed over.
#[derive(Default)]
struct Acks(Mutex<Vec<(Instant, Duration)>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_ok() {
            self.0.lock().unwrap().push((*sent, sent.elapsed()));
        }
    }
}

/// The `q` quantile of sorted `v`, in ms.
fn quantile_ms(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1e3
}

/// The largest of sorted `v`, in ms.
fn max_ms(v: &[Duration]) -> f64 {
    v.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

pub(super) fn run(kafka: &KafkaArgs, a: &ProbeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.patients > 0 && a.rate > 0 && a.size_ms > 0,
        "nothing to produce"
    );
    let closes: Closes = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    // The reader starts at the alerts topic's end before the first reading goes out.
    let consumer = read_committed_consumer(kafka)?;
    assign_all(&consumer, &a.alerts_topic, Offset::End)?;
    let reader = {
        let (closes, stop) = (closes.clone(), stop.clone());
        std::thread::spawn(move || read_alerts(&consumer, &closes, &stop))
    };

    let producer: ThreadedProducer<Acks> = kafka
        .client_config("latency")
        .set("linger.ms", "1")
        .create_with_context(Acks::default())
        .context("creating the producer")?;
    let Produced {
        started,
        sent,
        counted_closes,
        seconds: produced_s,
    } = produce(&producer, a, &closes)?;
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")?;
    std::thread::sleep(Duration::from_millis(a.grace_ms));
    stop.store(true, Ordering::Relaxed);
    let (seen, seen_other) = reader.join().expect("reader thread")?;
    let missing = closes.lock().unwrap().values().filter(|c| c.1).count();
    let mut lat: Vec<Duration> = seen.iter().filter(|s| s.2).map(|s| s.1).collect();
    lat.sort_unstable();
    let acks = std::mem::take(&mut *producer.context().0.lock().unwrap());
    if let Some(path) = &a.timeline {
        std::fs::write(path, timeline(started, &acks, &seen))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut acks: Vec<Duration> = acks.into_iter().map(|a| a.1).collect();
    acks.sort_unstable();
    println!(
        "rate={:.0}/s patients={} windows={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} missing={} uncounted={} ack_p50_ms={:.1} ack_p99_ms={:.1} ack_max_ms={:.1}",
        sent as f64 / produced_s,
        a.patients,
        lat.len(),
        quantile_ms(&lat, 0.5),
        quantile_ms(&lat, 0.99),
        max_ms(&lat),
        missing,
        seen_other,
        quantile_ms(&acks, 0.5),
        quantile_ms(&acks, 0.99),
        max_ms(&acks),
    );
    anyhow::ensure!(
        counted_closes > 0 && missing == 0,
        "{missing} of {counted_closes} closed windows got no alert within {} ms",
        a.grace_ms
    );
    Ok(())
}

/// The `--timeline` text: per second of the run (by when the reading was handed over), the
/// acknowledgements and the alert latencies of the windows closed in that second.
fn timeline(
    (started, wall_ms): (Instant, i64),
    acks: &[(Instant, Duration)],
    seen: &[(Instant, Duration, bool)],
) -> String {
    let second = |at: Instant| at.saturating_duration_since(started).as_secs() as usize;
    let last = acks
        .iter()
        .map(|a| second(a.0))
        .chain(seen.iter().map(|s| second(s.0)))
        .max();
    let mut by_second = vec![(Vec::new(), Vec::new()); last.map_or(0, |l| l + 1)];
    for &(at, d) in acks {
        by_second[second(at)].0.push(d);
    }
    for &(at, d, _) in seen {
        by_second[second(at)].1.push(d);
    }
    let mut out =
        String::from("second wall_ms acks ack_p99_ms ack_max_ms windows p50_ms p99_ms max_ms\n");
    for (i, (mut a, mut l)) in by_second.into_iter().enumerate() {
        a.sort_unstable();
        l.sort_unstable();
        out += &format!(
            "{i} {} {} {:.1} {:.1} {} {:.1} {:.1} {:.1}\n",
            wall_ms + 1000 * i as i64,
            a.len(),
            quantile_ms(&a, 0.99),
            max_ms(&a),
            l.len(),
            quantile_ms(&l, 0.5),
            quantile_ms(&l, 0.99),
            max_ms(&l),
        );
    }
    out
}

/// What [`produce`] did.
struct Produced {
    /// When producing started, and the wall clock then (epoch ms).
    started: (Instant, i64),
    /// Readings handed to the producer.
    sent: u64,
    /// Windows closed after the warm-up, each put in `closes` to wait for its alert.
    counted_closes: u64,
    /// How long producing took, in seconds.
    seconds: f64,
}

/// Produces readings at `a.rate` for `a.seconds`, round-robin over the patients; for every
/// window closed, `closes` gets when its closing reading was handed to the producer (and whether
/// it closed after the warm-up).
fn produce(
    producer: &ThreadedProducer<Acks>,
    a: &ProbeArgs,
    closes: &Closes,
) -> anyhow::Result<Produced> {
    let ids: Vec<String> = (0..a.patients).map(|i| format!("p{i:05}")).collect();
    let mut open: Vec<VecDeque<i64>> = vec![VecDeque::new(); a.patients];
    let started = Instant::now();
    let started_wall = now_ms();
    let warm_until = started + Duration::from_secs(a.warmup_seconds);
    let end = started + Duration::from_secs(a.seconds);
    let (mut sent, mut next) = (0u64, 0usize);
    let mut counted_closes = 0u64;
    while Instant::now() < end {
        let due = (started.elapsed().as_secs_f64() * a.rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let ts = now_ms();
        let at = Instant::now();
        while sent < due {
            let p = next;
            next = (next + 1) % a.patients;
            // Windows of this patient that this reading closes (watermark = ts - delay - 1 ms
            // reaches end - 1).
            let q = &mut open[p];
            while let Some(&e) = q.front() {
                if ts < e + a.delay_ms {
                    break;
                }
                q.pop_front();
                let counted = at >= warm_until;
                closes.lock().unwrap().insert((p, e), (at, counted));
                counted_closes += u64::from(counted);
            }
            let window_end = (ts.div_euclid(a.size_ms) + 1) * a.size_ms;
            if q.back() != Some(&window_end) {
                q.push_back(window_end);
            }
            let bpm = 60 + (sent % 50) as i64;
            let value = format!(
                r#"{{"patient_id":"{}","timestamp":"{}","heart_rate_bpm":{bpm}}}"#,
                ids[p],
                hr_model::format_timestamp(ts)
            );
            let mut record = BaseRecord::with_opaque_to(&a.topic, Box::new(at))
                .key(&ids[p])
                .payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e).context("producing"),
                }
            }
            sent += 1;
        }
    }
    Ok(Produced {
        started: (started, started_wall),
        sent,
        counted_closes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`read_alerts`] saw of each window in `closes`: when its closing reading was handed
/// over, its latency, whether it counts.
type Seen = Vec<(Instant, Duration, bool)>;

/// Reads alerts until `stop`; returns the latencies of the windows in `closes` (removing them)
/// and how many alerts matched no counted window (windows closed during the warm-up, or by the
/// final flush).
fn read_alerts(
    c: &BaseConsumer,
    closes: &Closes,
    stop: &AtomicBool,
) -> anyhow::Result<(Seen, u64)> {
    let mut lat = Vec::new();
    let mut other = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let m = match c.poll(Duration::from_millis(50)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => return Err(e).context("reading alerts"),
            Some(Ok(m)) => m,
        };
        let seen = Instant::now();
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).context("alert JSON")?;
        let patient = v["patient_id"]
            .as_str()
            .and_then(|s| s.strip_prefix('p'))
            .and_then(|s| s.parse::<usize>().ok());
        let end = v["window_end"].as_i64();
        let closed = match (patient, end) {
            (Some(p), Some(e)) => closes.lock().unwrap().remove(&(p, e)),
            _ => None,
        };
        match closed {
            Some((at, counted)) => {
                lat.push((at, seen.duration_since(at), counted));
                other += u64::from(!counted);
            }
            None => other += 1,
        }
    }
    Ok((lat, other))
}
