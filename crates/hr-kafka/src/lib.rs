//! Kafka adapters for hr-stream: a consumer-group source, sinks, topic admin and a test broker.
//!
//! Everything that speaks the Kafka protocol lives here, over librdkafka (rdkafka), so the pure
//! crates never see I/O. The one decision that shapes it: Kafka properties are never wrapped in
//! our own names beyond the few the pipeline needs; any librdkafka property passes through
//! ([`client_config`]) so TLS/SASL clusters work without code changes.
//!
//! - [`Source`]: a synchronous consumer-group reader over `BaseConsumer`, polled on the
//!   caller's thread (no channel per record, no async runtime), taking records from librdkafka
//!   in batches ([`Fetch`]), with rebalance events, bounded mode and explicit synchronous
//!   commits; its prefetch memory is bounded by default.
//! - [`Sink`]: one producer (acks=all, lz4) for alerts and for set-aside records with their
//!   original bytes and `hr.*` headers: idempotent ([`Sink::new`]) or transactional
//!   ([`Sink::transactional`], offsets committed inside the transaction); [`AlertFile`] and
//!   [`StagedAlertFile`] for the JSONL alert files; [`witness`]: whether a transaction whose
//!   answer was lost committed, told by one of its records.
//! - [`read_table`] and [`TableFollower`]: a compacted topic read as the latest value per key.
//! - Topic admin ([`ensure_topics`] and friends, or one [`Admin`] client for several calls),
//!   async, with [`blocking`] forms for callers without a runtime; [`probe`]: a broker check that fails in one readable line.
//!
//! It may depend on rdkafka and tokio (the admin API is async); never on hr-window, polars, or
//! command-line crates (the shared Kafka flags are hr-cli's `KafkaArgs`).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), hr_kafka::KafkaError> {
//! use std::time::Duration;
//! use hr_kafka::{client_config, ensure_topics, TopicSpec};
//! let cfg = client_config("localhost:9092", &[]);
//! ensure_topics(&cfg, &[TopicSpec::new("heart_rate_events", 3)], Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod admin;
mod alert_file;
mod config;
mod delivery;
mod error;
mod metadata;
mod probe;
mod sink;
mod source;
mod table;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod witness;

pub use admin::{
    Admin, Replication, TopicInfo, TopicOutcome, TopicSpec, blocking, delete_groups, delete_topics,
    describe_topic, ensure_topics, topic_config,
};
pub use alert_file::{AlertFile, Leftover, StagedAlertFile};
pub use config::{client_config, client_id};
pub use delivery::{Delivered, Deliveries, DeliveryLog};
pub use error::KafkaError;
pub use probe::{BrokerInfo, ConnectError, ConnectErrorKind, builtin_features, probe};
/// The rdkafka crate this one is built on, for callers that need its types directly.
pub use rdkafka;
pub use sink::{Diversion, Sink};
pub use source::{
    FETCH_BATCH, Fetch, Polled, RebalanceEvent, RebalanceLog, Record, RevokeHook, Source,
    SourceConfig,
};
pub use table::{PartitionReader, PartitionTable, TableFollower, TableUpdate, read_table};
pub use witness::{Outcome, Witness};
