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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySnapshot<K, Acc> {
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

impl<K, Acc: Clone> KeySnapshot<K, Acc> {
    pub(crate) fn key(&self) -> &K {
        &self.key
    }

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
