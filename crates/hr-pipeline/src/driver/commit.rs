//! The commit path, one for both guarantees: the job cuts a commit (the changed keys, the
//! offsets and, at-least-once, a mark in the outputs' stream), [`execute`] runs it (on the job
//! thread, or on the committer thread for at-least-once commits that the job reads on past),
//! and the job thread settles its outcome: the alert file, the metrics and the last committed
//! offsets on success; on a failure that is not fatal, abort and rewind.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hr_kafka::KafkaError;

use super::broker::{Broker, Transaction};
use super::job::Job;
use super::refused;
use crate::changelog::ChangelogRecord;
use crate::metrics::CommitResult;

/// How long a transaction's own steps (offsets, commit, abort) may take in all, calls resumed
/// after a timeout included: longer than a leader election after a broker dies (KRaft's
/// broker session timeout is 9 s), so a commit caught by one finishes instead of being given up.
pub(super) const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The same once the job is stopping: a stop must not wait on a dead cluster for long (a last
/// commit takes milliseconds; after a rolling restart librdkafka's `send_offsets_to_transaction`
/// to a coordinator that moved never returned, and the exit waited this and a second's margin).
const STOPPING_COMMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// One commit cut by the job: what its transaction holds.
pub(super) struct Cut {
    /// At-least-once: outputs queued before this mark must be acknowledged before the offsets
    /// commit. `None` when the outputs are in the transaction.
    pub(super) mark: Option<u64>,
    /// The changelog records, with their partitions.
    pub(super) records: Vec<(i32, ChangelogRecord)>,
    /// The consumed offsets.
    pub(super) offsets: BTreeMap<i32, i64>,
}

/// What the job keeps of a commit until its outcome is known.
pub(super) struct Ticket {
    started: Instant,
    /// When each alert it covers was fired.
    unacked: Vec<Instant>,
    offsets: BTreeMap<i32, i64>,
}

/// The job thread's ends of the committer thread's channels.
pub(super) struct Link {
    pub(super) work: Sender<Cut>,
    pub(super) done: Receiver<Result<(), KafkaError>>,
}

/// Where the job is.
///
/// `Reading` → `Committing` when an at-least-once commit is handed to the committer thread,
/// back to `Reading` once its outcome is settled; `Reading` ⇄ `Rebalancing` while the consumer
/// rejoins its group; `Reading` → `Draining` when the input ends or the job is stopped (the
/// last commit is done inline), → `Done` once it went through. Assignments, revocations,
/// rewinds and inline commits each settle a commit in flight first.
pub(super) enum State {
    /// Reading, no commit in flight.
    Reading,
    /// Reading while the consumer rejoins its group: a commit sent now would carry the old
    /// generation and be refused as the new one settles (aborted and redone: a second's
    /// stall), so commits wait for the rejoin, for up to a bound past the commit interval.
    Rebalancing,
    /// Reading on while a commit runs on the committer thread.
    Committing(Ticket),
    /// The loop has ended: outputs of a finished input, then the last commit.
    Draining,
    /// The last commit went through.
    Done,
}

/// The steps of a commit, the same on either thread: wait for the outputs up to the mark,
/// write the changelog records, commit them with the offsets.
pub(super) fn execute<T: Transaction + ?Sized>(
    txn: &mut T,
    cut: &Cut,
    changelog_topic: &str,
    delivery_timeout: Duration,
    commit_timeout: Duration,
) -> Result<(), KafkaError> {
    if let Some(mark) = cut.mark {
        txn.wait_outputs(mark, delivery_timeout)?;
    }
    for (p, rec) in &cut.records {
        txn.send_changelog(changelog_topic, *p, rec)?;
    }
    txn.commit(&cut.offsets, commit_timeout)
}

/// The committer thread's channels: the job's ends, and the thread's.
pub(super) fn link() -> (Link, Receiver<Cut>, Sender<Result<(), KafkaError>>) {
    let (work, to_committer) = mpsc::channel();
    let (done, replies) = mpsc::channel();
    (
        Link {
            work,
            done: replies,
        },
        to_committer,
        done,
    )
}

impl<K: Broker> Job<'_, K> {
    /// Commits here, on the job thread: a commit in flight is settled first. Whether the commit
    /// went through (`false`: it was aborted and the work rewound).
    pub(super) fn commit(&mut self, finished: bool) -> anyhow::Result<bool> {
        self.settle(true)?;
        let (cut, ticket) = self.cut(finished)?;
        // Once the job is stopping, neither the outputs nor the transaction may keep it long.
        let (delivery, timeout) = if self.stop.load(Ordering::Relaxed) {
            (STOPPING_COMMIT_TIMEOUT, STOPPING_COMMIT_TIMEOUT)
        } else {
            (self.cfg.broker_timeout, COMMIT_TIMEOUT)
        };
        let topic = self.cfg.changelog_topic();
        let result = match self.kafka.take_failure() {
            Some(refused) => Err(refused),
            None => execute(&mut self.kafka, &cut, &topic, delivery, timeout),
        };
        self.settled(result, ticket)
    }

    /// Cuts a commit and hands it to the committer thread; [`Self::settle`] takes its answer.
    /// Without a committer thread (exactly-once) the commit is done here.
    pub(super) fn commit_in_turn(&mut self) -> anyhow::Result<()> {
        if self.committer.is_none() {
            return self.commit(false).map(drop);
        }
        self.settle(true)?;
        let (cut, ticket) = self.cut(false)?;
        if let Some(refused) = self.kafka.take_failure() {
            return self.settled(Err(refused), ticket).map(drop);
        }
        let Some(link) = &self.committer else {
            bail!("no committer thread");
        };
        if link.work.send(cut).is_err() {
            bail!("the committer thread has ended");
        }
        self.state = State::Committing(ticket);
        Ok(())
    }

    /// Whether a commit is on the committer thread.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> bool {
        matches!(self.state, State::Committing(_))
    }

    /// The alert file made durable, the changelog records since the last commit, the offsets
    /// and a mark in the outputs: everything the transaction must hold.
    fn cut(&mut self, finished: bool) -> anyhow::Result<(Cut, Ticket)> {
        let started = Instant::now();
        // The alert file first, and its failure ends the job: a full or broken disk is not
        // something an abort and a retry can mend.
        self.kafka
            .prepare_file()
            .context("writing the alerts file before a commit")?;
        let records = self.take_changelog(finished);
        let offsets = self.processor.offsets();
        let cut = Cut {
            mark: self.kafka.mark(),
            records,
            offsets: offsets.clone(),
        };
        // A failed commit rewinds, which clears this again; a fatal one ends the job.
        self.dirty = false;
        let ticket = Ticket {
            started,
            unacked: std::mem::take(&mut self.unacked),
            offsets,
        };
        Ok((cut, ticket))
    }

    /// Takes the answer of the commit in flight, if any: waiting for it when `block`, else
    /// only if it is there. A failed one rewinds as a failed commit on this thread does.
    pub(super) fn settle(&mut self, block: bool) -> anyhow::Result<()> {
        let ticket = match std::mem::replace(&mut self.state, State::Reading) {
            State::Committing(ticket) => ticket,
            other => {
                self.state = other;
                return Ok(());
            }
        };
        let answer = match &self.committer {
            None => None,
            Some(link) if block => link.done.recv().ok(),
            Some(link) => match link.done.try_recv() {
                Ok(answer) => Some(answer),
                Err(mpsc::TryRecvError::Empty) => {
                    self.state = State::Committing(ticket);
                    return Ok(());
                }
                Err(mpsc::TryRecvError::Disconnected) => None,
            },
        };
        let Some(result) = answer else {
            bail!("the committer thread ended with a commit in flight");
        };
        self.settled(result, ticket)?;
        Ok(())
    }

    /// What follows a commit, on whichever thread it was done: the alert files, metrics and
    /// the broker's state on success; on a failure that is not fatal, abort and rewind.
    fn settled(&mut self, result: Result<(), KafkaError>, ticket: Ticket) -> anyhow::Result<bool> {
        let Ticket {
            started,
            unacked,
            offsets,
        } = ticket;
        match result {
            Ok(()) => {
                self.kafka.file_committed()?;
                self.renewals = 0;
                self.last_committed
                    .extend(offsets.iter().map(|(&p, &o)| (p, o)));
                self.broker_up();
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "Committed.");
                if let Some(m) = &self.cfg.metrics {
                    let now = Instant::now();
                    m.observe_commit(CommitResult::Ok, now.duration_since(started));
                    for fired in unacked {
                        m.observe_alert_latency(now.duration_since(fired));
                    }
                    for (&p, &offset) in &offsets {
                        m.set_committed_offset(p, offset);
                    }
                }
                Ok(true)
            }
            // A fenced producer is not the end of the job: its transaction was aborted by the
            // coordinator (it outlived the transaction timeout: a pause, a cut), and a new
            // producer redoes the work, for the partitions this instance still owns. Nor is
            // one librdkafka gave up on for its own state (a sequence out of step with a new
            // leader after a broker died); only refusals (ACLs, a missing topic) end the job.
            Err(e) if e.is_fatal() && !e.needs_new_producer() => {
                let e = refused(self.cfg, "WRITE", &self.cfg.changelog_topic())(e);
                Err(anyhow::anyhow!(e).context("committing (a fatal error: the job cannot go on)"))
            }
            Err(e) => {
                let renew = e.needs_new_producer() || self.kafka.in_doubt();
                if e.is_fenced() {
                    tracing::warn!(error = %e, "This instance's producer was fenced; starting a new one and going back to the last commit.");
                } else if e.needs_new_producer() {
                    tracing::warn!(error = %e, "librdkafka gave up on this instance's producer; starting a new one and going back to the last commit.");
                } else {
                    tracing::warn!(error = %e, in_doubt = renew, "Commit failed; going back to the last commit.");
                }
                if let Some(m) = &self.cfg.metrics {
                    m.observe_commit(CommitResult::Aborted, started.elapsed());
                }
                // Those alerts are redone, and timed again when they fire again.
                self.unacked.clear();
                self.recover(renew)?;
                Ok(false)
            }
        }
    }

    /// Every owned partition's changelog records since the last commit, counted in the metrics.
    fn take_changelog(&mut self, finished: bool) -> Vec<(i32, ChangelogRecord)> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let partitions: Vec<i32> = self.processor.partitions().collect();
        for p in partitions {
            for rec in self.processor.take_changelog(p, finished) {
                bytes += rec.key.len() + rec.value.as_ref().map_or(0, Vec::len);
                records.push((p, rec));
            }
        }
        if let Some(m) = &self.cfg.metrics {
            m.add_changelog_bytes(bytes as u64);
        }
        records
    }
}
