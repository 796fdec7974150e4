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
    /// A test broker could not be found or started.
    #[error("no test broker: {0}")]
    NoBroker(String),
}
