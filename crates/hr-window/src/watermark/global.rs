//! Global scope: one watermark for the whole engine, as Flink's `KafkaSource` followed by a
//! window operator has.
//!
//! Each partition contributes a [`Watermark`]: its own bounded-out-of-orderness clock, or
//! [`Watermark::Idle`] once it has gone without records for `partition_idle_timeout` of
//! processing time (Flink's `withIdleness`). The global watermark is their combination by
//! minimum, idle partitions left out, and it only moves forward: with every partition idle it
//! stays where it is, and a partition that wakes up behind it does not pull it back (its records
//! are late). Keys with work pending wait in their partition's timer queue, and every step of the
//! global watermark fires what it passes in every partition. Output depends on how partitions
//! interleave and on the wall clock; the scope exists for side-by-side checks against Flink.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::Aggregator;
use crate::key_state::{Fire, KeyState};
use crate::output::Emission;
use crate::partition::{Partition, PartitionClock};
use crate::watermark::{Moved, Scope, Watermark, fire_due};

/// The rules of [`WatermarkScope::Global`](crate::WatermarkScope::Global).
pub(crate) struct GlobalScope;

impl Scope for GlobalScope {
    const TIMERS: bool = true;

    #[inline]
    fn watermark<Acc>(
        global: &GlobalClock,
        _part: PartitionClock,
        _key: Option<&KeyState<Acc>>,
        _delay: i64,
    ) -> i64 {
        global.current()
    }

    fn partition_watermark(global: &GlobalClock, _part: PartitionClock, _delay: i64) -> i64 {
        global.current()
    }

    #[inline]
    fn partition_moved(
        before: PartitionClock,
        after: PartitionClock,
        woke: bool,
        delay: i64,
    ) -> Moved {
        // A partition that wakes up counts again even if its clock did not move.
        if woke || after.watermark(delay) > before.watermark(delay) {
            Moved::GlobalInput
        } else {
            Moved::Nothing
        }
    }
}

/// The global watermark: the minimum of the partitions' inputs, moving forward only (arroyo's
/// `WatermarkHolder` over its inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GlobalClock {
    current: i64,
}

impl GlobalClock {
    pub fn new() -> Self {
        GlobalClock { current: i64::MIN }
    }

    /// The watermark now: `i64::MIN` until every active partition has one.
    #[inline]
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Combines `inputs`; returns the new watermark if that moved it forward. With every input
    /// idle the watermark stays where it is, as Flink's combined watermark does; it never moves
    /// backwards when an input wakes up behind it.
    pub fn advance(&mut self, inputs: impl IntoIterator<Item = Watermark>) -> Option<i64> {
        let Watermark::EventTime(candidate) = Watermark::min_of(inputs) else {
            return None;
        };
        (candidate > self.current).then(|| {
            self.current = candidate;
            candidate
        })
    }

    /// Ends a bounded input: +∞.
    pub fn finish(&mut self) {
        self.current = i64::MAX;
    }
}

/// What `part` contributes to the global watermark.
pub(crate) fn input<K, Acc>(part: &Partition<K, Acc>, delay: i64) -> Watermark {
    if part.activity.is_idle() {
        Watermark::Idle
    } else {
        Watermark::EventTime(part.clock.watermark(delay))
    }
}

/// Combines every partition's input again and fires, in every partition, what the global
/// watermark passes.
pub(crate) fn advance<K, A>(
    clock: &mut GlobalClock,
    partitions: &mut BTreeMap<u32, Partition<K, A::Acc>>,
    fire: &Fire<'_, A>,
    delay: i64,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    let Some(wm) = clock.advance(partitions.values().map(|part| input(part, delay))) else {
        return;
    };
    for (&id, part) in partitions {
        fire_due(part, wm, &fire.in_partition(id), out);
    }
}

/// Lets processing time pass: partitions quiet for more than `timeout` go idle, and the global
/// watermark is combined again.
pub(crate) fn on_processing_time<K, A>(
    clock: &mut GlobalClock,
    partitions: &mut BTreeMap<u32, Partition<K, A::Acc>>,
    now: Instant,
    timeout: Duration,
    fire: &Fire<'_, A>,
    delay: i64,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    for part in partitions.values_mut() {
        part.activity.check(now, timeout);
    }
    advance(clock, partitions, fire, delay, out);
}

/// Processing-time idleness of one partition, after Flink's `WatermarksWithIdleness`: a count of
/// records, the count at the last check, and since when the count has not moved.
#[derive(Clone, Debug, Default)]
pub(crate) struct Activity {
    records: u64,
    checked: u64,
    inactive_since: Option<Instant>,
    idle: bool,
}

impl Activity {
    /// A record arrived: counts it and makes the partition active. Returns whether it was idle.
    #[inline]
    pub fn record(&mut self) -> bool {
        self.records = self.records.wrapping_add(1);
        std::mem::replace(&mut self.idle, false)
    }

    /// A check at `now`: as in Flink, the partition is idle once no record arrived between two
    /// checks spanning more than `timeout`.
    pub fn check(&mut self, now: Instant, timeout: Duration) {
        if self.records != self.checked {
            self.checked = self.records;
            self.inactive_since = None;
            return;
        }
        match self.inactive_since {
            None => self.inactive_since = Some(now),
            Some(since) => {
                if now.saturating_duration_since(since) > timeout {
                    self.idle = true;
                }
            }
        }
    }

    #[inline]
    pub fn is_idle(&self) -> bool {
        self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Sum, fired, tumbling};

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_global_clock_is_the_minimum_of_active_inputs_and_never_moves_back() {
        let mut clock = GlobalClock::new();
        let t = Watermark::EventTime;
        assert_eq!(
            clock.advance([t(i64::MIN), t(50)]),
            None,
            "one input has nothing yet"
        );
        assert_eq!(clock.advance([t(30), t(50)]), Some(30));
        assert_eq!(
            clock.advance([Watermark::Idle, t(50)]),
            Some(50),
            "idle left out"
        );
        assert_eq!(clock.advance([Watermark::Idle, Watermark::Idle]), None);
        assert_eq!(clock.current(), 50, "all idle: held");
        assert_eq!(
            clock.advance([t(10), t(60)]),
            None,
            "a waking input is behind"
        );
        assert_eq!(clock.current(), 50);
        clock.finish();
        assert_eq!(clock.current(), i64::MAX);
    }

    #[test]
    fn a_partition_goes_idle_after_two_checks_more_than_the_timeout_apart_without_a_record() {
        let now = Instant::now();
        let mut activity = Activity::default();
        activity.check(now, SECOND);
        activity.check(now + SECOND, SECOND);
        assert!(
            !activity.is_idle(),
            "exactly the timeout is not more than it"
        );
        activity.check(now + SECOND * 2, SECOND);
        assert!(activity.is_idle());
        assert!(activity.record(), "the record wakes it");
        assert!(!activity.is_idle());
        activity.check(now + SECOND * 10, SECOND);
        activity.check(now + SECOND * 10, SECOND);
        assert!(!activity.is_idle(), "the record restarted the count");
        assert!(!activity.record());
    }

    #[test]
    fn a_partition_contributes_its_clock_or_idle() {
        let mut part = Partition::<String, i64>::new(i64::MIN);
        assert_eq!(input(&part, 5_000), Watermark::EventTime(i64::MIN));
        part.clock.max_seen = 70_000;
        assert_eq!(input(&part, 5_000), Watermark::EventTime(64_999));
        let now = Instant::now();
        part.activity.check(now, SECOND);
        part.activity.check(now + SECOND * 2, SECOND);
        assert_eq!(input(&part, 5_000), Watermark::Idle);
    }

    #[test]
    fn a_step_of_the_global_watermark_fires_in_every_partition_and_a_wake_up_counts() {
        let grid = tumbling(60_000);
        let fire = Fire {
            grid: &grid,
            aggregator: &Sum,
            partition: 0,
        };
        let mut clock = GlobalClock::new();
        let mut partitions = BTreeMap::new();
        let mut out = Vec::new();
        for (id, key, t, x) in [
            (0, "a", 10_000, 1),
            (1, "b", 20_000, 2),
            (1, "b", 80_000, 4),
        ] {
            let part = partitions
                .entry(id)
                .or_insert_with(|| Partition::new(i64::MIN));
            let before = part.clock;
            let state = part
                .keys
                .states
                .entry(key.to_owned())
                .or_insert_with(KeyState::new);
            let timer_before = state.next_timer;
            fire.assign(key, state, t, &x, clock.current(), &mut out);
            part.clock.max_seen = part.clock.max_seen.max(t);
            part.timers.reschedule(timer_before, state.next_timer, key);
            if GlobalScope::partition_moved(before, part.clock, false, 5_000) == Moved::GlobalInput
            {
                advance(&mut clock, &mut partitions, &fire, 5_000, &mut out);
            }
        }
        assert!(out.is_empty(), "partition 0 holds the watermark at 4 999");
        assert_eq!(clock.current(), 4_999);
        partitions.get_mut(&0).unwrap().clock.max_seen = 66_000;
        advance(&mut clock, &mut partitions, &fire, 5_000, &mut out);
        assert_eq!(clock.current(), 60_999);
        assert_eq!(
            out,
            vec![fired(0, "a", 0, 60_000, 1), fired(1, "b", 0, 60_000, 2)]
        );
        let same = PartitionClock {
            max_seen: 1,
            floor: i64::MIN,
        };
        assert_eq!(
            GlobalScope::partition_moved(same, same, true, 5_000),
            Moved::GlobalInput
        );
        assert_eq!(
            GlobalScope::partition_moved(same, same, false, 5_000),
            Moved::Nothing
        );
    }
}
