//! The alert files: a staged part published or discarded with its commit, its transaction's
//! witness kept beside it just before the commit is sent, and parts whose commit's answer was
//! lost settled by that witness: published when it committed, discarded when it was aborted.
//!
//! A part's witness is written beside it just before its commit is sent
//! ([`hr_kafka::StagedAlertFile::stage`]). The part of a commit in doubt is settled on the job
//! thread once a new producer has ended that transaction; parts left by a process that stopped
//! or died with a commit in flight are settled, on a thread of their own, by the next start
//! with the same `--alerts-dir`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use hr_kafka::{KafkaError, Leftover, Outcome, Source, StagedAlertFile, Witness, witness};

use super::outputs::{AlertSink, Outputs};
use super::rebalance::lock;
use super::topics::reader_props;
use super::{Guarantee, RunConfig};

/// How long one question to the cluster may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a part left by an earlier process is asked about: its transaction, if still open,
/// ends within the producer's transaction timeout (10 s) and the broker's sweep for timed-out
/// transactions (every 10 s by default).
pub(super) const PATIENCE_AT_START: Duration = Duration::from_secs(60);

impl Outputs {
    /// Exactly-once with alert files: starts settling the parts earlier processes left in the
    /// directory (see [`in_background`]).
    ///
    /// # Errors
    /// The I/O error when the directory cannot be read or a part never staged removed.
    pub(super) fn settle_leftovers(&mut self, cfg: &RunConfig) -> std::io::Result<()> {
        if let (Guarantee::ExactlyOnce, Some(dir)) = (cfg.guarantee, &cfg.alerts_dir) {
            let left = StagedAlertFile::leftovers(dir)?;
            self.settling = in_background(left, reader(cfg));
        }
        Ok(())
    }

    /// Waits up to `within` for the parts an earlier process left in doubt to be settled.
    pub(super) fn wait_settled(&mut self, within: Duration) {
        wait(self.settling.take(), within);
    }

    /// Commits the transaction with `offsets`, the staged alert file part's witness kept
    /// beside it just before the commit is sent (see [`Sink::commit_unless_stopped`]).
    pub(super) fn commit(
        &mut self,
        source: &Source,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), KafkaError> {
        let Self { txn, file, .. } = self;
        let mut stage = |w: Option<&Witness>| match file {
            Some(AlertSink::Staged(f)) => f.stage(w),
            _ => Ok(()),
        };
        lock(txn).commit_unless_stopped(source, offsets, timeout, stop, &mut stage)
    }

    /// The staged alert file part of a commit whose answer was lost, settled by its witness
    /// (the transaction was ended by a new producer): asked about for up to `patience`, or
    /// until `stop`; left for the next start otherwise.
    pub(super) fn settle_in_doubt(
        &mut self,
        cfg: &RunConfig,
        patience: Duration,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let Some(AlertSink::Staged(f)) = self.file.as_mut() else {
            return Ok(());
        };
        let Some(left) = f.detach().context("setting an alerts part aside")? else {
            return Ok(());
        };
        settle(left, &reader(cfg), patience, &|| {
            stop.load(Ordering::Relaxed)
        })
        .context("settling an alerts part")
    }

    pub(super) fn prepare_file(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(AlertSink::Plain(f)) => f.flush(),
            Some(AlertSink::Staged(f)) => f.prepare(),
            None => Ok(()),
        }
    }

    pub(super) fn committed(&mut self) -> anyhow::Result<()> {
        if let Some(AlertSink::Staged(f)) = self.file.as_mut() {
            f.publish().context("publishing an alerts part")?;
        }
        Ok(())
    }

    pub(super) fn aborted(&mut self) -> anyhow::Result<()> {
        if let Some(AlertSink::Staged(f)) = self.file.as_mut() {
            f.discard().context("discarding an alerts part")?;
        }
        Ok(())
    }
}

/// How the settling of alert file parts reads the cluster: as the changelog reader does.
pub(super) fn reader(cfg: &RunConfig) -> Reader {
    Reader {
        bootstrap: cfg.bootstrap.clone(),
        props: reader_props(cfg),
    }
}

/// Where the cluster is and how to read from it.
#[derive(Clone)]
pub(super) struct Reader {
    pub(super) bootstrap: String,
    pub(super) props: Vec<(String, String)>,
}

/// Settles `left` by its witness, asking for up to `patience` while its transaction is open
/// or the cluster does not answer, or until `stopped` says so. A part that cannot be settled
/// stays as it is, for the next start in its directory.
pub(super) fn settle(
    left: Leftover,
    reader: &Reader,
    patience: Duration,
    stopped: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let deadline = Instant::now() + patience;
    let path = left.path().display().to_string();
    loop {
        let why = match witness::outcome(
            &reader.bootstrap,
            &reader.props,
            &left.witness,
            ASK_TIMEOUT,
        ) {
            Ok(Outcome::Committed) => {
                let shown = left.publish()?;
                tracing::info!(path = %shown.display(), "An alerts part whose commit was in doubt is published: its transaction committed.");
                return Ok(());
            }
            Ok(Outcome::Aborted) => {
                left.discard()?;
                tracing::info!(
                    path,
                    "An alerts part whose commit was in doubt is discarded: its transaction was aborted."
                );
                return Ok(());
            }
            Ok(Outcome::Gone) => {
                tracing::warn!(path, witness = %left.witness, "An alerts part whose commit was in doubt cannot be settled: its transaction's record was deleted by retention. It stays hidden; compare it with the alerts topic and publish it by hand (drop the leading '.' and the '.inprogress').");
                return Ok(());
            }
            Ok(Outcome::Open) => "its transaction is still open".to_owned(),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline || stopped() {
            tracing::warn!(
                path,
                why,
                "An alerts part whose commit was in doubt is left unsettled; the next start with the same --alerts-dir settles it."
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Settles the parts `left` by earlier processes on a thread of its own, so the job starts at
/// once; [`wait`] gives it a while at the job's end.
pub(super) fn in_background(left: Vec<Leftover>, reader: Reader) -> Option<JoinHandle<()>> {
    if left.is_empty() {
        return None;
    }
    tracing::info!(
        parts = left.len(),
        "Settling alerts parts left in doubt by an earlier process."
    );
    let spawned = std::thread::Builder::new()
        .name("hr-settle".into())
        .spawn(move || {
            for part in left {
                if let Err(e) = settle(part, &reader, PATIENCE_AT_START, &|| false) {
                    tracing::warn!(error = %e, "Settling an alerts part failed; the next start tries again.");
                }
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "No thread to settle alerts parts left in doubt; the next start tries again.");
            None
        }
    }
}

/// Waits up to `within` for the settling thread to finish.
pub(super) fn wait(handle: Option<JoinHandle<()>>, within: Duration) {
    let Some(handle) = handle else { return };
    let deadline = Instant::now() + within;
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if handle.is_finished() {
        let _ = handle.join();
    } else {
        tracing::warn!(
            "Alerts parts left in doubt are still being settled at exit; the next start with the same --alerts-dir settles them."
        );
    }
}
