//! Readings held back from delivery: a queue ordered by delivery time on the simulation's
//! clock, ties in the order the readings were held back in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Emitted;
use crate::faults::Fault;

/// A reading waiting for its delivery time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pending {
    pub(super) deliver_at_ms: i64,
    /// Ties in delivery time keep the order the readings were held back in.
    seq: u64,
    pub(super) patient: u32,
    pub(super) reading_time_ms: i64,
    pub(super) bpm: u16,
    pub(super) fault: Option<Fault>,
}

/// The readings waiting for their delivery time, the earliest first.
#[derive(Default)]
pub(super) struct HeldBack {
    pending: BinaryHeap<Reverse<Pending>>,
    /// The sequence number given to the latest reading queued.
    seq: u64,
}

impl HeldBack {
    /// Queues `e` for delivery `delay_ms` after it was taken.
    pub(super) fn hold(&mut self, e: Emitted, delay_ms: i64, fault: Fault) {
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            deliver_at_ms: e.reading_time_ms + delay_ms,
            seq: self.seq,
            patient: e.patient as u32,
            reading_time_ms: e.reading_time_ms,
            bpm: e.bpm,
            fault: Some(fault),
        }));
    }

    /// Takes the earliest reading off the queue if it is due at `t`.
    pub(super) fn take_due(&mut self, t: i64) -> Option<Pending> {
        let Reverse(p) = *self.pending.peek()?;
        if p.deliver_at_ms > t {
            return None;
        }
        self.pending.pop();
        Some(p)
    }

    /// Queues `p` again for delivery at `at`, behind the readings already queued for that time.
    pub(super) fn put_back(&mut self, mut p: Pending, at: i64) {
        p.deliver_at_ms = at;
        self.seq += 1;
        p.seq = self.seq;
        self.pending.push(Reverse(p));
    }

    /// Readings still waiting, other than duplicates (whose original was sent).
    pub(super) fn unsent(&self) -> u64 {
        self.pending
            .iter()
            .filter(|Reverse(p)| p.fault != Some(Fault::Duplicate))
            .count() as u64
    }
}
