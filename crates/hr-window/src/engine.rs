//! The keyed window engine: clocks per scope, timers, idleness, snapshots.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Aggregator;
use crate::config::{ConfigError, EVENT_TIME_LIMIT_MS, EngineConfig, WatermarkScope};
use crate::key_state::{Firing, KeyState};
use crate::output::{Counters, Emission, FiredWindow, Outcome};
use crate::snapshot::{
    KeySnapshot, PartitionChanges, PartitionMeta, PartitionSnapshot, RestoreError,
};
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
    global_wm: i64,
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

struct Partition<K, Acc> {
    keys: HashMap<K, KeyState<Acc>>,
    /// Largest event time of any record (late or not), as Flink's watermark generator sees every
    /// record before the window operator judges it.
    max_seen: i64,
    /// Raised to +∞ by `finish`.
    floor: i64,
    /// Partition and global scope: `(next_timer, key)` for every key with work pending, so a
    /// watermark step pops exactly the keys it concerns (arroyo keeps its bins in an ordered map by
    /// window end in the same way).
    timers: BTreeSet<(i64, K)>,
    /// `(heard_at, key)` for every key not reported idle. Lazy: an entry may be older than the
    /// key's true `heard_at`, and is re-checked when it comes due.
    idle_queue: BTreeSet<(i64, K)>,
    /// `max_seen` above which the front of `idle_queue` is due; caches a tree descent per event.
    idle_due: i64,
    /// Processing-time idleness for global scope, after Flink's `WatermarksWithIdleness`: a count
    /// of records, the count at the last check, and since when the count has not moved.
    activity: u64,
    checked_activity: u64,
    inactive_since: Option<Instant>,
    idle: bool,
    /// Keys whose state changed since the last `take_changes`, each once (`KeyState::changed`).
    changed: Vec<K>,
}

impl<K: Ord, Acc> Partition<K, Acc> {
    fn new(floor: i64) -> Self {
        Partition {
            keys: HashMap::new(),
            max_seen: i64::MIN,
            floor,
            timers: BTreeSet::new(),
            idle_queue: BTreeSet::new(),
            idle_due: i64::MAX,
            activity: 0,
            checked_activity: 0,
            inactive_since: None,
            idle: false,
            changed: Vec::new(),
        }
    }

    fn watermark(&self, delay: i64) -> i64 {
        self.max_seen.saturating_sub(delay + 1).max(self.floor)
    }

    fn refresh_idle_due(&mut self, timeout: i64) {
        self.idle_due = self
            .idle_queue
            .first()
            .map_or(i64::MAX, |(heard_at, _)| heard_at.saturating_add(timeout));
    }
}

fn key_watermark<Acc>(state: &KeyState<Acc>, partition_floor: i64, delay: i64) -> i64 {
    state
        .max_seen
        .saturating_sub(delay + 1)
        .max(state.floor)
        .max(partition_floor)
}

fn fired<K, Acc>(partition: u32, key: K, firing: Firing<Acc>) -> Emission<K, Acc> {
    Emission::Fired(FiredWindow {
        partition,
        key,
        start: firing.start,
        end: firing.end,
        acc: firing.acc,
        revision: firing.revision,
    })
}

/// Lists `key` among its partition's changed keys, once until the next `take_changes`.
fn mark_changed<K: Clone, Acc>(changed: &mut Vec<K>, state: &mut KeyState<Acc>, key: &K) {
    if !state.changed {
        state.changed = true;
        changed.push(key.clone());
    }
}

/// Moves `(old, key)` to `(new, key)` in a timer set; `i64::MAX` means no entry.
fn reschedule<K: Ord>(timers: &mut BTreeSet<(i64, K)>, old: i64, new: i64, key: K) {
    if old == new {
        return;
    }
    if old != i64::MAX {
        let entry = (old, key);
        timers.remove(&entry);
        if new != i64::MAX {
            timers.insert((new, entry.1));
        }
    } else if new != i64::MAX {
        timers.insert((new, key));
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
            global_wm: i64::MIN,
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
        let scope = self.config.scope;
        let delay = self.config.out_of_orderness_ms;
        let idle_timeout = self.config.key_idle_timeout_ms;
        let grid = self.grid;
        let floor = if self.finished { i64::MAX } else { i64::MIN };
        let part = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition::new(floor));
        part.activity = part.activity.wrapping_add(1);
        let was_idle = std::mem::replace(&mut part.idle, false);
        let partition_wm_before = part.watermark(delay);
        part.max_seen = part.max_seen.max(t);

        let (state, is_new) = match part.keys.get_mut(key) {
            Some(state) => (state, false),
            None => (
                part.keys
                    .entry(key.to_owned())
                    .or_insert_with(KeyState::new),
                true,
            ),
        };
        if !state.changed {
            state.changed = true;
            part.changed.push(key.to_owned());
        }
        let wm_before = match scope {
            WatermarkScope::Key => key_watermark(state, part.floor, delay),
            WatermarkScope::Partition => partition_wm_before,
            WatermarkScope::Global => self.global_wm,
        };
        let timer_before = state.next_timer;
        let outcome = if grid.retire_at(t) <= wm_before {
            self.totals.late += 1;
            Outcome::Late {
                watermark_ms: wm_before,
                lateness_ms: wm_before.saturating_sub(t),
            }
        } else {
            state.add(&grid, &self.aggregator, t, input, wm_before, &mut |f| {
                out.push(fired(partition, key.to_owned(), f))
            });
            self.totals.aggregated += 1;
            Outcome::Aggregated
        };
        state.max_seen = state.max_seen.max(t);
        state.heard_at = part.max_seen;
        let resumed = state.idle;
        let revived = is_new || resumed;
        state.idle = false;
        if scope == WatermarkScope::Key {
            let wm = key_watermark(state, part.floor, delay);
            if wm >= state.next_timer {
                state.advance(&grid, &self.aggregator, wm, &mut |f| {
                    out.push(fired(partition, key.to_owned(), f))
                });
            }
        }
        let timer_after = state.next_timer;

        if scope != WatermarkScope::Key && timer_after != timer_before {
            reschedule(&mut part.timers, timer_before, timer_after, key.to_owned());
        }
        if resumed {
            out.push(Emission::KeyResumed {
                partition,
                key: key.to_owned(),
                event_time_ms: t,
            });
        }
        if let Some(timeout) = idle_timeout
            && revived
        {
            part.idle_queue.insert((part.max_seen, key.to_owned()));
            if part.idle_due == i64::MAX {
                part.refresh_idle_due(timeout);
            }
        }
        match scope {
            WatermarkScope::Key => {}
            WatermarkScope::Partition => {
                let wm = part.watermark(delay);
                if wm > partition_wm_before {
                    fire_timers(part, partition, wm, &grid, &self.aggregator, out);
                }
            }
            WatermarkScope::Global => {
                if was_idle || part.watermark(delay) > partition_wm_before {
                    self.advance_global(out);
                }
            }
        }
        if let Some(timeout) = idle_timeout {
            let part = self.partitions.get_mut(&partition).expect("added above");
            if part.max_seen > part.idle_due {
                detect_idle_keys(
                    part,
                    partition,
                    timeout,
                    &self.config,
                    &self.aggregator,
                    out,
                );
            }
        }
        self.finish_batch(mark, out);
        outcome
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
        for part in self.partitions.values_mut() {
            if part.activity != part.checked_activity {
                part.checked_activity = part.activity;
                part.inactive_since = None;
                continue;
            }
            match part.inactive_since {
                None => part.inactive_since = Some(now),
                Some(since) => {
                    if now.saturating_duration_since(since) > timeout {
                        part.idle = true;
                    }
                }
            }
        }
        self.advance_global(out);
        self.finish_batch(mark, out);
    }

    /// Ends a bounded input: every watermark moves to +∞ (as Flink's bounded sources emit
    /// `MAX_WATERMARK`), so every open window fires into `out` and all window state is freed.
    /// Events processed afterwards are late.
    pub fn finish(&mut self, out: &mut Vec<Emission<K, A::Acc>>) {
        let mark = out.len();
        self.finished = true;
        self.global_wm = i64::MAX;
        for (&id, part) in &mut self.partitions {
            part.floor = i64::MAX;
            part.timers.clear();
            for (key, state) in &mut part.keys {
                mark_changed(&mut part.changed, state, key);
                state.advance(&self.grid, &self.aggregator, i64::MAX, &mut |f| {
                    out.push(fired(id, key.clone(), f))
                });
            }
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
        let delay = self.config.out_of_orderness_ms;
        let mut keys: Vec<K> = part
            .keys
            .iter()
            .filter(|(_, s)| !s.idle)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_unstable();
        for key in keys {
            let state = part.keys.get_mut(&key).expect("listed above");
            state.idle = true;
            mark_changed(&mut part.changed, state, &key);
            if self.config.scope == WatermarkScope::Key {
                state.floor = state.closing_floor(&self.grid);
                let wm = key_watermark(state, part.floor, delay);
                state.advance(&self.grid, &self.aggregator, wm, &mut |f| {
                    out.push(fired(partition, key.clone(), f))
                });
            }
            out.push(Emission::KeyIdle {
                partition,
                last_event_time_ms: state.max_seen,
                key,
            });
        }
        // Idle keys leave the event-time idle queue until they are heard from again.
        part.idle_queue.clear();
        part.refresh_idle_due(self.config.key_idle_timeout_ms.unwrap_or(i64::MAX));
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
        let wm = match self.config.scope {
            WatermarkScope::Key => part
                .keys
                .get(key)
                .map_or(part.floor, |state| key_watermark(state, part.floor, delay)),
            WatermarkScope::Partition => part.watermark(delay),
            WatermarkScope::Global => self.global_wm,
        };
        (wm != i64::MIN).then_some(wm)
    }

    /// The largest event time `partition` has seen (late records included), for metrics.
    /// `None` for a partition without state or before its first event.
    pub fn max_event_time(&self, partition: u32) -> Option<i64> {
        let part = self.partitions.get(&partition)?;
        (part.max_seen != i64::MIN).then_some(part.max_seen)
    }

    /// The watermark of `partition` as a whole, for metrics: the global one in global scope;
    /// otherwise the partition's own clock (`max event time - delay - 1`, or +∞ once finished).
    /// In key scope each key keeps its own clock, at or behind this one: this is the clock of
    /// the partition's most advanced key. `None` before there is one.
    pub fn partition_watermark(&self, partition: u32) -> Option<i64> {
        let part = self.partitions.get(&partition)?;
        let wm = match self.config.scope {
            WatermarkScope::Global => self.global_wm,
            WatermarkScope::Key | WatermarkScope::Partition => {
                part.watermark(self.config.out_of_orderness_ms)
            }
        };
        (wm != i64::MIN).then_some(wm)
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
            counters.keys += part.keys.len();
            for state in part.keys.values() {
                counters.open_panes += state.panes.len();
                counters.pending_windows += state.pending_windows(&self.grid);
                counters.retained_windows += state.fired.len();
            }
        }
        counters
    }

    /// Captures the state of `partition`, or `None` if the engine has none for it.
    ///
    /// # Example
    ///
    /// ```
    /// # use hr_window::{Aggregator, EngineConfig, WindowEngine};
    /// # struct Count;
    /// # impl Aggregator for Count {
    /// #     type Input = ();
    /// #     type Acc = u64;
    /// #     fn create(&self) -> u64 { 0 }
    /// #     fn add(&self, acc: &mut u64, _: &()) { *acc += 1 }
    /// #     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
    /// # }
    /// let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// let mut out = Vec::new();
    /// engine.process(0, "p001", 10_000, &(), &mut out);
    /// let json = serde_json::to_string(&engine.snapshot(0).unwrap())?;
    ///
    /// // Another engine (after a crash, or on the instance that gets the partition) carries on.
    /// let mut restored = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// restored.restore(0, serde_json::from_str(&json)?)?;
    /// restored.process(0, "p001", 65_000, &(), &mut out);
    /// assert_eq!(out.len(), 1, "the window [0, 60 s) held the event from before the snapshot");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self, partition: u32) -> Option<PartitionSnapshot<K, A::Acc>>
    where
        K: Serialize,
        A::Acc: Serialize,
    {
        let part = self.partitions.get(&partition)?;
        let mut keys: Vec<KeySnapshot<K, A::Acc>> = part
            .keys
            .iter()
            .map(|(key, state)| KeySnapshot::capture(key.clone(), state))
            .collect();
        keys.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        Some(PartitionSnapshot {
            window: self.config.window,
            out_of_orderness_ms: self.config.out_of_orderness_ms,
            allowed_lateness_ms: self.config.allowed_lateness_ms,
            scope: self.config.scope,
            max_event_time_ms: part.max_seen,
            floor_ms: part.floor,
            keys,
        })
    }

    /// What changed in `partition` since the previous call (or since it was added or restored):
    /// the partition's meta record and a snapshot of each key whose state changed, sorted by
    /// key. `None` if the engine has no state for the partition. A changelog that writes these at
    /// each commit holds, per key, the same state [`snapshot`](Self::snapshot) would capture, at
    /// a cost that follows the keys that changed rather than all keys.
    ///
    /// # Example
    ///
    /// ```
    /// # use hr_window::{Aggregator, EngineConfig, PartitionSnapshot, WindowEngine};
    /// # struct Count;
    /// # impl Aggregator for Count {
    /// #     type Input = ();
    /// #     type Acc = u64;
    /// #     fn create(&self) -> u64 { 0 }
    /// #     fn add(&self, acc: &mut u64, _: &()) { *acc += 1 }
    /// #     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
    /// # }
    /// let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
    /// let mut out = Vec::new();
    /// engine.process(0, "p001", 10_000, &(), &mut out);
    /// engine.process(0, "p002", 10_000, &(), &mut out);
    /// assert_eq!(engine.take_changes(0).unwrap().keys.len(), 2);
    /// engine.process(0, "p002", 11_000, &(), &mut out);
    /// let changes = engine.take_changes(0).unwrap();
    /// assert_eq!(changes.keys.len(), 1, "only p002 changed");
    /// assert_eq!(changes.keys[0].key(), "p002");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_changes(&mut self, partition: u32) -> Option<PartitionChanges<K, A::Acc>> {
        let part = self.partitions.get_mut(&partition)?;
        let mut keys = Vec::with_capacity(part.changed.len());
        for key in part.changed.drain(..) {
            if let Some(state) = part.keys.get_mut(&key) {
                state.changed = false;
                keys.push(KeySnapshot::capture(key, state));
            }
        }
        keys.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        Some(PartitionChanges {
            meta: PartitionMeta::new(&self.config, part.max_seen, part.floor),
            keys,
        })
    }

    /// Replaces the state of `partition` with `snapshot`. In key and partition scope, replaying the
    /// partition's records after the snapshot point then reproduces an uninterrupted run exactly.
    ///
    /// # Errors
    ///
    /// [`RestoreError::ConfigMismatch`] if the snapshot was taken with another window, delay,
    /// lateness or scope; [`RestoreError::Corrupt`] if its panes or windows are out of order or off
    /// the grid. The engine is unchanged on error.
    pub fn restore(
        &mut self,
        partition: u32,
        snapshot: PartitionSnapshot<K, A::Acc>,
    ) -> Result<(), RestoreError>
    where
        K: DeserializeOwned,
        A::Acc: DeserializeOwned,
    {
        let config = &self.config;
        let mismatch = if snapshot.window != config.window {
            Some("window")
        } else if snapshot.out_of_orderness_ms != config.out_of_orderness_ms {
            Some("out_of_orderness_ms")
        } else if snapshot.allowed_lateness_ms != config.allowed_lateness_ms {
            Some("allowed_lateness_ms")
        } else if snapshot.scope != config.scope {
            Some("scope")
        } else {
            None
        };
        if let Some(field) = mismatch {
            return Err(RestoreError::ConfigMismatch { field });
        }
        let mut part = Partition::new(snapshot.floor_ms);
        part.max_seen = snapshot.max_event_time_ms;
        part.keys.reserve(snapshot.keys.len());
        for key in snapshot.keys {
            let (key, state) = key.into_state(&self.grid)?;
            if self.config.scope != WatermarkScope::Key && state.next_timer != i64::MAX {
                part.timers.insert((state.next_timer, key.clone()));
            }
            if self.config.key_idle_timeout_ms.is_some() && !state.idle {
                part.idle_queue.insert((state.heard_at, key.clone()));
            }
            part.keys.insert(key, state);
        }
        if let Some(timeout) = self.config.key_idle_timeout_ms {
            part.refresh_idle_due(timeout);
        }
        self.partitions.insert(partition, part);
        Ok(())
    }

    /// Recomputes the global watermark and fires what it passes, in every partition.
    fn advance_global(&mut self, out: &mut Vec<Emission<K, A::Acc>>) {
        let delay = self.config.out_of_orderness_ms;
        let candidate = self
            .partitions
            .values()
            .filter(|p| !p.idle)
            .map(|p| p.watermark(delay))
            .min();
        // With every partition idle the watermark stays where it is, as Flink's combined
        // watermark does; it never moves backwards when a partition wakes up behind it.
        let Some(candidate) = candidate else { return };
        if candidate <= self.global_wm {
            return;
        }
        self.global_wm = candidate;
        for (&id, part) in &mut self.partitions {
            fire_timers(part, id, candidate, &self.grid, &self.aggregator, out);
        }
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

/// Partition and global scope: brings every key whose timer is at or below `wm` up to it.
fn fire_timers<K, A>(
    part: &mut Partition<K, A::Acc>,
    partition: u32,
    wm: i64,
    grid: &Grid,
    aggregator: &A,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    while part.timers.first().is_some_and(|(due, _)| *due <= wm) {
        let (_, key) = part.timers.pop_first().expect("checked above");
        let state = part
            .keys
            .get_mut(&key)
            .expect("timers only name known keys");
        mark_changed(&mut part.changed, state, &key);
        state.advance(grid, aggregator, wm, &mut |f| {
            out.push(fired(partition, key.clone(), f))
        });
        if state.next_timer != i64::MAX {
            part.timers.insert((state.next_timer, key));
        }
    }
}

/// Reports keys that the partition has moved on from by more than `timeout` of event time; in key
/// scope also closes their windows, since no other record would ever move that key's clock.
fn detect_idle_keys<K, A>(
    part: &mut Partition<K, A::Acc>,
    partition: u32,
    timeout: i64,
    config: &EngineConfig,
    aggregator: &A,
    out: &mut Vec<Emission<K, A::Acc>>,
) where
    K: Clone + Eq + Hash + Ord,
    A: Aggregator,
{
    let (scope, delay) = (config.scope, config.out_of_orderness_ms);
    let (size, slide) = config.window.size_and_slide();
    let grid = &Grid::new(size, slide, config.allowed_lateness_ms);
    // "More than the timeout": heard_at + timeout < max_seen.
    while part
        .idle_queue
        .first()
        .is_some_and(|(heard_at, _)| heard_at.saturating_add(timeout) < part.max_seen)
    {
        let (_, key) = part.idle_queue.pop_first().expect("checked above");
        let state = part
            .keys
            .get_mut(&key)
            .expect("idle entries only name known keys");
        if state.heard_at.saturating_add(timeout) >= part.max_seen {
            part.idle_queue.insert((state.heard_at, key));
            continue;
        }
        state.idle = true;
        mark_changed(&mut part.changed, state, &key);
        if scope == WatermarkScope::Key {
            state.floor = state.closing_floor(grid);
            let wm = key_watermark(state, part.floor, delay);
            state.advance(grid, aggregator, wm, &mut |f| {
                out.push(fired(partition, key.clone(), f))
            });
        }
        out.push(Emission::KeyIdle {
            partition,
            key,
            last_event_time_ms: state.max_seen,
        });
    }
    part.refresh_idle_due(timeout);
}
