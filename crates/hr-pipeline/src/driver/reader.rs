//! The reader thread: polls batches for the job thread, and moves partitions back when the job
//! asks (a rewind, a restored state ahead of the group's offset) through a seek queue of its own.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hr_kafka::{KafkaError, Source};

use super::batch::{Batch, Item};
use super::rebalance::lock;

/// The seeks the job asks of the reader thread, done between two polls. Each is answered in
/// the next batch by an [`Item::Seeked`]: records of the partition polled before it come from
/// the old position.
#[derive(Clone, Default)]
pub(super) struct SeekQueue(Arc<Mutex<Vec<(i32, i64)>>>);

impl SeekQueue {
    /// Whether no seek is waiting for the reader.
    pub(super) fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }

    /// The reader's side: performs every queued seek with `seek`, each followed by its
    /// [`Item::Seeked`] in `batch`.
    pub(super) fn perform(
        &self,
        batch: &mut Batch,
        mut seek: impl FnMut(i32, i64) -> Result<(), KafkaError>,
    ) {
        for (p, offset) in std::mem::take(&mut *lock(&self.0)) {
            if let Err(e) = seek(p, offset) {
                tracing::warn!(partition = p, offset, error = %e, "Seek refused; the partition's next owner resumes from the committed offset.");
            }
            batch.items.push(Item::Seeked(p));
        }
    }
}

/// The job's side of the seek queue: the partitions whose seek the reader has not confirmed
/// yet, whose records are stale until it does.
#[derive(Default)]
pub(super) struct Seeks {
    queue: SeekQueue,
    awaiting: BTreeSet<i32>,
}

impl Seeks {
    /// The queue the reader thread drains.
    pub(super) fn queue(&self) -> SeekQueue {
        self.queue.clone()
    }

    /// Asks the reader to move `p` to `offset`.
    pub(super) fn seek(&mut self, p: i32, offset: i64) {
        lock(&self.queue.0).push((p, offset));
        self.awaiting.insert(p);
    }

    /// Forgets `p`'s seek: the reader confirmed it (records from here on are from the new
    /// position), or the partition is gone.
    pub(super) fn clear(&mut self, p: i32) {
        self.awaiting.remove(&p);
    }

    /// Whether a record of `p` was polled before its seek.
    pub(super) fn is_stale(&self, p: i32) -> bool {
        self.awaiting.contains(&p)
    }
}

/// What the reader thread needs.
pub(super) struct Reader<'a> {
    pub(super) source: &'a Source,
    pub(super) seeks: SeekQueue,
    pub(super) stop: &'a AtomicBool,
    /// Stop at the end offsets seen at start.
    pub(super) bounded: bool,
}

impl Reader<'_> {
    /// Polls batches into `to_job` (reusing those that come back on `spare`) until the job is
    /// stopped, a bounded input is read, the job hangs up, or a poll fails for good.
    pub(super) fn serve(
        &self,
        to_job: &SyncSender<Result<Batch, KafkaError>>,
        spare: &Receiver<Batch>,
    ) {
        // A seek still to do means a partition goes back: not done yet.
        let finished = || self.bounded && self.source.is_done() && self.seeks.is_empty();
        while !(self.stop.load(Ordering::Relaxed) || finished()) {
            let mut batch = spare.try_recv().unwrap_or_default();
            batch.clear();
            self.seeks.perform(&mut batch, |p, offset| {
                self.source.seek(p, offset, Duration::from_secs(10))
            });
            let filled = batch
                .fill(self.source, Duration::from_millis(100))
                .map(|()| batch);
            let failed = filled.is_err();
            if to_job.send(filled).is_err() || failed {
                break;
            }
        }
    }
}
