//! The crate's error type.

use rdkafka::types::RDKafkaErrorCode;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// librdkafka reported an error (connection, configuration, protocol).
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The broker refused an operation on a topic.
    #[error("topic {topic}: {code}")]
    Topic {
        /// The topic concerned.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// Records sent to Kafka were not delivered.
    #[error("{failed} record(s) not delivered, first: {first}")]
    Delivery {
        /// How many records failed.
        failed: u64,
        /// The first failure.
        first: String,
    },
    /// An operation was asked for in a state that cannot serve it.
    #[error("{0}")]
    State(String),
    /// A test broker could not be found or started.
    #[error("no test broker: {0}")]
    NoBroker(String),
    /// The broker refused an operation because the principal has no ACL allowing it: what was
    /// refused, on what (see [`KafkaError::refused`]).
    #[error("not authorized: the principal needs {operation} on {resource} ({code})")]
    Unauthorized {
        /// The ACL operation, e.g. `READ`, `WRITE`, `CREATE`, `DESCRIBE_CONFIGS`.
        operation: String,
        /// The resource, e.g. `topic heart_rate_events` or `group hr-pipeline`.
        resource: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
}

/// The broker's authorization failures, by their names in librdkafka's messages.
const AUTHORIZATION: [RDKafkaErrorCode; 4] = [
    RDKafkaErrorCode::TopicAuthorizationFailed,
    RDKafkaErrorCode::GroupAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
    RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
];

impl KafkaError {
    /// The librdkafka error code, when there is one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::Client(e) => e.rdkafka_error_code(),
            KafkaError::Topic { code, .. } | KafkaError::Unauthorized { code, .. } => Some(*code),
            // A delivery failure keeps its first reason as text; an authorization failure in it
            // ends the job as surely as one returned by a call.
            KafkaError::Delivery { first, .. } => AUTHORIZATION
                .into_iter()
                .find(|c| first.contains(&format!("{c:?}"))),
            _ => None,
        }
    }

    /// The broker refused this for want of an ACL (topic, group, cluster or transactional id).
    pub fn is_authorization(&self) -> bool {
        self.code().is_some_and(|c| AUTHORIZATION.contains(&c))
    }

    /// The topic this error names itself, if any: the topic of a refused topic operation, or of
    /// the first record not delivered.
    pub fn topic(&self) -> Option<&str> {
        match self {
            KafkaError::Topic { topic, .. } => Some(topic),
            KafkaError::Delivery { first, .. } => first.split_once(": ").map(|(t, _)| t),
            _ => None,
        }
    }

    /// An authorization failure, as [`KafkaError::Unauthorized`] naming `operation` (an ACL
    /// operation such as `READ`) on `resource` (`topic T`, `group G`, ...), so that the message
    /// says which ACL is missing; any other error unchanged.
    #[must_use]
    pub fn refused(self, operation: &str, resource: impl Into<String>) -> Self {
        match self.code() {
            _ if matches!(self, KafkaError::Unauthorized { .. }) => self,
            Some(code) if self.is_authorization() => KafkaError::Unauthorized {
                operation: operation.to_owned(),
                resource: resource.into(),
                code,
            },
            _ => self,
        }
    }

    /// An error after which this client, or the job, cannot go on: authentication or
    /// authorization refused, a producer fenced by another with its transactional id, a topic
    /// that no longer exists, or any error librdkafka itself marks fatal. Everything else
    /// (brokers down, timeouts, rebalances, an aborted transaction) is ridden out.
    pub fn is_fatal(&self) -> bool {
        use RDKafkaErrorCode as C;
        if let KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) = self
            && e.is_fatal()
        {
            return true;
        }
        matches!(
            self.code(),
            Some(
                C::Authentication
                    | C::SaslAuthenticationFailed
                    | C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::TransactionalIdAuthorizationFailed
                    | C::ProducerFenced
                    | C::Fenced
                    | C::Fatal
                    | C::UnknownTopic
                    | C::UnknownTopicOrPartition
                    | C::InvalidConfig
                    | C::InvalidArgument
            )
        )
    }

    /// This producer was fenced: another producer initialised its transactional id, or the
    /// transaction coordinator bumped its epoch when an open transaction outlived
    /// `transaction.timeout.ms` (a paused or cut-off process). The producer is finished, but
    /// the job is not: a new producer with the same id starts clean, and the work since the
    /// last commit is redone (Kafka Streams closes its tasks and rejoins on
    /// `TaskMigratedException` the same way).
    pub fn is_fenced(&self) -> bool {
        use RDKafkaErrorCode as C;
        let code = match self {
            KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) => Some(e.code()),
            _ => self.code(),
        };
        matches!(
            code,
            Some(C::ProducerFenced | C::Fenced | C::InvalidProducerEpoch)
        )
    }

    /// The producer cannot go on, but a new one with the same transactional id can: it was
    /// fenced, or librdkafka raised a fatal error that is not a refusal (an idempotent
    /// sequence out of step with a partition's new leader after a broker died, an unknown
    /// producer id). Its open transaction is ended by the new producer and the work since the
    /// last commit is redone; Kafka Streams treats the same errors as a task migration.
    /// Refusals (authentication, authorization, a topic that does not exist, a configuration
    /// librdkafka rejects) stay fatal: a new producer would be refused again.
    pub fn needs_new_producer(&self) -> bool {
        self.is_fenced() || (self.is_fatal() && !self.is_refusal())
    }

    /// A producer that refuses to queue records: it needs a new producer, or its transaction
    /// must be aborted first (librdkafka: "Producing not allowed in transactional state").
    pub fn producer_unusable(&self) -> bool {
        let code = match self {
            KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) => Some(e.code()),
            _ => self.code(),
        };
        self.needs_new_producer() || code == Some(RDKafkaErrorCode::State)
    }

    /// Refused for who the client is or what it asked for, not for the state it was in.
    fn is_refusal(&self) -> bool {
        use RDKafkaErrorCode as C;
        self.is_authorization()
            || matches!(
                self.code(),
                Some(
                    C::Authentication
                        | C::SaslAuthenticationFailed
                        | C::UnknownTopic
                        | C::UnknownTopicOrPartition
                        | C::InvalidConfig
                        | C::InvalidArgument
                )
            )
    }

    /// A transactional call that timed out or hit a transient error and must be called again
    /// to finish (librdkafka: "retry call to resume"); calling anything else meanwhile is
    /// refused as a conflicting call.
    pub fn is_retriable_txn(&self) -> bool {
        matches!(
            self,
            KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) if e.is_retriable()
        )
    }

    /// A transactional call whose transaction must now be aborted (and can be).
    pub fn txn_requires_abort(&self) -> bool {
        matches!(
            self,
            KafkaError::Client(rdkafka::error::KafkaError::Transaction(e)) if e.txn_requires_abort()
        )
    }

    /// A record refused for its own size, so that a smaller stand-in can take its place.
    pub fn is_record_too_large(&self) -> bool {
        use RDKafkaErrorCode as C;
        matches!(
            self.code(),
            Some(C::MessageSizeTooLarge | C::InvalidRecord | C::MessageBatchTooLarge)
        )
    }
}

/// The topic of a partition that, as librdkafka logged, the transaction coordinator refused to
/// add to the transaction for want of an ACL (`ADDPARTS`: `Failed to add partition "T" [p] to
/// transaction: Broker: Topic authorization failed`). The transaction then fails, and the
/// transactional step that notices it reports only an erroneous state or purged records.
pub(crate) fn refused_partition(fac: &str, message: &str) -> Option<String> {
    if fac != "ADDPARTS" || !message.contains("Topic authorization failed") {
        return None;
    }
    let (_, rest) = message.split_once("Failed to add partition \"")?;
    let (topic, _) = rest.split_once('"')?;
    Some(topic.to_owned())
}

/// Where librdkafka's own log lines go. Connection failures are retried by librdkafka every
/// few hundred milliseconds while a broker is down; the caller reports the outage once per
/// change of state, so these lines are debug output. Anything else keeps its level.
pub(crate) fn log_librdkafka(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    let connection = matches!(fac, "FAIL" | "REQTMOUT" | "BROKERFAIL" | "CONNECT")
        || message.contains("Connection refused")
        || message.contains("brokers are down");
    match level {
        _ if connection => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "{fac}: {message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac}: {message}"),
        L::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_in_a_fatal_state_is_replaced_and_a_refused_one_is_not() {
        use rdkafka::error::KafkaError as Rd;
        let produce = |c| KafkaError::Client(Rd::MessageProduction(c));
        // Producing after librdkafka raised a fatal error (a sequence out of step with a new
        // leader): a new producer with the same id goes on.
        let fatal = produce(RDKafkaErrorCode::Fatal);
        assert!(fatal.is_fatal() && fatal.needs_new_producer() && fatal.producer_unusable());
        let fenced = produce(RDKafkaErrorCode::InvalidProducerEpoch);
        assert!(fenced.needs_new_producer());
        // A transaction that must be aborted first: unusable, but the same producer aborts it.
        let state = produce(RDKafkaErrorCode::State);
        assert!(!state.is_fatal() && !state.needs_new_producer() && state.producer_unusable());
        // Refusals end the job: a new producer would be refused again.
        for c in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::InvalidConfig,
        ] {
            let e = produce(c);
            assert!(e.is_fatal() && !e.needs_new_producer(), "{e}");
            assert!(!e.producer_unusable(), "{e}");
        }
        // Transient errors are neither.
        let down = produce(RDKafkaErrorCode::AllBrokersDown);
        assert!(!down.needs_new_producer() && !down.producer_unusable());
    }

    #[test]
    fn a_refused_partition_or_delivery_names_its_topic() {
        let line = "TxnCoordinator/1: Failed to add partition \"g-changelog\" [1] to transaction: \
                    Broker: Topic authorization failed";
        assert_eq!(
            refused_partition("ADDPARTS", line).as_deref(),
            Some("g-changelog")
        );
        assert_eq!(refused_partition("TXNERR", line), None);
        let other = line.replace("Topic authorization failed", "Operation not attempted");
        assert_eq!(refused_partition("ADDPARTS", &other), None);
        // A delivery refused is fatal, names its topic, and names the missing ACL.
        let e = KafkaError::Delivery {
            failed: 3,
            first: "g-changelog: Message production error: TopicAuthorizationFailed (Broker: \
                    Topic authorization failed)"
                .into(),
        };
        assert!(e.is_fatal() && e.is_authorization(), "{e}");
        assert_eq!(e.topic(), Some("g-changelog"));
        let e = e.refused("WRITE", "topic g-changelog");
        assert!(e.is_fatal(), "{e}");
        assert!(
            e.to_string()
                .starts_with("not authorized: the principal needs WRITE on topic g-changelog"),
            "{e}"
        );
    }

    #[test]
    fn only_authorization_failures_are_renamed() {
        let purged = KafkaError::Delivery {
            failed: 1,
            first: "alerts: Message production error: PurgeQueue (Local: Purged in queue)".into(),
        };
        assert!(!purged.is_fatal());
        assert!(matches!(
            purged.refused("WRITE", "topic alerts"),
            KafkaError::Delivery { .. }
        ));
        let missing = KafkaError::Topic {
            topic: "t".into(),
            code: RDKafkaErrorCode::UnknownTopicOrPartition,
        };
        assert!(matches!(
            missing.refused("READ", "topic t"),
            KafkaError::Topic { .. }
        ));
        let group = KafkaError::Topic {
            topic: "t".into(),
            code: RDKafkaErrorCode::GroupAuthorizationFailed,
        }
        .refused("READ", "group g");
        // Named once: a second name does not replace the first.
        let again = group.refused("WRITE", "topic t");
        assert!(
            again.to_string().contains("needs READ on group g"),
            "{again}"
        );
    }
}
