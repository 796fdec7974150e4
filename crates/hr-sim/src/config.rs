//! What determines a run: [`SimConfig`], checked into a [`ConfigError`] that names the field.

use thiserror::Error;

use crate::faults::FaultConfig;
use crate::patient::EpisodeConfig;
use crate::sim::patient_index;

/// Everything that determines a run's output. Two runs with equal configurations produce the
/// same records, byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed for every random draw.
    pub seed: u64,
    /// How many patients (`p001`, `p002`, ...).
    pub patients: usize,
    /// Event time of the first reading, epoch milliseconds.
    pub start_ms: i64,
    /// Readings per second of event time, over all patients.
    pub rate_per_sec: f64,
    /// Stop at `start_ms + duration_ms` of event time. Readings still held back then are not
    /// sent (the ground truth counts them as `unsent`). `None` runs until `max_records` or
    /// forever.
    pub duration_ms: Option<i64>,
    /// Stop after this many records (valid, malformed and duplicate alike).
    pub max_records: Option<u64>,
    /// Tachycardia and bradycardia episodes.
    pub episodes: EpisodeConfig,
    /// Faults to inject (none by default).
    pub faults: FaultConfig,
}

impl Default for SimConfig {
    /// Ten patients reading once a second each from 2025-11-19T07:00:00Z (the seed data's
    /// morning), with episodes and without faults or a stopping point.
    fn default() -> Self {
        Self {
            seed: 1,
            patients: 10,
            start_ms: 1_763_535_600_000,
            rate_per_sec: 10.0,
            duration_ms: None,
            max_records: None,
            episodes: EpisodeConfig::default(),
            faults: FaultConfig::default(),
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `patients` is zero.
    #[error("at least one patient is needed")]
    NoPatients,
    /// `rate_per_sec` is not a positive number.
    #[error("the reading rate must be positive, got {0}")]
    BadRate(f64),
    /// A fraction is outside 0..=1.
    #[error("`{name}` must be a fraction between 0 and 1, got {value}")]
    BadFraction {
        /// Which setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The per-reading fault fractions add up to more than 1.
    #[error("out-of-order + late + malformed + duplicate fractions add up to {0}, more than 1")]
    FractionsExceedOne(f64),
    /// A duration or rate that must be positive is not.
    #[error("`{name}` must be positive, got {value}")]
    NotPositive {
        /// Which setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The out-of-order bound is too short to reorder anything at this reading rate.
    #[error(
        "the out-of-order bound ({bound_ms} ms) must exceed the gap between readings \
         ({gap_ms} ms) by at least 1 ms, or nothing can overtake a held-back reading"
    )]
    BoundTooShort {
        /// The bound.
        bound_ms: i64,
        /// The gap between consecutive readings.
        gap_ms: i64,
    },
    /// Late readings would not be later than out-of-order ones.
    #[error("the late delay ({late_ms} ms) must exceed the out-of-order bound ({bound_ms} ms)")]
    LateWithinBound {
        /// The late delay.
        late_ms: i64,
        /// The out-of-order bound.
        bound_ms: i64,
    },
    /// Malformed records are asked for but no kind is allowed.
    #[error("malformed records are enabled but no malformed kind is selected")]
    NoMalformedKinds,
    /// A clock skew or a planned silence names a patient that is not in the run.
    #[error("clock skew or planned silence for unknown patient `{0}` (patients are p001..)")]
    UnknownPatient(String),
    /// A silence or plateau range whose longest is shorter than its shortest.
    #[error("the range {min_ms}..{max_ms} ms is empty (the maximum is below the minimum)")]
    EmptyRange {
        /// The shortest.
        min_ms: i64,
        /// The longest.
        max_ms: i64,
    },
    /// A planned silence starts before the run or lasts no time.
    #[error(
        "the planned silence of `{patient_id}` must start at or after the run's start and last \
         a positive time (got {after_ms} ms after the start for {duration_ms} ms)"
    )]
    BadPlannedSilence {
        /// Whose.
        patient_id: String,
        /// Its start, after the run's start.
        after_ms: i64,
        /// Its length.
        duration_ms: i64,
    },
    /// The run would write timestamps RFC 3339 cannot express.
    #[error("start time {0} ms is outside the years 0000 to 9999")]
    StartOutOfRange(i64),
}

impl SimConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.patients == 0 {
            return Err(ConfigError::NoPatients);
        }
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(ConfigError::BadRate(self.rate_per_sec));
        }
        self.check_fractions()?;
        self.check_lengths()?;
        self.check_delays()?;
        if self.faults.malformed > 0.0 && self.faults.malformed_kinds.is_empty() {
            return Err(ConfigError::NoMalformedKinds);
        }
        self.check_ranges()?;
        self.check_patient_settings()?;
        // A year of margin either side leaves room for skew, delays and long runs.
        const YEAR_MS: i64 = 366 * 86_400_000;
        if !(hr_model::MIN_TIMESTAMP_MS + YEAR_MS..=hr_model::MAX_TIMESTAMP_MS - YEAR_MS)
            .contains(&self.start_ms)
        {
            return Err(ConfigError::StartOutOfRange(self.start_ms));
        }
        Ok(())
    }

    /// Every fraction lies in 0..=1, and the per-reading fault fractions add up to at most 1.
    fn check_fractions(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        for (name, value) in [
            ("out_of_order", f.out_of_order),
            ("late", f.late),
            ("malformed", f.malformed),
            ("duplicate", f.duplicate),
            ("bradycardia_share", self.episodes.bradycardia_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::BadFraction { name, value });
            }
        }
        let sum = f.out_of_order + f.late + f.malformed + f.duplicate;
        if sum > 1.0 {
            return Err(ConfigError::FractionsExceedOne(sum));
        }
        Ok(())
    }

    /// The delays, the silence and the plateau are positive; the ramps and the rates of
    /// episodes and silences are finite and not negative.
    fn check_lengths(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        let e = &self.episodes;
        for (name, value) in [
            ("out_of_order_max_ms", f.out_of_order_max_ms as f64),
            ("late_delay_ms", f.late_delay_ms as f64),
            ("silence_ms", f.silence_ms as f64),
            ("plateau_ms", e.plateau_ms as f64),
        ] {
            if value <= 0.0 {
                return Err(ConfigError::NotPositive { name, value });
            }
        }
        for (name, value) in [
            ("onset_ms", e.onset_ms as f64),
            ("recovery_ms", e.recovery_ms as f64),
            ("episode rate_per_hour", e.rate_per_hour),
            ("silence_rate_per_hour", f.silence_rate_per_hour),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(ConfigError::NotPositive { name, value });
            }
        }
        Ok(())
    }

    /// When in use, the out-of-order bound lets the next reading overtake a held-back one, and
    /// the late delay exceeds the out-of-order bound.
    fn check_delays(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        let gap_ms = self.gap_ms();
        if f.out_of_order > 0.0 && f.out_of_order_max_ms <= gap_ms {
            return Err(ConfigError::BoundTooShort {
                bound_ms: f.out_of_order_max_ms,
                gap_ms,
            });
        }
        if f.late > 0.0 && f.late_delay_ms <= f.out_of_order_max_ms {
            return Err(ConfigError::LateWithinBound {
                late_ms: f.late_delay_ms,
                bound_ms: f.out_of_order_max_ms,
            });
        }
        Ok(())
    }

    /// The silence and plateau ranges are not empty.
    fn check_ranges(&self) -> Result<(), ConfigError> {
        for (min_ms, max_ms) in [
            (self.faults.silence_ms, self.faults.silence_max_ms),
            (self.episodes.plateau_ms, self.episodes.plateau_max_ms),
        ] {
            if let Some(max_ms) = max_ms
                && max_ms < min_ms
            {
                return Err(ConfigError::EmptyRange { min_ms, max_ms });
            }
        }
        Ok(())
    }

    /// Clock skews and planned silences name patients of the run, and each planned silence
    /// starts at or after the run's start and lasts a positive time.
    fn check_patient_settings(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        let ids = f
            .clock_skew
            .iter()
            .map(|(id, _)| id)
            .chain(f.planned_silences.iter().map(|p| &p.patient_id));
        for id in ids {
            if patient_index(id).is_none_or(|i| i >= self.patients) {
                return Err(ConfigError::UnknownPatient(id.clone()));
            }
        }
        for p in &f.planned_silences {
            if p.after_ms < 0 || p.duration_ms <= 0 {
                return Err(ConfigError::BadPlannedSilence {
                    patient_id: p.patient_id.clone(),
                    after_ms: p.after_ms,
                    duration_ms: p.duration_ms,
                });
            }
        }
        Ok(())
    }

    /// Microseconds between consecutive readings (of any patient).
    pub(crate) fn period_us(&self) -> u64 {
        ((1e6 / self.rate_per_sec).round() as u64).max(1)
    }

    /// The longest gap between consecutive readings' timestamps, whole milliseconds.
    pub(crate) fn gap_ms(&self) -> i64 {
        self.period_us().div_ceil(1000) as i64
    }
}
