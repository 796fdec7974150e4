//! Snapshots, changelog records and restores of the engine's per-partition state.

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::WindowEngine;
use crate::Aggregator;
use crate::partition::Partition;
use crate::snapshot::{
    KeySnapshot, PartitionChanges, PartitionMeta, PartitionSnapshot, RestoreError,
};
use crate::watermark::{Scope, with_scope};

impl<K, A> WindowEngine<K, A>
where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    /// Captures the state of `partition`, or `None` if the engine has none for it.
    ///
    /// # Example
    ///
    /// ```
    /// # use hr_window::{Aggregator, EngineConfig, WindowEngine};
    /// # struct Count;
    /// # impl Aggregator for Count {
    /// #     type Input = ();
    /// #     type Acc = u64;
    /// #     fn create(&self) -> u64 { 0 }
    /// #     fn add(&self, acc: &mut u64, _: &()) { *acc += 1 }
    /// #     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
    /// # }
    /// let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// let mut out = Vec::new();
    /// engine.process(0, "p001", 10_000, &(), &mut out);
    /// let json = serde_json::to_string(&engine.snapshot(0).unwrap())?;
    ///
    /// // Another engine (after a crash, or on the instance that gets the partition) carries on.
    /// let mut restored = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// restored.restore(0, serde_json::from_str(&json)?)?;
    /// restored.process(0, "p001", 65_000, &(), &mut out);
    /// assert_eq!(out.len(), 1, "the window [0, 60 s) held the event from before the snapshot");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self, partition: u32) -> Option<PartitionSnapshot<K, A::Acc>>
    where
        K: Serialize,
        A::Acc: Serialize,
    {
        let part = self.partitions.get(&partition)?;
        let mut keys: Vec<KeySnapshot<K, A::Acc>> = part
            .keys
            .states
            .iter()
            .map(|(key, state)| KeySnapshot::capture(key.clone(), state))
            .collect();
        keys.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        Some(PartitionSnapshot {
            window: self.config.window,
            out_of_orderness_ms: self.config.out_of_orderness_ms,
            allowed_lateness_ms: self.config.allowed_lateness_ms,
            scope: self.config.scope,
            max_event_time_ms: part.clock.max_seen,
            floor_ms: part.clock.floor,
            keys,
        })
    }

    /// What changed in `partition` since the previous call (or since it was added or restored):
    /// the partition's meta record and a snapshot of each key whose state changed, sorted by
    /// key. `None` if the engine has no state for the partition. A changelog that writes these at
    /// each commit holds, per key, the same state [`snapshot`](Self::snapshot) would capture, at
    /// a cost that follows the keys that changed rather than all keys.
    ///
    /// # Example
    ///
    /// ```
    /// # use hr_window::{Aggregator, EngineConfig, PartitionSnapshot, WindowEngine};
    /// # struct Count;
    /// # impl Aggregator for Count {
    /// #     type Input = ();
    /// #     type Acc = u64;
    /// #     fn create(&self) -> u64 { 0 }
    /// #     fn add(&self, acc: &mut u64, _: &()) { *acc += 1 }
    /// #     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
    /// # }
    /// let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// let mut out = Vec::new();
    /// engine.process(0, "p001", 10_000, &(), &mut out);
    /// engine.process(0, "p002", 10_000, &(), &mut out);
    /// assert_eq!(engine.take_changes(0).unwrap().keys.len(), 2);
    /// engine.process(0, "p002", 11_000, &(), &mut out);
    /// let changes = engine.take_changes(0).unwrap();
    /// assert_eq!(changes.keys.len(), 1, "only p002 changed");
    /// assert_eq!(changes.keys[0].key(), "p002");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_changes(&mut self, partition: u32) -> Option<PartitionChanges<K, A::Acc>> {
        let part = self.partitions.get_mut(&partition)?;
        let mut keys = Vec::with_capacity(part.keys.changed.len());
        part.keys
            .drain_changed(|key, state| keys.push(KeySnapshot::capture(key, state)));
        keys.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        Some(PartitionChanges {
            meta: PartitionMeta::new(&self.config, part.clock.max_seen, part.clock.floor),
            keys,
        })
    }

    /// Replaces the state of `partition` with `snapshot`. In key and partition scope, replaying the
    /// partition's records after the snapshot point then reproduces an uninterrupted run exactly.
    ///
    /// # Errors
    ///
    /// [`RestoreError::ConfigMismatch`] if the snapshot was taken with another window, delay,
    /// lateness or scope; [`RestoreError::Corrupt`] if its panes or windows are out of order or off
    /// the grid. The engine is unchanged on error.
    pub fn restore(
        &mut self,
        partition: u32,
        snapshot: PartitionSnapshot<K, A::Acc>,
    ) -> Result<(), RestoreError>
    where
        K: DeserializeOwned,
        A::Acc: DeserializeOwned,
    {
        let config = &self.config;
        let mismatch = if snapshot.window != config.window {
            Some("window")
        } else if snapshot.out_of_orderness_ms != config.out_of_orderness_ms {
            Some("out_of_orderness_ms")
        } else if snapshot.allowed_lateness_ms != config.allowed_lateness_ms {
            Some("allowed_lateness_ms")
        } else if snapshot.scope != config.scope {
            Some("scope")
        } else {
            None
        };
        if let Some(field) = mismatch {
            return Err(RestoreError::ConfigMismatch { field });
        }
        let timers = with_scope!(self.config.scope, S => S::TIMERS);
        let mut part = Partition::new(snapshot.floor_ms);
        part.clock.max_seen = snapshot.max_event_time_ms;
        part.keys.states.reserve(snapshot.keys.len());
        for key in snapshot.keys {
            let (key, state) = key.into_state(&self.grid)?;
            if timers && state.next_timer != i64::MAX {
                part.timers.insert(state.next_timer, key.clone());
            }
            if self.config.key_idle_timeout_ms.is_some() && !state.idle {
                part.idle_keys.restore(state.heard_at, key.clone());
            }
            part.keys.states.insert(key, state);
        }
        if let Some(timeout) = self.config.key_idle_timeout_ms {
            part.idle_keys.refresh(timeout);
        }
        self.partitions.insert(partition, part);
        Ok(())
    }
}
