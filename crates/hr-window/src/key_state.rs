//! The state of one key in one partition: its panes, its clock, and the windows it has fired that
//! may still change.

use std::collections::VecDeque;

use crate::Aggregator;
use crate::output::{Emission, FiredWindow, Outcome};
use crate::windows::Grid;

/// The events of one key in `[start, start + pane)`, aggregated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pane<Acc> {
    pub start: i64,
    pub acc: Acc,
}

/// A window that has fired and is still within its allowed lateness, so a later event may re-fire
/// it; it remembers the revision last emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FiredRecord {
    pub end: i64,
    pub revision: u32,
}

/// One window ready to leave the engine.
pub(crate) struct Firing<Acc> {
    pub start: i64,
    pub end: i64,
    pub acc: Acc,
    pub revision: u32,
}

/// Per-key state. Windows are not stored: a window is the merge of the panes it covers, and which
/// windows have fired follows from `wm`, the watermark the key's state has been brought up to.
///
/// Invariant after every public engine call: `next_timer` is above the watermark that applies to
/// this key, so every window whose max timestamp is at or below that watermark has fired.
#[derive(Clone, Debug)]
pub(crate) struct KeyState<Acc> {
    /// Largest event time of any record of this key, late or not (`i64::MIN` before the first).
    pub max_seen: i64,
    /// The partition's largest event time when the engine last heard from this key: key idleness
    /// is measured from here, so a key whose own clock lags is not mistaken for a silent one.
    pub heard_at: i64,
    /// A lower bound for this key's clock in key scope, raised when an idle key's windows are
    /// closed so that stragglers for them come back late instead of opening a second copy.
    pub floor: i64,
    /// Windows with max timestamp at or below this have fired.
    pub wm: i64,
    /// Sorted by start, no duplicates; a pane lives until its last window is past lateness.
    pub panes: VecDeque<Pane<Acc>>,
    /// Sorted by end.
    pub fired: VecDeque<FiredRecord>,
    /// The watermark at which this key next has work: a window to fire or state to free.
    pub next_timer: i64,
    /// Reported idle and not heard from since.
    pub idle: bool,
    /// Listed in its partition's changed keys since the last `take_changes`.
    pub changed: bool,
}

impl<Acc: Clone> KeyState<Acc> {
    pub fn new() -> Self {
        KeyState {
            max_seen: i64::MIN,
            heard_at: i64::MIN,
            floor: i64::MIN,
            wm: i64::MIN,
            panes: VecDeque::new(),
            fired: VecDeque::new(),
            next_timer: i64::MAX,
            idle: false,
            changed: false,
        }
    }

    /// Notes a record of this key at event time `t`, when its partition's largest event time is
    /// `partition_max_seen`. Returns whether the key was idle, so the record resumes it.
    #[inline]
    pub fn hear(&mut self, t: i64, partition_max_seen: i64) -> bool {
        self.max_seen = self.max_seen.max(t);
        self.heard_at = partition_max_seen;
        std::mem::replace(&mut self.idle, false)
    }

    /// Adds an event that is not late under watermark `wm` (the caller checked
    /// `grid.retire_at(t) > wm`). Windows of `t` that are already past `wm` but within lateness
    /// are emitted at once, as Flink's `EventTimeTrigger.onElement` fires a window whose max
    /// timestamp the watermark has passed.
    pub fn add<A>(
        &mut self,
        grid: &Grid,
        aggregator: &A,
        t: i64,
        input: &A::Input,
        wm: i64,
        emit: &mut impl FnMut(Firing<Acc>),
    ) where
        A: Aggregator<Acc = Acc> + ?Sized,
    {
        // Nothing is due between the key's last advance and `wm` (the invariant), so catching up is
        // only bookkeeping.
        self.wm = self.wm.max(wm);
        // Tumbling windows are their own panes: one division per event fewer.
        let pane_start = if grid.pane == grid.slide {
            grid.last_start(t)
        } else {
            grid.pane_start(t)
        };
        let (index, created) = match self.panes.back() {
            Some(last) if last.start == pane_start => (self.panes.len() - 1, false),
            _ => match self.panes.binary_search_by_key(&pane_start, |p| p.start) {
                Ok(i) => (i, false),
                Err(i) => {
                    self.panes.insert(
                        i,
                        Pane {
                            start: pane_start,
                            acc: aggregator.create(),
                        },
                    );
                    (i, true)
                }
            },
        };
        aggregator.add(&mut self.panes[index].acc, input);
        let mut changed = created;

        // Only allowed lateness lets an event into a window the watermark has passed.
        if grid.lateness > 0 && grid.max_timestamp(grid.first_start(t)) <= self.wm {
            let first = grid.first_start(t);
            let last = grid.last_start(t);
            let mut start = first;
            while start <= last && grid.max_timestamp(start) <= self.wm {
                // Windows of `t` past lateness are final and skipped, as Flink skips late windows
                // of an element that still has live ones.
                if grid.max_timestamp(start) + grid.lateness > self.wm {
                    let end = start + grid.size;
                    let revision = self.bump_revision(end);
                    emit(Firing {
                        start,
                        end,
                        acc: self.merge(grid, aggregator, start),
                        revision,
                    });
                    changed = true;
                }
                start += grid.slide;
            }
        }
        if changed {
            self.next_timer = self.compute_next_timer(grid);
        }
    }

    /// Brings the key up to watermark `wm`: fires every window whose max timestamp is newly at or
    /// below it, in end order, then frees what can no longer change.
    pub fn advance<A>(
        &mut self,
        grid: &Grid,
        aggregator: &A,
        wm: i64,
        emit: &mut impl FnMut(Firing<Acc>),
    ) where
        A: Aggregator<Acc = Acc> + ?Sized,
    {
        if wm <= self.wm {
            return;
        }
        if wm < self.next_timer {
            self.wm = wm;
            return;
        }
        let mut next = self.first_unfired_start(grid, self.wm);
        while let Some(start) = next {
            if grid.max_timestamp(start) > wm {
                break;
            }
            let end = start + grid.size;
            emit(Firing {
                start,
                end,
                acc: self.merge(grid, aggregator, start),
                revision: 0,
            });
            if grid.max_timestamp(start) + grid.lateness > wm {
                self.fired.push_back(FiredRecord { end, revision: 0 });
            }
            next = self.first_window_start(grid, start + grid.slide);
        }
        self.wm = wm;
        while self
            .fired
            .front()
            .is_some_and(|f| f.end - 1 + grid.lateness <= wm)
        {
            self.fired.pop_front();
        }
        while self
            .panes
            .front()
            .is_some_and(|p| grid.retire_at(p.start) <= wm)
        {
            self.panes.pop_front();
        }
        self.next_timer = self.compute_next_timer(grid);
    }

    /// The clock floor that closes every window of this key for good: all of them fire and all
    /// state is freed once the key's watermark reaches it.
    pub fn closing_floor(&self, grid: &Grid) -> i64 {
        let panes = self.panes.back().map(|p| grid.retire_at(p.start));
        let fired = self.fired.back().map(|f| f.end - 1 + grid.lateness);
        panes.max(fired).unwrap_or(i64::MIN).max(self.floor)
    }

    /// Windows (with data) that have not fired yet.
    pub fn pending_windows(&self, grid: &Grid) -> usize {
        let mut count = 0;
        let mut next = self.first_unfired_start(grid, self.wm);
        while let Some(start) = next {
            count += 1;
            next = self.first_window_start(grid, start + grid.slide);
        }
        count
    }

    pub fn compute_next_timer(&self, grid: &Grid) -> i64 {
        let due = self
            .first_unfired_start(grid, self.wm)
            .map_or(i64::MAX, |s| grid.max_timestamp(s));
        let pane = self
            .panes
            .front()
            .map_or(i64::MAX, |p| grid.retire_at(p.start));
        let fired = self
            .fired
            .front()
            .map_or(i64::MAX, |f| f.end - 1 + grid.lateness);
        due.min(pane).min(fired)
    }

    /// The first window with data whose max timestamp is above `wm`.
    fn first_unfired_start(&self, grid: &Grid, wm: i64) -> Option<i64> {
        // max_timestamp(s) > wm  <=>  s >= wm - size + 2
        self.first_window_start(grid, wm.saturating_sub(grid.size).saturating_add(2))
    }

    /// The smallest window start at or after `min_start` whose window holds at least one pane.
    fn first_window_start(&self, grid: &Grid, min_start: i64) -> Option<i64> {
        let s0 = crate::windows::align_up(min_start, grid.slide);
        let index = self.panes.partition_point(|p| p.start < s0);
        let pane = self.panes.get(index)?.start;
        // Either window s0 already holds that pane, or the first window that does starts later.
        Some(s0.max(crate::windows::align_up(pane - grid.size + 1, grid.slide)))
    }

    fn merge<A>(&self, grid: &Grid, aggregator: &A, start: i64) -> Acc
    where
        A: Aggregator<Acc = Acc> + ?Sized,
    {
        let from = self.panes.partition_point(|p| p.start < start);
        let to = self.panes.partition_point(|p| p.start < start + grid.size);
        let mut panes = self.panes.range(from..to);
        // A window that fires has at least one pane; cloning the first saves a merge into an
        // empty accumulator, which for tumbling windows is the whole cost.
        let mut acc = match panes.next() {
            Some(first) => first.acc.clone(),
            None => aggregator.create(),
        };
        for pane in panes {
            aggregator.merge(&mut acc, &pane.acc);
        }
        acc
    }

    /// The revision for emitting window `end` once more: one above the last, or 0 for a window
    /// that was empty when the watermark passed it.
    fn bump_revision(&mut self, end: i64) -> u32 {
        match self.fired.binary_search_by_key(&end, |f| f.end) {
            Ok(i) => {
                self.fired[i].revision += 1;
                self.fired[i].revision
            }
            Err(i) => {
                self.fired.insert(i, FiredRecord { end, revision: 0 });
                0
            }
        }
    }
}

/// Drives keys' state in one partition and turns what fires into [`Emission`]s: the window grid
/// and aggregator every key needs, and the partition the emissions name.
pub(crate) struct Fire<'a, A> {
    pub grid: &'a Grid,
    pub aggregator: &'a A,
    pub partition: u32,
}

impl<'a, A: Aggregator> Fire<'a, A> {
    pub fn new(grid: &'a Grid, aggregator: &'a A, partition: u32) -> Self {
        Fire {
            grid,
            aggregator,
            partition,
        }
    }

    /// The same for another partition.
    pub fn in_partition(&self, partition: u32) -> Self {
        Fire {
            partition,
            grid: self.grid,
            aggregator: self.aggregator,
        }
    }

    /// Assigns an event of `key` at `t` to its windows, judged by watermark `wm`: late if even
    /// its last window is past allowed lateness, otherwise added to its pane (re-firing at once
    /// any of its windows `wm` has already passed).
    #[inline]
    pub fn assign<K, Q>(
        &self,
        key: &Q,
        state: &mut KeyState<A::Acc>,
        t: i64,
        input: &A::Input,
        wm: i64,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) -> Outcome
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        if self.grid.retire_at(t) <= wm {
            return Outcome::Late {
                watermark_ms: wm,
                lateness_ms: wm.saturating_sub(t),
            };
        }
        state.add(self.grid, self.aggregator, t, input, wm, &mut |f| {
            out.push(self.emission(key.to_owned(), f))
        });
        Outcome::Aggregated
    }

    /// Brings `key` up to watermark `wm` ([`KeyState::advance`]), pushing what fires.
    #[inline]
    pub fn advance<K, Q>(
        &self,
        key: &Q,
        state: &mut KeyState<A::Acc>,
        wm: i64,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        state.advance(self.grid, self.aggregator, wm, &mut |f| {
            out.push(self.emission(key.to_owned(), f))
        });
    }

    fn emission<K>(&self, key: K, firing: Firing<A::Acc>) -> Emission<K, A::Acc> {
        Emission::Fired(FiredWindow {
            partition: self.partition,
            key,
            start: firing.start,
            end: firing.end,
            acc: firing.acc,
            revision: firing.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum;
    impl Aggregator for Sum {
        type Input = i64;
        type Acc = i64;
        fn create(&self) -> i64 {
            0
        }
        fn add(&self, acc: &mut i64, x: &i64) {
            *acc += x;
        }
        fn merge(&self, acc: &mut i64, other: &i64) {
            *acc += other;
        }
    }

    fn fire_all(state: &mut KeyState<i64>, grid: &Grid, wm: i64) -> Vec<(i64, i64, i64, u32)> {
        let mut out = Vec::new();
        state.advance(grid, &Sum, wm, &mut |f: Firing<i64>| {
            out.push((f.start, f.end, f.acc, f.revision))
        });
        out
    }

    #[test]
    fn sliding_windows_merge_their_panes_and_free_them_after_the_last_window() {
        let grid = Grid::new(30, 10, 0);
        let mut state = KeyState::new();
        let mut none = |_: Firing<i64>| panic!("nothing past the watermark");
        state.add(&grid, &Sum, 5, &1, i64::MIN, &mut none);
        state.add(&grid, &Sum, 25, &10, i64::MIN, &mut none);
        assert_eq!(state.panes.len(), 2);
        assert_eq!(state.next_timer, 9, "window [-20, 10) holds t = 5");
        assert_eq!(
            fire_all(&mut state, &grid, 29),
            vec![(-20, 10, 1, 0), (-10, 20, 1, 0), (0, 30, 11, 0)]
        );
        assert_eq!(state.panes.len(), 1, "pane 0 is in no window left open");
        assert_eq!(
            fire_all(&mut state, &grid, i64::MAX),
            vec![(10, 40, 10, 0), (20, 50, 10, 0)]
        );
        assert!(state.panes.is_empty());
        assert_eq!(state.next_timer, i64::MAX);
    }

    #[test]
    fn a_gap_between_panes_skips_windows_that_hold_nothing() {
        let grid = Grid::new(20, 10, 0);
        let mut state = KeyState::new();
        let mut none = |_: Firing<i64>| panic!("nothing past the watermark");
        state.add(&grid, &Sum, 0, &1, i64::MIN, &mut none);
        state.add(&grid, &Sum, 100, &2, i64::MIN, &mut none);
        assert_eq!(state.pending_windows(&grid), 4);
        let ends: Vec<i64> = fire_all(&mut state, &grid, i64::MAX)
            .iter()
            .map(|w| w.1)
            .collect();
        assert_eq!(ends, vec![10, 20, 110, 120]);
    }

    #[test]
    fn lateness_keeps_a_fired_window_and_counts_revisions() {
        let grid = Grid::new(10, 10, 5);
        let mut state = KeyState::new();
        let mut none = |_: Firing<i64>| panic!("nothing past the watermark");
        state.add(&grid, &Sum, 3, &1, i64::MIN, &mut none);
        assert_eq!(fire_all(&mut state, &grid, 9), vec![(0, 10, 1, 0)]);
        assert_eq!(state.next_timer, 14, "retired at max timestamp + lateness");
        let mut refired = Vec::new();
        state.add(&grid, &Sum, 4, &2, 9, &mut |f: Firing<i64>| {
            refired.push((f.acc, f.revision))
        });
        state.add(&grid, &Sum, 5, &4, 9, &mut |f: Firing<i64>| {
            refired.push((f.acc, f.revision))
        });
        assert_eq!(refired, vec![(3, 1), (7, 2)]);
        assert!(fire_all(&mut state, &grid, 14).is_empty());
        assert!(state.panes.is_empty() && state.fired.is_empty());
        assert_eq!(state.closing_floor(&grid), i64::MIN);
    }
}
