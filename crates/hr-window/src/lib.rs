//! A keyed event-time window engine: watermarks, timers, idleness and allowed lateness as a pure
//! library, generic over the key and the aggregate.
//!
//! It reproduces the windowing of a Flink job (`assignTimestampsAndWatermarks` with bounded
//! out-of-orderness, `keyBy`, `TumblingEventTimeWindows` or `SlidingEventTimeWindows`,
//! `allowedLateness`, an `AggregateFunction`) without a cluster: feed it `(partition, key, event
//! time, input)` and it hands back fired windows. Nothing in it knows about Kafka, async runtimes or
//! heart rates, so it fits any keyed stream.
//!
//! # The shaping decision: event time is data, not a clock
//!
//! Every decision (does a window fire, is an event late, is a key silent) is a function of the
//! records fed so far, never of when they arrive, with one documented exception (partition idleness
//! in [`WatermarkScope::Global`], which is Flink's `withIdleness`). Open windows live in per-key
//! pane lists and per-partition timer sets ordered by the watermark at which they fire; a watermark
//! step pops what it passes. Because of this, in [`WatermarkScope::Key`] and
//! [`WatermarkScope::Partition`] a [`PartitionSnapshot`] plus a replay of the records after it
//! gives exactly the output of an uninterrupted run, which is what restarts and rebalances need.
//!
//! # Watermarks as values, one module per scope
//!
//! A watermark is a [`Watermark`]: [`Watermark::EventTime`] (no event at or before this time is
//! still expected) or [`Watermark::Idle`] (this input has gone quiet; do not wait for it). Inputs
//! combine by minimum with idle ones left out ([`Watermark::combine`], [`Watermark::min_of`]), so
//! a clock is as late as its slowest active input and only all-idle inputs make it idle. That is
//! how the global watermark is built from the partitions' ([`WindowEngine::global_input`]).
//!
//! Every clock follows one rule, Flink's bounded out-of-orderness (below); the
//! [`WatermarkScope`] decides whose events feed it. Each scope's rules live in a module of their
//! own behind one internal trait, and [`WindowEngine::process`] does the same three things in
//! every scope: assign the event to its windows, update the scope's clock, fire what its
//! watermark passed.
//!
//! - **Key** (`watermark/key.rs`): each key's own clock. A key's windows fire as its own records
//!   move it; silence is the one other thing that closes them.
//! - **Partition** (`watermark/partition.rs`): one clock per partition. Keys with work pending
//!   wait in the partition's timer queue (`watermark/timers.rs`), ordered by the watermark at
//!   which they fall due, and a step of the partition's watermark pops exactly those it passes.
//! - **Global** (`watermark/global.rs`): the minimum over the partitions' inputs, each either its
//!   clock or idle by processing time, moving forward only; each step fires in every partition.
//!
//! Key idleness (a key its partition has moved on from) is event-time bookkeeping shared by all
//! scopes, not a watermark: a silent key keeps its clock, which still judges its stragglers.
//!
//! # Semantics
//!
//! - Windows are `[start, start + size)` with `start` a multiple of the slide (epoch-aligned,
//!   offset 0), as Flink assigns them, negative timestamps included.
//! - Sliding windows are built from panes of `gcd(size, slide)`: an event updates one pane, and a
//!   window merges its panes when it fires.
//! - Watermark = largest event time seen − `out_of_orderness_ms` − 1 ms, advanced per event. A
//!   window fires once the watermark reaches `end − 1`: the first event at or after `end +
//!   out_of_orderness_ms` fires it.
//! - An event is late when even its last window satisfies `end − 1 + allowed_lateness_ms <=
//!   watermark`. Otherwise it is aggregated; windows of it that already fired re-fire with the next
//!   revision. Window state is freed the moment its last window reaches that point.
//! - [`WindowEngine::finish`] ends a bounded input: everything open fires.
//! - Output is sorted per call by window end, then key.
//!
//! # Example
//!
//! ```
//! use hr_window::{Aggregator, EngineConfig, Emission, Outcome, WindowEngine};
//!
//! /// Counts events.
//! struct Count;
//! impl Aggregator for Count {
//!     type Input = ();
//!     type Acc = u64;
//!     fn create(&self) -> u64 { 0 }
//!     fn add(&self, acc: &mut u64, _: &()) { *acc += 1 }
//!     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
//! }
//!
//! // One-minute tumbling windows, 5 s out-of-orderness, one clock per key.
//! let mut engine = WindowEngine::<String, _>::new(EngineConfig::default(), Count)?;
//! let mut out = Vec::new();
//! engine.process(0, "p001", 10_000, &(), &mut out);
//! engine.process(0, "p001", 30_000, &(), &mut out);
//! engine.process(0, "p001", 64_999, &(), &mut out);
//! assert!(out.is_empty(), "the watermark is 59 998 ms, one short of the window's last ms");
//!
//! // The first event at end + delay moves the watermark to end - 1 and fires [0, 60 s).
//! engine.process(0, "p001", 65_000, &(), &mut out);
//! let Emission::Fired(window) = &out[0] else { unreachable!() };
//! assert_eq!((window.start, window.end, window.acc, window.revision), (0, 60_000, 2, 0));
//!
//! // That window is closed now: a straggler for it comes back to the caller.
//! let outcome = engine.process(0, "p001", 59_000, &(), &mut out);
//! assert_eq!(outcome, Outcome::Late { watermark_ms: 59_999, lateness_ms: 999 });
//! # Ok::<(), hr_window::ConfigError>(())
//! ```
#![deny(missing_docs)]

mod aggregate;
mod config;
mod engine;
mod key_idle;
mod key_state;
mod output;
mod partition;
mod snapshot;
#[cfg(test)]
mod testutil;
mod watermark;
mod windows;

pub use aggregate::Aggregator;
pub use config::{
    ConfigError, EVENT_TIME_LIMIT_MS, EngineConfig, MAX_PANES_PER_WINDOW, SPAN_LIMIT_MS,
    WatermarkScope, WindowSpec,
};
pub use engine::WindowEngine;
pub use output::{Counters, Emission, FiredWindow, Outcome};
pub use snapshot::{KeySnapshot, PartitionChanges, PartitionMeta, PartitionSnapshot, RestoreError};
pub use watermark::Watermark;
