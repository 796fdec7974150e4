//! A consumer-group source over rdkafka's `BaseConsumer`, polled on the caller's thread.
//!
//! `BaseConsumer` hands out messages borrowed from librdkafka's buffers without a channel or an
//! async wake-up per record, which is what lets one thread keep up with the broker. Offsets are
//! never committed behind the caller's back: auto-commit and auto offset store are off, and
//! [`Source::commit`] writes exactly the offsets the caller says are done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::{KafkaError, client_config};

/// How to build a [`Source`].
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Consumer group id.
    pub group: String,
    /// The topic to read.
    pub topic: String,
    /// Start from the earliest offset when the group has no committed offset (otherwise latest).
    pub from_beginning: bool,
    /// Stop at the end offsets captured at start (Flink's `setBounded(latest)`).
    pub bounded: bool,
    /// librdkafka properties applied last (`-X key=value`).
    pub overrides: Vec<(String, String)>,
}

/// A change of the partitions this consumer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions newly assigned to this consumer.
    Assigned(Vec<i32>),
    /// Partitions taken away; their uncommitted work will be redone by the next owner.
    Revoked(Vec<i32>),
}

/// Called inside librdkafka's rebalance callback with the partitions about to be revoked, before
/// the revocation completes: the place to commit work for them (Kafka Streams commits in
/// `onPartitionsRevoked`). It runs on the polling thread and blocks that poll.
pub type RevokeHook = Box<dyn Fn(&[i32]) + Send + Sync>;

/// Collects rebalance notifications from librdkafka's callback for the poll loop to act on.
#[derive(Default)]
pub struct RebalanceLog {
    events: Mutex<Vec<RebalanceEvent>>,
    /// Set after each push, so the poll loop's per-record check is one atomic load, not a lock.
    pending: AtomicBool,
    on_revoke: std::sync::OnceLock<RevokeHook>,
    /// The last client-level error librdkafka reported (brokers down, transport), for a caller
    /// that wants to say why it is waiting; cleared by [`Source::take_client_error`].
    last_error: Mutex<Option<String>>,
}

impl RebalanceLog {
    fn push(&self, e: RebalanceEvent) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e);
        self.pending.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<RebalanceEvent> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ClientContext for RebalanceLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::error::log_librdkafka(level, fac, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        // End of partition is how bounded mode learns it is done, not a fault.
        let eof = matches!(
            error,
            RdError::PartitionEOF(_) | RdError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            // Brokers going away and coming back are reported by the caller once per change of
            // state; a line per librdkafka retry would flood the log.
            tracing::debug!("librdkafka: {error}: {reason}");
            *self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let ps = partitions(tpl);
            if let Some(hook) = self.on_revoke.get() {
                hook(&ps);
            }
            self.push(RebalanceEvent::Revoked(ps));
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.push(RebalanceEvent::Assigned(partitions(tpl)));
        }
    }
}

/// The sets behind a `Source` hold plain data, so a panic elsewhere cannot leave them half-written.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// One record as read: where it came from and its bytes, borrowed from librdkafka.
pub struct Record<'a> {
    msg: BorrowedMessage<'a>,
}

impl Record<'_> {
    /// The partition it was read from.
    pub fn partition(&self) -> i32 {
        self.msg.partition()
    }
    /// Its offset in the partition.
    pub fn offset(&self) -> i64 {
        self.msg.offset()
    }
    /// The Kafka timestamp (create or log-append time) in epoch ms, if any.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.msg.timestamp().to_millis()
    }
    /// The record key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.msg.key()
    }
    /// The value; an absent value (tombstone) reads as empty.
    pub fn payload(&self) -> &[u8] {
        self.msg.payload().unwrap_or(&[])
    }
}

/// What one [`Source::poll`] produced.
pub enum Polled<'a> {
    /// A record to process.
    Record(Record<'a>),
    /// Nothing arrived within the timeout (or only bookkeeping such as end-of-partition).
    Idle,
}

/// A consumer-group source for one topic.
pub struct Source {
    consumer: BaseConsumer<RebalanceLog>,
    topic: String,
    /// End offsets captured at start in bounded mode.
    ends: Option<BTreeMap<i32, i64>>,
    /// Partitions that reached their end offset (bounded mode).
    done: Mutex<BTreeSet<i32>>,
    assigned: Mutex<BTreeSet<i32>>,
}

impl Source {
    /// Connects, captures end offsets when bounded, and subscribes to the topic.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the consumer cannot be created, the topic's metadata or
    /// watermarks cannot be read (bounded mode), or the subscription fails.
    pub fn new(cfg: &SourceConfig) -> Result<Self, KafkaError> {
        let mut cc: ClientConfig = client_config(&cfg.bootstrap, &[]);
        cc.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "enable.partition.eof",
                if cfg.bounded { "true" } else { "false" },
            )
            // librdkafka's 1 MB per partition and fetch leaves a single reader waiting on round
            // trips (about 3x slower on a local broker); 8 MB keeps it fed, and the prefetch
            // queue cap bounds the memory that costs.
            .set("max.partition.fetch.bytes", "8388608")
            .set("queued.max.messages.kbytes", "32768")
            // Once that queue is full librdkafka waits this long before fetching again; its
            // default of 1 s leaves a fast reader idle most of each second (2.8x slower on 5 M
            // local records). 50 ms keeps it fed without polling the broker in a loop.
            .set("fetch.queue.backoff.ms", "50")
            .set(
                "auto.offset.reset",
                if cfg.from_beginning {
                    "earliest"
                } else {
                    "latest"
                },
            );
        for (k, v) in &cfg.overrides {
            cc.set(k, v);
        }
        let consumer: BaseConsumer<RebalanceLog> =
            cc.create_with_context(RebalanceLog::default())?;
        let ends = if cfg.bounded {
            Some(end_offsets(&consumer, &cfg.topic)?)
        } else {
            None
        };
        consumer.subscribe(&[&cfg.topic])?;
        Ok(Self {
            consumer,
            topic: cfg.topic.clone(),
            ends,
            done: Mutex::new(BTreeSet::new()),
            assigned: Mutex::new(BTreeSet::new()),
        })
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits up to `timeout` for the next record. In bounded mode records at or past a
    /// partition's captured end offset are not handed out.
    ///
    /// # Errors
    /// [`KafkaError::Client`] for a consumer error other than end-of-partition.
    pub fn poll(&self, timeout: Duration) -> Result<Polled<'_>, KafkaError> {
        match self.consumer.poll(timeout) {
            None => Ok(Polled::Idle),
            Some(Err(RdError::PartitionEOF(p))) => {
                lock(&self.done).insert(p);
                Ok(Polled::Idle)
            }
            Some(Err(e)) => Err(e.into()),
            Some(Ok(msg)) => {
                if let Some(ends) = &self.ends {
                    let end = ends.get(&msg.partition()).copied().unwrap_or(0);
                    if msg.offset() >= end {
                        lock(&self.done).insert(msg.partition());
                        return Ok(Polled::Idle);
                    }
                    if msg.offset() + 1 >= end {
                        lock(&self.done).insert(msg.partition());
                    }
                }
                Ok(Polled::Record(Record { msg }))
            }
        }
    }

    /// Rebalance events since the last call, in order; also updates [`assigned`](Self::assigned).
    ///
    /// librdkafka runs the rebalance inside a poll, and the same poll may then return a record
    /// of a newly assigned partition: a caller that prepares per-partition state on assignment
    /// should call this again when a record comes from a partition it has not prepared.
    pub fn take_rebalances(&self) -> Vec<RebalanceEvent> {
        let events = self.consumer.context().take();
        let mut assigned = lock(&self.assigned);
        for e in &events {
            match e {
                RebalanceEvent::Assigned(ps) => assigned.extend(ps.iter().copied()),
                RebalanceEvent::Revoked(ps) => {
                    for p in ps {
                        assigned.remove(p);
                    }
                }
            }
        }
        events
    }

    /// Installs the hook called inside the rebalance callback before partitions are revoked
    /// (once; later calls are ignored).
    pub fn set_revoke_hook(&self, hook: RevokeHook) {
        let _ = self.consumer.context().on_revoke.set(hook);
    }

    /// The consumer's group metadata (member id and generation), for a transactional producer
    /// to commit offsets as this member; `None` before the consumer joined its group.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Moves the read position of an owned `partition` to `offset`: the next record polled from
    /// it is the one at `offset`. Records polled before the call are not taken back.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka refuses the seek (e.g. the partition is not owned).
    pub fn seek(&self, partition: i32, offset: i64, timeout: Duration) -> Result<(), KafkaError> {
        self.consumer
            .seek(&self.topic, partition, Offset::Offset(offset), timeout)?;
        // Bounded: records polled before the seek may have reached the end; the partition is
        // done again only once the records after the seek do.
        if self
            .ends
            .as_ref()
            .is_some_and(|ends| ends.get(&partition).is_some_and(|e| offset < *e))
        {
            lock(&self.done).remove(&partition);
        }
        Ok(())
    }

    /// The group's committed offsets for `partitions` (`None`: nothing committed). With
    /// `isolation.level=read_committed` the broker answers only once no transaction holding
    /// offsets for them is open (KIP-447's stable offsets), so state restored after this call
    /// matches the offsets.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the coordinator does not answer within `timeout`.
    pub fn committed(
        &self,
        partitions: &[i32],
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&self.topic, *p);
        }
        let got = self.consumer.committed_offsets(tpl, timeout)?;
        Ok(got
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    }

    /// The last client-level error librdkafka reported since the previous call, if any.
    pub fn take_client_error(&self) -> Option<String> {
        self.consumer
            .context()
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Asks the cluster for the topic's metadata: `Ok` when a broker answers within `timeout`.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when no broker answers.
    pub fn ping(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        Ok(())
    }

    /// The topic's partition ids, from the cluster's metadata.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when no broker answers within `timeout`; [`KafkaError::Topic`]
    /// when the topic does not exist.
    pub fn topic_partitions(&self, timeout: Duration) -> Result<Vec<i32>, KafkaError> {
        let md = self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        let mut ids = Vec::new();
        for t in md.topics() {
            if let Some(err) = t.error() {
                return Err(KafkaError::Topic {
                    topic: self.topic.clone(),
                    code: err.into(),
                });
            }
            ids.extend(t.partitions().iter().map(|p| p.id()));
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The partitions currently owned.
    pub fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.assigned).clone()
    }

    /// Records behind the end of each owned partition: its high watermark as librdkafka last
    /// saw it in a fetch response (no broker round trip, so cheap enough to call every second;
    /// a partition not fetched from yet costs one query of at most 200 ms) less `next[p]`, the
    /// offset of the next record the caller will process, or the consumer's fetch position
    /// when `next` has none. Partitions whose end cannot be known are left out. With a
    /// transactional input the transaction markers count as records, as they do in Kafka's own
    /// consumer-lag figures.
    pub fn lag(&self, next: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
        let Ok(topic) = std::ffi::CString::new(self.topic.as_str()) else {
            return BTreeMap::new();
        };
        let positions: BTreeMap<i32, i64> = self
            .consumer
            .position()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut lag = BTreeMap::new();
        for p in self.assigned() {
            let (mut low, mut high) = (-1i64, -1i64);
            // SAFETY: the client pointer lives as long as `self.consumer`; `topic` is a valid
            // NUL-terminated string for the call; `low` and `high` are valid for writes.
            // rd_kafka_get_watermark_offsets only reads librdkafka's cached values.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    self.consumer.client().native_ptr(),
                    topic.as_ptr(),
                    p,
                    &mut low,
                    &mut high,
                )
            };
            if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0
            {
                // Not fetched from yet (librdkafka may fill its prefetch queue from one
                // partition first): ask the broker, briefly, so a partition not yet read still
                // shows its backlog.
                match self
                    .consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_millis(200))
                {
                    Ok(w) => (low, high) = w,
                    Err(_) => continue,
                }
            }
            let from = next
                .get(&p)
                .or_else(|| positions.get(&p))
                .copied()
                .unwrap_or(low.max(0));
            lag.insert(p, (high - from).max(0));
        }
        lag
    }

    /// In bounded mode: true once partitions are assigned and every one reached its end offset.
    /// Always false when unbounded.
    pub fn is_done(&self) -> bool {
        let Some(ends) = &self.ends else {
            return false;
        };
        let done = lock(&self.done);
        let assigned = lock(&self.assigned);
        !assigned.is_empty()
            && assigned
                .iter()
                .all(|p| done.contains(p) || ends.get(p).copied().unwrap_or(0) == 0)
    }

    /// Commits, synchronously, `next_offsets` (partition → offset of the next record to read).
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker refuses the commit (e.g. the partitions were
    /// revoked meanwhile).
    pub fn commit(&self, next_offsets: &BTreeMap<i32, i64>) -> Result<(), KafkaError> {
        if next_offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next_offsets {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync)?;
        Ok(())
    }
}

fn end_offsets(
    consumer: &BaseConsumer<RebalanceLog>,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let timeout = Duration::from_secs(30);
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut ends = BTreeMap::new();
    for t in md.topics() {
        if let Some(err) = t.error() {
            return Err(KafkaError::Topic {
                topic: topic.to_owned(),
                code: err.into(),
            });
        }
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            ends.insert(p.id(), high);
        }
    }
    Ok(ends)
}

// One thread may poll while another commits (librdkafka allows it), and the pipeline does: this
// stops compiling if `Source` ever loses `Sync`.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Source>();
};
