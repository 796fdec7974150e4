//! Integration tests of the window engine through its public API.
//!
//! - `examples`: hand-computed scenarios, one per rule.
//! - `properties`: the engine against a naive batch computation and a reference sequential
//!   simulation, for random streams in every scope.
//! - `restart`: snapshot, serialise, restore and replay equals an uninterrupted run.

mod examples;
mod properties;
mod restart;
mod support;
