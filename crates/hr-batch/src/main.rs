//! `hr-batch`: the alert report (default) and the window recomputation, from the command line.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use hr_batch::{
    BatchError, GenerateSpec, OutputFormat, PreviousOutput, Progress, ReadOptions, ReadReport,
    RecomputeOptions, Targets, WindowSpec,
};
use hr_model::{Thresholds, Validation};
use indicatif::{ProgressBar, ProgressStyle};

mod flags;

use flags::{
    Cli, Command, CommonArgs, FormatArg, GenerateArgs, RecomputeArgs, ScoreArgs, ScoreFormat,
    StatsArgs,
};

fn main() -> ExitCode {
    if std::env::var_os("POLARS_FMT_MAX_ROWS").is_none() {
        // SAFETY: no other thread runs yet (Polars starts its pool on first use).
        unsafe { std::env::set_var("POLARS_FMT_MAX_ROWS", "-1") };
    }
    let cli: Cli = hr_cli::parse("batch").args;
    let result = match cli.command {
        None => stats(cli.stats),
        Some(Command::Stats(args)) => stats(args),
        Some(Command::Recompute(args)) => recompute(args),
        Some(Command::Generate(args)) => generate(args),
        Some(Command::Score(args)) => score(args),
    };
    // Quiet and successful on `hr-batch | head`: the reader has what it wanted.
    hr_cli::finish_with("hr-batch", result, |error| {
        let missing = hr_cli::causes(error)
            .any(|e| matches!(e.downcast_ref(), Some(BatchError::InputNotFound { .. })));
        if missing { 2 } else { 1 }
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
    let opts = RecomputeOptions {
        window: WindowSpec::sliding(args.window, args.slide.unwrap_or(args.window))?,
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
    use hr_batch::score::ScoreOptions;
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
    if args.check {
        let targets = Targets {
            max_median_delay_ms: args.max_median_delay,
            max_delay_ms: args.max_delay,
        };
        targets.check(&result)?;
    }
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
    hr_batch::replace_dir(&args.output, |tmp| {
        if args.parquet {
            let mut df = hr_batch::alerts_frame(hr_batch::generate_alerts(spec))?;
            hr_batch::write_table(&mut df, &tmp.join("alerts.parquet"), OutputFormat::Parquet)?;
            return Ok(());
        }
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
        Ok(())
    })?;
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
