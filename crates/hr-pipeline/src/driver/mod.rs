//! The Kafka driver around the [`Processor`]: a reader thread, transactions, rebalances,
//! restores, broker outages and record-sized failures.
//!
//! # Delivery
//!
//! Every `--commit-interval` the driver commits one Kafka transaction (KIP-447) holding the
//! changelog records of what changed, the consumed offsets and, with
//! [`Guarantee::ExactlyOnce`], every alert, dead letter and late record produced since the
//! previous commit. With [`Guarantee::AtLeastOnce`] those outputs go through a separate
//! idempotent producer: they are visible at once, and a failure may repeat them
//! (byte-identical in key and partition scope), never lose them. Its commits run on a committer
//! thread, which commits the offsets only once every output queued before the commit was cut
//! is acknowledged, while the job reads on.
//!
//! In both modes state and offsets commit together, and the group coordinator refuses the
//! offsets of a member that has lost its partitions: an instance paused past its session
//! timeout (a long GC pause, a VM migration) cannot make its stale state visible. Its commit
//! fails, its transaction is aborted, and it goes back to the last committed state.
//!
//! # Rebalances
//!
//! Assignment is incremental (cooperative-sticky): only the partitions that change owner are
//! revoked and assigned. Before partitions are revoked, inside librdkafka's rebalance callback,
//! the job commits what it has processed (as Kafka Streams does in `onPartitionsRevoked`) and
//! drops them. Partitions *lost* (the group dropped this member) are dropped without a commit,
//! and the rest goes back to the last commit; no commit is sent while the consumer is outside
//! its group, whose offsets the coordinator would accept unfenced. On
//! assignment it first asks the group for the committed offsets, which with `read_committed`
//! waits until no transaction holding offsets for them is open, then reads their changelog
//! partitions: state and offsets come from the same committed transaction.
//!
//! # Faults
//!
//! A failed commit that is not fatal (broker gone, coordinator moved, transaction timed out,
//! this member fenced by a rebalance) aborts the transaction and rewinds: the owned partitions
//! are restored from the changelog and the reader seeks back to the committed offsets, so the
//! work is redone, not lost. A broker that stops answering is waited for (one log line when it
//! goes, one when it returns) up to `broker_timeout`; then the job exits with an error saying
//! so. Only fatal errors (a fenced producer, authorization, a topic gone) end the job at once.
//! A record too large for its topic is replaced by a small dead letter saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hr_kafka::{
    Admin, Diversion, KafkaError, PartitionReader, RebalanceEvent, Source, SourceConfig,
    TableFollower,
};
use hr_model::Validation;

use crate::changelog;
use crate::http::Health;
use crate::metrics::{CommitResult, Metrics};
use crate::processor::{Emitted, InputRecord, Processor, ProcessorConfig, RunCounters, Verdict};

mod batch;
mod committer;
mod outputs;
mod rebalance;
mod topics;

use batch::{Batch, BatchRecord, Item, Tally};
use outputs::{Outputs, output_limit};
use rebalance::{RevokeBarrier, lock};
use topics::{
    apply_profiles, ensure_changelog, ensure_output_topics, follow_profiles, reader_props,
};

/// How long a restore waits for a changelog partition to catch up with the committed offset
/// (a committed transaction's markers still on their way): a little over the transaction
/// timeout, after which any open transaction is aborted by the broker.
const CHANGELOG_CATCH_UP: Duration = Duration::from_secs(15);

/// How long a transaction's own steps (offsets, commit, abort) may take in all, calls resumed
/// after a timeout included: longer than a leader election after a broker dies (KRaft's
/// broker session timeout is 9 s), so a commit caught by one finishes instead of being given up.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The same once the job is stopping: a stop must not wait on a dead cluster for long.
const STOPPING_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one attempt at a broker call may take before the retry loop looks at the stop
/// flag and tries again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much longer than the commit interval a commit waits while the consumer rejoins its group.
const REJOIN_DEFERRAL: Duration = Duration::from_secs(2);

/// How long reading one changelog partition may take (a large state on a loaded machine).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// How outputs reach Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs, state and offsets in one transaction per commit interval: `read_committed`
    /// consumers see every alert exactly once.
    ExactlyOnce,
    /// Outputs visible at once through an idempotent producer; state and offsets still commit
    /// together in a transaction (so fencing holds). A failure may repeat outputs.
    AtLeastOnce,
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Consumer group; also names the changelog topic `<group>-changelog`.
    pub group: String,
    /// Readings topic.
    pub input_topic: String,
    /// Alerts topic.
    pub alerts_topic: String,
    /// Dead-letter topic for invalid readings.
    pub dlq_topic: String,
    /// Topic for readings too late for their windows.
    pub late_topic: String,
    /// Topic for raised and cleared episodes (a pager reads this).
    pub episodes_topic: String,
    /// Compacted topic of per-patient thresholds, read as a table; `None` reads none.
    pub profiles_topic: Option<String>,
    /// Processing time after which a partition with no records at all has every patient
    /// declared silent (signal loss); `None` disables this one wall-clock rule.
    pub partition_silence_after: Option<Duration>,
    /// What the processor does.
    pub processor: ProcessorConfig,
    /// Delivery guarantee.
    pub guarantee: Guarantee,
    /// Time between commits.
    pub commit_interval: Duration,
    /// How long a broker outage is ridden out before the job gives up.
    pub broker_timeout: Duration,
    /// Directory for the alerts JSONL files; `None` writes none.
    pub alerts_dir: Option<PathBuf>,
    /// Read from the earliest offset when the group has none (otherwise the latest).
    pub from_beginning: bool,
    /// Stop at the end offsets seen at start.
    pub bounded: bool,
    /// Time between counter log lines.
    pub log_every: Duration,
    /// librdkafka properties for every client.
    pub overrides: Vec<(String, String)>,
    /// Replication of the topics the job creates (changelog, episodes, profiles): the
    /// cluster's default unless set.
    pub replication: hr_kafka::Replication,
    /// Where the job reports what it does (`/metrics`); `None` counts nothing.
    pub metrics: Option<Metrics>,
    /// Liveness and readiness (`/healthz`, `/readyz`): beaten each turn of the job loop,
    /// ready once the assigned partitions are restored.
    pub health: Option<Health>,
}

impl RunConfig {
    /// The seed's defaults for `bootstrap`: `heart_rate_events` -> `heart_rate_alerts`, group
    /// `hr-pipeline`, one-minute tumbling windows, 5 s out-of-orderness, every window emitted,
    /// exactly-once, a new group reading from the earliest offset.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            group: "hr-pipeline".into(),
            input_topic: "heart_rate_events".into(),
            alerts_topic: "heart_rate_alerts".into(),
            dlq_topic: "heart_rate_events_dlq".into(),
            late_topic: "heart_rate_late".into(),
            episodes_topic: "heart_rate_episodes".into(),
            profiles_topic: Some("patient_profiles".into()),
            partition_silence_after: Some(Duration::from_secs(60)),
            processor: ProcessorConfig::default(),
            guarantee: Guarantee::ExactlyOnce,
            commit_interval: Duration::from_millis(200),
            broker_timeout: Duration::from_secs(300),
            alerts_dir: Some(PathBuf::from("output/alerts")),
            from_beginning: true,
            bounded: false,
            log_every: Duration::from_secs(5),
            overrides: Vec::new(),
            replication: hr_kafka::Replication::default(),
            metrics: None,
            health: None,
        }
    }

    /// The compacted changelog topic holding window state, co-partitioned with the input.
    pub fn changelog_topic(&self) -> String {
        format!("{}-changelog", self.group)
    }
}

/// Runs the job until `stop` is set (or, bounded, until the end offsets are reached), then
/// commits what is done and returns the counters.
///
/// # Errors
/// A fatal Kafka error, a broker unreachable for longer than `broker_timeout`, an invalid
/// window configuration, a corrupt changelog record, or an I/O error on the alerts files.
pub fn run(cfg: &RunConfig, stop: &AtomicBool) -> anyhow::Result<RunCounters> {
    let mut processor = Processor::new(cfg.processor.clone())?;
    let admin = Admin::new(&hr_kafka::client_config(&cfg.bootstrap, &cfg.overrides))?;
    let txn_id = outputs::txn_id(cfg);
    // Start-up's broker round trips overlap: the transactional producer's init, the profiles
    // read and the input and topic checks each wait on the broker, not on each other. Errors
    // are reported in that order of reading: profiles, input, topics, producer.
    let (txn, profiles, checked) = std::thread::scope(|s| {
        let txn = s.spawn(|| {
            let txn = outputs::new_txn_sink(cfg, &txn_id);
            tracing::debug!(
                since_start_ms = since_start_ms(),
                "Start-up: producer ready."
            );
            txn
        });
        let profiles = s.spawn(|| {
            let profiles = cfg
                .profiles_topic
                .as_deref()
                .map(|topic| follow_profiles(cfg, &admin, topic, &mut processor))
                .transpose();
            tracing::debug!(
                since_start_ms = since_start_ms(),
                "Start-up: profiles read."
            );
            profiles
        });
        let checked = open_input(cfg, &admin);
        (joined(txn), joined(profiles), checked)
    });
    let profiles = profiles?;
    let (source, limit) = checked?;
    let outputs = Outputs::new(cfg, limit, txn_id, txn?)?;
    drop(admin);
    tracing::debug!(
        since_start_ms = since_start_ms(),
        "Start-up: outputs ready."
    );
    let reader = PartitionReader::new(&cfg.bootstrap, &reader_props(cfg), &cfg.changelog_topic())?;
    let barrier = Arc::new(RevokeBarrier::default());
    {
        let barrier = Arc::clone(&barrier);
        source.set_revoke_hook(Box::new(move |ps, lost| barrier.wait_for_job(ps, lost)));
    }
    let mut job = Job {
        cfg,
        stop,
        last_committed: BTreeMap::new(),
        processor,
        outputs,
        reader,
        source: &source,
        emitted: Emitted::default(),
        profiles,
        last_heard: BTreeMap::new(),
        awaiting_seek: BTreeSet::new(),
        dirty: false,
        broker_down_since: None,
        last_ping: Instant::now(),
        unacked: Vec::new(),
        synced: Synced::default(),
        lag: 0,
        committer: None,
        replies: None,
        in_flight: None,
    };
    let result = job.run(stop, &barrier);
    // The rebalance callback must never wait for a job that has ended.
    barrier.close();
    let Job {
        outputs,
        reader,
        profiles,
        ..
    } = job;
    close_within((outputs, reader, profiles, source), CLOSE_TIMEOUT);
    result
}

/// How long closing the Kafka clients (leaving the group, ending the producers) may take once
/// the job is done: it is under a second normally, but was seen to take a minute on a cluster
/// after a network cut, and a stopped job must exit within seconds.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The input source, after the changelog and output topics are checked, and the largest
/// output record the topics take.
fn open_input(cfg: &RunConfig, admin: &Admin) -> anyhow::Result<(Source, usize)> {
    // Incremental rebalancing: a member joining or leaving moves only the partitions it must,
    // and the others are read on (eager assignment, librdkafka's default, revokes every
    // partition of every member and restores them all). `-X partition.assignment.strategy=
    // range,roundrobin` goes back to eager; `-X group.protocol=consumer` (KIP-848, incremental
    // too, assigned by the broker) takes no assignment strategy.
    let mut src_props = vec![("isolation.level".to_owned(), "read_committed".to_owned())];
    let broker_assigns = cfg
        .overrides
        .iter()
        .any(|(k, v)| k == "group.protocol" && v == "consumer");
    if !broker_assigns {
        src_props.push((
            "partition.assignment.strategy".to_owned(),
            "cooperative-sticky".to_owned(),
        ));
    }
    src_props.extend(cfg.overrides.iter().cloned());
    let source = Source::new(&SourceConfig {
        bootstrap: cfg.bootstrap.clone(),
        group: cfg.group.clone(),
        topic: cfg.input_topic.clone(),
        from_beginning: cfg.from_beginning,
        bounded: cfg.bounded,
        overrides: src_props,
    })
    .map_err(refused(cfg, "READ", &cfg.input_topic))
    .with_context(|| format!("reading the input topic {}", cfg.input_topic))?;
    let partitions = source
        .topic_partitions(Duration::from_secs(30))
        .map_err(refused(cfg, "READ", &cfg.input_topic))
        .with_context(|| format!("reading the partitions of {}", cfg.input_topic))?;
    ensure_changelog(cfg, admin, partitions.len() as i32)?;
    tracing::debug!(
        since_start_ms = since_start_ms(),
        "Start-up: changelog checked."
    );
    let limit = output_limit(cfg, admin)?;
    tracing::debug!(
        since_start_ms = since_start_ms(),
        "Start-up: output topics checked."
    );
    Ok((source, limit))
}

/// Milliseconds since the process started, for the start-up's debug lines.
fn since_start_ms() -> u64 {
    hr_cli::since_start().as_millis() as u64
}

/// A scoped thread's result; its panic goes on in the caller.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Drops `clients` on a thread of their own and waits up to `limit`; past that the process
/// goes on without them (the group then moves their partitions after the session timeout).
fn close_within<T: Send + 'static>(clients: T, limit: Duration) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("hr-close".into())
        .spawn(move || {
            drop(clients);
            let _ = tx.send(());
        });
    if spawned.is_ok() && rx.recv_timeout(limit).is_err() {
        tracing::warn!(
            limit_s = limit.as_secs(),
            "The Kafka clients did not close in time; exiting without waiting for them."
        );
    }
}

struct Job<'a> {
    cfg: &'a RunConfig,
    /// Set on SIGINT/SIGTERM: every wait for Kafka gives up on it.
    stop: &'a AtomicBool,
    /// The offsets of the last commit known to have gone through (or restored), per partition:
    /// how a commit whose outcome was unknown is told apart afterwards.
    last_committed: BTreeMap<i32, i64>,
    processor: Processor,
    outputs: Outputs,
    reader: PartitionReader,
    source: &'a Source,
    emitted: Emitted,
    profiles: Option<TableFollower>,
    /// Per owned partition: when a record last arrived, and whether it was declared silent
    /// since (the wall-clock rule).
    last_heard: BTreeMap<i32, (Instant, bool)>,
    /// Partitions rewound whose seek the reader has not yet confirmed: records of theirs
    /// polled before the seek are stale.
    awaiting_seek: BTreeSet<i32>,
    /// Something was processed since the last commit.
    dirty: bool,
    broker_down_since: Option<Instant>,
    last_ping: Instant,
    /// When each alert sent since the last commit was fired: its latency ends at the commit.
    unacked: Vec<Instant>,
    /// Totals already added to the metrics' counters.
    synced: Synced,
    /// Records behind the ends of the owned partitions, as of the last gauge update.
    lag: i64,
    /// At-least-once: where commits go to be done off this thread, and their answers.
    committer: Option<mpsc::Sender<committer::Work>>,
    replies: Option<mpsc::Receiver<committer::Done>>,
    /// The commit on the committer thread, not yet answered.
    in_flight: Option<InFlight>,
}

/// A commit handed to the committer thread.
struct InFlight {
    started: Instant,
    /// When each alert it covers was fired.
    unacked: Vec<Instant>,
    offsets: BTreeMap<i32, i64>,
}

/// Sets its flag when dropped: the committer thread stops on every way out of the job loop.
struct Closing<'a>(&'a AtomicBool);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What [`Job::update_gauges`] last handed to the metrics.
#[derive(Default)]
struct Synced {
    windows_fired: u64,
    replaced: u64,
    at: Option<Instant>,
}

impl Job<'_> {
    fn run(&mut self, stop: &AtomicBool, barrier: &RevokeBarrier) -> anyhow::Result<RunCounters> {
        let validation = Validation::default();
        let mut last_commit = Instant::now();
        let mut last_log = Instant::now();
        let mut last_tick = Instant::now();
        let mut logged_read = 0u64;
        let mut first_record: Option<Instant> = None;
        let source = self.source;
        let bounded = self.cfg.bounded;
        // Seeks for the reader thread to perform between polls.
        let seeks = Mutex::new(Vec::new());
        let seeks = &seeks;
        let closing = AtomicBool::new(false);
        let closing = &closing;
        let outcome = std::thread::scope(|scope| -> anyhow::Result<()> {
            let _closing = Closing(closing);
            let (to_job, from_reader) = mpsc::sync_channel::<Result<Batch, KafkaError>>(2);
            let (recycle, spare) = mpsc::channel::<Batch>();
            std::thread::Builder::new()
                .name("hr-read".into())
                .spawn_scoped(scope, move || {
                    // A seek still to do means a partition goes back: not done yet.
                    let finished =
                        || bounded && source.is_done() && lock(seeks).is_empty();
                    while !(stop.load(Ordering::Relaxed) || finished()) {
                        let mut batch = spare.try_recv().unwrap_or_default();
                        batch.clear();
                        for (p, offset) in std::mem::take(&mut *lock(seeks)) {
                            if let Err(e) = source.seek(p, offset, Duration::from_secs(10)) {
                                tracing::warn!(partition = p, offset, error = %e, "Seek refused; the partition's next owner resumes from the committed offset.");
                            }
                            batch.items.push(Item::Seeked(p));
                        }
                        let filled = batch
                            .fill(source, Duration::from_millis(100))
                            .map(|()| batch);
                        let failed = filled.is_err();
                        if to_job.send(filled).is_err() || failed {
                            break;
                        }
                    }
                })?;
            if let Some((_, delivered)) = self.outputs.plain_mark() {
                let (work, to_committer) = mpsc::channel();
                let (done, replies) = mpsc::channel();
                let committer = committer::Committer {
                    source,
                    delivered,
                    changelog_topic: self.cfg.changelog_topic(),
                    delivery_timeout: self.cfg.broker_timeout,
                    commit_timeout: COMMIT_TIMEOUT,
                };
                std::thread::Builder::new()
                    .name("hr-commit".into())
                    .spawn_scoped(scope, move || {
                        committer.serve(&to_committer, &done, closing);
                    })?;
                self.committer = Some(work);
                self.replies = Some(replies);
            }
            loop {
                if let Some(h) = &self.cfg.health {
                    h.beat();
                }
                self.settle(false, seeks)?;
                if let Some((ps, lost)) = barrier.pending() {
                    self.on_revoke(&ps, lost, seeks)?;
                    barrier.release();
                }
                let batch = match from_reader.recv_timeout(Duration::from_millis(50)) {
                    Ok(b) => Some(b.map_err(|e| {
                        let e = refused(self.cfg, "READ", &self.cfg.input_topic)(e);
                        anyhow::anyhow!(e).context("reading the input")
                    })?),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                if let Some(mut batch) = batch {
                    batch.parse(&validation);
                    if batch.records > 0 {
                        if first_record.is_none() {
                            // Start-up, as a figure: `just bench` reads it.
                            tracing::info!(since_start_ms = since_start_ms(), "First record read.");
                        }
                        first_record.get_or_insert_with(Instant::now);
                        self.broker_up();
                    }
                    self.apply(&batch, seeks)?;
                    // The events' memory is freed on the thread that allocated it: freed on the
                    // reader's thread it never came back to this one's cache (a fifth of both
                    // threads' time went to malloc and free).
                    batch.parsed.clear();
                    let _ = recycle.send(batch);
                }
                let now = Instant::now();
                if now.duration_since(last_tick) >= Duration::from_millis(200) {
                    last_tick = now;
                    self.processor.tick(now, &mut self.emitted);
                    self.send_outputs(None)?;
                    self.watch_partitions(now)?;
                    self.watch_broker(now)?;
                    self.update_gauges(now);
                }
                // A commit sent while the consumer rejoins its group would carry the old
                // generation and be refused as the new one settles (aborted and redone: a
                // second's stall); it waits for the rejoin, for up to REJOIN_DEFERRAL.
                let since = now.duration_since(last_commit);
                if since >= self.cfg.commit_interval
                    && self.dirty
                    && self.in_flight.is_none()
                    && (!source.rejoining() || since >= self.cfg.commit_interval + REJOIN_DEFERRAL)
                {
                    last_commit = now;
                    if self.committer.is_some() {
                        self.commit_off_thread()?;
                    } else {
                        self.commit(false, seeks)?;
                    }
                }
                if now.duration_since(last_log) >= self.cfg.log_every {
                    let c = self.processor.counters();
                    let rate = per_second(
                        c.read.saturating_sub(logged_read),
                        now.duration_since(last_log),
                    );
                    last_log = now;
                    logged_read = c.read;
                    log_counters(&c, self.outputs.replaced, rate, self.lag, "Progress.");
                }
            }
            // The last commit is done here, on this thread, once the one in flight is answered.
            self.settle(true, seeks)?;
            self.committer = None;
            self.replies = None;
            Ok(())
        });
        outcome?;
        let finished = self.cfg.bounded && !stop.load(Ordering::Relaxed);
        if finished {
            self.processor.finish(&mut self.emitted);
            self.send_outputs(None)?;
        }
        // The last commit must go through: exiting after an aborted one would report success
        // for work that no reader can see (the next run would redo it, but say so now).
        if !self.commit(finished, seeks)? {
            bail!(
                "the last commit was aborted; nothing since the previous commit is visible, and \
                 the next run of group {} redoes it",
                self.cfg.group
            );
        }
        self.synced.at = None;
        self.update_gauges(Instant::now());
        let c = self.processor.counters();
        let rate = first_record.map_or(0, |first| per_second(c.read, first.elapsed()));
        log_counters(&c, self.outputs.replaced, rate, self.lag, "Exit.");
        if let Some(first) = first_record {
            let seconds = first.elapsed().as_secs_f64();
            tracing::info!(
                records = c.read,
                seconds = %format!("{seconds:.3}"),
                records_per_s = (c.read as f64 / seconds) as u64,
                "Throughput from the first record to the last commit."
            );
        }
        Ok(c)
    }

    fn apply(&mut self, batch: &Batch, seeks: &Mutex<Vec<(i32, i64)>>) -> anyhow::Result<()> {
        // Outcomes counted here and added to the metrics once per batch.
        let mut tally = Tally::default();
        // One reading of the clock per batch (a batch takes well under a millisecond).
        let now = Instant::now();
        for item in &batch.items {
            match item {
                Item::Rebalance(RebalanceEvent::Assigned(ps)) => self.on_assign(ps, seeks)?,
                Item::Rebalance(RebalanceEvent::Revoked(ps)) => {
                    for p in ps {
                        self.processor.revoke(*p);
                        self.awaiting_seek.remove(p);
                        self.last_heard.remove(p);
                        if let Some(m) = &self.cfg.metrics {
                            m.remove_partition(*p);
                        }
                    }
                    tracing::info!(partitions = ?ps, "Revoked.");
                }
                Item::Seeked(p) => {
                    self.awaiting_seek.remove(p);
                }
                Item::Record(rec) => {
                    if self.awaiting_seek.contains(&rec.partition) {
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
        let topic = topic.clone();
        self.outputs.divert(&topic, key, payload, &why, self.cfg)
    }

    fn send_outputs(&mut self, origin: Option<(i32, i64)>) -> anyhow::Result<()> {
        if self.emitted.is_empty() {
            return Ok(());
        }
        let emitted = std::mem::take(&mut self.emitted);
        for a in &emitted.alerts {
            self.outputs.alert(a, origin, self.cfg)?;
        }
        for e in &emitted.episodes {
            self.outputs.episode(e, origin, self.cfg)?;
        }
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

    /// Commits what was processed before `ps` are revoked, then drops them. Partitions `lost`
    /// (the group dropped this member and may have given them to another already) are dropped
    /// without a commit: the open transaction is aborted and the partitions still owned go back
    /// to their last commit, so nothing of the lost ones is published twice.
    fn on_revoke(
        &mut self,
        ps: &[i32],
        lost: bool,
        seeks: &Mutex<Vec<(i32, i64)>>,
    ) -> anyhow::Result<()> {
        self.settle(true, seeks)?;
        let owned: Vec<i32> = ps
            .iter()
            .copied()
            .filter(|p| self.processor.owns(*p))
            .collect();
        if lost && !owned.is_empty() {
            tracing::warn!(partitions = ?owned, "Partitions lost: the group dropped this instance; their work since the last commit is dropped, and their next owner redoes it.");
        } else if !owned.is_empty() && self.dirty {
            tracing::debug!(partitions = ?owned, "Committing before the revocation.");
            self.commit(false, seeks)?;
        }
        for &p in &owned {
            self.processor.revoke(p);
            self.awaiting_seek.remove(&p);
            self.last_heard.remove(&p);
            if let Some(m) = &self.cfg.metrics {
                m.remove_partition(p);
            }
        }
        if lost && !owned.is_empty() {
            self.unacked.clear();
            self.recover(seeks, None)?;
        }
        Ok(())
    }

    fn on_assign(&mut self, ps: &[i32], seeks: &Mutex<Vec<(i32, i64)>>) -> anyhow::Result<()> {
        let started = Instant::now();
        if let Some(h) = &self.cfg.health {
            h.set_ready(false);
        }
        // Committed offsets first: with read_committed the answer waits for any transaction
        // still holding offsets for these partitions, so the changelog read next is as
        // committed as the offsets are.
        let committed = self.retry("fetching committed offsets", |job| {
            job.source.committed(ps, ATTEMPT_TIMEOUT).map_err(refused(
                job.cfg,
                "READ",
                &job.cfg.input_topic,
            ))
        })?;
        for &p in ps {
            self.restore(p, committed.get(&p).copied().flatten(), seeks)?;
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
    fn restore(
        &mut self,
        p: i32,
        committed: Option<i64>,
        seeks: &Mutex<Vec<(i32, i64)>>,
    ) -> anyhow::Result<()> {
        // Every commit writes a partition's offset and its changelog record in one transaction,
        // so a changelog behind the committed offset is one whose transaction markers have not
        // reached this changelog partition yet (the group's offsets become stable first):
        // restoring it would redo work the committed transaction already published. Read again
        // until it catches up, for as long as a transaction may take to finish.
        let started = Instant::now();
        let (table, restored) = loop {
            let table = self.retry("reading the changelog", |job| {
                let read = job.reader.read(p, RESTORE_TIMEOUT).map_err(refused(
                    job.cfg,
                    "READ",
                    &job.cfg.changelog_topic(),
                ));
                if read.is_err() {
                    // A reader that asked a broker that died may keep asking it until its
                    // metadata is refreshed; a new one asks the cluster who leads now.
                    if let Ok(fresh) = PartitionReader::new(
                        &job.cfg.bootstrap,
                        &reader_props(job.cfg),
                        &job.cfg.changelog_topic(),
                    ) {
                        job.reader = fresh;
                    }
                }
                read
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
            lock(seeks).push((p, next));
            self.awaiting_seek.insert(p);
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

    /// Commits: flush outputs (at-least-once), changelog records, offsets, in one transaction;
    /// on a failure that is not fatal, abort and rewind to the last commit.
    /// Whether the commit went through (`false`: it was aborted and the work rewound).
    fn commit(&mut self, finished: bool, seeks: &Mutex<Vec<(i32, i64)>>) -> anyhow::Result<bool> {
        let started = Instant::now();
        // The alert file first, and its failure ends the job: a full or broken disk is not
        // something an abort and a retry can mend.
        self.outputs
            .prepare_file()
            .context("writing the alerts file before a commit")?;
        let timeout = if self.stop.load(Ordering::Relaxed) {
            STOPPING_COMMIT_TIMEOUT
        } else {
            COMMIT_TIMEOUT
        };
        let result = self.try_commit(finished, timeout);
        if result.is_ok() {
            self.dirty = false;
        }
        let unacked = std::mem::take(&mut self.unacked);
        let offsets = self.processor.offsets();
        self.committed(result, started, unacked, &offsets, seeks)
    }

    /// At-least-once: cuts a commit (the changed keys, the offsets, a mark in the outputs) and
    /// hands it to the committer thread; [`Self::settle`] takes its answer.
    fn commit_off_thread(&mut self) -> anyhow::Result<()> {
        let (Some(to), Some((mark, _))) = (self.committer.clone(), self.outputs.plain_mark())
        else {
            bail!("no committer thread");
        };
        let started = Instant::now();
        self.outputs
            .prepare_file()
            .context("writing the alerts file before a commit")?;
        let records = self.take_changelog(false);
        let offsets = self.processor.offsets();
        let txn = self.outputs.lend_txn();
        let work = committer::Work {
            txn,
            mark,
            records,
            offsets: offsets.clone(),
        };
        if to.send(work).is_err() {
            bail!("the committer thread has ended");
        }
        self.in_flight = Some(InFlight {
            started,
            unacked: std::mem::take(&mut self.unacked),
            offsets,
        });
        self.dirty = false;
        Ok(())
    }

    /// Takes the answer of the commit in flight, if any: waiting for it when `block`, else
    /// only if it is there. A failed one rewinds as a failed commit on this thread does.
    fn settle(&mut self, block: bool, seeks: &Mutex<Vec<(i32, i64)>>) -> anyhow::Result<()> {
        let Some(replies) = &self.replies else {
            return Ok(());
        };
        if self.in_flight.is_none() {
            return Ok(());
        }
        let done = if block {
            replies.recv().ok()
        } else {
            match replies.try_recv() {
                Ok(d) => Some(d),
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        let Some(done) = done else {
            bail!("the committer thread ended with a commit in flight");
        };
        let flight = self.in_flight.take().expect("checked above");
        self.outputs.give_back(done.txn);
        self.committed(
            done.result,
            flight.started,
            flight.unacked,
            &flight.offsets,
            seeks,
        )?;
        Ok(())
    }

    /// What follows a commit, on whichever thread it was done: the alert files, metrics and
    /// the broker's state on success; on a failure that is not fatal, abort and rewind.
    fn committed(
        &mut self,
        result: Result<(), KafkaError>,
        started: Instant,
        unacked: Vec<Instant>,
        offsets: &BTreeMap<i32, i64>,
        seeks: &Mutex<Vec<(i32, i64)>>,
    ) -> anyhow::Result<bool> {
        match result {
            Ok(()) => {
                self.outputs.committed()?;
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
                    for (&p, &offset) in offsets {
                        m.set_committed_offset(p, offset);
                    }
                }
                Ok(true)
            }
            // A fenced producer is not the end of the job: its transaction was aborted by the
            // coordinator (it outlived the transaction timeout: a pause, a cut), and a new
            // producer redoes the work, for the partitions this instance still owns.
            Err(e) if e.is_fatal() && !e.is_fenced() => {
                let e = refused(self.cfg, "WRITE", &self.cfg.changelog_topic())(e);
                Err(anyhow::anyhow!(e).context("committing (a fatal error: the job cannot go on)"))
            }
            Err(e) => {
                let renew = e.is_fenced() || self.outputs.txn().in_doubt();
                if e.is_fenced() {
                    tracing::warn!(error = %e, "This instance's producer was fenced; starting a new one and going back to the last commit.");
                } else {
                    tracing::warn!(error = %e, in_doubt = renew, "Commit failed; going back to the last commit.");
                }
                if let Some(m) = &self.cfg.metrics {
                    m.observe_commit(CommitResult::Aborted, started.elapsed());
                }
                // Those alerts are redone, and timed again when they fire again.
                self.unacked.clear();
                self.recover(seeks, renew.then_some(offsets))?;
                Ok(false)
            }
        }
    }

    /// Every owned partition's changelog records since the last commit, counted in the metrics.
    fn take_changelog(&mut self, finished: bool) -> Vec<(i32, changelog::ChangelogRecord)> {
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

    fn try_commit(&mut self, finished: bool, timeout: Duration) -> Result<(), KafkaError> {
        self.outputs.flush_outputs(self.cfg.broker_timeout)?;
        let topic = self.cfg.changelog_topic();
        for (p, rec) in self.take_changelog(finished) {
            self.outputs.txn().send_record(
                &topic,
                Some(p),
                &rec.key,
                rec.value.as_deref(),
                None,
            )?;
        }
        let offsets = self.processor.offsets();
        self.outputs.txn().commit(self.source, &offsets, timeout)
    }

    /// Ends the open transaction and puts every owned partition back to its committed state.
    ///
    /// `in_doubt` holds the offsets of a commit that must not be aborted: its producer was
    /// fenced, or the commit ran out of time with its outcome unknown. A new producer with the
    /// same transactional id ends it instead (the coordinator finishes a commit it had begun,
    /// and aborts anything else), and the committed offsets then say whether it went through,
    /// which decides whether its staged alert file part is published or discarded.
    fn recover(
        &mut self,
        seeks: &Mutex<Vec<(i32, i64)>>,
        in_doubt: Option<&BTreeMap<i32, i64>>,
    ) -> anyhow::Result<()> {
        let aborted = match in_doubt {
            Some(_) => Err(anyhow::anyhow!("not abortable")),
            None => self.retry("aborting the transaction", |job| {
                job.outputs.txn().abort(COMMIT_TIMEOUT)
            }),
        };
        if let Err(e) = aborted {
            if in_doubt.is_none() {
                // An abort retried after a broker outage can leave librdkafka's transaction
                // state unusable; a new producer with the same id fences and ends it.
                tracing::warn!(error = %format!("{e:#}"), "The abort failed; starting a new transactional producer.");
            }
            let renewed = self.retry("starting a new transactional producer", |job| {
                job.outputs
                    .renew_txn(job.cfg)
                    .map_err(|e| KafkaError::State(format!("{e:#}")))
            });
            renewed?;
        }
        if let Some(attempted) = in_doubt
            && self.went_through(attempted)?
        {
            tracing::info!("The commit in doubt went through; its alert file part is published.");
            self.outputs.committed()?;
            self.last_committed
                .extend(attempted.iter().map(|(&p, &o)| (p, o)));
        }
        self.outputs.aborted()?;
        let owned: Vec<(i32, Option<i64>)> = self
            .processor
            .partitions()
            .map(|p| (p, self.processor.rewind_offset(p)))
            .collect();
        for (p, start) in owned {
            self.processor.revoke(p);
            self.restore(p, None, seeks)?;
            // Restored state gives the offset; a partition never committed goes back to where
            // this ownership started reading.
            if self.processor.rewind_offset(p).is_none()
                && let Some(start) = start
            {
                lock(seeks).push((p, start));
                self.awaiting_seek.insert(p);
            }
        }
        self.dirty = false;
        tracing::info!("Back at the last commit; redoing the work since.");
        Ok(())
    }

    /// Whether a commit of `attempted` offsets, whose outcome was unknown, went through: the
    /// group's committed offsets (stable once the new producer has ended the transaction) show
    /// an offset it moved.
    fn went_through(&mut self, attempted: &BTreeMap<i32, i64>) -> anyhow::Result<bool> {
        let ps: Vec<i32> = attempted.keys().copied().collect();
        let committed = self.retry("fetching committed offsets", |job| {
            job.source.committed(&ps, ATTEMPT_TIMEOUT)
        })?;
        Ok(attempted.iter().any(|(p, o)| {
            committed.get(p).copied().flatten() == Some(*o) && self.last_committed.get(p) != Some(o)
        }))
    }

    /// Retries `f` while its error is not fatal, for up to the broker timeout or until the
    /// job is stopped.
    fn retry<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Result<T, KafkaError>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut logged = false;
        loop {
            match f(self) {
                Ok(v) => {
                    if logged {
                        tracing::info!(
                            what,
                            waited_s = started.elapsed().as_secs(),
                            "Kafka answers again."
                        );
                    }
                    return Ok(v);
                }
                Err(e) if e.is_fatal() => {
                    return Err(anyhow::anyhow!(e).context(what.to_owned()));
                }
                Err(e) => {
                    if self.stop.load(Ordering::Relaxed) {
                        bail!("{what}: stopped while waiting for Kafka ({e})");
                    }
                    if started.elapsed() > self.cfg.broker_timeout {
                        bail!(
                            "{what}: Kafka at {} did not answer for {} s (--broker-timeout): {e}",
                            self.cfg.bootstrap,
                            started.elapsed().as_secs()
                        );
                    }
                    if !logged {
                        tracing::warn!(what, error = %e, "Kafka does not answer; waiting.");
                        logged = true;
                    }
                    // Waiting for Kafka on purpose is alive, not stalled: a liveness probe must
                    // not restart a job that is riding out an outage (readiness says the rest).
                    if let Some(h) = &self.cfg.health {
                        h.beat();
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    fn broker_up(&mut self) {
        if let Some(since) = self.broker_down_since.take() {
            if let Some(m) = &self.cfg.metrics {
                m.set_broker_up(true);
            }
            tracing::info!(
                down_s = since.elapsed().as_secs(),
                "Kafka is reachable again; carrying on."
            );
        }
    }

    /// At most once a second: consumer lag (for the progress line too) and, with metrics,
    /// the per-partition gauges, state sizes and the counters kept by the processor.
    fn update_gauges(&mut self, now: Instant) {
        if self
            .synced
            .at
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.synced.at = Some(now);
        let lag = self.source.lag(&self.processor.offsets());
        self.lag = lag.values().sum();
        let Some(m) = &self.cfg.metrics else {
            return;
        };
        for (&p, &records) in &lag {
            m.set_consumer_lag(p, records);
        }
        let c = self.processor.counters();
        m.windows_fired(c.windows_fired - self.synced.windows_fired);
        self.synced.windows_fired = c.windows_fired;
        m.records_replaced(self.outputs.replaced - self.synced.replaced);
        self.synced.replaced = self.outputs.replaced;
        for p in self.processor.partitions() {
            let (max_event_time, watermark) = self.processor.partition_clock(p);
            m.set_max_event_time(p, max_event_time);
            m.set_watermark(p, watermark);
        }
        let engine = self.processor.engine_counters();
        m.set_open_windows((engine.pending_windows + engine.retained_windows) as u64);
        m.set_keys(engine.keys as u64);
    }

    /// Notices an outage from librdkafka's client errors, pings while it lasts, and gives up
    /// after the broker timeout.
    fn watch_broker(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(error) = self.source.take_client_error()
            && self.broker_down_since.is_none()
            && self.source.ping(Duration::from_secs(1)).is_err()
        {
            tracing::warn!(
                bootstrap = %self.cfg.bootstrap,
                %error,
                timeout_s = self.cfg.broker_timeout.as_secs(),
                "Kafka is unreachable; waiting for it with the state kept."
            );
            self.broker_down_since = Some(now);
            self.last_ping = now;
            if let Some(m) = &self.cfg.metrics {
                m.set_broker_up(false);
            }
        }
        let Some(since) = self.broker_down_since else {
            return Ok(());
        };
        if now.duration_since(self.last_ping) >= Duration::from_secs(1) {
            self.last_ping = now;
            if self.source.ping(Duration::from_secs(1)).is_ok() {
                self.broker_up();
                return Ok(());
            }
        }
        if now.duration_since(since) > self.cfg.broker_timeout {
            bail!(
                "Kafka at {} has been unreachable for {} s, longer than --broker-timeout {} s",
                self.cfg.bootstrap,
                now.duration_since(since).as_secs(),
                self.cfg.broker_timeout.as_secs()
            );
        }
        Ok(())
    }
}

/// Names the ACL whose absence an authorization failure is: `operation` on `topic` (or on the
/// topic the error names itself, such as an output a record was refused on), READ on the
/// group, WRITE on the transactional ids (`<group>-<pid>-<nanos>`: a prefixed ACL on
/// `<group>-`). Other errors pass unchanged.
fn refused<'a>(
    cfg: &'a RunConfig,
    operation: &'a str,
    topic: &'a str,
) -> impl Fn(KafkaError) -> KafkaError + 'a {
    use hr_kafka::rdkafka::types::RDKafkaErrorCode as C;
    move |e| match e.code() {
        Some(C::GroupAuthorizationFailed) => e.refused("READ", format!("group {}", cfg.group)),
        Some(C::TransactionalIdAuthorizationFailed) => e.refused(
            "WRITE",
            format!("transactional id prefix {}- (prefixed)", cfg.group),
        ),
        Some(C::ClusterAuthorizationFailed) => e.refused(operation, "the cluster"),
        _ => {
            let topic = e.topic().unwrap_or(topic).to_owned();
            e.refused(operation, format!("topic {topic}"))
        }
    }
}

fn per_second(n: u64, over: Duration) -> u64 {
    let s = over.as_secs_f64();
    if s > 0.0 { (n as f64 / s) as u64 } else { 0 }
}

fn log_counters(c: &RunCounters, replaced: u64, events_per_s: u64, lag: i64, what: &str) {
    tracing::info!(
        read = c.read,
        parsed = c.parsed,
        invalid = c.invalid,
        clock_skew = c.clock_skew,
        aggregated = c.aggregated,
        late = c.late,
        windows_fired = c.windows_fired,
        alerts = c.alerts,
        replaced_too_large = replaced,
        events_per_s,
        lag,
        "{what}"
    );
}
