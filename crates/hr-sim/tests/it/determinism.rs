//! Same seed, same bytes.

use std::process::Command;

use hr_sim::{EpisodeConfig, FaultConfig, SimConfig};

use crate::common::{records, records_and_truth};

fn everything_on(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        patients: 8,
        duration_ms: Some(2 * 3_600_000),
        episodes: EpisodeConfig {
            rate_per_hour: 2.0,
            ..EpisodeConfig::default()
        },
        faults: FaultConfig {
            out_of_order: 0.02,
            late: 0.01,
            malformed: 0.01,
            duplicate: 0.01,
            silence_rate_per_hour: 1.0,
            clock_skew: vec![("p003".into(), -90_000)],
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    }
}

fn bytes(config: SimConfig) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records(config) {
        out.extend_from_slice(r.patient_id.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(&r.payload);
        out.push(b'\n');
    }
    out
}

#[test]
fn same_seed_same_bytes() {
    let a = bytes(everything_on(42));
    assert!(a.len() > 1_000_000);
    assert_eq!(a, bytes(everything_on(42)));
    assert_ne!(a, bytes(everything_on(43)));
}

#[test]
fn adding_patients_leaves_the_others_unchanged() {
    let config = |patients: usize, rate_per_sec: f64| SimConfig {
        patients,
        rate_per_sec,
        duration_ms: Some(4 * 3_600_000),
        episodes: EpisodeConfig {
            rate_per_hour: 2.0,
            ..EpisodeConfig::default()
        },
        ..SimConfig::default()
    };
    // Twice the patients at twice the rate: each patient reads as often as before.
    let (small, small_truth) = records_and_truth(config(3, 10.0));
    let (large, large_truth) = records_and_truth(config(6, 20.0));
    assert_eq!(small_truth.patients[..], large_truth.patients[..3]);
    assert!(small_truth.patients.iter().any(|p| !p.episodes.is_empty()));
    // Outside episodes a reading is baseline + drift + noise, all from the patient's own
    // streams; inside, the ramp is sampled at slightly different instants, so skip those.
    let of = |rs: &[hr_sim::Record], id: &str| -> Vec<(i64, u16)> {
        rs.iter()
            .filter(|r| r.patient_id == id)
            .map(|r| (r.event_time_ms, r.heart_rate_bpm))
            .collect()
    };
    for (n, id) in ["p001", "p002", "p003"].into_iter().enumerate() {
        let episodes = &small_truth.patients[n].episodes;
        let in_episode = |t: i64| {
            episodes
                .iter()
                .any(|e| (e.start_ms - 1000..e.end_ms + 1000).contains(&t))
        };
        let (a, b) = (of(&small, id), of(&large, id));
        assert_eq!(a.len(), b.len());
        let mut compared = 0;
        for (&(ta, ba), &(tb, bb)) in a.iter().zip(&b) {
            assert!((ta - tb).abs() < 1000);
            if !in_episode(ta) {
                assert_eq!(ba, bb, "{id} at {ta}");
                compared += 1;
            }
        }
        assert!(compared > 20_000, "{compared}");
    }
}

#[test]
fn binary_writes_the_same_file_and_truth_twice() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(format!("{name}.jsonl"));
        let truth = dir.path().join(format!("{name}.truth.json"));
        let status = Command::new(env!("CARGO_BIN_EXE_hr-sim"))
            .args([
                "--output",
                "file",
                "--start",
                "2025-11-19T07:00:00Z",
                "--duration",
                "30m",
            ])
            .args(["--patients", "5", "--seed", seed, "--no-progress"])
            .args([
                "--episode-rate",
                "4",
                "--out-of-order",
                "0.02",
                "--late",
                "0.01",
            ])
            .args([
                "--malformed",
                "0.02",
                "--duplicates",
                "0.01",
                "--silence-rate",
                "1",
            ])
            .args(["--clock-skew", "p002=45s"])
            .arg("--file")
            .arg(&out)
            .arg("--truth")
            .arg(&truth)
            .status()
            .unwrap();
        assert!(status.success());
        (std::fs::read(out).unwrap(), std::fs::read(truth).unwrap())
    };
    let (data_a, truth_a) = run("a", "9");
    let (data_b, truth_b) = run("b", "9");
    let (data_c, _) = run("c", "10");
    assert_eq!(data_a.iter().filter(|&&b| b == b'\n').count(), {
        let truth: serde_json::Value = serde_json::from_slice(&truth_a).unwrap();
        truth["records"].as_u64().unwrap() as usize
    });
    assert_eq!(data_a, data_b);
    assert_eq!(truth_a, truth_b);
    assert_ne!(data_a, data_c);
}
