//! Partition scope: one clock per source partition.
//!
//! The partition's watermark is its largest event time less the delay and 1 ms, whichever key
//! the records belong to. Each key with work pending is filed in the partition's timer queue at
//! the watermark where that work falls due, and a record that moves the partition's watermark
//! fires exactly the keys it passes. Output depends only on each partition's record sequence.

use crate::key_state::KeyState;
use crate::partition::PartitionClock;
use crate::watermark::{GlobalClock, Moved, Scope};

/// The rules of [`WatermarkScope::Partition`](crate::WatermarkScope::Partition).
pub(crate) struct PartitionScope;

impl Scope for PartitionScope {
    const TIMERS: bool = true;

    #[inline]
    fn watermark<Acc>(
        _global: &GlobalClock,
        part: PartitionClock,
        _key: Option<&KeyState<Acc>>,
        delay: i64,
    ) -> i64 {
        part.watermark(delay)
    }

    #[inline]
    fn partition_moved(
        before: PartitionClock,
        after: PartitionClock,
        _woke: bool,
        delay: i64,
    ) -> Moved {
        let wm = after.watermark(delay);
        if wm > before.watermark(delay) {
            Moved::Partition(wm)
        } else {
            Moved::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(max_seen: i64) -> PartitionClock {
        PartitionClock {
            max_seen,
            floor: i64::MIN,
        }
    }

    #[test]
    fn every_key_of_a_partition_is_judged_by_the_partitions_clock() {
        let global = GlobalClock::new();
        let mut lagging = KeyState::<i64>::new();
        lagging.hear(1_000, 90_000);
        let part = clock(90_000);
        assert_eq!(
            PartitionScope::watermark(&global, part, Some(&lagging), 5_000),
            84_999
        );
        assert_eq!(
            PartitionScope::watermark(&global, part, None::<&KeyState<i64>>, 5_000),
            84_999
        );
        assert_eq!(
            PartitionScope::partition_watermark(&global, part, 5_000),
            84_999
        );
    }

    #[test]
    fn only_a_record_that_raises_the_partitions_watermark_fires() {
        assert_eq!(
            PartitionScope::partition_moved(clock(70_000), clock(70_001), false, 5_000),
            Moved::Partition(64_999 + 1)
        );
        assert_eq!(
            PartitionScope::partition_moved(clock(70_000), clock(70_000), true, 5_000),
            Moved::Nothing,
            "a straggler moves nothing, and processing-time idleness is global scope's"
        );
        assert_eq!(
            PartitionScope::partition_moved(clock(i64::MIN), clock(10), false, 5_000),
            Moved::Partition(-4_991)
        );
    }
}
