//! Topic administration through the Kafka admin API.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// How the topics a program creates are replicated. The default takes the cluster's own
/// `default.replication.factor` and `min.insync.replicas` (the Admin API's "broker default", as
/// Kafka Streams does), so a topic made on a 3-broker cluster gets its 3 replicas without a flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replication {
    /// Replicas per partition; `None`: the cluster's default.
    pub factor: Option<i32>,
    /// `min.insync.replicas` set on created topics; `None`: the cluster's default.
    pub min_insync: Option<i32>,
}

/// A topic to ensure: name, partition count, replication and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; `None` takes the cluster's `default.replication.factor`.
    pub replication: Option<i32>,
    /// Topic configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions and the cluster's default replication and configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: None,
            configs: Vec::new(),
        }
    }

    /// A compacted topic (`cleanup.policy=compact`): one value per key, kept forever.
    pub fn compacted(name: impl Into<String>, partitions: i32) -> Self {
        Self::new(name, partitions).config("cleanup.policy", "compact")
    }

    /// Adds (or replaces) topic config `key`.
    #[must_use]
    pub fn config(mut self, key: &str, value: impl Into<String>) -> Self {
        self.configs.retain(|(k, _)| k != key);
        self.configs.push((key.to_owned(), value.into()));
        self
    }

    /// Applies `r`: its replication factor, and its `min.insync.replicas` as a topic config.
    #[must_use]
    pub fn replicated(mut self, r: Replication) -> Self {
        self.replication = r.factor;
        match r.min_insync {
            Some(n) => self.config("min.insync.replicas", n.to_string()),
            None => self,
        }
    }
}

/// What [`Admin::ensure_topics`] did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// The topic did not exist and was created.
    Created(String),
    /// The topic already existed; it was left as it is.
    Existed(String),
}

/// One admin client for several calls. Every free function here makes its own; a program
/// making several calls in a row (the job's start-up checks a dozen topics) keeps one: making a
/// client costs a connection and a metadata round trip.
///
/// Dropping it returns at once: rust-rdkafka's admin client waits up to 100 ms for its polling
/// thread to stop, which happens on a thread of its own.
pub struct Admin {
    client: Option<AdminClient<DefaultClientContext>>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new()
                .name("hr-admin-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// Options for a call that waits up to `timeout` for the request and for the operation itself
/// (the controller's work for a creation or deletion).
fn waiting_options(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout))
}

impl Admin {
    /// A client for `config`. Its metadata requests never create the topic asked about (an
    /// admin client is a producer to librdkafka, whose metadata requests let a broker with
    /// `auto.create.topics.enable` create any topic they name).
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka refuses the configuration.
    pub fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let mut config = config.clone();
        config.set("allow.auto.create.topics", "false");
        Ok(Self {
            client: Some(config.create()?),
        })
    }

    fn client(&self) -> &AdminClient<DefaultClientContext> {
        self.client.as_ref().expect("taken only when dropped")
    }

    /// Creates every topic of `specs` that does not exist yet; existing topics are left
    /// untouched, so calling it again is a no-op. Waits up to `timeout` for the broker to
    /// answer.
    ///
    /// A topic that exists is left as it is even when the principal may not create topics, as
    /// long as it may see it (an operator made it beforehand).
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when it
    /// refuses a creation for another reason than "already exists" (with
    /// `TopicAuthorizationFailed`: the principal may neither create the topic nor see it).
    pub async fn ensure_topics(
        &self,
        specs: &[TopicSpec],
        timeout: Duration,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let new: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|s| {
                // -1 asks the broker for its default.replication.factor (KIP-464).
                let mut t = NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(s.replication.unwrap_or(-1)),
                );
                for (k, v) in &s.configs {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let opts = waiting_options(timeout);
        let results = self.client().create_topics(&new, &opts).await?;
        results
            .into_iter()
            .map(|r| match r {
                Ok(name) => Ok(TopicOutcome::Created(name)),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    Ok(TopicOutcome::Existed(name))
                }
                // A principal without CREATE is refused before the broker looks whether the
                // topic exists: one that an operator made beforehand, and that the principal
                // may see, is there to use.
                Err((
                    name,
                    code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed),
                )) => match self.visible(&name, timeout) {
                    Ok(Ok(())) => Ok(TopicOutcome::Existed(name)),
                    _ => Err(KafkaError::Topic { topic: name, code }),
                },
                Err((name, code)) => Err(KafkaError::Topic { topic: name, code }),
            })
            .collect()
    }

    /// The value of topic config `name` (e.g. `max.message.bytes`) of `topic`, as the broker
    /// reports it (its own default included); `None` when the broker reports no such config.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when it
    /// refuses to describe the topic (e.g. it does not exist); [`KafkaError::Unauthorized`]
    /// when the principal may not (DESCRIBE_CONFIGS on the topic).
    pub async fn topic_config(
        &self,
        topic: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<String>, KafkaError> {
        let opts = AdminOptions::new().request_timeout(Some(timeout));
        // On a cluster, a topic just created may be known to the broker that answers the
        // metadata request and not yet to the one asked for its configs: ask again for a few
        // seconds before reading empty configs as a refusal.
        let mut tries = 0;
        let results = loop {
            let results = self
                .client()
                .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
                .await?;
            let empty = results
                .iter()
                .any(|r| r.as_ref().is_ok_and(|c| c.entries.is_empty()));
            tries += 1;
            if !empty || tries >= 20 {
                break results;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        for r in results {
            let resource = r.map_err(|code| KafkaError::Topic {
                topic: topic.to_owned(),
                code,
            })?;
            if resource.entries.is_empty() {
                // rust-rdkafka drops a resource's own error and returns it without entries, and
                // a topic always has configs: ask the metadata why.
                let (code, operation) = match self.visible(topic, timeout)? {
                    // Visible, but its configs refused.
                    Ok(()) => (
                        RDKafkaErrorCode::TopicAuthorizationFailed,
                        "DESCRIBE_CONFIGS",
                    ),
                    Err(code) => (code, "DESCRIBE"),
                };
                return Err(KafkaError::Topic {
                    topic: topic.to_owned(),
                    code,
                }
                .refused(operation, format!("topic {topic}")));
            }
            if let Some(entry) = resource.get(name) {
                return Ok(entry.value.clone());
            }
        }
        Ok(None)
    }

    /// Whether `topic` exists and this principal may see it (DESCRIBE): `Ok(Err(code))` with
    /// the broker's answer when not (`UnknownTopicOrPartition`, or `TopicAuthorizationFailed`,
    /// which a broker also gives for a topic that does not exist to a principal that may not
    /// see it).
    fn visible(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Result<(), RDKafkaErrorCode>, KafkaError> {
        let md = self.client().inner().fetch_metadata(Some(topic), timeout)?;
        Ok(match md.topics().iter().find(|t| t.name() == topic) {
            Some(t) => match t.error() {
                Some(e) => Err(e.into()),
                None if !t.partitions().is_empty() => Ok(()),
                None => Err(RDKafkaErrorCode::UnknownTopicOrPartition),
            },
            None => Err(RDKafkaErrorCode::UnknownTopicOrPartition),
        })
    }

    /// Partitions, replication, broker count and cleanup policy of `topic`.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when the
    /// topic does not exist or cannot be described; [`KafkaError::Unauthorized`] when the
    /// principal may not see it (DESCRIBE) or its configs (DESCRIBE_CONFIGS).
    pub async fn describe_topic(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicInfo, KafkaError> {
        let md = self.client().inner().fetch_metadata(Some(topic), timeout)?;
        let mut partitions = 0;
        let mut replication = i32::MAX;
        for t in md.topics() {
            if let Some(err) = t.error() {
                return Err(KafkaError::Topic {
                    topic: topic.to_owned(),
                    code: err.into(),
                }
                .refused("DESCRIBE", format!("topic {topic}")));
            }
            for p in t.partitions() {
                partitions += 1;
                replication = replication.min(p.replicas().len() as i32);
            }
        }
        if partitions == 0 {
            return Err(KafkaError::Topic {
                topic: topic.to_owned(),
                code: RDKafkaErrorCode::UnknownTopicOrPartition,
            });
        }
        let brokers = md.brokers().len();
        let cleanup_policy = self.topic_config(topic, "cleanup.policy", timeout).await?;
        Ok(TopicInfo {
            partitions,
            replication,
            brokers,
            cleanup_policy,
        })
    }

    /// Deletes `topics`; a topic that does not exist counts as deleted.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::Topic`] when it
    /// refuses a deletion for another reason.
    pub async fn delete_topics(
        &self,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let opts = waiting_options(timeout);
        for r in self.client().delete_topics(topics, &opts).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => return Err(KafkaError::Topic { topic, code }),
            }
        }
        Ok(())
    }

    /// Deletes the consumer groups `groups` (their committed offsets with them); a group that
    /// does not exist counts as deleted. A group with members left is refused.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when the broker cannot be reached; [`KafkaError::State`] naming
    /// the group when it refuses a deletion for another reason (the group is not empty: members
    /// left).
    pub async fn delete_groups(
        &self,
        groups: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let opts = waiting_options(timeout);
        for r in self.client().delete_groups(groups, &opts).await? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((group, code)) => {
                    return Err(KafkaError::State(format!(
                        "deleting consumer group {group}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// [`Admin::ensure_topics`] with a client of its own.
///
/// # Errors
/// As [`Admin::ensure_topics`].
pub async fn ensure_topics(
    config: &ClientConfig,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicOutcome>, KafkaError> {
    Admin::new(config)?.ensure_topics(specs, timeout).await
}

/// [`Admin::topic_config`] with a client of its own.
///
/// # Errors
/// As [`Admin::topic_config`].
pub async fn topic_config(
    config: &ClientConfig,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    Admin::new(config)?.topic_config(topic, name, timeout).await
}

/// What the cluster says of one topic: what a job checks before it relies on the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Number of partitions.
    pub partitions: i32,
    /// The smallest replica count of any of its partitions.
    pub replication: i32,
    /// Brokers in the cluster.
    pub brokers: usize,
    /// Its `cleanup.policy` (e.g. `delete`, `compact`, `compact,delete`).
    pub cleanup_policy: Option<String>,
}

impl TopicInfo {
    /// Whether the topic keeps the latest value of every key (`cleanup.policy` has `compact`).
    pub fn is_compacted(&self) -> bool {
        self.cleanup_policy
            .as_deref()
            .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact"))
    }
}

/// [`Admin::describe_topic`] with a client of its own.
///
/// # Errors
/// As [`Admin::describe_topic`].
pub async fn describe_topic(
    config: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<TopicInfo, KafkaError> {
    Admin::new(config)?.describe_topic(topic, timeout).await
}

/// [`Admin::delete_topics`] with a client of its own.
///
/// # Errors
/// As [`Admin::delete_topics`].
pub async fn delete_topics(
    config: &ClientConfig,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), KafkaError> {
    Admin::new(config)?.delete_topics(topics, timeout).await
}

/// [`Admin::delete_groups`] with a client of its own.
///
/// # Errors
/// As [`Admin::delete_groups`].
pub async fn delete_groups(
    config: &ClientConfig,
    groups: &[&str],
    timeout: Duration,
) -> Result<(), KafkaError> {
    Admin::new(config)?.delete_groups(groups, timeout).await
}

/// Blocking forms of the admin calls, for callers without an async runtime (one is made for
/// the call): with a client of their own, or (`*_on`) on an [`Admin`] kept for several calls.
pub mod blocking {
    use super::*;

    fn block_on<T>(
        f: impl std::future::Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, KafkaError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KafkaError::State(format!("starting a runtime for the admin API: {e}")))?
            .block_on(f)
    }

    /// [`Admin::ensure_topics`], blocking.
    ///
    /// # Errors
    /// As [`Admin::ensure_topics`].
    pub fn ensure_topics_on(
        admin: &Admin,
        specs: &[TopicSpec],
        timeout: Duration,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        block_on(admin.ensure_topics(specs, timeout))
    }

    /// [`Admin::topic_config`], blocking.
    ///
    /// # Errors
    /// As [`Admin::topic_config`].
    pub fn topic_config_on(
        admin: &Admin,
        topic: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<String>, KafkaError> {
        block_on(admin.topic_config(topic, name, timeout))
    }

    /// [`Admin::describe_topic`], blocking.
    ///
    /// # Errors
    /// As [`Admin::describe_topic`].
    pub fn describe_topic_on(
        admin: &Admin,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicInfo, KafkaError> {
        block_on(admin.describe_topic(topic, timeout))
    }

    /// [`super::ensure_topics`], blocking.
    ///
    /// # Errors
    /// As [`super::ensure_topics`].
    pub fn ensure_topics(
        config: &ClientConfig,
        specs: &[TopicSpec],
        timeout: Duration,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        block_on(super::ensure_topics(config, specs, timeout))
    }

    /// [`super::topic_config`], blocking.
    ///
    /// # Errors
    /// As [`super::topic_config`].
    pub fn topic_config(
        config: &ClientConfig,
        topic: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<String>, KafkaError> {
        block_on(super::topic_config(config, topic, name, timeout))
    }

    /// [`super::describe_topic`], blocking.
    ///
    /// # Errors
    /// As [`super::describe_topic`].
    pub fn describe_topic(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicInfo, KafkaError> {
        block_on(super::describe_topic(config, topic, timeout))
    }

    /// [`super::delete_topics`], blocking.
    ///
    /// # Errors
    /// As [`super::delete_topics`].
    pub fn delete_topics(
        config: &ClientConfig,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        block_on(super::delete_topics(config, topics, timeout))
    }

    /// [`super::delete_groups`], blocking.
    ///
    /// # Errors
    /// As [`super::delete_groups`].
    pub fn delete_groups(
        config: &ClientConfig,
        groups: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        block_on(super::delete_groups(config, groups, timeout))
    }
}
