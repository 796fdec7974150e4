//! Where a [`Source`] stands in each partition: its read position ([`Source::seek`]), the
//! group's committed offsets (read with [`Source::committed`], written with [`Source::commit`])
//! and the records still behind each partition's end ([`Source::lag`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Source;
use super::group::lock;
use crate::KafkaError;

impl Source {
    /// Moves the read position of an owned `partition` to `offset`: the next record polled from
    /// it is the one at `offset`. Records polled before the call are not taken back.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka refuses the seek (e.g. the partition is not owned).
    pub fn seek(&self, partition: i32, offset: i64, timeout: Duration) -> Result<(), KafkaError> {
        self.consumer
            .seek(&self.topic, partition, Offset::Offset(offset), timeout)?;
        // Records of the partition taken before the seek are from the old position.
        if let Some(fetch) = &self.fetch {
            lock(&fetch.batch).retain(|m| m.get().partition != partition);
        }
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
