//! `hr-pipeline`: the hr-stream service. It only wires: flags -> config -> components -> run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hr_kafka::cli::KafkaArgs;
use hr_kafka::{ConnectErrorKind, Sink, TopicOutcome, TopicSpec, ensure_topics};
use hr_model::{EpisodePolicy, PatientProfile, Thresholds, parse_profile};
use hr_pipeline::driver::{Guarantee, RunConfig, run};
use hr_pipeline::http::{Health, parse_http_addr, serve};
use hr_pipeline::metrics::Metrics;
use hr_pipeline::parse_duration;
use hr_pipeline::processor::{Emit, ProcessorConfig, RunCounters};
use hr_window::{EngineConfig, WatermarkScope, WindowSpec};

/// The name each client reports as its `client.id` prefix.
const BINARY: &str = "hr-pipeline";

/// Real-time heart-rate monitoring on Apache Kafka.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    run: RunArgs,
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
enum Command {
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
struct ReplicationArgs {
    /// Replicas of each topic created (default: the cluster's default.replication.factor).
    #[arg(long, env = "HR_REPLICATION_FACTOR", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: Option<i32>,
    /// min.insync.replicas set on each topic created (default: the cluster's).
    #[arg(long, env = "HR_MIN_INSYNC_REPLICAS", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    min_insync_replicas: Option<i32>,
}

impl ReplicationArgs {
    fn replication(&self) -> hr_kafka::Replication {
        hr_kafka::Replication {
            factor: self.replication_factor,
            min_insync: self.min_insync_replicas,
        }
    }
}

/// The pipeline's topics, shared by `topics` (which creates them) and `run` (which uses them).
#[derive(Debug, Args)]
struct TopicNames {
    /// Readings topic.
    #[arg(long, env = "HR_INPUT_TOPIC", default_value = "heart_rate_events")]
    input_topic: String,
    /// Alerts topic.
    #[arg(long, env = "HR_ALERTS_TOPIC", default_value = "heart_rate_alerts")]
    alerts_topic: String,
    /// Dead-letter topic for records that fail validation.
    #[arg(long, env = "HR_DLQ_TOPIC", default_value = "heart_rate_events_dlq")]
    dlq_topic: String,
    /// Topic for readings too late for their window.
    #[arg(long, env = "HR_LATE_TOPIC", default_value = "heart_rate_late")]
    late_topic: String,
    /// Topic for raised and cleared episodes (a pager pages once per episode from it).
    #[arg(long, env = "HR_EPISODES_TOPIC", default_value = "heart_rate_episodes")]
    episodes_topic: String,
    /// Compacted topic of per-patient thresholds, or `none`.
    #[arg(long, env = "HR_PROFILES_TOPIC", default_value = "patient_profiles")]
    profiles_topic: String,
}

#[derive(Debug, Args)]
struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions for each topic that is created.
    #[arg(long, env = "HR_PARTITIONS", default_value_t = 3)]
    partitions: i32,
    #[command(flatten)]
    replication: ReplicationArgs,
    #[command(flatten)]
    topics: TopicNames,
    /// How long to wait for the broker.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: Duration,
    /// Delete these topics instead of creating any (repeatable; e.g. a demo's own input topic
    /// and its group's changelog).
    #[arg(long, value_name = "TOPIC")]
    delete: Vec<String>,
    /// `retention.ms` of the topics created: a duration, or `forever`; the broker's default
    /// (7 days unless configured) if not given. Alerts and episodes carry their window end as
    /// Kafka timestamp and retention counts from it, so a replay of readings older than the
    /// retention loses its outputs at the broker's next retention check: replays of old data
    /// want `forever` (or a retention longer than their age).
    #[arg(long, value_parser = parse_retention, value_name = "DURATION|forever")]
    retention: Option<Retention>,
}

/// A topic's `retention.ms`: a duration, or `forever` (-1).
#[derive(Debug, Clone, Copy)]
struct Retention(i64);

fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "forever" {
        return Ok(Retention(-1));
    }
    parse_duration(s).map(|d| Retention(ms(d)))
}

#[derive(Debug, Args)]
struct ProfilesArgs {
    #[command(subcommand)]
    action: ProfileAction,
}

#[derive(Debug, Subcommand)]
enum ProfileAction {
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
struct ProfileFields {
    /// Tachycardia above this average (bpm).
    #[arg(long)]
    tachycardia_above: Option<f64>,
    /// Bradycardia below this average (bpm).
    #[arg(long)]
    bradycardia_below: Option<f64>,
    /// Fewer readings in a window: insufficient_data.
    #[arg(long)]
    min_readings: Option<u64>,
}

#[derive(Debug, Args)]
struct ProfileCommon {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The profiles topic.
    #[arg(long, env = "HR_PROFILES_TOPIC", default_value = "patient_profiles")]
    profiles_topic: String,
    #[command(flatten)]
    replication: ReplicationArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WindowKind {
    Tumbling,
    Sliding,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScopeArg {
    Key,
    Partition,
    Global,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GuaranteeArg {
    /// Alerts, episodes, dead letters, late records, state and offsets in one Kafka
    /// transaction per commit interval; read_committed consumers see each alert once.
    ExactlyOnce,
    /// Outputs visible at once; state and offsets still commit together (fenced); a failure
    /// may repeat outputs.
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EmitArg {
    All,
    Abnormal,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group (also names the changelog topic `<group>-changelog`).
    #[arg(long, env = "HR_GROUP", default_value = "hr-pipeline")]
    group: String,
    #[command(flatten)]
    topics: TopicNames,
    #[command(flatten)]
    replication: ReplicationArgs,
    /// Window kind.
    #[arg(long, env = "HR_WINDOW", value_enum, default_value = "tumbling")]
    window: WindowKind,
    /// Window size.
    #[arg(long, env = "HR_WINDOW_SIZE", value_parser = parse_duration, default_value = "60s")]
    size: Duration,
    /// Slide of sliding windows.
    #[arg(long, env = "HR_WINDOW_SLIDE", value_parser = parse_duration, default_value = "10s")]
    slide: Duration,
    /// Out-of-orderness bound of the watermark.
    #[arg(long, env = "HR_DELAY", value_parser = parse_duration, default_value = "5s")]
    delay: Duration,
    /// How long after a window fired a late reading still updates it (a new revision).
    #[arg(long, env = "HR_ALLOWED_LATENESS", value_parser = parse_duration, default_value = "0s")]
    allowed_lateness: Duration,
    /// Global scope only: wall-clock time after which a partition without records stops
    /// holding the global watermark back (Flink's withIdleness).
    #[arg(long, env = "HR_IDLE_TIMEOUT", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// What a watermark is computed over.
    #[arg(long, env = "HR_SCOPE", value_enum, default_value = "key")]
    scope: ScopeArg,
    /// Which windows become alerts.
    #[arg(long, env = "HR_EMIT", value_enum, default_value = "all")]
    emit: EmitArg,
    /// A window average above this (bpm) is tachycardia, unless the patient's profile says
    /// otherwise.
    #[arg(long, env = "HR_TACHYCARDIA_ABOVE", default_value_t = 100.0)]
    tachycardia_above: f64,
    /// A window average below this (bpm) is bradycardia.
    #[arg(long, env = "HR_BRADYCARDIA_BELOW", default_value_t = 50.0)]
    bradycardia_below: f64,
    /// A window with fewer readings is reported as insufficient_data, never classified.
    #[arg(long, env = "HR_MIN_READINGS", default_value_t = 1)]
    min_readings: u64,
    /// Consecutive abnormal windows of one kind that raise an episode.
    #[arg(long, env = "HR_RAISE_AFTER", default_value_t = 1)]
    raise_after: u32,
    /// Consecutive normal windows that clear it.
    #[arg(long, env = "HR_CLEAR_AFTER", default_value_t = 2)]
    clear_after: u32,
    /// Signal loss (event time): a patient whose partition moved on by this much with no
    /// reading from them gets signal_loss and their open windows fired; `off` disables it.
    #[arg(long, env = "HR_SILENCE_AFTER", value_parser = parse_optional_duration, default_value = "30s")]
    silence_after: Toggle,
    /// Signal loss (processing time, the one rule that reads the clock): a partition with no
    /// record at all for this long has every patient on it declared silent; `off` disables it.
    #[arg(long, env = "HR_PARTITION_SILENCE_AFTER", value_parser = parse_optional_duration, default_value = "60s")]
    partition_silence_after: Toggle,
    /// Directory for the alerts JSONL files, or `none` for no files.
    #[arg(long, env = "HR_ALERTS_DIR", default_value = "output/alerts")]
    alerts_dir: PathBuf,
    /// A group with no committed offset starts at the latest offset instead of the earliest.
    #[arg(long, env = "HR_FROM_LATEST", conflicts_with = "from_beginning")]
    from_latest: bool,
    /// Start a group with no committed offset at the earliest offset: the default, accepted so
    /// older scripts keep working.
    #[arg(long, hide = true)]
    from_beginning: bool,
    /// Stop at the end offsets seen at start, fire every window, and exit.
    #[arg(long, env = "HR_BOUNDED")]
    bounded: bool,
    /// Address of the HTTP endpoints /metrics (Prometheus), /healthz and /readyz, or `off`.
    #[arg(long, env = "HR_HTTP", value_parser = parse_http, default_value = hr_pipeline::http::DEFAULT_ADDR)]
    http: HttpAddr,
    /// Delivery guarantee.
    #[arg(long, env = "HR_GUARANTEE", value_enum, default_value = "exactly-once")]
    guarantee: GuaranteeArg,
    /// Time between commits (one transaction each): the latency of exactly-once outputs.
    #[arg(long, env = "HR_COMMIT_INTERVAL", value_parser = parse_duration, default_value = "200ms")]
    commit_interval: Duration,
    /// How long a broker outage is waited out before the job exits with an error.
    #[arg(long, env = "HR_BROKER_TIMEOUT", value_parser = parse_duration, default_value = "5m")]
    broker_timeout: Duration,
    /// A reading whose event time is further ahead of its Kafka record timestamp goes to the
    /// dead-letter topic (code clock_skew); `0s` disables the check.
    #[arg(long, env = "HR_MAX_CLOCK_SKEW", value_parser = parse_duration, default_value = "1h")]
    max_clock_skew: Duration,
}

/// An address for the HTTP endpoints, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct HttpAddr(Option<SocketAddr>);

fn parse_http(s: &str) -> Result<HttpAddr, String> {
    parse_http_addr(s).map(HttpAddr)
}

/// A duration, or `off`.
#[derive(Debug, Clone, Copy)]
struct Toggle(Option<Duration>);

fn parse_optional_duration(s: &str) -> Result<Toggle, String> {
    if s == "off" {
        return Ok(Toggle(None));
    }
    parse_duration(s).map(|d| Toggle(Some(d)))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<RunConfig> {
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
            silence_after_ms: self.silence_after.0.map(ms),
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
            partition_silence_after: self.partition_silence_after.0,
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

/// One-shot commands: the broker answers, or one line saying why not and exit 1.
fn probe_once(kafka: &KafkaArgs) -> anyhow::Result<()> {
    let cfg = kafka.client_config(BINARY);
    hr_kafka::probe(&cfg, Duration::from_secs(10)).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The streaming job waits for an unreachable broker up to its broker timeout, saying so at
/// most every 30 s; a failure that waiting cannot fix (authentication, TLS, configuration)
/// ends it at once.
fn probe_until(
    kafka: &KafkaArgs,
    timeout: Duration,
    stop: &AtomicBool,
    health: Option<&Health>,
) -> anyhow::Result<()> {
    let cfg = kafka.client_config(BINARY);
    let started = Instant::now();
    let mut said: Option<Instant> = None;
    loop {
        match hr_kafka::probe(&cfg, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e)
                if !matches!(
                    e.kind(),
                    ConnectErrorKind::Unreachable | ConnectErrorKind::Timeout
                ) =>
            {
                bail!("{e}")
            }
            Err(e) => {
                if started.elapsed() > timeout {
                    bail!(
                        "{e} (waited {} s, --broker-timeout)",
                        started.elapsed().as_secs()
                    );
                }
                if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!(
                        "{e}; waiting for it (--broker-timeout {} s).",
                        timeout.as_secs()
                    );
                    said = Some(Instant::now());
                }
                if stop.load(Ordering::Relaxed) {
                    bail!("stopped while waiting for Kafka");
                }
                // Alive and waiting on purpose; /readyz stays 503 until the job has its partitions.
                if let Some(h) = health {
                    h.beat();
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the job on its own thread; the async runtime only waits for SIGINT/SIGTERM.
async fn run_job(args: RunArgs) -> anyhow::Result<()> {
    let mut cfg = args.config()?;
    // Bound before anything is read: a port in use stops the job here, naming the port.
    let _http = match args.http.0 {
        Some(addr) => {
            let metrics = Metrics::new();
            let health = Health::new();
            let server = serve(addr, metrics.clone(), health.clone())?;
            cfg.metrics = Some(metrics);
            cfg.health = Some(health);
            Some(server)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let job_stop = Arc::clone(&stop);
    let timeout = cfg.broker_timeout;
    let job = std::thread::Builder::new().name("hr-job".into()).spawn(
        move || -> anyhow::Result<RunCounters> {
            probe_until(&args.kafka, timeout, &job_stop, cfg.health.as_ref())?;
            run(&cfg, &job_stop)
        },
    )?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let done = tokio::task::spawn_blocking(move || job.join());
    tokio::pin!(done);
    let joined = tokio::select! {
        j = &mut done => j,
        _ = tokio::signal::ctrl_c() => { stop.store(true, Ordering::Relaxed); done.await }
        _ = term.recv() => { stop.store(true, Ordering::Relaxed); done.await }
    }?;
    let counters: RunCounters =
        joined.map_err(|_| anyhow::anyhow!("the job thread panicked"))??;
    tracing::debug!(?counters, "Job ended.");
    Ok(())
}

async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    probe_once(&args.kafka)?;
    let cfg = args.kafka.client_config(BINARY);
    if !args.delete.is_empty() {
        let names: Vec<&str> = args.delete.iter().map(String::as_str).collect();
        hr_kafka::delete_topics(&cfg, &names, args.timeout)
            .await
            .with_context(|| format!("deleting topics on {}", args.kafka.bootstrap))?;
        for t in names {
            println!("deleted {t}");
        }
        return Ok(());
    }
    let mut specs: Vec<TopicSpec> = [
        &args.topics.input_topic,
        &args.topics.alerts_topic,
        &args.topics.dlq_topic,
        &args.topics.late_topic,
        &args.topics.episodes_topic,
    ]
    .into_iter()
    .map(|t| {
        let spec = TopicSpec::new(t.as_str(), args.partitions);
        match args.retention {
            Some(r) => spec.config("retention.ms", r.0.to_string()),
            None => spec,
        }
        .replicated(args.replication.replication())
    })
    .collect();
    if args.topics.profiles_topic != "none" {
        specs.push(
            TopicSpec::compacted(args.topics.profiles_topic.as_str(), 1)
                .replicated(args.replication.replication()),
        );
    }
    let outcomes = ensure_topics(&cfg, &specs, args.timeout)
        .await
        .with_context(|| format!("ensuring topics on {}", args.kafka.bootstrap))?;
    for o in outcomes {
        match o {
            TopicOutcome::Created(t) => println!("created {t}"),
            TopicOutcome::Existed(t) => println!("exists  {t}"),
        }
    }
    Ok(())
}

fn profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let common = match &args.action {
        ProfileAction::Set { common, .. }
        | ProfileAction::Get { common, .. }
        | ProfileAction::List { common }
        | ProfileAction::Delete { common, .. } => common,
    };
    probe_once(&common.kafka)?;
    let props = common.kafka.properties(BINARY);
    let topic = &common.profiles_topic;
    let read = || -> anyhow::Result<_> {
        let spec =
            TopicSpec::compacted(topic.as_str(), 1).replicated(common.replication.replication());
        hr_kafka::blocking::ensure_topics(
            &common.kafka.client_config(BINARY),
            &[spec],
            Duration::from_secs(30),
        )
        .with_context(|| format!("ensuring the profiles topic {topic}"))?;
        let table = hr_kafka::read_table(
            &common.kafka.bootstrap,
            &[
                props.clone(),
                vec![("isolation.level".into(), "read_committed".into())],
            ]
            .concat(),
            topic,
            Duration::from_secs(30),
        )
        .with_context(|| format!("reading {topic}"))?;
        Ok(table)
    };
    let write = |patient: &str, value: Option<&str>| -> anyhow::Result<()> {
        let mut sink = Sink::new(&common.kafka.bootstrap, &props)?;
        sink.send_record(
            topic,
            None,
            patient.as_bytes(),
            value.map(str::as_bytes),
            None,
        )?;
        sink.flush(Duration::from_secs(30))
            .with_context(|| format!("writing to {topic}"))?;
        Ok(())
    };
    let show = |patient: &str, bytes: &[u8]| match parse_profile(bytes) {
        Ok(p) => {
            let t = Thresholds::DEFAULT.with_profile(&p).map_or_else(
                |e| format!("invalid: {e}"),
                |t| {
                    format!(
                        "tachycardia above {}, bradycardia below {}, at least {} readings",
                        t.tachycardia_above, t.bradycardia_below, t.min_readings
                    )
                },
            );
            println!("{patient}\t{}\t{t}", p.to_json());
        }
        Err(e) => println!(
            "{patient}\t{}\tinvalid: {e}",
            String::from_utf8_lossy(bytes)
        ),
    };
    match &args.action {
        ProfileAction::Set {
            patient_id, fields, ..
        } => {
            let table = read()?;
            let current = match table.get(patient_id.as_bytes()) {
                Some(bytes) => parse_profile(bytes).unwrap_or(PatientProfile::EMPTY),
                None => PatientProfile::EMPTY,
            };
            let newer = PatientProfile {
                tachycardia_above: fields.tachycardia_above,
                bradycardia_below: fields.bradycardia_below,
                min_readings: fields.min_readings,
            };
            if newer.is_empty() {
                bail!(
                    "nothing to set: give --tachycardia-above, --bradycardia-below or --min-readings"
                );
            }
            let merged = current.overlay(&newer);
            let json = merged.to_json();
            // The same check every instance applies when it reads the record.
            parse_profile(json.as_bytes())
                .map_err(anyhow::Error::from)
                .and_then(|p| Thresholds::DEFAULT.with_profile(&p).map_err(Into::into))
                .with_context(|| format!("refusing the profile {json} for {patient_id}"))?;
            write(patient_id, Some(&json))?;
            show(patient_id, json.as_bytes());
        }
        ProfileAction::Get { patient_id, .. } => match read()?.get(patient_id.as_bytes()) {
            Some(bytes) => show(patient_id, bytes),
            None => println!("{patient_id}\t(no profile: the defaults apply)"),
        },
        ProfileAction::List { .. } => {
            for (k, v) in read()? {
                show(&String::from_utf8_lossy(&k), &v);
            }
        }
        ProfileAction::Delete { patient_id, .. } => {
            write(patient_id, None)?;
            println!("{patient_id}\tdeleted: the defaults apply");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    hr_kafka::cli::init_logging();
    let parsed = hr_kafka::cli::parse::<Cli>("pipeline");
    let cli = parsed.args;
    if let Some(Command::Config(args)) = &cli.command {
        if let Err(e) = args.config() {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
        print!("{}", parsed.effective);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Topics(args)) => topics(args).await,
            Some(Command::Profiles(args)) => tokio::task::spawn_blocking(move || profiles(args))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r),
            Some(Command::Run(args)) => run_job(args).await,
            Some(Command::Config(_)) => unreachable!("handled above"),
            None => run_job(cli.run).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
