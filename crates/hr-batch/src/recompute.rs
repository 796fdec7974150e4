//! Recomputing the streaming job's windows in batch, with Polars' own time-window grouping
//! (`group_by_dynamic`), as an independent check of the stream.
//!
//! Both sides accumulate the same integer figures (sum, count, min, max of `heart_rate_bpm`)
//! and turn them into an [`Alert`] with the same [`Alert::from_stats`], so on data without late
//! readings the JSON lines are equal byte for byte, not merely close.

use std::path::Path;

use hr_model::{Alert, Event, HrStats, Thresholds, Validation};
use polars::prelude::*;

use crate::error::{BatchError, Result};
use crate::input::{self, FileKind, LineParser, Piece, ReadOptions, ReadReport};

/// Event-time windows aligned to the epoch: `[k*slide, k*slide + size)` for every integer `k`.
/// Tumbling windows have `slide == size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    size_ms: i64,
    slide_ms: i64,
}

impl WindowSpec {
    /// Tumbling windows of `size_ms`.
    ///
    /// # Errors
    /// [`BatchError::InvalidOption`] unless `size_ms > 0`.
    pub fn tumbling(size_ms: i64) -> Result<Self> {
        Self::sliding(size_ms, size_ms)
    }

    /// Sliding windows of `size_ms` starting every `slide_ms` (Flink's `SlidingEventTimeWindows`).
    ///
    /// # Errors
    /// [`BatchError::InvalidOption`] unless `0 < slide_ms <= size_ms`.
    pub fn sliding(size_ms: i64, slide_ms: i64) -> Result<Self> {
        if size_ms <= 0 || slide_ms <= 0 || slide_ms > size_ms {
            return Err(BatchError::InvalidOption(format!(
                "window size {size_ms} ms and slide {slide_ms} ms must satisfy 0 < slide <= size"
            )));
        }
        Ok(Self { size_ms, slide_ms })
    }

    /// Window length in milliseconds.
    pub const fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Distance between window starts in milliseconds.
    pub const fn slide_ms(&self) -> i64 {
        self.slide_ms
    }
}

/// What to recompute and how to classify it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecomputeOptions {
    /// The windows.
    pub window: WindowSpec,
    /// Classification thresholds, as given to the streaming job.
    pub thresholds: Thresholds,
    /// Emit only tachycardia and bradycardia windows (the stream's "abnormal only" option).
    pub abnormal_only: bool,
}

/// The columns of a readings table: one row per valid reading.
pub fn readings_schema() -> Schema {
    Schema::from_iter([
        Field::new("patient_id".into(), DataType::String),
        Field::new("event_time_ms".into(), DataType::Int64),
        Field::new("heart_rate_bpm".into(), DataType::UInt16),
    ])
}

struct ReadingParser(Validation);

impl LineParser for ReadingParser {
    fn parse_piece(&self, piece: &[u8]) -> Result<Piece> {
        let mut events = Vec::with_capacity(piece.len() / 80 + 1);
        let mut bad = Vec::new();
        for (idx, line) in input::lines(piece) {
            match self.0.parse(line) {
                Ok(e) => events.push(e),
                Err(e) => bad.push((idx, e.to_string())),
            }
        }
        Ok(Piece {
            frame: readings_frame(&events)?,
            lines: input::count_lines(piece),
            bad,
        })
    }
}

/// Builds a readings table ([`readings_schema`]) from parsed events.
///
/// # Errors
/// Only Polars' own (it does not fail on well-formed columns).
pub fn readings_frame(events: &[Event]) -> Result<DataFrame> {
    let columns = vec![
        StringChunked::from_iter_values(
            "patient_id".into(),
            events.iter().map(|e| e.patient_id.as_str()),
        )
        .into_column(),
        Column::new(
            "event_time_ms".into(),
            events.iter().map(|e| e.event_time_ms).collect::<Vec<_>>(),
        ),
        Column::new(
            "heart_rate_bpm".into(),
            events.iter().map(|e| e.heart_rate_bpm).collect::<Vec<_>>(),
        ),
    ];
    Ok(DataFrame::new(events.len(), columns)?)
}

/// Reads raw readings (JSONL in the simulator's shape) from a file or from every `*.jsonl`
/// below a directory, validating each line with hr-model's `Validation` exactly as the
/// pipeline does. Invalid lines are what the pipeline would send to its DLQ: they are counted
/// with their file and line, or fatal with `opts.strict`.
///
/// # Errors
/// [`BatchError::InputNotFound`] if `path` does not exist, [`BatchError::Malformed`] in strict
/// mode, [`BatchError::InvalidOption`] for a Parquet input, I/O errors otherwise.
pub fn read_readings(
    path: &Path,
    validation: &Validation,
    opts: ReadOptions<'_>,
) -> Result<(DataFrame, ReadReport)> {
    let files = input::list_inputs(path)?;
    input::require_some(&files, path, READING_FILES, &opts)?;
    opts.progress.start(input::total_bytes(&files));
    let parser = ReadingParser(*validation);
    let mut report = ReadReport::default();
    let mut frames = Vec::new();
    for (file, kind) in &files {
        if *kind == FileKind::Parquet {
            return Err(BatchError::InvalidOption(format!(
                "{}: readings are read from JSONL only",
                file.display()
            )));
        }
        input::read_jsonl_file(file, &parser, opts, &mut report, &mut frames)?;
    }
    Ok((input::concat(frames, &readings_schema())?, report))
}

/// Computes every non-empty window of `readings` ([`readings_schema`]) per patient and turns
/// it into the alert the streaming job emits for it (revision 0), sorted by `window_end`, then
/// `patient_id`, then `window_start`.
///
/// The windows come from Polars' `group_by_dynamic` over the epoch-millisecond index, started
/// early enough (a negative offset of whole slides) that the windows beginning before a
/// patient's first reading exist too, as they do in Flink. The average is the integer sum
/// divided by the count, classified by `hr_model::classify_window`, exactly as in the stream.
///
/// # Errors
/// Polars errors, e.g. if `readings` lacks a column of [`readings_schema`].
///
/// # Example
/// ```
/// use hr_batch::{RecomputeOptions, WindowSpec};
/// use hr_model::{Event, Thresholds};
/// # fn main() -> Result<(), hr_batch::BatchError> {
/// let ev = |t, bpm| Event { patient_id: "p1".into(), event_time_ms: t, heart_rate_bpm: bpm };
/// let readings = hr_batch::readings_frame(&[ev(1_000, 120), ev(2_000, 101), ev(61_000, 70)])?;
/// let opts = RecomputeOptions {
///     window: WindowSpec::tumbling(60_000)?,
///     thresholds: Thresholds::default(),
///     abnormal_only: false,
/// };
/// let alerts = hr_batch::window_alerts(readings, &opts)?;
/// assert_eq!(
///     alerts[0].to_json(),
///     r#"{"patient_id":"p1","window_start":0,"window_end":60000,"avg_hr":110.5,"min_hr":101,"max_hr":120,"count":2,"alert_type":"tachycardia","revision":0,"thresholds":{"tachycardia_above":100.0,"bradycardia_below":50.0,"min_readings":1}}"#
/// );
/// assert_eq!((alerts[1].window_start, alerts[1].alert_type.as_str()), (60_000, "normal"));
/// # Ok(())
/// # }
/// ```
pub fn window_alerts(readings: DataFrame, opts: &RecomputeOptions) -> Result<Vec<Alert>> {
    // Polars leaves out the boundary columns when there is nothing to group.
    if readings.height() == 0 {
        return Ok(Vec::new());
    }
    let WindowSpec { size_ms, slide_ms } = opts.window;
    // Polars starts a patient's windows at trunc(first, slide) + offset and steps forward to the
    // first window containing the reading; an offset of ceil(size/slide) whole slides back is
    // therefore always early enough, and keeps starts on the epoch-aligned grid.
    let back = (size_ms + slide_ms - 1) / slide_ms * slide_ms;
    let options = DynamicGroupOptions {
        index_column: "event_time_ms".into(),
        every: Duration::new(slide_ms),
        period: Duration::new(size_ms),
        offset: Duration::new(-back),
        label: Label::Left,
        include_boundaries: true,
        closed_window: ClosedWindow::Left,
        start_by: StartBy::WindowBound,
    };
    let windows = readings
        .lazy()
        // group_by_dynamic needs the index sorted within each patient.
        .sort(
            ["patient_id", "event_time_ms"],
            SortMultipleOptions::default(),
        )
        .group_by_dynamic(col("event_time_ms"), [col("patient_id")], options)
        .agg([
            col("heart_rate_bpm")
                .cast(DataType::UInt64)
                .sum()
                .alias("sum"),
            len().cast(DataType::UInt64).alias("count"),
            col("heart_rate_bpm").min().alias("min"),
            col("heart_rate_bpm").max().alias("max"),
        ])
        .sort(
            ["_upper_boundary", "patient_id", "_lower_boundary"],
            SortMultipleOptions::default(),
        )
        .collect()?;

    let pid = windows.column("patient_id")?.str()?;
    let start = windows.column("_lower_boundary")?.i64()?;
    let end = windows.column("_upper_boundary")?.i64()?;
    let sum = windows.column("sum")?.u64()?;
    let count = windows.column("count")?.u64()?;
    let min = windows.column("min")?.u16()?;
    let max = windows.column("max")?.u16()?;
    let mut alerts = Vec::with_capacity(windows.height());
    for i in 0..windows.height() {
        let (Some(pid), Some(start), Some(end), Some(sum), Some(count), Some(min), Some(max)) = (
            pid.get(i),
            start.get(i),
            end.get(i),
            sum.get(i),
            count.get(i),
            min.get(i),
            max.get(i),
        ) else {
            continue;
        };
        if count == 0 {
            continue;
        }
        let stats = HrStats {
            sum,
            count,
            min,
            max,
        };
        let alert = Alert::from_stats(pid, start, end, &stats, 0, &opts.thresholds);
        if !opts.abnormal_only || alert.alert_type.is_abnormal() {
            alerts.push(alert);
        }
    }
    Ok(alerts)
}

/// [`window_alerts`] over events already in memory (the form an end-to-end test holds).
///
/// # Errors
/// As [`window_alerts`].
pub fn recompute_events(events: &[Event], opts: &RecomputeOptions) -> Result<Vec<Alert>> {
    window_alerts(readings_frame(events)?, opts)
}

/// Writes alerts as JSON lines (the pipeline's file format) to `path`, atomically, or to
/// standard output when `path` is `-`.
///
/// # Errors
/// I/O errors writing or renaming.
pub fn write_alerts_jsonl(alerts: &[Alert], path: &Path) -> Result<()> {
    let emit = |w: &mut dyn std::io::Write| -> Result<()> {
        for a in alerts {
            writeln!(w, "{}", a.to_json()).map_err(|e| BatchError::io(path, e))?;
        }
        w.flush().map_err(|e| BatchError::io(path, e))
    };
    if path == Path::new("-") {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        return emit(&mut lock);
    }
    crate::output::replace_file(path, emit)
}

/// The reading files a folder is searched for.
pub const READING_FILES: &str = "*.jsonl";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The straightforward computation: every reading added to each window that contains it.
    fn reference(events: &[Event], opts: &RecomputeOptions) -> Vec<Alert> {
        let (size, slide) = (opts.window.size_ms, opts.window.slide_ms);
        let mut windows: BTreeMap<(i64, String, i64), HrStats> = BTreeMap::new();
        for e in events {
            let last = e.event_time_ms.div_euclid(slide) * slide;
            let mut start = last;
            while start > e.event_time_ms - size {
                windows
                    .entry((start + size, e.patient_id.clone(), start))
                    .or_default()
                    .add(e.heart_rate_bpm);
                start -= slide;
            }
        }
        windows
            .into_iter()
            .map(|((end, pid, start), s)| {
                Alert::from_stats(pid, start, end, &s, 0, &opts.thresholds)
            })
            .filter(|a| !opts.abnormal_only || a.alert_type.is_abnormal())
            .collect()
    }

    fn opts(size: i64, slide: i64) -> RecomputeOptions {
        RecomputeOptions {
            window: WindowSpec::sliding(size, slide).unwrap(),
            thresholds: Thresholds::default(),
            abnormal_only: false,
        }
    }

    fn event(pid: u8, t: i64, bpm: u16) -> Event {
        Event {
            patient_id: format!("p{pid}"),
            event_time_ms: t,
            heart_rate_bpm: bpm,
        }
    }

    #[test]
    fn sliding_windows_include_those_starting_before_the_first_reading() {
        let events = [event(1, 5_000, 120), event(1, 25_000, 40)];
        let got = recompute_events(&events, &opts(30_000, 10_000)).unwrap();
        let spans: Vec<_> = got.iter().map(|a| (a.window_start, a.count)).collect();
        assert_eq!(
            spans,
            vec![(-20_000, 1), (-10_000, 1), (0, 2), (10_000, 1), (20_000, 1)]
        );
        assert_eq!(got[2].avg_hr, 80.0);
        assert_eq!(got, reference(&events, &opts(30_000, 10_000)));
    }

    #[test]
    fn abnormal_only_drops_normal_windows() {
        let events = [event(1, 0, 120), event(1, 60_000, 70), event(2, 0, 30)];
        let mut o = opts(60_000, 60_000);
        o.abnormal_only = true;
        let got = recompute_events(&events, &o).unwrap();
        let kinds: Vec<_> = got
            .iter()
            .map(|a| (a.patient_id.as_str(), a.alert_type))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("p1", hr_model::AlertType::Tachycardia),
                ("p2", hr_model::AlertType::Bradycardia)
            ]
        );
    }

    #[test]
    fn empty_readings_give_no_windows() {
        let got = recompute_events(&[], &opts(60_000, 60_000)).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn invalid_readings_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("events.jsonl");
        std::fs::write(
            &file,
            concat!(
                r#"{"patient_id":"p1","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":94}"#,
                "\n",
                r#"{"patient_id":"p1","timestamp":"2025-11-19T07:15:24","heart_rate_bpm":94}"#,
                "\n\n",
                r#"{"patient_id":"p1","timestamp":"2025-11-19T07:15:25Z","heart_rate_bpm":999}"#,
                "\n",
            ),
        )
        .unwrap();
        let (df, report) =
            read_readings(&file, &Validation::default(), ReadOptions::default()).unwrap();
        assert_eq!(df.height(), 1);
        assert_eq!(
            df.column("event_time_ms").unwrap().i64().unwrap().get(0),
            Some(1_763_536_523_123)
        );
        assert_eq!(report.malformed, 2);
        let lines: Vec<_> = report.examples.iter().map(|m| m.line).collect();
        assert_eq!(lines, vec![2, 4]);

        let strict = ReadOptions {
            strict: true,
            ..Default::default()
        };
        match read_readings(&file, &Validation::default(), strict) {
            Err(BatchError::Malformed { line: 2, .. }) => {}
            other => panic!("expected a fatal line 2, got {other:?}"),
        }
    }

    #[test]
    fn windows_must_be_positive_and_slide_within_their_size() {
        // The flags' durations are hr-cli's to parse; what they may be is the window's rule.
        assert!(WindowSpec::sliding(500, 500).is_ok());
        assert!(WindowSpec::sliding(0, 0).is_err());
        assert!(WindowSpec::sliding(-5_000, -5_000).is_err());
        assert!(WindowSpec::sliding(10_000, 0).is_err());
        assert!(WindowSpec::sliding(10, 20).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Polars' windows equal the straightforward computation on random readings, for
        /// tumbling and sliding windows, including readings before the epoch.
        #[test]
        fn recompute_equals_reference(
            raw in prop::collection::vec((0u8..4, -50_000i64..400_000, 30u16..200), 0..300),
            size_slides in 1i64..5,
            slide in prop::sample::select(vec![1_000i64, 7_000, 10_000, 60_000]),
            extra in 0i64..3,
        ) {
            // Sizes that are not a whole number of slides are allowed too (Flink allows them).
            let size = size_slides * slide + extra * (slide / 3);
            let events: Vec<_> = raw.iter().map(|&(p, t, b)| event(p, t, b)).collect();
            let o = opts(size, slide);
            let got = recompute_events(&events, &o).unwrap();
            prop_assert_eq!(got, reference(&events, &o));
        }
    }
}
