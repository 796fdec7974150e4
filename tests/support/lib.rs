//! Workspace-level helpers shared by the examples in `examples/` and the end-to-end tests in
//! `tests/`: the seed's hello-world check (a producer of 10 small JSON messages and a job that tags
//! each with `"processed_by": "hello_stream_job"`), so the example binaries and the test run the
//! same code against a real broker.
#![deny(missing_docs)]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hr_kafka::client_config;
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

/// Sends `count` hello messages to `topic` and waits until the broker has acknowledged them all.
///
/// # Errors
/// When the producer cannot be created or a message is not delivered within 30 s.
pub fn produce_hello(bootstrap: &str, topic: &str, count: usize) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(bootstrap, &[("acks".into(), "all".into())])
            .create()
            .context("creating the producer")?;
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
    bootstrap: &str,
    group: &str,
    input: &str,
    output: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = client_config(
        bootstrap,
        &[
            ("group.id".into(), group.into()),
            ("auto.offset.reset".into(), "earliest".into()),
            ("enable.auto.commit".into(), "false".into()),
        ],
    )
    .create()
    .context("creating the consumer")?;
    consumer.subscribe(&[input])?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(bootstrap, &[("acks".into(), "all".into())]).create()?;
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

/// Flags of the two hello examples: `--bootstrap` (default `$HR_BOOTSTRAP_SERVERS` or
/// `localhost:9092`), `--input`/`--topic` (default `hello_input`), `--output` (default `hello_output`).
pub struct HelloArgs {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Topic the producer writes and the job reads.
    pub input: String,
    /// Topic the job writes.
    pub output: String,
}

impl HelloArgs {
    /// Reads the flags from the command line; exits with code 2 on an unknown flag.
    pub fn from_env() -> Self {
        let mut args = Self {
            bootstrap: std::env::var("HR_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|_| "localhost:9092".into()),
            input: "hello_input".into(),
            output: "hello_output".into(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let Some(value) = it.next() else {
                eprintln!("{flag} needs a value");
                std::process::exit(2)
            };
            match flag.as_str() {
                "--bootstrap" => args.bootstrap = value,
                "--topic" | "--input" => args.input = value,
                "--output" => args.output = value,
                _ => {
                    eprintln!("unknown flag {flag}; use --bootstrap, --input, --output");
                    std::process::exit(2)
                }
            }
        }
        args
    }
}
