//! End-to-end tests against a real broker (from `hr_kafka::testkit`).
//!
//! Index:
//! - `hello`: the seed's hello-world check through the example code.
//! - `demo`: `just demo --quick` end to end, as a newcomer runs it.

mod demo;
mod hello;
