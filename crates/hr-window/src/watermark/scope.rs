//! The contract every watermark scope fulfils, and how the engine picks one.

use std::hash::Hash;

use crate::Aggregator;
use crate::key_state::{Fire, KeyState};
use crate::output::Emission;
use crate::partition::PartitionClock;
use crate::watermark::GlobalClock;

/// Flink's `BoundedOutOfOrdernessWatermarks`: the largest event time seen, less the delay and
/// 1 ms, held at or above `floor` (which `finish` raises to +∞). `i64::MIN` before any event.
#[inline]
pub(crate) fn bounded(max_seen: i64, delay: i64, floor: i64) -> i64 {
    max_seen.saturating_sub(delay + 1).max(floor)
}

/// The rules of one [`WatermarkScope`](crate::WatermarkScope): whose clock judges an event, what
/// a record moves, and what silence does to a key's windows.
///
/// Implemented by one unit type per scope, each in its own module; the engine is generic over it
/// (see [`with_scope!`]), so each scope's rules compile into their own copy of the per-event path
/// with no dispatch per event.
pub(crate) trait Scope {
    /// Whether windows fire from the partitions' timer queues, as a partition's or the global
    /// watermark passes them (partition and global scope), rather than as each key's own clock
    /// moves (key scope).
    const TIMERS: bool;

    /// The watermark that applies to a key of a partition whose clock is `part` (`key` is `None`
    /// for a key without state): what judges the key's next event.
    fn watermark<Acc>(
        global: &GlobalClock,
        part: PartitionClock,
        key: Option<&KeyState<Acc>>,
        delay: i64,
    ) -> i64;

    /// The watermark of a partition as a whole, for metrics.
    fn partition_watermark(_global: &GlobalClock, part: PartitionClock, delay: i64) -> i64 {
        part.watermark(delay)
    }

    /// A record has reached its key (the key's largest event time includes it): move the key's
    /// own clock, firing what it passes. Only key scope gives each key a clock.
    #[inline]
    fn key_moved<K, Q, A>(
        _fire: &Fire<'_, A>,
        _key: &Q,
        _state: &mut KeyState<A::Acc>,
        _partition_floor: i64,
        _delay: i64,
        _out: &mut Vec<Emission<K, A::Acc>>,
    ) where
        A: Aggregator,
        Q: ToOwned<Owned = K> + ?Sized,
    {
    }

    /// A record has moved its partition's clock from `before` to `after` (`woke`: the partition
    /// was idle by processing time until this record). Says what may now fire.
    #[inline]
    fn partition_moved(
        _before: PartitionClock,
        _after: PartitionClock,
        _woke: bool,
        _delay: i64,
    ) -> Moved {
        Moved::Nothing
    }

    /// A key went silent: its partition moved on without it, or the caller silenced the whole
    /// partition. Only key scope acts, since nothing else would ever move that key's clock.
    fn key_silent<K, A>(
        _fire: &Fire<'_, A>,
        _key: &K,
        _state: &mut KeyState<A::Acc>,
        _partition_floor: i64,
        _delay: i64,
        _out: &mut Vec<Emission<K, A::Acc>>,
    ) where
        K: Clone + Eq + Hash,
        A: Aggregator,
    {
    }
}

/// What a record's move of its partition's clock asks the engine to fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Nothing: the clock that fires windows did not move.
    Nothing,
    /// The partition's timers due at or below this watermark.
    Partition(i64),
    /// The partition's input to the global watermark changed: combine the inputs again and fire
    /// what the global watermark passes, in every partition.
    GlobalInput,
}

/// Evaluates `$body` with the type alias `$S` naming the [`Scope`] of `$scope` (a
/// [`WatermarkScope`](crate::WatermarkScope)).
macro_rules! with_scope {
    ($scope:expr, $S:ident => $body:expr) => {
        match $scope {
            $crate::WatermarkScope::Global => {
                type $S = $crate::watermark::GlobalScope;
                $body
            }
            $crate::WatermarkScope::Partition => {
                type $S = $crate::watermark::PartitionScope;
                $body
            }
            $crate::WatermarkScope::Key => {
                type $S = $crate::watermark::KeyScope;
                $body
            }
        }
    };
}
pub(crate) use with_scope;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WatermarkScope;

    #[test]
    fn bounded_trails_the_newest_event_by_delay_plus_one_and_respects_the_floor() {
        assert_eq!(bounded(65_000, 5_000, i64::MIN), 59_999);
        assert_eq!(bounded(65_000, 0, i64::MIN), 64_999);
        assert_eq!(bounded(i64::MIN, 5_000, i64::MIN), i64::MIN, "no event yet");
        assert_eq!(bounded(65_000, 5_000, 70_000), 70_000, "held at the floor");
        assert_eq!(bounded(i64::MIN, 5_000, i64::MAX), i64::MAX, "finished");
    }

    #[test]
    fn with_scope_picks_the_scope_that_keeps_timers() {
        let timers = |scope: WatermarkScope| with_scope!(scope, S => S::TIMERS);
        assert!(timers(WatermarkScope::Global));
        assert!(timers(WatermarkScope::Partition));
        assert!(!timers(WatermarkScope::Key));
    }
}
