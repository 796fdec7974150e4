//! The state of one source partition: its keys, its event-time clock, and the queues that say
//! which keys have work at which watermark.

use std::collections::HashMap;
use std::hash::Hash;

use crate::key_idle::IdleQueue;
use crate::key_state::KeyState;
use crate::watermark::{Activity, Timers, bounded};

/// Everything the engine keeps for one source partition. Each part serves one rule, so the
/// engine can borrow them apart: a key's state from `keys` while a scope files the key's timer.
pub(crate) struct Partition<K, Acc> {
    pub keys: Keys<K, Acc>,
    pub clock: PartitionClock,
    /// Partition and global scope: when each key next has work (see [`Timers`]).
    pub timers: Timers<K>,
    /// Keys not reported idle, by when they were last heard from (event-time key idleness).
    pub idle_keys: IdleQueue<K>,
    /// Global scope: whether the partition is idle by processing time.
    pub activity: Activity,
}

impl<K: Ord, Acc> Partition<K, Acc> {
    pub fn new(floor: i64) -> Self {
        Partition {
            keys: Keys::new(),
            clock: PartitionClock {
                max_seen: i64::MIN,
                floor,
            },
            timers: Timers::new(),
            idle_keys: IdleQueue::new(),
            activity: Activity::default(),
        }
    }
}

/// A partition's event time: what its records have shown, and the floor `finish` raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionClock {
    /// Largest event time of any record (late or not), as Flink's watermark generator sees every
    /// record before the window operator judges it.
    pub max_seen: i64,
    /// Raised to +∞ by `finish`.
    pub floor: i64,
}

impl PartitionClock {
    /// The partition's bounded-out-of-orderness watermark.
    #[inline]
    pub fn watermark(self, delay: i64) -> i64 {
        bounded(self.max_seen, delay, self.floor)
    }
}

/// The keys of one partition, with the list of those changed since the last `take_changes`.
pub(crate) struct Keys<K, Acc> {
    pub states: HashMap<K, KeyState<Acc>>,
    /// Keys whose state changed since the last `take_changes`, each once (`KeyState::changed`).
    pub changed: Vec<K>,
}

impl<K, Acc> Keys<K, Acc> {
    fn new() -> Self {
        Keys {
            states: HashMap::new(),
            changed: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, Acc: Clone> Keys<K, Acc> {
    /// Calls `f` on every key, listing each as changed.
    pub fn touch_all(&mut self, mut f: impl FnMut(&K, &mut KeyState<Acc>)) {
        for (key, state) in &mut self.states {
            mark_changed(&mut self.changed, state, key);
            f(key, state);
        }
    }

    /// Hands each changed key to `f`, clearing the list.
    pub fn drain_changed(&mut self, mut f: impl FnMut(K, &KeyState<Acc>)) {
        for key in self.changed.drain(..) {
            if let Some(state) = self.states.get_mut(&key) {
                state.changed = false;
                f(key, state);
            }
        }
    }
}

/// Lists `key` among its partition's changed keys, once until the next `take_changes`; the key
/// is cloned only then.
#[inline]
pub(crate) fn mark_changed<K, Q, Acc>(changed: &mut Vec<K>, state: &mut KeyState<Acc>, key: &Q)
where
    Q: ToOwned<Owned = K> + ?Sized,
{
    if !state.changed {
        state.changed = true;
        changed.push(key.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_clock_trails_its_newest_event_by_the_delay_plus_one() {
        let mut clock = PartitionClock {
            max_seen: i64::MIN,
            floor: i64::MIN,
        };
        assert_eq!(clock.watermark(5_000), i64::MIN, "no event yet");
        clock.max_seen = 65_000;
        assert_eq!(clock.watermark(5_000), 59_999);
        clock.floor = i64::MAX;
        assert_eq!(clock.watermark(5_000), i64::MAX, "finished");
    }

    fn enter(keys: &mut Keys<String, i64>, key: &str) {
        let state = keys
            .states
            .entry(key.to_owned())
            .or_insert_with(KeyState::new);
        mark_changed(&mut keys.changed, state, key);
    }

    #[test]
    fn keys_are_listed_as_changed_once_until_drained() {
        let mut keys = Keys::<String, i64>::new();
        enter(&mut keys, "a");
        enter(&mut keys, "a");
        enter(&mut keys, "b");
        assert_eq!(keys.changed, vec!["a".to_owned(), "b".to_owned()]);
        let mut drained = Vec::new();
        keys.drain_changed(|key, _| drained.push(key));
        assert_eq!(drained, vec!["a".to_owned(), "b".to_owned()]);
        assert!(keys.changed.is_empty());
        keys.touch_all(|_, _| {});
        assert_eq!(keys.changed.len(), 2);
        enter(&mut keys, "a");
        assert_eq!(keys.changed.len(), 2, "already listed");
    }
}
