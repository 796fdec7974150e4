//! Timers for the scopes whose watermark is shared by many keys (partition and global): one
//! entry per key with work pending, ordered by the watermark at which it is due.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::Aggregator;
use crate::key_state::Fire;
use crate::output::Emission;
use crate::partition::{Partition, mark_changed};

/// `(next_timer, key)` for every key of a partition with work pending, so a watermark step pops
/// exactly the keys it concerns (arroyo keeps its bins in an ordered map by window end in the
/// same way). `i64::MAX` stands for "no work" and is never stored.
pub(crate) struct Timers<K>(BTreeSet<(i64, K)>);

impl<K: Ord> Timers<K> {
    pub fn new() -> Self {
        Timers(BTreeSet::new())
    }

    /// Files `key` as due at `at`, unless `at` is `i64::MAX`.
    pub fn insert(&mut self, at: i64, key: K) {
        if at != i64::MAX {
            self.0.insert((at, key));
        }
    }

    /// Moves `key` from `old` to `new`; the key is cloned only when they differ.
    #[inline]
    pub fn reschedule<Q>(&mut self, old: i64, new: i64, key: &Q)
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        if old == new {
            return;
        }
        let key = key.to_owned();
        if old != i64::MAX {
            let entry = (old, key);
            self.0.remove(&entry);
            self.insert(new, entry.1);
        } else {
            self.insert(new, key);
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Takes the first key due at or below `wm`.
    fn pop_due(&mut self, wm: i64) -> Option<K> {
        self.0
            .first()
            .is_some_and(|(due, _)| *due <= wm)
            .then(|| self.0.pop_first().expect("checked above").1)
    }

    #[cfg(test)]
    pub fn entries(&self) -> Vec<(i64, K)>
    where
        K: Clone,
    {
        self.0.iter().cloned().collect()
    }
}

/// Brings every key of `part` whose timer is at or below `wm` up to it, firing what it passes.
pub(crate) fn fire_due<K, A>(
    part: &mut Partition<K, A::Acc>,
    wm: i64,
    fire: &Fire<'_, A>,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    while let Some(key) = part.timers.pop_due(wm) {
        let state = part
            .keys
            .states
            .get_mut(&key)
            .expect("timers only name known keys");
        mark_changed(&mut part.keys.changed, state, &key);
        fire.advance(&key, state, wm, out);
        part.timers.insert(state.next_timer, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_moves_an_entry_and_never_stores_no_work() {
        let mut timers = Timers::<String>::new();
        timers.reschedule(i64::MAX, 59_999, "a");
        timers.reschedule(i64::MAX, 9_999, "b");
        timers.reschedule(i64::MAX, i64::MAX, "c");
        assert_eq!(
            timers.entries(),
            vec![(9_999, "b".to_owned()), (59_999, "a".to_owned())]
        );
        timers.reschedule(59_999, 119_999, "a");
        timers.reschedule(9_999, i64::MAX, "b");
        assert_eq!(timers.entries(), vec![(119_999, "a".to_owned())]);
    }

    #[test]
    fn pop_due_takes_keys_in_due_order_up_to_the_watermark() {
        let mut timers = Timers::new();
        timers.insert(20, 'b');
        timers.insert(10, 'a');
        timers.insert(30, 'c');
        timers.insert(i64::MAX, 'z');
        assert_eq!(timers.pop_due(20), Some('a'));
        assert_eq!(timers.pop_due(20), Some('b'));
        assert_eq!(timers.pop_due(20), None);
        assert_eq!(timers.entries(), vec![(30, 'c')]);
    }
}
