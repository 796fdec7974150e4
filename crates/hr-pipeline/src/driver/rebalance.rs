//! Revocation: librdkafka's rebalance callback waits until the job has committed, and the job
//! commits (or, lost, drops) the partitions' work and drops them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::broker::Broker;
use super::job::Job;

/// Partitions being revoked, and whether they were lost (the group dropped this member) rather
/// than handed over.
pub(super) type Revocation = (Vec<i32>, bool);

/// Makes librdkafka's revoke callback (on the reader thread) wait until the job thread has
/// committed the partitions' work (or, lost, dropped it) and dropped them.
#[derive(Default)]
pub(super) struct RevokeBarrier {
    pub(super) pending: Mutex<Option<Revocation>>,
    pub(super) done: Condvar,
    pub(super) closed: AtomicBool,
}

impl RevokeBarrier {
    /// How long a revocation waits for the job at most: a job stuck on a dead broker must not
    /// hold the group's rebalance forever.
    const WAIT: Duration = Duration::from_secs(30);

    pub(super) fn wait_for_job(&self, ps: &[i32], lost: bool) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut pending = lock(&self.pending);
        *pending = Some((ps.to_vec(), lost));
        let deadline = Instant::now() + Self::WAIT;
        while pending.is_some() && !self.closed.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "The job did not commit before the revocation; the next owner redoes its work."
                );
                break;
            }
            pending = self
                .done
                .wait_timeout(pending, left.min(Duration::from_millis(100)))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *pending = None;
    }

    pub(super) fn pending(&self) -> Option<Revocation> {
        lock(&self.pending).clone()
    }

    pub(super) fn release(&self) {
        *lock(&self.pending) = None;
        self.done.notify_all();
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.release();
    }
}

impl<K: Broker> Job<'_, K> {
    /// Commits what was processed before `ps` are revoked, then drops them. Partitions `lost`
    /// (the group dropped this member and may have given them to another already) are dropped
    /// without a commit: the open transaction is aborted and the partitions still owned go back
    /// to their last commit, so nothing of the lost ones is published twice.
    pub(super) fn on_revoke(&mut self, ps: &[i32], lost: bool) -> anyhow::Result<()> {
        self.settle(true)?;
        let owned: Vec<i32> = ps
            .iter()
            .copied()
            .filter(|p| self.processor.owns(*p))
            .collect();
        if lost && !owned.is_empty() {
            tracing::warn!(partitions = ?owned, "Partitions lost: the group dropped this instance; their work since the last commit is dropped, and their next owner redoes it.");
        } else if !owned.is_empty() && self.dirty {
            tracing::debug!(partitions = ?owned, "Committing before the revocation.");
            self.commit(false)?;
        }
        self.drop_partitions(&owned);
        if lost && !owned.is_empty() {
            self.unacked.clear();
            self.recover(false)?;
        }
        Ok(())
    }

    /// Forgets `ps` and everything of theirs: state, pending seeks, silence clock, gauges.
    pub(super) fn drop_partitions(&mut self, ps: &[i32]) {
        for &p in ps {
            self.processor.revoke(p);
            self.seeks.clear(p);
            self.last_heard.remove(&p);
            if let Some(m) = &self.cfg.metrics {
                m.remove_partition(p);
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
