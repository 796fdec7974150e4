//! Reading a compacted topic as a table: the latest value of every key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::metadata::{once_known, partition_ids};
use crate::{KafkaError, RebalanceLog, client_config};

/// The group id of a reader that assigns its partitions itself. It never joins the group or
/// commits, but librdkafka still looks up the group's coordinator, which a broker with an
/// authorizer allows only with DESCRIBE on the group: a `group.id` in `overrides` wins (the job
/// passes its own group, which its principal may read already), else `default`.
fn reader_group<'a>(overrides: &'a [(String, String)], default: &'a str) -> &'a str {
    overrides
        .iter()
        .rev()
        .find(|(k, _)| k == "group.id")
        .map_or(default, |(_, v)| v.as_str())
}

/// `overrides` with fetches that return at once at the end of a partition. librdkafka reports
/// the end of a partition from the fetch after the one that brought its last records: at the
/// end of the log that fetch is a long poll, and with the default 500 ms every restore of a
/// partition took half a second more (a rebalance moving six partitions to one instance waited
/// 3 s on it).
pub(crate) fn short_polls(overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut props = overrides.to_vec();
    props.push(("fetch.wait.max.ms".to_owned(), "10".to_owned()));
    props
}

/// A `read_committed` consumer that assigns its partitions itself (it never joins its group
/// or commits), reporting each partition's end; `default_group` as in [`reader_group`].
pub(crate) fn assigning_reader(
    bootstrap: &str,
    overrides: &[(String, String)],
    default_group: &str,
) -> Result<BaseConsumer<RebalanceLog>, KafkaError> {
    let mut cc = client_config(bootstrap, overrides);
    cc.set("enable.auto.commit", "false")
        .set("group.id", reader_group(overrides, default_group))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    Ok(cc.create_with_context(RebalanceLog::default())?)
}

/// Reads `topic` from the beginning up to the end offsets seen at the call and returns the last
/// value of each key (a record without a value deletes its key). Keyless records are ignored.
///
/// It reads without a consumer group, so it never disturbs the caller's group. A topic the
/// broker asked does not know (yet: it was just created, see [`PartitionReader::read`]) is
/// asked for again for up to 10 s.
///
/// # Errors
/// [`KafkaError::Client`] when the topic cannot be read, or the end is not reached within
/// `timeout`; [`KafkaError::Topic`] (`UnknownTopicOrPartition`) when the topic does not
/// exist.
pub fn read_table(
    bootstrap: &str,
    overrides: &[(String, String)],
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, KafkaError> {
    let mut cc = client_config(bootstrap, overrides);
    cc.set("enable.auto.commit", "false")
        .set("group.id", reader_group(overrides, "hr-table-reader"))
        // Compaction leaves gaps, so the last offset may never be seen: end-of-partition is the end.
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<RebalanceLog> = cc.create_with_context(RebalanceLog::default())?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in partition_ids(&consumer, topic, timeout)? {
        let (low, high) = once_known(
            timeout,
            || Ok(consumer.fetch_watermarks(topic, p, timeout)?),
        )?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    let mut table = BTreeMap::new();
    if ends.is_empty() {
        return Ok(table);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(KafkaError::Client(rdkafka::error::KafkaError::Global(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                ends.remove(&p);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(k) = msg.key() {
            match msg.payload() {
                Some(v) => table.insert(k.to_vec(), v.to_vec()),
                None => table.remove(k),
            };
        }
        if ends
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            ends.remove(&msg.partition());
        }
    }
    Ok(table)
}

/// Reads single partitions of a compacted topic back as tables, with one consumer kept for every
/// read (a restore on each assignment would otherwise pay for a new connection each time).
///
/// It reads with `isolation.level=read_committed` and without a consumer group: a transaction
/// still open or aborted by a fenced writer is never restored.
pub struct PartitionReader {
    consumer: BaseConsumer<RebalanceLog>,
    topic: String,
}

/// What [`PartitionReader::read`] found: the latest value per key, and what it took.
#[derive(Debug, Default)]
pub struct PartitionTable {
    /// Latest value of each key (tombstones remove their key).
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Records read, tombstones and superseded values included.
    pub records: u64,
    /// Key and value bytes read.
    pub bytes: u64,
}

impl PartitionReader {
    /// A reader of `topic`.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the consumer cannot be created.
    pub fn new(
        bootstrap: &str,
        overrides: &[(String, String)],
        topic: &str,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer: assigning_reader(bootstrap, &short_polls(overrides), "hr-changelog-reader")?,
            topic: topic.to_owned(),
        })
    }

    /// Reads `partition` from its start to its end (its last stable offset) and returns the
    /// latest value of each key.
    ///
    /// A topic just created reaches each broker a moment after the controller answered its
    /// creation: a broker that has not learnt of it yet says it does not exist. Instances
    /// started together on a cluster meet that every time one creates the changelog and
    /// another asks a different broker, so the topic is asked for again for up to 10 s
    /// (within `timeout`) before that answer stands.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the partition cannot be read, or its end is not reached within
    /// `timeout`.
    pub fn read(&self, partition: i32, timeout: Duration) -> Result<PartitionTable, KafkaError> {
        let mut table = PartitionTable::default();
        // The ends come from the partition's leader: a leader that died does not answer, and
        // the caller asks again (with fresh metadata) sooner than the whole read's timeout.
        let (low, high) = once_known(timeout, || {
            Ok(self.consumer.fetch_watermarks(
                &self.topic,
                partition,
                timeout.min(Duration::from_secs(5)),
            )?)
        })?;
        if high <= low {
            return Ok(table);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Beginning)?;
        self.consumer.assign(&tpl)?;
        let deadline = Instant::now() + timeout;
        let result = loop {
            if Instant::now() > deadline {
                break Err(KafkaError::Client(rdkafka::error::KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                )));
            }
            let Some(msg) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = match msg {
                Ok(m) => m,
                // With read_committed the end is the last stable offset: transaction markers
                // take offsets too, so the last offset itself may never be delivered.
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) if p == partition => {
                    break Ok(());
                }
                // Left over from an earlier read's partition.
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => continue,
                // Brokers going away and coming back (a leader election, a restart) are
                // reported as events in the same queue; librdkafka reconnects and fetches on
                // by itself. Giving up on the first one made every retry read a stale event
                // instead of the partition.
                Err(e) => {
                    let e = KafkaError::from(e);
                    if e.is_fatal() {
                        break Err(e);
                    }
                    tracing::debug!(partition, error = %e, "Changelog read: a transient error; reading on.");
                    continue;
                }
            };
            if msg.partition() != partition {
                continue;
            }
            table.records += 1;
            if let Some(k) = msg.key() {
                table.bytes += (k.len() + msg.payload_len()) as u64;
                match msg.payload() {
                    Some(v) => table.entries.insert(k.to_vec(), v.to_vec()),
                    None => table.entries.remove(k),
                };
            }
        };
        self.consumer.unassign()?;
        result.map(|()| table)
    }
}

/// One change of a followed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpdate {
    /// The record key (`None` for a keyless record).
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Where it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A compacted topic followed as a table by every instance (a Kafka Streams `GlobalKTable`):
/// every partition is read from the beginning without a consumer group, first to its end
/// ([`catch_up`](Self::catch_up)), then for whatever arrives ([`poll`](Self::poll)).
pub struct TableFollower {
    consumer: BaseConsumer<RebalanceLog>,
    topic: String,
}

impl TableFollower {
    /// Starts following `topic` from its beginning (`read_committed`). A topic the broker
    /// asked does not know (yet: it was just created) is asked for again for up to 10 s.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the consumer cannot be created or the topic's metadata
    /// cannot be read within `timeout`; [`KafkaError::Topic`] (`UnknownTopicOrPartition`)
    /// when the topic does not exist.
    pub fn new(
        bootstrap: &str,
        overrides: &[(String, String)],
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let consumer = assigning_reader(bootstrap, overrides, "hr-table-follower")?;
        let mut tpl = TopicPartitionList::new();
        for p in partition_ids(&consumer, topic, timeout)? {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// The topic followed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads every partition to its current end and returns what was read, in order.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the end is not reached within `timeout`.
    pub fn catch_up(&self, timeout: Duration) -> Result<Vec<TableUpdate>, KafkaError> {
        let mut open: std::collections::BTreeSet<i32> = self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        // An empty partition is caught up already: waiting for its end-of-partition would
        // wait out the broker's long poll of an empty fetch (fetch.wait.max.ms, 500 ms).
        open.retain(|p| {
            self.consumer
                .fetch_watermarks(&self.topic, *p, timeout.min(Duration::from_secs(5)))
                .map_or(true, |(low, high)| high > low)
        });
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !open.is_empty() {
            if Instant::now() > deadline {
                return Err(KafkaError::Client(rdkafka::error::KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                )));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => {
                    let e = KafkaError::from(e);
                    if e.is_fatal() {
                        return Err(e);
                    }
                    tracing::debug!(topic = %self.topic, error = %e, "Table read: a transient error; reading on.");
                }
                Some(Ok(m)) => out.push(update(&m)),
            }
        }
        Ok(out)
    }

    /// Whatever arrived since the last call, without waiting.
    ///
    /// # Errors
    /// [`KafkaError::Client`] for a consumer error other than end-of-partition.
    pub fn poll(&self) -> Result<Vec<TableUpdate>, KafkaError> {
        let mut out = Vec::new();
        loop {
            match self.consumer.poll(Duration::ZERO) {
                None => return Ok(out),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let e = KafkaError::from(e);
                    if e.is_fatal() {
                        return Err(e);
                    }
                    tracing::debug!(topic = %self.topic, error = %e, "Table read: a transient error; reading on.");
                }
                Some(Ok(m)) => out.push(update(&m)),
            }
        }
    }
}

fn update(m: &rdkafka::message::BorrowedMessage<'_>) -> TableUpdate {
    TableUpdate {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        partition: m.partition(),
        offset: m.offset(),
    }
}
