//! The keyed window engine: partitions of keyed state, fed one event at a time, with the
//! watermark rules of the configured scope (see [`crate::watermark`]).

mod state;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Instant;

use crate::Aggregator;
use crate::config::{ConfigError, EVENT_TIME_LIMIT_MS, EngineConfig, WatermarkScope};
use crate::key_idle;
use crate::key_state::{Fire, KeyState};
use crate::output::{Counters, Emission, Outcome};
use crate::partition::{Partition, mark_changed};
use crate::watermark::{GlobalClock, Moved, Scope, Watermark, fire_due, global, with_scope};
use crate::windows::Grid;

/// A keyed event-time window engine over any number of source partitions.
///
/// Feed it events with [`process`](Self::process); it aggregates them into epoch-aligned tumbling
/// or sliding windows, moves the watermark of the configured [`WatermarkScope`], and pushes every
/// window the watermark passes into the caller's output vector. State is kept per partition so a
/// partition can be snapshotted, restored or dropped on its own.
///
/// `K` is the key type; lookups go by borrow, so with `K = String` the caller passes `&str` and a
/// key is only cloned when the engine first sees it or a timer or emission needs it.
///
/// # Example
///
/// See the [crate documentation](crate).
pub struct WindowEngine<K, A: Aggregator> {
    config: EngineConfig,
    grid: Grid,
    aggregator: A,
    /// Ordered so that anything iterating partitions does so deterministically.
    partitions: BTreeMap<u32, Partition<K, A::Acc>>,
    /// Global scope: monotone, the minimum over active partitions' watermarks.
    global: GlobalClock,
    finished: bool,
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    aggregated: u64,
    late: u64,
    fired: u64,
    refired: u64,
    idle: u64,
}

impl Totals {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Aggregated => self.aggregated += 1,
            Outcome::Late { .. } => self.late += 1,
        }
    }
}

impl<K, A> WindowEngine<K, A>
where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    /// Creates an engine.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] from [`EngineConfig::validate`].
    pub fn new(config: EngineConfig, aggregator: A) -> Result<Self, ConfigError> {
        config.validate()?;
        let (size, slide) = config.window.size_and_slide();
        Ok(WindowEngine {
            grid: Grid::new(size, slide, config.allowed_lateness_ms),
            config,
            aggregator,
            partitions: BTreeMap::new(),
            global: GlobalClock::new(),
            finished: false,
            totals: Totals::default(),
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The aggregator.
    pub fn aggregator(&self) -> &A {
        &self.aggregator
    }

    /// Feeds one event from source `partition`.
    ///
    /// The event is judged against the watermark that applies to it before it arrived: if even its
    /// last window is past allowed lateness it is [`Outcome::Late`], otherwise it is aggregated
    /// (and any of its windows the watermark already passed re-fire at once). Then the event
    /// advances the clocks (the key's, the partition's, or the global one), and every window this
    /// makes fire is pushed into `out`, followed by [`Emission::KeyIdle`] notices for keys this
    /// event shows to be silent. What one call pushes is sorted by window end, then key.
    ///
    /// An unknown partition is added as by [`add_partition`](Self::add_partition).
    ///
    /// # Panics
    ///
    /// If `event_time_ms` is outside `±`[`EVENT_TIME_LIMIT_MS`] (about ±73 million years), which
    /// keeps the engine's arithmetic exact; RFC 3339 timestamps are always inside.
    pub fn process<Q>(
        &mut self,
        partition: u32,
        key: &Q,
        event_time_ms: i64,
        input: &A::Input,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) -> Outcome
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let t = event_time_ms;
        assert!(
            (-EVENT_TIME_LIMIT_MS..=EVENT_TIME_LIMIT_MS).contains(&t),
            "event time {t} ms is outside the supported range of ±{EVENT_TIME_LIMIT_MS} ms"
        );
        let mark = out.len();
        let outcome = with_scope!(self.config.scope, S => {
            self.process_in::<S, Q>(partition, key, t, input, out)
        });
        self.finish_batch(mark, out);
        outcome
    }

    /// [`process`](Self::process) under the rules of scope `S`: assign the event to its windows,
    /// update the scope's clock, fire what its watermark passed.
    fn process_in<S: Scope, Q>(
        &mut self,
        partition: u32,
        key: &Q,
        t: i64,
        input: &A::Input,
        out: &mut Vec<Emission<K, A::Acc>>,
    ) -> Outcome
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let delay = self.config.out_of_orderness_ms;
        let idle_timeout = self.config.key_idle_timeout_ms;
        let fire = Fire::new(&self.grid, &self.aggregator, partition);
        let floor = if self.finished { i64::MAX } else { i64::MIN };
        let part = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition::new(floor));
        let woke = part.activity.record();
        let before = part.clock;
        part.clock.max_seen = part.clock.max_seen.max(t);
        let (state, is_new) = match part.keys.states.get_mut(key) {
            Some(state) => (state, false),
            None => (
                part.keys
                    .states
                    .entry(key.to_owned())
                    .or_insert_with(KeyState::new),
                true,
            ),
        };
        mark_changed(&mut part.keys.changed, state, key);

        // Assign the event to its windows, judged by the watermark that applied before it.
        let wm = S::watermark(&self.global, before, Some(&*state), delay);
        let timer_before = state.next_timer;
        let outcome = fire.assign(key, state, t, input, wm, out);
        self.totals.count(outcome);
        let resumed = state.hear(t, part.clock.max_seen);

        // Update the scope's clock: the key's own, which fires at once in key scope...
        S::key_moved(&fire, key, state, part.clock.floor, delay, out);
        if S::TIMERS {
            part.timers.reschedule(timer_before, state.next_timer, key);
        }
        if resumed {
            out.push(Emission::KeyResumed {
                partition,
                key: key.to_owned(),
                event_time_ms: t,
            });
        }
        if let Some(timeout) = idle_timeout
            && (is_new || resumed)
        {
            part.idle_keys
                .watch(part.clock.max_seen, key.to_owned(), timeout);
        }

        // ...or the partition's or the global one, and fire what its watermark passed.
        match S::partition_moved(before, part.clock, woke, delay) {
            Moved::Nothing => {}
            Moved::Partition(wm) => fire_due(part, wm, &fire, out),
            Moved::GlobalInput => {
                global::advance(&mut self.global, &mut self.partitions, &fire, delay, out);
            }
        }
        self.detect_silent_keys::<S>(partition, out);
        outcome
    }

    /// Reports the keys of `partition` it has moved on from by more than the key idle timeout.
    fn detect_silent_keys<S: Scope>(&mut self, partition: u32, out: &mut Vec<Emission<K, A::Acc>>) {
        let Some(timeout) = self.config.key_idle_timeout_ms else {
            return;
        };
        let part = self.partitions.get_mut(&partition).expect("added above");
        if part.idle_keys.is_due(part.clock.max_seen) {
            let fire = Fire::new(&self.grid, &self.aggregator, partition);
            let delay = self.config.out_of_orderness_ms;
            key_idle::detect::<S, _, _>(part, &fire, timeout, delay, out);
        }
    }

    /// Lets wall-clock time pass for partition idleness in [`WatermarkScope::Global`] (Flink's
    /// `withIdleness`); does nothing in other scopes or without `partition_idle_timeout`.
    ///
    /// Call it periodically (Flink checks every auto-watermark interval, 200 ms by default). As in
    /// Flink, a partition is idle once no record arrived between two calls spanning more than the
    /// timeout, so it goes idle between `timeout` and `timeout` + one call interval after its last
    /// record. Idle partitions stop holding the global watermark back, which may fire windows into
    /// `out`. This is the one input that makes output depend on the wall clock.
    pub fn on_processing_time(&mut self, now: Instant, out: &mut Vec<Emission<K, A::Acc>>) {
        let Some(timeout) = self.config.partition_idle_timeout else {
            return;
        };
        if self.config.scope != WatermarkScope::Global {
            return;
        }
        let mark = out.len();
        let fire = Fire::new(&self.grid, &self.aggregator, 0);
        let delay = self.config.out_of_orderness_ms;
        global::on_processing_time(
            &mut self.global,
            &mut self.partitions,
            now,
            timeout,
            &fire,
            delay,
            out,
        );
        self.finish_batch(mark, out);
    }

    /// Ends a bounded input: every watermark moves to +∞ (as Flink's bounded sources emit
    /// `MAX_WATERMARK`), so every open window fires into `out` and all window state is freed.
    /// Events processed afterwards are late.
    pub fn finish(&mut self, out: &mut Vec<Emission<K, A::Acc>>) {
        let mark = out.len();
        self.finished = true;
        self.global.finish();
        for (&id, part) in &mut self.partitions {
            let fire = Fire::new(&self.grid, &self.aggregator, id);
            part.clock.floor = i64::MAX;
            part.timers.clear();
            part.keys
                .touch_all(|key, state| fire.advance(key, state, i64::MAX, out));
        }
        self.finish_batch(mark, out);
    }

    /// Declares every key of `partition` silent now, whatever its event time says: the rule for
    /// a partition whose records stopped altogether (every monitor on it unplugged, a network
    /// outage), which no event-time rule can see because nothing moves that partition's clock.
    /// Each key not already idle is reported as [`Emission::KeyIdle`] and, in
    /// [`WatermarkScope::Key`], has its open windows closed and emitted, as
    /// [`EngineConfig::key_idle_timeout_ms`] does. The caller decides when (it is the one call
    /// driven by the wall clock); a key's next record resumes it as usual.
    pub fn silence_partition(&mut self, partition: u32, out: &mut Vec<Emission<K, A::Acc>>) {
        let Some(part) = self.partitions.get_mut(&partition) else {
            return;
        };
        let mark = out.len();
        let fire = Fire::new(&self.grid, &self.aggregator, partition);
        let delay = self.config.out_of_orderness_ms;
        let mut keys: Vec<K> = part
            .keys
            .states
            .iter()
            .filter(|(_, s)| !s.idle)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_unstable();
        for key in keys {
            let state = part.keys.states.get_mut(&key).expect("listed above");
            state.idle = true;
            mark_changed(&mut part.keys.changed, state, &key);
            with_scope!(self.config.scope, S => {
                S::key_silent(&fire, &key, state, part.clock.floor, delay, out)
            });
            out.push(Emission::KeyIdle {
                partition,
                last_event_time_ms: state.max_seen,
                key,
            });
        }
        // Idle keys leave the event-time idle queue until they are heard from again.
        part.idle_keys.clear();
        part.idle_keys
            .refresh(self.config.key_idle_timeout_ms.unwrap_or(i64::MAX));
        self.finish_batch(mark, out);
    }

    /// Registers an assigned partition before its first record. Only [`WatermarkScope::Global`]
    /// cares: an assigned partition without records holds the global watermark at its minimum
    /// until it sends one or goes idle, as an empty Kafka partition does in Flink. Adding a
    /// partition that has state does nothing.
    pub fn add_partition(&mut self, partition: u32) {
        let floor = if self.finished { i64::MAX } else { i64::MIN };
        self.partitions
            .entry(partition)
            .or_insert_with(|| Partition::new(floor));
    }

    /// Drops a revoked partition with all its state, unfired windows included: the next owner
    /// restores them from a snapshot. In [`WatermarkScope::Global`] the partition no longer holds
    /// the watermark back; windows this releases fire on the next call that takes an output vector.
    pub fn remove_partition(&mut self, partition: u32) {
        self.partitions.remove(&partition);
    }

    /// The partitions with state, in order.
    pub fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.partitions.keys().copied()
    }

    /// The watermark that applies now to `key` in `partition`: the key's clock in key scope, the
    /// partition's in partition scope, the global one in global scope. `None` before there is one
    /// (no event yet).
    pub fn watermark<Q>(&self, partition: u32, key: &Q) -> Option<i64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let part = self.partitions.get(&partition)?;
        let delay = self.config.out_of_orderness_ms;
        let state = part.keys.states.get(key);
        let wm = with_scope!(self.config.scope, S => {
            S::watermark(&self.global, part.clock, state, delay)
        });
        (wm != i64::MIN).then_some(wm)
    }

    /// The largest event time `partition` has seen (late records included), for metrics.
    /// `None` for a partition without state or before its first event.
    pub fn max_event_time(&self, partition: u32) -> Option<i64> {
        let part = self.partitions.get(&partition)?;
        (part.clock.max_seen != i64::MIN).then_some(part.clock.max_seen)
    }

    /// The watermark of `partition` as a whole, for metrics: the global one in global scope;
    /// otherwise the partition's own clock (`max event time - delay - 1`, or +∞ once finished).
    /// In key scope each key keeps its own clock, at or behind this one: this is the clock of
    /// the partition's most advanced key. `None` before there is one.
    pub fn partition_watermark(&self, partition: u32) -> Option<i64> {
        let part = self.partitions.get(&partition)?;
        let delay = self.config.out_of_orderness_ms;
        let wm = with_scope!(self.config.scope, S => {
            S::partition_watermark(&self.global, part.clock, delay)
        });
        (wm != i64::MIN).then_some(wm)
    }

    /// What `partition` contributes to the global watermark of [`WatermarkScope::Global`]:
    /// [`Watermark::Idle`] while it is idle by processing time (see
    /// [`on_processing_time`](Self::on_processing_time)), otherwise its own clock as
    /// [`Watermark::EventTime`] (`i64::MIN` before its first record, `i64::MAX` once finished).
    /// The global watermark is the [minimum](Watermark::min_of) of these over all partitions,
    /// never moving backwards. In other scopes no partition goes idle. `None` for a partition
    /// without state.
    pub fn global_input(&self, partition: u32) -> Option<Watermark> {
        let part = self.partitions.get(&partition)?;
        Some(global::input(part, self.config.out_of_orderness_ms))
    }

    /// Totals since creation and the current size of the state. Sizes are counted on demand, in
    /// time linear in the number of keys.
    pub fn counters(&self) -> Counters {
        let mut counters = Counters {
            aggregated: self.totals.aggregated,
            late: self.totals.late,
            windows_fired: self.totals.fired,
            windows_refired: self.totals.refired,
            keys_went_idle: self.totals.idle,
            partitions: self.partitions.len(),
            ..Counters::default()
        };
        for part in self.partitions.values() {
            counters.keys += part.keys.states.len();
            for state in part.keys.states.values() {
                counters.open_panes += state.panes.len();
                counters.pending_windows += state.pending_windows(&self.grid);
                counters.retained_windows += state.fired.len();
            }
        }
        counters
    }

    /// Sorts what one call emitted into output order and counts it.
    fn finish_batch(&mut self, mark: usize, out: &mut [Emission<K, A::Acc>]) {
        let batch = &mut out[mark..];
        if batch.len() > 1 {
            batch.sort_by(Emission::output_order);
        }
        for emission in batch.iter() {
            match emission {
                Emission::Fired(w) if w.revision == 0 => self.totals.fired += 1,
                Emission::Fired(_) => self.totals.refired += 1,
                Emission::KeyIdle { .. } => self.totals.idle += 1,
                Emission::KeyResumed { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::testutil::Sum;

    #[test]
    fn a_partitions_global_input_is_its_clock_or_idle_and_the_global_watermark_their_minimum() {
        let config = EngineConfig {
            scope: WatermarkScope::Global,
            partition_idle_timeout: Some(Duration::from_secs(1)),
            ..EngineConfig::default()
        };
        let mut engine = WindowEngine::<String, _>::new(config, Sum).unwrap();
        engine.add_partition(0);
        engine.add_partition(1);
        let mut out = Vec::new();
        assert_eq!(engine.global_input(0), Some(Watermark::EventTime(i64::MIN)));
        assert_eq!(engine.global_input(2), None, "no state");
        engine.process(0, "a", 70_000, &1, &mut out);
        assert_eq!(engine.global_input(0), Some(Watermark::EventTime(64_999)));
        assert_eq!(engine.watermark(0, "a"), None, "partition 1 holds it back");

        let now = Instant::now();
        engine.on_processing_time(now, &mut out);
        engine.on_processing_time(now + Duration::from_millis(1_500), &mut out);
        assert_eq!(engine.global_input(1), Some(Watermark::Idle));
        assert_eq!(engine.global_input(0), Some(Watermark::EventTime(64_999)));
        let inputs = [0, 1].map(|p| engine.global_input(p).unwrap());
        assert_eq!(Watermark::min_of(inputs), Watermark::EventTime(64_999));
        assert_eq!(engine.watermark(1, "b"), Some(64_999));

        // A record wakes partition 1 behind the global watermark, which does not move back.
        engine.process(1, "b", 10_000, &1, &mut out);
        assert_eq!(engine.global_input(1), Some(Watermark::EventTime(4_999)));
        assert_eq!(engine.watermark(1, "b"), Some(64_999));
        engine.finish(&mut out);
        assert_eq!(engine.global_input(1), Some(Watermark::EventTime(i64::MAX)));
    }

    #[test]
    fn outside_global_scope_no_partition_goes_idle() {
        let config = EngineConfig {
            scope: WatermarkScope::Partition,
            partition_idle_timeout: Some(Duration::from_millis(1)),
            ..EngineConfig::default()
        };
        let mut engine = WindowEngine::<String, _>::new(config, Sum).unwrap();
        let mut out = Vec::new();
        engine.process(0, "a", 70_000, &1, &mut out);
        let now = Instant::now();
        engine.on_processing_time(now, &mut out);
        engine.on_processing_time(now + Duration::from_secs(5), &mut out);
        assert_eq!(engine.global_input(0), Some(Watermark::EventTime(64_999)));
    }
}
