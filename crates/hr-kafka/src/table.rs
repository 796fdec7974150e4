//! Reading a compacted topic as a table: the latest value of every key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaError, RebalanceLog, client_config};

/// Reads `topic` from the beginning up to the end offsets seen at the call and returns the last
/// value of each key (a record without a value deletes its key). Keyless records are ignored.
///
/// It reads without a consumer group, so it never disturbs the caller's group.
///
/// # Errors
/// [`KafkaError::Client`] when the topic cannot be read, or the end is not reached within
/// `timeout`.
pub fn read_table(
    bootstrap: &str,
    overrides: &[(String, String)],
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, KafkaError> {
    let mut cc = client_config(bootstrap, overrides);
    cc.set("enable.auto.commit", "false")
        .set("group.id", "hr-table-reader")
        // Compaction leaves gaps, so the last offset may never be seen: end-of-partition is the end.
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<RebalanceLog> = cc.create_with_context(RebalanceLog::default())?;
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                ends.insert(p.id(), high);
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
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
