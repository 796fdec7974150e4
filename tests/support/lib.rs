//! Helpers shared by the workspace examples and end-to-end tests.
