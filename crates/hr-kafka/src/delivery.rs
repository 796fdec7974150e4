//! Delivery tracking for the producers: every delivery report counted, and the sequence
//! numbers still without an answer kept, so a flush can say whether everything arrived and a
//! [`Delivered`] handle can wait for the records queued before a point.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::message::Message;
use rdkafka::producer::ProducerContext;

use crate::{KafkaError, Witness};

/// Counts delivery reports so a flush can say whether everything arrived, and keeps the
/// sequence numbers of the records still without an answer so a [`Delivered`] handle can wait
/// for the records queued before a point, whatever was queued after it.
///
/// A handle: a producer that replaces one librdkafka gave up on keeps the same log, so the
/// [`Delivered`] handles given out before go on waiting on the new producer's records.
#[derive(Default, Clone)]
pub struct DeliveryLog(pub(crate) Arc<Deliveries>);

impl std::ops::Deref for DeliveryLog {
    type Target = Deliveries;

    fn deref(&self) -> &Deliveries {
        &self.0
    }
}

/// What a [`DeliveryLog`] counts.
#[derive(Default)]
pub struct Deliveries {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) first_error: Mutex<Option<String>>,
    /// The topic of a partition the transaction coordinator refused for want of an ACL: the
    /// reason the transaction failed, which the step that notices it does not give.
    pub(crate) refused: Mutex<Option<String>>,
    pub(crate) outstanding: Mutex<BTreeSet<u64>>,
    /// The transaction's witness so far (see [`crate::witness`]).
    witness: Mutex<WitnessSlot>,
    /// A record of the watched topic is the witness already: no need to look further.
    witnessed: AtomicBool,
}

/// The first acknowledged record since the last take: of the watched topic, and of any.
#[derive(Default)]
struct WitnessSlot {
    watched: Option<String>,
    of_watched: Option<Witness>,
    of_any: Option<Witness>,
}

impl Deliveries {
    pub(crate) fn outstanding(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.outstanding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn take_failures(&self) -> Option<(u64, String)> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        (failed > 0).then_some((failed, first))
    }

    /// Forgets every record without an answer and every failure so far: the producer that
    /// queued them is gone, and its work is redone by the one that replaced it.
    pub(crate) fn forget(&self) {
        self.outstanding().clear();
        let _ = self.take_failures();
    }

    fn witness_slot(&self) -> std::sync::MutexGuard<'_, WitnessSlot> {
        self.witness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the first acknowledged record of `topic` the witness, in preference to others.
    pub(crate) fn watch(&self, topic: &str) {
        self.witness_slot().watched = Some(topic.to_owned());
    }

    /// The first record acknowledged since the last take (of the watched topic if one was),
    /// and a fresh start.
    pub(crate) fn take_witness(&self) -> Option<Witness> {
        let mut slot = self.witness_slot();
        let any = slot.of_any.take();
        let witness = slot.of_watched.take().or(any);
        self.witnessed.store(false, Ordering::Relaxed);
        witness
    }

    fn note_witness(&self, topic: &str, partition: i32, offset: i64) {
        if self.witnessed.load(Ordering::Relaxed) {
            return;
        }
        let mut slot = self.witness_slot();
        let here = || Witness {
            topic: topic.to_owned(),
            partition,
            offset,
        };
        if slot.of_any.is_none() {
            slot.of_any = Some(here());
        }
        if slot.watched.as_deref() == Some(topic) {
            slot.of_watched = Some(here());
            self.witnessed.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn take_refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// A handle on a [`Sink`](crate::Sink)'s delivery reports that another thread can wait on (see
/// [`Sink::mark`](crate::Sink::mark)).
#[derive(Clone)]
pub struct Delivered(pub(crate) Arc<Deliveries>);

impl Delivered {
    /// Waits up to `timeout` until every record queued before `mark` has an answer.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the wait times out; [`KafkaError::Delivery`] when any record
    /// of the sink failed for good since the last flush or wait (the failure is taken: the
    /// next wait does not report it again).
    pub fn wait(&self, mark: u64, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        while self.0.outstanding().first().is_some_and(|&s| s < mark) {
            if Instant::now() >= deadline {
                return Err(KafkaError::Client(RdError::Flush(
                    RDKafkaErrorCode::OperationTimedOut,
                )));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        if let Some((failed, first)) = self.0.take_failures() {
            return Err(KafkaError::Delivery { failed, first });
        }
        Ok(())
    }
}

impl ClientContext for DeliveryLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if let Some(refused) = crate::error::refused_partition(fac, message) {
            *self
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refused);
        }
        crate::error::log_librdkafka(level, fac, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        // A broker going away is retried by librdkafka and reported by the caller once.
        tracing::debug!("librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for DeliveryLog {
    /// The record's sequence number in its sink.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        self.outstanding().remove(&(seq as u64));
        match result {
            Ok(m) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.note_witness(m.topic(), m.partition(), m.offset());
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
