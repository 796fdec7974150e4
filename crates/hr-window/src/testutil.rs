//! Helpers shared by the unit tests.

use crate::Aggregator;
use crate::output::{Emission, FiredWindow};
use crate::windows::Grid;

/// Sums integer readings.
pub(crate) struct Sum;

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

/// Tumbling windows of `size` ms without allowed lateness.
pub(crate) fn tumbling(size: i64) -> Grid {
    Grid::new(size, size, 0)
}

/// A first emission (revision 0) of window `[start, end)`.
pub(crate) fn fired(
    partition: u32,
    key: &str,
    start: i64,
    end: i64,
    acc: i64,
) -> Emission<String, i64> {
    Emission::Fired(FiredWindow {
        partition,
        key: key.to_owned(),
        start,
        end,
        acc,
        revision: 0,
    })
}
