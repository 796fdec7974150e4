//! `hr-sim`: simulated patient monitors feeding Kafka, stdout or a JSON-lines file.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hr_cli::{KafkaArgs, OnSignal, StopFlag, parse_duration_ms};
use hr_sim::{
    EpisodeConfig, FaultConfig, JsonLinesSink, KafkaSink, MalformedKind, Pace, PlannedSilence,
    RunReport, SimConfig, Simulation, Sink, run, wall_clock_ms,
};
use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const EXAMPLES: &str = "\
Examples:
  # The seed's demo: 10 monitors, one reading every 0.1 s overall, into Kafka, until Ctrl-C.
  hr-sim

  # Watch it on stdout instead, five patients, two readings a second each.
  hr-sim --output stdout --patients 5 --rate 10

  # Preload a day of data for 100 patients as fast as the broker takes it.
  hr-sim --start 2025-11-19T00:00:00Z --duration 24h --patients 100 --rate 100

  # Preload exactly ten million records, lz4 batches of up to 1 MB (the defaults); acks=1 needs the
  # idempotent producer (on by default, it requires acks=all) turned off.
  hr-sim --start 2025-11-19T00:00:00Z --events 10000000 --patients 1000 --rate 1000 \
         -X acks=1 -X enable.idempotence=false

  # Every fault at once, with a ground truth file for the test that checks the alerts.
  hr-sim --start 2025-11-19T07:00:00Z --duration 2h --output file --file events.jsonl \\
         --truth truth.json --episode-rate 2 --out-of-order 0.02 --late 0.005 \\
         --malformed 0.01 --duplicates 0.01 --silence-rate 0.5 --silence-duration 40s..5m \\
         --clock-skew p003=-90s

  # A demo's unplugged lead: p002 goes silent 60 s in for 45 s, then sends again.
  hr-sim --patients 8 --rate 16 --unplug p002@60s+45s

  # Only naive timestamps, 5% of records, on a TLS cluster.
  hr-sim --malformed 0.05 --malformed-kinds naive_timestamp \\
         -b broker:9093 -X security.protocol=ssl -X ssl.ca.location=/etc/ca.pem

Fault injection (all off by default; every injected fault is counted in --truth):
  --out-of-order F   fraction F of readings arrive after newer ones, by at most --out-of-order-max
                     of event time (default 4s: inside the pipeline's 5 s out-of-orderness, so
                     they still count in their window).
  --late F           fraction F arrive --late-delay after they were taken (default 90s: beyond
                     the 5 s bound plus a whole 60 s window, so their window has fired and they
                     reach the pipeline's late topic).
  --malformed F      fraction F are replaced by a record hr-model rejects, cycling through
                     --malformed-kinds: invalid_json, not_object, missing_field, wrong_type,
                     empty_patient_id, bad_timestamp, naive_timestamp, bpm_out_of_range.
  --duplicates F     fraction F are sent twice.
  --silence-rate R   each monitor goes silent R times an hour on average, for --silence-duration
                     (one length, or MIN..MAX: each silence drawn uniformly in between).
  --unplug P@AT+D    patient P's monitor sends nothing from AT after the start for D (e.g.
                     p003@40s+60s); repeatable, and on top of --silence-rate.
  --clock-skew P=D   patient P's clock is off by D (negative lags, positive leads); repeatable.

Durations are a number and a unit: 500ms, 90s, 5m, 2h, 1d (skews may be negative).";

/// Simulated patient heart-rate monitors for hr-stream.
///
/// Each patient has a resting baseline, slow drift and Gaussian reading-to-reading noise, and
/// episodes of tachycardia and bradycardia with onset and recovery ramps. Readings are the
/// seed's JSON, keyed by patient id. Same --seed, same data.
///
/// Without --start, the clock is real time: timestamps are now and readings are paced at
/// --rate. With --start, time is simulated from there and records go out as fast as the output
/// takes them, with a progress bar and a final events/s line.
#[derive(Debug, Parser)]
#[command(version, after_long_help = EXAMPLES, after_help = "Run with --help for examples and the fault flags explained.")]
struct Args {
    /// Where records go.
    #[arg(long, value_enum, default_value_t = Output::Kafka, env = "HR_SIM_OUTPUT")]
    output: Output,
    /// JSON-lines file for `--output file`.
    #[arg(long, default_value = "heart_rate_events.jsonl", env = "HR_SIM_FILE")]
    file: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Kafka topic.
    #[arg(
        short,
        long,
        default_value = "heart_rate_events",
        env = "HR_INPUT_TOPIC"
    )]
    topic: String,
    /// Write the ground truth (episodes, silences, skews, fault counts) to this JSON file.
    #[arg(long, value_name = "PATH")]
    truth: Option<PathBuf>,

    /// Number of patients: p001, p002, ...
    #[arg(long, default_value_t = 10, env = "HR_SIM_PATIENTS")]
    patients: usize,
    /// Seed for every random draw.
    #[arg(long, default_value_t = 1, env = "HR_SIM_SEED")]
    seed: u64,
    /// Readings per second of event time, over all patients (each patient reads every
    /// patients/rate seconds).
    #[arg(long, default_value_t = 10.0, value_name = "PER_SEC")]
    rate: f64,
    /// Simulate time from this RFC 3339 instant, as fast as possible (default: real time).
    #[arg(long, value_name = "RFC3339", value_parser = parse_start)]
    start: Option<i64>,
    /// Stop after this much event time (readings still held back then are not sent).
    #[arg(long, value_parser = parse_duration_ms)]
    duration: Option<i64>,
    /// Stop after this many records (or at --duration, whichever comes first).
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// No progress bar in simulated time.
    #[arg(long)]
    no_progress: bool,

    /// Expected episodes per patient per hour.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "PER_HOUR",
        help_heading = "Episodes"
    )]
    episode_rate: f64,
    /// Fraction of episodes that are bradycardia (the rest are tachycardia).
    #[arg(
        long,
        default_value_t = 0.3,
        value_name = "FRACTION",
        help_heading = "Episodes"
    )]
    brady_share: f64,
    /// Mean onset ramp.
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms, help_heading = "Episodes")]
    onset: i64,
    /// Mean plateau (each drawn from half to one and a half times it), or MIN..MAX for
    /// plateaus drawn uniformly in between.
    #[arg(long, default_value = "4m", value_name = "DUR|MIN..MAX", value_parser = parse_duration_range, help_heading = "Episodes")]
    plateau: (i64, Option<i64>),
    /// Mean recovery ramp.
    #[arg(long, default_value = "90s", value_parser = parse_duration_ms, help_heading = "Episodes")]
    recovery: i64,

    /// Fraction of readings delivered out of order (within --out-of-order-max).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        help_heading = "Faults"
    )]
    out_of_order: f64,
    /// Out-of-order bound; keep it below the pipeline's out-of-orderness.
    #[arg(long, default_value = "4s", value_parser = parse_duration_ms, help_heading = "Faults")]
    out_of_order_max: i64,
    /// Fraction of readings delivered late (after --late-delay).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        help_heading = "Faults"
    )]
    late: f64,
    /// Delay of late readings; exceed window + out-of-orderness + allowed lateness.
    #[arg(long, default_value = "90s", value_parser = parse_duration_ms, help_heading = "Faults")]
    late_delay: i64,
    /// Fraction of readings replaced by malformed records.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        help_heading = "Faults"
    )]
    malformed: f64,
    /// Malformed kinds to cycle through, comma-separated (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "KINDS",
        help_heading = "Faults"
    )]
    malformed_kinds: Vec<MalformedKind>,
    /// Fraction of readings sent twice.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "FRACTION",
        help_heading = "Faults"
    )]
    duplicates: f64,
    /// Expected silences per monitor per hour.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "PER_HOUR",
        help_heading = "Faults"
    )]
    silence_rate: f64,
    /// How long a silent monitor sends nothing: a duration, or MIN..MAX (e.g. 40s..5m) for
    /// lengths drawn uniformly in between.
    #[arg(long, default_value = "3m", value_name = "DUR|MIN..MAX", value_parser = parse_duration_range, help_heading = "Faults")]
    silence_duration: (i64, Option<i64>),
    /// A monitor unplugged at a fixed time: PATIENT@AT+DURATION, e.g. p003@40s+60s (AT after
    /// the start; repeatable).
    #[arg(long, value_name = "PATIENT@AT+DUR", help_heading = "Faults")]
    unplug: Vec<PlannedSilence>,
    /// A device clock that is off: PATIENT=DURATION, e.g. p003=-90s (repeatable).
    #[arg(long, value_name = "PATIENT=DUR", value_parser = parse_skew, help_heading = "Faults")]
    clock_skew: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Kafka topic, key = patient_id.
    Kafka,
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines in --file.
    File,
}

fn parse_start(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 date-time with offset ({e})"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `3m`, or `40s..5m`: a length, or the shortest and the longest.
fn parse_duration_range(s: &str) -> Result<(i64, Option<i64>), String> {
    match s.split_once("..") {
        None => Ok((parse_duration_ms(s)?, None)),
        Some((min, max)) => {
            let (min, max) = (parse_duration_ms(min)?, parse_duration_ms(max)?);
            if max < min {
                return Err(format!(
                    "the range `{s}` is empty: its maximum is below its minimum"
                ));
            }
            Ok((min, Some(max)))
        }
    }
}

fn parse_skew(s: &str) -> Result<(String, i64), String> {
    let (patient, dur) = s
        .split_once('=')
        .ok_or_else(|| format!("expected PATIENT=DURATION, got `{s}`"))?;
    Ok((patient.trim().to_owned(), parse_duration_ms(dur)?))
}

impl Args {
    fn sim_config(&self, start_ms: i64) -> SimConfig {
        SimConfig {
            seed: self.seed,
            patients: self.patients,
            start_ms,
            rate_per_sec: self.rate,
            duration_ms: self.duration,
            max_records: self.events,
            episodes: EpisodeConfig {
                rate_per_hour: self.episode_rate,
                bradycardia_share: self.brady_share,
                onset_ms: self.onset,
                plateau_ms: self.plateau.0,
                plateau_max_ms: self.plateau.1,
                recovery_ms: self.recovery,
            },
            faults: FaultConfig {
                out_of_order: self.out_of_order,
                out_of_order_max_ms: self.out_of_order_max,
                late: self.late,
                late_delay_ms: self.late_delay,
                malformed: self.malformed,
                malformed_kinds: if self.malformed_kinds.is_empty() {
                    MalformedKind::ALL.to_vec()
                } else {
                    self.malformed_kinds.clone()
                },
                duplicate: self.duplicates,
                silence_rate_per_hour: self.silence_rate,
                silence_ms: self.silence_duration.0,
                silence_max_ms: self.silence_duration.1,
                planned_silences: self.unplug.clone(),
                clock_skew: self.clock_skew.clone(),
            },
        }
    }
}

/// How long hr-sim waits for the broker's first answer before it reports it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// After Ctrl-C, how long outstanding records may take to be acknowledged (the user asked to
/// stop: with the broker down they would otherwise wait for librdkafka's 5 minutes).
const STOP_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    hr_cli::init_logging();
    let args = hr_cli::parse::<Args>("sim").args;
    match real_main(args) {
        Ok(code) => code,
        // Quiet and successful on `hr-sim --output stdout | head`: the reader has all it wanted.
        Err(error) => hr_cli::finish("hr-sim", Err(error)),
    }
}

fn real_main(args: Args) -> anyhow::Result<ExitCode> {
    let (start_ms, pace) = match args.start {
        Some(start) => (start, Pace::AsFastAsPossible),
        None => (wall_clock_ms(), Pace::RealTime),
    };
    let mut sim = Simulation::new(args.sim_config(start_ms)).context("invalid simulation")?;

    let stop = stop_on_signal();
    let mut sink: Box<dyn Sink> = match args.output {
        Output::Kafka => {
            let properties = args.kafka.properties("hr-sim");
            // One line naming the address, then exit 1: a one-shot command should not retry a
            // broker that is not there while librdkafka logs each attempt.
            let probe = hr_kafka::client_config(&args.kafka.bootstrap, &properties);
            if let Err(error) = hr_kafka::probe(&probe, CONNECT_TIMEOUT) {
                eprintln!("hr-sim: error: {error}");
                return Ok(ExitCode::FAILURE);
            }
            let sink = KafkaSink::new(&args.kafka.bootstrap, &properties, &args.topic)
                .context("creating the producer")?
                .with_stop(stop.shared(), STOP_GRACE);
            Box::new(sink)
        }
        Output::Stdout => Box::new(JsonLinesSink::new(BufWriter::new(io::stdout().lock()))),
        Output::File => {
            let file = File::create(&args.file)
                .with_context(|| format!("creating {}", args.file.display()))?;
            Box::new(JsonLinesSink::new(BufWriter::with_capacity(1 << 20, file)))
        }
    };
    tracing::info!(
        patients = args.patients,
        seed = args.seed,
        rate = args.rate,
        output = ?args.output,
        clock = if pace == Pace::RealTime { "real" } else { "simulated" },
        "Simulating monitors."
    );

    let bar = (pace == Pace::AsFastAsPossible && !args.no_progress && io::stderr().is_terminal())
        .then(|| progress_bar(&args));
    let report = run(&mut sim, sink.as_mut(), pace, stop.as_atomic(), |s| {
        if let Some(bar) = &bar {
            match args.events {
                Some(_) => bar.set_position(s.records()),
                None => bar.set_position((s.now_ms() - start_ms).max(0) as u64),
            }
            bar.set_message(format!("{} records", s.records()));
        }
    })
    .context("sending records")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    if let Some(path) = &args.truth {
        std::fs::write(path, sim.ground_truth().to_json_pretty())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_summary(&report, pace);
    if report.delivery.failed > 0 {
        eprintln!(
            "hr-sim: {} reading(s) were not delivered to {} (first: {}).",
            report.delivery.failed,
            args.kafka.bootstrap,
            report.delivery.first_error.as_deref().unwrap_or("unknown")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(args: &Args) -> ProgressBar {
    let (len, template) = match (args.events, args.duration) {
        (Some(n), _) => (
            Some(n),
            "{bar:40} {percent:>3}% {msg} ({per_sec}, eta {eta})",
        ),
        (None, Some(d)) => (
            Some(d.max(0) as u64),
            "{bar:40} {percent:>3}% of event time, {msg} (eta {eta})",
        ),
        (None, None) => (None, "{spinner} {msg} ({elapsed})"),
    };
    let bar = len.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    bar.set_style(ProgressStyle::with_template(template).expect("templates are valid"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_summary(report: &RunReport, pace: Pace) {
    let rate = match pace {
        Pace::AsFastAsPossible => format!(" ({:.0} events/s)", report.events_per_sec()),
        Pace::RealTime => String::new(),
    };
    eprintln!(
        "hr-sim: sent {} records in {:.2} s{rate}; {} delivered, {} failed.",
        report.records,
        report.elapsed.as_secs_f64(),
        report.delivery.delivered,
        report.delivery.failed,
    );
}

/// A flag that SIGINT or SIGTERM sets, so a run flushes and writes its truth file on the way out;
/// a second signal quits at once.
fn stop_on_signal() -> StopFlag {
    StopFlag::on_signals(OnSignal {
        notice: Some("Stopping: flushing and writing the ground truth (Ctrl-C again to quit now)."),
        second_exits: Some("hr-sim: interrupted again; exiting without flushing."),
    })
    .unwrap_or_else(|error| {
        tracing::warn!(%error, "No signal handling: Ctrl-C will not flush.");
        StopFlag::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_reach_the_config() {
        let args = Args::parse_from([
            "hr-sim",
            "--start",
            "2025-11-19T07:00:00+01:00",
            "--clock-skew",
            "p002=-90s",
            "--malformed-kinds",
            "naive_timestamp,wrong_type",
            "-X",
            "acks=1",
            "--late",
            "0.1",
        ]);
        assert_eq!(args.start, Some(1_763_532_000_000));
        assert_eq!(args.kafka.property, [("acks".to_owned(), "1".to_owned())]);
        let config = args.sim_config(args.start.unwrap());
        assert_eq!(config.faults.clock_skew, [("p002".to_owned(), -90_000)]);
        assert_eq!(
            config.faults.malformed_kinds,
            [MalformedKind::NaiveTimestamp, MalformedKind::WrongType]
        );
        assert_eq!(config.faults.late, 0.1);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn silence_lengths_and_unplugged_monitors() {
        assert_eq!(parse_duration_range("3m"), Ok((180_000, None)));
        assert_eq!(parse_duration_range("40s..5m"), Ok((40_000, Some(300_000))));
        assert!(
            parse_duration_range("5m..40s")
                .unwrap_err()
                .contains("empty")
        );
        assert!(parse_duration_range("40s..").is_err());
        let args = Args::parse_from([
            "hr-sim",
            "--silence-duration",
            "1m..2m",
            "--unplug",
            "p002@60s+45s",
            "--unplug",
            "p001@0s+1m",
        ]);
        let config = args.sim_config(0);
        assert_eq!(
            (config.faults.silence_ms, config.faults.silence_max_ms),
            (60_000, Some(120_000))
        );
        assert_eq!(
            config.faults.planned_silences[0],
            PlannedSilence {
                patient_id: "p002".into(),
                after_ms: 60_000,
                duration_ms: 45_000
            }
        );
        assert!(Args::try_parse_from(["hr-sim", "--unplug", "p002+45s"]).is_err());
        assert!(Args::try_parse_from(["hr-sim", "--unplug", "@1s+45s"]).is_err());
    }

    #[test]
    fn naive_start_is_refused() {
        assert!(Args::try_parse_from(["hr-sim", "--start", "2025-11-19T07:00:00"]).is_err());
    }
}
