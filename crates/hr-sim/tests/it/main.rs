//! hr-sim integration tests, one binary:
//! - `cli`: the binary as a user runs it (wrong broker, `--config`, closed pipe, colour, Ctrl-C);
//! - `payload`: the seed's payload checks (shape, types, ranges, timezone-aware timestamps);
//! - `determinism`: same seed, same bytes, from the library and from the binary;
//! - `episodes`: injected episodes show in one-minute window averages, and nothing else does;
//! - `faults`: each fault produces what it claims and is counted in the ground truth;
//! - `kafka`: records reach a real broker keyed by patient and readable by a consumer.

mod cli;
mod common;
mod determinism;
mod episodes;
mod faults;
mod kafka;
mod payload;
