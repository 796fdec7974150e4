//! The job's Prometheus metrics: a cheap, cloneable [`Metrics`] handle the driver updates, and
//! the text that `/metrics` serves ([`Metrics::render`]).
//!
//! Every series is named with the `hr_` prefix and a base unit (`_total`, `_seconds`,
//! `_bytes`, `_records`), except the standard `process_*` metrics that every Prometheus
//! exporter has. Labels are bounded by design: per partition (a topic has tens of them), per
//! outcome, alert type, episode kind or error code (a fixed vocabulary), never per patient, so
//! 10,000 patients make no more series than ten.
//!
//! Updating is a relaxed atomic add on a counter resolved when the handle was built; label
//! lookups happen only for per-partition gauges and dead-letter codes, which the driver sets
//! per batch or per tick, not per record.
//!
//! # Example
//! ```
//! use hr_pipeline::metrics::{Metrics, Outcome};
//!
//! let m = Metrics::new();
//! m.record(Outcome::Parsed);
//! m.record(Outcome::Invalid { code: "bad_json" });
//! m.set_consumer_lag(0, 42);
//! let text = m.render();
//! assert!(text.contains("hr_records_total{outcome=\"parsed\"} 1"));
//! assert!(text.contains("hr_invalid_records_total{code=\"bad_json\"} 1"));
//! assert!(text.contains("hr_consumer_lag_records{partition=\"0\"} 42"));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hr_model::{AlertType, EpisodeKind, EpisodeState};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

mod process;
mod series;

use process::ProcessCollector;
use series::{
    CodeLabel, FloatGauge, KafkaSeries, OutputSeries, PartitionLabel, PartitionSeries,
    RecordSeries, StateSeries,
};

/// The `Content-Type` of [`Metrics::render`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Distinct dead-letter codes kept as their own series; any further code is counted as
/// `other`. hr-model has about ten, so this only guards against a future caller passing text
/// that varies per record.
const MAX_CODES: usize = 32;

/// Where one input record went. Outcomes are exclusive, so the sum of
/// `hr_records_total` over outcomes is every record the job polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Parsed and added to its windows.
    Parsed,
    /// Sent to the dead-letter topic, with its stable error code (hr-model's codes,
    /// `clock_skew`, ...).
    Invalid {
        /// The code, also counted in `hr_invalid_records_total{code}`.
        code: &'a str,
    },
    /// Sent to the late topic: its windows had closed.
    Late,
    /// Not processed: below the restored offset (already in the state) or of a partition
    /// this instance does not own.
    Skipped,
}

impl Outcome<'_> {
    const fn index(self) -> usize {
        match self {
            Self::Parsed => 0,
            Self::Invalid { .. } => 1,
            Self::Late => 2,
            Self::Skipped => 3,
        }
    }
}

const OUTCOMES: [&str; 4] = ["parsed", "invalid", "late", "skipped"];

/// How a commit (one Kafka transaction) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitResult {
    /// Committed: outputs, state and offsets are visible.
    Ok,
    /// Aborted: the job went back to the last commit.
    Aborted,
}

/// The job's metrics. Cloning is cheap (an `Arc`); every clone updates the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

struct Inner {
    registry: Registry,
    records: RecordSeries,
    /// Codes given a series of their own so far (for the [`MAX_CODES`] cap).
    codes: AtomicUsize,
    outputs: OutputSeries,
    partitions: PartitionSeries,
    state: StateSeries,
    kafka: KafkaSeries,
}

impl Metrics {
    /// Every series registered, counters at zero, no partition yet.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let records = RecordSeries::register(&mut registry);
        let outputs = OutputSeries::register(&mut registry);
        let partitions = PartitionSeries::register(&mut registry);
        let state = StateSeries::register(&mut registry);
        let kafka = KafkaSeries::register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));

        Self {
            inner: Arc::new(Inner {
                registry,
                records,
                codes: AtomicUsize::new(0),
                outputs,
                partitions,
                state,
                kafka,
            }),
        }
    }

    /// Counts one input record by where it went.
    pub fn record(&self, outcome: Outcome<'_>) {
        self.add_records(outcome, 1);
    }

    /// Counts `n` input records with the same outcome (a batch's tally).
    pub fn add_records(&self, outcome: Outcome<'_>, n: u64) {
        if n == 0 {
            return;
        }
        self.inner.records.records[outcome.index()].inc_by(n);
        if let Outcome::Invalid { code } = outcome {
            let mut label = CodeLabel {
                code: code.to_owned(),
            };
            if let Some(c) = self.inner.records.invalid.get(&label) {
                c.inc_by(n);
                return;
            }
            if self.inner.codes.fetch_add(1, Ordering::Relaxed) >= MAX_CODES {
                label.code = "other".to_owned();
            }
            self.inner.records.invalid.get_or_create(&label).inc_by(n);
        }
    }

    /// Counts `n` fired windows.
    pub fn windows_fired(&self, n: u64) {
        self.inner.outputs.windows_fired.inc_by(n);
    }

    /// Counts one alert of `alert_type`.
    pub fn alert(&self, alert_type: AlertType) {
        let i = AlertType::ALL
            .iter()
            .position(|t| *t == alert_type)
            .unwrap_or(0);
        self.inner.outputs.alerts[i].inc();
    }

    /// Counts one episode record.
    pub fn episode(&self, state: EpisodeState, kind: EpisodeKind) {
        let s = match state {
            EpisodeState::Raised => 0,
            EpisodeState::Cleared => 1,
        };
        let k = EpisodeKind::ALL
            .iter()
            .position(|x| *x == kind)
            .unwrap_or(0);
        self.inner.outputs.episodes[s][k].inc();
    }

    /// Counts `n` output records replaced by a stand-in because they were too large.
    pub fn records_replaced(&self, n: u64) {
        self.inner.outputs.replaced.inc_by(n);
    }

    /// Sets `partition`'s consumer lag in records.
    pub fn set_consumer_lag(&self, partition: i32, records: i64) {
        self.inner
            .partitions
            .lag
            .get_or_create(&PartitionLabel { partition })
            .set(records);
    }

    /// Sets `partition`'s committed offset (the next record a restart reads).
    pub fn set_committed_offset(&self, partition: i32, offset: i64) {
        self.inner
            .partitions
            .committed
            .get_or_create(&PartitionLabel { partition })
            .set(offset);
    }

    /// Sets `partition`'s watermark, epoch milliseconds; `i64::MAX` (a bounded input's end)
    /// shows as `+Inf`. `None` (no watermark yet) removes the series.
    pub fn set_watermark(&self, partition: i32, watermark_ms: Option<i64>) {
        set_time(&self.inner.partitions.watermark, partition, watermark_ms);
    }

    /// Sets the largest event time seen in `partition`, epoch milliseconds; `None` removes
    /// the series.
    pub fn set_max_event_time(&self, partition: i32, event_time_ms: Option<i64>) {
        set_time(
            &self.inner.partitions.max_event_time,
            partition,
            event_time_ms,
        );
    }

    /// Drops every per-partition series of `partition` (after a revocation), so a partition
    /// that moved to another instance is not reported by two.
    pub fn remove_partition(&self, partition: i32) {
        let label = PartitionLabel { partition };
        self.inner.partitions.lag.remove(&label);
        self.inner.partitions.committed.remove(&label);
        self.inner.partitions.watermark.remove(&label);
        self.inner.partitions.max_event_time.remove(&label);
    }

    /// Sets the number of key-windows held in state.
    pub fn set_open_windows(&self, n: u64) {
        self.inner.state.open_windows.set(saturate(n));
    }

    /// Sets the number of keys with state.
    pub fn set_keys(&self, n: u64) {
        self.inner.state.keys.set(saturate(n));
    }

    /// Counts a commit by result; a successful one's duration goes into
    /// `hr_commit_duration_seconds`.
    pub fn observe_commit(&self, result: CommitResult, took: Duration) {
        match result {
            CommitResult::Ok => {
                self.inner.kafka.commits[0].inc();
                self.inner.kafka.commit_duration.observe(took.as_secs_f64());
            }
            CommitResult::Aborted => {
                self.inner.kafka.commits[1].inc();
            }
        }
    }

    /// Records how long restoring an assignment from the changelog took.
    pub fn observe_restore(&self, took: Duration) {
        self.inner
            .kafka
            .restore_duration
            .observe(took.as_secs_f64());
    }

    /// Counts `bytes` of state written to the changelog.
    pub fn add_changelog_bytes(&self, bytes: u64) {
        self.inner.kafka.changelog_bytes.inc_by(bytes);
    }

    /// Records one alert's latency: from the watermark passing its window's end to the
    /// broker acknowledging it (its transaction committed, or its send acknowledged with
    /// at-least-once).
    pub fn observe_alert_latency(&self, latency: Duration) {
        self.inner
            .kafka
            .alert_latency
            .observe(latency.as_secs_f64());
    }

    /// Whether the Kafka cluster answers.
    pub fn set_broker_up(&self, up: bool) {
        self.inner.kafka.broker_up.set(i64::from(up));
    }

    /// The Prometheus text (format 0.0.4) of every series, process metrics read now.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail; the encoder only reports fmt errors.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn set_time(family: &Family<PartitionLabel, FloatGauge>, partition: i32, ms: Option<i64>) {
    let label = PartitionLabel { partition };
    match ms {
        None => {
            family.remove(&label);
        }
        Some(ms) => {
            let seconds = match ms {
                i64::MAX => f64::INFINITY,
                i64::MIN => f64::NEG_INFINITY,
                ms => ms as f64 / 1000.0,
            };
            family.get_or_create(&label).set(seconds);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the one sample named exactly `series` (name and labels) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Asserts the value of every `(series, value)` in `text`.
    fn assert_samples(text: &str, expected: &[(&str, f64)]) {
        for (series, value) in expected {
            assert_eq!(sample(text, series), Some(*value), "{series} in\n{text}");
        }
    }

    #[test]
    fn records_are_counted_by_outcome_and_invalid_ones_by_code() {
        let m = Metrics::new();
        m.record(Outcome::Parsed);
        m.add_records(Outcome::Parsed, 4);
        m.record(Outcome::Invalid { code: "bad_json" });
        m.record(Outcome::Invalid { code: "bad_json" });
        m.record(Outcome::Invalid { code: "clock_skew" });
        m.record(Outcome::Late);
        m.add_records(Outcome::Skipped, 3);
        m.add_records(Outcome::Late, 0);
        let t = m.render();
        assert_samples(
            &t,
            &[
                (r#"hr_records_total{outcome="parsed"}"#, 5.0),
                (r#"hr_records_total{outcome="invalid"}"#, 3.0),
                (r#"hr_records_total{outcome="late"}"#, 1.0),
                (r#"hr_records_total{outcome="skipped"}"#, 3.0),
                (r#"hr_invalid_records_total{code="bad_json"}"#, 2.0),
                (r#"hr_invalid_records_total{code="clock_skew"}"#, 1.0),
            ],
        );
        assert!(t.contains("# TYPE hr_records_total counter"), "{t}");
    }

    #[test]
    fn series_exist_at_zero_before_anything_happens() {
        // Dashboards and rate() need the series from the first scrape, not from the first event.
        let t = Metrics::new().render();
        assert_samples(
            &t,
            &[
                (r#"hr_records_total{outcome="parsed"}"#, 0.0),
                (r#"hr_records_total{outcome="skipped"}"#, 0.0),
                (r#"hr_alerts_total{type="insufficient_data"}"#, 0.0),
                (
                    r#"hr_episodes_total{state="cleared",kind="signal_loss"}"#,
                    0.0,
                ),
                (r#"hr_commits_total{result="aborted"}"#, 0.0),
                ("hr_windows_fired_total", 0.0),
                ("hr_records_replaced_total", 0.0),
                ("hr_changelog_bytes_total", 0.0),
                ("hr_open_windows", 0.0),
                ("hr_keys", 0.0),
                ("hr_commit_duration_seconds_count", 0.0),
                ("hr_restore_duration_seconds_count", 0.0),
                ("hr_alert_latency_seconds_count", 0.0),
                ("hr_broker_up", 1.0),
            ],
        );
    }

    #[test]
    fn an_unbounded_vocabulary_of_codes_is_capped() {
        let m = Metrics::new();
        for i in 0..100 {
            m.record(Outcome::Invalid {
                code: &format!("code_{i}"),
            });
        }
        let t = m.render();
        let series = t
            .lines()
            .filter(|l| l.starts_with("hr_invalid_records_total{"))
            .count();
        assert_eq!(series, MAX_CODES + 1, "{t}");
        assert_samples(
            &t,
            &[
                (
                    r#"hr_invalid_records_total{code="other"}"#,
                    (100 - MAX_CODES) as f64,
                ),
                (r#"hr_records_total{outcome="invalid"}"#, 100.0),
            ],
        );
        // A code already seen keeps its own series after the cap.
        m.record(Outcome::Invalid { code: "code_0" });
        assert_samples(
            &m.render(),
            &[(r#"hr_invalid_records_total{code="code_0"}"#, 2.0)],
        );
    }

    #[test]
    fn windows_alerts_episodes_and_replacements() {
        let m = Metrics::new();
        m.windows_fired(7);
        m.alert(AlertType::Tachycardia);
        m.alert(AlertType::Tachycardia);
        m.alert(AlertType::InsufficientData);
        m.episode(EpisodeState::Raised, EpisodeKind::SignalLoss);
        m.episode(EpisodeState::Cleared, EpisodeKind::Bradycardia);
        m.records_replaced(1);
        assert_samples(
            &m.render(),
            &[
                ("hr_windows_fired_total", 7.0),
                (r#"hr_alerts_total{type="tachycardia"}"#, 2.0),
                (r#"hr_alerts_total{type="bradycardia"}"#, 0.0),
                (r#"hr_alerts_total{type="insufficient_data"}"#, 1.0),
                (
                    r#"hr_episodes_total{state="raised",kind="signal_loss"}"#,
                    1.0,
                ),
                (
                    r#"hr_episodes_total{state="cleared",kind="bradycardia"}"#,
                    1.0,
                ),
                (
                    r#"hr_episodes_total{state="raised",kind="bradycardia"}"#,
                    0.0,
                ),
                ("hr_records_replaced_total", 1.0),
            ],
        );
    }

    #[test]
    fn partition_gauges_are_set_in_base_units_and_removed_on_revocation() {
        let m = Metrics::new();
        m.set_consumer_lag(0, 12);
        m.set_consumer_lag(2, 0);
        m.set_committed_offset(0, 1000);
        m.set_watermark(0, Some(1_763_536_523_123));
        m.set_watermark(2, Some(i64::MAX));
        m.set_max_event_time(0, Some(1_763_536_528_124));
        assert_samples(
            &m.render(),
            &[
                (r#"hr_consumer_lag_records{partition="0"}"#, 12.0),
                (r#"hr_consumer_lag_records{partition="2"}"#, 0.0),
                (r#"hr_committed_offset{partition="0"}"#, 1000.0),
                (r#"hr_watermark_seconds{partition="0"}"#, 1_763_536_523.123),
                (r#"hr_watermark_seconds{partition="2"}"#, f64::INFINITY),
                (
                    r#"hr_max_event_time_seconds{partition="0"}"#,
                    1_763_536_528.124,
                ),
            ],
        );
        m.set_watermark(2, None);
        m.remove_partition(0);
        let t = m.render();
        assert!(!t.contains(r#"partition="0""#), "{t}");
        assert!(!t.contains(r#"hr_watermark_seconds{partition="2"}"#), "{t}");
        assert_samples(&t, &[(r#"hr_consumer_lag_records{partition="2"}"#, 0.0)]);
    }

    #[test]
    fn clones_share_series() {
        let m = Metrics::new();
        let other = m.clone();
        std::thread::spawn(move || other.add_records(Outcome::Parsed, 10))
            .join()
            .unwrap();
        assert_samples(
            &m.render(),
            &[(r#"hr_records_total{outcome="parsed"}"#, 10.0)],
        );
    }

    #[test]
    fn state_commits_restores_latency_and_broker() {
        let m = Metrics::new();
        m.set_open_windows(1500);
        m.set_keys(1000);
        m.observe_commit(CommitResult::Ok, Duration::from_millis(3));
        m.observe_commit(CommitResult::Ok, Duration::from_millis(40));
        m.observe_commit(CommitResult::Aborted, Duration::from_secs(10));
        m.observe_restore(Duration::from_millis(250));
        m.add_changelog_bytes(4096);
        m.add_changelog_bytes(100);
        m.observe_alert_latency(Duration::from_millis(180));
        m.set_broker_up(false);
        let t = m.render();
        assert_samples(
            &t,
            &[
                ("hr_open_windows", 1500.0),
                ("hr_keys", 1000.0),
                (r#"hr_commits_total{result="ok"}"#, 2.0),
                (r#"hr_commits_total{result="aborted"}"#, 1.0),
                // Only successful commits are timed: 3 ms is above the 2 ms bucket and within
                // 4 ms, 40 ms within 64 ms.
                ("hr_commit_duration_seconds_count", 2.0),
                (r#"hr_commit_duration_seconds_bucket{le="0.002"}"#, 0.0),
                (r#"hr_commit_duration_seconds_bucket{le="0.004"}"#, 1.0),
                (r#"hr_commit_duration_seconds_bucket{le="0.064"}"#, 2.0),
                (r#"hr_commit_duration_seconds_bucket{le="+Inf"}"#, 2.0),
                ("hr_restore_duration_seconds_count", 1.0),
                ("hr_changelog_bytes_total", 4196.0),
                ("hr_alert_latency_seconds_count", 1.0),
                ("hr_alert_latency_seconds_sum", 0.18),
                ("hr_broker_up", 0.0),
            ],
        );
        let sum = sample(&t, "hr_commit_duration_seconds_sum").unwrap();
        assert!((sum - 0.043).abs() < 1e-9, "{sum}");
        assert!(
            t.contains("# TYPE hr_alert_latency_seconds histogram"),
            "{t}"
        );
    }

    #[test]
    fn every_hr_series_is_named_with_a_base_unit_or_is_a_count() {
        let m = Metrics::new();
        // Labelled families show once they have a series.
        m.record(Outcome::Invalid { code: "bad_json" });
        m.set_consumer_lag(0, 1);
        m.set_committed_offset(0, 1);
        m.set_watermark(0, Some(1));
        m.set_max_event_time(0, Some(1));
        let t = m.render();
        let names: std::collections::BTreeSet<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .filter(|n| n.starts_with("hr_"))
            .collect();
        assert_eq!(names.len(), 18, "{names:?}");
        for n in names {
            assert!(
                [
                    "_total", "_seconds", "_records", "_offset", "_windows", "_keys", "_up"
                ]
                .iter()
                .any(|s| n.ends_with(s)),
                "{n}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_read_at_scrape_time() {
        let t = Metrics::new().render();
        let rss = sample(&t, "process_resident_memory_bytes").expect(&t);
        assert!(
            rss > 1e6,
            "a test binary holds more than 1 MB resident: {rss}"
        );
        let fds = sample(&t, "process_open_fds").unwrap();
        assert!(fds >= 3.0, "{fds}");
        let before = sample(&t, "process_cpu_seconds_total").unwrap();
        // Spin until the counter shows 0.1 s more CPU: on a loaded machine this thread may get
        // little of the wall-clock time, so the bound is on the counter, not on a sleep.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        let after = loop {
            let spin = std::time::Instant::now();
            while spin.elapsed() < Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = sample(&Metrics::new().render(), "process_cpu_seconds_total").unwrap();
            if now >= before + 0.1 || started.elapsed() > Duration::from_secs(60) {
                break now;
            }
        };
        assert!(after >= before + 0.1, "{before} -> {after}");
        assert!(
            t.contains("# TYPE process_cpu_seconds_total counter"),
            "{t}"
        );
    }
}
