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
//!
//! `delete` deletes the topics and consumer groups a measurement made.

mod dump;
mod murmur2;
mod probe;
mod watch;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::{Offset, TopicPartitionList};

use probe::ProbeArgs;
use watch::WatchArgs;

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
    /// Delete topics and consumer groups a measurement made (`examples/latency.sh` does at its
    /// end); those that do not exist count as deleted.
    Delete {
        /// Topics to delete.
        topics: Vec<String>,
        /// A consumer group to delete (repeatable); it must have no members left.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = hr_cli::parse::<Args>("latency").args;
    let result = match &args.command {
        Command::Probe(p) => probe::run(&args.kafka, p),
        Command::Dump { topic } => dump::run(&args.kafka, topic),
        Command::Watch(w) => watch::run(&args.kafka, w),
        Command::Delete { topics, groups } => delete(&args.kafka, topics, groups),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latency: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn delete(kafka: &KafkaArgs, topics: &[String], groups: &[String]) -> anyhow::Result<()> {
    let config = kafka.client_config("latency");
    let timeout = Duration::from_secs(30);
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    // Topics first: a group a killed job left with a member is refused until its session ends.
    if !topics.is_empty() {
        hr_kafka::blocking::delete_topics(&config, &topics, timeout).context("deleting topics")?;
    }
    if !groups.is_empty() {
        hr_kafka::blocking::delete_groups(&config, &groups, timeout)?;
    }
    Ok(())
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
