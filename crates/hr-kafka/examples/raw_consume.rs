//! Reads a topic to its end with the pipeline's consumer settings and no processing, and prints
//! events/s: the ceiling `hr-pipeline run --bounded` is measured against.
//!
//! `cargo run --release -p hr-kafka --example raw_consume -- [--per-record] <topic> [bootstrap]
//! [key=value ...]` (the `key=value` pairs are librdkafka properties, as `-X` takes them in
//! `hr-pipeline`). It reads in batches as the pipeline does; `--per-record` polls one record at
//! a time instead (the baseline batch consume is compared with).

use std::time::{Duration, Instant};

use hr_kafka::{Fetch, Polled, Source, SourceConfig};

fn main() -> Result<(), hr_kafka::KafkaError> {
    let mut args = std::env::args().skip(1).peekable();
    let fetch = if args.next_if(|a| a == "--per-record").is_some() {
        Fetch::PerRecord
    } else {
        Fetch::Batch
    };
    let topic = args.next().unwrap_or_else(|| "heart_rate_events".into());
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let overrides = args
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let group = format!("raw-consume-{}", std::process::id());
    let source = Source::with_fetch(
        &SourceConfig {
            bootstrap,
            group,
            topic: topic.clone(),
            from_beginning: true,
            bounded: true,
            overrides,
        },
        fetch,
    )?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut started = None;
    while !source.is_done() {
        source.take_rebalances();
        if let Polled::Record(r) = source.poll(Duration::from_millis(100))? {
            started.get_or_insert_with(Instant::now);
            n += 1;
            bytes += r.payload().len() as u64;
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!(
        "{topic}: {n} records, {bytes} bytes in {secs:.2} s: {:.0} events/s ({})",
        n as f64 / secs,
        match fetch {
            Fetch::Batch => "batches",
            Fetch::PerRecord => "per record",
        }
    );
    Ok(())
}
