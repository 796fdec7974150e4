//! `hr-pipeline`: the hr-stream service. It only wires: flags -> config -> components -> run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use clap::{Args, Parser, Subcommand};
use hr_kafka::{TopicOutcome, TopicSpec, client_config, ensure_topics};
use hr_pipeline::driver::{Guarantee, RunConfig, run};
use hr_pipeline::parse_duration;
use hr_pipeline::processor::{Emit, ProcessorConfig, RunCounters};
use hr_window::{EngineConfig, WatermarkScope, WindowSpec};

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

  # Outputs visible at once instead of at each commit (a failure may repeat some)
  hr-pipeline run --guarantee at-least-once

  # Earlier detection: 60 s windows every 10 s, abnormal windows only, late readings still counted for 2 min
  hr-pipeline run --window sliding --size 60s --slide 10s --emit abnormal --allowed-lateness 2m

  # Flink's watermark behaviour for a side-by-side check: one clock over all partitions
  hr-pipeline run --scope global --idle-timeout 30s

  # A TLS cluster, configured through the environment
  HR_BOOTSTRAP_SERVERS=broker:9093 hr-pipeline -X security.protocol=ssl -X ssl.ca.location=/etc/ca.pem

  # Create the topics (idempotent); `just up` runs this
  hr-pipeline topics --partitions 3

Every flag also reads the HR_* variable shown next to it; flags win over variables.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the streaming job (the default): readings -> windows -> alerts.
    ///
    /// Example: hr-pipeline run --bounded --from-beginning --window sliding --size 60s --slide 10s
    Run(RunArgs),
    /// Create the pipeline's topics if they do not exist (idempotent).
    ///
    /// Example: hr-pipeline topics --bootstrap localhost:9092 --partitions 3
    Topics(TopicsArgs),
}

/// Connection settings shared by every command.
#[derive(Debug, Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "HR_BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    bootstrap: String,
    /// Any librdkafka property, e.g. -X security.protocol=SSL (repeatable).
    #[arg(short = 'X', value_parser = parse_property)]
    property: Vec<(String, String)>,
}

/// The pipeline's four topics, shared by `topics` (which creates them) and `run` (which uses them).
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
}

#[derive(Debug, Args)]
struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions for each topic that is created.
    #[arg(long, env = "HR_PARTITIONS", default_value_t = 3)]
    partitions: i32,
    #[command(flatten)]
    topics: TopicNames,
    /// Seconds to wait for the broker.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
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
    /// Alerts, dead letters, late records, state and offsets in one Kafka transaction per
    /// commit interval; read_committed consumers see each alert once.
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
    /// Wall-clock time after which a silent partition stops holding a global watermark back.
    #[arg(long, env = "HR_IDLE_TIMEOUT", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// What a watermark is computed over.
    #[arg(long, env = "HR_SCOPE", value_enum, default_value = "key")]
    scope: ScopeArg,
    /// Which windows become alerts.
    #[arg(long, env = "HR_EMIT", value_enum, default_value = "all")]
    emit: EmitArg,
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
    /// Stop at the end offsets seen at start, fire every window, and exit.
    #[arg(long, env = "HR_BOUNDED")]
    bounded: bool,
}

impl RunArgs {
    fn config(&self) -> RunConfig {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
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
        let processor = ProcessorConfig {
            engine,
            emit: match self.emit {
                EmitArg::All => Emit::All,
                EmitArg::Abnormal => Emit::Abnormal,
            },
            max_clock_skew_ms: (!self.max_clock_skew.is_zero()).then(|| ms(self.max_clock_skew)),
            ..ProcessorConfig::default()
        };
        RunConfig {
            group: self.group.clone(),
            input_topic: self.topics.input_topic.clone(),
            alerts_topic: self.topics.alerts_topic.clone(),
            dlq_topic: self.topics.dlq_topic.clone(),
            late_topic: self.topics.late_topic.clone(),
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
            overrides: self.kafka.property.clone(),
            ..RunConfig::new(self.kafka.bootstrap.clone())
        }
    }
}

/// Runs the job on its own thread; the async runtime only waits for SIGINT/SIGTERM.
async fn run_job(args: RunArgs) -> anyhow::Result<()> {
    let cfg = args.config();
    let stop = Arc::new(AtomicBool::new(false));
    let job_stop = Arc::clone(&stop);
    let job = std::thread::Builder::new()
        .name("hr-job".into())
        .spawn(move || run(&cfg, &job_stop))?;
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
    tracing::debug!(?counters, "job ended");
    Ok(())
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got '{s}'"))
}

async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let cfg = client_config(&args.kafka.bootstrap, &args.kafka.property);
    let specs: Vec<TopicSpec> = [
        &args.topics.input_topic,
        &args.topics.alerts_topic,
        &args.topics.dlq_topic,
        &args.topics.late_topic,
    ]
    .into_iter()
    .map(|t| TopicSpec::new(t.as_str(), args.partitions))
    .collect();
    let outcomes = ensure_topics(&cfg, &specs, Duration::from_secs(args.timeout_secs))
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
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
            Some(Command::Run(args)) => run_job(args).await,
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
