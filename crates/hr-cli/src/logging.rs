//! Logging: `tracing` events on standard error, filtered by `RUST_LOG`, and a rate limit per
//! cause so a client retrying a broker that is down cannot flood the log.

use std::fmt;

use crate::color_on;

/// A `tracing` filter that lets one librdkafka line per cause through each second, so a client
/// retrying a broker that is down (librdkafka logs each reconnect) cannot flood the log; the
/// cause is the event's level plus its message with digits and any parenthesised detail left
/// out (`Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state
/// CONNECT)`). The project's own lines all pass: they say what changed once per change, and two
/// of them with the same message carry different fields (an assignment of no partition and one
/// of six, a moment apart, are both shown).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let layer = tracing_subscriber::fmt::layer().with_filter(hr_cli::OncePerSecond::default());
/// let _guard = tracing_subscriber::registry().with(layer).set_default();
/// ```
#[derive(Debug, Default)]
pub struct OncePerSecond {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl OncePerSecond {
    /// Whether an event of this `cause` may pass now (and, if so, remembers that it did).
    fn admit(&self, cause: String) -> bool {
        let now = std::time::Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.get(&cause) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(1) => false,
            _ => {
                if last.len() > 1024 {
                    last.clear();
                }
                last.insert(cause, now);
                true
            }
        }
    }
}

/// The target of librdkafka's own log lines (hr-kafka forwards them under it).
const LIMITED_TARGET: &str = "librdkafka";

/// The cause of a message: digits and `( ... )` details dropped.
fn cause_of(message: &str) -> String {
    let head = message.split(" (").next().unwrap_or(message);
    head.chars().filter(|c| !c.is_ascii_digit()).collect()
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for OncePerSecond {
    fn enabled(
        &self,
        _meta: &tracing::Metadata<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let meta = event.metadata();
        if meta.target() != LIMITED_TARGET {
            return true;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.admit(format!(
            "{} {} {}",
            meta.level(),
            meta.target(),
            cause_of(&m.0)
        ))
    }
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Time since the process started (since [`init_logging`], the first thing every binary does;
/// zero where it was not called), for start-up figures such as the job's time to its first
/// record.
pub fn since_start() -> std::time::Duration {
    STARTED
        .get()
        .map_or(std::time::Duration::ZERO, std::time::Instant::elapsed)
}

/// The logging every hr-stream binary sets up: `tracing` events on standard error, filtered by
/// `RUST_LOG` (default `info`), coloured only on a terminal without `NO_COLOR`, and a line
/// repeated for the same cause at most once a second ([`OncePerSecond`]). The level filter is
/// the outer one, so an event it rejects is never formatted or rate-limited (the other way round
/// cost about 30 % of the streaming job's CPU).
///
/// It also marks the process's start for [`since_start`]: every binary calls it first.
pub fn init_logging() {
    let _ = STARTED.set(std::time::Instant::now());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color_on(&std::io::stderr()))
        .with_filter(OncePerSecond::default())
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_repeated_cause_passes_once_a_second() {
        let f = OncePerSecond::default();
        let refused = |ms: u32| {
            cause_of(&format!(
                "localhost:9099/bootstrap: Connect to ipv4#127.0.0.1:9099 failed: Connection \
                 refused (after {ms}ms in state CONNECT)"
            ))
        };
        assert!(f.admit(refused(0)));
        assert!(!f.admit(refused(3)), "same cause within a second");
        assert!(f.admit("another cause".into()));
        *f.last.lock().unwrap().get_mut(&refused(0)).unwrap() -= Duration::from_millis(1100);
        assert!(f.admit(refused(7)), "a second later it is shown again");
    }

    /// Events through the filter as the binaries set it up, into a buffer.
    fn shown(emit: impl FnOnce()) -> String {
        use tracing_subscriber::prelude::*;
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(OncePerSecond::default());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn only_librdkafka_lines_are_limited() {
        let out = shown(|| {
            for ms in [0, 3, 5] {
                tracing::warn!(target: "librdkafka", "FAIL: Connect failed: Connection refused (after {ms}ms)");
            }
            tracing::info!(target: "hr_pipeline::driver", partitions = ?Vec::<i32>::new(), "Assigned.");
            tracing::info!(target: "hr_pipeline::driver", partitions = ?vec![0, 1, 2], "Assigned.");
        });
        assert_eq!(out.matches("Connection refused").count(), 1, "{out}");
        assert!(out.contains("partitions=[]"), "{out}");
        assert!(out.contains("partitions=[0, 1, 2]"), "{out}");
    }
}
