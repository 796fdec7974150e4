//! The job: the loop on the job thread and the state it keeps between turns. Each turn settles
//! a commit in flight, serves a revocation, applies a batch from the reader thread, lets
//! processing time pass, and commits once per commit interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::bail;
use hr_kafka::{Diversion, KafkaError, RebalanceEvent, TableFollower};
use hr_model::Validation;

use super::batch::{Batch, BatchRecord, Item, Tally};
use super::broker::{Broker, Clients};
use super::commit::{self, COMMIT_TIMEOUT, Link, State};
use super::committer::{Committer, Lent};
use super::reader::{Reader, Seeks};
use super::rebalance::RevokeBarrier;
use super::retry::Outage;
use super::telemetry::Telemetry;
use super::topics::apply_profiles;
use super::{RunConfig, refused};
use crate::processor::{Emitted, InputRecord, Processor, RunCounters, Verdict};

/// How much longer than the commit interval a commit waits while the consumer rejoins its group.
const REJOIN_DEFERRAL: Duration = Duration::from_secs(2);

/// The job thread's state.
pub(super) struct Job<'a, K> {
    pub(super) cfg: &'a RunConfig,
    /// Set on SIGINT/SIGTERM: every wait for Kafka gives up on it.
    pub(super) stop: &'a AtomicBool,
    /// Kafka, as the job thread sees it.
    pub(super) kafka: K,
    pub(super) state: State,
    /// The offsets of the last commit known to have gone through (or restored), per partition:
    /// how a commit whose outcome was unknown is told apart afterwards.
    pub(super) last_committed: BTreeMap<i32, i64>,
    pub(super) processor: Processor,
    pub(super) emitted: Emitted,
    pub(super) profiles: Option<TableFollower>,
    /// Per owned partition: when a record last arrived, and whether it was declared silent
    /// since (the wall-clock rule).
    pub(super) last_heard: BTreeMap<i32, (Instant, bool)>,
    /// Partitions rewound whose seek the reader has not yet confirmed: records of theirs
    /// polled before the seek are stale.
    pub(super) seeks: Seeks,
    /// Something was processed since the last commit.
    pub(super) dirty: bool,
    /// A broker outage being waited out.
    pub(super) outage: Outage,
    /// When each alert sent since the last commit was fired: its latency ends at the commit.
    pub(super) unacked: Vec<Instant>,
    pub(super) telemetry: Telemetry,
    /// At-least-once: where commits go to be done off this thread, and their answers.
    pub(super) committer: Option<Link>,
    /// New transactional producers started since the last commit that went through.
    pub(super) renewals: u32,
    last_commit: Instant,
    last_tick: Instant,
}

/// Sets its flag when dropped: the committer thread stops on every way out of the job loop.
pub(super) struct Closing<'a>(pub(super) &'a AtomicBool);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<'a> Job<'a, Clients<'a>> {
    /// Runs the reader thread (and, at-least-once, the committer thread) and the loop until
    /// the input ends or the job is stopped; then the last commit.
    pub(super) fn run(&mut self, barrier: &RevokeBarrier) -> anyhow::Result<RunCounters> {
        let source = self.kafka.source;
        let closing = AtomicBool::new(false);
        let closing = &closing;
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let _closing = Closing(closing);
            let (to_job, from_reader) = mpsc::sync_channel::<Result<Batch, KafkaError>>(2);
            let (recycle, spare) = mpsc::channel::<Batch>();
            let reader = Reader {
                source,
                seeks: self.seeks.queue(),
                stop: self.stop,
                bounded: self.cfg.bounded,
            };
            std::thread::Builder::new()
                .name("hr-read".into())
                .spawn_scoped(scope, move || reader.serve(&to_job, &spare))?;
            if let Some((_, delivered)) = self.kafka.outputs.plain_mark() {
                let (link, work, done) = commit::link();
                let committer = Committer {
                    txn: Lent {
                        txn: self.kafka.outputs.shared_txn(),
                        source,
                        delivered,
                        stop: self.stop,
                    },
                    changelog_topic: self.cfg.changelog_topic(),
                    delivery_timeout: self.cfg.broker_timeout,
                    commit_timeout: COMMIT_TIMEOUT,
                };
                std::thread::Builder::new()
                    .name("hr-commit".into())
                    .spawn_scoped(scope, move || committer.serve(&work, &done, closing))?;
                self.committer = Some(link);
            }
            let validation = Validation::default();
            while self.turn(barrier, &from_reader, &recycle, &validation)? {}
            // The last commit is done here, on this thread, once the one in flight is answered.
            self.settle(true)?;
            self.committer = None;
            Ok(())
        })?;
        self.drain()
    }
}

impl<'a, K: Broker> Job<'a, K> {
    pub(super) fn new(
        cfg: &'a RunConfig,
        stop: &'a AtomicBool,
        kafka: K,
        processor: Processor,
        profiles: Option<TableFollower>,
    ) -> Self {
        let now = Instant::now();
        Self {
            cfg,
            stop,
            kafka,
            state: State::Reading,
            last_committed: BTreeMap::new(),
            processor,
            emitted: Emitted::default(),
            profiles,
            last_heard: BTreeMap::new(),
            seeks: Seeks::default(),
            dirty: false,
            outage: Outage::default(),
            unacked: Vec::new(),
            telemetry: Telemetry::new(),
            committer: None,
            renewals: 0,
            last_commit: now,
            last_tick: now,
        }
    }

    /// The clients, to be closed.
    pub(super) fn into_parts(self) -> (K, Option<TableFollower>) {
        (self.kafka, self.profiles)
    }

    /// One turn of the loop; `false` once the reader thread has ended.
    pub(super) fn turn(
        &mut self,
        barrier: &RevokeBarrier,
        batches: &Receiver<Result<Batch, KafkaError>>,
        recycle: &Sender<Batch>,
        validation: &Validation,
    ) -> anyhow::Result<bool> {
        if let Some(h) = &self.cfg.health {
            h.beat();
        }
        self.settle(false)?;
        if let Some((ps, lost)) = barrier.pending() {
            self.on_revoke(&ps, lost)?;
            barrier.release();
        }
        let batch = match batches.recv_timeout(Duration::from_millis(50)) {
            Ok(b) => Some(b.map_err(|e| {
                let e = refused(self.cfg, "READ", &self.cfg.input_topic)(e);
                anyhow::anyhow!(e).context("reading the input")
            })?),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        if let Some(mut batch) = batch {
            batch.parse(validation);
            if batch.records > 0 {
                self.telemetry.records_read();
                self.broker_up();
            }
            self.apply(&batch)?;
            // The events' memory is freed on the thread that allocated it: freed on the
            // reader's thread it never came back to this one's cache (a fifth of both
            // threads' time went to malloc and free).
            batch.parsed.clear();
            let _ = recycle.send(batch);
        }
        let now = Instant::now();
        if now.duration_since(self.last_tick) >= Duration::from_millis(200) {
            self.last_tick = now;
            self.processor.tick(now, &mut self.emitted);
            self.send_outputs(None)?;
            self.watch_partitions(now)?;
            self.watch_broker(now)?;
            self.update_gauges(now);
        }
        self.follow_group();
        let since = now.duration_since(self.last_commit);
        let due = match self.state {
            State::Reading => since >= self.cfg.commit_interval,
            State::Rebalancing => since >= self.cfg.commit_interval + REJOIN_DEFERRAL,
            State::Committing(_) | State::Draining | State::Done => false,
        };
        if due && self.dirty {
            self.last_commit = now;
            self.commit_in_turn()?;
        }
        self.log_progress(now);
        Ok(true)
    }

    /// `Reading` ⇄ `Rebalancing` as the consumer rejoins its group and is back.
    fn follow_group(&mut self) {
        let rejoining = self.kafka.rejoining();
        match self.state {
            State::Reading if rejoining => {
                tracing::debug!("The consumer rejoins its group; commits wait.");
                self.state = State::Rebalancing;
            }
            State::Rebalancing if !rejoining => self.state = State::Reading,
            _ => {}
        }
    }

    /// After the loop: a finished bounded input fires what is open, and the last commit.
    pub(super) fn drain(&mut self) -> anyhow::Result<RunCounters> {
        self.state = State::Draining;
        let finished = self.cfg.bounded && !self.stop.load(Ordering::Relaxed);
        if finished {
            self.processor.finish(&mut self.emitted);
            self.send_outputs(None)?;
        }
        // The last commit must go through: exiting after an aborted one would report success
        // for work that no reader can see (the next run would redo it, but say so now).
        if !self.commit(finished)? {
            bail!(
                "the last commit was aborted; nothing since the previous commit is visible, and \
                 the next run of group {} redoes it",
                self.cfg.group
            );
        }
        self.state = State::Done;
        Ok(self.log_exit())
    }

    /// Applies a batch's items in order: rebalances, confirmed seeks, records.
    pub(super) fn apply(&mut self, batch: &Batch) -> anyhow::Result<()> {
        // Outcomes counted here and added to the metrics once per batch.
        let mut tally = Tally::default();
        // One reading of the clock per batch (a batch takes well under a millisecond).
        let now = Instant::now();
        for item in &batch.items {
            match item {
                Item::Rebalance(RebalanceEvent::Assigned(ps)) => self.on_assign(ps)?,
                Item::Rebalance(RebalanceEvent::Revoked(ps)) => {
                    self.drop_partitions(ps);
                    tracing::info!(partitions = ?ps, "Revoked.");
                }
                Item::Seeked(p) => self.seeks.clear(*p),
                Item::Record(rec) => {
                    if self.seeks.is_stale(rec.partition) {
                        tally.skipped += 1;
                        continue;
                    }
                    if let Some(heard) = self.last_heard.get_mut(&rec.partition) {
                        *heard = (now, false);
                    }
                    let parsed = &batch.parsed[rec.index];
                    let verdict = self.processor.process(
                        InputRecord {
                            partition: rec.partition,
                            offset: rec.offset,
                            timestamp_ms: rec.timestamp_ms,
                            parsed,
                        },
                        &mut self.emitted,
                    );
                    if verdict != Verdict::Skipped {
                        self.dirty = true;
                    }
                    tally.count(&verdict, self.cfg.metrics.as_ref());
                    self.divert(batch, rec, verdict)?;
                    self.send_outputs(Some((rec.partition, rec.offset)))?;
                }
            }
        }
        if let Some(m) = &self.cfg.metrics {
            tally.add_to(m);
        }
        Ok(())
    }

    fn divert(&mut self, batch: &Batch, rec: &BatchRecord, verdict: Verdict) -> anyhow::Result<()> {
        let (topic, code, message, lateness) = match verdict {
            Verdict::Windowed | Verdict::Skipped => return Ok(()),
            Verdict::DeadLetter { code, message } => (&self.cfg.dlq_topic, code, message, None),
            Verdict::Late {
                watermark_ms,
                lateness_ms,
                message,
            } => (
                &self.cfg.late_topic,
                "late",
                message,
                Some((watermark_ms, lateness_ms)),
            ),
        };
        let payload = &batch.bytes[rec.payload.clone()];
        let key = rec.key.clone().map(|k| &batch.bytes[k]);
        let why = Diversion {
            extra: &[],
            code,
            message: &message,
            source_topic: &self.cfg.input_topic,
            source_partition: rec.partition,
            source_offset: rec.offset,
            lateness,
        };
        self.kafka.divert(topic, key, payload, &why, self.cfg)
    }

    fn send_outputs(&mut self, origin: Option<(i32, i64)>) -> anyhow::Result<()> {
        if self.emitted.is_empty() {
            return Ok(());
        }
        let emitted = std::mem::take(&mut self.emitted);
        self.kafka.emit(&emitted, origin, self.cfg)?;
        if let Some(m) = &self.cfg.metrics {
            // The windows fired just now: the watermark passed their ends in this call.
            let fired = Instant::now();
            for a in &emitted.alerts {
                m.alert(a.alert.alert_type);
                self.unacked.push(fired);
            }
            for e in &emitted.episodes {
                m.episode(e.episode.state, e.episode.kind);
            }
        }
        self.emitted = emitted;
        self.emitted.clear();
        Ok(())
    }

    /// The wall-clock rule: a partition from which no record at all arrived for
    /// `partition_silence_after` has every patient declared silent, once until it sends again.
    /// Also applies profile updates that arrived meanwhile.
    fn watch_partitions(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(follower) = &self.profiles {
            match follower.poll() {
                Ok(updates) => apply_profiles(&mut self.processor, follower.topic(), updates),
                Err(e) if e.is_fatal() => {
                    let e = refused(self.cfg, "READ", follower.topic())(e);
                    return Err(anyhow::anyhow!(e).context("following the profiles topic"));
                }
                Err(e) => tracing::debug!(error = %e, "Profiles poll error; librdkafka retries."),
            }
        }
        let Some(after) = self.cfg.partition_silence_after else {
            return Ok(());
        };
        let due: Vec<i32> = self
            .last_heard
            .iter()
            .filter(|(_, (at, silenced))| !silenced && now.duration_since(*at) >= after)
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            tracing::warn!(
                partition = p,
                silent_s = after.as_secs(),
                "No record from this partition: every patient on it is declared silent (signal loss)."
            );
            self.processor.silence_partition(p, &mut self.emitted);
            self.last_heard.insert(p, (now, true));
            self.dirty = true;
        }
        self.send_outputs(None)
    }
}
