//! Finding the alerts that another copy of the same window supersedes, without sorting or
//! hashing whole rows.
//!
//! Repeats are rare (a restart replays a few alerts, allowed lateness re-fires a few windows),
//! so the work is arranged around the common case of a window seen once:
//!
//! 1. Patient ids are interned into dense `u32` codes, so a window is three integers.
//! 2. Each row's window is hashed to 64 bits and scattered, as `(32 hash bits, row)`, into
//!    partitions chosen by the hash's top bits. A partition fits in the CPU cache, and
//!    partitions are independent, so they are resolved on all cores.
//! 3. Within a partition an open-addressing table remembers the first row of each hash; a row
//!    whose hash is already there is a *candidate* repeat, together with that first row.
//! 4. Only the candidates are compared on their exact window, and of each window's copies the
//!    one with the highest revision stays (the first of them on a tie); the others are
//!    superseded.
//!
//! A hash collision only adds a candidate that the exact comparison then keeps apart, so the
//! result does not depend on the hash being perfect, only the speed does.

use std::ops::Range;

use polars::prelude::*;
use rayon::prelude::*;

/// The distinct values of a string column, numbered in order of first appearance, and each
/// row's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interned {
    /// One code per row, an index into `values`.
    pub codes: Vec<u32>,
    /// The distinct values; `None` stands for null.
    pub values: Vec<Option<String>>,
}

/// Rows per parallel task: big enough to amortise the fan-out, small enough to spread work
/// over every core.
const TASK_ROWS: usize = 1 << 20;

/// Numbers the distinct values of `column` (nulls included, as one value) in order of first
/// appearance, in parallel over row ranges.
///
/// # Panics
/// Panics if the column has `u32::MAX` or more distinct values.
pub(crate) fn intern(column: &StringChunked) -> Interned {
    let has_nulls = column.null_count() > 0;
    let mut tasks = Vec::new();
    for arr in column.downcast_iter() {
        let mut start = 0;
        while start < arr.len() {
            let len = TASK_ROWS.min(arr.len() - start);
            tasks.push((arr, start, len));
            start += len;
        }
    }
    // Each range numbers its own values first; merging the small per-range dictionaries in
    // range order then gives the same numbering as one pass over the whole column.
    let local: Vec<(Vec<u32>, Vec<Option<&str>>)> = tasks
        .par_iter()
        .map(|&(arr, start, len)| intern_range(arr, start..start + len, has_nulls))
        .collect();
    let mut global: PlHashMap<Option<&str>, u32> = PlHashMap::default();
    let mut values = Vec::new();
    let mut codes = Vec::with_capacity(column.len());
    for (local_codes, local_values) in &local {
        let remap: Vec<u32> = local_values
            .iter()
            .map(|&v| {
                *global.entry(v).or_insert_with(|| {
                    values.push(v.map(str::to_owned));
                    u32::try_from(values.len() - 1).expect("fewer than 2^32 distinct values")
                })
            })
            .collect();
        codes.extend(local_codes.iter().map(|&c| remap[c as usize]));
    }
    Interned { codes, values }
}

/// One chunk of a [`StringChunked`].
type StrArray = <StringType as PolarsDataType>::Array;

/// Numbers the values of `arr[rows]` from 0, in order of first appearance.
fn intern_range<'a>(
    arr: &'a StrArray,
    rows: Range<usize>,
    has_nulls: bool,
) -> (Vec<u32>, Vec<Option<&'a str>>) {
    // A string of up to 12 bytes lives inside its 16-byte view, so the view (its unused
    // bytes masked) is the key: one integer hash instead of hashing and comparing bytes.
    let mut short: PlHashMap<u128, u32> = PlHashMap::default();
    let mut long: PlHashMap<&'a str, u32> = PlHashMap::default();
    let mut null = None;
    let mut values = Vec::new();
    let mut number = |value: Option<&'a str>| {
        values.push(value);
        u32::try_from(values.len() - 1).expect("fewer than 2^32 distinct values")
    };
    let views = arr.views();
    let codes = rows
        .map(|i| {
            if has_nulls && arr.get(i).is_none() {
                return *null.get_or_insert_with(|| number(None));
            }
            let view = views[i];
            if view.is_inline() {
                let used = 32 + 8 * view.length;
                // Read as little-endian so that byte k is always bits 8k.., whatever the host.
                let key = u128::from_le(view.as_u128()) & (u128::MAX >> (128 - used));
                *short
                    .entry(key)
                    .or_insert_with(|| number(Some(arr.value(i))))
            } else {
                let value = arr.value(i);
                *long.entry(value).or_insert_with(|| number(Some(value)))
            }
        })
        .collect();
    (codes, values)
}

/// A numeric column without nulls, as its chunks' values, addressed by row: the columns are
/// read as they lie rather than first copied into one piece.
#[derive(Debug, Clone)]
pub(crate) struct Chunks<'a, T> {
    parts: Vec<&'a [T]>,
    /// The row at which each part starts.
    starts: Vec<usize>,
    len: usize,
}

impl<'a, T: Copy> Chunks<'a, T> {
    /// The chunks of `column`, or `None` if it has nulls.
    pub fn new<P: PolarsNumericType<Native = T>>(column: &'a ChunkedArray<P>) -> Option<Self> {
        if column.null_count() > 0 {
            return None;
        }
        Some(Self::from_parts(column.data_views()))
    }

    fn from_parts(parts: impl IntoIterator<Item = &'a [T]>) -> Self {
        let parts: Vec<&[T]> = parts.into_iter().collect();
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0;
        for part in &parts {
            starts.push(len);
            len += part.len();
        }
        Self { parts, starts, len }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value at `row`.
    ///
    /// # Panics
    /// Panics if `row` is out of bounds.
    pub fn get(&self, row: usize) -> T {
        // The last part starting at or before `row`: an empty part shares its start with the
        // next one, so it is never the one chosen for a row in bounds.
        let part = self.starts.partition_point(|&s| s <= row) - 1;
        self.parts[part][row - self.starts[part]]
    }

    /// The values from `row` to the end.
    pub fn iter_from(&self, row: usize) -> impl Iterator<Item = T> + 'a {
        let part = self.starts.partition_point(|&s| s <= row).max(1) - 1;
        let first: &'a [T] = self
            .parts
            .get(part)
            .map_or(&[], |p| &p[(row - self.starts[part]).min(p.len())..]);
        let rest: Vec<&'a [T]> = self.parts.iter().skip(part + 1).copied().collect();
        first.iter().chain(rest.into_iter().flatten()).copied()
    }
}

impl<'a, T: Copy> From<&'a [T]> for Chunks<'a, T> {
    fn from(values: &'a [T]) -> Self {
        Self::from_parts([values])
    }
}

/// The identity and revision of every alert, one entry per row, all of the same length.
#[derive(Debug, Clone)]
pub(crate) struct Windows<'a> {
    /// Interned patient id.
    pub patient: &'a [u32],
    /// `window_start`, epoch milliseconds.
    pub start: Chunks<'a, i64>,
    /// `window_end`, epoch milliseconds.
    pub end: Chunks<'a, i64>,
    /// `revision`.
    pub revision: Chunks<'a, u32>,
}

impl Windows<'_> {
    fn key(&self, row: u32) -> (u32, i64, i64) {
        let r = row as usize;
        (self.patient[r], self.start.get(r), self.end.get(r))
    }
}

/// A 64-bit hash of a window (splitmix64's finaliser, chained over the three fields so that
/// swapping start and end or shifting one into the other does not collide).
fn hash(patient: u32, start: i64, end: i64) -> u64 {
    let h = mix(u64::from(patient) ^ 0x9E37_79B9_7F4A_7C15);
    let h = mix(h ^ start as u64);
    mix(h ^ (end as u64).rotate_left(32))
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An empty slot of a partition's table: no packed `(hash, row)` equals it, because rows stay
/// below `u32::MAX`.
const EMPTY: u64 = u64::MAX;

/// The rows superseded by another copy of their window, ascending. A window is
/// `(patient, start, end)`; of its copies the one with the highest revision stays, and of
/// equal revisions the first row.
///
/// # Panics
/// Panics if the slices differ in length or hold `u32::MAX` rows or more.
pub(crate) fn superseded_rows(windows: &Windows<'_>) -> Vec<u32> {
    let n = windows.patient.len();
    assert!(
        windows.start.len() == n && windows.end.len() == n && windows.revision.len() == n,
        "one entry per row in every slice"
    );
    assert!(n < u32::MAX as usize, "fewer than 2^32 - 1 rows");
    // About 32 Ki rows per partition: its table (twice that in 8-byte slots) stays in L2.
    let bits = (n >> 15)
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .min(12);
    let partitions = 1usize << bits;
    let task_rows = TASK_ROWS.min(n.div_ceil(4 * rayon::current_num_threads()).max(1 << 16));
    let scattered: Vec<Vec<Vec<u64>>> = (0..n.div_ceil(task_rows))
        .into_par_iter()
        .map(|t| {
            let rows = t * task_rows..((t + 1) * task_rows).min(n);
            let mut parts: Vec<Vec<u64>> = (0..partitions)
                .map(|_| Vec::with_capacity(rows.len() / partitions * 9 / 8 + 8))
                .collect();
            let keys = windows.patient[rows.clone()]
                .iter()
                .zip(windows.start.iter_from(rows.start))
                .zip(windows.end.iter_from(rows.start));
            for (row, ((&patient, start), end)) in rows.zip(keys) {
                let h = hash(patient, start, end);
                // `bits` may be 0, where every row goes to the one partition.
                let p = h.checked_shr(64 - bits).unwrap_or(0) as usize;
                parts[p].push((h << 32) | row as u64);
            }
            parts
        })
        .collect();
    let mut superseded: Vec<u32> = (0..partitions)
        .into_par_iter()
        // One table per worker, reused from partition to partition.
        .map_init(Vec::new, |table, p| {
            let rows = scattered.iter().map(|task| task[p].as_slice());
            resolve_partition(windows, rows, table)
        })
        .flatten_iter()
        .collect();
    superseded.sort_unstable();
    superseded
}

/// Finds one partition's candidates with a hash table (`table`, whatever it holds, is reset),
/// then settles them on their exact windows. `rows` come in ascending row order.
fn resolve_partition<'a>(
    windows: &Windows<'_>,
    rows: impl Iterator<Item = &'a [u64]> + Clone,
    table: &mut Vec<u64>,
) -> Vec<u32> {
    let len: usize = rows.clone().map(<[u64]>::len).sum();
    let mask = (2 * len).next_power_of_two().max(16) - 1;
    table.clear();
    table.resize(mask + 1, EMPTY);
    let mut candidates: Vec<u32> = Vec::new();
    for &packed in rows.flatten() {
        let hash = packed >> 32;
        let mut slot = hash as usize & mask;
        loop {
            let there = table[slot];
            if there == EMPTY {
                table[slot] = packed;
                break;
            }
            if there >> 32 == hash {
                candidates.push(there as u32);
                candidates.push(packed as u32);
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    if candidates.is_empty() {
        return candidates;
    }
    // Every copy of a window has the same hash, so all of them are among the candidates:
    // the first one as the row the table kept, the others as the rows that found it.
    candidates.sort_unstable();
    candidates.dedup();
    let mut best: PlHashMap<(u32, i64, i64), u32> = PlHashMap::default();
    let mut superseded = Vec::new();
    for row in candidates {
        let kept = best.entry(windows.key(row)).or_insert(row);
        if *kept == row {
            continue;
        }
        // Rows arrive in ascending order, so on equal revisions the earlier copy stays.
        if windows.revision.get(row as usize) > windows.revision.get(*kept as usize) {
            superseded.push(*kept);
            *kept = row;
        } else {
            superseded.push(row);
        }
    }
    superseded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Longer than a view holds inline.
    const LONG: &str = "patient-0000000042";

    #[test]
    fn interning_numbers_values_in_order_of_first_appearance_across_chunks() {
        let mut column = StringChunked::from_iter_options(
            "id".into(),
            [Some("b"), Some("a"), None, Some("b"), Some(LONG)].into_iter(),
        );
        column
            .append(&StringChunked::from_iter_options(
                "id".into(),
                [Some("c"), None, Some(LONG), Some("a"), Some("twelve bytes")].into_iter(),
            ))
            .unwrap();
        assert_eq!(column.chunks().len(), 2);
        let interned = intern(&column);
        assert_eq!(interned.codes, vec![0, 1, 2, 0, 3, 4, 2, 3, 1, 5]);
        assert_eq!(
            interned.values,
            [
                Some("b"),
                Some("a"),
                None,
                Some(LONG),
                Some("c"),
                Some("twelve bytes")
            ]
            .map(|v| v.map(String::from))
        );
    }

    /// The plain definition: per window, the highest revision, the first row among equals.
    fn reference(windows: &Windows<'_>) -> Vec<u32> {
        let mut best = std::collections::HashMap::new();
        let mut superseded = Vec::new();
        for row in 0..windows.patient.len() as u32 {
            match best.entry(windows.key(row)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(row);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let kept = *o.get();
                    if windows.revision.get(row as usize) > windows.revision.get(kept as usize) {
                        superseded.push(kept);
                        o.insert(row);
                    } else {
                        superseded.push(row);
                    }
                }
            }
        }
        superseded.sort_unstable();
        superseded
    }

    #[test]
    fn repeats_are_superseded_and_distinct_windows_kept() {
        // Rows: 0 and 3 are byte-identical copies; 1 is revised by 4 and 6 (6 ties 4, later);
        // 2 shares 0's start but not its end (a sliding window), 5 another patient's.
        let patient = [0, 0, 0, 0, 0, 1, 0];
        let start = [0, 60, 0, 0, 60, 0, 60];
        let end = [60, 120, 30, 60, 120, 60, 120];
        let revision = [0, 0, 0, 0, 1, 0, 1];
        let windows = Windows {
            patient: &patient,
            start: start[..].into(),
            end: end[..].into(),
            revision: revision[..].into(),
        };
        assert_eq!(superseded_rows(&windows), vec![1, 3, 6]);
        assert_eq!(reference(&windows), vec![1, 3, 6]);
    }

    #[test]
    fn many_rows_agree_with_the_plain_definition() {
        // Enough rows for several partitions and tasks, with repeats spread far apart and
        // a few windows copied many times.
        let n = 300_000u64;
        let mut patient = Vec::new();
        let mut start = Vec::new();
        let mut end = Vec::new();
        let mut revision = Vec::new();
        for i in 0..n {
            let r = mix(i);
            let w = if r.is_multiple_of(50) { r % 997 } else { i };
            patient.push((w % 37) as u32);
            start.push((w / 37) as i64 * 60_000);
            end.push((w / 37) as i64 * 60_000 + if r.is_multiple_of(7) { 10_000 } else { 60_000 });
            revision.push((r >> 40) as u32 % 3);
        }
        // Columns cut into chunks at different rows, one of them empty.
        fn cut(cuts: [usize; 3], values: &[i64]) -> Chunks<'_, i64> {
            let (a, rest) = values.split_at(cuts[0]);
            let (b, rest) = rest.split_at(cuts[1]);
            let (c, d) = rest.split_at(cuts[2]);
            Chunks::from_parts([a, b, c, d])
        }
        let windows = Windows {
            patient: &patient,
            start: cut([1000, 0, 150_000], &start),
            end: cut([77_777, 100_000, 3], &end),
            revision: Chunks::from_parts([&revision[..5], &revision[5..]]),
        };
        let got = superseded_rows(&windows);
        assert!(got.len() > 5_000, "{}", got.len());
        assert_eq!(got, reference(&windows));
    }

    #[test]
    fn an_empty_table_supersedes_nothing() {
        let windows = Windows {
            patient: &[],
            start: Chunks::from_parts([]),
            end: [][..].into(),
            revision: [][..].into(),
        };
        assert!(superseded_rows(&windows).is_empty());
    }

    #[test]
    fn chunks_address_rows_across_parts() {
        let values: Vec<i64> = (0..10).collect();
        let chunks = Chunks::from_parts([&values[..0], &values[..3], &values[3..3], &values[3..]]);
        assert_eq!(chunks.len(), 10);
        assert_eq!((0..10).map(|r| chunks.get(r)).collect::<Vec<_>>(), values);
        for row in 0..=10 {
            assert_eq!(chunks.iter_from(row).collect::<Vec<_>>(), values[row..]);
        }
    }
}
