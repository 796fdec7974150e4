//! The command line of `hr-pipeline`: its flags, and how `run`'s flags become a [`RunConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hr_cli::{
    DurationOr, KafkaArgs, millis as ms, parse_duration, parse_duration_or_forever,
    parse_duration_or_off,
};
use hr_model::{EpisodePolicy, PatientProfile, Thresholds};
use hr_pipeline::driver::{Guarantee, RunConfig};
use hr_pipeline::http::parse_http_addr;
use hr_pipeline::processor::{Emit, ProcessorConfig};
use hr_pipeline::profiles::ProfileCommand;
use hr_window::{EngineConfig, WatermarkScope, WindowSpec};

use crate::BINARY;

/// Real-time heart-rate monitoring on Apache Kafka.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = EXAMPLES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

const EXAMPLES: &str = "\
Examples:
  # The seed's job: heart_rate_events -> 1-minute windows -> heart_rate_alerts and output/alerts/
  hr-pipeline

  # Replay everything in the topic once and exit when the last alert is committed
  hr-pipeline run --group replay-1 --bounded

  # Earlier detection: 60 s windows every 10 s, abnormal windows only, late readings still counted for 2 min
  hr-pipeline run --window sliding --size 60s --slide 10s --emit abnormal --allowed-lateness 2m

  # A pager reads heart_rate_episodes: raise after 2 abnormal windows, clear after 3 normal ones
  hr-pipeline run --raise-after 2 --clear-after 3

  # Prometheus metrics, liveness and readiness on another port (default 127.0.0.1:9464; `off` for none)
  hr-pipeline run --http 127.0.0.1:9465

  # Outputs visible at once instead of at each commit (a failure may repeat some)
  hr-pipeline run --guarantee at-least-once

  # Flink's watermark behaviour for a side-by-side check: one clock over all partitions
  hr-pipeline run --scope global --idle-timeout 30s

  # A TLS + SCRAM cluster
  hr-pipeline -b broker:9093 -X security.protocol=sasl_ssl -X sasl.mechanism=SCRAM-SHA-512 \\
    -X sasl.username=hr -X sasl.password=secret -X ssl.ca.location=/etc/ca.pem

  # Per-patient thresholds, read by every running instance
  hr-pipeline profiles set p001 --tachycardia-above 120
  hr-pipeline profiles list

  # Settings from a file, and where each effective value came from
  hr-pipeline config --config examples/hr-stream.toml

  # Create the topics (idempotent); `just up` runs this
  hr-pipeline topics --partitions 3

Every flag also reads the HR_* variable shown next to it, and the [pipeline] table of --config FILE:
a flag wins over its variable, the variable over the file, the file over the default.";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the streaming job (the default): readings -> windows -> alerts and episodes.
    ///
    /// Example: hr-pipeline run --bounded --window sliding --size 60s --slide 10s
    Run(RunArgs),
    /// Create the pipeline's topics if they do not exist (idempotent).
    ///
    /// Example: hr-pipeline topics --bootstrap localhost:9092 --partitions 3
    Topics(TopicsArgs),
    /// Per-patient thresholds in the compacted `patient_profiles` topic.
    ///
    /// Example: hr-pipeline profiles set p001 --tachycardia-above 120
    Profiles(ProfilesArgs),
    /// Print the effective configuration of `run` and where each value came from.
    ///
    /// Example: hr-pipeline config --config examples/hr-stream.toml --group ward-3
    Config(RunArgs),
}

/// How the topics a command creates are replicated (`topics`, `run` and `profiles` create
/// topics). Unset, they take the cluster's `default.replication.factor` and
/// `min.insync.replicas`, as Kafka Streams does: 3 and 2 on a usual production cluster.
#[derive(Debug, Args)]
pub(crate) struct ReplicationArgs {
    /// Replicas of each topic created (default: the cluster's default.replication.factor).
    #[arg(long, env = "HR_REPLICATION_FACTOR", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) replication_factor: Option<i32>,
    /// min.insync.replicas set on each topic created (default: the cluster's).
    #[arg(long, env = "HR_MIN_INSYNC_REPLICAS", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) min_insync_replicas: Option<i32>,
}

impl ReplicationArgs {
    pub(crate) fn replication(&self) -> hr_kafka::Replication {
        hr_kafka::Replication {
            factor: self.replication_factor,
            min_insync: self.min_insync_replicas,
        }
    }
}

/// The pipeline's topics, shared by `topics` (which creates them) and `run` (which uses them).
#[derive(Debug, Args)]
pub(crate) struct TopicNames {
    /// Readings topic.
    #[arg(long, env = "HR_INPUT_TOPIC", default_value = "heart_rate_events")]
    pub(crate) input_topic: String,
    /// Alerts topic.
    #[arg(long, env = "HR_ALERTS_TOPIC", default_value = "heart_rate_alerts")]
    pub(crate) alerts_topic: String,
    /// Dead-letter topic for records that fail validation.
    #[arg(long, env = "HR_DLQ_TOPIC", default_value = "heart_rate_events_dlq")]
    pub(crate) dlq_topic: String,
    /// Topic for readings too late for their window.
    #[arg(long, env = "HR_LATE_TOPIC", default_value = "heart_rate_late")]
    pub(crate) late_topic: String,
    /// Topic for raised and cleared episodes (a pager pages once per episode from it).
    #[arg(long, env = "HR_EPISODES_TOPIC", default_value = "heart_rate_episodes")]
    pub(crate) episodes_topic: String,
    /// Compacted topic of per-patient thresholds, or `none`.
    #[arg(long, env = "HR_PROFILES_TOPIC", default_value = "patient_profiles")]
    pub(crate) profiles_topic: String,
}

#[derive(Debug, Args)]
pub(crate) struct TopicsArgs {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// Partitions for each topic that is created.
    #[arg(long, env = "HR_PARTITIONS", default_value_t = 3)]
    pub(crate) partitions: i32,
    #[command(flatten)]
    pub(crate) replication: ReplicationArgs,
    #[command(flatten)]
    pub(crate) topics: TopicNames,
    /// How long to wait for the broker.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub(crate) timeout: Duration,
    /// Delete these topics instead of creating any (repeatable; e.g. a demo's own input topic
    /// and its group's changelog).
    #[arg(long, value_name = "TOPIC")]
    pub(crate) delete: Vec<String>,
    /// `retention.ms` of the topics created: a duration, or `forever`; the broker's default
    /// (7 days unless configured) if not given. Alerts and episodes carry their window end as
    /// Kafka timestamp and retention counts from it, so a replay of readings older than the
    /// retention loses its outputs at the broker's next retention check: replays of old data
    /// want `forever` (or a retention longer than their age).
    #[arg(long, value_parser = parse_duration_or_forever, value_name = "DURATION|forever")]
    pub(crate) retention: Option<DurationOr>,
}

#[derive(Debug, Args)]
pub(crate) struct ProfilesArgs {
    #[command(subcommand)]
    pub(crate) action: ProfileAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileAction {
    /// Set (merge into) a patient's profile; unset fields keep their current value.
    Set {
        /// The patient.
        patient_id: String,
        #[command(flatten)]
        fields: ProfileFields,
        #[command(flatten)]
        common: ProfileCommon,
    },
    /// Print a patient's profile and the thresholds it gives.
    Get {
        /// The patient.
        patient_id: String,
        #[command(flatten)]
        common: ProfileCommon,
    },
    /// Print every profile.
    List {
        #[command(flatten)]
        common: ProfileCommon,
    },
    /// Delete a patient's profile (a tombstone): the defaults apply again.
    Delete {
        /// The patient.
        patient_id: String,
        #[command(flatten)]
        common: ProfileCommon,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ProfileFields {
    /// Tachycardia above this average (bpm).
    #[arg(long)]
    pub(crate) tachycardia_above: Option<f64>,
    /// Bradycardia below this average (bpm).
    #[arg(long)]
    pub(crate) bradycardia_below: Option<f64>,
    /// Fewer readings in a window: insufficient_data.
    #[arg(long)]
    pub(crate) min_readings: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct ProfileCommon {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// The profiles topic.
    #[arg(long, env = "HR_PROFILES_TOPIC", default_value = "patient_profiles")]
    pub(crate) profiles_topic: String,
    #[command(flatten)]
    pub(crate) replication: ReplicationArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum WindowKind {
    Tumbling,
    Sliding,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ScopeArg {
    Key,
    Partition,
    Global,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GuaranteeArg {
    /// Alerts, episodes, dead letters, late records, state and offsets in one Kafka
    /// transaction per commit interval; read_committed consumers see each alert once.
    ExactlyOnce,
    /// Outputs visible at once; state and offsets still commit together (fenced); a failure
    /// may repeat outputs.
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EmitArg {
    All,
    Abnormal,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// Consumer group (also names the changelog topic `<group>-changelog`).
    #[arg(long, env = "HR_GROUP", default_value = "hr-pipeline")]
    pub(crate) group: String,
    #[command(flatten)]
    pub(crate) topics: TopicNames,
    #[command(flatten)]
    pub(crate) replication: ReplicationArgs,
    /// Window kind.
    #[arg(long, env = "HR_WINDOW", value_enum, default_value = "tumbling")]
    pub(crate) window: WindowKind,
    /// Window size.
    #[arg(long, env = "HR_WINDOW_SIZE", value_parser = parse_duration, default_value = "60s")]
    pub(crate) size: Duration,
    /// Slide of sliding windows.
    #[arg(long, env = "HR_WINDOW_SLIDE", value_parser = parse_duration, default_value = "10s")]
    pub(crate) slide: Duration,
    /// Out-of-orderness bound of the watermark.
    #[arg(long, env = "HR_DELAY", value_parser = parse_duration, default_value = "5s")]
    pub(crate) delay: Duration,
    /// How long after a window fired a late reading still updates it (a new revision).
    #[arg(long, env = "HR_ALLOWED_LATENESS", value_parser = parse_duration, default_value = "0s")]
    pub(crate) allowed_lateness: Duration,
    /// Global scope only: wall-clock time after which a partition without records stops
    /// holding the global watermark back (Flink's withIdleness).
    #[arg(long, env = "HR_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub(crate) idle_timeout: Option<Duration>,
    /// What a watermark is computed over.
    #[arg(long, env = "HR_SCOPE", value_enum, default_value = "key")]
    pub(crate) scope: ScopeArg,
    /// Which windows become alerts.
    #[arg(long, env = "HR_EMIT", value_enum, default_value = "all")]
    pub(crate) emit: EmitArg,
    /// A window average above this (bpm) is tachycardia, unless the patient's profile says
    /// otherwise.
    #[arg(long, env = "HR_TACHYCARDIA_ABOVE", default_value_t = 100.0)]
    pub(crate) tachycardia_above: f64,
    /// A window average below this (bpm) is bradycardia.
    #[arg(long, env = "HR_BRADYCARDIA_BELOW", default_value_t = 50.0)]
    pub(crate) bradycardia_below: f64,
    /// A window with fewer readings is reported as insufficient_data, never classified.
    #[arg(long, env = "HR_MIN_READINGS", default_value_t = 1)]
    pub(crate) min_readings: u64,
    /// Consecutive abnormal windows of one kind that raise an episode.
    #[arg(long, env = "HR_RAISE_AFTER", default_value_t = 1)]
    pub(crate) raise_after: u32,
    /// Consecutive normal windows that clear it.
    #[arg(long, env = "HR_CLEAR_AFTER", default_value_t = 2)]
    pub(crate) clear_after: u32,
    /// Signal loss (event time): a patient whose partition moved on by this much with no
    /// reading from them gets signal_loss and their open windows fired; `off` disables it.
    #[arg(long, env = "HR_SILENCE_AFTER", value_parser = parse_duration_or_off, default_value = "30s")]
    pub(crate) silence_after: DurationOr,
    /// Signal loss (processing time, the one rule that reads the clock): a partition with no
    /// record at all for this long has every patient on it declared silent; `off` disables it.
    #[arg(long, env = "HR_PARTITION_SILENCE_AFTER", value_parser = parse_duration_or_off, default_value = "60s")]
    pub(crate) partition_silence_after: DurationOr,
    /// Directory for the alerts JSONL files, or `none` for no files. Exactly-once, a part whose
    /// commit's answer was lost when a process stopped is settled by the next start with the
    /// same directory.
    #[arg(long, env = "HR_ALERTS_DIR", default_value = "output/alerts")]
    pub(crate) alerts_dir: PathBuf,
    /// A group with no committed offset starts at the latest offset instead of the earliest.
    #[arg(long, env = "HR_FROM_LATEST", conflicts_with = "from_beginning")]
    pub(crate) from_latest: bool,
    /// Start a group with no committed offset at the earliest offset: the default, accepted so
    /// older scripts keep working.
    #[arg(long, hide = true)]
    pub(crate) from_beginning: bool,
    /// Stop at the end offsets seen at start, fire every window, and exit.
    #[arg(long, env = "HR_BOUNDED")]
    pub(crate) bounded: bool,
    /// Address of the HTTP endpoints /metrics (Prometheus), /healthz and /readyz, or `off`.
    #[arg(long, env = "HR_HTTP", value_parser = parse_http, default_value = hr_pipeline::http::DEFAULT_ADDR)]
    pub(crate) http: HttpAddr,
    /// Delivery guarantee.
    #[arg(long, env = "HR_GUARANTEE", value_enum, default_value = "exactly-once")]
    pub(crate) guarantee: GuaranteeArg,
    /// Time between commits (one transaction each): the latency of exactly-once outputs.
    #[arg(long, env = "HR_COMMIT_INTERVAL", value_parser = parse_duration, default_value = "200ms")]
    pub(crate) commit_interval: Duration,
    /// How long a broker outage is waited out before the job exits with an error.
    #[arg(long, env = "HR_BROKER_TIMEOUT", value_parser = parse_duration, default_value = "5m")]
    pub(crate) broker_timeout: Duration,
    /// A reading whose event time is further ahead of its Kafka record timestamp goes to the
    /// dead-letter topic (code clock_skew); `0s` disables the check.
    #[arg(long, env = "HR_MAX_CLOCK_SKEW", value_parser = parse_duration, default_value = "1h")]
    pub(crate) max_clock_skew: Duration,
}

/// An address for the HTTP endpoints, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpAddr(pub(crate) Option<SocketAddr>);

fn parse_http(s: &str) -> Result<HttpAddr, String> {
    parse_http_addr(s).map(HttpAddr)
}

impl RunArgs {
    pub(crate) fn config(&self) -> anyhow::Result<RunConfig> {
        let window = match self.window {
            WindowKind::Tumbling => WindowSpec::Tumbling {
                size_ms: ms(self.size),
            },
            WindowKind::Sliding => WindowSpec::Sliding {
                size_ms: ms(self.size),
                slide_ms: ms(self.slide),
            },
        };
        let engine = EngineConfig {
            window,
            out_of_orderness_ms: ms(self.delay),
            allowed_lateness_ms: ms(self.allowed_lateness),
            scope: match self.scope {
                ScopeArg::Key => WatermarkScope::Key,
                ScopeArg::Partition => WatermarkScope::Partition,
                ScopeArg::Global => WatermarkScope::Global,
            },
            partition_idle_timeout: self.idle_timeout,
            ..EngineConfig::default()
        };
        engine.validate().context("invalid window settings")?;
        let thresholds = Thresholds::new(
            self.tachycardia_above,
            self.bradycardia_below,
            self.min_readings,
        )
        .context("invalid thresholds (--tachycardia-above, --bradycardia-below, --min-readings)")?;
        let episodes = EpisodePolicy::new(self.raise_after, self.clear_after)
            .context("invalid episode policy (--raise-after, --clear-after)")?;
        let processor = ProcessorConfig {
            engine,
            emit: match self.emit {
                EmitArg::All => Emit::All,
                EmitArg::Abnormal => Emit::Abnormal,
            },
            thresholds,
            episodes,
            silence_after_ms: self.silence_after.get().map(ms),
            max_clock_skew_ms: (!self.max_clock_skew.is_zero()).then(|| ms(self.max_clock_skew)),
        };
        Ok(RunConfig {
            group: self.group.clone(),
            input_topic: self.topics.input_topic.clone(),
            alerts_topic: self.topics.alerts_topic.clone(),
            dlq_topic: self.topics.dlq_topic.clone(),
            late_topic: self.topics.late_topic.clone(),
            episodes_topic: self.topics.episodes_topic.clone(),
            profiles_topic: (self.topics.profiles_topic != "none")
                .then(|| self.topics.profiles_topic.clone()),
            partition_silence_after: self.partition_silence_after.get(),
            processor,
            guarantee: match self.guarantee {
                GuaranteeArg::ExactlyOnce => Guarantee::ExactlyOnce,
                GuaranteeArg::AtLeastOnce => Guarantee::AtLeastOnce,
            },
            commit_interval: self.commit_interval,
            broker_timeout: self.broker_timeout,
            alerts_dir: (self.alerts_dir.as_os_str() != "none").then(|| self.alerts_dir.clone()),
            from_beginning: !self.from_latest,
            bounded: self.bounded,
            overrides: self.kafka.properties(BINARY),
            replication: self.replication.replication(),
            ..RunConfig::new(self.kafka.bootstrap.clone())
        })
    }
}

impl ProfilesArgs {
    /// The library's command and the flags every profile command shares.
    pub(crate) fn into_command(self) -> (ProfileCommand, ProfileCommon) {
        match self.action {
            ProfileAction::Set {
                patient_id,
                fields,
                common,
            } => (
                ProfileCommand::Set {
                    patient_id,
                    fields: PatientProfile {
                        tachycardia_above: fields.tachycardia_above,
                        bradycardia_below: fields.bradycardia_below,
                        min_readings: fields.min_readings,
                    },
                },
                common,
            ),
            ProfileAction::Get { patient_id, common } => {
                (ProfileCommand::Get { patient_id }, common)
            }
            ProfileAction::List { common } => (ProfileCommand::List, common),
            ProfileAction::Delete { patient_id, common } => {
                (ProfileCommand::Delete { patient_id }, common)
            }
        }
    }
}
