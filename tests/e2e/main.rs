//! End-to-end tests against a real broker (from `hr_kafka::testkit`).
//!
//! Index:
//! - `hello`: the seed's hello-world check through the example code.
//! - `demo`: `just demo --quick` end to end, as a newcomer runs it.
//! - `tls`: topics, simulator, job and a read-back on a TLS + SCRAM cluster, through `-X` only.

mod demo;
mod hello;
mod tls;
