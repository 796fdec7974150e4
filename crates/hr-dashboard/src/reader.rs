//! The Kafka side: one thread per topic reading it through [`hr_kafka::Source`] into the
//! [`WardView`], and a broker probe that says whether the broker answers and which topics exist.
//!
//! Each topic has its own `Source` on its own thread because a `Source` reads one topic and
//! polls on its caller's thread. The dashboard never commits offsets: its group (unique per
//! process unless given) exists only so the broker hands it every partition.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::{Polled, Source, SourceConfig};

use crate::record::{parse_alert, parse_episode};
use crate::status::{BrokerSnap, Phase, ReaderSnap};
use crate::view::{ViewConfig, WardView};

/// What a topic holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// One record per fired window (`heart_rate_alerts`).
    Alerts,
    /// Raised and cleared episodes (`heart_rate_episodes`).
    Episodes,
}

/// A poisoned lock here only means a panic elsewhere; the data behind it is plain values.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct ReaderState {
    topic: String,
    phase: Phase,
    records: u64,
    rejected: u64,
    partitions: usize,
    last_record: Option<Instant>,
    error: Option<String>,
    error_at: Option<Instant>,
}

#[derive(Debug)]
struct BrokerState {
    reachable: Option<bool>,
    last_ok: Option<Instant>,
    error: Option<String>,
    present: BTreeSet<String>,
}

/// State shared by the reader threads, the probe and the HTTP server.
#[derive(Debug)]
pub struct Shared {
    /// The ward.
    pub view: Mutex<WardView>,
    readers: Vec<Mutex<ReaderState>>,
    broker: Mutex<BrokerState>,
    bootstrap: String,
    started: Instant,
    stop: AtomicBool,
}

impl Shared {
    /// Shared state for readers of `topics` (the alerts topic first) on `bootstrap`.
    pub fn new(bootstrap: &str, topics: &[String], view: ViewConfig) -> Self {
        Self {
            view: Mutex::new(WardView::new(view)),
            readers: topics
                .iter()
                .map(|t| {
                    Mutex::new(ReaderState {
                        topic: t.clone(),
                        phase: Phase::WaitingForTopic,
                        records: 0,
                        rejected: 0,
                        partitions: 0,
                        last_record: None,
                        error: None,
                        error_at: None,
                    })
                })
                .collect(),
            broker: Mutex::new(BrokerState {
                reachable: None,
                last_ok: None,
                error: None,
                present: BTreeSet::new(),
            }),
            bootstrap: bootstrap.to_owned(),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        }
    }

    /// Asks the reader and probe threads to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Each reader's state now, alerts first.
    pub fn readers(&self) -> Vec<ReaderSnap> {
        let now = Instant::now();
        let ms = |t: Option<Instant>| t.map(|t| now.duration_since(t).as_millis() as u64);
        self.readers
            .iter()
            .map(|r| {
                let r = lock(r);
                ReaderSnap {
                    topic: r.topic.clone(),
                    phase: r.phase,
                    records: r.records,
                    rejected: r.rejected,
                    partitions: r.partitions,
                    idle_ms: ms(r.last_record),
                    error: r.error.clone(),
                    error_age_ms: ms(r.error_at),
                }
            })
            .collect()
    }

    /// The broker probe's state now.
    pub fn broker(&self) -> BrokerSnap {
        let b = lock(&self.broker);
        let down_since = b.last_ok.unwrap_or(self.started);
        BrokerSnap {
            bootstrap: self.bootstrap.clone(),
            reachable: b.reachable,
            down_ms: (b.reachable == Some(false)).then(|| down_since.elapsed().as_millis() as u64),
            error: b.error.clone(),
        }
    }

    fn topic_present(&self, topic: &str) -> bool {
        lock(&self.broker).present.contains(topic)
    }

    fn set_phase(&self, i: usize, phase: Phase) {
        lock(&self.readers[i]).phase = phase;
    }

    fn set_error(&self, i: usize, error: String) {
        let mut r = lock(&self.readers[i]);
        r.error = Some(error);
        r.error_at = Some(Instant::now());
    }
}

/// Reads `cfg.topic` into the view until [`Shared::stop`]: waits for the topic to exist, builds
/// the `Source` (retrying every 2 s when that fails) and polls it. Reader `index` is the topic's
/// position in the list [`Shared::new`] got.
pub fn read_topic(shared: &Shared, index: usize, kind: TopicKind, cfg: &SourceConfig) {
    while !shared.stopping() {
        if !shared.topic_present(&cfg.topic) {
            shared.set_phase(index, Phase::WaitingForTopic);
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let source = match Source::new(cfg) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(topic = %cfg.topic, error = %e, "Cannot create the consumer; retrying in 2 s.");
                shared.set_phase(index, Phase::Failed);
                shared.set_error(index, e.to_string());
                sleep_unless_stopped(shared, Duration::from_secs(2));
                continue;
            }
        };
        shared.set_phase(index, Phase::Joining);
        tracing::info!(topic = %cfg.topic, group = %cfg.group, "Reading.");
        poll_until_stopped(shared, index, kind, &source);
    }
}

fn poll_until_stopped(shared: &Shared, index: usize, kind: TopicKind, source: &Source) {
    while !shared.stopping() {
        match source.poll(Duration::from_millis(200)) {
            Ok(Polled::Record(r)) => {
                let applied = match kind {
                    TopicKind::Alerts => {
                        parse_alert(r.key(), r.payload()).map(|a| lock(&shared.view).apply_alert(a))
                    }
                    TopicKind::Episodes => parse_episode(r.key(), r.payload())
                        .map(|e| lock(&shared.view).apply_episode(e)),
                };
                let mut st = lock(&shared.readers[index]);
                st.last_record = Some(Instant::now());
                match applied {
                    Ok(_) => st.records += 1,
                    Err(e) => {
                        st.rejected += 1;
                        let msg = format!("partition {} offset {}: {e}", r.partition(), r.offset());
                        // The first and then every power of two: a topic full of garbage
                        // must not flood the log.
                        if st.rejected.is_power_of_two() {
                            tracing::warn!(topic = %source.topic(), rejected = st.rejected, error = %msg, "Record not shown.");
                        }
                        st.error = Some(msg);
                        st.error_at = Some(Instant::now());
                    }
                }
            }
            Ok(Polled::Idle) => {}
            Err(e) => {
                tracing::debug!(topic = %source.topic(), error = %e, "Consumer error.");
                shared.set_error(index, e.to_string());
                sleep_unless_stopped(shared, Duration::from_millis(200));
            }
        }
        if !source.take_rebalances().is_empty() {
            let n = source.assigned().len();
            let mut st = lock(&shared.readers[index]);
            st.partitions = n;
            st.phase = if n > 0 {
                Phase::Reading
            } else {
                Phase::Joining
            };
        }
    }
}

fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let until = Instant::now() + d;
    while !shared.stopping() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks the broker for the metadata of `topics` every `every` until [`Shared::stop`], recording
/// whether it answered and which of the topics exist. It uses the readers' own client settings
/// (`overrides` included), so a TLS or SASL cluster is probed the way it is read.
pub fn probe_broker(
    shared: &Shared,
    bootstrap: &str,
    overrides: &[(String, String)],
    topics: &[String],
    every: Duration,
) {
    let consumer: BaseConsumer = loop {
        match hr_kafka::client_config(bootstrap, overrides).create() {
            Ok(c) => break c,
            Err(e) => {
                let mut b = lock(&shared.broker);
                b.reachable = Some(false);
                b.error = Some(e.to_string());
                drop(b);
                sleep_unless_stopped(shared, every);
                if shared.stopping() {
                    return;
                }
            }
        }
    };
    // Short, so a dead broker is noticed quickly and shutdown never waits long on a probe.
    let timeout = Duration::from_millis(1500);
    while !shared.stopping() {
        let mut present = BTreeSet::new();
        let mut failure = None;
        for t in topics {
            match consumer.fetch_metadata(Some(t), timeout) {
                Ok(md) => {
                    if md.topics().iter().any(|mt| {
                        mt.name() == t && mt.error().is_none() && !mt.partitions().is_empty()
                    }) {
                        present.insert(t.clone());
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        {
            let mut b = lock(&shared.broker);
            match failure {
                None => {
                    if b.reachable == Some(false) {
                        tracing::info!(bootstrap, "The broker answers again.");
                    }
                    b.reachable = Some(true);
                    b.last_ok = Some(Instant::now());
                    b.error = None;
                    b.present = present;
                }
                Some(e) => {
                    if b.reachable != Some(false) {
                        tracing::warn!(bootstrap, error = %e, "The broker does not answer.");
                    }
                    b.reachable = Some(false);
                    b.error = Some(e);
                }
            }
        }
        sleep_unless_stopped(shared, every);
    }
}
