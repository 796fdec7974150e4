//! The producers and the file the job writes to, and the stand-ins for records too large.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use hr_kafka::{Admin, AlertFile, Diversion, KafkaError, Sink, StagedAlertFile, blocking};

use crate::changelog::ChangelogRecord;
use crate::processor::{AlertOut, Emitted, EpisodeOut};

use super::rebalance::lock;
use super::topics::ensure_output_topics;
use super::{Guarantee, RunConfig, refused};

/// Bytes kept of a record replaced by a stand-in.
pub(super) const PREFIX_BYTES: usize = 1024;
/// Room left under a topic's `max.message.bytes` for the record batch's own overhead.
pub(super) const BATCH_OVERHEAD: usize = 512;
/// Largest changelog record: a patient's state holds its id, which may be long.
pub(super) const CHANGELOG_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The producers and the file the job writes to.
pub(super) struct Outputs {
    /// The transactional id, kept to start a fresh producer after one librdkafka gave up on.
    pub(super) id: String,
    /// Transactional: the changelog and the offsets, and in exactly-once mode every output.
    /// Shared with the committer thread, which holds it only while an at-least-once commit
    /// runs there (the job settles that commit before it ends, aborts or renews a transaction).
    pub(super) txn: Arc<Mutex<Sink>>,
    /// At-least-once: alerts, dead letters and late records, outside the transaction.
    pub(super) plain: Option<Sink>,
    /// Largest output record (key, value and headers) the output topics accept.
    pub(super) limit: usize,
    pub(super) file: Option<AlertSink>,
    /// Records replaced by a stand-in because they were too large.
    pub(super) replaced: u64,
    /// Why a producer refused an output since the last commit (it needs a new producer, or
    /// its transaction must be aborted first): the next commit is given up for it, and the
    /// work since the last commit is redone.
    failed: Option<KafkaError>,
    /// Settling the alert file parts an earlier process left in doubt.
    pub(super) settling: Option<JoinHandle<()>>,
}

pub(super) enum AlertSink {
    Plain(AlertFile),
    Staged(StagedAlertFile),
}

impl Outputs {
    /// The outputs around `txn`, a transactional producer made with [`new_txn_sink`] and id
    /// `id` (made apart, so its start overlaps the job's other start-up calls).
    pub(super) fn new(
        cfg: &RunConfig,
        limit: usize,
        id: String,
        txn: Sink,
    ) -> anyhow::Result<Self> {
        let plain = match cfg.guarantee {
            Guarantee::ExactlyOnce => None,
            Guarantee::AtLeastOnce => Some(Sink::new(&cfg.bootstrap, &plain_props(cfg))?),
        };
        let file = match &cfg.alerts_dir {
            None => None,
            Some(dir) => {
                let sink = match cfg.guarantee {
                    Guarantee::ExactlyOnce => AlertSink::Staged(StagedAlertFile::new(dir)?),
                    Guarantee::AtLeastOnce => AlertSink::Plain(AlertFile::create(dir)?),
                };
                tracing::info!(dir = %dir.display(), "Writing alert files.");
                Some(sink)
            }
        };
        Ok(Self {
            id,
            txn: Arc::new(Mutex::new(txn)),
            plain,
            limit,
            file,
            replaced: 0,
            failed: None,
            settling: None,
        })
    }

    /// Replaces the transactional producer by a new one with the same id: `init_transactions`
    /// fences and finishes whatever the old one left open, for when an abort cannot (librdkafka
    /// reports an invalid state after an abort that timed out against a broker that was down).
    /// The plain producer is replaced too when librdkafka gave up on it.
    pub(super) fn renew_txn(&mut self, cfg: &RunConfig) -> anyhow::Result<()> {
        *lock(&self.txn) = new_txn_sink(cfg, &self.id)?;
        if let Some(plain) = self.plain.as_mut()
            && plain.is_fatal()
        {
            tracing::warn!(
                "Starting a new producer for the outputs in place of the one librdkafka gave up on."
            );
            plain
                .renew(&cfg.bootstrap, &plain_props(cfg))
                .context("starting a new producer for the outputs")?;
        }
        Ok(())
    }

    /// Why a producer refused an output since the last commit, if one did (taken: the commit
    /// that is given up for it rewinds, and the outputs are sent again).
    pub(super) fn take_failure(&mut self) -> Option<KafkaError> {
        self.failed.take()
    }

    /// The transactional producer.
    pub(super) fn txn(&self) -> MutexGuard<'_, Sink> {
        lock(&self.txn)
    }

    /// The transactional producer, for the committer thread.
    pub(super) fn shared_txn(&self) -> Arc<Mutex<Sink>> {
        Arc::clone(&self.txn)
    }

    /// At-least-once: a mark in the outputs' stream and the handle to wait on it (see
    /// [`Sink::mark`]).
    pub(super) fn plain_mark(&self) -> Option<(u64, hr_kafka::Delivered)> {
        self.plain.as_ref().map(|p| (p.mark(), p.delivered()))
    }

    /// Sends with the producer of the outputs: the plain one (at-least-once), else the
    /// transactional one.
    ///
    /// A producer that refuses records for its state (librdkafka raised a fatal error on it,
    /// or its transaction must be aborted) does not end the job: the refusal is kept for the
    /// next commit, which is given up, and nothing more is sent until the job has gone back
    /// to its last commit and redoes the work.
    fn out(
        &mut self,
        send: impl FnOnce(&mut Sink) -> Result<(), KafkaError>,
    ) -> Result<(), KafkaError> {
        if self.failed.is_some() {
            return Ok(());
        }
        let sent = match self.plain.as_mut() {
            Some(p) => send(p),
            None => send(&mut lock(&self.txn)),
        };
        match sent {
            Err(e) if e.producer_unusable() => {
                tracing::warn!(error = %e, "The producer refused an output; the next commit is given up and the work since the last one is redone.");
                self.failed = Some(e);
                Ok(())
            }
            other => other,
        }
    }

    /// Sends what the processor emitted: its alerts, then its episodes. `origin` is the input
    /// record that fired them, if one did (a stand-in names it).
    pub(super) fn emit(
        &mut self,
        emitted: &Emitted,
        origin: Option<(i32, i64)>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        for a in &emitted.alerts {
            self.alert(a, origin, cfg)?;
        }
        for e in &emitted.episodes {
            self.episode(e, origin, cfg)?;
        }
        Ok(())
    }

    fn alert(
        &mut self,
        a: &AlertOut,
        origin: Option<(i32, i64)>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        let key = a.alert.patient_id.as_bytes();
        let size = key.len() + a.json.len();
        if size > self.limit {
            let (partition, offset) = origin.unwrap_or((a.partition, -1));
            let message = format!(
                "the alert of window {}..{} is {size} bytes, above the {} bytes {} accepts",
                a.alert.window_start, a.alert.window_end, self.limit, cfg.alerts_topic
            );
            return self.stand_in(
                cfg,
                StandIn {
                    topic: &cfg.alerts_topic,
                    size,
                    value: a.json.as_bytes(),
                    message: &message,
                    partition,
                    offset,
                },
            );
        }
        // The window end is the alert's time; an event-time far ahead of the wall clock is
        // refused by the broker (log.message.timestamp.after.max.ms), so none is set then.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let ts = (a.alert.window_end <= now_ms + 600_000).then_some(a.alert.window_end);
        self.out(|s| s.send_record(&cfg.alerts_topic, None, key, Some(a.json.as_bytes()), ts))
            .map_err(refused(cfg, "WRITE", &cfg.alerts_topic))?;
        if let Some(f) = self.file.as_mut() {
            match f {
                AlertSink::Plain(f) => f.append(&a.json)?,
                AlertSink::Staged(f) => f.append(&a.json)?,
            }
        }
        Ok(())
    }

    pub(super) fn divert(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        why: &Diversion<'_>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        let headers = why.code.len() + why.message.len() + why.source_topic.len() + 160;
        let size = key.map_or(0, <[u8]>::len) + payload.len() + headers;
        if size > self.limit {
            let message = format!(
                "a {} record of {size} bytes is above the {} bytes {topic} accepts ({}: {})",
                why.code, self.limit, why.code, why.message
            );
            return self.stand_in(
                cfg,
                StandIn {
                    topic,
                    size,
                    value: payload,
                    message: &message,
                    partition: why.source_partition,
                    offset: why.source_offset,
                },
            );
        }
        self.out(|s| s.send_diverted(topic, key, payload, why))
            .map_err(refused(cfg, "WRITE", topic))?;
        Ok(())
    }

    fn episode(
        &mut self,
        e: &EpisodeOut,
        origin: Option<(i32, i64)>,
        cfg: &RunConfig,
    ) -> anyhow::Result<()> {
        let key = e.episode.patient_id.as_bytes();
        let size = key.len() + e.json.len();
        if size > self.limit {
            let (partition, offset) = origin.unwrap_or((e.partition, -1));
            let message = format!(
                "the {} {} episode record is {size} bytes, above the {} bytes {} accepts",
                e.episode.kind, e.episode.state, self.limit, cfg.episodes_topic
            );
            return self.stand_in(
                cfg,
                StandIn {
                    topic: &cfg.episodes_topic,
                    size,
                    value: e.json.as_bytes(),
                    message: &message,
                    partition,
                    offset,
                },
            );
        }
        self.out(|s| {
            s.send_record(
                &cfg.episodes_topic,
                None,
                key,
                Some(e.json.as_bytes()),
                None,
            )
        })
        .map_err(refused(cfg, "WRITE", &cfg.episodes_topic))?;
        Ok(())
    }

    /// A small dead letter in place of a record too large for `topic`: a prefix of its value,
    /// its size, and why.
    pub(super) fn stand_in(&mut self, cfg: &RunConfig, s: StandIn<'_>) -> anyhow::Result<()> {
        let StandIn {
            topic,
            size,
            value,
            message,
            partition,
            offset,
        } = s;
        self.replaced += 1;
        let message: String = message.chars().take(PREFIX_BYTES).collect();
        tracing::warn!(
            topic,
            size,
            partition,
            offset,
            "A record too large for its topic was replaced by a stand-in in the dead-letter topic."
        );
        let size_text = size.to_string();
        let extra = [
            ("hr.original.size", size_text.as_str()),
            ("hr.original.topic", topic),
        ];
        let why = Diversion {
            extra: &extra,
            code: "too_large",
            message: &message,
            source_topic: &cfg.input_topic,
            source_partition: partition,
            source_offset: offset,
            lateness: None,
        };
        let prefix = &value[..value.len().min(PREFIX_BYTES)];
        let dlq = cfg.dlq_topic.clone();
        self.out(|s| s.send_diverted(&dlq, None, prefix, &why))
            .map_err(refused(cfg, "WRITE", &dlq))?;
        Ok(())
    }

    /// At-least-once: waits until every output is acknowledged, so offsets never pass an
    /// output that could still be lost.
    /// Given up as soon as `stop` is set, unless it was set before (the last commit's flush
    /// runs to its timeout).
    pub(super) fn flush_outputs(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), KafkaError> {
        let stopping = stop.load(Ordering::Relaxed);
        match self.plain.as_mut() {
            Some(p) => p.flush_unless(timeout, &|| !stopping && stop.load(Ordering::Relaxed)),
            None => Ok(()),
        }
    }
}

/// Sends changelog record `rec` of input partition `p` to its changelog partition, with the
/// transactional producer (on whichever thread the commit runs).
pub(super) fn send_changelog(
    txn: &mut Sink,
    topic: &str,
    p: i32,
    rec: &ChangelogRecord,
) -> Result<(), KafkaError> {
    txn.send_record(topic, Some(p), &rec.key, rec.value.as_deref(), None)
}

/// A record too large for `topic`, to be replaced by a small dead letter.
pub(super) struct StandIn<'a> {
    pub(super) topic: &'a str,
    pub(super) size: usize,
    pub(super) value: &'a [u8],
    pub(super) message: &'a str,
    /// The input record that produced it.
    pub(super) partition: i32,
    pub(super) offset: i64,
}

/// The smallest `max.message.bytes` of the output topics, less room for batch overhead.
pub(super) fn output_limit(cfg: &RunConfig, admin: &Admin) -> anyhow::Result<usize> {
    let mut limit = usize::MAX;
    ensure_output_topics(cfg, admin)?;
    for topic in [
        &cfg.alerts_topic,
        &cfg.dlq_topic,
        &cfg.late_topic,
        &cfg.episodes_topic,
    ] {
        // A topic just created may not be known yet to the broker asked: ask again for a
        // while; one that still does not exist is made by the broker on first write, with its
        // defaults.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let value = loop {
            match blocking::topic_config_on(
                admin,
                topic,
                "max.message.bytes",
                Duration::from_secs(30),
            ) {
                Err(e)
                    if e.code()
                        == Some(
                            hr_kafka::rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                        ) =>
                {
                    if std::time::Instant::now() >= deadline {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                r => break r.with_context(|| format!("reading max.message.bytes of {topic}"))?,
            }
        };
        let bytes = value
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_048_588);
        limit = limit.min(bytes);
    }
    // librdkafka's own default cap on one message.
    Ok(limit.min(1_000_000).saturating_sub(BATCH_OVERHEAD))
}

/// The plain producer's settings: its records may wait out a broker outage.
fn plain_props(cfg: &RunConfig) -> Vec<(String, String)> {
    let mut props = vec![(
        "message.timeout.ms".to_owned(),
        cfg.broker_timeout.as_millis().to_string(),
    )];
    props.extend(cfg.overrides.iter().cloned());
    props
}

/// A transactional id of the job's own: never the same as another live instance's.
pub(super) fn txn_id(cfg: &RunConfig) -> String {
    format!(
        "{}-{}-{}",
        cfg.group,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// A transactional producer for the job: its own id, so a restart never fences another live
/// instance, and the timeouts that make an abandoned transaction stop blocking readers soon.
pub(super) fn new_txn_sink(cfg: &RunConfig, id: &str) -> anyhow::Result<Sink> {
    let mut txn_props = vec![
        (
            "message.max.bytes".to_owned(),
            (CHANGELOG_MAX_BYTES + 1024).to_string(),
        ),
        // Long enough to ride out a short broker restart with the transaction open; short
        // enough that a killed instance's open transaction stops holding read_committed
        // readers back soon.
        ("transaction.timeout.ms".to_owned(), "10000".to_owned()),
        // librdkafka requires it no longer than the transaction timeout.
        ("message.timeout.ms".to_owned(), "10000".to_owned()),
    ];
    txn_props.extend(cfg.overrides.iter().cloned());
    let sink = Sink::transactional(&cfg.bootstrap, &txn_props, id, Duration::from_secs(30))
        .map_err(refused(cfg, "WRITE", &cfg.changelog_topic()))
        .with_context(|| format!("starting the transactional producer {id}"))?;
    // The witness of a transaction is a changelog record when it has one: the job reads the
    // changelog already, so its principal needs no READ on the outputs to settle a part.
    sink.watch(&cfg.changelog_topic());
    Ok(sink)
}
