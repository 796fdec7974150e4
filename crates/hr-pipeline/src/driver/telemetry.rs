//! What the job tells the operator: the gauges and counters of `/metrics`, and the progress,
//! start-up and exit log lines.

use std::time::{Duration, Instant};

use super::broker::Broker;
use super::job::Job;
use super::since_start_ms;
use crate::processor::RunCounters;

/// What the job has reported so far.
pub(super) struct Telemetry {
    /// Totals already added to the metrics' counters.
    synced: Synced,
    /// Records behind the ends of the owned partitions, as of the last gauge update.
    lag: i64,
    last_log: Instant,
    /// Records read as of the last progress line.
    logged_read: u64,
    /// When the first record arrived.
    first_record: Option<Instant>,
}

/// What [`Job::update_gauges`] last handed to the metrics.
#[derive(Default)]
struct Synced {
    windows_fired: u64,
    replaced: u64,
    at: Option<Instant>,
}

impl Telemetry {
    pub(super) fn new() -> Self {
        Self {
            synced: Synced::default(),
            lag: 0,
            last_log: Instant::now(),
            logged_read: 0,
            first_record: None,
        }
    }

    /// A batch with records arrived: the first one is logged.
    pub(super) fn records_read(&mut self) {
        if self.first_record.is_none() {
            // Start-up, as a figure: `just bench` reads it.
            tracing::info!(since_start_ms = since_start_ms(), "First record read.");
        }
        self.first_record.get_or_insert_with(Instant::now);
    }
}

impl<K: Broker> Job<'_, K> {
    /// At most once a second: consumer lag (for the progress line too) and, with metrics,
    /// the per-partition gauges, state sizes and the counters kept by the processor.
    pub(super) fn update_gauges(&mut self, now: Instant) {
        let t = &mut self.telemetry;
        if t.synced
            .at
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        t.synced.at = Some(now);
        let lag = self.kafka.lag(&self.processor.offsets());
        t.lag = lag.values().sum();
        let Some(m) = &self.cfg.metrics else {
            return;
        };
        for (&p, &records) in &lag {
            m.set_consumer_lag(p, records);
        }
        let c = self.processor.counters();
        m.windows_fired(c.windows_fired - t.synced.windows_fired);
        t.synced.windows_fired = c.windows_fired;
        let replaced = self.kafka.replaced();
        m.records_replaced(replaced - t.synced.replaced);
        t.synced.replaced = replaced;
        for p in self.processor.partitions() {
            let (max_event_time, watermark) = self.processor.partition_clock(p);
            m.set_max_event_time(p, max_event_time);
            m.set_watermark(p, watermark);
        }
        let engine = self.processor.engine_counters();
        m.set_open_windows((engine.pending_windows + engine.retained_windows) as u64);
        m.set_keys(engine.keys as u64);
    }

    /// Every `log_every`: the counters and the rate since the last line.
    pub(super) fn log_progress(&mut self, now: Instant) {
        let t = &mut self.telemetry;
        if now.duration_since(t.last_log) < self.cfg.log_every {
            return;
        }
        let c = self.processor.counters();
        let rate = per_second(
            c.read.saturating_sub(t.logged_read),
            now.duration_since(t.last_log),
        );
        t.last_log = now;
        t.logged_read = c.read;
        log_counters(&c, self.kafka.replaced(), rate, t.lag, "Progress.");
    }

    /// Once the last commit is done: the gauges brought up to date, the counters and the
    /// throughput since the first record.
    pub(super) fn log_exit(&mut self) -> RunCounters {
        self.telemetry.synced.at = None;
        self.update_gauges(Instant::now());
        let c = self.processor.counters();
        let t = &self.telemetry;
        let rate = t
            .first_record
            .map_or(0, |first| per_second(c.read, first.elapsed()));
        log_counters(&c, self.kafka.replaced(), rate, t.lag, "Exit.");
        if let Some(first) = t.first_record {
            let seconds = first.elapsed().as_secs_f64();
            tracing::info!(
                records = c.read,
                seconds = %format!("{seconds:.3}"),
                records_per_s = (c.read as f64 / seconds) as u64,
                "Throughput from the first record to the last commit."
            );
        }
        c
    }
}

fn per_second(n: u64, over: Duration) -> u64 {
    let s = over.as_secs_f64();
    if s > 0.0 { (n as f64 / s) as u64 } else { 0 }
}

fn log_counters(c: &RunCounters, replaced: u64, events_per_s: u64, lag: i64, what: &str) {
    tracing::info!(
        read = c.read,
        parsed = c.parsed,
        invalid = c.invalid,
        clock_skew = c.clock_skew,
        aggregated = c.aggregated,
        late = c.late,
        windows_fired = c.windows_fired,
        alerts = c.alerts,
        replaced_too_large = replaced,
        events_per_s,
        lag,
        "{what}"
    );
}
