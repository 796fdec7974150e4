//! Key scope: every key is its own clock.
//!
//! A key's watermark is its own largest event time less the delay and 1 ms, so a lagging key
//! cannot make other keys' data late and a key whose clock runs ahead cannot make theirs late
//! either. A key's windows fire as its own records move its clock, with no timer queue; the one
//! thing that can move a key's clock without a record of it is silence: a key that has gone
//! quiet has its windows closed (its floor raised past them), since nothing else ever would.

use std::hash::Hash;

use crate::Aggregator;
use crate::key_state::{Fire, KeyState};
use crate::output::Emission;
use crate::partition::PartitionClock;
use crate::watermark::{GlobalClock, Scope, bounded};

/// The rules of [`WatermarkScope::Key`](crate::WatermarkScope::Key).
pub(crate) struct KeyScope;

/// A key's clock: its bounded-out-of-orderness watermark, held at or above its own floor (raised
/// when it went silent) and its partition's (raised by `finish`).
#[inline]
fn key_watermark<Acc>(state: &KeyState<Acc>, partition_floor: i64, delay: i64) -> i64 {
    bounded(state.max_seen, delay, state.floor.max(partition_floor))
}

impl Scope for KeyScope {
    const TIMERS: bool = false;

    #[inline]
    fn watermark<Acc>(
        _global: &GlobalClock,
        part: PartitionClock,
        key: Option<&KeyState<Acc>>,
        delay: i64,
    ) -> i64 {
        key.map_or(part.floor, |state| key_watermark(state, part.floor, delay))
    }

    #[inline]
    fn key_moved<K, Q, A>(
        fire: &Fire<'_, A>,
        key: &Q,
        state: &mut KeyState<A::Acc>,
        partition_floor: i64,
        delay: i64,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) where
        A: Aggregator,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let wm = key_watermark(state, partition_floor, delay);
        // Only a due timer moves the key: its state then records how far it has fired.
        if wm >= state.next_timer {
            fire.advance(key, state, wm, out);
        }
    }

    fn key_silent<K, A>(
        fire: &Fire<'_, A>,
        key: &K,
        state: &mut KeyState<A::Acc>,
        partition_floor: i64,
        delay: i64,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) where
        K: Clone + Eq + Hash,
        A: Aggregator,
    {
        // Stragglers for the closed windows then come back late instead of opening a second copy.
        state.floor = state.closing_floor(fire.grid);
        let wm = key_watermark(state, partition_floor, delay);
        fire.advance(key, state, wm, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Sum, fired, tumbling};
    use crate::watermark::Moved;

    const OPEN: PartitionClock = PartitionClock {
        max_seen: i64::MIN,
        floor: i64::MIN,
    };

    fn watermark(state: Option<&KeyState<i64>>, part: PartitionClock) -> i64 {
        KeyScope::watermark(&GlobalClock::new(), part, state, 5_000)
    }

    #[test]
    fn a_keys_watermark_is_its_own_clock_whatever_its_partition_has_seen() {
        let mut state = KeyState::new();
        let part = PartitionClock {
            max_seen: 500_000,
            ..OPEN
        };
        assert_eq!(
            watermark(None, part),
            i64::MIN,
            "a new key has no clock yet"
        );
        assert_eq!(watermark(Some(&state), part), i64::MIN);
        state.hear(65_000, part.max_seen);
        assert_eq!(watermark(Some(&state), part), 59_999);
        state.floor = 70_000;
        assert_eq!(
            watermark(Some(&state), part),
            70_000,
            "a silent key's floor"
        );
        let finished = PartitionClock {
            floor: i64::MAX,
            ..part
        };
        assert_eq!(watermark(Some(&state), finished), i64::MAX);
        assert_eq!(watermark(None, finished), i64::MAX);
    }

    #[test]
    fn a_key_fires_when_its_own_record_moves_its_clock_past_a_window() {
        let grid = tumbling(60_000);
        let fire = Fire {
            grid: &grid,
            aggregator: &Sum,
            partition: 3,
        };
        let mut state = KeyState::new();
        let mut out = Vec::new();
        for (t, x) in [(10_000, 1), (50_000, 2), (64_999, 8)] {
            let wm = watermark(Some(&state), OPEN);
            fire.assign("k", &mut state, t, &x, wm, &mut out);
            state.hear(t, t);
            KeyScope::key_moved(&fire, "k", &mut state, i64::MIN, 5_000, &mut out);
        }
        assert!(
            out.is_empty(),
            "watermark 59 998, one short of the window's last ms"
        );
        let wm_before = state.wm;
        fire.assign("k", &mut state, 65_000, &4, 59_998, &mut out);
        state.hear(65_000, 65_000);
        KeyScope::key_moved(&fire, "k", &mut state, i64::MIN, 5_000, &mut out);
        assert_eq!(out, vec![fired(3, "k", 0, 60_000, 3)]);
        assert!(state.wm > wm_before);
        assert_eq!(
            KeyScope::partition_moved(OPEN, OPEN, true, 5_000),
            Moved::Nothing,
            "no partition or global clock to move"
        );
    }

    #[test]
    fn silence_closes_a_keys_windows_and_raises_its_floor() {
        let grid = tumbling(60_000);
        let fire = Fire {
            grid: &grid,
            aggregator: &Sum,
            partition: 0,
        };
        let mut state = KeyState::new();
        let mut out = Vec::new();
        fire.assign("k", &mut state, 10_000, &7, i64::MIN, &mut out);
        state.hear(10_000, 10_000);
        KeyScope::key_silent(
            &fire,
            &"k".to_owned(),
            &mut state,
            i64::MIN,
            5_000,
            &mut out,
        );
        assert_eq!(out, vec![fired(0, "k", 0, 60_000, 7)]);
        assert_eq!(state.floor, 59_999);
        assert_eq!(watermark(Some(&state), OPEN), 59_999);
        assert!(state.panes.is_empty(), "nothing left to fire");
    }
}
