//! The broker outage policy: a call that fails for a reason that is not fatal is tried again,
//! and a broker that stops answering is waited for with the state kept (one log line when it
//! goes, one when it returns), up to the broker timeout.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use hr_kafka::KafkaError;

use super::broker::Broker;
use super::job::Job;

/// How long one attempt at a broker call may take before the retry loop looks at the stop
/// flag and tries again.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker outage noticed by [`Job::watch_broker`]: since when, and the last ping.
#[derive(Default)]
pub(super) struct Outage {
    down_since: Option<Instant>,
    last_ping: Option<Instant>,
}

impl<K: Broker> Job<'_, K> {
    /// Retries `f` while its error is not fatal, for up to the broker timeout or until the
    /// job is stopped.
    pub(super) fn retry<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Result<T, KafkaError>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut logged = false;
        loop {
            match f(self) {
                Ok(v) => {
                    if logged {
                        tracing::info!(
                            what,
                            waited_s = started.elapsed().as_secs(),
                            "Kafka answers again."
                        );
                    }
                    return Ok(v);
                }
                Err(e) if e.is_fatal() => {
                    return Err(anyhow::anyhow!(e).context(what.to_owned()));
                }
                Err(e) => {
                    if self.stop.load(Ordering::Relaxed) {
                        bail!("{what}: stopped while waiting for Kafka ({e})");
                    }
                    if started.elapsed() > self.cfg.broker_timeout {
                        bail!(
                            "{what}: Kafka at {} did not answer for {} s (--broker-timeout): {e}",
                            self.cfg.bootstrap,
                            started.elapsed().as_secs()
                        );
                    }
                    if !logged {
                        tracing::warn!(what, error = %e, "Kafka does not answer; waiting.");
                        logged = true;
                    }
                    // Waiting for Kafka on purpose is alive, not stalled: a liveness probe must
                    // not restart a job that is riding out an outage (readiness says the rest).
                    if let Some(h) = &self.cfg.health {
                        h.beat();
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
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
