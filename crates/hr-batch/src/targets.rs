//! The pass/fail rules of `hr-batch score --check`: which targets a [`Score`] misses.

use crate::error::{BatchError, Result};
use crate::score::{Score, seconds};

/// What `score --check` holds a score to. Always: every required injection detected and no
/// false raised record; optionally, limits on the rate-episode delays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    /// The median rate-episode delay may not exceed this, ms.
    pub max_median_delay_ms: Option<i64>,
    /// No rate-episode delay may exceed this, ms.
    pub max_delay_ms: Option<i64>,
}

impl Targets {
    /// Each target `score` misses, in words (`2 of 5 required tachycardia not detected`); empty
    /// when it meets them all.
    ///
    /// A delay limit is missed only by a delay that exists: a run that detected no rate episode
    /// has no delay to hold against it (and misses the detection target instead, if any was
    /// required).
    pub fn missed(&self, score: &Score) -> Vec<String> {
        let mut missed = Vec::new();
        for k in &score.kinds {
            if k.required_detected < k.required {
                missed.push(format!(
                    "{} of {} required {} not detected",
                    k.required - k.required_detected,
                    k.required,
                    k.kind
                ));
            }
        }
        if !score.false_raised.is_empty() {
            missed.push(format!("{} false raised", score.false_raised.len()));
        }
        let over = |limit: Option<i64>, value: Option<i64>| matches!((limit, value), (Some(l), Some(v)) if v > l);
        if over(self.max_median_delay_ms, score.median_rate_delay_ms) {
            missed.push(format!(
                "median rate-episode delay {} above {}",
                seconds(score.median_rate_delay_ms),
                seconds(self.max_median_delay_ms)
            ));
        }
        if over(self.max_delay_ms, score.max_rate_delay_ms) {
            missed.push(format!(
                "largest rate-episode delay {} above {}",
                seconds(score.max_rate_delay_ms),
                seconds(self.max_delay_ms)
            ));
        }
        missed
    }

    /// Whether `score` meets every target.
    ///
    /// # Errors
    /// [`BatchError::TargetsMissed`] listing each target missed.
    pub fn check(&self, score: &Score) -> Result<()> {
        let missed = self.missed(score);
        if missed.is_empty() {
            Ok(())
        } else {
            Err(BatchError::TargetsMissed(missed))
        }
    }
}

#[cfg(test)]
mod tests {
    use hr_model::{Episode, EpisodeKind, EpisodeState};

    use super::*;
    use crate::score::{FalseRaised, KindSummary};

    fn kind(kind: EpisodeKind, required: usize, required_detected: usize) -> KindSummary {
        KindSummary {
            kind,
            injected: required,
            detected: required_detected,
            required,
            required_detected,
            false_raised: 0,
            repeats: 0,
            covered: 0,
            median_delay_ms: None,
            max_delay_ms: None,
        }
    }

    fn score(kinds: Vec<KindSummary>, median: Option<i64>, max: Option<i64>) -> Score {
        Score {
            injected: Vec::new(),
            false_raised: Vec::new(),
            kinds,
            median_rate_delay_ms: median,
            max_rate_delay_ms: max,
            raised_records: 0,
        }
    }

    const LIMITS: Targets = Targets {
        max_median_delay_ms: Some(75_000),
        max_delay_ms: Some(120_000),
    };

    #[test]
    fn a_score_that_meets_everything_passes() {
        let s = score(
            vec![kind(EpisodeKind::Tachycardia, 3, 3)],
            Some(75_000),
            Some(120_000),
        );
        assert!(LIMITS.missed(&s).is_empty(), "a limit is inclusive");
        assert!(LIMITS.check(&s).is_ok());
    }

    #[test]
    fn each_miss_is_named() {
        let mut s = score(
            vec![
                kind(EpisodeKind::Tachycardia, 5, 3),
                kind(EpisodeKind::SignalLoss, 2, 2),
            ],
            Some(80_000),
            Some(200_000),
        );
        s.false_raised.push(FalseRaised {
            episode: Episode {
                patient_id: "p001".into(),
                episode_id: "p001:bradycardia:0".into(),
                state: EpisodeState::Raised,
                kind: EpisodeKind::Bradycardia,
                window_start: 0,
                window_end: 60_000,
                extreme_avg_hr: Some(45.0),
            },
            detected_at_ms: 65_000,
        });
        assert_eq!(
            LIMITS.missed(&s),
            [
                "2 of 5 required tachycardia not detected",
                "1 false raised",
                "median rate-episode delay 80.0 s above 75.0 s",
                "largest rate-episode delay 200.0 s above 120.0 s",
            ]
        );
        let err = LIMITS.check(&s).unwrap_err().to_string();
        assert!(
            err.starts_with("targets missed: 2 of 5 required tachycardia not detected; 1 false"),
            "{err}"
        );
    }

    #[test]
    fn delay_limits_apply_only_when_asked_and_when_there_is_a_delay() {
        let slow = score(vec![], Some(500_000), Some(900_000));
        assert!(Targets::default().missed(&slow).is_empty());
        let none = score(vec![], None, None);
        assert!(LIMITS.missed(&none).is_empty());
    }
}
