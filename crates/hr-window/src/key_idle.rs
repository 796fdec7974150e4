//! Key idleness in event time: a key that its partition has moved on from by more than
//! `key_idle_timeout_ms` is reported silent (and, in key scope, has its windows closed).
//!
//! This is not a watermark rule: a silent key keeps its clock, which still decides whether a
//! straggler for it is late. Only what silence does to the key's windows depends on the scope,
//! and that is [`Scope::key_silent`].

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::Aggregator;
use crate::key_state::Fire;
use crate::output::Emission;
use crate::partition::{Partition, mark_changed};
use crate::watermark::Scope;

/// `(heard_at, key)` for every key of a partition not reported idle, where `heard_at` is the
/// partition's largest event time when the engine last heard from the key.
///
/// Lazy: an entry may be older than the key's true `heard_at`, and is re-checked when it comes
/// due, so hearing from a key costs nothing here unless it was new or idle.
pub(crate) struct IdleQueue<K> {
    queue: BTreeSet<(i64, K)>,
    /// The partition's `max_seen` above which the front entry is due; caches a tree descent per
    /// event.
    due: i64,
}

impl<K: Ord> IdleQueue<K> {
    pub fn new() -> Self {
        IdleQueue {
            queue: BTreeSet::new(),
            due: i64::MAX,
        }
    }

    /// Watches a key that was new or idle, heard from at `heard_at` (the partition's largest
    /// event time, so at or after every entry already queued).
    pub fn watch(&mut self, heard_at: i64, key: K, timeout: i64) {
        self.queue.insert((heard_at, key));
        if self.due == i64::MAX {
            self.refresh(timeout);
        }
    }

    /// Queues a restored key; call [`refresh`](Self::refresh) after the last.
    pub fn restore(&mut self, heard_at: i64, key: K) {
        self.queue.insert((heard_at, key));
    }

    /// Whether some key may have gone silent now that the partition has seen `max_seen`.
    #[inline]
    pub fn is_due(&self, max_seen: i64) -> bool {
        max_seen > self.due
    }

    /// Forgets every key (they were all reported idle).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    pub fn refresh(&mut self, timeout: i64) {
        self.due = self
            .queue
            .first()
            .map_or(i64::MAX, |(heard_at, _)| heard_at.saturating_add(timeout));
    }

    /// The front key if its entry is due: more than `timeout` behind `max_seen`.
    fn pop_due(&mut self, max_seen: i64, timeout: i64) -> Option<K> {
        self.queue
            .first()
            .is_some_and(|(heard_at, _)| heard_at.saturating_add(timeout) < max_seen)
            .then(|| self.queue.pop_first().expect("checked above").1)
    }
}

/// Reports every key of `part` that the partition has moved on from by more than `timeout` of
/// event time, letting the scope close its windows first.
pub(crate) fn detect<S, K, A>(
    part: &mut Partition<K, A::Acc>,
    fire: &Fire<'_, A>,
    timeout: i64,
    delay: i64,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    S: Scope,
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    let max_seen = part.clock.max_seen;
    while let Some(key) = part.idle_keys.pop_due(max_seen, timeout) {
        let state = part
            .keys
            .states
            .get_mut(&key)
            .expect("idle entries only name known keys");
        // "More than the timeout": heard_at + timeout < max_seen.
        if state.heard_at.saturating_add(timeout) >= max_seen {
            part.idle_keys.restore(state.heard_at, key);
            continue;
        }
        state.idle = true;
        mark_changed(&mut part.keys.changed, state, &key);
        S::key_silent(fire, &key, state, part.clock.floor, delay, out);
        out.push(Emission::KeyIdle {
            partition: fire.partition,
            key,
            last_event_time_ms: state.max_seen,
        });
    }
    part.idle_keys.refresh(timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_follows_the_oldest_entry_plus_the_timeout() {
        let mut queue = IdleQueue::new();
        assert!(!queue.is_due(i64::MAX), "nothing watched");
        queue.watch(1_000, "a", 500);
        queue.watch(2_000, "b", 500);
        assert!(
            !queue.is_due(1_500),
            "exactly the timeout is not more than it"
        );
        assert!(queue.is_due(1_501));
        assert_eq!(queue.pop_due(1_501, 500), Some("a"));
        assert_eq!(queue.pop_due(1_501, 500), None, "b is not due yet");
        queue.refresh(500);
        assert!(queue.is_due(2_501) && !queue.is_due(2_500));
        queue.clear();
        queue.refresh(500);
        assert!(!queue.is_due(i64::MAX));
    }
}
