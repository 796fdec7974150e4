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
