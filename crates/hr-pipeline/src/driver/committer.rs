//! At-least-once commits off the job thread.
//!
//! With [`Guarantee::AtLeastOnce`](super::Guarantee::AtLeastOnce) the transaction holds only
//! the changelog records and the offsets, so nothing the job does between commits needs the
//! transactional producer. The job cuts a commit (the changed keys, the offsets, a mark in the
//! outputs' stream) and lends the producer to this thread, which waits until every output
//! queued before the mark is acknowledged, then writes the records and commits. Meanwhile the
//! job reads on and fires alerts: a commit no longer holds back the reading that closes a
//! window. One commit is in flight at a time; rebalances, rewinds and the last commit wait for
//! it first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use hr_kafka::{Delivered, KafkaError, Sink, Source};

use crate::changelog::ChangelogRecord;

/// One commit cut by the job.
pub(super) struct Work {
    /// The transactional producer, lent for this commit.
    pub(super) txn: Sink,
    /// Outputs queued before this mark must be acknowledged before the offsets commit.
    pub(super) mark: u64,
    /// The changelog records, with their partitions.
    pub(super) records: Vec<(i32, ChangelogRecord)>,
    /// The consumed offsets.
    pub(super) offsets: BTreeMap<i32, i64>,
}

/// The answer to a [`Work`]: the producer back, and how the commit went.
pub(super) struct Done {
    pub(super) txn: Sink,
    pub(super) result: Result<(), KafkaError>,
}

/// What the committer thread needs besides its channels.
pub(super) struct Committer<'a> {
    pub(super) source: &'a Source,
    pub(super) delivered: Delivered,
    pub(super) changelog_topic: String,
    /// How long outputs may take to be acknowledged (the broker timeout).
    pub(super) delivery_timeout: Duration,
    /// How long the transaction's own steps may take.
    pub(super) commit_timeout: Duration,
}

impl Committer<'_> {
    /// Serves commits until the job drops its sender or sets `closing`.
    pub(super) fn serve(self, work: &Receiver<Work>, done: &Sender<Done>, closing: &AtomicBool) {
        while !closing.load(Ordering::Relaxed) {
            let w = match work.recv_timeout(Duration::from_millis(50)) {
                Ok(w) => w,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut txn = w.txn;
            let result = self.commit(&mut txn, w.mark, &w.records, &w.offsets);
            if done.send(Done { txn, result }).is_err() {
                break;
            }
        }
    }

    fn commit(
        &self,
        txn: &mut Sink,
        mark: u64,
        records: &[(i32, ChangelogRecord)],
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), KafkaError> {
        self.delivered.wait(mark, self.delivery_timeout)?;
        for (p, rec) in records {
            txn.send_record(
                &self.changelog_topic,
                Some(*p),
                &rec.key,
                rec.value.as_deref(),
                None,
            )?;
        }
        txn.commit(self.source, offsets, self.commit_timeout)
    }
}
