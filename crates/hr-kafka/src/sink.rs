//! Sinks: one idempotent producer for alerts, dead letters and late records, and a JSONL file.
//!
//! Every send is asynchronous; [`Sink::flush`] waits until librdkafka has an answer for each
//! and reports how many failed, so the caller commits offsets only after its output is durable.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

use crate::{KafkaError, client_config};

/// Counts delivery reports so a flush can say whether everything arrived.
#[derive(Default)]
pub struct DeliveryLog {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| format!("{}: {e}", m.topic()));
            }
        }
    }
}

/// Where a dead or late record came from and why it was set aside.
#[derive(Debug, Clone, Copy)]
pub struct Diversion<'a> {
    /// Stable error code, e.g. `naive_timestamp` or `late`.
    pub code: &'a str,
    /// Human-readable reason.
    pub message: &'a str,
    /// Source topic.
    pub source_topic: &'a str,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// For late records: the watermark at arrival and how late the record was.
    pub lateness: Option<(i64, i64)>,
}

/// The producer shared by every output topic.
pub struct Sink {
    producer: ThreadedProducer<DeliveryLog>,
    sent: u64,
}

impl Sink {
    /// An idempotent producer (acks=all, lz4, linger.ms=5) with `overrides` applied last.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka rejects the configuration.
    pub fn new(bootstrap: &str, overrides: &[(String, String)]) -> Result<Self, KafkaError> {
        let mut cc = client_config(bootstrap, &[]);
        cc.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for (k, v) in overrides {
            cc.set(k, v);
        }
        let producer = cc.create_with_context(DeliveryLog::default())?;
        Ok(Self { producer, sent: 0 })
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    fn send(&mut self, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Queues an alert: key `patient_id`, value the alert's JSON.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the record cannot be queued.
    pub fn send_alert(
        &mut self,
        topic: &str,
        patient_id: &str,
        json: &str,
    ) -> Result<(), KafkaError> {
        self.send(
            BaseRecord::to(topic)
                .key(patient_id.as_bytes())
                .payload(json.as_bytes()),
        )
    }

    /// Queues a set-aside record: the original `key` and `payload`, and headers saying why.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the record cannot be queued.
    pub fn send_diverted(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        why: &Diversion<'_>,
    ) -> Result<(), KafkaError> {
        let partition = why.source_partition.to_string();
        let offset = why.source_offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: "hr.error.code",
                value: Some(why.code),
            })
            .insert(Header {
                key: "hr.error.message",
                value: Some(why.message),
            })
            .insert(Header {
                key: "hr.source.topic",
                value: Some(why.source_topic),
            })
            .insert(Header {
                key: "hr.source.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "hr.source.offset",
                value: Some(&offset),
            });
        if let Some((wm, late)) = why.lateness {
            headers = headers
                .insert(Header {
                    key: "hr.watermark.ms",
                    value: Some(&wm.to_string()),
                })
                .insert(Header {
                    key: "hr.lateness.ms",
                    value: Some(&late.to_string()),
                });
        }
        let mut record = BaseRecord::to(topic).payload(payload).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        self.send(record)
    }

    /// Waits up to `timeout` until every queued record is acknowledged.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the wait times out; [`KafkaError::Delivery`] when any record
    /// sent since the sink was created failed for good.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), KafkaError> {
        // rdkafka's `flush(timeout)` sleeps in 100 ms polls that, with the producer's own poll
        // thread taking every event, only ever time out: each flush took at least 100 ms. A
        // zero-timeout flush still makes librdkafka send at once; re-checking every millisecond
        // returns as soon as the last acknowledgement is in.
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx
                .first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            return Err(KafkaError::Delivery { failed, first });
        }
        Ok(())
    }

    /// Records queued so far and records acknowledged so far.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.sent,
            self.producer.context().delivered.load(Ordering::Relaxed),
        )
    }
}

/// Alerts appended as JSON lines to one file per run under a directory.
pub struct AlertFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl AlertFile {
    /// Creates `dir` if needed and a new file `alerts-<unix-ms>-<pid>.jsonl` in it.
    ///
    /// # Errors
    /// The I/O error when the directory or file cannot be created.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = dir.join(format!("alerts-{ms}-{}.jsonl", std::process::id()));
        let out = BufWriter::new(File::create(&path)?);
        Ok(Self { path, out })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn append(&mut self, json: &str) -> std::io::Result<()> {
        self.out.write_all(json.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes buffered lines through to the file.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
