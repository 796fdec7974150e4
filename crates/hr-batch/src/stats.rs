//! The alert report: per patient and alert type, how many alerts and what they looked like.

use std::time::{Duration, Instant};

use polars::prelude::*;

use crate::dedup::{self, Chunks, Interned, Windows};
use crate::error::Result;

/// The columns of the report [`alert_stats`] computes.
///
/// `first_window_start` / `last_window_start` are UTC datetimes (millisecond precision, stored
/// Epoch milliseconds as a UTC datetime: Parquet marks it `isAdjustedToUTC=true` and CSV
/// writes it with a `Z`, so no reader has to guess the zone.
pub(crate) fn utc_ms() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
}

/// without a zone name: every timestamp in hr-stream is UTC).
pub fn stats_schema() -> Schema {
    Schema::from_iter([
        Field::new("patient_id".into(), DataType::String),
        Field::new("alert_type".into(), DataType::String),
        Field::new("alert_count".into(), DataType::UInt64),
        Field::new("mean_avg_hr".into(), DataType::Float64),
        Field::new("min_hr".into(), DataType::UInt16),
        Field::new("max_hr".into(), DataType::UInt16),
        Field::new("first_window_start".into(), utc_ms()),
        Field::new("last_window_start".into(), utc_ms()),
    ])
}

/// The columns of [`crate::alert_schema`] that [`alert_stats`] reads.
pub(crate) fn input_schema() -> Schema {
    crate::alert_schema()
        .iter()
        .filter(|(name, _)| name.as_str() != "count")
        .map(|(name, dtype)| Field::new(name.clone(), dtype.clone()))
        .collect()
}

/// Keeps one alert per window, the one with the highest revision.
///
/// A window is `(patient_id, window_start, window_end)`: the end is part of the identity so that
/// tumbling and sliding alerts that share a start stay apart. Allowed lateness re-emits a window
/// with a higher revision that supersedes the earlier ones, and at-least-once delivery can
/// write the same alert twice; either way the window is counted once, with its latest figures.
pub fn latest_revisions(alerts: LazyFrame) -> LazyFrame {
    let window = by_name(["patient_id", "window_start", "window_end"], true, false);
    alerts
        .sort(
            ["revision"],
            SortMultipleOptions::default()
                .with_order_descending(true)
                .with_maintain_order(true),
        )
        .unique_stable(Some(window), UniqueKeepStrategy::First)
}

/// Computes the report from an alert table of [`crate::alert_schema`]: one row per
/// `patient_id` × `alert_type` with the number of alerts, the mean of `avg_hr`, the lowest
/// `min_hr`, the highest `max_hr` and the first and last `window_start`, sorted by patient then
/// alert type. Each window counts once, at its highest revision (see [`latest_revisions`]).
///
/// `mean_avg_hr` is the plain mean of the windows' averages (every window weighs the same, as
/// in the seed's Spark report), not a mean weighted by readings, summed in row order with
/// Kahan compensation.
///
/// Ten million alerts take well under a second here: the repeats are found without sorting
/// or hashing whole rows (see the crate docs), and nothing is copied out of the input's
/// chunks.
///
/// # Errors
/// Polars errors, e.g. when a column is missing or has another type.
///
/// # Example
/// ```
/// use polars::prelude::*;
/// # fn main() -> Result<(), hr_batch::BatchError> {
/// let alerts = df!(
///     "patient_id" => ["p1", "p1", "p1"],
///     "window_start" => [0i64, 60_000, 0],
///     "window_end" => [60_000i64, 120_000, 60_000],
///     "avg_hr" => [101.0, 105.0, 103.0],
///     "min_hr" => [90u16, 99, 95],
///     "max_hr" => [120u16, 111, 121],
///     "count" => [60u64, 60, 61],
///     "alert_type" => ["tachycardia"; 3],
///     "revision" => [0u32, 0, 1],
/// )?;
/// let stats = hr_batch::alert_stats(alerts)?;
/// // The first window counts once, with its revision-1 figures.
/// assert_eq!(stats.column("alert_count")?.u64()?.get(0), Some(2));
/// assert_eq!(stats.column("mean_avg_hr")?.f64()?.get(0), Some(104.0));
/// assert_eq!(stats.column("max_hr")?.u16()?.get(0), Some(121));
/// # Ok(())
/// # }
/// ```
pub fn alert_stats(alerts: DataFrame) -> Result<DataFrame> {
    Ok(alert_stats_timed(alerts)?.0)
}

/// The same report as [`alert_stats`] from one lazy plan of Polars built-ins:
/// [`latest_revisions`], then a group-by on the string columns. It is the reference the fast
/// path is tested and benchmarked against (about 6x slower on a million alerts).
///
/// # Errors
/// A Polars error when a column is missing or of another type.
pub fn alert_stats_plain(alerts: DataFrame) -> Result<DataFrame> {
    Ok(aggregate(
        latest_revisions(alerts.lazy()),
        [col("patient_id"), col("alert_type")],
    )
    .sort(["patient_id", "alert_type"], SortMultipleOptions::default())
    .collect()?)
}

/// [`alert_stats`], also saying how long finding the latest revisions and aggregating took.
pub(crate) fn alert_stats_timed(alerts: DataFrame) -> Result<(DataFrame, Duration, Duration)> {
    let started = Instant::now();
    let Some(coded) = CodedAlerts::new(&alerts)? else {
        // Nulls in a window's identity, or columns of other types: the plain lazy plan
        // handles them as Polars does, only more slowly.
        let latest = latest_revisions(alerts.lazy()).collect()?;
        let deduped = started.elapsed();
        let table = aggregate(latest.lazy(), [col("patient_id"), col("alert_type")])
            .sort(["patient_id", "alert_type"], SortMultipleOptions::default())
            .collect()?;
        return Ok((table, deduped, started.elapsed() - deduped));
    };
    let superseded = dedup::superseded_rows(&coded.windows());
    let deduped = started.elapsed();
    let table = coded.report(&superseded)?;
    Ok((table, deduped, started.elapsed() - deduped))
}

/// The report's aggregations over `alerts` grouped by `by`.
fn aggregate(alerts: LazyFrame, by: impl AsRef<[Expr]>) -> LazyFrame {
    let when = utc_ms();
    alerts.group_by(by).agg([
        len().cast(DataType::UInt64).alias("alert_count"),
        col("avg_hr").mean().alias("mean_avg_hr"),
        col("min_hr").min().alias("min_hr"),
        col("max_hr").max().alias("max_hr"),
        col("window_start")
            .min()
            .cast(when.clone())
            .alias("first_window_start"),
        col("window_start")
            .max()
            .cast(when)
            .alias("last_window_start"),
    ])
}

/// An alert table whose patient ids and alert types are numbered, so that a window is three
/// integers and a report group one.
struct CodedAlerts {
    patients: Interned,
    kinds: Interned,
    start: Int64Chunked,
    end: Int64Chunked,
    revision: UInt32Chunked,
    avg_hr: Float64Chunked,
    min_hr: UInt16Chunked,
    max_hr: UInt16Chunked,
}

impl CodedAlerts {
    /// `None` when the fast path does not apply: a column of another type than
    /// [`crate::alert_schema`] gives, a null anywhere but in the two string columns, or so
    /// many distinct patients and alert types that a table of every pair would not fit.
    fn new(alerts: &DataFrame) -> Result<Option<Self>> {
        let typed = |name: &str, dtype: DataType| {
            alerts
                .column(name)
                .map(|c| c.dtype() == &dtype && (dtype == DataType::String || !c.has_nulls()))
        };
        let fits = typed("patient_id", DataType::String)?
            && typed("alert_type", DataType::String)?
            && typed("window_start", DataType::Int64)?
            && typed("window_end", DataType::Int64)?
            && typed("revision", DataType::UInt32)?
            && typed("avg_hr", DataType::Float64)?
            && typed("min_hr", DataType::UInt16)?
            && typed("max_hr", DataType::UInt16)?
            && alerts.height() < u32::MAX as usize;
        if !fits {
            return Ok(None);
        }
        let (patients, kinds) = (
            alerts.column("patient_id")?.str()?,
            alerts.column("alert_type")?.str()?,
        );
        let (patients, kinds) = rayon::join(|| dedup::intern(patients), || dedup::intern(kinds));
        let pairs = patients.values.len().saturating_mul(kinds.values.len());
        if pairs > 4 * alerts.height() + 1024 {
            return Ok(None);
        }
        let series = |name: &str| -> Result<Series> {
            Ok(alerts.column(name)?.as_materialized_series().clone())
        };
        Ok(Some(Self {
            patients,
            kinds,
            start: series("window_start")?.i64()?.clone(),
            end: series("window_end")?.i64()?.clone(),
            revision: series("revision")?.u32()?.clone(),
            avg_hr: series("avg_hr")?.f64()?.clone(),
            min_hr: series("min_hr")?.u16()?.clone(),
            max_hr: series("max_hr")?.u16()?.clone(),
        }))
    }

    fn windows(&self) -> Windows<'_> {
        Windows {
            patient: &self.patients.codes,
            start: chunks(&self.start),
            end: chunks(&self.end),
            revision: chunks(&self.revision),
        }
    }

    /// Aggregates per patient and alert type, leaving out the `superseded` rows (ascending).
    ///
    /// One pass in row order with a running total per group: the groups are few, so their
    /// totals stay in cache while the columns stream by, where a group-by that gathers each
    /// group's rows would jump across the whole table once per aggregate.
    fn report(&self, superseded: &[u32]) -> Result<DataFrame> {
        let kinds = self.kinds.values.len();
        // Pair (patient, type) -> index into `groups`, in order of first appearance.
        let mut slot = vec![u32::MAX; self.patients.values.len() * kinds];
        let mut groups: Vec<Group> = Vec::new();
        let mut skip = superseded.iter().copied().peekable();
        let rows = self
            .patients
            .codes
            .iter()
            .zip(&self.kinds.codes)
            .zip(chunks(&self.start).iter_from(0))
            .zip(chunks(&self.avg_hr).iter_from(0))
            .zip(chunks(&self.min_hr).iter_from(0))
            .zip(chunks(&self.max_hr).iter_from(0));
        for (row, (((((&patient, &kind), start), avg_hr), min_hr), max_hr)) in rows.enumerate() {
            if skip.peek() == Some(&(row as u32)) {
                skip.next();
                continue;
            }
            let pair = patient as usize * kinds + kind as usize;
            if slot[pair] == u32::MAX {
                slot[pair] = groups.len() as u32;
                groups.push(Group::new(patient, kind, start));
            }
            groups[slot[pair] as usize].add(avg_hr, min_hr, max_hr, start);
        }
        let when = utc_ms();
        let columns = vec![
            StringChunked::from_iter_options(
                "patient_id".into(),
                groups
                    .iter()
                    .map(|g| self.patients.values[g.patient as usize].as_deref()),
            )
            .into_column(),
            StringChunked::from_iter_options(
                "alert_type".into(),
                groups
                    .iter()
                    .map(|g| self.kinds.values[g.kind as usize].as_deref()),
            )
            .into_column(),
            Column::new(
                "alert_count".into(),
                groups.iter().map(|g| g.count).collect::<Vec<_>>(),
            ),
            Column::new(
                "mean_avg_hr".into(),
                groups.iter().map(Group::mean).collect::<Vec<_>>(),
            ),
            Column::new(
                "min_hr".into(),
                groups.iter().map(|g| g.min_hr).collect::<Vec<_>>(),
            ),
            Column::new(
                "max_hr".into(),
                groups.iter().map(|g| g.max_hr).collect::<Vec<_>>(),
            ),
            Column::new(
                "first_window_start".into(),
                groups.iter().map(|g| g.first).collect::<Vec<_>>(),
            )
            .cast(&when)?,
            Column::new(
                "last_window_start".into(),
                groups.iter().map(|g| g.last).collect::<Vec<_>>(),
            )
            .cast(&when)?,
        ];
        let table = DataFrame::new(groups.len(), columns)?;
        Ok(table.sort(["patient_id", "alert_type"], SortMultipleOptions::default())?)
    }
}

/// The values of a column that [`CodedAlerts::new`] checked for nulls.
fn chunks<T: PolarsNumericType>(column: &ChunkedArray<T>) -> Chunks<'_, T::Native> {
    Chunks::new(column).expect("columns are checked for nulls")
}

/// Running figures of one report row.
struct Group {
    patient: u32,
    kind: u32,
    count: u64,
    /// Kahan-compensated sum of `avg_hr` with its running error, the summation Polars' own
    /// group-by mean uses, so both paths agree to the last bit on the same rows in the same
    /// order.
    sum: f64,
    error: f64,
    min_hr: u16,
    max_hr: u16,
    first: i64,
    last: i64,
}

impl Group {
    fn new(patient: u32, kind: u32, start: i64) -> Self {
        Self {
            patient,
            kind,
            count: 0,
            sum: 0.0,
            error: 0.0,
            min_hr: u16::MAX,
            max_hr: 0,
            first: start,
            last: start,
        }
    }

    fn add(&mut self, avg_hr: f64, min_hr: u16, max_hr: u16, start: i64) {
        self.count += 1;
        let y = avg_hr - self.error;
        let sum = self.sum + y;
        let error = (sum - self.sum) - y;
        self.sum = sum;
        // As Polars does: an infinite error would turn the next sum into NaN.
        if error.is_finite() {
            self.error = error;
        }
        self.min_hr = self.min_hr.min(min_hr);
        self.max_hr = self.max_hr.max(max_hr);
        self.first = self.first.min(start);
        self.last = self.last.max(start);
    }

    fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn plain_report(alerts: DataFrame) -> DataFrame {
        alert_stats_plain(alerts).unwrap()
    }

    type Row = (Option<u8>, i64, bool, u32, f64, u8);

    /// Alerts over few patients and windows, so that copies, revisions and sliding windows
    /// sharing a start all occur; `parts` splits the table into that many chunks.
    fn alerts(rows: &[Row], parts: usize) -> DataFrame {
        let kinds = ["normal", "tachycardia", "bradycardia"];
        let frame = |rows: &[Row]| {
            df!(
                "patient_id" => rows.iter().map(|r| r.0.map(|p| format!("p{p}"))).collect::<Vec<_>>(),
                "window_start" => rows.iter().map(|r| r.1 * 60_000).collect::<Vec<_>>(),
                "window_end" => rows
                    .iter()
                    .map(|r| r.1 * 60_000 + if r.2 { 30_000 } else { 60_000 })
                    .collect::<Vec<_>>(),
                "avg_hr" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                "min_hr" => rows.iter().map(|r| r.4 as u16 - 5).collect::<Vec<_>>(),
                "max_hr" => rows.iter().map(|r| r.4 as u16 + 5).collect::<Vec<_>>(),
                "count" => vec![60u64; rows.len()],
                "alert_type" => rows.iter().map(|r| kinds[r.5 as usize]).collect::<Vec<_>>(),
                "revision" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let size = rows.len().div_ceil(parts.max(1)).max(1);
        let mut chunks = rows.chunks(size);
        let mut df = frame(chunks.next().unwrap_or(&[]));
        for chunk in chunks {
            df.vstack_mut_owned(frame(chunk)).unwrap();
        }
        df
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            prop::option::weighted(0.95, 0u8..6),
            0i64..12,
            any::<bool>(),
            0u32..3,
            (40u32..150).prop_map(|x| f64::from(x) / 2.0),
            0u8..3,
        )
    }

    proptest! {
        #[test]
        fn fast_report_equals_the_plain_plan(rows in prop::collection::vec(row(), 0..300), parts in 1usize..4) {
            let alerts = alerts(&rows, parts);
            let fast = alert_stats(alerts.clone()).unwrap();
            let plain = plain_report(alerts);
            prop_assert!(fast.equals_missing(&plain), "fast {fast}\nplain {plain}");
            prop_assert_eq!(fast.schema().as_ref(), &stats_schema());
        }
    }

    #[test]
    fn repeats_count_once_and_distinct_windows_stay() {
        // p0's window 0 is written three times (a replay, then a revision), and a sliding
        // window with the same start but another end is a window of its own.
        let rows: Vec<Row> = vec![
            (Some(0), 0, false, 0, 100.0, 0),
            (Some(0), 0, false, 0, 100.0, 0),
            (Some(0), 0, true, 0, 90.0, 0),
            (Some(0), 0, false, 1, 110.0, 1),
            (Some(1), 0, false, 0, 70.0, 0),
        ];
        let stats = alert_stats(alerts(&rows, 2)).unwrap();
        let count = |i| stats.column("alert_count").unwrap().u64().unwrap().get(i);
        let mean = |i| stats.column("mean_avg_hr").unwrap().f64().unwrap().get(i);
        // p0: normal holds only the sliding window (the tumbling one became tachycardia).
        assert_eq!((count(0), mean(0)), (Some(1), Some(90.0)));
        assert_eq!((count(1), mean(1)), (Some(1), Some(110.0)));
        assert_eq!((count(2), mean(2)), (Some(1), Some(70.0)));
        assert_eq!(stats.height(), 3);
    }

    #[test]
    fn nulls_in_a_window_take_the_plain_plan_with_the_same_meaning() {
        let rows: Vec<Row> = (0..40)
            .map(|i| (Some(i % 3), i64::from(i % 7), false, 0, 80.0, 0))
            .collect();
        let mut with_null = alerts(&rows, 1);
        let starts: Int64Chunked = with_null
            .column("window_start")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| v.filter(|_| i % 5 != 0))
            .collect();
        with_null
            .with_column(starts.with_name("window_start".into()).into_column())
            .unwrap();
        assert!(CodedAlerts::new(&with_null).unwrap().is_none());
        assert!(
            alert_stats(with_null.clone())
                .unwrap()
                .equals_missing(&plain_report(with_null))
        );
    }
}
