//! Where records go: Kafka, or JSON lines on any writer (stdout, a file).

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    Kafka(#[from] hr_kafka::KafkaError),
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

/// The producer settings hr-sim adds to hr-kafka's [`Sink`](hr_kafka::Sink) defaults
/// (idempotent, acks=all, lz4), before the user's `-X` properties:
///
/// - `linger.ms=20`, `batch.size=1000000`, `batch.num.messages=100000` and a 1M-message local
///   queue: big compressed batches for preloading;
/// - `partitioner=murmur2_random`: the partition of a key is the one the Java client (and so
///   Flink and Kafka Streams) would pick, so every tool agrees where a patient lives.
///
/// Idempotence means a retried batch is not written twice, so the only duplicates in the topic
/// are the ones injected on purpose (and counted).
pub fn producer_settings() -> Vec<(String, String)> {
    [
        ("linger.ms", "20"),
        ("batch.size", "1000000"),
        ("batch.num.messages", "100000"),
        ("queue.buffering.max.messages", "1000000"),
        ("partitioner", "murmur2_random"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Records to a Kafka topic, keyed by patient id, through hr-kafka's producer.
///
/// The record's Kafka timestamp is left to the producer (the send time): the event time lives in
/// the JSON, and stamping a preload's simulated past into Kafka would let retention delete it
/// on arrival.
pub struct KafkaSink {
    producer: hr_kafka::Sink,
    topic: String,
    flush_timeout: Duration,
    stop: Option<(Arc<AtomicBool>, Duration)>,
}

impl KafkaSink {
    /// A producer for `topic` at `bootstrap`: [`producer_settings`], then `properties` (which
    /// win).
    ///
    /// # Errors
    /// [`SinkError::Kafka`] if librdkafka rejects the configuration.
    pub fn new(
        bootstrap: &str,
        properties: &[(String, String)],
        topic: &str,
    ) -> Result<Self, SinkError> {
        let mut settings = producer_settings();
        settings.extend_from_slice(properties);
        Ok(Self {
            producer: hr_kafka::Sink::new(bootstrap, &settings)?,
            topic: topic.to_owned(),
            flush_timeout: Duration::from_secs(60),
            stop: None,
        })
    }

    /// How long [`finish`](Sink::finish) waits for outstanding records (60 s by default).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Once `stop` is set (Ctrl-C), [`finish`](Sink::finish) waits at most `grace`: the user
    /// asked to quit, and with the broker down the records would never be acknowledged.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>, grace: Duration) -> Self {
        self.stop = Some((stop, grace));
        self
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, key: &str, payload: &[u8]) -> Result<(), SinkError> {
        // Every payload is JSON text, malformed ones included (they are text a parser rejects).
        let json = std::str::from_utf8(payload)
            .map_err(|e| SinkError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        // A full local queue blocks here until the broker acknowledges some batches: the
        // back-pressure that paces a preload to what the broker can take.
        self.producer.send_json(&self.topic, key, json)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<Delivery, SinkError> {
        let timeout = match &self.stop {
            Some((stop, grace)) if stop.load(Ordering::Relaxed) => self.flush_timeout.min(*grace),
            _ => self.flush_timeout,
        };
        let outcome = self.producer.flush(timeout);
        let (sent, delivered) = self.producer.progress();
        let failed = sent.saturating_sub(delivered);
        let first_error = match outcome {
            Ok(()) => None,
            Err(hr_kafka::KafkaError::Delivery { first, .. }) => Some(first),
            Err(error) => Some(format!(
                "{failed} record(s) unacknowledged when the flush gave up after {:.0} s ({error})",
                timeout.as_secs_f64()
            )),
        };
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
    fn unreachable_broker_counts_every_record_as_failed() {
        // Port 1 refuses connections; a short message timeout turns that into delivery failures.
        let mut sink = KafkaSink::new(
            "127.0.0.1:1",
            &[("message.timeout.ms".into(), "300".into())],
            "t",
        )
        .unwrap()
        .with_flush_timeout(Duration::from_secs(10));
        for _ in 0..5 {
            sink.send("p001", b"{}").unwrap();
        }
        let d = sink.finish().unwrap();
        assert_eq!((d.delivered, d.failed), (0, 5));
        assert!(d.first_error.is_some());
    }

    #[test]
    fn after_a_stop_request_finish_gives_up_within_the_grace() {
        // Nothing listens on port 1, and librdkafka would keep the records for 5 minutes.
        let stop = Arc::new(AtomicBool::new(false));
        let mut sink = KafkaSink::new("127.0.0.1:1", &[], "t")
            .unwrap()
            .with_stop(Arc::clone(&stop), Duration::from_millis(500));
        for _ in 0..7 {
            sink.send("p001", b"{}").unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let d = sink.finish().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((d.delivered, d.failed), (0, 7));
        assert!(
            d.first_error
                .unwrap()
                .contains("7 record(s) unacknowledged")
        );
    }
}
