//! The alert report: per patient and alert type, how many alerts and what they looked like.

use polars::prelude::*;

use crate::error::Result;

/// The columns of the report [`alert_stats`] computes.
///
/// `first_window_start` / `last_window_start` are UTC datetimes (millisecond precision, stored
/// without a zone name: every timestamp in hr-stream is UTC).
pub fn stats_schema() -> Schema {
    Schema::from_iter([
        Field::new("patient_id".into(), DataType::String),
        Field::new("alert_type".into(), DataType::String),
        Field::new("alert_count".into(), DataType::UInt64),
        Field::new("mean_avg_hr".into(), DataType::Float64),
        Field::new("min_hr".into(), DataType::UInt16),
        Field::new("max_hr".into(), DataType::UInt16),
        Field::new(
            "first_window_start".into(),
            DataType::Datetime(TimeUnit::Milliseconds, None),
        ),
        Field::new(
            "last_window_start".into(),
            DataType::Datetime(TimeUnit::Milliseconds, None),
        ),
    ])
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
/// in the seed's Spark report), not a mean weighted by readings.
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
    let any_revision = alerts
        .column("revision")?
        .as_materialized_series()
        .max::<u32>()?
        .is_some_and(|m| m > 0);
    let window = by_name(["patient_id", "window_start", "window_end"], true, false);
    // Sorting by revision costs more than the whole aggregation; when no window was ever
    // re-fired, the copies of a window are identical and any one will do.
    let latest = if any_revision {
        latest_revisions(alerts.lazy())
    } else {
        alerts.lazy().unique(Some(window), UniqueKeepStrategy::Any)
    };
    let when = DataType::Datetime(TimeUnit::Milliseconds, None);
    let out = latest
        .group_by([col("patient_id"), col("alert_type")])
        .agg([
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
        .sort(["patient_id", "alert_type"], SortMultipleOptions::default())
        .collect()?;
    Ok(out)
}
