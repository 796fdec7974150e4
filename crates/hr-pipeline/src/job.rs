//! The processing loop: read -> parse -> window -> alert / dead letter / late, with checkpoints.
//!
//! # Delivery: at-least-once through a changelog of window state
//!
//! Committing a consumer offset past a reading whose window has not fired would lose it on a
//! restart, and replaying from an older offset would re-emit windows from part of their events.
//! So every checkpoint (each [`RunConfig::checkpoint_every`]) does, in order:
//!
//! 1. flush the producer (alerts, dead letters, late records) and the alerts file;
//! 2. write, for each owned partition, the engine's snapshot of that partition and the offset of
//!    the next record to a compacted topic `<group>.state` (key `<input topic>/<partition>`), and
//!    flush again;
//! 3. commit the same offsets to the consumer group.
//!
//! On assignment the latest snapshot of each new partition is restored and records below its
//! offset are skipped (they are below it only if a crash fell between steps 2 and 3). Replaying
//! the records after a snapshot reproduces an uninterrupted run exactly (key and partition
//! watermark scope), so after kill -9 or a rebalance every alert appears, and an alert appears
//! twice only as a byte-identical copy. In global scope the replay is not exact, so repeats may
//! differ.
//!
//! A reader thread only polls, copying records into batches of up to 1024 at the pace of a raw
//! consumer; the job thread parses each batch and applies it to the window engine and the
//! outputs, and checkpoints (the consumer is shared: librdkafka lets one thread poll while
//! another commits). Each batch carries the rebalance events where the consumer reported them,
//! so the engine sees exactly the sequence a one-record-at-a-time loop would. A checkpoint waits
//! while a polled rebalance is not yet applied, so it never writes state for a partition this
//! instance has already lost.
//!
//! A bounded run ends with `finish` (every open window fires), a flush, and a checkpoint with an
//! empty state: the next run of the group starts fresh at the end offsets.
//!
//! Limits: the consumer starts at the group's committed offset, and records below the restored
//! offset are skipped, not sought past; if a crash falls between steps 2 and 3 and the group has
//! no commit at all, `auto.offset.reset` decides where reading starts. Each checkpoint writes
//! every owned partition's whole state, so its cost grows with the number of open windows.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hr_kafka::{
    AlertFile, Diversion, Polled, RebalanceEvent, Sink, Source, SourceConfig, TopicSpec,
    client_config, ensure_topics, read_table,
};
use hr_model::{Alert, Event, HrStats, ParseError, Thresholds, Validation};
use hr_window::{Aggregator, Emission, EngineConfig, Outcome, PartitionSnapshot, WindowEngine};
use serde::{Deserialize, Serialize};

/// Heart-rate statistics as a window aggregate: wiring [`HrStats`] into the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct HrAggregator;

impl Aggregator for HrAggregator {
    type Input = u16;
    type Acc = HrStats;

    fn create(&self) -> HrStats {
        HrStats::default()
    }
    fn add(&self, acc: &mut HrStats, bpm: &u16) {
        acc.add(*bpm);
    }
    fn merge(&self, acc: &mut HrStats, other: &HrStats) {
        acc.merge(other);
    }
}

/// Which fired windows become alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every window, normal ones included (the seed's behaviour).
    All,
    /// Only tachycardia and bradycardia.
    Abnormal,
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Consumer group; also names the state topic `<group>.state`.
    pub group: String,
    /// Readings topic.
    pub input_topic: String,
    /// Alerts topic.
    pub alerts_topic: String,
    /// Dead-letter topic for invalid readings.
    pub dlq_topic: String,
    /// Topic for readings too late for their windows.
    pub late_topic: String,
    /// Window engine settings.
    pub engine: EngineConfig,
    /// Which windows become alerts.
    pub emit: Emit,
    /// Alert classification thresholds.
    pub thresholds: Thresholds,
    /// Directory for the alerts JSONL file; `None` writes none.
    pub alerts_dir: Option<PathBuf>,
    /// Read from the earliest offset when the group has none.
    pub from_beginning: bool,
    /// Stop at the end offsets seen at start.
    pub bounded: bool,
    /// Time between checkpoints.
    pub checkpoint_every: Duration,
    /// Time between counter log lines.
    pub log_every: Duration,
    /// librdkafka properties for every client.
    pub overrides: Vec<(String, String)>,
}

impl RunConfig {
    /// The seed's defaults for `bootstrap`: `heart_rate_events` -> `heart_rate_alerts`, group
    /// `hr-pipeline`, one-minute tumbling windows, 5 s out-of-orderness, every window emitted.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            group: "hr-pipeline".into(),
            input_topic: "heart_rate_events".into(),
            alerts_topic: "heart_rate_alerts".into(),
            dlq_topic: "heart_rate_events_dlq".into(),
            late_topic: "heart_rate_late".into(),
            engine: EngineConfig::default(),
            emit: Emit::All,
            thresholds: Thresholds::default(),
            alerts_dir: Some(PathBuf::from("output/alerts")),
            from_beginning: false,
            bounded: false,
            checkpoint_every: Duration::from_secs(1),
            log_every: Duration::from_secs(5),
            overrides: Vec::new(),
        }
    }

    /// The compacted topic holding window state per input partition.
    pub fn state_topic(&self) -> String {
        format!("{}.state", self.group)
    }
}

/// Where records went. `read = parsed + invalid` and `parsed = aggregated + late` always hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Records read (below a restored snapshot's offset they are skipped, not read).
    pub read: u64,
    /// Records that parsed into an event.
    pub parsed: u64,
    /// Records sent to the dead-letter topic.
    pub invalid: u64,
    /// Events added to windows.
    pub aggregated: u64,
    /// Events sent to the late topic.
    pub late: u64,
    /// Windows fired (re-firings included).
    pub windows_fired: u64,
    /// Alerts sent.
    pub alerts_written: u64,
}

/// What the state topic holds for one input partition.
#[derive(Serialize, Deserialize)]
struct StateRecord {
    next_offset: i64,
    snapshot: Option<PartitionSnapshot<String, HrStats>>,
}

type Engine = WindowEngine<String, HrAggregator>;

/// Runs the job until `stop` is set (or, bounded, until the end offsets are reached), then
/// writes what is ready, commits, and returns the counters.
///
/// # Errors
/// Any Kafka error (connection, delivery failure, commit refused at exit), an invalid engine
/// configuration, a corrupt state record, or an I/O error on the alerts file.
pub fn run(cfg: &RunConfig, stop: &AtomicBool) -> anyhow::Result<RunCounters> {
    let mut engine = Engine::new(cfg.engine.clone(), HrAggregator)?;
    ensure_state_topic(cfg)?;
    let source = Source::new(&SourceConfig {
        bootstrap: cfg.bootstrap.clone(),
        group: cfg.group.clone(),
        topic: cfg.input_topic.clone(),
        from_beginning: cfg.from_beginning,
        bounded: cfg.bounded,
        overrides: cfg.overrides.clone(),
    })?;
    let mut sink_props = vec![("message.max.bytes".to_owned(), "67108864".to_owned())];
    sink_props.extend(cfg.overrides.iter().cloned());
    let mut sink = Sink::new(&cfg.bootstrap, &sink_props)?;
    let mut file = match &cfg.alerts_dir {
        Some(dir) => Some(
            AlertFile::create(dir)
                .with_context(|| format!("creating an alerts file in {}", dir.display()))?,
        ),
        None => None,
    };
    if let Some(f) = &file {
        tracing::info!(path = %f.path().display(), "writing alerts");
    }
    let validation = Validation::default();
    let mut c = RunCounters::default();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut skip_below: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = Vec::new();
    let mut out_ctx = Output {
        cfg,
        sink: &mut sink,
        file: &mut file,
    };
    let mut last_checkpoint = Instant::now();
    let mut last_log = Instant::now();
    let mut last_tick = Instant::now();
    // Throughput is reported from the first record on: group join and state restore are not in it.
    let mut first_record: Option<Instant> = None;
    let mut since_clock = 0usize;
    // A reader thread does nothing but poll and copy records into batches, at the pace of a raw
    // consumer; this thread parses each batch and applies it. Batches carry the rebalance events
    // where the consumer reported them, so the engine sees exactly the sequence a
    // one-record-at-a-time loop would.
    let rebalances_polled = AtomicU64::new(0);
    let mut rebalances_applied = 0u64;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Created inside the scope so that any return, an error included, drops them and so
        // ends the reader thread before the scope waits for it.
        let (to_job, from_reader) = mpsc::sync_channel::<anyhow::Result<Batch>>(2);
        let (recycle, spare) = mpsc::channel::<Batch>();
        let source = &source;
        let polled = &rebalances_polled;
        std::thread::Builder::new()
            .name("hr-read".into())
            .spawn_scoped(scope, move || {
                let finished = || cfg.bounded && source.is_done();
                while !(stop.load(Ordering::Relaxed) || finished()) {
                    let mut batch = spare.try_recv().unwrap_or_default();
                    batch.clear();
                    let filled = batch
                        .fill(source, Duration::from_millis(100), polled)
                        .map(|()| batch);
                    let failed = filled.is_err();
                    // Empty batches too: they wake the job for its timers while input is idle.
                    if to_job.send(filled).is_err() || failed {
                        break;
                    }
                }
            })?;
        // Ends when the reader does: stopped, bounded input done, or an error (sent first).
        for batch in from_reader {
            let mut batch = batch?;
            batch.parse(&validation);
            if batch.records > 0 {
                first_record.get_or_insert_with(Instant::now);
            }
            for item in &batch.items {
                match item {
                    Item::Rebalance(ev) => {
                        apply_rebalance(cfg, ev, &mut engine, &mut next, &mut skip_below)?;
                        rebalances_applied += 1;
                    }
                    Item::Record(rec) => {
                        process_record(
                            cfg,
                            &batch,
                            rec,
                            &mut engine,
                            &mut next,
                            &skip_below,
                            &mut out,
                            &mut out_ctx,
                            &mut c,
                        )?;
                    }
                }
            }
            let processed = batch.records;
            // The reader may be gone already; then the batch is simply dropped.
            let _ = recycle.send(batch);
            // Reading the clock costs as much as a tenth of a record's processing: while records
            // stream in, the timers below are checked every 256 records, and at once when idle.
            since_clock += processed;
            if processed == BATCH_RECORDS && since_clock < 256 {
                continue;
            }
            since_clock = 0;
            let now = Instant::now();
            if now.duration_since(last_tick) >= Duration::from_millis(200) {
                last_tick = now;
                engine.on_processing_time(now, &mut out);
                out_ctx.emit(&mut out, &mut c)?;
            }
            // A rebalance polled but not yet applied would make the checkpoint write state for
            // partitions this instance may no longer own: wait until it is applied.
            let settled = polled.load(Ordering::Acquire) == rebalances_applied;
            if now.duration_since(last_checkpoint) >= cfg.checkpoint_every && settled {
                last_checkpoint = now;
                out_ctx.checkpoint(source, &engine, &next, false)?;
            }
            if now.duration_since(last_log) >= cfg.log_every {
                last_log = now;
                log_counters(&c, "progress");
            }
        }
        Ok(())
    })?;
    let finished = cfg.bounded && !stop.load(Ordering::Relaxed);
    if finished {
        engine.finish(&mut out);
        out_ctx.emit(&mut out, &mut c)?;
    }
    out_ctx.checkpoint(&source, &engine, &next, finished)?;
    log_counters(&c, "exit");
    if let Some(first) = first_record {
        let seconds = first.elapsed().as_secs_f64();
        tracing::info!(
            records = c.read,
            seconds = %format!("{seconds:.3}"),
            records_per_s = (c.read as f64 / seconds) as u64,
            "throughput from the first record to the last output flushed"
        );
    }
    Ok(c)
}

/// Restores newly assigned partitions and drops revoked ones. Every owned partition has an entry
/// in `skip_below` (0 when it has no saved state).
fn apply_rebalance(
    cfg: &RunConfig,
    ev: &RebalanceEvent,
    engine: &mut Engine,
    next: &mut BTreeMap<i32, i64>,
    skip_below: &mut BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    match ev {
        RebalanceEvent::Assigned(ps) => {
            restore(cfg, engine, ps, next, skip_below)?;
            tracing::info!(partitions = ?ps, "assigned");
        }
        RebalanceEvent::Revoked(ps) => {
            for p in ps {
                engine.remove_partition(*p as u32);
                next.remove(p);
                skip_below.remove(p);
            }
            tracing::info!(partitions = ?ps, "revoked");
        }
    }
    Ok(())
}

/// One record through the job: windowed if valid and on time, else to the late topic or the
/// DLQ with the original bytes.
#[allow(clippy::too_many_arguments)]
fn process_record(
    cfg: &RunConfig,
    batch: &Batch,
    rec: &BatchRecord,
    engine: &mut Engine,
    next: &mut BTreeMap<i32, i64>,
    skip_below: &BTreeMap<i32, i64>,
    out: &mut Vec<Emission<String, HrStats>>,
    out_ctx: &mut Output<'_>,
    c: &mut RunCounters,
) -> anyhow::Result<()> {
    let (p, offset) = (rec.partition, rec.offset);
    if skip_below.get(&p).is_some_and(|s| offset < *s) {
        return Ok(());
    }
    c.read += 1;
    let payload = &batch.bytes[rec.payload.clone()];
    let key = rec.key.clone().map(|k| &batch.bytes[k]);
    match &batch.parsed[rec.index] {
        Ok(ev) => {
            c.parsed += 1;
            let outcome = engine.process(
                p as u32,
                ev.patient_id.as_str(),
                ev.event_time_ms,
                &ev.heart_rate_bpm,
                out,
            );
            match outcome {
                Outcome::Aggregated => c.aggregated += 1,
                Outcome::Late {
                    watermark_ms,
                    lateness_ms,
                } => {
                    c.late += 1;
                    let message = format!(
                        "event time {} is {lateness_ms} ms past what the watermark {watermark_ms} still accepts",
                        ev.event_time_ms
                    );
                    out_ctx.sink.send_diverted(
                        &cfg.late_topic,
                        key,
                        payload,
                        &Diversion {
                            code: "late",
                            message: &message,
                            source_topic: &cfg.input_topic,
                            source_partition: p,
                            source_offset: offset,
                            lateness: Some((watermark_ms, lateness_ms)),
                        },
                    )?;
                }
            }
        }
        Err(e) => {
            c.invalid += 1;
            out_ctx.sink.send_diverted(
                &cfg.dlq_topic,
                key,
                payload,
                &Diversion {
                    code: e.code(),
                    message: &e.to_string(),
                    source_topic: &cfg.input_topic,
                    source_partition: p,
                    source_offset: offset,
                    lateness: None,
                },
            )?;
        }
    }
    next.insert(p, offset + 1);
    out_ctx.emit(out, c)
}

/// Records polled together, copied into one buffer so the job thread can own them.
#[derive(Default)]
struct Batch {
    /// Payloads and keys, back to back.
    bytes: Vec<u8>,
    /// Records and rebalance events in the order the consumer produced them.
    items: Vec<Item>,
    /// Number of `Item::Record`s.
    records: usize,
    /// The parse result for each record, by `BatchRecord::index`.
    parsed: Vec<Result<Event, ParseError>>,
}

enum Item {
    Rebalance(RebalanceEvent),
    Record(BatchRecord),
}

struct BatchRecord {
    partition: i32,
    offset: i64,
    index: usize,
    payload: Range<usize>,
    key: Option<Range<usize>>,
}

/// Records per batch: large enough that handing a batch between threads costs nothing per
/// record, small enough that a batch is parsed in well under a millisecond.
const BATCH_RECORDS: usize = 1024;

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
        self.records = 0;
        self.parsed.clear();
    }

    /// Polls up to [`BATCH_RECORDS`] records, waiting at most `wait` for the first and not at
    /// all for the rest, and counts the rebalance events it takes in `rebalances`. Rebalance events that a poll reports are placed before the record that
    /// poll returned (a record of a newly assigned partition comes after its assignment).
    fn fill(
        &mut self,
        source: &Source,
        wait: Duration,
        rebalances: &AtomicU64,
    ) -> anyhow::Result<()> {
        let mut wait = wait;
        while self.records < BATCH_RECORDS {
            let polled = source.poll(wait)?;
            for ev in source.take_rebalances() {
                rebalances.fetch_add(1, Ordering::Release);
                self.items.push(Item::Rebalance(ev));
            }
            let Polled::Record(r) = polled else { break };
            let key = r.key().map(|k| self.push_bytes(k));
            let payload = self.push_bytes(r.payload());
            self.items.push(Item::Record(BatchRecord {
                partition: r.partition(),
                offset: r.offset(),
                index: self.records,
                payload,
                key,
            }));
            self.records += 1;
            wait = Duration::ZERO;
        }
        Ok(())
    }

    fn push_bytes(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn parse(&mut self, validation: &Validation) {
        self.parsed.clear();
        for item in &self.items {
            if let Item::Record(r) = item {
                self.parsed
                    .push(validation.parse(&self.bytes[r.payload.clone()]));
            }
        }
    }
}

fn log_counters(c: &RunCounters, what: &str) {
    tracing::info!(
        read = c.read,
        parsed = c.parsed,
        invalid = c.invalid,
        aggregated = c.aggregated,
        late = c.late,
        windows_fired = c.windows_fired,
        alerts_written = c.alerts_written,
        "{what}"
    );
}

fn ensure_state_topic(cfg: &RunConfig) -> anyhow::Result<()> {
    let spec = TopicSpec {
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("max.message.bytes".into(), "67108864".into()),
        ],
        ..TopicSpec::new(cfg.state_topic(), 1)
    };
    let admin = client_config(&cfg.bootstrap, &cfg.overrides);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(ensure_topics(&admin, &[spec], Duration::from_secs(30)))
        .with_context(|| format!("ensuring the state topic {}", cfg.state_topic()))?;
    Ok(())
}

fn state_key(cfg: &RunConfig, p: i32) -> String {
    format!("{}/{p}", cfg.input_topic)
}

fn restore(
    cfg: &RunConfig,
    engine: &mut Engine,
    partitions: &[i32],
    next: &mut BTreeMap<i32, i64>,
    skip_below: &mut BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let table = read_table(
        &cfg.bootstrap,
        &cfg.overrides,
        &cfg.state_topic(),
        Duration::from_secs(60),
    )
    .context("reading the state topic")?;
    for &p in partitions {
        engine.remove_partition(p as u32);
        engine.add_partition(p as u32);
        skip_below.insert(p, 0);
        let Some(bytes) = table.get(state_key(cfg, p).as_bytes()) else {
            continue;
        };
        let rec: StateRecord = serde_json::from_slice(bytes)
            .with_context(|| format!("decoding the state of partition {p}"))?;
        if let Some(snap) = rec.snapshot {
            engine
                .restore(p as u32, snap)
                .with_context(|| format!("restoring the state of partition {p}"))?;
        }
        skip_below.insert(p, rec.next_offset);
        // Checkpoints rewrite restored partitions even without new records, so a bounded run's
        // final (empty) state replaces the windows its `finish` fired.
        next.insert(p, rec.next_offset);
        tracing::info!(
            partition = p,
            next_offset = rec.next_offset,
            "state restored"
        );
    }
    Ok(())
}

struct Output<'a> {
    cfg: &'a RunConfig,
    sink: &'a mut Sink,
    file: &'a mut Option<AlertFile>,
}

impl Output<'_> {
    fn emit(
        &mut self,
        out: &mut Vec<Emission<String, HrStats>>,
        c: &mut RunCounters,
    ) -> anyhow::Result<()> {
        for e in out.drain(..) {
            let Emission::Fired(w) = e else { continue };
            c.windows_fired += 1;
            let alert = Alert::from_stats(
                w.key,
                w.start,
                w.end,
                &w.acc,
                w.revision,
                &self.cfg.thresholds,
            );
            if self.cfg.emit == Emit::Abnormal && !alert.alert_type.is_abnormal() {
                continue;
            }
            let json = alert.to_json();
            self.sink
                .send_alert(&self.cfg.alerts_topic, &alert.patient_id, &json)?;
            if let Some(f) = self.file.as_mut() {
                f.append(&json)?;
            }
            c.alerts_written += 1;
        }
        Ok(())
    }

    /// Flush outputs, write state, flush, commit (see the module docs for why in this order).
    /// `finished` writes empty state: every window has fired.
    fn checkpoint(
        &mut self,
        source: &Source,
        engine: &Engine,
        next: &BTreeMap<i32, i64>,
        finished: bool,
    ) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        self.sink.flush(timeout).context("flushing outputs")?;
        let flushed = started.elapsed();
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        if next.is_empty() {
            return Ok(());
        }
        let topic = self.cfg.state_topic();
        for (&p, &next_offset) in next {
            let rec = StateRecord {
                next_offset,
                snapshot: if finished {
                    None
                } else {
                    engine.snapshot(p as u32)
                },
            };
            let json = serde_json::to_string(&rec)?;
            self.sink
                .send_alert(&topic, &state_key(self.cfg, p), &json)?;
        }
        self.sink.flush(timeout).context("flushing state")?;
        if let Err(e) = source.commit(next) {
            // The state topic already holds these offsets; a refused commit (e.g. during a
            // rebalance) only means the next owner skips records instead of not reading them.
            tracing::warn!(error = %e, "offset commit refused");
        }
        tracing::debug!(
            flush_ms = flushed.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            partitions = next.len(),
            "checkpoint"
        );
        Ok(())
    }
}
