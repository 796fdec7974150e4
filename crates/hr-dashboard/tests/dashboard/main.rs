//! Integration tests of the `hr-dashboard` binary (one test binary; `support` holds the helpers).
//!
//! - `browser`: headless Chromium over WebDriver against the dashboard reading the real broker
//!   (`hr_kafka::testkit`): the scripted ward (tiles, states as colour and word, sparklines, the
//!   feed, job health, a hostile patient id, filters, no console errors, `docs/dashboard.png`),
//!   1,000 patients, and a dead broker said on the page.
//! - `cli`: the token, a port already in use, SIGTERM with a browser connected.

mod browser;
mod cli;
mod support;
