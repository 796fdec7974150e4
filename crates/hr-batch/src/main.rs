//! `hr-batch`: the alert report (default) and the window recomputation, from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use hr_batch::{
    BatchError, GenerateSpec, OutputFormat, PreviousOutput, Progress, ReadOptions, ReadReport,
    RecomputeOptions, WindowSpec,
};
use hr_model::{Thresholds, Validation};
use indicatif::{ProgressBar, ProgressStyle};

const EXAMPLES: &str = "\
Examples:
  # Report over the pipeline's alert files (output/alerts -> output/alert_stats/part-00000.parquet)
  hr-batch

  # The seed's flag names work too; a .csv path writes one CSV file
  hr-batch --input_path output/alerts --output_path report/alert_stats.csv

  # Refuse malformed lines instead of counting them
  hr-batch stats --input alerts.parquet --output stats --format csv --strict

  # Where the time goes: read, dedup, aggregate, write
  hr-batch stats --input /tmp/alerts10m --output /tmp/stats --quiet --verbose

  # Recompute one-minute tumbling windows from raw readings and compare with the stream
  hr-batch recompute --input events.jsonl --output recomputed.jsonl
  diff <(sort recomputed.jsonl) <(sort output/alerts/*.jsonl)

  # Sliding windows of 60 s every 10 s, abnormal windows only, to standard output
  hr-batch recompute --input events/ --window 60s --slide 10s --abnormal-only --output -

  # Ten million synthetic alerts for a benchmark
  hr-batch generate --alerts 10000000 --output /tmp/alerts10m

Output: on a terminal the report is printed as a table with every row (POLARS_FMT_MAX_ROWS=N shows
N and says how many it hid); piped, as CSV. Datetimes are UTC everywhere (CSV with a Z).
An existing output path is replaced only if an earlier hr-batch run wrote it (--force: any path).
No input file found is a warning (--strict: an error).

Settings: every flag reads the HR_BATCH_* variable shown next to it, and the [batch] table of
--config FILE (keys as the long flags; [batch.recompute] for one subcommand); flags win, then
variables, then the file.

Exit status: 0 success, 1 failure, 2 missing input path or bad usage.";

/// Polars analytics over hr-stream alerts, and a batch recomputation of the windows.
///
/// Without a subcommand, runs `stats`.
#[derive(Parser)]
#[command(name = "hr-batch", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    stats: StatsArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Per patient and alert type: alert count, mean avg_hr, min/max heart rate, first and last window.
    Stats(StatsArgs),
    /// Recompute windows and alerts from raw readings with Polars, in the pipeline's alert format.
    Recompute(RecomputeArgs),
    /// Write synthetic alerts (JSONL or Parquet) for benchmarks.
    Generate(GenerateArgs),
    /// Score the pipeline's episodes against hr-sim's --truth: detected or missed, delay, false
    /// raised.
    #[command(after_help = SCORE_HELP)]
    Score(ScoreArgs),
}

#[derive(Args)]
struct StatsArgs {
    /// Alerts: a JSONL file, a Parquet file, or a directory searched recursively for *.jsonl and
    /// *.parquet (names starting with '.' or '_' are skipped).
    #[arg(
        long,
        visible_alias = "input_path",
        default_value = "output/alerts",
        env = "HR_BATCH_INPUT"
    )]
    input: PathBuf,
    /// Where the report goes, replacing an earlier report there: a path ending in .parquet or
    /// .csv is one file, anything else a directory holding part-00000.<ext>.
    #[arg(
        long,
        visible_alias = "output_path",
        default_value = "output/alert_stats",
        env = "HR_BATCH_OUTPUT"
    )]
    output: PathBuf,
    /// Report format [default: csv for a .csv output path, else parquet].
    #[arg(long, value_enum, env = "HR_BATCH_FORMAT")]
    format: Option<FormatArg>,
    /// Print where the time went: reading, dedup of repeated windows, aggregation, writing.
    #[arg(long, short, env = "HR_BATCH_VERBOSE")]
    verbose: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CommonArgs {
    /// Fail on the first malformed line, and when no input file is found, instead of warning.
    #[arg(long, env = "HR_BATCH_STRICT")]
    strict: bool,
    /// No progress bar and no table on standard output.
    #[arg(long, short, env = "HR_BATCH_QUIET")]
    quiet: bool,
    /// Replace the output path whatever it holds (by default only an earlier hr-batch output).
    #[arg(long, env = "HR_BATCH_FORCE")]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Parquet,
    Csv,
}

#[derive(Args)]
struct RecomputeArgs {
    /// Raw readings: a JSONL file or a directory of *.jsonl files, one reading per line.
    #[arg(long, visible_alias = "input_path", env = "HR_BATCH_READINGS")]
    input: PathBuf,
    /// Alert JSONL file to write (replaced atomically), or '-' for standard output.
    #[arg(
        long,
        visible_alias = "output_path",
        default_value = "output/recomputed_alerts.jsonl",
        env = "HR_BATCH_RECOMPUTED"
    )]
    output: PathBuf,
    /// Window length: a number and a unit (500ms, 10s, 1.5m, 1h).
    #[arg(long, default_value = "60s", env = "HR_WINDOW_SIZE")]
    window: String,
    /// Distance between window starts for sliding windows, e.g. 10s [default: the window
    /// length, tumbling].
    #[arg(long, env = "HR_WINDOW_SLIDE")]
    slide: Option<String>,
    /// Average above which a window is tachycardia.
    #[arg(long, default_value_t = Thresholds::DEFAULT.tachycardia_above)]
    tachycardia_above: f64,
    /// Average below which a window is bradycardia.
    #[arg(long, default_value_t = Thresholds::DEFAULT.bradycardia_below)]
    bradycardia_below: f64,
    /// Lowest plausible heart rate; lower readings are invalid, as in the pipeline.
    #[arg(long, default_value_t = Validation::DEFAULT.min_bpm)]
    min_bpm: u16,
    /// Highest plausible heart rate; higher readings are invalid, as in the pipeline.
    #[arg(long, default_value_t = Validation::DEFAULT.max_bpm)]
    max_bpm: u16,
    /// Emit only tachycardia and bradycardia windows.
    #[arg(long, env = "HR_BATCH_ABNORMAL_ONLY")]
    abnormal_only: bool,
    #[command(flatten)]
    common: CommonArgs,
}

const SCORE_HELP: &str = "\
Examples:
  # A JSONL dump of the episodes topic
  hr-batch score --truth truth.json --episodes episodes.jsonl

  # Straight from the topic (read_committed, to the end offsets seen at start)
  hr-batch score --truth truth.json --episodes kafka:heart_rate_episodes -b localhost:9092

  # Scored for a job run with 10 s windows; exit 1 if a target is missed
  hr-batch score --truth truth.json --episodes-topic eps --window 10s --check --max-delay 16s

Matching: a raised record matches an injected episode of the same patient and kind (a silence
is signal_loss) when its window, widened by --tolerance (default: one --window) on both sides,
overlaps the injected span. A second record matching an episode already detected is a repeat;
a record matching nothing is false.
Detection time: tachycardia and bradycardia, the raising window's end + --delay (the earliest
event time the watermark lets the window fire); signal loss, the raised record's window_end
(when the loss was declared). Delay = detection time - injected start.
Required: rate episodes whose plateau inside the run lasts at least two --window lengths;
silences whose observed part is longer than --silence-after.";

#[derive(Args)]
struct ScoreArgs {
    /// hr-sim's --truth file.
    #[arg(long, env = "HR_BATCH_TRUTH")]
    truth: PathBuf,
    /// Episode records: a JSONL file, or kafka:TOPIC to read the topic.
    #[arg(
        long,
        required_unless_present = "episodes_topic",
        conflicts_with = "episodes_topic"
    )]
    episodes: Option<String>,
    /// Read the episodes from this topic (the same as --episodes kafka:TOPIC).
    #[arg(long, env = "HR_EPISODES_TOPIC")]
    episodes_topic: Option<String>,
    #[command(flatten)]
    kafka: hr_kafka::cli::KafkaArgs,
    /// How long reading the topic to its end may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    read_timeout: i64,
    /// The pipeline's window size (its --size).
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "HR_WINDOW_SIZE")]
    window: i64,
    /// The pipeline's out-of-orderness bound (its --delay).
    #[arg(long, default_value = "5s", value_parser = parse_duration, env = "HR_DELAY")]
    delay: i64,
    /// The pipeline's --silence-after.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "HR_SILENCE_AFTER")]
    silence_after: i64,
    /// Matching tolerance [default: one --window].
    #[arg(long, value_parser = parse_duration)]
    tolerance: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScoreFormat::Table)]
    format: ScoreFormat,
    /// In the table, list every injected episode and silence, not only the missed ones.
    #[arg(long)]
    all: bool,
    /// Exit 1 unless every required injection is detected and nothing false is raised.
    #[arg(long)]
    check: bool,
    /// With --check: the median rate-episode delay may not exceed this.
    #[arg(long, value_parser = parse_duration, requires = "check")]
    max_median_delay: Option<i64>,
    /// With --check: no rate-episode delay may exceed this.
    #[arg(long, value_parser = parse_duration, requires = "check")]
    max_delay: Option<i64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScoreFormat {
    Table,
    Csv,
    Json,
}

fn parse_duration(s: &str) -> Result<i64, String> {
    hr_model::parse_duration_ms(s).map_err(|e| e.to_string())
}

#[derive(Args)]
struct GenerateArgs {
    /// Directory to create or replace.
    #[arg(long)]
    output: PathBuf,
    /// Number of alert lines.
    #[arg(long, default_value_t = 10_000_000)]
    alerts: u64,
    /// Distinct patients.
    #[arg(long, default_value_t = 1_000)]
    patients: u32,
    /// Alerts per thousand followed by a re-fired revision.
    #[arg(long, default_value_t = 1)]
    revised_per_mille: u32,
    /// Number of JSONL files to spread the alerts over.
    #[arg(long, default_value_t = 8)]
    files: u64,
    /// Write one Parquet file instead of JSONL files.
    #[arg(long)]
    parquet: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replace the output path whatever it holds (by default only an earlier `generate` output).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    if std::env::var_os("POLARS_FMT_MAX_ROWS").is_none() {
        // SAFETY: no other thread runs yet (Polars starts its pool on first use).
        unsafe { std::env::set_var("POLARS_FMT_MAX_ROWS", "-1") };
    }
    let cli: Cli = hr_kafka::cli::parse("batch").args;
    let result = match cli.command {
        None => stats(cli.stats),
        Some(Command::Stats(args)) => stats(args),
        Some(Command::Recompute(args)) => recompute(args),
        Some(Command::Generate(args)) => generate(args),
        Some(Command::Score(args)) => score(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `hr-batch | head`: the reader has what it wanted.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let missing = error
                .chain()
                .any(|e| matches!(e.downcast_ref(), Some(BatchError::InputNotFound { .. })));
            ExitCode::from(if missing { 2 } else { 1 })
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Says so when a folder held no input file; strict mode has already made it an error.
fn warn_no_input(report: &ReadReport, input: &Path, pattern: &str) {
    if report.files == 0 {
        eprintln!(
            "warning: no {pattern} files under {}: the result is empty (--strict makes this an error).",
            input.display()
        );
    }
}

/// The report on standard output: Polars' table on a terminal (every row, unless
/// `POLARS_FMT_MAX_ROWS` says otherwise, and then how many it hid), CSV in a pipe.
fn print_report(table: &hr_batch::DataFrame) -> anyhow::Result<()> {
    use std::io::{IsTerminal as _, Write as _};
    let mut out = std::io::stdout().lock();
    if out.is_terminal() {
        writeln!(out, "{table}")?;
        let limit = std::env::var("POLARS_FMT_MAX_ROWS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(hidden) = limit
            .and_then(|n| table.height().checked_sub(n))
            .filter(|&h| h > 0)
        {
            writeln!(
                out,
                "({hidden} row(s) not shown: POLARS_FMT_MAX_ROWS={})",
                limit.unwrap_or(0)
            )?;
        }
    } else {
        let mut text = Vec::new();
        hr_batch::write_csv(&mut table.clone(), &mut text)?;
        out.write_all(&text)?;
    }
    out.flush()?;
    Ok(())
}

/// A byte progress bar on standard error; indicatif draws nothing when that is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} reading {bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn read_options<'a>(common: &CommonArgs, bar: &'a Bar) -> ReadOptions<'a> {
    ReadOptions {
        strict: common.strict,
        progress: bar,
    }
}

fn warn_malformed(report: &ReadReport) {
    if report.malformed == 0 {
        return;
    }
    eprintln!(
        "warning: skipped {} malformed line(s) (use --strict to fail on them):",
        report.malformed
    );
    for m in &report.examples {
        eprintln!("  {m}");
    }
    if report.malformed > report.examples.len() as u64 {
        eprintln!(
            "  ... and {} more",
            report.malformed - report.examples.len() as u64
        );
    }
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Some(FormatArg::Parquet) => OutputFormat::Parquet,
        Some(FormatArg::Csv) => OutputFormat::Csv,
        None if has_ext(&args.output, "csv") => OutputFormat::Csv,
        None => OutputFormat::Parquet,
    };
    if !args.common.force {
        hr_batch::ensure_replaceable(&args.output, PreviousOutput::Report)?;
    }
    let bar = Bar::new(args.common.quiet);
    let run = hr_batch::run_stats(
        &args.input,
        &args.output,
        format,
        read_options(&args.common, &bar),
    )
    .with_context(|| format!("alert report from {}", args.input.display()))?;
    bar.0.finish_and_clear();
    warn_malformed(&run.report);
    warn_no_input(&run.report, &args.input, hr_batch::ALERT_FILES);
    if !args.common.quiet {
        print_report(&run.table)?;
    }
    eprintln!(
        "Read {} alert(s) from {} file(s); wrote {} row(s) to {}.",
        run.report.rows,
        run.report.files,
        run.table.height(),
        run.written.display()
    );
    if args.verbose {
        let t = run.timings;
        eprintln!(
            "Timings: read {:.3} s, dedup {:.3} s, aggregate {:.3} s, write {:.3} s.",
            t.read.as_secs_f64(),
            t.dedup.as_secs_f64(),
            t.aggregate.as_secs_f64(),
            t.write.as_secs_f64()
        );
    }
    Ok(())
}

fn recompute(args: RecomputeArgs) -> anyhow::Result<()> {
    let size = hr_batch::parse_duration_ms(&args.window)?;
    let slide = match &args.slide {
        Some(s) => hr_batch::parse_duration_ms(s)?,
        None => size,
    };
    let opts = RecomputeOptions {
        window: WindowSpec::sliding(size, slide)?,
        thresholds: Thresholds {
            tachycardia_above: args.tachycardia_above,
            bradycardia_below: args.bradycardia_below,
            ..Thresholds::DEFAULT
        },
        abnormal_only: args.abnormal_only,
    };
    let validation = Validation {
        min_bpm: args.min_bpm,
        max_bpm: args.max_bpm,
    };
    if !args.common.force && args.output != Path::new("-") {
        hr_batch::ensure_replaceable(&args.output, PreviousOutput::AlertLines)?;
    }
    let bar = Bar::new(args.common.quiet);
    let (readings, report) =
        hr_batch::read_readings(&args.input, &validation, read_options(&args.common, &bar))
            .with_context(|| format!("readings from {}", args.input.display()))?;
    bar.0.finish_and_clear();
    warn_malformed(&report);
    warn_no_input(&report, &args.input, hr_batch::READING_FILES);
    let alerts = hr_batch::window_alerts(readings, &opts)?;
    hr_batch::write_alerts_jsonl(&alerts, &args.output)?;
    eprintln!(
        "Read {} reading(s) from {} file(s); wrote {} window alert(s) to {}.",
        report.rows,
        report.files,
        alerts.len(),
        args.output.display()
    );
    Ok(())
}

fn score(args: ScoreArgs) -> anyhow::Result<()> {
    use hr_batch::score::{ScoreOptions, seconds};
    use std::io::Write as _;
    let truth = hr_batch::read_truth(&args.truth)?;
    let topic = args.episodes_topic.clone().or_else(|| {
        args.episodes
            .as_deref()
            .and_then(|e| e.strip_prefix("kafka:"))
            .map(str::to_owned)
    });
    let episodes = match (&topic, &args.episodes) {
        (Some(topic), _) => hr_batch::read_episodes_topic(
            &args.kafka.bootstrap,
            &args.kafka.properties("hr-batch"),
            topic,
            std::time::Duration::from_millis(args.read_timeout.max(0) as u64),
        )?,
        (None, Some(path)) => hr_batch::read_episodes_jsonl(Path::new(path))?,
        (None, None) => unreachable!("clap requires --episodes or --episodes-topic"),
    };
    let options = ScoreOptions {
        window_ms: args.window,
        delay_ms: args.delay,
        silence_after_ms: args.silence_after,
        tolerance_ms: args.tolerance,
    };
    anyhow::ensure!(options.window_ms > 0, "--window must be positive");
    let result = hr_batch::score::score(&truth, &episodes, &options);
    let text = match args.format {
        ScoreFormat::Table => hr_batch::render_table(&result, args.all),
        ScoreFormat::Csv => hr_batch::render_csv(&result),
        ScoreFormat::Json => hr_batch::render_json(&result) + "\n",
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if !args.check {
        return Ok(());
    }
    let mut missed = Vec::new();
    for k in &result.kinds {
        if k.required_detected < k.required {
            missed.push(format!(
                "{} of {} required {} not detected",
                k.required - k.required_detected,
                k.required,
                k.kind
            ));
        }
    }
    if !result.false_raised.is_empty() {
        missed.push(format!("{} false raised", result.false_raised.len()));
    }
    let over = |limit: Option<i64>, value: Option<i64>| matches!((limit, value), (Some(l), Some(v)) if v > l);
    if over(args.max_median_delay, result.median_rate_delay_ms) {
        missed.push(format!(
            "median rate-episode delay {} above {}",
            seconds(result.median_rate_delay_ms),
            seconds(args.max_median_delay)
        ));
    }
    if over(args.max_delay, result.max_rate_delay_ms) {
        missed.push(format!(
            "largest rate-episode delay {} above {}",
            seconds(result.max_rate_delay_ms),
            seconds(args.max_delay)
        ));
    }
    anyhow::ensure!(missed.is_empty(), "targets missed: {}", missed.join("; "));
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let spec = GenerateSpec {
        alerts: args.alerts,
        patients: args.patients,
        revised_per_mille: args.revised_per_mille,
        seed: args.seed,
    };
    anyhow::ensure!(args.patients > 0, "--patients must be at least 1");
    anyhow::ensure!(args.files > 0, "--files must be at least 1");
    if !args.force {
        hr_batch::ensure_replaceable(&args.output, PreviousOutput::Generated)?;
    }
    let tmp = args.output.with_extension("generating");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    if args.parquet {
        let mut df = hr_batch::alerts_frame(hr_batch::generate_alerts(spec))?;
        hr_batch::write_table(&mut df, &tmp.join("alerts.parquet"), OutputFormat::Parquet)?;
    } else {
        let per_file = args.alerts.div_ceil(args.files);
        let mut alerts = hr_batch::generate_alerts(spec).peekable();
        let mut index = 0;
        while alerts.peek().is_some() {
            let path = tmp.join(format!("alerts-{index:04}.jsonl"));
            hr_batch::replace_file(&path, |w| {
                for a in alerts.by_ref().take(per_file as usize) {
                    writeln!(w, "{}", a.to_json()).map_err(|e| BatchError::Io {
                        path: path.clone(),
                        source: e,
                    })?;
                }
                Ok(())
            })?;
            index += 1;
        }
    }
    if args.output.exists() {
        std::fs::remove_dir_all(&args.output)?;
    }
    std::fs::rename(&tmp, &args.output)?;
    eprintln!(
        "Wrote {} alert(s) to {}.",
        args.alerts,
        args.output.display()
    );
    Ok(())
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}
