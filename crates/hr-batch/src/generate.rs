//! Synthetic alerts for benchmarks and load tests: deterministic for a seed, shaped like the
//! pipeline's output (consecutive one-minute windows per patient, mostly normal).

use hr_model::{Alert, HrStats, Thresholds};
use polars::prelude::*;

use crate::alerts::AlertColumns;
use crate::error::Result;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSpec {
    /// Number of alert lines.
    pub alerts: u64,
    /// Number of distinct patients the alerts cycle through.
    pub patients: u32,
    /// How many alerts per thousand are followed by a re-fired revision of the same window
    /// (allowed lateness); the re-fired line counts towards `alerts`.
    pub revised_per_mille: u32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        Self {
            alerts: 1_000,
            patients: 1_000,
            revised_per_mille: 1,
            seed: 42,
        }
    }
}

/// SplitMix64: tiny, fast and good enough for synthetic figures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generates `spec.alerts` alerts. Patients take turns, each patient's windows follow one
/// another minute by minute from 2025-11-19T00:00Z, and figures are classified with the
/// default thresholds, so the output is a valid pipeline output.
///
/// # Panics
/// Panics if `spec.patients` is 0.
///
/// # Example
/// ```
/// let spec = hr_batch::GenerateSpec { alerts: 5, ..Default::default() };
/// let alerts: Vec<_> = hr_batch::generate_alerts(spec).collect();
/// assert_eq!(alerts.len(), 5);
/// assert!(alerts.iter().all(|a| a.window_end - a.window_start == 60_000));
/// ```
pub fn generate_alerts(spec: GenerateSpec) -> impl Iterator<Item = Alert> {
    assert!(spec.patients > 0, "at least one patient");
    const START: i64 = 1_763_510_400_000;
    const MINUTE: i64 = 60_000;
    let mut rng = Rng(spec.seed);
    let mut emitted = 0u64;
    let mut window = 0u64;
    let mut pending: Option<Alert> = None;
    std::iter::from_fn(move || {
        if emitted == spec.alerts {
            return None;
        }
        emitted += 1;
        if let Some(a) = pending.take() {
            return Some(a);
        }
        let patient = (window % u64::from(spec.patients)) as u32;
        let start = START + (window / u64::from(spec.patients)) as i64 * MINUTE;
        window += 1;
        // Mostly resting rates, with a tail on both sides so every alert type occurs.
        let centre = match rng.below(100) {
            0..=7 => 105 + rng.below(40),
            8..=12 => 35 + rng.below(14),
            _ => 55 + rng.below(40),
        } as u16;
        let count = 30 + rng.below(90);
        let spread = 1 + rng.below(12) as u16;
        let stats = HrStats {
            sum: u64::from(centre) * count + rng.below(count),
            count,
            min: centre - spread.min(centre - 1),
            max: centre + spread,
        };
        let pid = format!("p{patient:05}");
        let alert = Alert::from_stats(&pid, start, start + MINUTE, &stats, 0, &Thresholds::DEFAULT);
        if rng.below(1000) < u64::from(spec.revised_per_mille) {
            let mut later = stats;
            later.add(stats.max);
            pending = Some(Alert::from_stats(
                pid,
                start,
                start + MINUTE,
                &later,
                1,
                &Thresholds::DEFAULT,
            ));
        }
        Some(alert)
    })
}

/// Builds an alert table ([`crate::alert_schema`]) from alerts in memory.
///
/// # Errors
/// Only Polars' own.
pub fn alerts_frame(alerts: impl IntoIterator<Item = Alert>) -> Result<DataFrame> {
    let mut columns = AlertColumns::with_capacity(0);
    for a in alerts {
        columns.push(a.into());
    }
    columns.into_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_revisions_follow_their_window() {
        let spec = GenerateSpec {
            alerts: 5_000,
            patients: 7,
            revised_per_mille: 50,
            seed: 3,
        };
        let a: Vec<_> = generate_alerts(spec).collect();
        assert_eq!(a, generate_alerts(spec).collect::<Vec<_>>());
        assert_eq!(a.len(), 5_000);
        let revised: Vec<_> = a.windows(2).filter(|w| w[1].revision == 1).collect();
        assert!(revised.len() > 100, "{}", revised.len());
        for w in revised {
            assert_eq!(
                (&w[0].patient_id, w[0].window_start),
                (&w[1].patient_id, w[1].window_start)
            );
            assert_eq!(w[1].count, w[0].count + 1);
        }
        for kind in ["tachycardia", "bradycardia", "normal"] {
            assert!(a.iter().any(|x| x.alert_type.as_str() == kind));
        }
    }
}
