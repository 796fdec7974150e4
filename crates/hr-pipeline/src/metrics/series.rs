//! The `hr_*` series: their names, help texts, labels and buckets, registered family by family
//! in the order `/metrics` lists them.

use std::sync::atomic::AtomicU64;

use hr_model::{AlertType, EpisodeKind, EpisodeState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use super::OUTCOMES;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CodeLabel {
    pub(super) code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EpisodeLabels {
    state: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PartitionLabel {
    pub(super) partition: i32,
}

pub(super) type FloatGauge = Gauge<f64, AtomicU64>;

/// Registers `metric` under `name` and returns it, sharing its series with the registry.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// Input records: by outcome, and the dead letters by code.
pub(super) struct RecordSeries {
    /// By [`super::Outcome::index`].
    pub(super) records: [Counter; 4],
    pub(super) invalid: Family<CodeLabel, Counter>,
}

impl RecordSeries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let records = Family::<OutcomeLabel, Counter>::default();
        let records_by =
            OUTCOMES.map(|outcome| records.get_or_create_owned(&OutcomeLabel { outcome }));
        registry.register(
            "hr_records",
            "Input records by outcome: parsed (added to windows), invalid (dead-letter topic), \
             late (late topic), skipped (already in the restored state, or not owned)",
            records,
        );
        let invalid = registered(
            registry,
            "hr_invalid_records",
            "Records sent to the dead-letter topic, by error code",
            Family::default(),
        );
        Self {
            records: records_by,
            invalid,
        }
    }
}

/// What fired windows produced: windows, alerts, episode records, and output records replaced.
pub(super) struct OutputSeries {
    pub(super) windows_fired: Counter,
    pub(super) alerts: [Counter; AlertType::ALL.len()],
    /// `[raised, cleared] x EpisodeKind::ALL`.
    pub(super) episodes: [[Counter; EpisodeKind::ALL.len()]; 2],
    pub(super) replaced: Counter,
}

impl OutputSeries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let windows_fired = registered(
            registry,
            "hr_windows_fired",
            "Windows fired, re-firings within allowed lateness included",
            Counter::default(),
        );
        let alerts = Family::<TypeLabel, Counter>::default();
        let alerts_by =
            AlertType::ALL.map(|t| alerts.get_or_create_owned(&TypeLabel { r#type: t.as_str() }));
        registry.register("hr_alerts", "Alerts produced, by alert type", alerts);
        let episodes = Family::<EpisodeLabels, Counter>::default();
        let episodes_by = [EpisodeState::Raised, EpisodeState::Cleared].map(|state| {
            EpisodeKind::ALL.map(|kind| {
                episodes.get_or_create_owned(&EpisodeLabels {
                    state: state.as_str(),
                    kind: kind.as_str(),
                })
            })
        });
        registry.register(
            "hr_episodes",
            "Episode records produced, by state (raised, cleared) and kind",
            episodes,
        );
        let replaced = registered(
            registry,
            "hr_records_replaced",
            "Output records too large for their topic, replaced by a small dead letter",
            Counter::default(),
        );
        Self {
            windows_fired,
            alerts: alerts_by,
            episodes: episodes_by,
            replaced,
        }
    }
}

/// Per owned partition: how far the job has read and committed, and its event-time clock.
pub(super) struct PartitionSeries {
    pub(super) lag: Family<PartitionLabel, Gauge>,
    pub(super) committed: Family<PartitionLabel, Gauge>,
    pub(super) watermark: Family<PartitionLabel, FloatGauge>,
    pub(super) max_event_time: Family<PartitionLabel, FloatGauge>,
}

impl PartitionSeries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        Self {
            lag: registered(
                registry,
                "hr_consumer_lag_records",
                "Records between the consumer's position and the end of the partition",
                Family::default(),
            ),
            committed: registered(
                registry,
                "hr_committed_offset",
                "Last committed offset (the next record to read) of each owned partition",
                Family::default(),
            ),
            watermark: registered(
                registry,
                "hr_watermark_seconds",
                "Event-time watermark of each owned partition, Unix seconds (+Inf at the end of a \
                 bounded input)",
                Family::default(),
            ),
            max_event_time: registered(
                registry,
                "hr_max_event_time_seconds",
                "Largest event time seen in each owned partition, Unix seconds",
                Family::default(),
            ),
        }
    }
}

/// The window state held now.
pub(super) struct StateSeries {
    pub(super) open_windows: Gauge,
    pub(super) keys: Gauge,
}

impl StateSeries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        Self {
            open_windows: registered(
                registry,
                "hr_open_windows",
                "Key-windows held in state: pending, or fired and still open to late readings",
                Gauge::default(),
            ),
            keys: registered(
                registry,
                "hr_keys",
                "Keys (patients) with state",
                Gauge::default(),
            ),
        }
    }
}

/// The job's work with the cluster: commits, restores, changelog writes, alerts acknowledged,
/// and whether the cluster answers.
pub(super) struct KafkaSeries {
    pub(super) commit_duration: Histogram,
    pub(super) restore_duration: Histogram,
    pub(super) changelog_bytes: Counter,
    pub(super) alert_latency: Histogram,
    /// `[ok, aborted]`.
    pub(super) commits: [Counter; 2],
    pub(super) broker_up: Gauge,
}

impl KafkaSeries {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let commit_duration = registered(
            registry,
            "hr_commit_duration_seconds",
            "Duration of successful commits (one transaction: outputs, changelog, offsets)",
            Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        );
        let restore_duration = registered(
            registry,
            "hr_restore_duration_seconds",
            "Duration of restoring assigned partitions from the changelog",
            Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        );
        let changelog_bytes = registered(
            registry,
            "hr_changelog_bytes",
            "State bytes written to the changelog topic (keys and values)",
            Counter::default(),
        );
        let alert_latency = registered(
            registry,
            "hr_alert_latency_seconds",
            "From the watermark passing a window's end to its alert acknowledged by the broker",
            Histogram::new(exponential_buckets(0.005, 2.0, 14)),
        );
        let commits = Family::<ResultLabel, Counter>::default();
        let commits_by =
            ["ok", "aborted"].map(|result| commits.get_or_create_owned(&ResultLabel { result }));
        registry.register("hr_commits", "Commits by result (ok, aborted)", commits);
        let broker_up = registered(
            registry,
            "hr_broker_up",
            "1 while the Kafka cluster answers, 0 during an outage",
            Gauge::default(),
        );
        broker_up.set(1);
        Self {
            commit_duration,
            restore_duration,
            changelog_bytes,
            alert_latency,
            commits: commits_by,
            broker_up,
        }
    }
}
