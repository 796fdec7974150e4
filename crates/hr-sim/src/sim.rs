//! A configured run: patients, their readings on a shared event-time clock, and the faults
//! applied between the monitors and the output.
//!
//! Readings are taken round-robin: reading `k` belongs to patient `k mod N` at
//! `start + k / rate`, so each patient reads every `N / rate` seconds. Each reading is then
//! delivered at once, held back (out-of-order, late), doubled (duplicate), replaced (malformed)
//! or swallowed (silence). Held-back readings wait in a queue ordered by delivery time, so the
//! output order is the order a consumer would see them arrive in.

mod held;
mod monitor;
mod record;

use rand::RngExt;
use rand_distr::Exp;
use rand_pcg::Pcg64Mcg;

pub use self::record::{Record, RecordRef};
pub use crate::config::{ConfigError, SimConfig};
use crate::faults::{Fault, FaultConfig, FaultCounts, write_malformed};
use crate::truth::GroundTruth;
use held::{HeldBack, Pending};
use monitor::Monitor;

/// The id of patient `index` (0-based): `p001`, `p002`, ..., `p999`, `p1000`, ...
pub fn patient_id(index: usize) -> String {
    format!("p{:03}", index + 1)
}

/// The 0-based index of a patient id written by [`patient_id`].
pub(crate) fn patient_index(id: &str) -> Option<usize> {
    let digits = id.strip_prefix('p')?;
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (n >= 1 && patient_id(n - 1) == id).then(|| n - 1)
}

/// The per-reading fault a draw picked.
#[derive(Clone, Copy)]
enum Choice {
    OutOfOrder,
    Late,
    Malformed,
    Duplicate,
}

impl Choice {
    /// The fault drawn from `rng` for one reading, `None` for none. Without per-reading faults
    /// nothing is drawn.
    fn draw(faults: &FaultConfig, rng: &mut Pcg64Mcg) -> Option<Self> {
        if !faults.any_per_reading() {
            return None;
        }
        let u: f64 = rng.random();
        let mut edge = 0.0;
        [
            (faults.out_of_order, Choice::OutOfOrder),
            (faults.late, Choice::Late),
            (faults.malformed, Choice::Malformed),
            (faults.duplicate, Choice::Duplicate),
        ]
        .into_iter()
        .find(|&(fraction, _)| {
            edge += fraction;
            u < edge
        })
        .map(|(_, c)| c)
    }
}

/// A running simulation: call [`next_record`](Self::next_record) for borrowed records without
/// allocating, or iterate for owned [`Record`]s.
///
/// # Example
/// ```
/// use hr_sim::{SimConfig, Simulation};
///
/// let config = SimConfig { patients: 3, max_records: Some(6), ..SimConfig::default() };
/// let ids: Vec<String> = Simulation::new(config)?.map(|r| r.patient_id).collect();
/// assert_eq!(ids, ["p001", "p002", "p003", "p001", "p002", "p003"]);
/// # Ok::<(), hr_sim::ConfigError>(())
/// ```
pub struct Simulation {
    config: SimConfig,
    monitors: Vec<Monitor>,
    period_us: u64,
    end_ms: Option<i64>,
    tick: u64,
    generating: bool,
    held: HeldBack,
    malformed_cursor: usize,
    silence_gap: Option<Exp<f64>>,
    buf: Vec<u8>,
    readings: u64,
    records: u64,
    last_reading_ms: Option<i64>,
    /// Reading time of the newest valid record sent, over all monitors.
    newest_sent_ms: i64,
}

/// What [`Simulation::advance`] produced, with the payload in `buf`.
#[derive(Clone, Copy)]
struct Emitted {
    patient: usize,
    reading_time_ms: i64,
    deliver_at_ms: i64,
    bpm: u16,
    fault: Option<Fault>,
}

impl Simulation {
    /// A simulation ready to produce its first record.
    ///
    /// # Errors
    /// A [`ConfigError`] if the configuration is invalid (see [`SimConfig::validate`]).
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let period_us = config.period_us();
        let interval_ms = period_us as f64 * config.patients as f64 / 1000.0;
        let silence_gap = (config.faults.silence_rate_per_hour > 0.0).then(|| {
            Exp::new(config.faults.silence_rate_per_hour / 3_600_000.0).expect("validated positive")
        });
        let monitors = (0..config.patients)
            .map(|i| Monitor::new(&config, i, interval_ms, silence_gap.as_ref()))
            .collect();
        Ok(Self {
            end_ms: config
                .duration_ms
                .map(|d| config.start_ms.saturating_add(d)),
            config,
            monitors,
            period_us,
            tick: 0,
            generating: true,
            held: HeldBack::default(),
            malformed_cursor: 0,
            silence_gap,
            buf: Vec::with_capacity(128),
            readings: 0,
            records: 0,
            last_reading_ms: None,
            newest_sent_ms: i64::MIN,
        })
    }

    /// The configuration this simulation runs.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Records produced so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Readings taken so far, including those a silent monitor swallowed and those still held
    /// back.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// The simulation's clock: the time of the latest reading taken, or the start.
    pub fn now_ms(&self) -> i64 {
        self.last_reading_ms.unwrap_or(self.config.start_ms)
    }

    /// The next record, or `None` when the run is over. The record borrows the simulation's
    /// buffers: nothing is allocated per record.
    pub fn next_record(&mut self) -> Option<RecordRef<'_>> {
        let e = self.advance()?;
        let m = &self.monitors[e.patient];
        Some(RecordRef {
            key: &m.event.patient_id,
            payload: &self.buf,
            event_time_ms: e.reading_time_ms + m.skew_ms,
            reading_time_ms: e.reading_time_ms,
            deliver_at_ms: e.deliver_at_ms,
            heart_rate_bpm: e.bpm,
            fault: e.fault,
        })
    }

    fn tick_time_ms(&self, tick: u64) -> i64 {
        // u128 so that a billion readings at a microsecond apart cannot overflow.
        self.config.start_ms + (u128::from(tick) * u128::from(self.period_us) / 1000) as i64
    }

    fn advance(&mut self) -> Option<Emitted> {
        if self
            .config
            .max_records
            .is_some_and(|max| self.records >= max)
        {
            return None;
        }
        loop {
            if !self.generating {
                return None;
            }
            let t = self.tick_time_ms(self.tick);
            if self.end_ms.is_some_and(|end| t >= end) {
                // Readings still held back are never sent, like the buffer of a monitor that
                // is switched off; the ground truth reports them as unsent.
                self.generating = false;
                return None;
            }
            // A held-back reading goes out before any reading taken at or after its delivery
            // time: that is what makes it arrive behind newer readings.
            if let Some(p) = self.held.take_due(t) {
                if let Some(retry_at) = self.not_yet(&p) {
                    self.held.put_back(p, retry_at);
                    continue;
                }
                let e = Emitted {
                    patient: p.patient as usize,
                    reading_time_ms: p.reading_time_ms,
                    deliver_at_ms: p.deliver_at_ms,
                    bpm: p.bpm,
                    fault: p.fault,
                };
                return Some(self.emit(e));
            }
            let patient = (self.tick % self.monitors.len() as u64) as usize;
            self.tick += 1;
            self.readings += 1;
            self.last_reading_ms = Some(t);
            if let Some(e) = self.take_reading(patient, t) {
                return Some(self.emit(e));
            }
        }
    }

    /// When a due held-back record cannot yet keep its promise, the time to try again.
    ///
    /// Its delay alone does not guarantee the promise: the readings that were meant to overtake
    /// it may themselves be held back, or its monitor may have gone silent. So an out-of-order
    /// record waits until some newer valid reading has been sent, and a late one until its own
    /// monitor has sent a valid reading taken `late_delay_ms` after it: then it is late both for
    /// the stream's watermark and for its own patient's.
    fn not_yet(&self, p: &Pending) -> Option<i64> {
        let next_tick_ms = self.tick_time_ms(self.tick);
        match p.fault {
            Some(Fault::OutOfOrder) if self.newest_sent_ms <= p.reading_time_ms => {
                Some(next_tick_ms + 1)
            }
            Some(Fault::Late)
                if self.monitors[p.patient as usize].newest_sent_ms
                    < p.reading_time_ms + self.config.faults.late_delay_ms =>
            {
                let n = self.monitors.len() as u64;
                let own_next_tick = self.tick + (u64::from(p.patient) + n - self.tick % n) % n;
                Some(self.tick_time_ms(own_next_tick) + 1)
            }
            _ => None,
        }
    }

    /// Takes patient `p`'s reading at `t` and decides its fate: delivered now (returned), held
    /// back (queued) or swallowed by a silence.
    fn take_reading(&mut self, p: usize, t: i64) -> Option<Emitted> {
        let faults = &self.config.faults;
        let m = &mut self.monitors[p];
        // The heart keeps beating while the monitor is silent, so the model advances either way.
        let bpm = m.patient.reading(t);
        if m.swallows(t, faults, self.silence_gap.as_ref()) {
            return None;
        }
        let now = Emitted {
            patient: p,
            reading_time_ms: t,
            deliver_at_ms: t,
            bpm,
            fault: None,
        };
        match Choice::draw(faults, &mut m.fault_rng) {
            None => Some(now),
            Some(choice) => self.inflict(choice, now),
        }
    }

    /// Inflicts the fault `choice` on the reading `now`: returns what is delivered now, if
    /// anything, and holds back the rest.
    fn inflict(&mut self, choice: Choice, now: Emitted) -> Option<Emitted> {
        let faults = &self.config.faults;
        match choice {
            Choice::OutOfOrder => {
                // Strictly more than one reading gap, so at least the next reading overtakes it.
                let min = self.period_us.div_ceil(1000) as i64 + 1;
                let rng = &mut self.monitors[now.patient].fault_rng;
                let delay = rng.random_range(min..=faults.out_of_order_max_ms);
                self.held.hold(now, delay, Fault::OutOfOrder);
                None
            }
            Choice::Late => {
                self.held.hold(now, faults.late_delay_ms, Fault::Late);
                None
            }
            Choice::Malformed => {
                let kinds = &faults.malformed_kinds;
                let kind = kinds[self.malformed_cursor % kinds.len()];
                self.malformed_cursor += 1;
                Some(Emitted {
                    fault: Some(Fault::Malformed(kind)),
                    ..now
                })
            }
            Choice::Duplicate => {
                // The copy goes right behind the original, as a producer retry would send it.
                self.held.hold(now, 0, Fault::Duplicate);
                Some(now)
            }
        }
    }

    /// Renders `e` into `buf` and counts it.
    fn emit(&mut self, e: Emitted) -> Emitted {
        let m = &mut self.monitors[e.patient];
        let event_time_ms = e.reading_time_ms + m.skew_ms;
        match e.fault {
            Some(Fault::Malformed(kind)) => write_malformed(
                kind,
                &m.event.patient_id,
                event_time_ms,
                e.bpm,
                &mut self.buf,
            ),
            _ => {
                m.event.event_time_ms = event_time_ms;
                m.event.heart_rate_bpm = e.bpm;
                self.buf.clear();
                m.event.write_json(&mut self.buf);
            }
        }
        if !matches!(e.fault, Some(Fault::Malformed(_))) {
            m.newest_sent_ms = m.newest_sent_ms.max(e.reading_time_ms);
            self.newest_sent_ms = self.newest_sent_ms.max(e.reading_time_ms);
        }
        m.counts.count(e.fault);
        if m.skew_ms != 0 {
            m.counts.skewed += 1;
        }
        self.records += 1;
        e
    }

    /// What this run has injected so far: per patient, the episodes (in the device's clock,
    /// like the data) and silences, and every fault count.
    pub fn ground_truth(&self) -> GroundTruth {
        let mut totals = FaultCounts::default();
        let patients = self
            .monitors
            .iter()
            .map(|m| {
                totals.add(&m.counts);
                m.truth()
            })
            .collect();
        GroundTruth {
            seed: self.config.seed,
            start_ms: self.config.start_ms,
            last_reading_ms: self.last_reading_ms,
            readings: self.readings,
            records: self.records,
            unsent: self.held.unsent(),
            faults: totals,
            patients,
        }
    }
}

impl Iterator for Simulation {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.next_record().map(|r| r.to_record())
    }
}
