//! Per-partition state snapshots, for changelog topics and hand-overs.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{WatermarkScope, WindowSpec};
use crate::key_state::{FiredRecord, KeyState, Pane};
use crate::windows::Grid;

/// Everything one partition's state holds that can affect the engine's future output: the
/// partition's largest event time, and per key its clock, idle bookkeeping, open panes and the
/// fired windows still within allowed lateness (with their revisions). Keys are sorted, so the same
/// state always serialises to the same bytes.
///
/// In [`WatermarkScope::Key`] and [`WatermarkScope::Partition`], restoring a snapshot taken after
/// record X and replaying the partition's records after X reproduces exactly the emissions of an
/// uninterrupted run. The snapshot also records the settings that give the state its meaning, and
/// [`crate::WindowEngine::restore`] refuses it under different ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSnapshot<K, Acc> {
    pub(crate) window: WindowSpec,
    pub(crate) out_of_orderness_ms: i64,
    pub(crate) allowed_lateness_ms: i64,
    pub(crate) scope: WatermarkScope,
    pub(crate) max_event_time_ms: i64,
    pub(crate) floor_ms: i64,
    pub(crate) keys: Vec<KeySnapshot<K, Acc>>,
}

impl<K, Acc> PartitionSnapshot<K, Acc> {
    /// The largest event time the partition has seen, if any.
    pub fn max_event_time_ms(&self) -> Option<i64> {
        (self.max_event_time_ms != i64::MIN).then_some(self.max_event_time_ms)
    }

    /// How many keys the snapshot holds.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// The partition-wide part of a [`PartitionSnapshot`]: the settings that give its state meaning,
/// the partition's largest event time and its floor. A changelog stores it as one record per
/// partition next to one [`KeySnapshot`] record per key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionMeta {
    window: WindowSpec,
    out_of_orderness_ms: i64,
    allowed_lateness_ms: i64,
    scope: WatermarkScope,
    max_event_time_ms: i64,
    floor_ms: i64,
}

/// What changed in one partition since the previous [`crate::WindowEngine::take_changes`]: the
/// partition's meta record and the snapshot of every key whose state changed (an event, a fired
/// window, an idle notice). Restoring the meta with the latest snapshot of every key ever
/// changed gives the same state as a whole [`PartitionSnapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionChanges<K, Acc> {
    /// The partition-wide record, always current.
    pub meta: PartitionMeta,
    /// The keys that changed, sorted by key.
    pub keys: Vec<KeySnapshot<K, Acc>>,
}

impl<K, Acc> PartitionSnapshot<K, Acc> {
    /// Assembles a snapshot from a meta record and key records, e.g. read back from a changelog
    /// (the latest record of each key). Keys are sorted, so equal state gives equal bytes.
    pub fn from_parts(meta: PartitionMeta, mut keys: Vec<KeySnapshot<K, Acc>>) -> Self
    where
        K: Ord,
    {
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        PartitionSnapshot {
            window: meta.window,
            out_of_orderness_ms: meta.out_of_orderness_ms,
            allowed_lateness_ms: meta.allowed_lateness_ms,
            scope: meta.scope,
            max_event_time_ms: meta.max_event_time_ms,
            floor_ms: meta.floor_ms,
            keys,
        }
    }

    /// Splits a snapshot into its meta record and key records (the inverse of
    /// [`from_parts`](Self::from_parts)).
    pub fn into_parts(self) -> (PartitionMeta, Vec<KeySnapshot<K, Acc>>) {
        (
            PartitionMeta {
                window: self.window,
                out_of_orderness_ms: self.out_of_orderness_ms,
                allowed_lateness_ms: self.allowed_lateness_ms,
                scope: self.scope,
                max_event_time_ms: self.max_event_time_ms,
                floor_ms: self.floor_ms,
            },
            self.keys,
        )
    }
}

impl PartitionMeta {
    pub(crate) fn new(config: &crate::EngineConfig, max_event_time_ms: i64, floor_ms: i64) -> Self {
        PartitionMeta {
            window: config.window,
            out_of_orderness_ms: config.out_of_orderness_ms,
            allowed_lateness_ms: config.allowed_lateness_ms,
            scope: config.scope,
            max_event_time_ms,
            floor_ms,
        }
    }
}

/// The state of one key: its clock, idle bookkeeping, open panes and fired windows still within
/// allowed lateness. Serialisable on its own, so a changelog can hold one record per key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySnapshot<K, Acc> {
    key: K,
    max_event_time_ms: i64,
    heard_at_ms: i64,
    floor_ms: i64,
    watermark_ms: i64,
    idle: bool,
    /// `(start, accumulator)`, sorted by start.
    panes: Vec<(i64, Acc)>,
    /// `(end, revision)`, sorted by end.
    fired: Vec<(i64, u32)>,
}

impl<K, Acc> KeySnapshot<K, Acc> {
    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Whether the key holds nothing that can still fire or re-fire: no open pane and no fired
    /// window within allowed lateness. Its clock still matters (a straggler older than it is
    /// late), so such a key is kept, not forgotten.
    pub fn is_quiet(&self) -> bool {
        self.panes.is_empty() && self.fired.is_empty()
    }
}

impl<K, Acc: Clone> KeySnapshot<K, Acc> {
    pub(crate) fn capture(key: K, state: &KeyState<Acc>) -> Self {
        KeySnapshot {
            key,
            max_event_time_ms: state.max_seen,
            heard_at_ms: state.heard_at,
            floor_ms: state.floor,
            watermark_ms: state.wm,
            idle: state.idle,
            panes: state
                .panes
                .iter()
                .map(|p| (p.start, p.acc.clone()))
                .collect(),
            fired: state.fired.iter().map(|f| (f.end, f.revision)).collect(),
        }
    }

    /// Rebuilds the key's state, checking what the engine relies on: panes sorted and on the pane
    /// grid, fired windows sorted and on the window grid.
    pub(crate) fn into_state(self, grid: &Grid) -> Result<(K, KeyState<Acc>), RestoreError> {
        fn sorted_on(starts: impl Iterator<Item = i64>, unit: i64, offset: i64) -> bool {
            let mut previous = None;
            for s in starts {
                if (s - offset).rem_euclid(unit) != 0 || previous.is_some_and(|p| p >= s) {
                    return false;
                }
                previous = Some(s);
            }
            true
        }
        if !sorted_on(self.panes.iter().map(|p| p.0), grid.pane, 0) {
            return Err(RestoreError::Corrupt {
                reason: "panes are not sorted or not on the pane grid",
            });
        }
        if !sorted_on(self.fired.iter().map(|f| f.0), grid.slide, grid.size) {
            return Err(RestoreError::Corrupt {
                reason: "fired windows are not sorted or not on the window grid",
            });
        }
        let mut state = KeyState {
            max_seen: self.max_event_time_ms,
            heard_at: self.heard_at_ms,
            floor: self.floor_ms,
            wm: self.watermark_ms,
            panes: self
                .panes
                .into_iter()
                .map(|(start, acc)| Pane { start, acc })
                .collect::<VecDeque<_>>(),
            fired: self
                .fired
                .into_iter()
                .map(|(end, revision)| FiredRecord { end, revision })
                .collect(),
            next_timer: i64::MAX,
            idle: self.idle,
            changed: false,
        };
        state.next_timer = state.compute_next_timer(grid);
        Ok((self.key, state))
    }
}

/// Why [`crate::WindowEngine::restore`] refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot was taken under a different setting, which would give its state another
    /// meaning.
    ConfigMismatch {
        /// The setting that differs.
        field: &'static str,
    },
    /// The snapshot breaks an invariant the engine relies on.
    Corrupt {
        /// Which one.
        reason: &'static str,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::ConfigMismatch { field } => write!(
                f,
                "snapshot was taken with a different {field} than this engine's"
            ),
            RestoreError::Corrupt { reason } => write!(f, "snapshot is corrupt: {reason}"),
        }
    }
}

impl std::error::Error for RestoreError {}
