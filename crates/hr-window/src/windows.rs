//! Epoch-aligned window assignment on a pane grid.
//!
//! Windows are `[start, start + size)` with `start` a multiple of `slide` (tumbling is
//! `slide == size`), exactly the windows Flink's `TumblingEventTimeWindows` and
//! `SlidingEventTimeWindows` assign with offset 0. Every window start and end is a multiple of
//! `pane = gcd(size, slide)`, so an event only has to update the one pane that holds it, and a
//! window is the merge of the `size / pane` panes it covers.

/// The window arithmetic of one engine: sizes in milliseconds, all validated positive and
/// `slide <= size` by [`crate::EngineConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub size: i64,
    pub slide: i64,
    pub pane: i64,
    pub lateness: i64,
}

impl Grid {
    pub fn new(size: i64, slide: i64, lateness: i64) -> Self {
        Grid {
            size,
            slide,
            pane: gcd(size, slide),
            lateness,
        }
    }

    /// Start of the pane holding `t`.
    #[inline]
    pub fn pane_start(&self, t: i64) -> i64 {
        align_down(t, self.pane)
    }

    /// Start of the last (latest-ending) window holding `t`.
    #[inline]
    pub fn last_start(&self, t: i64) -> i64 {
        align_down(t, self.slide)
    }

    /// Start of the first (earliest-ending) window holding `t`.
    #[inline]
    pub fn first_start(&self, t: i64) -> i64 {
        align_up(t - self.size + 1, self.slide)
    }

    /// The largest timestamp inside the window starting at `start` (Flink's `maxTimestamp`): the
    /// window fires once the watermark reaches it.
    #[inline]
    pub fn max_timestamp(&self, start: i64) -> i64 {
        start + self.size - 1
    }

    /// The watermark from which nothing holding `t` can change any more: the last window that holds
    /// `t` is past its allowed lateness (Flink's `isWindowLate` is `maxTimestamp + lateness <=
    /// watermark`). An event is late exactly when this is at or below the watermark, and a pane is
    /// freed at the same point.
    #[inline]
    pub fn retire_at(&self, t: i64) -> i64 {
        self.max_timestamp(self.last_start(t)) + self.lateness
    }
}

/// Flink's `TimeWindow.getWindowStartWithOffset(t, 0, unit)`: the largest multiple of `unit` at or
/// below `t`. Flink's current form handles a negative remainder explicitly, which is floor division;
/// the older `t - (t + unit) % unit` agrees with it for every `t >= -unit` and misplaces earlier
/// timestamps into a window that does not contain them.
#[inline]
pub(crate) fn align_down(t: i64, unit: i64) -> i64 {
    t - t.rem_euclid(unit)
}

/// The smallest multiple of `unit` at or above `t`, or `i64::MAX` when there is none (only for a
/// `t` derived from an infinite watermark, above every window).
#[inline]
pub(crate) fn align_up(t: i64, unit: i64) -> i64 {
    let r = t.rem_euclid(unit);
    if r == 0 {
        t
    } else {
        t.checked_add(unit - r).unwrap_or(i64::MAX)
    }
}

pub(crate) fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every window holding `t` by brute force: starts on the slide grid within one size of `t`.
    fn brute_windows(t: i64, size: i64, slide: i64) -> Vec<i64> {
        let lo = t.div_euclid(slide) - size / slide - 2;
        let hi = t.div_euclid(slide) + 2;
        (lo..=hi)
            .map(|k| k * slide)
            .filter(|&s| s <= t && t < s + size)
            .collect()
    }

    #[test]
    fn align_down_matches_flinks_old_formula_where_it_is_right() {
        for t in -10_000..10_000 {
            let flink_old = t - (t + 60) % 60;
            if t >= -60 {
                assert_eq!(align_down(t, 60), flink_old, "t = {t}");
            }
            assert!(align_down(t, 60) <= t && t < align_down(t, 60) + 60);
        }
    }

    #[test]
    fn negative_timestamps_land_in_the_window_that_holds_them() {
        assert_eq!(align_down(-1, 60_000), -60_000);
        assert_eq!(align_down(-60_000, 60_000), -60_000);
        assert_eq!(align_down(-60_001, 60_000), -120_000);
        assert_eq!(align_up(-60_001, 60_000), -60_000);
        assert_eq!(align_up(0, 60_000), 0);
    }

    #[test]
    fn first_and_last_start_bound_exactly_the_windows_holding_t() {
        for (size, slide) in [(60, 60), (60, 10), (60, 25), (7, 3), (10, 1)] {
            let grid = Grid::new(size, slide, 0);
            assert_eq!(size % grid.pane, 0);
            assert_eq!(slide % grid.pane, 0);
            for t in -300..300 {
                let brute = brute_windows(t, size, slide);
                assert_eq!(
                    grid.first_start(t),
                    brute[0],
                    "size {size} slide {slide} t {t}"
                );
                assert_eq!(grid.last_start(t), *brute.last().unwrap());
                // Every window of t holds t's whole pane, so merging panes is exact.
                let p = grid.pane_start(t);
                for s in brute {
                    assert!(s <= p && p + grid.pane <= s + size);
                }
            }
        }
    }

    #[test]
    fn retire_at_is_the_last_windows_max_timestamp_plus_lateness() {
        let grid = Grid::new(60_000, 10_000, 5_000);
        assert_eq!(grid.retire_at(12_345), 10_000 + 60_000 - 1 + 5_000);
        assert_eq!(gcd(60_000, 25_000), 5_000);
    }
}
