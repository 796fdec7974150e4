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
//!
//! # Layout
//!
//! One role per file: this one holds the configuration and the wiring; `job` the loop and the
//! state it keeps between turns; `reader` the reader thread and its seek queue; `batch` what
//! it hands over; `commit` the one commit path (cut, wait, changelog, commit, outcome) and the
//! job's states, with `committer` running it off the job thread; `rebalance` revocations;
//! `restore` assignments, restores and rewinds; `retry` the broker outage policy; `outputs`
//! the producers, the alert file and the stand-ins; `topics` every topic the job makes or
//! checks; `telemetry` the gauges and log lines; `broker` what the job asks of Kafka, as the
//! traits the tests fake.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use hr_kafka::{Admin, KafkaError, PartitionReader, Source, SourceConfig};

use crate::http::Health;
use crate::metrics::Metrics;
use crate::processor::{Processor, ProcessorConfig, RunCounters};

mod batch;
mod broker;
mod commit;
mod committer;
mod files;
mod job;
mod outputs;
mod reader;
mod rebalance;
mod restore;
mod retry;
mod telemetry;
#[cfg(test)]
mod tests;
mod topics;

use broker::Clients;
use job::Job;
use outputs::{Outputs, output_limit};
use rebalance::RevokeBarrier;
pub use retry::{Patience, ride_out};
use topics::{ensure_changelog, follow_profiles, reader_props};

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
    let mut outputs = Outputs::new(cfg, limit, txn_id, txn?)?;
    outputs
        .settle_leftovers(cfg)
        .context("reading the alerts directory")?;
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
    let clients = Clients {
        source: &source,
        outputs,
        reader,
        stop,
    };
    let mut job = Job::new(cfg, stop, clients, processor, profiles);
    let result = job.run(&barrier);
    // The rebalance callback must never wait for a job that has ended.
    barrier.close();
    let (
        Clients {
            mut outputs,
            reader,
            ..
        },
        profiles,
    ) = job.into_parts();
    outputs.wait_settled(SETTLE_AT_EXIT);
    close_within((outputs, reader, profiles, source), CLOSE_TIMEOUT);
    result
}

/// How long closing the Kafka clients (leaving the group, ending the producers) may take once
/// the job is done: it is under a second normally, but was seen to take a minute on a cluster
/// after a network cut, and a stopped job must exit within seconds.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a job that has ended gives the settling of alert file parts an earlier process
/// left in doubt (a question or two to the cluster; longer only while it does not answer).
const SETTLE_AT_EXIT: Duration = Duration::from_secs(5);

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
        // Members learn from a heartbeat that the group rebalances, and the partitions that
        // stay pause while their owner rejoins. Measured (REPORT.md): with librdkafka's 3 s
        // interval the second round of an incremental join took 3 s and those partitions
        // paused 2.1-2.2 s; at 1 s, about 1 s.
        src_props.push(("heartbeat.interval.ms".to_owned(), "1000".to_owned()));
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
