//! Sinks: one producer (idempotent, or transactional) for alerts, episodes, dead letters, late
//! records and any other keyed JSON, and the JSONL alert files.
//!
//! Every send is asynchronous; [`Sink::flush`] waits until librdkafka has an answer for each
//! and reports how many failed, so the caller commits offsets only after its output is durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use crate::{Delivered, DeliveryLog, KafkaError, client_config};

mod transaction;

/// Where a dead or late record came from and why it was set aside.
#[derive(Debug, Clone, Copy)]
pub struct Diversion<'a> {
    /// Further `hr.*` headers, e.g. the original size of a record replaced by a stand-in.
    pub extra: &'a [(&'a str, &'a str)],
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
    transactional: bool,
    /// The last commit failed with its outcome unknown.
    in_doubt: bool,
}

impl Sink {
    /// An idempotent producer (acks=all, lz4, linger.ms=5) with `overrides` applied last.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka rejects the configuration.
    pub fn new(bootstrap: &str, overrides: &[(String, String)]) -> Result<Self, KafkaError> {
        Self::with_log(bootstrap, overrides, DeliveryLog::default(), 0)
    }

    fn with_log(
        bootstrap: &str,
        overrides: &[(String, String)],
        log: DeliveryLog,
        sent: u64,
    ) -> Result<Self, KafkaError> {
        let mut cc = client_config(bootstrap, &[]);
        cc.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for (k, v) in overrides {
            cc.set(k, v);
        }
        let producer = cc.create_with_context(log)?;
        Ok(Self {
            producer,
            sent,
            transactional: false,
            in_doubt: false,
        })
    }

    /// Replaces this (not transactional) producer, after librdkafka raised a fatal error on
    /// it, with a new one made from `bootstrap` and `overrides`. The records this one had not
    /// delivered are dropped and forgotten, to be redone by the caller; the marks and
    /// [`Delivered`] handles given out go on, on the new producer's records.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka rejects the configuration.
    pub fn renew(
        &mut self,
        bootstrap: &str,
        overrides: &[(String, String)],
    ) -> Result<(), KafkaError> {
        let log = self.producer.context().as_ref().clone();
        let fresh = Self::with_log(bootstrap, overrides, log.clone(), self.sent)?;
        // Dropping the old producer purges its queue; the purge's reports are not failures of
        // the new one.
        drop(std::mem::replace(self, fresh));
        log.forget();
        Ok(())
    }

    /// Whether librdkafka raised a fatal error on this producer: it queues nothing more, and
    /// only a new producer goes on.
    pub fn is_fatal(&self) -> bool {
        use rdkafka::producer::Producer;
        self.producer.client().fatal_error().is_some()
    }

    fn take_failures(&self) -> Option<(u64, String)> {
        self.producer.context().take_failures()
    }

    /// Queues a record to `topic`, to `partition` if given (else by key), with `value` `None`
    /// for a tombstone and `timestamp_ms` as its Kafka timestamp if given.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the record cannot be queued, e.g. when it is larger than the
    /// producer's `message.max.bytes` ([`KafkaError::is_record_too_large`]).
    pub fn send_record(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp_ms: Option<i64>,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(t) = timestamp_ms {
            record = record.timestamp(t);
        }
        self.send(record)
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    fn send(&mut self, r: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        let seq = self.sent;
        let mut record = BaseRecord {
            topic: r.topic,
            partition: r.partition,
            payload: r.payload,
            key: r.key,
            timestamp: r.timestamp,
            headers: r.headers,
            delivery_opaque: seq as usize,
        };
        let log = self.producer.context();
        log.outstanding().insert(seq);
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
                Err((e, _)) => {
                    log.outstanding().remove(&seq);
                    return Err(e.into());
                }
            }
        }
    }

    /// A point in this sink's stream of records: [`Delivered::wait`] with it returns once every
    /// record queued before now has an answer, while records queued later may still be on
    /// their way (a flush would wait for those too).
    pub fn mark(&self) -> u64 {
        self.sent
    }

    /// A handle for waiting on this sink's deliveries from another thread.
    pub fn delivered(&self) -> Delivered {
        Delivered(Arc::clone(&self.producer.context().0))
    }

    /// Queues one JSON record under a text key (an alert, a reading, an episode: the key is
    /// the patient id wherever hr-stream writes).
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the record cannot be queued.
    pub fn send_json(&mut self, topic: &str, key: &str, json: &str) -> Result<(), KafkaError> {
        self.send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
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
        for (k, v) in why.extra {
            headers = headers.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
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
    /// sent since the previous flush (or commit) failed for good.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), KafkaError> {
        self.flush_unless(timeout, &|| false)
    }

    /// As [`flush`](Self::flush), given up (a timeout) as soon as `stopped` says so.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn flush_unless(
        &mut self,
        timeout: Duration,
        stopped: &dyn Fn() -> bool,
    ) -> Result<(), KafkaError> {
        // rdkafka's `flush(timeout)` sleeps in 100 ms polls that, with the producer's own poll
        // thread taking every event, only ever time out: each flush took at least 100 ms. A
        // zero-timeout flush still makes librdkafka send at once; re-checking every millisecond
        // returns as soon as the last acknowledgement is in.
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut))
                    if Instant::now() < deadline && !stopped() =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some((failed, first)) = self.take_failures() {
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
