//! What the engine hands back: fired windows, idle notices, per-event outcomes and counters.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// One window of one key, ready for the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredWindow<K, Acc> {
    /// The source partition whose state held the window.
    pub partition: u32,
    /// The key.
    pub key: K,
    /// Window start, epoch milliseconds, inclusive.
    pub start: i64,
    /// Window end, epoch milliseconds, exclusive.
    pub end: i64,
    /// The aggregate of every event of the window so far.
    pub acc: Acc,
    /// 0 for the first emission of this window; each allowed-lateness update emits the whole
    /// window again with the next revision, so a consumer keeps the highest.
    pub revision: u32,
}

/// Something the engine emits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Emission<K, Acc> {
    /// A window fired (or re-fired within allowed lateness).
    Fired(FiredWindow<K, Acc>),
    /// A key went silent: its partition's largest event time moved on by more than
    /// `key_idle_timeout_ms` since the engine last heard from it. Reported once per silence; the
    /// key's next record makes it active again.
    KeyIdle {
        /// The partition the key lives in.
        partition: u32,
        /// The key.
        key: K,
        /// The largest event time the key ever sent.
        last_event_time_ms: i64,
    },
    /// A key reported by [`Emission::KeyIdle`] sent a record again. Pushed by the call that
    /// processes that record, before anything the record makes fire.
    KeyResumed {
        /// The partition the key lives in.
        partition: u32,
        /// The key.
        key: K,
        /// The event time of the record that ended the silence.
        event_time_ms: i64,
    },
}

impl<K, Acc> Emission<K, Acc> {
    /// The key the emission is about.
    pub fn key(&self) -> &K {
        match self {
            Emission::Fired(w) => &w.key,
            Emission::KeyIdle { key, .. } | Emission::KeyResumed { key, .. } => key,
        }
    }

    /// The partition whose state produced it.
    pub fn partition(&self) -> u32 {
        match self {
            Emission::Fired(w) => w.partition,
            Emission::KeyIdle { partition, .. } | Emission::KeyResumed { partition, .. } => {
                *partition
            }
        }
    }

    /// Resumed notices come first (the record that ends a silence precedes what it fires), then
    /// fired windows, then idle notices.
    fn rank(&self) -> u8 {
        match self {
            Emission::KeyResumed { .. } => 0,
            Emission::Fired(_) => 1,
            Emission::KeyIdle { .. } => 2,
        }
    }
}

impl<K: Ord, Acc> Emission<K, Acc> {
    /// The engine's output order: fired windows by end, then key, then partition and start;
    /// idle notices after them by key, then partition.
    pub(crate) fn output_order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Emission::Fired(a), Emission::Fired(b)) => {
                (a.end, &a.key, a.partition, a.start).cmp(&(b.end, &b.key, b.partition, b.start))
            }
            (a, b) => (a.rank(), a.key(), a.partition()).cmp(&(b.rank(), b.key(), b.partition())),
        }
    }
}

/// What became of one event. The engine never drops one silently: every event is either
/// aggregated or handed back as late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The event was added to its window(s).
    Aggregated,
    /// Every window of the event is past its allowed lateness; the caller owns the event (for
    /// example, to a late topic).
    Late {
        /// The watermark that applied to the event when it arrived.
        watermark_ms: i64,
        /// How far the event time is behind that watermark (`watermark_ms − event time`, ≥ 0).
        lateness_ms: i64,
    },
}

/// Running totals and current state sizes, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counters {
    /// Events added to windows, since the engine was created.
    pub aggregated: u64,
    /// Events returned as late, since the engine was created.
    pub late: u64,
    /// First emissions of windows (revision 0).
    pub windows_fired: u64,
    /// Re-emissions within allowed lateness (revision > 0).
    pub windows_refired: u64,
    /// [`Emission::KeyIdle`] notices.
    pub keys_went_idle: u64,
    /// Partitions with state now.
    pub partitions: usize,
    /// Keys with state now (a key's clock outlives its windows; see
    /// [`crate::WindowEngine::remove_partition`] for how state is dropped).
    pub keys: usize,
    /// Panes held now, one accumulator each.
    pub open_panes: usize,
    /// Key-windows holding data that have not fired yet.
    pub pending_windows: usize,
    /// Key-windows that have fired and may still re-fire within allowed lateness.
    pub retained_windows: usize,
}
