//! Where records go: Kafka, or JSON lines on any writer (stdout, a file).

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hr_kafka::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use hr_kafka::rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use hr_kafka::rdkafka::{ClientConfig, ClientContext};
use thiserror::Error;

/// A record destination.
pub trait Sink {
    /// Sends one record. May block briefly when the destination pushes back.
    ///
    /// # Errors
    /// A [`SinkError`] if the record cannot be handed over at all (not for a delivery that fails
    /// later; [`finish`](Self::finish) counts those).
    fn send(&mut self, key: &str, payload: &[u8]) -> Result<(), SinkError>;

    /// Called while a real-time run waits for the next record: a chance to flush or serve
    /// callbacks so output does not sit in buffers.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes everything and reports what was delivered.
    ///
    /// # Errors
    /// A [`SinkError`] if flushing fails outright.
    fn finish(&mut self) -> Result<Delivery, SinkError>;
}

/// What a sink delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records acknowledged (by the broker, or written).
    pub delivered: u64,
    /// Records that failed or were still unacknowledged when flushing gave up.
    pub failed: u64,
    /// The first failure's description.
    pub first_error: Option<String>,
}

/// A sink failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing JSON lines failed.
    #[error("writing records failed")]
    Io(#[from] io::Error),
    /// The Kafka producer refused a record or could not be created.
    #[error("Kafka producer error")]
    Kafka(#[from] KafkaError),
}

/// JSON lines: one record per line, keys dropped (each payload carries its `patient_id`).
#[derive(Debug)]
pub struct JsonLinesSink<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> JsonLinesSink<W> {
    /// Writes to `out`; wrap it in a `BufWriter` unless it buffers already.
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// The writer, for tests that write into memory.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for JsonLinesSink<W> {
    fn send(&mut self, _key: &str, payload: &[u8]) -> Result<(), SinkError> {
        self.out.write_all(payload)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        self.out.flush()?;
        Ok(Delivery {
            delivered: self.written,
            ..Delivery::default()
        })
    }
}

/// The producer settings hr-sim uses unless `overrides` says otherwise, then `overrides`.
///
/// - `enable.idempotence=true`: a retried batch is not written twice, so the only duplicates in
///   the topic are the ones injected on purpose (and counted);
/// - `delivery.report.only.error=true`: only failures come back as delivery reports (a success
///   is a record flushed without one), which spares the producer a callback per record;
/// - `compression.type=lz4`, `linger.ms=20`, `batch.size=1000000`, `batch.num.messages=100000`
///   and a 1M-message local queue: big compressed batches for preloading;
/// - `partitioner=murmur2_random`: the partition of a key is the one the Java client (and so
///   Flink and Kafka Streams) would pick, so every tool agrees where a patient lives.
///
/// # Example
/// ```
/// let cfg = hr_sim::producer_config("localhost:9092", &[("linger.ms".into(), "0".into())]);
/// assert_eq!(cfg.get("compression.type"), Some("lz4"));
/// assert_eq!(cfg.get("linger.ms"), Some("0"));
/// ```
pub fn producer_config(bootstrap: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut settings: Vec<(String, String)> = [
        ("enable.idempotence", "true"),
        ("delivery.report.only.error", "true"),
        ("compression.type", "lz4"),
        ("linger.ms", "20"),
        ("batch.size", "1000000"),
        ("batch.num.messages", "100000"),
        ("queue.buffering.max.messages", "1000000"),
        ("partitioner", "murmur2_random"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    settings.extend_from_slice(overrides);
    hr_kafka::client_config(bootstrap, &settings)
}

/// Counts delivery reports; the producer calls it from `poll`.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(%error, "Delivery failed.");
                    *self.first_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(error.to_string());
                }
            }
        }
    }
}

/// Serve delivery reports every this many sends: often enough that the local queue drains,
/// rarely enough that polling costs nothing per record.
const POLL_EVERY: u32 = 1024;

/// Records to a Kafka topic, keyed by patient id, through a librdkafka producer.
///
/// The record's Kafka timestamp is left to the producer (the send time): the event time lives in
/// the JSON, and stamping a preload's simulated past into Kafka would let retention delete it
/// on arrival.
pub struct KafkaSink {
    producer: BaseProducer<Counting>,
    topic: String,
    sent: u64,
    unpolled: u32,
    flush_timeout: Duration,
}

impl KafkaSink {
    /// A producer for `topic` built from `config` (see [`producer_config`]).
    ///
    /// # Errors
    /// [`SinkError::Kafka`] if librdkafka rejects the configuration.
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self, SinkError> {
        let producer = config.create_with_context(Counting::default())?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            sent: 0,
            unpolled: 0,
            flush_timeout: Duration::from_secs(60),
        })
    }

    /// How long [`finish`](Sink::finish) waits for outstanding records (60 s by default).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, key: &str, payload: &[u8]) -> Result<(), SinkError> {
        loop {
            let record = BaseRecord::to(&self.topic).key(key).payload(payload);
            match self.producer.send(record) {
                Ok(()) => break,
                // The local queue is full: wait for the broker to acknowledge some batches. This
                // is the back-pressure that paces a preload to what the broker can take.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        self.sent += 1;
        self.unpolled += 1;
        if self.unpolled >= POLL_EVERY {
            self.producer.poll(Duration::ZERO);
            self.unpolled = 0;
        }
        Ok(())
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        self.producer.poll(Duration::ZERO);
        self.unpolled = 0;
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        let unflushed = match self.producer.flush(self.flush_timeout) {
            Ok(()) => 0,
            Err(error) => {
                tracing::error!(%error, "Flush gave up with records outstanding.");
                u64::try_from(self.producer.in_flight_count()).unwrap_or(0)
            }
        };
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed) + unflushed;
        let mut first_error = ctx
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if first_error.is_none() && unflushed > 0 {
            first_error = Some(format!(
                "{unflushed} records unacknowledged at flush timeout"
            ));
        }
        // A flush returns once every record has been acknowledged or reported as failed, so
        // with error-only reports the rest were delivered; with full reports, they were counted.
        let delivered = ctx
            .delivered
            .load(Ordering::Relaxed)
            .max(self.sent.saturating_sub(failed));
        Ok(Delivery {
            delivered,
            failed,
            first_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_one_record_per_line() {
        let mut sink = JsonLinesSink::new(Vec::new());
        sink.send("p001", br#"{"a":1}"#).unwrap();
        sink.send("p002", br#"{"b":2}"#).unwrap();
        let d = sink.finish().unwrap();
        assert_eq!(d.delivered, 2);
        assert_eq!(sink.into_inner(), b"{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn overrides_win_over_defaults() {
        let cfg = producer_config("b:9092", &[("compression.type".into(), "zstd".into())]);
        assert_eq!(cfg.get("compression.type"), Some("zstd"));
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn unreachable_broker_counts_every_record_as_failed() {
        // Port 1 refuses connections; a short message timeout turns that into delivery failures.
        let cfg = producer_config(
            "127.0.0.1:1",
            &[("message.timeout.ms".into(), "300".into())],
        );
        let mut sink = KafkaSink::new(&cfg, "t")
            .unwrap()
            .with_flush_timeout(Duration::from_secs(10));
        for _ in 0..5 {
            sink.send("p001", b"{}").unwrap();
        }
        let d = sink.finish().unwrap();
        assert_eq!((d.delivered, d.failed), (0, 5));
        assert!(d.first_error.is_some());
    }
}
