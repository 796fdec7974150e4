//! At-least-once commits off the job thread.
//!
//! With [`Guarantee::AtLeastOnce`](super::Guarantee::AtLeastOnce) the transaction holds only
//! the changelog records and the offsets, so nothing the job does between commits needs the
//! transactional producer. The job cuts a commit (the changed keys, the offsets, a mark in the
//! outputs' stream) and sends it to this thread, which runs the same steps as a commit on the
//! job thread ([`execute`]): it waits until every output queued before the mark is
//! acknowledged, then writes the records and commits. Meanwhile the job reads on and fires
//! alerts: a commit no longer holds back the reading that closes a window. One commit is in
//! flight at a time; rebalances, rewinds and the last commit wait for it first, and the job
//! thread handles its outcome as it handles its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::error::KafkaError as RdError;
use hr_kafka::rdkafka::types::RDKafkaErrorCode;

use hr_kafka::{Delivered, KafkaError, Sink, Source};

use super::broker::Transaction;
use super::commit::{Cut, execute};
use super::outputs::send_changelog;
use super::rebalance::lock;
use crate::changelog::ChangelogRecord;

/// The committer thread: the transaction's steps, and how long they may take.
pub(super) struct Committer<T> {
    pub(super) txn: T,
    pub(super) changelog_topic: String,
    /// How long outputs may take to be acknowledged (the broker timeout).
    pub(super) delivery_timeout: Duration,
    /// How long the transaction's own steps may take.
    pub(super) commit_timeout: Duration,
}

impl<T: Transaction> Committer<T> {
    /// Serves commits until the job drops its sender or sets `closing`.
    pub(super) fn serve(
        mut self,
        work: &Receiver<Cut>,
        done: &Sender<Result<(), KafkaError>>,
        closing: &AtomicBool,
    ) {
        while !closing.load(Ordering::Relaxed) {
            let cut = match work.recv_timeout(Duration::from_millis(50)) {
                Ok(cut) => cut,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let result = execute(
                &mut self.txn,
                &cut,
                &self.changelog_topic,
                self.delivery_timeout,
                self.commit_timeout,
            );
            if done.send(result).is_err() {
                break;
            }
        }
    }
}

/// The transactional producer as the committer thread uses it: outputs waited for through
/// their delivery reports, up to the commit's mark only, while the job queues more.
pub(super) struct Lent<'a> {
    pub(super) txn: Arc<Mutex<Sink>>,
    pub(super) source: &'a Source,
    pub(super) delivered: Delivered,
    /// The job's stop flag: a wait or a transactional step under way is given up when it is set.
    pub(super) stop: &'a AtomicBool,
}

impl Transaction for Lent<'_> {
    fn wait_outputs(&mut self, mark: u64, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        let stopping = self.stop.load(Ordering::Relaxed);
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            match self.delivered.wait(mark, slice) {
                Err(KafkaError::Client(RdError::Flush(RDKafkaErrorCode::OperationTimedOut)))
                    if Instant::now() < deadline
                        && (stopping || !self.stop.load(Ordering::Relaxed)) => {}
                other => return other,
            }
        }
    }

    fn send_changelog(
        &mut self,
        topic: &str,
        p: i32,
        rec: &ChangelogRecord,
    ) -> Result<(), KafkaError> {
        send_changelog(&mut lock(&self.txn), topic, p, rec)
    }

    fn commit(
        &mut self,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        // At-least-once: the alert file is not staged, and no witness is kept.
        lock(&self.txn)
            .commit_unless_stopped(self.source, offsets, timeout, self.stop, &mut |_| Ok(()))
    }
}
