//! Partitions taken on and put back: on assignment the group's committed offsets, then the
//! partitions' state read from the changelog; after a failed commit (or lost partitions) the
//! open transaction ended and every owned partition restored to its last commit.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::broker::Broker;
use super::commit::COMMIT_TIMEOUT;
use super::job::Job;
use super::refused;
use super::retry::ATTEMPT_TIMEOUT;
use crate::changelog;

/// How long a restore waits for a changelog partition to catch up with the committed offset
/// (a committed transaction's markers still on their way): a little over the transaction
/// timeout, after which any open transaction is aborted by the broker.
const CHANGELOG_CATCH_UP: Duration = Duration::from_secs(15);

/// New transactional producers started in a row, none of whose commits went through, before
/// the job gives up: a producer that fails for its state again and again is not mended by more.
pub(super) const MAX_RENEWALS: u32 = 8;

/// How long reading one changelog partition may take (a large state on a loaded machine).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

impl<K: Broker> Job<'_, K> {
    /// Takes `ps` on: their committed offsets, then their state from the changelog.
    pub(super) fn on_assign(&mut self, ps: &[i32]) -> anyhow::Result<()> {
        let started = Instant::now();
        if let Some(h) = &self.cfg.health {
            h.set_ready(false);
        }
        // Committed offsets first: with read_committed the answer waits for any transaction
        // still holding offsets for these partitions, so the changelog read next is as
        // committed as the offsets are.
        let committed = self.retry("fetching committed offsets", |job| {
            job.kafka.committed(ps, ATTEMPT_TIMEOUT).map_err(refused(
                job.cfg,
                "READ",
                &job.cfg.input_topic,
            ))
        })?;
        for &p in ps {
            self.restore(p, committed.get(&p).copied().flatten())?;
            self.last_heard.insert(p, (Instant::now(), false));
        }
        tracing::info!(
            partitions = ?ps,
            restore_ms = started.elapsed().as_millis() as u64,
            "Assigned."
        );
        if let Some(m) = &self.cfg.metrics {
            m.observe_restore(started.elapsed());
        }
        if let Some(h) = &self.cfg.health {
            h.set_ready(true);
        }
        Ok(())
    }

    /// Reads partition `p`'s changelog into the processor; seeks when the state's offset and
    /// the reader's position (`committed`) differ.
    fn restore(&mut self, p: i32, committed: Option<i64>) -> anyhow::Result<()> {
        // Every commit writes a partition's offset and its changelog record in one transaction,
        // so a changelog behind the committed offset is one whose transaction markers have not
        // reached this changelog partition yet (the group's offsets become stable first):
        // restoring it would redo work the committed transaction already published. Read again
        // until it catches up, for as long as a transaction may take to finish.
        let started = Instant::now();
        let (table, restored) = loop {
            let table = self.retry("reading the changelog", |job| {
                job.kafka.read_changelog(p, RESTORE_TIMEOUT, job.cfg)
            })?;
            let restored = changelog::decode(&table.entries)
                .with_context(|| format!("decoding the state of partition {p}"))?;
            let behind = match (&restored, committed) {
                (Some(r), Some(c)) => r.next_offset < c,
                (None, Some(_)) => true,
                _ => false,
            };
            if !behind || started.elapsed() > CHANGELOG_CATCH_UP {
                if behind {
                    tracing::warn!(
                        partition = p,
                        committed = ?committed,
                        changelog = ?restored.as_ref().map(|r| r.next_offset),
                        "The changelog stays behind the committed offset; restoring it and reading on from its offset."
                    );
                }
                break (table, restored);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let next = restored.as_ref().map(|r| r.next_offset);
        let keys = restored
            .as_ref()
            .and_then(|r| r.snapshot.as_ref())
            .map_or(0, |s| s.key_count());
        self.processor
            .assign(p, restored)
            .with_context(|| format!("restoring the state of partition {p}"))?;
        match next {
            Some(next) => self.last_committed.insert(p, next),
            None => self.last_committed.remove(&p),
        };
        if let Some(next) = next
            && committed != Some(next)
        {
            self.seeks.seek(p, next);
        }
        tracing::debug!(
            partition = p,
            next_offset = ?next,
            keys,
            records = table.records,
            bytes = table.bytes,
            "State restored."
        );
        Ok(())
    }

    /// Ends the open transaction and puts every owned partition back to its committed state.
    ///
    /// `in_doubt`: the last commit must not be aborted: its producer was fenced, or the commit
    /// ran out of time with its outcome unknown. A new producer with the same transactional
    /// id ends it instead (the coordinator finishes a commit it had begun, and aborts anything
    /// else); its staged alert file part is then settled by the transaction's witness, and the
    /// partitions restored from what was committed, whichever it was.
    pub(super) fn recover(&mut self, in_doubt: bool) -> anyhow::Result<()> {
        let aborted = if in_doubt {
            Err(anyhow::anyhow!("not abortable"))
        } else {
            self.retry("aborting the transaction", |job| {
                job.kafka.abort(COMMIT_TIMEOUT)
            })
        };
        if let Err(e) = aborted {
            if !in_doubt {
                // An abort retried after a broker outage can leave librdkafka's transaction
                // state unusable; a new producer with the same id fences and ends it.
                tracing::warn!(error = %format!("{e:#}"), "The abort failed; starting a new transactional producer.");
            }
            self.renewals += 1;
            if self.renewals > MAX_RENEWALS {
                bail!(
                    "{MAX_RENEWALS} new transactional producers in a row failed before a commit \
                     went through (the warnings above say why); the job stops rather than loop"
                );
            }
            let renewed = self.retry("starting a new transactional producer", |job| {
                job.kafka.renew_txn(job.cfg)
            });
            renewed?;
        }
        if in_doubt {
            self.kafka.file_in_doubt(self.cfg, COMMIT_TIMEOUT)?;
        }
        self.kafka.file_aborted()?;
        // An output refused since the last commit is redone with the rest of the work: it must
        // not give up the next commit too.
        let _ = self.kafka.take_failure();
        let owned: Vec<(i32, Option<i64>)> = self
            .processor
            .partitions()
            .map(|p| (p, self.processor.rewind_offset(p)))
            .collect();
        for (p, start) in owned {
            self.processor.revoke(p);
            self.restore(p, None)?;
            // Restored state gives the offset; a partition never committed goes back to where
            // this ownership started reading.
            if self.processor.rewind_offset(p).is_none()
                && let Some(start) = start
            {
                self.seeks.seek(p, start);
            }
        }
        self.dirty = false;
        tracing::info!("Back at the last commit; redoing the work since.");
        Ok(())
    }
}
