//! The seed's payload tests, for the one-off generator and for a simulation.

use hr_sim::{SimConfig, generate_heart_rate_event, wall_clock_ms};
use serde_json::Value;

use crate::common::records;

/// The seed's structural checks on one JSON payload; returns the parsed event time.
#[track_caller]
fn check_payload(json: &[u8], patient_id: &str) -> i64 {
    let value: Value = serde_json::from_slice(json).expect("valid JSON");
    let object = value.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["heart_rate_bpm", "patient_id", "timestamp"]);
    assert_eq!(object["patient_id"].as_str(), Some(patient_id));
    let bpm = object["heart_rate_bpm"].as_u64().expect("an integer bpm");
    assert!((30..=220).contains(&bpm), "implausible bpm {bpm}");
    let ts = object["timestamp"].as_str().expect("a string timestamp");
    // Timezone-aware ISO 8601, exactly the seed's `isoformat()` shape.
    assert_eq!(ts.len(), 32, "{ts}");
    assert_eq!(&ts[10..11], "T");
    assert!(ts.ends_with("+00:00"), "{ts}");
    let event = hr_model::parse_event(json).expect("hr-model accepts it");
    assert_eq!(event.patient_id, patient_id);
    assert_eq!(u64::from(event.heart_rate_bpm), bpm);
    assert_eq!(hr_model::parse_timestamp(ts), Ok(event.event_time_ms));
    event.event_time_ms
}

#[test]
fn generated_event_matches_the_seed_payload() {
    let before = wall_clock_ms();
    for _ in 0..200 {
        let event = generate_heart_rate_event("p042");
        let t = check_payload(event.to_json().as_bytes(), "p042");
        assert!((before..=wall_clock_ms()).contains(&t), "timestamp is now");
    }
}

#[test]
fn simulated_records_match_the_seed_payload() {
    let config = SimConfig {
        patients: 12,
        duration_ms: Some(3_600_000),
        ..SimConfig::default()
    };
    let records = records(config.clone());
    assert_eq!(records.len(), 36_000);
    let mut last_per_patient = std::collections::HashMap::new();
    for r in &records {
        let t = check_payload(&r.payload, &r.patient_id);
        assert_eq!(t, r.event_time_ms);
        assert!((config.start_ms..config.start_ms + 3_600_000).contains(&t));
        // Without faults each monitor's clock only moves forward, one reading per 1.2 s.
        if let Some(prev) = last_per_patient.insert(r.patient_id.clone(), t) {
            assert_eq!(t - prev, 1200, "{}", r.patient_id);
        }
        assert_eq!(r.fault, None);
    }
    let ids: std::collections::BTreeSet<_> =
        records.iter().map(|r| r.patient_id.as_str()).collect();
    assert_eq!(ids.len(), 12);
    assert!(ids.contains("p001") && ids.contains("p012"));
}
