//! The incremental aggregation contract.

/// An incremental aggregate over the events of one key and window, in the style of Flink's
/// `AggregateFunction`: the engine keeps one accumulator per key and pane, adds each event to one
/// accumulator, and merges pane accumulators when a window fires. No raw event is ever buffered.
///
/// The aggregator is a value rather than a trait on the accumulator, so a downstream crate can
/// aggregate into a type it does not own (for example hr-model's statistics type).
///
/// `add` and `merge` must agree: merging accumulators built from two disjoint sets of events must
/// give the accumulator of their union, whatever the order. Sliding windows and allowed-lateness
/// re-fires depend on it.
///
/// # Example
///
/// ```
/// use hr_window::Aggregator;
///
/// /// Count, sum, min and max of integer readings.
/// struct Stats;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Acc { count: u64, sum: i64, min: i64, max: i64 }
///
/// impl Aggregator for Stats {
///     type Input = i64;
///     type Acc = Acc;
///     fn create(&self) -> Acc {
///         Acc { count: 0, sum: 0, min: i64::MAX, max: i64::MIN }
///     }
///     fn add(&self, acc: &mut Acc, x: &i64) {
///         acc.count += 1;
///         acc.sum += x;
///         acc.min = acc.min.min(*x);
///         acc.max = acc.max.max(*x);
///     }
///     fn merge(&self, acc: &mut Acc, other: &Acc) {
///         acc.count += other.count;
///         acc.sum += other.sum;
///         acc.min = acc.min.min(other.min);
///         acc.max = acc.max.max(other.max);
///     }
/// }
///
/// let mut acc = Stats.create();
/// Stats.add(&mut acc, &72);
/// Stats.add(&mut acc, &90);
/// assert_eq!(acc, Acc { count: 2, sum: 162, min: 72, max: 90 });
/// ```
pub trait Aggregator {
    /// What one event contributes (unsized types such as `str` or `[u8]` are fine).
    type Input: ?Sized;
    /// The running aggregate of a pane or window.
    type Acc: Clone;
    /// An accumulator holding no events.
    fn create(&self) -> Self::Acc;
    /// Adds one event to `acc`.
    fn add(&self, acc: &mut Self::Acc, input: &Self::Input);
    /// Folds `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
}
