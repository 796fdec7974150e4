//! Classification thresholds and why a set of them is refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Classification thresholds: bpm limits compared against a window's average, and the number
/// of readings a window needs before it is classified at all.
///
/// The fields are public so a literal can be written, but only a validated value means
/// anything: build one with [`Thresholds::new`] (or check one with [`Thresholds::validate`])
/// wherever the numbers come from a user.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// An average strictly above this is tachycardia (default 100, the adult resting upper bound).
    pub tachycardia_above: f64,
    /// An average strictly below this is bradycardia (default 50).
    pub bradycardia_below: f64,
    /// A window with fewer readings than this is `insufficient_data`, never classified
    /// (default 1: every window with a reading is classified, as the seed job did).
    /// Absent in thresholds serialised before it existed, which therefore read as 1.
    #[serde(default = "default_min_readings")]
    pub min_readings: u64,
}

const fn default_min_readings() -> u64 {
    Thresholds::DEFAULT.min_readings
}

impl Thresholds {
    /// The classroom job's thresholds: tachycardia above 100 bpm, bradycardia below 50 bpm,
    /// and every window with at least one reading classified.
    pub const DEFAULT: Self = Self {
        tachycardia_above: 100.0,
        bradycardia_below: 50.0,
        min_readings: 1,
    };

    /// Validated thresholds.
    ///
    /// # Errors
    /// See [`Thresholds::validate`].
    ///
    /// # Example
    /// ```
    /// use hr_model::Thresholds;
    /// let t = Thresholds::new(120.0, 40.0, 3)?;
    /// assert_eq!(t.min_readings, 3);
    ///
    /// let err = Thresholds::new(50.0, 60.0, 1).unwrap_err();
    /// assert_eq!(err.to_string(),
    ///     "`tachycardia_above` (50) must be greater than `bradycardia_below` (60)");
    /// # Ok::<(), hr_model::ThresholdError>(())
    /// ```
    pub fn new(
        tachycardia_above: f64,
        bradycardia_below: f64,
        min_readings: u64,
    ) -> Result<Self, ThresholdError> {
        let t = Self {
            tachycardia_above,
            bradycardia_below,
            min_readings,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks that the thresholds can classify anything sensibly.
    ///
    /// # Errors
    /// The first problem found, in field order: a bpm limit that is not finite
    /// ([`ThresholdError::NotFinite`]) or not above zero ([`ThresholdError::NotPositive`]),
    /// `min_readings == 0` ([`ThresholdError::ZeroMinReadings`]), then
    /// `tachycardia_above <= bradycardia_below` ([`ThresholdError::Inverted`]): with those, a
    /// window could be both, or the normal band would be empty.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        check_bpm(ThresholdField::TachycardiaAbove, self.tachycardia_above)?;
        check_bpm(ThresholdField::BradycardiaBelow, self.bradycardia_below)?;
        if self.min_readings == 0 {
            return Err(ThresholdError::ZeroMinReadings);
        }
        // Equal limits are refused too: the boundary value is normal, so the normal band
        // would be a single point and every real average abnormal.
        if self.tachycardia_above <= self.bradycardia_below {
            return Err(ThresholdError::Inverted {
                tachycardia_above: self.tachycardia_above,
                bradycardia_below: self.bradycardia_below,
            });
        }
        Ok(())
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One bpm limit on its own: finite and above zero.
pub(crate) fn check_bpm(field: ThresholdField, value: f64) -> Result<(), ThresholdError> {
    if !value.is_finite() {
        Err(ThresholdError::NotFinite { field, value })
    } else if value <= 0.0 {
        Err(ThresholdError::NotPositive { field, value })
    } else {
        Ok(())
    }
}

/// A field of [`Thresholds`] (and of a patient profile), named as in JSON and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThresholdField {
    /// `tachycardia_above`
    TachycardiaAbove,
    /// `bradycardia_below`
    BradycardiaBelow,
    /// `min_readings`
    MinReadings,
}

impl ThresholdField {
    /// Every field, in declaration order.
    pub const ALL: [Self; 3] = [
        Self::TachycardiaAbove,
        Self::BradycardiaBelow,
        Self::MinReadings,
    ];

    /// The field's snake_case name, as in a profile's JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TachycardiaAbove => "tachycardia_above",
            Self::BradycardiaBelow => "bradycardia_below",
            Self::MinReadings => "min_readings",
        }
    }

    /// The field with this snake_case name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for ThresholdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a set of [`Thresholds`] is refused. Each message names the field and the value, so a
/// command line can show it after the flag it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// A bpm limit is NaN or infinite.
    #[error("`{field}` must be a finite number of bpm, got {value}")]
    NotFinite {
        /// The limit.
        field: ThresholdField,
        /// Its value.
        value: f64,
    },
    /// A bpm limit is zero or negative.
    #[error("`{field}` must be greater than 0 bpm, got {value}")]
    NotPositive {
        /// The limit.
        field: ThresholdField,
        /// Its value.
        value: f64,
    },
    /// `min_readings` is 0, which would classify windows with no readings.
    #[error("`min_readings` must be at least 1, got 0")]
    ZeroMinReadings,
    /// The tachycardia limit is not above the bradycardia limit.
    #[error(
        "`tachycardia_above` ({tachycardia_above}) must be greater than `bradycardia_below` ({bradycardia_below})"
    )]
    Inverted {
        /// The tachycardia limit.
        tachycardia_above: f64,
        /// The bradycardia limit.
        bradycardia_below: f64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(Thresholds::default(), Thresholds::DEFAULT);
        assert_eq!(Thresholds::DEFAULT.validate(), Ok(()));
        assert_eq!(Thresholds::new(100.0, 50.0, 1), Ok(Thresholds::DEFAULT));
    }

    #[test]
    fn each_bad_value_is_refused_with_its_field_and_value() {
        let cases = [
            (
                Thresholds::new(f64::NAN, 50.0, 1),
                "`tachycardia_above` must be a finite number of bpm, got NaN",
            ),
            (
                Thresholds::new(100.0, f64::INFINITY, 1),
                "`bradycardia_below` must be a finite number of bpm, got inf",
            ),
            (
                Thresholds::new(0.0, 50.0, 1),
                "`tachycardia_above` must be greater than 0 bpm, got 0",
            ),
            (
                Thresholds::new(100.0, -2.5, 1),
                "`bradycardia_below` must be greater than 0 bpm, got -2.5",
            ),
            (
                Thresholds::new(100.0, 50.0, 0),
                "`min_readings` must be at least 1, got 0",
            ),
            (
                Thresholds::new(60.0, 60.0, 1),
                "`tachycardia_above` (60) must be greater than `bradycardia_below` (60)",
            ),
            (
                Thresholds::new(45.5, 50.0, 1),
                "`tachycardia_above` (45.5) must be greater than `bradycardia_below` (50)",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn a_literal_is_checked_by_validate() {
        let t = Thresholds {
            min_readings: 0,
            ..Thresholds::DEFAULT
        };
        assert_eq!(t.validate(), Err(ThresholdError::ZeroMinReadings));
    }

    #[test]
    fn thresholds_serialised_before_min_readings_read_as_one() {
        let t: Thresholds =
            serde_json::from_str(r#"{"tachycardia_above":120.0,"bradycardia_below":40.0}"#)
                .unwrap();
        assert_eq!(t, Thresholds::new(120.0, 40.0, 1).unwrap());
    }

    #[test]
    fn field_names_round_trip() {
        for f in ThresholdField::ALL {
            assert_eq!(ThresholdField::from_name(f.as_str()), Some(f));
        }
        assert_eq!(ThresholdField::from_name("tachycardia"), None);
    }
}
