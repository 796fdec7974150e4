//! Patient heart-rate monitor simulator.
#![deny(missing_docs)]
