//! Window statistics and the alert record published for every fired window.

use serde::{Deserialize, Serialize};

use crate::Thresholds;

/// What a window's average heart rate says about the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    /// The average is above [`Thresholds::tachycardia_above`].
    Tachycardia,
    /// The average is below [`Thresholds::bradycardia_below`].
    Bradycardia,
    /// Neither threshold is crossed (the boundaries themselves are normal).
    Normal,
    /// The window holds fewer readings than [`Thresholds::min_readings`], too few to say
    /// anything about the patient; its average is reported but not classified.
    InsufficientData,
}

impl AlertType {
    /// Every alert type, in declaration order (for metrics that pre-register one counter each).
    pub const ALL: [Self; 4] = [
        Self::Tachycardia,
        Self::Bradycardia,
        Self::Normal,
        Self::InsufficientData,
    ];

    /// The snake_case name used in JSON and in the batch report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tachycardia => "tachycardia",
            Self::Bradycardia => "bradycardia",
            Self::Normal => "normal",
            Self::InsufficientData => "insufficient_data",
        }
    }

    /// `true` for tachycardia and bradycardia; `insufficient_data` is not abnormal, since
    /// nothing is known about the patient from such a window.
    pub const fn is_abnormal(self) -> bool {
        matches!(self, Self::Tachycardia | Self::Bradycardia)
    }
}

impl std::fmt::Display for AlertType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a window average: above the tachycardia threshold, below the bradycardia
/// threshold, or normal. Exactly 100 and exactly 50 are normal with the default thresholds.
///
/// This looks at the average only; [`classify_stats`] is the decision for a window, which
/// also applies [`Thresholds::min_readings`].
///
/// # Example
/// ```
/// use hr_model::{classify_window, AlertType, Thresholds};
/// let t = Thresholds::default();
/// assert_eq!(classify_window(100.5, &t), AlertType::Tachycardia);
/// assert_eq!(classify_window(100.0, &t), AlertType::Normal);
/// assert_eq!(classify_window(49.9, &t), AlertType::Bradycardia);
/// ```
pub fn classify_window(avg: f64, thresholds: &Thresholds) -> AlertType {
    if avg > thresholds.tachycardia_above {
        AlertType::Tachycardia
    } else if avg < thresholds.bradycardia_below {
        AlertType::Bradycardia
    } else {
        AlertType::Normal
    }
}

/// The running statistics of one window: what the streaming engine accumulates per event and
/// merges across panes. Integer sums keep the average exact and independent of event order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HrStats {
    /// Sum of heart rates in the window.
    pub sum: u64,
    /// Number of readings.
    pub count: u64,
    /// Lowest reading.
    pub min: u16,
    /// Highest reading.
    pub max: u16,
}

impl HrStats {
    /// Statistics of no readings; the identity of [`HrStats::merge`].
    pub const EMPTY: Self = Self {
        sum: 0,
        count: 0,
        min: u16::MAX,
        max: 0,
    };

    /// Adds one reading.
    #[inline]
    pub fn add(&mut self, bpm: u16) {
        self.sum += u64::from(bpm);
        self.count += 1;
        self.min = self.min.min(bpm);
        self.max = self.max.max(bpm);
    }

    /// Folds another window's (or pane's) statistics into this one.
    #[inline]
    pub fn merge(&mut self, other: &Self) {
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The mean heart rate, or `None` for an empty window.
    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

impl Default for HrStats {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Classifies a window: `insufficient_data` when it holds fewer than
/// [`Thresholds::min_readings`] readings (an empty window always does, as `min_readings` is at
/// least 1 in valid thresholds), otherwise [`classify_window`] of its average.
///
/// This is the one place the decision is made; [`Alert::from_stats`] uses it.
///
/// # Example
/// ```
/// use hr_model::{classify_stats, AlertType, HrStats, Thresholds};
/// let t = Thresholds::new(100.0, 50.0, 3)?;
/// let mut stats = HrStats::EMPTY;
/// stats.add(140);
/// stats.add(150);
/// assert_eq!(classify_stats(&stats, &t), AlertType::InsufficientData);
/// stats.add(130);
/// assert_eq!(classify_stats(&stats, &t), AlertType::Tachycardia);
/// # Ok::<(), hr_model::ThresholdError>(())
/// ```
pub fn classify_stats(stats: &HrStats, thresholds: &Thresholds) -> AlertType {
    match stats.avg() {
        Some(avg) if stats.count >= thresholds.min_readings => classify_window(avg, thresholds),
        _ => AlertType::InsufficientData,
    }
}

/// One fired window for one patient, as published to `heart_rate_alerts` (key = `patient_id`)
/// and written to the alert JSONL files.
///
/// `window_start` / `window_end` are epoch milliseconds, the window being `[start, end)`.
/// `revision` is 0 for the first firing and grows by one each time allowed lateness re-fires it,
/// so a consumer can deduplicate on `(patient_id, window_start, revision)`.
///
/// `thresholds` records the thresholds the window was classified with (after any patient
/// profile), so an alert explains itself. Alerts written before this field existed have none;
/// they read back as `None` rather than as a guess, and write back out without the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The patient the window belongs to.
    pub patient_id: String,
    /// Inclusive start of the window, epoch milliseconds.
    pub window_start: i64,
    /// Exclusive end of the window, epoch milliseconds.
    pub window_end: i64,
    /// Mean heart rate in the window.
    pub avg_hr: f64,
    /// Lowest heart rate in the window.
    pub min_hr: u16,
    /// Highest heart rate in the window.
    pub max_hr: u16,
    /// Number of readings in the window.
    pub count: u64,
    /// Classification of the window: of `avg_hr`, or `insufficient_data` when `count` is
    /// below the thresholds' `min_readings`.
    pub alert_type: AlertType,
    /// 0 for the first firing, +1 for each re-firing within allowed lateness.
    pub revision: u32,
    /// The thresholds `alert_type` was decided with; `None` only for alerts read from files
    /// written before alerts recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
}

impl Alert {
    /// Builds the alert for a fired window from its statistics, classifying it with
    /// [`classify_stats`] and recording `thresholds` in it.
    ///
    /// # Panics
    /// Panics if `stats` is empty: the engine never fires a window without readings.
    pub fn from_stats(
        patient_id: impl Into<String>,
        window_start: i64,
        window_end: i64,
        stats: &HrStats,
        revision: u32,
        thresholds: &Thresholds,
    ) -> Self {
        let avg_hr = stats
            .avg()
            .expect("a fired window holds at least one reading");
        Self {
            patient_id: patient_id.into(),
            window_start,
            window_end,
            avg_hr,
            min_hr: stats.min,
            max_hr: stats.max,
            count: stats.count,
            alert_type: classify_stats(stats, thresholds),
            revision,
            thresholds: Some(*thresholds),
        }
    }

    /// The alert as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an alert always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_threshold_boundaries() {
        let t = Thresholds::default();
        let cases = [
            (100.0, AlertType::Normal),
            (100.0001, AlertType::Tachycardia),
            (101.0, AlertType::Tachycardia),
            (50.0, AlertType::Normal),
            (49.9999, AlertType::Bradycardia),
            (75.0, AlertType::Normal),
        ];
        for (avg, expected) in cases {
            assert_eq!(classify_window(avg, &t), expected, "{avg}");
        }
        let custom = Thresholds::new(120.0, 40.0, 1).unwrap();
        assert_eq!(classify_window(110.0, &custom), AlertType::Normal);
        assert_eq!(classify_window(45.0, &custom), AlertType::Normal);
        assert_eq!(classify_window(39.0, &custom), AlertType::Bradycardia);
    }

    #[test]
    fn stats_merge_is_order_independent() {
        let readings = [94u16, 120, 51, 49, 300];
        let mut all = HrStats::default();
        readings.iter().for_each(|&r| all.add(r));
        let (mut left, mut right) = (HrStats::EMPTY, HrStats::EMPTY);
        readings[..2].iter().for_each(|&r| left.add(r));
        readings[2..].iter().for_each(|&r| right.add(r));
        right.merge(&left);
        assert_eq!(right, all);
        assert_eq!((all.min, all.max, all.count, all.sum), (49, 300, 5, 614));
        assert_eq!(all.avg(), Some(122.8));
        assert_eq!(HrStats::EMPTY.avg(), None);
    }

    #[test]
    fn alert_json_is_readable_by_other_tools() {
        let mut stats = HrStats::EMPTY;
        stats.add(100);
        stats.add(103);
        let alert = Alert::from_stats("p001", 60_000, 120_000, &stats, 1, &Thresholds::DEFAULT);
        assert_eq!(
            alert.to_json(),
            r#"{"patient_id":"p001","window_start":60000,"window_end":120000,"avg_hr":101.5,"min_hr":100,"max_hr":103,"count":2,"alert_type":"tachycardia","revision":1,"thresholds":{"tachycardia_above":100.0,"bradycardia_below":50.0,"min_readings":1}}"#
        );
        let back: Alert = serde_json::from_str(&alert.to_json()).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn an_alert_line_from_before_thresholds_reads_and_writes_back_unchanged() {
        let old = r#"{"patient_id":"p001","window_start":60000,"window_end":120000,"avg_hr":101.5,"min_hr":100,"max_hr":103,"count":2,"alert_type":"tachycardia","revision":0}"#;
        let alert: Alert = serde_json::from_str(old).unwrap();
        assert_eq!(alert.thresholds, None);
        assert_eq!(alert.alert_type, AlertType::Tachycardia);
        assert_eq!(alert.to_json(), old);
    }

    #[test]
    fn too_few_readings_are_insufficient_data_whatever_the_average() {
        let t = Thresholds::new(100.0, 50.0, 3).unwrap();
        for bpm in [30u16, 75, 180] {
            let mut stats = HrStats::EMPTY;
            stats.add(bpm);
            stats.add(bpm);
            let alert = Alert::from_stats("p1", 0, 60_000, &stats, 0, &t);
            assert_eq!(alert.alert_type, AlertType::InsufficientData, "{bpm}");
            assert_eq!(alert.avg_hr, f64::from(bpm));
            assert_eq!(alert.thresholds, Some(t));
            assert!(!alert.alert_type.is_abnormal());
            stats.add(bpm);
            assert_eq!(
                classify_stats(&stats, &t),
                classify_window(f64::from(bpm), &t),
                "{bpm}"
            );
        }
        assert_eq!(
            classify_stats(&HrStats::EMPTY, &Thresholds::DEFAULT),
            AlertType::InsufficientData
        );
    }

    #[test]
    fn alert_type_names_match_serde() {
        for t in AlertType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<AlertType>(&json).unwrap(), t);
        }
        let abnormal: Vec<_> = AlertType::ALL
            .into_iter()
            .filter(|t| t.is_abnormal())
            .collect();
        assert_eq!(abnormal, [AlertType::Tachycardia, AlertType::Bradycardia]);
    }
}
