//! The command line of `hr-batch`: its subcommands and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hr_cli::{KafkaArgs, parse_duration_ms};
use hr_model::{Thresholds, Validation};

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) stats: StatsArgs,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct StatsArgs {
    /// Alerts: a JSONL file, a Parquet file, or a directory searched recursively for *.jsonl and
    /// *.parquet (names starting with '.' or '_' are skipped).
    #[arg(
        long,
        visible_alias = "input_path",
        default_value = "output/alerts",
        env = "HR_BATCH_INPUT"
    )]
    pub(crate) input: PathBuf,
    /// Where the report goes, replacing an earlier report there: a path ending in .parquet or
    /// .csv is one file, anything else a directory holding part-00000.<ext>.
    #[arg(
        long,
        visible_alias = "output_path",
        default_value = "output/alert_stats",
        env = "HR_BATCH_OUTPUT"
    )]
    pub(crate) output: PathBuf,
    /// Report format [default: csv for a .csv output path, else parquet].
    #[arg(long, value_enum, env = "HR_BATCH_FORMAT")]
    pub(crate) format: Option<FormatArg>,
    /// Print where the time went: reading, dedup of repeated windows, aggregation, writing.
    #[arg(long, short, env = "HR_BATCH_VERBOSE")]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Args)]
pub(crate) struct CommonArgs {
    /// Fail on the first malformed line, and when no input file is found, instead of warning.
    #[arg(long, env = "HR_BATCH_STRICT")]
    pub(crate) strict: bool,
    /// No progress bar and no table on standard output.
    #[arg(long, short, env = "HR_BATCH_QUIET")]
    pub(crate) quiet: bool,
    /// Replace the output path whatever it holds (by default only an earlier hr-batch output).
    #[arg(long, env = "HR_BATCH_FORCE")]
    pub(crate) force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Parquet,
    Csv,
}

#[derive(Args)]
pub(crate) struct RecomputeArgs {
    /// Raw readings: a JSONL file or a directory of *.jsonl files, one reading per line.
    #[arg(long, visible_alias = "input_path", env = "HR_BATCH_READINGS")]
    pub(crate) input: PathBuf,
    /// Alert JSONL file to write (replaced atomically), or '-' for standard output.
    #[arg(
        long,
        visible_alias = "output_path",
        default_value = "output/recomputed_alerts.jsonl",
        env = "HR_BATCH_RECOMPUTED"
    )]
    pub(crate) output: PathBuf,
    /// Window length: a number and a unit (500ms, 10s, 1.5m, 1h).
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms, env = "HR_WINDOW_SIZE")]
    pub(crate) window: i64,
    /// Distance between window starts for sliding windows, e.g. 10s [default: the window
    /// length, tumbling].
    #[arg(long, value_parser = parse_duration_ms, env = "HR_WINDOW_SLIDE")]
    pub(crate) slide: Option<i64>,
    /// Average above which a window is tachycardia.
    #[arg(long, default_value_t = Thresholds::DEFAULT.tachycardia_above)]
    pub(crate) tachycardia_above: f64,
    /// Average below which a window is bradycardia.
    #[arg(long, default_value_t = Thresholds::DEFAULT.bradycardia_below)]
    pub(crate) bradycardia_below: f64,
    /// Lowest plausible heart rate; lower readings are invalid, as in the pipeline.
    #[arg(long, default_value_t = Validation::DEFAULT.min_bpm)]
    pub(crate) min_bpm: u16,
    /// Highest plausible heart rate; higher readings are invalid, as in the pipeline.
    #[arg(long, default_value_t = Validation::DEFAULT.max_bpm)]
    pub(crate) max_bpm: u16,
    /// Emit only tachycardia and bradycardia windows.
    #[arg(long, env = "HR_BATCH_ABNORMAL_ONLY")]
    pub(crate) abnormal_only: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
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
pub(crate) struct ScoreArgs {
    /// hr-sim's --truth file.
    #[arg(long, env = "HR_BATCH_TRUTH")]
    pub(crate) truth: PathBuf,
    /// Episode records: a JSONL file, or kafka:TOPIC to read the topic.
    #[arg(
        long,
        required_unless_present = "episodes_topic",
        conflicts_with = "episodes_topic"
    )]
    pub(crate) episodes: Option<String>,
    /// Read the episodes from this topic (the same as --episodes kafka:TOPIC).
    #[arg(long, env = "HR_EPISODES_TOPIC")]
    pub(crate) episodes_topic: Option<String>,
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// How long reading the topic to its end may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms)]
    pub(crate) read_timeout: i64,
    /// The pipeline's window size (its --size).
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms, env = "HR_WINDOW_SIZE")]
    pub(crate) window: i64,
    /// The pipeline's out-of-orderness bound (its --delay).
    #[arg(long, default_value = "5s", value_parser = parse_duration_ms, env = "HR_DELAY")]
    pub(crate) delay: i64,
    /// The pipeline's --silence-after.
    #[arg(long, default_value = "30s", value_parser = parse_duration_ms, env = "HR_SILENCE_AFTER")]
    pub(crate) silence_after: i64,
    /// Matching tolerance [default: one --window].
    #[arg(long, value_parser = parse_duration_ms)]
    pub(crate) tolerance: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScoreFormat::Table)]
    pub(crate) format: ScoreFormat,
    /// In the table, list every injected episode and silence, not only the missed ones.
    #[arg(long)]
    pub(crate) all: bool,
    /// Exit 1 unless every required injection is detected and nothing false is raised.
    #[arg(long)]
    pub(crate) check: bool,
    /// With --check: the median rate-episode delay may not exceed this.
    #[arg(long, value_parser = parse_duration_ms, requires = "check")]
    pub(crate) max_median_delay: Option<i64>,
    /// With --check: no rate-episode delay may exceed this.
    #[arg(long, value_parser = parse_duration_ms, requires = "check")]
    pub(crate) max_delay: Option<i64>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScoreFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// Directory to create or replace.
    #[arg(long)]
    pub(crate) output: PathBuf,
    /// Number of alert lines.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) alerts: u64,
    /// Distinct patients.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) patients: u32,
    /// Alerts per thousand followed by a re-fired revision.
    #[arg(long, default_value_t = 1)]
    pub(crate) revised_per_mille: u32,
    /// Number of JSONL files to spread the alerts over.
    #[arg(long, default_value_t = 8)]
    pub(crate) files: u64,
    /// Write one Parquet file instead of JSONL files.
    #[arg(long)]
    pub(crate) parquet: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Replace the output path whatever it holds (by default only an earlier `generate` output).
    #[arg(long)]
    pub(crate) force: bool,
}
