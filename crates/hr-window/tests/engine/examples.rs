//! Hand-computed scenarios.
