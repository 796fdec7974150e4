//! `dump`: every committed record of a topic as JSON lines, waiting for transactions still open
//! on it to end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::Offset;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::error::KafkaError;
use hr_kafka::rdkafka::message::{Headers, Message};

use crate::{assign_all, read_committed_consumer};

pub(super) fn run(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<()> {
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
