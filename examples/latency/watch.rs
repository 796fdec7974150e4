//! `watch`: one line per alert record as it becomes visible to a `read_committed` consumer,
//! until SIGTERM/SIGINT or `--seconds`.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::Offset;
use hr_kafka::rdkafka::error::KafkaError;
use hr_kafka::rdkafka::message::Message;

use crate::murmur2::murmur2_partition;
use crate::{assign_all, now_ms, read_committed_consumer};

#[derive(clap::Args)]
pub(super) struct WatchArgs {
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

pub(super) fn run(kafka: &KafkaArgs, a: &WatchArgs) -> anyhow::Result<()> {
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
