//! Topic administration through the Kafka admin API.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// A topic to ensure: name and partition count (replication factor 1 unless set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, replication factor 1 and broker-default configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: 1,
            configs: Vec::new(),
        }
    }
}

/// What [`ensure_topics`] did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// The topic did not exist and was created.
    Created(String),
    /// The topic already existed; it was left as it is.
    Existed(String),
}

/// Creates every topic of `specs` that does not exist yet; existing topics are left untouched, so
/// calling it again is a no-op. Waits up to `timeout` for the broker to answer.
///
/// # Errors
/// [`KafkaError::Client`] when the broker cannot be reached or refuses a creation for another
/// reason than "already exists".
pub async fn ensure_topics(
    config: &ClientConfig,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicOutcome>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication),
            );
            for (k, v) in &s.configs {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin.create_topics(&new, &opts).await?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(name) => Ok(TopicOutcome::Created(name)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(TopicOutcome::Existed(name)),
            Err((name, code)) => Err(KafkaError::Topic { topic: name, code }),
        })
        .collect()
}

/// The value of topic config `name` (e.g. `max.message.bytes`) of `topic`, as the broker reports
/// it (its own default included); `None` when the broker reports no such config.
///
/// # Errors
/// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when it
/// refuses to describe the topic (e.g. it does not exist).
pub async fn topic_config(
    config: &ClientConfig,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await?;
    for r in results {
        let resource = r.map_err(|code| KafkaError::Topic {
            topic: topic.to_owned(),
            code,
        })?;
        if let Some(entry) = resource.get(name) {
            return Ok(entry.value.clone());
        }
    }
    Ok(None)
}

/// Deletes `topics`; a topic that does not exist counts as deleted.
///
/// # Errors
/// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when it
/// refuses a deletion for another reason.
pub async fn delete_topics(
    config: &ClientConfig,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    for r in admin.delete_topics(topics, &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(KafkaError::Topic { topic, code }),
        }
    }
    Ok(())
}
