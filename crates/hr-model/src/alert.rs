//! Window statistics and the alert record published for every fired window.

use serde::{Deserialize, Serialize};

/// What a window's average heart rate says about the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertType {
    /// The average is above [`Thresholds::tachycardia_above`].
    Tachycardia,
    /// The average is below [`Thresholds::bradycardia_below`].
    Bradycardia,
    /// Neither threshold is crossed (the boundaries themselves are normal).
    Normal,
}

impl AlertType {
    /// The lowercase name used in JSON and in the batch report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tachycardia => "tachycardia",
            Self::Bradycardia => "bradycardia",
            Self::Normal => "normal",
        }
    }

    /// `true` for tachycardia and bradycardia.
    pub const fn is_abnormal(self) -> bool {
        !matches!(self, Self::Normal)
    }
}

impl std::fmt::Display for AlertType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classification thresholds in beats per minute, compared against a window's average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// An average strictly above this is tachycardia (default 100, the adult resting upper bound).
    pub tachycardia_above: f64,
    /// An average strictly below this is bradycardia (default 50).
    pub bradycardia_below: f64,
}

impl Thresholds {
    /// The classroom job's thresholds: tachycardia above 100 bpm, bradycardia below 50 bpm.
    pub const DEFAULT: Self = Self {
        tachycardia_above: 100.0,
        bradycardia_below: 50.0,
    };
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Classifies a window average: above the tachycardia threshold, below the bradycardia
/// threshold, or normal. Exactly 100 and exactly 50 are normal with the default thresholds.
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

/// One fired window for one patient, as published to `heart_rate_alerts` (key = `patient_id`)
/// and written to the alert JSONL files.
///
/// `window_start` / `window_end` are epoch milliseconds, the window being `[start, end)`.
/// `revision` is 0 for the first firing and grows by one each time allowed lateness re-fires it,
/// so a consumer can deduplicate on `(patient_id, window_start, revision)`.
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
    /// Classification of `avg_hr`.
    pub alert_type: AlertType,
    /// 0 for the first firing, +1 for each re-firing within allowed lateness.
    pub revision: u32,
}

impl Alert {
    /// Builds the alert for a fired window from its statistics, classifying the average.
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
            alert_type: classify_window(avg_hr, thresholds),
            revision,
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
        let custom = Thresholds {
            tachycardia_above: 120.0,
            bradycardia_below: 40.0,
        };
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
            r#"{"patient_id":"p001","window_start":60000,"window_end":120000,"avg_hr":101.5,"min_hr":100,"max_hr":103,"count":2,"alert_type":"tachycardia","revision":1}"#
        );
        let back: Alert = serde_json::from_str(&alert.to_json()).unwrap();
        assert_eq!(back, alert);
    }
}
