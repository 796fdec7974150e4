//! What every hr-stream binary shares at its edge: the Kafka flags, flags layered over `HR_*`
//! variables and a `--config` file, durations, logging and colour, one stop flag for
//! SIGINT/SIGTERM, and how a command ends (exit code, error chain, a closed pipe).
//!
//! The one decision that shapes it: **the command line is plumbing of its own.** It lives apart
//! from the Kafka adapter and from the logic crates (as ripgrep's `grep-cli` lives apart from
//! its searcher), so hr-kafka stays Kafka only, no library drags clap, toml or
//! tracing-subscriber in, and every binary reads flags, files, durations and signals the same
//! way. The layering itself is clap's: a config file's values become the defaults of the
//! matching arguments, so a flag wins over its `HR_*` variable, the variable over the file, the
//! file over the built-in default, and each value goes through the flag's own parser.
//!
//! - [`parse`] / [`try_parse_from`]: a clap parser plus `--config FILE`, with the [`Effective`]
//!   listing of every setting and where it came from (`hr-pipeline config`).
//! - [`KafkaArgs`]: `-b/--bootstrap` and `-X key=value`, the same in every binary.
//! - [`parse_duration`], [`parse_duration_ms`], [`parse_duration_or_off`],
//!   [`parse_duration_or_forever`]: every duration flag, over hr-model's one grammar.
//! - [`init_logging`] (with [`OncePerSecond`]) and [`color_on`].
//! - [`StopFlag`]: set by SIGINT or SIGTERM, polled by loops, awaited by servers.
//! - [`finish`]: the exit code, `<program>: error: <chain>`, and quiet on a closed pipe.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use clap::Parser;
//! use hr_cli::{KafkaArgs, Source};
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     kafka: KafkaArgs,
//!     /// Consumer group.
//!     #[arg(long, default_value = "hr-pipeline")]
//!     group: String,
//!     /// Time between commits.
//!     #[arg(long, value_parser = hr_cli::parse_duration, default_value = "200ms")]
//!     commit_interval: Duration,
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("hr-stream.toml");
//! std::fs::write(&file, "bootstrap = \"b:9092\"\n[pipeline]\ngroup = \"ward-3\"\n").unwrap();
//! let parsed = hr_cli::try_parse_from::<Args, _, _>(
//!     "pipeline",
//!     ["hr-pipeline", "--config", file.to_str().unwrap(), "-b", "flag:9092"],
//! )?;
//! assert_eq!(parsed.args.kafka.bootstrap, "flag:9092");
//! assert_eq!(parsed.args.group, "ward-3");
//! assert_eq!(parsed.args.commit_interval, Duration::from_millis(200));
//! assert_eq!(parsed.effective.get("group").unwrap().source, Source::File);
//! # Ok::<(), hr_cli::ConfigError>(())
//! ```
#![deny(missing_docs)]

mod config;
mod duration;
mod kafka;
mod logging;
mod output;
mod signal;

pub use config::{
    CONFIG_ID, ConfigError, Effective, Parsed, SECTIONS, SHARED_KEYS, Setting, Source, parse,
    try_parse_from,
};
pub use duration::{
    DurationOr, millis, parse_duration, parse_duration_ms, parse_duration_or_forever,
    parse_duration_or_off,
};
pub use kafka::{KafkaArgs, parse_property};
pub use logging::{OncePerSecond, init_logging, since_start};
pub use output::{causes, color_on, error_chain, finish, finish_with, is_broken_pipe};
pub use signal::{OnSignal, StopFlag};
