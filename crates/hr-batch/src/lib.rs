//! Batch analysis of hr-stream output with Polars: the alert report that the seed computed with
//! Spark, and a recomputation of the windows from raw readings that checks the streaming job.
//!
//! The shaping decision: **the batch side shares the stream's arithmetic, not only its
//! format.** Windows are aggregated as integer sums and counts and turned into alerts by
//! hr-model's own `Alert::from_stats` / `classify_window`, so a recomputed alert is equal to
//! the streamed one byte for byte and any difference points at a real bug, never at a rounding.
//! Polars does the reading, writing and window grouping (`group_by_dynamic`).
//!
//! The report is built for tables of tens of millions of alerts where a window may repeat
//! (replays after a restart, re-fired revisions): patient ids are numbered once, repeats are
//! found by hashing each window's three integers into cache-sized partitions and comparing
//! only the rows whose hashes meet, and the few report groups are summed in one pass in row
//! order. [`latest_revisions`] states the same rule as a plain Polars plan; the report takes
//! that plan for inputs the fast path does not cover (nulls in a window's identity), and the
//! tests hold the two to the same tables.
//!
//! Reading is built for dirty, large inputs: JSONL is parsed on all cores in bounded blocks,
//! a malformed line is counted and reported with its file and line (or fatal in strict mode),
//! and results are written to a temporary sibling and renamed, so nothing is half-written.
//!
//! # Example
//! ```
//! use hr_batch::{OutputFormat, ReadOptions};
//! # fn main() -> Result<(), hr_batch::BatchError> {
//! let dir = tempfile::tempdir().unwrap();
//! let alerts = dir.path().join("alerts");
//! std::fs::create_dir(&alerts).unwrap();
//! let line = |start: i64, avg: f64, kind: &str| {
//!     format!(
//!         "{{\"patient_id\":\"p001\",\"window_start\":{start},\"window_end\":{},\"avg_hr\":{avg},\
//!          \"min_hr\":90,\"max_hr\":130,\"count\":60,\"alert_type\":\"{kind}\",\"revision\":0}}\n",
//!         start + 60_000
//!     )
//! };
//! let text = line(0, 104.0, "tachycardia") + &line(60_000, 110.0, "tachycardia");
//! std::fs::write(alerts.join("part-0.jsonl"), text).unwrap();
//!
//! let out = dir.path().join("alert_stats");
//! let run = hr_batch::run_stats(&alerts, &out, OutputFormat::Parquet, ReadOptions::default())?;
//! assert_eq!(run.table.height(), 1);
//! assert_eq!(run.table.column("alert_count")?.u64()?.get(0), Some(2));
//! assert_eq!(run.table.column("mean_avg_hr")?.f64()?.get(0), Some(107.0));
//! assert!(run.written.ends_with("alert_stats/part-00000.parquet"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod alerts;
mod dedup;
mod error;
mod generate;
mod input;
mod output;
mod recompute;
pub mod score;
mod score_io;
mod stats;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use alerts::{ALERT_FILES, alert_schema, read_alerts};
pub use error::{BatchError, Result};
pub use generate::{GenerateSpec, alerts_frame, generate_alerts};
pub use input::{MAX_REPORTED, Malformed, Progress, ReadOptions, ReadReport};
pub use output::{
    OutputFormat, PreviousOutput, ensure_replaceable, replace_dir, replace_file, write_csv,
    write_table,
};
pub use polars::prelude::DataFrame;
pub use recompute::{
    READING_FILES, RecomputeOptions, WindowSpec, read_readings, readings_frame, readings_schema,
    recompute_events, window_alerts, write_alerts_jsonl,
};
pub use score_io::{
    read_episodes_jsonl, read_episodes_topic, read_truth, render_csv, render_json, render_table,
};
pub use stats::{alert_stats, alert_stats_plain, latest_revisions, stats_schema};
pub use targets::Targets;

/// The outcome of [`run_stats`].
#[derive(Debug)]
pub struct StatsRun {
    /// The report, as written.
    pub table: DataFrame,
    /// What reading the input saw.
    pub report: ReadReport,
    /// The file the report was written to.
    pub written: PathBuf,
    /// Where the time went.
    pub timings: StatsTimings,
}

/// Wall-clock time spent in each step of [`run_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsTimings {
    /// Listing and reading the input into columns.
    pub read: Duration,
    /// Finding the copies and earlier revisions of each window (see [`latest_revisions`]).
    pub dedup: Duration,
    /// Grouping per patient and alert type, and sorting the report.
    pub aggregate: Duration,
    /// Encoding and atomically replacing the output.
    pub write: Duration,
}

/// Reads alerts from `input` (see [`read_alerts`]), computes the report ([`alert_stats`]) and
/// writes it to `output` (see [`write_table`]), replacing what was there.
///
/// # Errors
/// Any error of the three steps; nothing is written if reading or computing fails.
pub fn run_stats(
    input: &Path,
    output: &Path,
    format: OutputFormat,
    opts: ReadOptions<'_>,
) -> Result<StatsRun> {
    let started = Instant::now();
    let (alerts, report) = alerts::read_alert_columns(input, opts, &stats::input_schema())?;
    let read = started.elapsed();
    let (mut table, dedup, aggregate) = stats::alert_stats_timed(alerts)?;
    let started = Instant::now();
    let written = write_table(&mut table, output, format)?;
    Ok(StatsRun {
        table,
        report,
        written,
        timings: StatsTimings {
            read,
            dedup,
            aggregate,
            write: started.elapsed(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use polars::prelude::*;

    use super::*;

    const ALERTS: &str = r#"{"patient_id":"p001","window_start":1763536500000,"window_end":1763536560000,"avg_hr":104.5,"min_hr":98,"max_hr":111,"count":120,"alert_type":"tachycardia","revision":0}
{"patient_id":"p001","window_start":1763536560000,"window_end":1763536620000,"avg_hr":110.5,"min_hr":101,"max_hr":130,"count":118,"alert_type":"tachycardia","revision":0}
{"patient_id":"p001","window_start":1763536620000,"window_end":1763536680000,"avg_hr":72.0,"min_hr":60,"max_hr":80,"count":120,"alert_type":"normal","revision":0}
{"patient_id":"p002","window_start":1763536500000,"window_end":1763536560000,"avg_hr":45.0,"min_hr":38,"max_hr":52,"count":120,"alert_type":"bradycardia","revision":0}
{"patient_id":"p002","window_start":1763536500000,"window_end":1763536560000,"avg_hr":44.0,"min_hr":36,"max_hr":52,"count":121,"alert_type":"bradycardia","revision":1}
{"patient_id":"p002","window_start":1763536560000,"window_end":1763536620000,"avg_hr":48.0,"min_hr":41,"max_hr":55,"count":120,"alert_type":"bradycardia","revision":0}
this line is broken
{"patient_id":"p001","window_start":1763536560000,"window_end":1763536620000,"avg_hr":110.5,"min_hr":101,"max_hr":130,"count":118,"alert_type":"tachycardia","revision":0}
"#;

    /// The report for [`ALERTS`], worked out by hand: p002's first window counts once at
    /// revision 1, and p001's duplicated second window once.
    fn expected() -> DataFrame {
        let dt = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        df!(
            "patient_id" => ["p001", "p001", "p002"],
            "alert_type" => ["normal", "tachycardia", "bradycardia"],
            "alert_count" => [1u64, 2, 2],
            "mean_avg_hr" => [72.0, 107.5, 46.0],
            "min_hr" => [60u16, 98, 36],
            "max_hr" => [80u16, 130, 55],
            "first_window_start" => [1_763_536_620_000i64, 1_763_536_500_000, 1_763_536_500_000],
            "last_window_start" => [1_763_536_620_000i64, 1_763_536_560_000, 1_763_536_560_000],
        )
        .unwrap()
        .lazy()
        .with_columns([
            col("first_window_start").cast(dt.clone()),
            col("last_window_start").cast(dt),
        ])
        .collect()
        .unwrap()
    }

    fn write_input(dir: &Path) -> PathBuf {
        let alerts = dir.join("alerts");
        std::fs::create_dir_all(alerts.join("day=1")).unwrap();
        // Split over two files, one a level down, to exercise directory reading.
        let (a, b) = ALERTS.split_at(ALERTS.find("{\"patient_id\":\"p002\"").unwrap());
        std::fs::write(alerts.join("a.jsonl"), a).unwrap();
        std::fs::write(alerts.join("day=1/b.jsonl"), b).unwrap();
        alerts
    }

    #[test]
    fn known_alerts_give_the_expected_report_in_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let input = write_input(dir.path());
        let run = run_stats(
            &input,
            &dir.path().join("out"),
            OutputFormat::Parquet,
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(run.report.rows, 7);
        assert_eq!(run.report.malformed, 1);
        let bad = &run.report.examples[0];
        assert!(bad.path.ends_with("day=1/b.jsonl"));
        assert_eq!(bad.line, 4);
        assert!(run.table.equals(&expected()), "{}", run.table);
        let back = ParquetReader::new(File::open(&run.written).unwrap())
            .finish()
            .unwrap();
        assert!(back.equals(&expected()), "{back}");
        assert_eq!(back.schema().as_ref(), &stats_schema());
    }

    #[test]
    fn known_alerts_give_the_expected_report_in_csv() {
        let dir = tempfile::tempdir().unwrap();
        let input = write_input(dir.path());
        let out = dir.path().join("stats.csv");
        run_stats(&input, &out, OutputFormat::Csv, ReadOptions::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "patient_id,alert_type,alert_count,mean_avg_hr,min_hr,max_hr,first_window_start,last_window_start\n\
             p001,normal,1,72.0,60,80,2025-11-19T07:17:00.000Z,2025-11-19T07:17:00.000Z\n\
             p001,tachycardia,2,107.5,98,130,2025-11-19T07:15:00.000Z,2025-11-19T07:16:00.000Z\n\
             p002,bradycardia,2,46.0,36,55,2025-11-19T07:15:00.000Z,2025-11-19T07:16:00.000Z\n"
        );
    }

    #[test]
    fn parquet_input_gives_the_same_report_as_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let input = write_input(dir.path());
        let (mut alerts, _) = read_alerts(&input, ReadOptions::default()).unwrap();
        let pq = dir.path().join("alerts.parquet");
        write_table(&mut alerts, &pq, OutputFormat::Parquet).unwrap();
        let (back, report) = read_alerts(&pq, ReadOptions::default()).unwrap();
        assert_eq!(report.rows, 7);
        assert!(alert_stats(back).unwrap().equals(&expected()));
    }

    #[test]
    fn strict_mode_fails_on_the_malformed_line_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = write_input(dir.path());
        let out = dir.path().join("out");
        let strict = ReadOptions {
            strict: true,
            ..Default::default()
        };
        match run_stats(&input, &out, OutputFormat::Parquet, strict) {
            Err(BatchError::Malformed { path, line: 4, .. }) => {
                assert!(path.ends_with("day=1/b.jsonl"));
            }
            other => panic!("expected a fatal line 4, got {other:?}"),
        }
        assert!(!out.exists());
    }

    #[test]
    fn empty_input_gives_an_empty_report_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("alerts");
        std::fs::create_dir(&input).unwrap();
        std::fs::write(input.join("empty.jsonl"), "\n").unwrap();
        for format in [OutputFormat::Parquet, OutputFormat::Csv] {
            let out = dir.path().join(format!("out.{}", format.extension()));
            let run = run_stats(&input, &out, format, ReadOptions::default()).unwrap();
            assert_eq!(run.table.height(), 0);
            assert_eq!(run.table.schema().as_ref(), &stats_schema());
        }
        let back = ParquetReader::new(File::open(dir.path().join("out.parquet")).unwrap())
            .finish()
            .unwrap();
        assert_eq!(back.schema().as_ref(), &stats_schema());
    }

    #[test]
    fn missing_input_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_stats(
            &dir.path().join("nowhere"),
            &dir.path().join("out"),
            OutputFormat::Parquet,
            ReadOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, BatchError::InputNotFound { .. }));
        assert!(err.to_string().contains("nowhere"));
    }

    #[test]
    fn generated_alerts_report_matches_a_direct_count() {
        let spec = GenerateSpec {
            alerts: 20_000,
            patients: 13,
            revised_per_mille: 30,
            seed: 9,
        };
        let table = alert_stats(alerts_frame(generate_alerts(spec)).unwrap()).unwrap();
        let mut latest = std::collections::HashMap::new();
        for a in generate_alerts(spec) {
            let key = (a.patient_id.clone(), a.window_start);
            let keep = latest
                .get(&key)
                .is_none_or(|b: &hr_model::Alert| b.revision < a.revision);
            if keep {
                latest.insert(key, a);
            }
        }
        let mut counts = std::collections::BTreeMap::new();
        for a in latest.values() {
            *counts
                .entry((a.patient_id.clone(), a.alert_type.as_str()))
                .or_insert(0u64) += 1;
        }
        let got: std::collections::BTreeMap<_, _> = (0..table.height())
            .map(|i| {
                let pid = table
                    .column("patient_id")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap();
                let kind = table
                    .column("alert_type")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap();
                let n = table
                    .column("alert_count")
                    .unwrap()
                    .u64()
                    .unwrap()
                    .get(i)
                    .unwrap();
                ((pid.to_owned(), kind), n)
            })
            .collect();
        let want: std::collections::BTreeMap<_, _> = counts
            .iter()
            .map(|((p, k), n)| ((p.clone(), *k), *n))
            .collect();
        assert_eq!(got, want);
    }
}
