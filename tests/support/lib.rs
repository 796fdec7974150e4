//! Workspace-level helpers shared by the examples in `examples/` and the end-to-end tests in
//! `tests/`: the seed's hello-world check (a producer of 10 small JSON messages and a job that tags
//! each with `"processed_by": "hello_stream_job"`), so the example binaries and the test run the
//! same code against a real broker.
#![deny(missing_docs)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::Message;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{Value, json};

/// The tag the hello job adds to every message.
pub const PROCESSED_BY: &str = "hello_stream_job";

/// The `n`-th hello message, as the seed's producer sends it.
pub fn hello_message(n: usize) -> Value {
    json!({ "id": n, "message": format!("hello from message {n}") })
}

/// Sends `count` hello messages to `topic` on the cluster of `kafka` (a bootstrap address or
/// the full [`KafkaArgs`]) and waits until the broker has acknowledged them all.
///
/// # Errors
/// When the producer cannot be created or a message is not delivered within 30 s.
pub fn produce_hello(kafka: impl Into<KafkaArgs>, topic: &str, count: usize) -> anyhow::Result<()> {
    let mut cfg = kafka.into().client_config("hello_producer");
    cfg.set("acks", "all");
    let producer: ThreadedProducer<DefaultProducerContext> =
        cfg.create().context("creating the producer")?;
    for n in 0..count {
        let payload = hello_message(n).to_string();
        let key = n.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&payload))
            .map_err(|(e, _)| e)
            .with_context(|| format!("queueing message {n}"))?;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("waiting for the broker to acknowledge the messages")?;
    Ok(())
}

/// Adds `"processed_by": "hello_stream_job"` to one JSON object message.
///
/// # Errors
/// When the message is not a JSON object.
pub fn transform(payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(payload).context("message is not JSON")?;
    let Some(obj) = value.as_object_mut() else {
        bail!("message is not a JSON object");
    };
    obj.insert("processed_by".into(), Value::from(PROCESSED_BY));
    Ok(serde_json::to_vec(&value)?)
}

/// Reads `count` messages from the start of `input` (group `group`), transforms each and writes it
/// to `output`, then commits. Gives up after `timeout`.
///
/// # Errors
/// When fewer than `count` messages arrive in time, a message cannot be transformed, or a write is
/// not acknowledged.
pub fn run_hello_job(
    kafka: impl Into<KafkaArgs>,
    group: &str,
    input: &str,
    output: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let kafka = kafka.into();
    let mut cfg = kafka.client_config(PROCESSED_BY);
    cfg.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().context("creating the consumer")?;
    consumer.subscribe(&[input])?;
    let mut cfg = kafka.client_config(PROCESSED_BY);
    cfg.set("acks", "all");
    let producer: ThreadedProducer<DefaultProducerContext> = cfg.create()?;
    let deadline = Instant::now() + timeout;
    let mut done = 0;
    while done < count {
        if Instant::now() > deadline {
            bail!("only {done} of {count} messages arrived on {input} within {timeout:?}");
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg?;
        let out = transform(msg.payload().unwrap_or_default())
            .with_context(|| format!("offset {} of {input}", msg.offset()))?;
        let mut record = BaseRecord::to(output).payload(&out);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        producer.send(record).map_err(|(e, _)| e)?;
        done += 1;
    }
    producer.flush(Duration::from_secs(30))?;
    consumer.commit_consumer_state(hr_kafka::rdkafka::consumer::CommitMode::Sync)?;
    Ok(done)
}

/// Flags of the two hello examples: the Kafka flags (`-b/--bootstrap`, `-X`), `--input` (alias
/// `--topic`, default `hello_input`) and `--output` (default `hello_output`); `--config FILE`
/// reads them from its `[hello]` table.
#[derive(Debug, clap::Parser)]
pub struct HelloArgs {
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic the producer writes and the job reads.
    #[arg(long, visible_alias = "topic", default_value = "hello_input")]
    pub input: String,
    /// Topic the job writes.
    #[arg(long, default_value = "hello_output")]
    pub output: String,
}

impl HelloArgs {
    /// Reads the flags (and `--config`) from the command line; exits with code 2 on bad usage.
    pub fn from_env() -> Self {
        hr_cli::parse::<Self>("hello").args
    }
}
