//! Watermarks: the [`Watermark`] value, and the rules of each [`WatermarkScope`] behind the
//! [`Scope`] trait, one module per scope.
//!
//! - `value`: [`Watermark`], an event time or idle, combined by minimum with idle inputs left
//!   out.
//! - `scope`: the [`Scope`] trait, the bounded-out-of-orderness rule every clock uses, and
//!   `with_scope!`, which picks a scope's rules once per call rather than once per decision.
//! - `key`, `partition`, `global`: one clock per key, per partition, or for the whole engine.
//! - `timers`: the per-partition timer queue the partition and global scopes fire from.
//!
//! [`WatermarkScope`]: crate::WatermarkScope

pub(crate) mod global;
mod key;
mod partition;
mod scope;
mod timers;
mod value;

pub(crate) use global::{Activity, GlobalClock, GlobalScope};
pub(crate) use key::KeyScope;
pub(crate) use partition::PartitionScope;
pub(crate) use scope::{Moved, Scope, bounded, with_scope};
pub(crate) use timers::{Timers, fire_due};
pub use value::Watermark;
