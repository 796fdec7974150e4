//! One stop flag for SIGINT and SIGTERM, read by synchronous loops and awaited by servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// A flag that says "stop": set once, by a signal ([`StopFlag::on_signals`]) or by
/// [`StopFlag::set`]. Clones share it. A loop polls [`is_set`](Self::is_set) (or lends
/// [`as_atomic`](Self::as_atomic) to an API that takes an `&AtomicBool`); an async server awaits
/// [`wait`](Self::wait).
///
/// # Example
/// ```
/// let stop = hr_cli::StopFlag::new();
/// let worker = {
///     let stop = stop.clone();
///     std::thread::spawn(move || while !stop.is_set() { std::thread::yield_now() })
/// };
/// stop.set();
/// worker.join().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct StopFlag {
    flag: Arc<AtomicBool>,
    changed: Arc<watch::Sender<bool>>,
}

impl Default for StopFlag {
    fn default() -> Self {
        Self::new()
    }
}

/// What SIGINT and SIGTERM do besides setting a [`StopFlag`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OnSignal {
    /// Logged (`info`) when the first signal arrives.
    pub notice: Option<&'static str>,
    /// Printed on standard error when a second signal arrives, which then ends the process at
    /// once with code 130 (for a stop that may wait long, e.g. on a broker that is down).
    /// `None`: later signals are ignored and the stop runs its course.
    pub second_exits: Option<&'static str>,
}

impl StopFlag {
    /// A flag nothing has set yet, and that no signal sets.
    pub fn new() -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            changed: Arc::new(watch::channel(false).0),
        }
    }

    /// A flag that SIGINT or SIGTERM sets. The signals are caught from this call on (so they no
    /// longer end the process), by one thread that waits for them.
    ///
    /// # Errors
    /// When the signal handlers or their thread cannot be set up.
    pub fn on_signals(how: OnSignal) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let mut signals = {
            let _entered = runtime.enter();
            Signals::new()?
        };
        let stop = Self::new();
        let setter = stop.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(signals.recv());
                if let Some(notice) = how.notice {
                    tracing::info!("{notice}");
                }
                setter.set();
                loop {
                    runtime.block_on(signals.recv());
                    if let Some(message) = how.second_exits {
                        eprintln!("{message}");
                        std::process::exit(130);
                    }
                }
            })?;
        Ok(stop)
    }

    /// Sets the flag (again is harmless) and wakes every [`wait`](Self::wait).
    pub fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.changed.send_replace(true);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The flag itself, for APIs that poll an `&AtomicBool` (`hr_pipeline::driver::run`).
    pub fn as_atomic(&self) -> &AtomicBool {
        &self.flag
    }

    /// A shared handle on the flag, for components that keep one (`hr_sim::KafkaSink`).
    pub fn shared(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Returns once the flag is set.
    pub async fn wait(&self) {
        let mut rx = self.changed.subscribe();
        // The sender lives as long as `self`, so the channel cannot close under us.
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn set_wakes_a_waiter_and_every_clone_sees_it() {
        let stop = StopFlag::new();
        let clone = stop.clone();
        assert!(!clone.is_set());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                stop.set();
            })
        };
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), clone.wait())
                .await
                .expect("woken by set");
        });
        setter.join().unwrap();
        assert!(clone.is_set() && stop.as_atomic().load(Ordering::Relaxed));
        assert!(stop.shared().load(Ordering::Relaxed));
        // A wait that starts after the set returns at once.
        runtime.block_on(stop.wait());
    }

    #[cfg(unix)]
    #[test]
    fn a_signal_sets_the_flag() {
        let stop = StopFlag::on_signals(OnSignal::default()).unwrap();
        assert!(!stop.is_set());
        // SAFETY: raising a signal this process now catches.
        unsafe extern "C" {
            fn raise(signal: i32) -> i32;
        }
        const SIGTERM: i32 = 15;
        assert_eq!(unsafe { raise(SIGTERM) }, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !stop.is_set() {
            assert!(
                std::time::Instant::now() < deadline,
                "the signal was not seen"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
