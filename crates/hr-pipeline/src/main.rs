//! `hr-pipeline`: the hr-stream service. It only wires: flags ([`flags`]) -> config -> components
//! -> run; each subcommand is one call into the library.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use hr_cli::{KafkaArgs, OnSignal, StopFlag, millis as ms};
use hr_kafka::{ConnectErrorKind, TopicOutcome, TopicSpec, blocking};
use hr_pipeline::driver::{Patience, ride_out, run};
use hr_pipeline::http::{Health, serve};
use hr_pipeline::metrics::Metrics;
use hr_pipeline::processor::RunCounters;
use hr_pipeline::profiles::{self, ProfilesTopic};

mod flags;

use flags::{Cli, Command, ProfilesArgs, RunArgs, TopicsArgs};

/// The name each client reports as its `client.id` prefix.
const BINARY: &str = "hr-pipeline";

/// One-shot commands: the broker answers, or one line saying why not and exit 1.
fn probe_once(kafka: &KafkaArgs) -> anyhow::Result<()> {
    let cfg = kafka.client_config(BINARY);
    hr_kafka::probe(&cfg, Duration::from_secs(10)).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The streaming job waits for an unreachable broker up to its broker timeout, as the job
/// itself does ([`ride_out`]); a failure that waiting cannot fix (authentication, TLS,
/// configuration) ends it at once.
fn probe_until(
    kafka: &KafkaArgs,
    bootstrap: &str,
    timeout: Duration,
    stop: &AtomicBool,
    health: Option<&Health>,
) -> anyhow::Result<()> {
    let cfg = kafka.client_config(BINARY);
    let patience = Patience {
        what: "connecting",
        bootstrap,
        timeout,
        stop,
        health,
    };
    ride_out(
        &patience,
        || hr_kafka::probe(&cfg, Duration::from_secs(10)),
        |e| {
            matches!(
                e.kind(),
                ConnectErrorKind::Unreachable | ConnectErrorKind::Timeout
            )
        },
    )?;
    Ok(())
}

/// Runs the job until it ends (bounded) or SIGINT/SIGTERM asks it to stop.
fn run_job(args: RunArgs) -> anyhow::Result<()> {
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
    let stop = StopFlag::on_signals(OnSignal::default()).context("catching SIGINT/SIGTERM")?;
    probe_until(
        &args.kafka,
        &cfg.bootstrap,
        cfg.broker_timeout,
        stop.as_atomic(),
        cfg.health.as_ref(),
    )?;
    tracing::debug!(
        since_start_ms = hr_cli::since_start().as_millis() as u64,
        "Start-up: broker answered."
    );
    let counters: RunCounters = run(&cfg, stop.as_atomic())?;
    tracing::debug!(?counters, "Job ended.");
    Ok(())
}

fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    probe_once(&args.kafka)?;
    let cfg = args.kafka.client_config(BINARY);
    if !args.delete.is_empty() {
        let names: Vec<&str> = args.delete.iter().map(String::as_str).collect();
        blocking::delete_topics(&cfg, &names, args.timeout)
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
            // `forever` is Kafka's -1.
            Some(r) => spec.config("retention.ms", r.get().map_or(-1, ms).to_string()),
            None => spec,
        }
        .replicated(args.replication.replication())
    })
    .collect();
    if args.topics.profiles_topic != "none" {
        specs.push(profiles::topic_spec(
            &args.topics.profiles_topic,
            args.replication.replication(),
        ));
    }
    let outcomes = blocking::ensure_topics(&cfg, &specs, args.timeout)
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
    let (command, common) = args.into_command();
    probe_once(&common.kafka)?;
    let topic = ProfilesTopic {
        bootstrap: common.kafka.bootstrap.clone(),
        properties: common.kafka.properties(BINARY),
        topic: common.profiles_topic,
        replication: common.replication.replication(),
    };
    for line in topic.run(&command)? {
        println!("{line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    hr_cli::init_logging();
    let parsed = hr_cli::parse::<Cli>("pipeline");
    let cli = parsed.args;
    let result = match cli.command {
        Some(Command::Config(args)) => args.config().map(|_| print!("{}", parsed.effective)),
        Some(Command::Topics(args)) => topics(args),
        Some(Command::Profiles(args)) => profiles(args),
        Some(Command::Run(args)) => run_job(args),
        None => run_job(cli.run),
    };
    hr_cli::finish(BINARY, result)
}
