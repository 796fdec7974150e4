//! Topic metadata as a client sees it, and the moment after a topic is created.
//!
//! The controller answers a creation once it has recorded the topic; each broker learns of it
//! from the metadata log a moment later (longer for a broker just restarted, still replaying
//! the log). A client that asks a broker which has not learnt of it yet is told the topic does
//! not exist, or that its partitions have no leader. On a cluster that is the common case for
//! instances started together: one creates the changelog, another asks a different broker.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaError, RebalanceLog};

/// How long a topic that a broker does not know is asked for again before the answer stands:
/// far longer than a broker takes to learn of a new topic, short enough that a topic that
/// really is missing is reported soon.
pub(crate) const NEW_TOPIC_GRACE: Duration = Duration::from_secs(10);

/// How often it is asked again.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// The broker's answer says the topic, or a partition's leader, is not known to it (yet).
pub(crate) fn not_known(e: &KafkaError) -> bool {
    matches!(
        e.code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::LeaderNotAvailable
        )
    )
}

/// Calls `ask` until it returns anything but [`not_known`], for at most `grace` (and never
/// past [`NEW_TOPIC_GRACE`]); then its last answer stands.
pub(crate) fn once_known<T>(
    grace: Duration,
    mut ask: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = Instant::now() + grace.min(NEW_TOPIC_GRACE);
    loop {
        match ask() {
            Err(e) if not_known(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "A topic not known to the broker asked; asking again.");
                std::thread::sleep(ASK_EVERY);
            }
            r => return r,
        }
    }
}

/// The partition ids of `topic`, sorted, from the cluster's metadata. A topic the broker
/// asked does not know yet is asked for again for a while (see the module's docs).
///
/// # Errors
/// [`KafkaError::Client`] when no broker answers within `timeout`; [`KafkaError::Topic`] when
/// the topic does not exist or cannot be seen (its code says which).
pub(crate) fn partition_ids(
    consumer: &BaseConsumer<RebalanceLog>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    once_known(timeout, || {
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let mut ids = Vec::new();
        for t in md.topics() {
            if let Some(err) = t.error() {
                return Err(KafkaError::Topic {
                    topic: topic.to_owned(),
                    code: err.into(),
                });
            }
            ids.extend(t.partitions().iter().map(|p| p.id()));
        }
        if ids.is_empty() {
            return Err(KafkaError::Topic {
                topic: topic.to_owned(),
                code: RDKafkaErrorCode::UnknownTopicOrPartition,
            });
        }
        ids.sort_unstable();
        Ok(ids)
    })
}
