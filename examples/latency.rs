//! End-to-end alert latency of a running `hr-pipeline`, and a `read_committed` topic dump.
//!
//! `probe` produces readings in real time (timestamps are the wall clock, paced at `--rate` over
//! `--patients` patients, key = patient id) and reads the alerts topic as a `read_committed`
//! consumer downstream of the job would. For every window it remembers when the reading that
//! closes it was handed to the producer (the patient's first reading at or past the window end
//! plus the pipeline's `--delay`: the one that moves that patient's watermark past the window),
//! and prints p50/p99/max of the time from there to the window's alert becoming visible.
//! `--size` and `--delay` must match the job's; the job must use key watermarks (its default).
//!
//! ```text
//! hr-pipeline run --input-topic lat_in --alerts-topic lat_alerts --size 1s --delay 0s &
//! cargo run --release --example latency -- probe --topic lat_in --alerts-topic lat_alerts \
//!     --rate 10000 --patients 1000 --size-ms 1000 --delay-ms 0 --seconds 30
//! ```
//!
//! `dump` prints every committed record of a topic (all partitions, from the start to their
//! ends) as one JSON line: `{"partition", "key", "value", "headers"}`, values and header values
//! as UTF-8 text (lossy). A transaction still open on a partition (an instance killed -9 leaves
//! one until the coordinator times it out) hides every record after it from a `read_committed`
//! reader, committed ones included, so a partition is done only once the reader's position
//! reaches its end offset: the dump waits for open transactions to end. `examples/chaos.sh`
//! compares runs with it.
//!
//! `watch` reads an alerts topic as a `read_committed` consumer from its end offsets at start
//! and writes one line per alert record as it becomes visible, until SIGTERM/SIGINT or
//! `--seconds`: `wall_ms alerts_partition input_partition patient_id window_end`. `wall_ms` is
//! the wall clock (epoch ms) when the record was polled. `input_partition` is the partition of
//! the readings topic the patient lives on: hr-sim keys readings with `partitioner=murmur2_random`
//! (the Java client's partitioner), while the job's producer uses librdkafka's default
//! (`consistent_random`, CRC32), so an alert's own partition is not its input partition; it is
//! computed as `(murmur2(patient_id) & 0x7fffffff) % --input-partitions` (default: the alerts
//! topic's partition count, the same as the input's when `hr-pipeline topics` created both). The
//! file is flushed at least every 100 ms. `examples/rebalance.sh` measures rebalance stalls with it.
//!
//! ```text
//! latency watch --topic lat_alerts --input-partitions 12 --out alerts.watch &
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::ClientContext;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::error::KafkaError;
use hr_kafka::rdkafka::message::{Headers, Message};
use hr_kafka::rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use hr_kafka::rdkafka::types::RDKafkaErrorCode;
use hr_kafka::rdkafka::{Offset, TopicPartitionList};

#[derive(clap::Parser)]
#[command(about = "Alert latency of a running hr-pipeline, and a read_committed topic dump.")]
struct Args {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Produce readings in real time and measure produce-to-visible alert latency.
    Probe(ProbeArgs),
    /// Print every committed record of a topic as JSON lines (waiting for transactions still
    /// open on it to end).
    Dump {
        /// The topic to read.
        topic: String,
    },
    /// Write `wall_ms alerts_partition input_partition patient_id window_end` per visible alert.
    Watch(WatchArgs),
}

#[derive(clap::Args)]
struct WatchArgs {
    /// Alerts topic to read (from its end offsets at start, read_committed).
    #[arg(long)]
    topic: String,
    /// Partitions of the readings topic (hr-sim's murmur2 partitioner); default: the alerts
    /// topic's partition count.
    #[arg(long)]
    input_partitions: Option<u32>,
    /// Stop after this many seconds (default: at SIGTERM or SIGINT only).
    #[arg(long)]
    seconds: Option<u64>,
    /// Where the lines go (default: standard output).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct ProbeArgs {
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
}

fn main() -> ExitCode {
    let args = hr_cli::parse::<Args>("latency").args;
    let result = match &args.command {
        Command::Probe(p) => probe(&args.kafka, p),
        Command::Dump { topic } => dump(&args.kafka, topic),
        Command::Watch(w) => watch(&args.kafka, w),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latency: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn read_committed_consumer(kafka: &KafkaArgs) -> anyhow::Result<BaseConsumer> {
    kafka
        .client_config("latency")
        .set("group.id", format!("latency-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "5")
        .create()
        .context("creating the consumer")
}

/// Assigns every partition of `topic` at `offset`; returns the partition ids.
fn assign_all(c: &BaseConsumer, topic: &str, offset: Offset) -> anyhow::Result<Vec<i32>> {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic}"))?;
    let t = &md.topics()[0];
    if let Some(e) = t.error() {
        anyhow::bail!("topic {topic}: {e:?}");
    }
    let mut tpl = TopicPartitionList::new();
    let ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    for &p in &ids {
        tpl.add_partition_offset(topic, p, offset)?;
    }
    c.assign(&tpl)?;
    Ok(ids)
}

fn dump(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<()> {
    let c = read_committed_consumer(kafka)?;
    let mut open: BTreeSet<i32> = assign_all(&c, topic, Offset::Beginning)?
        .into_iter()
        .collect();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    // Partitions read up to their last stable offset, waiting for it to reach their end.
    let mut held: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !open.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "reading {topic} timed out");
        let m = match c.poll(Duration::from_millis(200)) {
            None => {
                release_ended(&c, topic, &mut held, &mut open)?;
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                held.insert(p);
                release_ended(&c, topic, &mut held, &mut open)?;
                continue;
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            Some(Ok(m)) => m,
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let headers: BTreeMap<String, String> = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), text(h.value.unwrap_or_default())))
                    .collect()
            })
            .unwrap_or_default();
        let line = serde_json::json!({
            "partition": m.partition(),
            "key": m.key().map(text),
            "value": m.payload().map(text),
            "headers": headers,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Closes the partitions in `held` whose position reached their end offset: no transaction is
/// open on them any more, so everything committed on them has been read.
fn release_ended(
    c: &BaseConsumer,
    topic: &str,
    held: &mut BTreeSet<i32>,
    open: &mut BTreeSet<i32>,
) -> anyhow::Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    let positions = c.position().context("reading the consumer's positions")?;
    for p in held.clone() {
        let (start, end) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("reading the end offset of {topic} [{p}]"))?;
        let at = match positions.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => start,
        };
        if at >= end {
            held.remove(&p);
            open.remove(&p);
        }
    }
    Ok(())
}

/// When each window's closing reading was handed to the producer, keyed by (patient, window end).
type Closes = Arc<Mutex<HashMap<(usize, i64), Instant>>>;

/// The producer's acknowledgement times: from a reading handed to the producer to the broker's
/// answer, the part of the latency that is the broker's and not the job's.
#[derive(Default)]
struct Acks(Mutex<Vec<Duration>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_ok() {
            self.0.lock().unwrap().push(sent.elapsed());
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

fn probe(kafka: &KafkaArgs, a: &ProbeArgs) -> anyhow::Result<()> {
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
    let ids: Vec<String> = (0..a.patients).map(|i| format!("p{i:05}")).collect();
    let mut open: Vec<VecDeque<i64>> = vec![VecDeque::new(); a.patients];
    let started = Instant::now();
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
                if at >= warm_until {
                    closes.lock().unwrap().insert((p, e), at);
                    counted_closes += 1;
                }
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
    let produced_s = started.elapsed().as_secs_f64();
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")?;
    std::thread::sleep(Duration::from_millis(a.grace_ms));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, seen_other) = reader.join().expect("reader thread")?;
    let missing = closes.lock().unwrap().len();
    lat.sort_unstable();
    let mut acks = std::mem::take(&mut *producer.context().0.lock().unwrap());
    acks.sort_unstable();
    println!(
        "rate={:.0}/s patients={} windows={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} missing={} uncounted={} ack_p50_ms={:.1} ack_p99_ms={:.1} ack_max_ms={:.1}",
        sent as f64 / produced_s,
        a.patients,
        lat.len(),
        quantile_ms(&lat, 0.5),
        quantile_ms(&lat, 0.99),
        lat.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        missing,
        seen_other,
        quantile_ms(&acks, 0.5),
        quantile_ms(&acks, 0.99),
        acks.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    );
    anyhow::ensure!(
        counted_closes > 0 && missing == 0,
        "{missing} of {counted_closes} closed windows got no alert within {} ms",
        a.grace_ms
    );
    Ok(())
}

/// Reads alerts until `stop`; returns the latencies of the windows in `closes` (removing them)
/// and how many alerts matched none (windows closed during the warm-up, or by the final flush).
fn read_alerts(
    c: &BaseConsumer,
    closes: &Closes,
    stop: &AtomicBool,
) -> anyhow::Result<(Vec<Duration>, u64)> {
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
            Some(at) => lat.push(seen.duration_since(at)),
            None => other += 1,
        }
    }
    Ok((lat, other))
}

/// Set by SIGTERM and SIGINT while `watch` runs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: i32) {
    STOP.store(true, Ordering::Relaxed);
}

/// Routes SIGTERM and SIGINT to [`STOP`] (Linux signal numbers; std has no signal API).
fn catch_stop_signals() {
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    for s in [SIGINT, SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal(s, on_stop_signal);
        }
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's `rd_murmur2`).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition `murmur2_random` (and the Java client's default partitioner) picks for `key`.
fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

fn watch(kafka: &KafkaArgs, a: &WatchArgs) -> anyhow::Result<()> {
    catch_stop_signals();
    let c = read_committed_consumer(kafka)?;
    let ids = assign_all(&c, &a.topic, Offset::End)?;
    let input_partitions = a.input_partitions.unwrap_or(ids.len() as u32);
    anyhow::ensure!(input_partitions > 0, "--input-partitions must be positive");
    let sink: Box<dyn Write> = match &a.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
    let started = Instant::now();
    let deadline = a.seconds.map(|s| started + Duration::from_secs(s));
    let mut flushed = Instant::now();
    let (mut count, mut unparsed) = (0u64, 0u64);
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    while !STOP.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        let polled = c.poll(Duration::from_millis(50));
        let m = match polled {
            None | Some(Err(KafkaError::PartitionEOF(_))) => None,
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {}", a.topic)),
            Some(Ok(m)) => Some(m),
        };
        if let Some(m) = &m {
            let wall = now_ms();
            let key = m.key().unwrap_or_default();
            let window_end =
                serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
                    .ok()
                    .and_then(|v| v["window_end"].as_i64());
            let patient = String::from_utf8_lossy(key);
            match window_end {
                Some(end) => writeln!(
                    out,
                    "{wall} {} {} {patient} {end}",
                    m.partition(),
                    murmur2_partition(key, input_partitions)
                )?,
                None => unparsed += 1,
            }
            count += 1;
            seen.insert(m.partition());
        }
        if m.is_none() || flushed.elapsed() >= Duration::from_millis(100) {
            out.flush()?;
            flushed = Instant::now();
        }
    }
    out.flush()?;
    eprintln!(
        "latency watch: {count} alerts from {} of {} partitions of {} in {:.1} s{}",
        seen.len(),
        ids.len(),
        a.topic,
        started.elapsed().as_secs_f64(),
        if unparsed > 0 {
            format!(" ({unparsed} without a window_end, not written)")
        } else {
            String::new()
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own test vectors (`UtilsTest.testMurmur2`).
    #[test]
    fn murmur2_matches_kafka() {
        for (key, want) in [
            ("21", -973_932_308_i32),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, want, "{key}");
        }
    }
}
