//! Kafka adapters for hr-stream: a consumer-group source, sinks, topic admin and a test broker.
#![deny(missing_docs)]

mod config;

pub use config::client_config;
/// The rdkafka crate this one is built on, for callers that need its types directly.
pub use rdkafka;
