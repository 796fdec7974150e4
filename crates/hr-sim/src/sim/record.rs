//! The records a [`Simulation`](super::Simulation) hands out: borrowed from its buffers, or
//! owned.

use hr_model::Event;

use crate::faults::Fault;

/// One record as it leaves the simulator, borrowed from the simulation's reused buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The Kafka key: the patient id of the monitor that sent it.
    pub key: &'a str,
    /// The JSON bytes (valid, or malformed when `fault` says so).
    pub payload: &'a [u8],
    /// The timestamp written in the record (the device's clock, skew included).
    pub event_time_ms: i64,
    /// When the reading was really taken (the simulation's clock).
    pub reading_time_ms: i64,
    /// When the record is delivered on the simulation's clock; a real-time run waits for it.
    pub deliver_at_ms: i64,
    /// The heart rate the monitor measured.
    pub heart_rate_bpm: u16,
    /// What, if anything, is unusual about this record.
    pub fault: Option<Fault>,
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            patient_id: self.key.to_owned(),
            payload: self.payload.to_vec(),
            event_time_ms: self.event_time_ms,
            reading_time_ms: self.reading_time_ms,
            deliver_at_ms: self.deliver_at_ms,
            heart_rate_bpm: self.heart_rate_bpm,
            fault: self.fault,
        }
    }
}

/// An owned [`RecordRef`], as the [`Simulation`](super::Simulation) iterator yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The Kafka key: the patient id of the monitor that sent it.
    pub patient_id: String,
    /// The JSON bytes.
    pub payload: Vec<u8>,
    /// The timestamp written in the record (device clock).
    pub event_time_ms: i64,
    /// When the reading was really taken.
    pub reading_time_ms: i64,
    /// When the record is delivered on the simulation's clock.
    pub deliver_at_ms: i64,
    /// The heart rate the monitor measured.
    pub heart_rate_bpm: u16,
    /// What, if anything, is unusual about this record.
    pub fault: Option<Fault>,
}

impl Record {
    /// The event this record carries, or `None` for a malformed record.
    pub fn event(&self) -> Option<Event> {
        match self.fault {
            Some(Fault::Malformed(_)) => None,
            _ => Some(Event {
                patient_id: self.patient_id.clone(),
                event_time_ms: self.event_time_ms,
                heart_rate_bpm: self.heart_rate_bpm,
            }),
        }
    }
}
