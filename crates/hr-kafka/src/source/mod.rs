//! A consumer-group source over rdkafka's `BaseConsumer`, polled on the caller's thread.
//!
//! Records come out of librdkafka's buffers without a channel or an async wake-up per record,
//! which is what lets one thread keep up with the broker. By default ([`Fetch::Batch`]) the
//! topic's partition queues are forwarded to one queue of the source's own and read with
//! librdkafka's batch consume, up to [`FETCH_BATCH`] records per call: rust-rdkafka's poll takes
//! the queue's lock and checks the poll interval once per record, which was the raw reader's
//! ceiling. Rebalances, group errors and statistics stay on the consumer's own queue, served
//! between batches (only when the batch is used up, so a revocation never finds records of the
//! revoked partitions still waiting here). librdkafka drops a partition's forwarding when it
//! stops fetching it, so the source forwards again after each assignment (and every 100 ms).
//! When records are waiting they are all taken at once; otherwise only the first is waited for,
//! so a real-time stream is never held back to fill a batch. [`Fetch::PerRecord`] is the plain
//! per-record poll,
//! kept as the baseline the benchmarks compare against.
//!
//! Offsets are never committed behind the caller's back: auto-commit and auto offset store are
//! off, and [`Source::commit`] writes exactly the offsets the caller says are done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;

use crate::{KafkaError, client_config};

mod fetch;
mod group;
mod offsets;

use crate::metadata::partition_ids;
pub use fetch::Record;
use fetch::{FetchQueue, Inner, NativeMessage, end_offsets, forward_partitions};
pub use group::{RebalanceEvent, RebalanceLog, RevokeHook};
use group::{lock, membership};

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

/// How a [`Source`] takes records from librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fetch {
    /// Up to [`FETCH_BATCH`] records per call of librdkafka's batch consume (the default).
    #[default]
    Batch,
    /// One record per poll of rust-rdkafka's `BaseConsumer` (the baseline).
    PerRecord,
}

/// Records taken from librdkafka per batch consume: a batch costs one lock and one wake-up,
/// and 1,024 records of about 100 bytes are well inside one fetch response.
pub const FETCH_BATCH: usize = 1024;

/// What one [`Source::poll`] produced.
pub enum Polled<'a> {
    /// A record to process.
    Record(Record<'a>),
    /// Nothing arrived within the timeout (or only bookkeeping such as end-of-partition).
    Idle,
}

/// A consumer-group source for one topic.
pub struct Source {
    /// Before `consumer`: its records are destroyed before the consumer is.
    fetch: Option<FetchQueue>,
    consumer: BaseConsumer<RebalanceLog>,
    topic: String,
    /// End offsets captured at start in bounded mode.
    ends: Option<BTreeMap<i32, i64>>,
    /// Partitions that reached their end offset (bounded mode).
    done: Mutex<BTreeSet<i32>>,
    assigned: Mutex<BTreeSet<i32>>,
}

impl Source {
    /// Connects, captures end offsets when bounded, and subscribes to the topic; reads in
    /// batches ([`Fetch::Batch`]).
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the consumer cannot be created, the topic's metadata or
    /// watermarks cannot be read (bounded mode), or the subscription fails.
    pub fn new(cfg: &SourceConfig) -> Result<Self, KafkaError> {
        Self::with_fetch(cfg, Fetch::Batch)
    }

    /// As [`new`](Self::new), taking records as `fetch` says.
    ///
    /// # Errors
    /// As [`new`](Self::new); also when the topic's partitions cannot be listed (batch mode
    /// forwards each partition's queue).
    pub fn with_fetch(cfg: &SourceConfig, fetch: Fetch) -> Result<Self, KafkaError> {
        let mut cc: ClientConfig = client_config(&cfg.bootstrap, &[]);
        cc.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "enable.partition.eof",
                if cfg.bounded { "true" } else { "false" },
            )
            // Memory is bounded by these two: a fetch response stays in memory until the last
            // record of it is consumed, and each queued record costs librdkafka about 300 bytes
            // besides its own. Measured on a 2 M replay (3 partitions, 2 cores, batch consume;
            // REPORT.md): librdkafka's defaults held 307-360 MiB; 2 MB per partition and an 8 MB
            // prefetch queue hold 106-119 MiB at 0.96x their speed; 1 MB per partition, or a
            // 4 MB queue, hold under 100 MiB but leave the reader waiting on round trips
            // (0.84x, 0.73x).
            .set("max.partition.fetch.bytes", "2097152")
            .set("queued.max.messages.kbytes", "8192")
            // Once that queue is full librdkafka waits this long before fetching again; its
            // default of 1 s leaves a fast reader idle most of each second (2.8x slower on 5 M
            // local records). 50 ms keeps it fed without polling the broker in a loop.
            .set("fetch.queue.backoff.ms", "50")
            // The group's join state, for `rejoining` (a search in the JSON every 100 ms).
            .set("statistics.interval.ms", "100")
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
        let timeout = Duration::from_secs(30);
        let needs_partitions = cfg.bounded || fetch == Fetch::Batch;
        let partitions = if needs_partitions {
            partition_ids(&consumer, &cfg.topic, timeout)?
        } else {
            Vec::new()
        };
        let ends = if cfg.bounded {
            Some(end_offsets(&consumer, &cfg.topic, &partitions, timeout)?)
        } else {
            None
        };
        let fetch = match fetch {
            Fetch::Batch => Some(forward_partitions(&consumer, &cfg.topic, partitions)?),
            Fetch::PerRecord => None,
        };
        consumer.subscribe(&[&cfg.topic])?;
        Ok(Self {
            fetch,
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
        let Some(fetch) = &self.fetch else {
            return self.poll_consumer(timeout);
        };
        while let Some(m) = fetch.pop() {
            if let Some(r) = self.native(m)? {
                return Ok(Polled::Record(r));
            }
        }
        // The clock is read only once the batch is used up, not once per record.
        let deadline = Instant::now() + timeout;
        loop {
            // The batch is used up: rebalances, group errors (and the records of a partition
            // not forwarded, e.g. one added to the topic since the start) come from here.
            if let Polled::Record(r) = self.poll_consumer(Duration::ZERO)? {
                return Ok(Polled::Record(r));
            }
            fetch.keep_forwarded(
                self.consumer.client().native_ptr(),
                self.consumer.context().assigns.load(Ordering::Acquire),
            );
            let left = deadline.saturating_duration_since(Instant::now());
            // Short waits, so a rebalance waits at most this long to be served.
            fetch.take(left.min(Duration::from_millis(10)));
            let mut any = false;
            while let Some(m) = fetch.pop() {
                any = true;
                if let Some(r) = self.native(m)? {
                    return Ok(Polled::Record(r));
                }
            }
            if left.is_zero() && !any {
                return Ok(Polled::Idle);
            }
        }
    }

    /// One message of a batch: a record, `None` for bookkeeping (end of partition, or past
    /// the end in bounded mode), or the error it carries.
    fn native(&self, m: NativeMessage) -> Result<Option<Record<'_>>, KafkaError> {
        let (err, partition, offset) = {
            let raw = m.get();
            (raw.err, raw.partition, raw.offset)
        };
        if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
            lock(&self.done).insert(partition);
            return Ok(None);
        }
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(RdError::MessageConsumption(err.into()).into());
        }
        if self.past_end(partition, offset) {
            return Ok(None);
        }
        Ok(Some(Record {
            inner: Inner::Native(m, std::marker::PhantomData),
        }))
    }

    /// Bounded mode: notes a partition whose end this record reaches; true when the record is
    /// at or past the end (not to be handed out).
    fn past_end(&self, partition: i32, offset: i64) -> bool {
        let Some(ends) = &self.ends else {
            return false;
        };
        let end = ends.get(&partition).copied().unwrap_or(0);
        if offset + 1 >= end {
            lock(&self.done).insert(partition);
        }
        offset >= end
    }

    fn poll_consumer(&self, timeout: Duration) -> Result<Polled<'_>, KafkaError> {
        match self.consumer.poll(timeout) {
            None => Ok(Polled::Idle),
            Some(Err(RdError::PartitionEOF(p))) => {
                lock(&self.done).insert(p);
                Ok(Polled::Idle)
            }
            Some(Err(e)) => Err(e.into()),
            Some(Ok(msg)) => {
                if self.past_end(msg.partition(), msg.offset()) {
                    return Ok(Polled::Idle);
                }
                Ok(Polled::Record(Record {
                    inner: Inner::Borrowed(msg),
                }))
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
        if events.is_empty() {
            return events;
        }
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

    /// Whether this consumer is renegotiating its group membership now (it has learnt of a
    /// rebalance and rejoined, and the new generation is not settled), as of librdkafka's last
    /// statistics (every 100 ms). A commit sent meanwhile carries the old generation and is
    /// refused if the new one arrives first (`ILLEGAL_GENERATION`): with incremental
    /// rebalancing the member rejoins without a callback, so only this tells the caller.
    pub fn rejoining(&self) -> bool {
        self.consumer.context().rejoining.load(Ordering::Acquire)
    }

    /// Installs the hook called inside the rebalance callback before partitions are revoked
    /// (once; later calls are ignored).
    pub fn set_revoke_hook(&self, hook: RevokeHook) {
        let _ = self.consumer.context().on_revoke.set(hook);
    }

    /// The consumer's group metadata (member id and generation), for a transactional producer
    /// to commit offsets as this member (KIP-447: the coordinator refuses them from a member
    /// of an older generation).
    ///
    /// # Errors
    /// [`KafkaError::State`] when this consumer is not a member of its group at this moment:
    /// not joined yet, or dropped by the group (its member id and generation reset) and not yet
    /// told by its rebalance callback. The coordinator accepts transactional offsets sent
    /// without a member id or generation (as from a producer that uses no group), so committing
    /// then would publish work for partitions the group may already have given to another
    /// member: the caller must abort instead.
    pub fn group_metadata(&self) -> Result<rdkafka::consumer::ConsumerGroupMetadata, KafkaError> {
        // Read before and after the snapshot handed out: the same membership on both sides
        // means the snapshot has it too (a generation never comes back once left).
        let before = self.membership();
        let meta = self.consumer.group_metadata();
        let after = self.membership();
        match (meta, before, after) {
            (Some(meta), Some(a), Some(b)) if a == b => Ok(meta),
            _ => Err(KafkaError::State(
                "this consumer is not a member of its group (not joined yet, or dropped by it and \
                 rejoining): its offsets are not committed"
                    .into(),
            )),
        }
    }

    /// This consumer's generation (member epoch with the consumer protocol) and member id,
    /// when it is a member of its group now.
    fn membership(&self) -> Option<(i32, String)> {
        // SAFETY: the client pointer lives as long as `self.consumer`; the metadata and the
        // buffer written from it are ours and freed here.
        unsafe {
            let md = rd::rd_kafka_consumer_group_metadata(self.consumer.client().native_ptr());
            if md.is_null() {
                return None;
            }
            let mut buf: *mut std::ffi::c_void = std::ptr::null_mut();
            let mut size = 0usize;
            let err = rd::rd_kafka_consumer_group_metadata_write(md, &mut buf, &mut size);
            rd::rd_kafka_consumer_group_metadata_destroy(md);
            if !err.is_null() {
                rd::rd_kafka_error_destroy(err);
                return None;
            }
            let bytes = std::slice::from_raw_parts(buf as *const u8, size).to_vec();
            rd::rd_kafka_mem_free(std::ptr::null_mut(), buf);
            membership(&bytes)
        }
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

    /// The topic's partition ids, from the cluster's metadata. A topic the broker asked does
    /// not know (yet: it was just created) is asked for again for up to 10 s.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when no broker answers within `timeout`; [`KafkaError::Topic`]
    /// when the topic does not exist.
    pub fn topic_partitions(&self, timeout: Duration) -> Result<Vec<i32>, KafkaError> {
        partition_ids(&self.consumer, &self.topic, timeout)
    }

    /// The partitions currently owned.
    pub fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.assigned).clone()
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
}

// One thread may poll while another commits (librdkafka allows it), and the pipeline does: this
// stops compiling if `Source` ever loses `Sync`.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Source>();
};
