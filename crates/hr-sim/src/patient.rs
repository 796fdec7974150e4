//! One patient's heart: a resting baseline, slow drift, beat-to-beat noise and episodes.
//!
//! The model is `bpm = baseline + drift + episode + noise`:
//! - `baseline` is drawn once per patient (a resting rate, 62..86 bpm);
//! - `drift` is an AR(1) process with a five-minute time constant, the slow wander of autonomic
//!   tone, bounded so that a patient at rest never averages into an alert band by itself;
//! - `noise` is Gaussian with a per-patient spread (1.5..4 bpm), the reading-to-reading jitter of
//!   a real monitor rather than the uniform draws of the seed script;
//! - `episode` is zero except during a tachycardia or bradycardia episode, where it ramps up to a
//!   target rate (a raised-cosine onset), holds, then ramps back down (a raised-cosine recovery).
//!
//! Episodes arrive as a Poisson process per patient. The schedule has its own random stream, so
//! changing the reading rate changes the noise but not when episodes happen.

use rand::RngExt;
use rand_distr::{Distribution, Exp, Normal, StandardNormal};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::seed::stream;

/// Which way an episode pushes the heart rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeKind {
    /// A sustained fast rate; its plateau averages well above the 100 bpm alert threshold.
    Tachycardia,
    /// A sustained slow rate; its plateau averages well below the 50 bpm alert threshold.
    Bradycardia,
}

impl EpisodeKind {
    /// The name the alert pipeline uses for this kind (`tachycardia` | `bradycardia`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tachycardia => "tachycardia",
            Self::Bradycardia => "bradycardia",
        }
    }
}

/// One injected episode, in the patient's true time (epoch milliseconds).
///
/// The heart rate leaves the baseline at `start_ms`, reaches `target_bpm` at `plateau_start_ms`,
/// holds it until `plateau_end_ms` and is back at the baseline at `end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// Tachycardia or bradycardia.
    pub kind: EpisodeKind,
    /// Onset ramp begins.
    pub start_ms: i64,
    /// Onset ramp ends; the rate holds near `target_bpm` from here.
    pub plateau_start_ms: i64,
    /// Recovery ramp begins.
    pub plateau_end_ms: i64,
    /// Recovery ramp ends; the rate is back at the patient's baseline.
    pub end_ms: i64,
    /// The rate the plateau holds (before noise).
    pub target_bpm: u16,
}

impl Episode {
    /// The episode's contribution at `t_ms` as a fraction of its full amplitude (0..=1).
    fn shape(&self, t_ms: i64) -> f64 {
        if t_ms < self.start_ms || t_ms >= self.end_ms {
            0.0
        } else if t_ms < self.plateau_start_ms {
            raised_cosine(t_ms - self.start_ms, self.plateau_start_ms - self.start_ms)
        } else if t_ms < self.plateau_end_ms {
            1.0
        } else {
            1.0 - raised_cosine(
                t_ms - self.plateau_end_ms,
                self.end_ms - self.plateau_end_ms,
            )
        }
    }
}

/// A smooth 0→1 ramp over `len` (a raised cosine: no kink at either end, as a heart speeds up).
fn raised_cosine(elapsed: i64, len: i64) -> f64 {
    if len <= 0 {
        return 1.0;
    }
    let x = (elapsed as f64 / len as f64).clamp(0.0, 1.0);
    0.5 - 0.5 * (std::f64::consts::PI * x).cos()
}

/// How often episodes happen and how long they last.
///
/// Each duration is a mean: an episode draws each of its phases uniformly from half to one and a
/// half times it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeConfig {
    /// Expected episodes per patient per hour of event time (0 disables episodes).
    pub rate_per_hour: f64,
    /// Fraction of episodes that are bradycardia (the rest are tachycardia).
    pub bradycardia_share: f64,
    /// Mean onset ramp, milliseconds.
    pub onset_ms: i64,
    /// Mean plateau, milliseconds; the shortest when
    /// [`plateau_max_ms`](Self::plateau_max_ms) is set.
    pub plateau_ms: i64,
    /// The longest plateau, milliseconds: plateaus are then drawn uniformly from
    /// `plateau_ms..=plateau_max_ms` instead of around a mean (for a scenario that needs a
    /// wide spread of lengths). `None` keeps the mean and the runs' bytes.
    pub plateau_max_ms: Option<i64>,
    /// Mean recovery ramp, milliseconds.
    pub recovery_ms: i64,
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        Self {
            rate_per_hour: 1.0,
            bradycardia_share: 0.3,
            onset_ms: 60_000,
            plateau_ms: 240_000,
            plateau_max_ms: None,
            recovery_ms: 90_000,
        }
    }
}

/// Drift time constant: autonomic tone wanders over minutes, not seconds.
const DRIFT_TAU_MS: f64 = 300_000.0;
/// Drift is bounded at this many of its standard deviations (see the module comment).
const DRIFT_BOUND_SD: f64 = 2.5;
/// Readings are clamped to what a monitor can display.
const MIN_BPM: f64 = 25.0;
const MAX_BPM: f64 = 240.0;

/// One patient's heart and episode schedule.
#[derive(Debug, Clone)]
pub struct Patient {
    baseline: f64,
    noise_sd: f64,
    drift: f64,
    drift_phi: f64,
    drift_step_sd: f64,
    drift_bound: f64,
    noise_rng: Pcg64Mcg,
    schedule_rng: Pcg64Mcg,
    config: EpisodeConfig,
    next_episode_ms: i64,
    current: Option<Episode>,
    episodes: Vec<Episode>,
}

impl Patient {
    /// The patient with index `index` of a simulation seeded with `seed`, whose readings start at
    /// `start_ms` and come every `interval_ms`.
    ///
    /// A patient depends only on `(seed, index)` and the configuration, so adding patients to a
    /// run does not change the existing ones.
    pub fn new(
        seed: u64,
        index: usize,
        start_ms: i64,
        interval_ms: f64,
        config: &EpisodeConfig,
    ) -> Self {
        let mut traits_rng = stream(seed, index, 0);
        let baseline = Normal::new(74.0_f64, 7.0)
            .expect("constant parameters are valid")
            .sample(&mut traits_rng)
            .clamp(62.0, 86.0);
        let noise_sd = traits_rng.random_range(1.5..4.0);
        let drift_sd: f64 = traits_rng.random_range(1.0..3.0);
        let drift_phi = (-interval_ms.max(1.0) / DRIFT_TAU_MS).exp();
        let drift_step_sd = drift_sd * (1.0 - drift_phi * drift_phi).sqrt();
        let drift = (traits_rng.sample::<f64, _>(StandardNormal) * drift_sd)
            .clamp(-DRIFT_BOUND_SD * drift_sd, DRIFT_BOUND_SD * drift_sd);
        let mut patient = Self {
            baseline,
            noise_sd,
            drift,
            drift_phi,
            drift_step_sd,
            drift_bound: DRIFT_BOUND_SD * drift_sd,
            noise_rng: stream(seed, index, 1),
            schedule_rng: stream(seed, index, 2),
            config: config.clone(),
            next_episode_ms: i64::MAX,
            current: None,
            episodes: Vec::new(),
        };
        patient.next_episode_ms = patient.next_arrival(start_ms);
        patient
    }

    /// The resting rate this patient returns to between episodes.
    pub fn baseline_bpm(&self) -> f64 {
        self.baseline
    }

    /// Every episode that has begun so far, in order.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// The reading at `t_ms`. Calls must come in non-decreasing time order, one per reading: the
    /// drift and the episode schedule advance with each call.
    pub fn reading(&mut self, t_ms: i64) -> u16 {
        self.drift = (self.drift_phi * self.drift
            + self.drift_step_sd * self.noise_rng.sample::<f64, _>(StandardNormal))
        .clamp(-self.drift_bound, self.drift_bound);

        let episode = self.episode_at(t_ms);
        let offset = match episode {
            Some(e) => (f64::from(e.target_bpm) - self.baseline - self.drift) * e.shape(t_ms),
            None => 0.0,
        };
        let noise = self.noise_sd * self.noise_rng.sample::<f64, _>(StandardNormal);
        (self.baseline + self.drift + offset + noise)
            .round()
            .clamp(MIN_BPM, MAX_BPM) as u16
    }

    /// The episode in force at `t_ms`, starting the next scheduled one when its time comes.
    fn episode_at(&mut self, t_ms: i64) -> Option<Episode> {
        if let Some(e) = self.current {
            if t_ms < e.end_ms {
                return Some(e);
            }
            self.current = None;
            self.next_episode_ms = self.next_arrival(e.end_ms);
        }
        // A long gap between readings can pass several scheduled starts; the ones whose whole
        // span fell between readings never reached the data, so they are not reported.
        while t_ms >= self.next_episode_ms {
            let e = self.draw_episode(self.next_episode_ms);
            if t_ms < e.end_ms {
                self.current = Some(e);
                self.episodes.push(e);
                return Some(e);
            }
            self.next_episode_ms = self.next_arrival(e.end_ms);
        }
        None
    }

    fn next_arrival(&mut self, after_ms: i64) -> i64 {
        if self.config.rate_per_hour <= 0.0 {
            return i64::MAX;
        }
        let per_ms = self.config.rate_per_hour / 3_600_000.0;
        let gap: f64 = Exp::new(per_ms)
            .expect("a positive rate is valid")
            .sample(&mut self.schedule_rng);
        after_ms.saturating_add(gap as i64)
    }

    fn draw_episode(&mut self, start_ms: i64) -> Episode {
        let rng = &mut self.schedule_rng;
        let kind = if rng.random_bool(self.config.bradycardia_share.clamp(0.0, 1.0)) {
            EpisodeKind::Bradycardia
        } else {
            EpisodeKind::Tachycardia
        };
        let phase = |rng: &mut Pcg64Mcg, mean: i64| -> i64 {
            (mean as f64 * rng.random_range(0.5..1.5)) as i64
        };
        let onset = phase(rng, self.config.onset_ms);
        let plateau = match self.config.plateau_max_ms {
            Some(max) if max > self.config.plateau_ms => {
                rng.random_range(self.config.plateau_ms..=max)
            }
            _ => phase(rng, self.config.plateau_ms),
        }
        .max(1);
        let recovery = phase(rng, self.config.recovery_ms);
        let target_bpm = match kind {
            EpisodeKind::Tachycardia => rng.random_range(118..=150),
            EpisodeKind::Bradycardia => rng.random_range(36..=44),
        };
        let plateau_start_ms = start_ms + onset;
        let plateau_end_ms = plateau_start_ms + plateau;
        Episode {
            kind,
            start_ms,
            plateau_start_ms,
            plateau_end_ms,
            end_ms: plateau_end_ms + recovery,
            target_bpm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> EpisodeConfig {
        EpisodeConfig {
            rate_per_hour: 0.0,
            ..EpisodeConfig::default()
        }
    }

    #[test]
    fn resting_patient_stays_in_the_normal_band() {
        for index in 0..50 {
            let mut p = Patient::new(7, index, 0, 1000.0, &quiet());
            let readings: Vec<u16> = (0..3600).map(|s| p.reading(s * 1000)).collect();
            for w in readings.chunks(60) {
                let avg = w.iter().map(|&b| f64::from(b)).sum::<f64>() / w.len() as f64;
                assert!(
                    (50.0..=100.0).contains(&avg),
                    "patient {index} window avg {avg}"
                );
            }
            assert!(p.episodes().is_empty());
        }
    }

    #[test]
    fn beat_to_beat_noise_is_gaussian_not_uniform() {
        let mut p = Patient::new(3, 0, 0, 1000.0, &quiet());
        let xs: Vec<f64> = (0..20_000)
            .map(|s| f64::from(p.reading(s * 1000)))
            .collect();
        let diffs: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / diffs.len() as f64;
        let m4 = diffs.iter().map(|d| (d - mean).powi(4)).sum::<f64>() / diffs.len() as f64;
        // Kurtosis of a difference of Gaussians is 3; of uniforms 2.4. Rounding to whole bpm
        // nudges it a little, hence the tolerance.
        let kurtosis = m4 / (var * var);
        assert!((2.75..3.3).contains(&kurtosis), "kurtosis {kurtosis}");
        assert!(var > 1.0, "successive readings must vary, var {var}");
    }

    #[test]
    fn episodes_ramp_up_hold_and_recover() {
        let config = EpisodeConfig {
            rate_per_hour: 6.0,
            bradycardia_share: 0.5,
            ..EpisodeConfig::default()
        };
        let mut p = Patient::new(11, 2, 0, 1000.0, &config);
        let readings: Vec<(i64, u16)> = (0..6 * 3600)
            .map(|s| (s * 1000, p.reading(s * 1000)))
            .collect();
        let episodes = p.episodes().to_vec();
        assert!(episodes.len() >= 10, "{} episodes", episodes.len());
        assert!(episodes.iter().any(|e| e.kind == EpisodeKind::Bradycardia));
        assert!(episodes.iter().any(|e| e.kind == EpisodeKind::Tachycardia));
        let mean_in = |from: i64, to: i64| {
            let xs: Vec<f64> = readings
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|&(_, b)| f64::from(b))
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        for e in &episodes {
            assert!(e.start_ms < e.plateau_start_ms && e.plateau_start_ms < e.plateau_end_ms);
            assert!(e.plateau_end_ms < e.end_ms);
            let plateau = mean_in(e.plateau_start_ms, e.plateau_end_ms);
            let onset_early = mean_in(
                e.start_ms,
                e.start_ms + (e.plateau_start_ms - e.start_ms) / 4,
            );
            match e.kind {
                EpisodeKind::Tachycardia => {
                    assert!(plateau > 110.0, "{e:?} plateau {plateau}");
                    assert!(onset_early < plateau - 15.0, "{e:?} onset {onset_early}");
                }
                EpisodeKind::Bradycardia => {
                    assert!(plateau < 48.0, "{e:?} plateau {plateau}");
                    assert!(onset_early > plateau + 10.0, "{e:?} onset {onset_early}");
                }
            }
        }
        let last = episodes.last().unwrap();
        if last.end_ms + 60_000 < 6 * 3_600_000 {
            let after = mean_in(last.end_ms, last.end_ms + 60_000);
            assert!((50.0..100.0).contains(&after), "recovered to {after}");
        }
    }

    #[test]
    fn plateaus_drawn_from_a_range_cover_it() {
        let config = EpisodeConfig {
            rate_per_hour: 4.0,
            plateau_ms: 90_000,
            plateau_max_ms: Some(780_000),
            ..EpisodeConfig::default()
        };
        let mut lengths = Vec::new();
        for index in 0..20 {
            let mut p = Patient::new(9, index, 0, 1000.0, &config);
            for s in 0..6 * 3600 {
                p.reading(s * 1000);
            }
            lengths.extend(
                p.episodes()
                    .iter()
                    .map(|e| e.plateau_end_ms - e.plateau_start_ms),
            );
        }
        assert!(lengths.len() > 100, "{} episodes", lengths.len());
        assert!(lengths.iter().all(|l| (90_000..=780_000).contains(l)));
        assert!(lengths.iter().any(|&l| l < 200_000) && lengths.iter().any(|&l| l > 670_000));
    }

    #[test]
    fn schedule_does_not_depend_on_reading_rate() {
        let config = EpisodeConfig {
            rate_per_hour: 4.0,
            ..EpisodeConfig::default()
        };
        let mut fast = Patient::new(5, 1, 0, 250.0, &config);
        let mut slow = Patient::new(5, 1, 0, 1000.0, &config);
        for s in 0..4 * 3600 * 4 {
            fast.reading(s * 250);
        }
        for s in 0..4 * 3600 {
            slow.reading(s * 1000);
        }
        assert!(!fast.episodes().is_empty());
        assert_eq!(fast.episodes(), slow.episodes());
    }

    #[test]
    fn ramps_are_continuous() {
        let e = Episode {
            kind: EpisodeKind::Tachycardia,
            start_ms: 1000,
            plateau_start_ms: 2000,
            plateau_end_ms: 3000,
            end_ms: 5000,
            target_bpm: 130,
        };
        assert_eq!(e.shape(999), 0.0);
        assert_eq!(e.shape(1000), 0.0);
        assert!((e.shape(1500) - 0.5).abs() < 1e-9);
        assert_eq!(e.shape(2000), 1.0);
        assert_eq!(e.shape(2999), 1.0);
        assert!((e.shape(4000) - 0.5).abs() < 1e-9);
        assert_eq!(e.shape(5000), 0.0);
    }
}
