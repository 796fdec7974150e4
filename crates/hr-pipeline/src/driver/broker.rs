//! What the job asks of Kafka besides polling, as two traits, so that the job's transitions
//! (commit, abort, rewind, restore) can be driven by a fake in tests: [`Transaction`] for the
//! steps of a commit, on whichever thread it runs, and [`Broker`] for everything else the job
//! thread does (outputs, the alert file, ending a transaction, the group's committed offsets,
//! the changelog, the broker's health). [`Clients`] implements both over the real clients.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hr_kafka::{Diversion, KafkaError, PartitionReader, PartitionTable, Source};

use super::outputs::{Outputs, send_changelog};
use super::topics::reader_props;
use super::{RunConfig, refused};
use crate::changelog::ChangelogRecord;
use crate::processor::Emitted;

/// The steps of one commit, in the order [`execute`](super::commit::execute) takes them.
pub(super) trait Transaction {
    /// Waits until every output queued before `mark` is acknowledged (at-least-once: offsets
    /// never pass an output that could still be lost).
    fn wait_outputs(&mut self, mark: u64, timeout: Duration) -> Result<(), KafkaError>;
    /// Sends one changelog record of partition `p` in the open transaction.
    fn send_changelog(
        &mut self,
        topic: &str,
        p: i32,
        rec: &ChangelogRecord,
    ) -> Result<(), KafkaError>;
    /// Adds the consumed `offsets` to the open transaction and commits it (KIP-447).
    fn commit(&mut self, offsets: &BTreeMap<i32, i64>, timeout: Duration)
    -> Result<(), KafkaError>;
}

/// What the job thread asks of Kafka.
pub(super) trait Broker: Transaction {
    /// Sends what the processor emitted (alerts, also to the alert file, and episodes); a
    /// stand-in for a record too large. `origin`: the input record that fired them.
    fn emit(
        &mut self,
        emitted: &Emitted,
        origin: Option<(i32, i64)>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()>;
    /// Forwards an input record to the dead-letter or late topic, saying why.
    fn divert(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        why: &Diversion<'_>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()>;
    /// Records replaced by a stand-in so far.
    fn replaced(&self) -> u64;
    /// Why a producer refused an output since the last commit, if one did: it needs a new
    /// producer, or its transaction must be aborted first. The next commit is given up for it.
    fn take_failure(&mut self) -> Option<KafkaError>;
    /// At-least-once: a mark in the outputs' stream, for [`Transaction::wait_outputs`];
    /// `None` when the outputs are in the transaction.
    fn mark(&self) -> Option<u64>;
    /// Makes the alerts since the last commit durable before the commit.
    fn prepare_file(&mut self) -> std::io::Result<()>;
    /// The commit went through: the staged alert file part is published.
    fn file_committed(&mut self) -> anyhow::Result<()>;
    /// The commit was aborted: the staged alert file part is discarded.
    fn file_aborted(&mut self) -> anyhow::Result<()>;
    /// The commit's answer was lost and its transaction has been ended: the staged alert file
    /// part is published or discarded as the transaction's witness says, or left for the next
    /// start when the cluster does not say within `patience`.
    fn file_in_doubt(&mut self, cfg: &RunConfig, patience: Duration) -> anyhow::Result<()>;
    /// Whether the last commit failed with its outcome unknown: only a new producer ends it.
    fn in_doubt(&self) -> bool;
    /// Aborts the open transaction and begins the next.
    fn abort(&mut self, timeout: Duration) -> Result<(), KafkaError>;
    /// Starts a new transactional producer with the same id in place of the old one (and a new
    /// plain producer if librdkafka gave up on that one).
    fn renew_txn(&mut self, cfg: &RunConfig) -> Result<(), KafkaError>;
    /// The group's committed offsets of `ps` (stable: no open transaction holds them).
    fn committed(
        &self,
        ps: &[i32],
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, KafkaError>;
    /// Partition `p` of the changelog, as a table.
    fn read_changelog(
        &mut self,
        p: i32,
        timeout: Duration,
        cfg: &RunConfig,
    ) -> Result<PartitionTable, KafkaError>;
    /// Records behind the end of each owned partition, for the `next` offsets.
    fn lag(&self, next: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64>;
    /// The last client-level error since the previous call.
    fn take_client_error(&self) -> Option<String>;
    /// Whether the cluster answers.
    fn ping(&self, timeout: Duration) -> Result<(), KafkaError>;
    /// Whether the consumer is rejoining its group (a commit sent now would carry the old
    /// generation).
    fn rejoining(&self) -> bool;
}

/// The real clients: the group's consumer, the producers and file, the changelog reader.
pub(super) struct Clients<'a> {
    pub(super) source: &'a Source,
    pub(super) outputs: Outputs,
    pub(super) reader: PartitionReader,
    /// The job's stop flag: a transactional step under way is given up when it is set.
    pub(super) stop: &'a AtomicBool,
}

impl Transaction for Clients<'_> {
    /// On the job thread every output queued so far is before the mark: a flush waits for
    /// them, and makes librdkafka send at once rather than after its linger.
    fn wait_outputs(&mut self, _mark: u64, timeout: Duration) -> Result<(), KafkaError> {
        self.outputs.flush_outputs(timeout, self.stop)
    }

    fn send_changelog(
        &mut self,
        topic: &str,
        p: i32,
        rec: &ChangelogRecord,
    ) -> Result<(), KafkaError> {
        send_changelog(&mut self.outputs.txn(), topic, p, rec)
    }

    fn commit(
        &mut self,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        self.outputs
            .commit(self.source, offsets, timeout, self.stop)
    }
}

impl Broker for Clients<'_> {
    fn emit(
        &mut self,
        emitted: &Emitted,
        origin: Option<(i32, i64)>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        self.outputs.emit(emitted, origin, cfg)
    }

    fn divert(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        why: &Diversion<'_>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        self.outputs.divert(topic, key, payload, why, cfg)
    }

    fn replaced(&self) -> u64 {
        self.outputs.replaced
    }

    fn take_failure(&mut self) -> Option<KafkaError> {
        self.outputs.take_failure()
    }

    fn mark(&self) -> Option<u64> {
        self.outputs.plain_mark().map(|(mark, _)| mark)
    }

    fn prepare_file(&mut self) -> std::io::Result<()> {
        self.outputs.prepare_file()
    }

    fn file_committed(&mut self) -> anyhow::Result<()> {
        self.outputs.committed()
    }

    fn file_aborted(&mut self) -> anyhow::Result<()> {
        self.outputs.aborted()
    }

    fn file_in_doubt(&mut self, cfg: &RunConfig, patience: Duration) -> anyhow::Result<()> {
        self.outputs.settle_in_doubt(cfg, patience, self.stop)
    }

    fn in_doubt(&self) -> bool {
        self.outputs.txn().in_doubt()
    }

    fn abort(&mut self, timeout: Duration) -> Result<(), KafkaError> {
        self.outputs.txn().abort(timeout)
    }

    fn renew_txn(&mut self, cfg: &RunConfig) -> Result<(), KafkaError> {
        self.outputs
            .renew_txn(cfg)
            .map_err(|e| KafkaError::State(format!("{e:#}")))
    }

    fn committed(
        &self,
        ps: &[i32],
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
        self.source.committed(ps, timeout)
    }

    fn read_changelog(
        &mut self,
        p: i32,
        timeout: Duration,
        cfg: &RunConfig,
    ) -> Result<PartitionTable, KafkaError> {
        let read =
            self.reader
                .read(p, timeout)
                .map_err(refused(cfg, "READ", &cfg.changelog_topic()));
        if read.is_err() {
            // A reader that asked a broker that died may keep asking it until its metadata is
            // refreshed; a new one asks the cluster who leads now.
            if let Ok(fresh) =
                PartitionReader::new(&cfg.bootstrap, &reader_props(cfg), &cfg.changelog_topic())
            {
                self.reader = fresh;
            }
        }
        read
    }

    fn lag(&self, next: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
        self.source.lag(next)
    }

    fn take_client_error(&self) -> Option<String> {
        self.source.take_client_error()
    }

    fn ping(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.source.ping(timeout)
    }

    fn rejoining(&self) -> bool {
        self.source.rejoining()
    }
}
