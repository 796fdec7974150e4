//! `hr-pipeline`: the hr-stream service. It only wires: flags -> config -> components -> run.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hr_kafka::{TopicOutcome, TopicSpec, client_config, ensure_topics};

/// Real-time heart-rate monitoring on Apache Kafka.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

#[derive(Debug, Args)]
struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Partitions for each topic that is created.
    #[arg(long, env = "HR_PARTITIONS", default_value_t = 3)]
    partitions: i32,
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
    /// Seconds to wait for the broker.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
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
        &args.input_topic,
        &args.alerts_topic,
        &args.dlq_topic,
        &args.late_topic,
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
            Command::Topics(args) => topics(args).await,
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
