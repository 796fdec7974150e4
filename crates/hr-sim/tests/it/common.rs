//! Helpers shared by the integration tests.

use std::collections::BTreeMap;

use hr_sim::{Record, SimConfig, Simulation};

pub const MINUTE_MS: i64 = 60_000;

/// All records of a run.
pub fn records(config: SimConfig) -> Vec<Record> {
    Simulation::new(config).expect("valid config").collect()
}

/// A run's records and its ground truth.
pub fn records_and_truth(config: SimConfig) -> (Vec<Record>, hr_sim::GroundTruth) {
    let mut sim = Simulation::new(config).expect("valid config");
    let records: Vec<Record> = sim.by_ref().collect();
    (records, sim.ground_truth())
}

/// Per patient, one-minute tumbling windows (epoch-aligned) of the valid records' heart rates:
/// `window start -> (sum, count)`.
pub fn minute_windows(records: &[Record]) -> BTreeMap<(String, i64), (f64, u32)> {
    let mut windows: BTreeMap<(String, i64), (f64, u32)> = BTreeMap::new();
    for r in records {
        let Ok(event) = hr_model::parse_event(&r.payload) else {
            continue;
        };
        let start = event.event_time_ms - event.event_time_ms.rem_euclid(MINUTE_MS);
        let w = windows.entry((event.patient_id, start)).or_default();
        w.0 += f64::from(event.heart_rate_bpm);
        w.1 += 1;
    }
    windows
}
