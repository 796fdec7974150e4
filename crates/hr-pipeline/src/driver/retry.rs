//! The broker outage policy: a call that fails for a reason that is not fatal is tried again,
//! and a broker that stops answering is waited for with the state kept (one log line when it
//! goes, one when it returns), up to the broker timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use hr_kafka::KafkaError;

use super::broker::Broker;
use super::job::Job;
use crate::http::Health;

/// How long one attempt at a broker call may take before the retry loop looks at the stop
/// flag and tries again.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker outage noticed by [`Job::watch_broker`]: since when, and the last ping.
#[derive(Default)]
pub(super) struct Outage {
    down_since: Option<Instant>,
    last_ping: Option<Instant>,
}

/// What a wait for Kafka is about, and how long it may last.
pub struct Patience<'a> {
    /// What is waited for, as the log and the error say it ("fetching committed offsets").
    pub what: &'a str,
    /// The cluster, as the error names it.
    pub bootstrap: &'a str,
    /// How long Kafka may stay away (`--broker-timeout`).
    pub timeout: Duration,
    /// Set on SIGINT/SIGTERM: the wait gives up at once.
    pub stop: &'a AtomicBool,
    /// Beaten while waiting: waiting for Kafka on purpose is alive, not stalled, so a liveness
    /// probe must not restart a job that rides out an outage (readiness says the rest).
    pub health: Option<&'a Health>,
}

/// The one broker outage policy, for the job's every call to Kafka and for the binary's probe
/// before it: `attempt` is tried again while its error is one `waitable` says waiting can fix,
/// every half second, for up to the timeout or until the stop flag is set. The first failure is
/// logged and then one line every 30 s; Kafka answering again is logged once.
///
/// # Errors
/// The first error that waiting cannot fix, or the last one with how long it was waited for.
pub fn ride_out<T, E: std::error::Error + Send + Sync + 'static>(
    p: &Patience<'_>,
    mut attempt: impl FnMut() -> Result<T, E>,
    waitable: impl Fn(&E) -> bool,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut said: Option<Instant> = None;
    loop {
        let e = match attempt() {
            Ok(v) => {
                if said.is_some() {
                    tracing::info!(
                        what = p.what,
                        waited_s = started.elapsed().as_secs(),
                        "Kafka answers again."
                    );
                }
                return Ok(v);
            }
            Err(e) if !waitable(&e) => return Err(anyhow::Error::new(e).context(p.what.to_owned())),
            Err(e) => e,
        };
        if p.stop.load(Ordering::Relaxed) {
            bail!("{}: stopped while waiting for Kafka ({e})", p.what);
        }
        if started.elapsed() > p.timeout {
            bail!(
                "{}: Kafka at {} did not answer for {} s (--broker-timeout): {e}",
                p.what,
                p.bootstrap,
                started.elapsed().as_secs()
            );
        }
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            tracing::warn!(what = p.what, error = %e, timeout_s = p.timeout.as_secs(), "Kafka does not answer; waiting.");
            said = Some(Instant::now());
        }
        if let Some(h) = p.health {
            h.beat();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl<K: Broker> Job<'_, K> {
    /// Retries `f` while its error is not fatal, for up to the broker timeout or until the
    /// job is stopped ([`ride_out`]).
    pub(super) fn retry<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Result<T, KafkaError>,
    ) -> anyhow::Result<T> {
        let cfg = self.cfg;
        let patience = Patience {
            what,
            bootstrap: &cfg.bootstrap,
            timeout: cfg.broker_timeout,
            stop: self.stop,
            health: cfg.health.as_ref(),
        };
        ride_out(&patience, || f(self), |e| !e.is_fatal())
    }

    pub(super) fn broker_up(&mut self) {
        if let Some(since) = self.outage.down_since.take() {
            if let Some(m) = &self.cfg.metrics {
                m.set_broker_up(true);
            }
            tracing::info!(
                down_s = since.elapsed().as_secs(),
                "Kafka is reachable again; carrying on."
            );
        }
    }

    /// Notices an outage from librdkafka's client errors, pings while it lasts, and gives up
    /// after the broker timeout.
    pub(super) fn watch_broker(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(error) = self.kafka.take_client_error()
            && self.outage.down_since.is_none()
            && self.kafka.ping(Duration::from_secs(1)).is_err()
        {
            tracing::warn!(
                bootstrap = %self.cfg.bootstrap,
                %error,
                timeout_s = self.cfg.broker_timeout.as_secs(),
                "Kafka is unreachable; waiting for it with the state kept."
            );
            self.outage.down_since = Some(now);
            self.outage.last_ping = Some(now);
            if let Some(m) = &self.cfg.metrics {
                m.set_broker_up(false);
            }
        }
        let Some(since) = self.outage.down_since else {
            return Ok(());
        };
        if self
            .outage
            .last_ping
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.outage.last_ping = Some(now);
            if self.kafka.ping(Duration::from_secs(1)).is_ok() {
                self.broker_up();
                return Ok(());
            }
        }
        if now.duration_since(since) > self.cfg.broker_timeout {
            bail!(
                "Kafka at {} has been unreachable for {} s, longer than --broker-timeout {} s",
                self.cfg.bootstrap,
                now.duration_since(since).as_secs(),
                self.cfg.broker_timeout.as_secs()
            );
        }
        Ok(())
    }
}
