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
}

impl KafkaError {
    /// The librdkafka error code, when there is one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::Client(e) => e.rdkafka_error_code(),
            KafkaError::Topic { code, .. } => Some(*code),
            _ => None,
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
