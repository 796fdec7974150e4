//! Alert episodes: one `raised` and one `cleared` record per run of abnormal windows, so a
//! pager pages once per episode instead of once per window.
//!
//! See [`EpisodeTracker`] for the rules and [`Episode`] for the records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Alert, AlertType};

mod tracker;

pub use tracker::EpisodeTracker;

/// How many windows raise and clear an episode (hysteresis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpisodePolicy {
    /// Consecutive abnormal windows of one type that raise an episode (default 1: the first
    /// abnormal window pages, as per-window alerts did).
    pub raise_after: u32,
    /// Consecutive normal windows that clear it (default 2, so one normal window in the
    /// middle of an episode does not end it).
    pub clear_after: u32,
}

impl EpisodePolicy {
    /// Raise on the first abnormal window, clear after two normal ones.
    pub const DEFAULT: Self = Self {
        raise_after: 1,
        clear_after: 2,
    };

    /// A validated policy.
    ///
    /// # Errors
    /// [`EpisodePolicyError`] if either count is 0.
    pub fn new(raise_after: u32, clear_after: u32) -> Result<Self, EpisodePolicyError> {
        let policy = Self {
            raise_after,
            clear_after,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Checks that both counts are at least 1.
    ///
    /// # Errors
    /// [`EpisodePolicyError`] naming the count that is 0.
    pub fn validate(&self) -> Result<(), EpisodePolicyError> {
        if self.raise_after == 0 {
            Err(EpisodePolicyError::ZeroRaiseAfter)
        } else if self.clear_after == 0 {
            Err(EpisodePolicyError::ZeroClearAfter)
        } else {
            Ok(())
        }
    }
}

impl Default for EpisodePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an [`EpisodePolicy`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EpisodePolicyError {
    /// `raise_after` is 0: an episode would be raised with no abnormal window at all.
    #[error("`raise_after` must be at least 1, got 0")]
    ZeroRaiseAfter,
    /// `clear_after` is 0: an episode would be cleared by the window that raised it.
    #[error("`clear_after` must be at least 1, got 0")]
    ZeroClearAfter,
}

/// What an episode is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    /// A run of tachycardia windows.
    Tachycardia,
    /// A run of bradycardia windows.
    Bradycardia,
    /// The patient's monitor went silent.
    SignalLoss,
}

impl EpisodeKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Tachycardia, Self::Bradycardia, Self::SignalLoss];

    /// The snake_case name used in JSON and in episode ids.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tachycardia => "tachycardia",
            Self::Bradycardia => "bradycardia",
            Self::SignalLoss => "signal_loss",
        }
    }

    /// The rate episode a window classification belongs to, if it is abnormal.
    pub const fn of_alert_type(alert_type: AlertType) -> Option<Self> {
        match alert_type {
            AlertType::Tachycardia => Some(Self::Tachycardia),
            AlertType::Bradycardia => Some(Self::Bradycardia),
            AlertType::Normal | AlertType::InsufficientData => None,
        }
    }

    /// Whether `candidate` is more extreme than `current` for this kind: higher for
    /// tachycardia, lower for bradycardia.
    fn more_extreme(self, candidate: f64, current: f64) -> bool {
        match self {
            Self::Bradycardia => candidate < current,
            Self::Tachycardia | Self::SignalLoss => candidate > current,
        }
    }
}

impl fmt::Display for EpisodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a record opens or closes its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeState {
    /// The episode has begun; a pager pages.
    Raised,
    /// The episode is over.
    Cleared,
}

impl EpisodeState {
    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Cleared => "cleared",
        }
    }
}

impl fmt::Display for EpisodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of `heart_rate_episodes` (key = `patient_id`). See [`EpisodeTracker`] (Records)
/// for what the window fields and the id hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The patient.
    pub patient_id: String,
    /// `"{patient_id}:{kind}:{onset_ms}"`, the same in the `raised` and the `cleared` record.
    pub episode_id: String,
    /// `raised` or `cleared`.
    pub state: EpisodeState,
    /// `tachycardia`, `bradycardia` or `signal_loss`.
    pub kind: EpisodeKind,
    /// Start of the window that raised or cleared the episode, epoch ms (signal loss: the
    /// last reading before the gap).
    pub window_start: i64,
    /// End of that window, epoch ms (signal loss: when the loss was declared, or the
    /// restoring reading).
    pub window_end: i64,
    /// The episode's most extreme window average so far: the peak for tachycardia, the
    /// lowest for bradycardia, over its windows of its own type; `null` for signal loss.
    pub extreme_avg_hr: Option<f64>,
}

impl Episode {
    /// The record as one line of JSON (no trailing newline); fields in declaration order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an episode always serialises")
    }
}

/// What the tracker needs to know about a fired window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowOutcome {
    /// Start of the window, epoch ms.
    pub window_start: i64,
    /// End of the window, epoch ms.
    pub window_end: i64,
    /// Its classification.
    pub alert_type: AlertType,
    /// Its average heart rate.
    pub avg_hr: f64,
    /// 0 for the first firing; later firings are ignored.
    pub revision: u32,
}

impl From<&Alert> for WindowOutcome {
    fn from(alert: &Alert) -> Self {
        Self {
            window_start: alert.window_start,
            window_end: alert.window_end,
            alert_type: alert.alert_type,
            avg_hr: alert.avg_hr,
            revision: alert.revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use EpisodeState::{Cleared, Raised};

    #[test]
    fn a_policy_needs_both_counts() {
        assert_eq!(EpisodePolicy::new(1, 2), Ok(EpisodePolicy::DEFAULT));
        assert_eq!(
            EpisodePolicy::new(0, 2).unwrap_err().to_string(),
            "`raise_after` must be at least 1, got 0"
        );
        assert_eq!(
            EpisodePolicy::new(1, 0).unwrap_err().to_string(),
            "`clear_after` must be at least 1, got 0"
        );
    }

    #[test]
    fn kinds_and_states_match_serde() {
        for k in EpisodeKind::ALL {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        for s in [Raised, Cleared] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }
}
