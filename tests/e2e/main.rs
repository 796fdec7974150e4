//! End-to-end tests against a real broker (from `hr_kafka::testkit`).
//!
//! Index:
//! - `cluster`: faults on a 3-node cluster (leader kill -9, an instance cut off), the short form
//!   of `just chaos-cluster`.
//! - `hello`: the seed's hello-world check through the example code.
//! - `demo`: `just demo --quick` end to end, as a newcomer runs it.
//! - `tls`: topics, simulator, job and a read-back on a TLS + SCRAM cluster, through `-X` only.
//! - `acl`: the job as a principal with exactly the README's ACLs on the TLS broker's authorizer,
//!   and the error naming each one left out.
//! - `image`: the container image built from this build's binaries, run against the test broker.
//! - `stack`: `docker/compose-stack.yml` (two instances, the dashboard, Prometheus) on the test broker.
//! - `containers`: what `image` and `stack` share (engine, image build, seed scenario, HTTP).

mod acl;
mod cluster;
mod containers;
mod demo;
mod hello;
mod image;
mod stack;
mod tls;
