//! Injected episodes show in one-minute window averages, and nothing else raises an alert.

use hr_sim::{EpisodeConfig, EpisodeKind, SimConfig};

use crate::common::{MINUTE_MS, minute_windows, records_and_truth};

#[test]
fn window_averages_follow_the_ground_truth() {
    let config = SimConfig {
        seed: 2024,
        patients: 20,
        rate_per_sec: 20.0,
        duration_ms: Some(12 * 3_600_000),
        episodes: EpisodeConfig {
            rate_per_hour: 2.0,
            ..EpisodeConfig::default()
        },
        ..SimConfig::default()
    };
    let (records, truth) = records_and_truth(config);
    let windows = minute_windows(&records);

    let (mut tachy_windows, mut brady_windows, mut normal_windows) = (0, 0, 0);
    for ((patient_id, start), (sum, count)) in &windows {
        let end = start + MINUTE_MS;
        let avg = sum / f64::from(*count);
        let patient = truth
            .patients
            .iter()
            .find(|p| &p.patient_id == patient_id)
            .unwrap();
        let inside_plateau = patient
            .episodes
            .iter()
            .find(|e| e.plateau_start_ms <= *start && end <= e.plateau_end_ms);
        let touches_episode = patient
            .episodes
            .iter()
            .any(|e| *start < e.end_ms && e.start_ms < end);
        match inside_plateau {
            Some(e) if e.kind == EpisodeKind::Tachycardia => {
                assert!(
                    avg > 100.0,
                    "{patient_id} {start}: tachycardia window avg {avg}"
                );
                tachy_windows += 1;
            }
            Some(_) => {
                assert!(
                    avg < 50.0,
                    "{patient_id} {start}: bradycardia window avg {avg}"
                );
                brady_windows += 1;
            }
            None if !touches_episode => {
                assert!(
                    (50.0..=100.0).contains(&avg),
                    "{patient_id} {start}: resting window avg {avg}"
                );
                normal_windows += 1;
            }
            None => {}
        }
    }
    assert!(tachy_windows > 300, "{tachy_windows} tachycardia windows");
    assert!(brady_windows > 100, "{brady_windows} bradycardia windows");
    assert!(normal_windows > 5_000, "{normal_windows} resting windows");
}

#[test]
fn no_episodes_when_disabled() {
    let config = SimConfig {
        patients: 10,
        duration_ms: Some(6 * 3_600_000),
        episodes: EpisodeConfig {
            rate_per_hour: 0.0,
            ..EpisodeConfig::default()
        },
        ..SimConfig::default()
    };
    let (records, truth) = records_and_truth(config);
    assert!(truth.patients.iter().all(|p| p.episodes.is_empty()));
    for ((id, start), (sum, count)) in minute_windows(&records) {
        let avg = sum / f64::from(count);
        assert!((50.0..=100.0).contains(&avg), "{id} {start}: {avg}");
    }
}
