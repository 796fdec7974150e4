//! The heart-rate reading as it travels through the system.

use serde::{Deserialize, Serialize};

/// One heart-rate reading from one patient's monitor.
///
/// On the wire it is the seed's JSON shape,
/// `{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":94}`;
/// in memory the timestamp is epoch milliseconds (`event_time_ms`), which is what windows use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// The patient (also the Kafka key, so one patient stays in one partition).
    pub patient_id: String,
    /// Event time: when the monitor took the reading, epoch milliseconds UTC.
    pub event_time_ms: i64,
    /// Beats per minute.
    pub heart_rate_bpm: u16,
}
