//! A configured run: patients, their readings on a shared event-time clock, and the faults
//! applied between the monitors and the output.
//!
//! Readings are taken round-robin: reading `k` belongs to patient `k mod N` at
//! `start + k / rate`, so each patient reads every `N / rate` seconds. Each reading is then
//! delivered at once, held back (out-of-order, late), doubled (duplicate), replaced (malformed)
//! or swallowed (silence). Held-back readings wait in a queue ordered by delivery time, so the
//! output order is the order a consumer would see them arrive in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use hr_model::Event;
use rand::RngExt;
use rand_distr::{Distribution, Exp};
use rand_pcg::Pcg64Mcg;

pub use crate::config::{ConfigError, SimConfig};
use crate::faults::{Fault, FaultCounts, write_malformed};
use crate::patient::Patient;
use crate::seed::stream;
use crate::truth::{EpisodeTruth, GroundTruth, PatientTruth, Silence};

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

/// One record as it leaves the simulator, borrowed from the simulation's reused buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The Kafka key: the patient id of the monitor that sent it.
    pub key: &'a str,
    /// The JSON bytes (valid, or malformed when `fault` says so).
    pub payload: &'a [u8],
    /// The timestamp written in the record (the device's clock, skew included).
    pub event_time_ms: i64,
    /// When the reading was really taken (the simulation's clock).
    pub reading_time_ms: i64,
    /// When the record is delivered on the simulation's clock; a real-time run waits for it.
    pub deliver_at_ms: i64,
    /// The heart rate the monitor measured.
    pub heart_rate_bpm: u16,
    /// What, if anything, is unusual about this record.
    pub fault: Option<Fault>,
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            patient_id: self.key.to_owned(),
            payload: self.payload.to_vec(),
            event_time_ms: self.event_time_ms,
            reading_time_ms: self.reading_time_ms,
            deliver_at_ms: self.deliver_at_ms,
            heart_rate_bpm: self.heart_rate_bpm,
            fault: self.fault,
        }
    }
}

/// An owned [`RecordRef`], as the [`Simulation`] iterator yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The Kafka key: the patient id of the monitor that sent it.
    pub patient_id: String,
    /// The JSON bytes.
    pub payload: Vec<u8>,
    /// The timestamp written in the record (device clock).
    pub event_time_ms: i64,
    /// When the reading was really taken.
    pub reading_time_ms: i64,
    /// When the record is delivered on the simulation's clock.
    pub deliver_at_ms: i64,
    /// The heart rate the monitor measured.
    pub heart_rate_bpm: u16,
    /// What, if anything, is unusual about this record.
    pub fault: Option<Fault>,
}

impl Record {
    /// The event this record carries, or `None` for a malformed record.
    pub fn event(&self) -> Option<Event> {
        match self.fault {
            Some(Fault::Malformed(_)) => None,
            _ => Some(Event {
                patient_id: self.patient_id.clone(),
                event_time_ms: self.event_time_ms,
                heart_rate_bpm: self.heart_rate_bpm,
            }),
        }
    }
}

/// The per-reading fault a draw picked.
#[derive(Clone, Copy)]
enum Choice {
    OutOfOrder,
    Late,
    Malformed,
    Duplicate,
}

/// A reading waiting for its delivery time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    deliver_at_ms: i64,
    /// Ties in delivery time keep the order the readings were held back in.
    seq: u64,
    patient: u32,
    reading_time_ms: i64,
    bpm: u16,
    fault: Option<Fault>,
}

/// A monitor: one patient's heart, its device clock and its faults.
struct Monitor {
    /// The event rewritten for every reading, so the id is formatted once per run.
    event: Event,
    patient: Patient,
    skew_ms: i64,
    fault_rng: Pcg64Mcg,
    next_silence_ms: i64,
    silent_until_ms: i64,
    /// Planned silences not begun yet, `(from, until)` on the simulation clock, by start.
    planned: VecDeque<(i64, i64)>,
    silences: Vec<Silence>,
    counts: FaultCounts,
    /// Reading time of the newest valid record sent (malformed ones move no watermark).
    newest_sent_ms: i64,
}

impl Monitor {
    /// Starts (or extends the current silence with) every planned silence due at `t`.
    fn start_planned_silences(&mut self, t: i64) {
        while let Some(&(from, until)) = self.planned.front() {
            if t < from {
                break;
            }
            self.planned.pop_front();
            if until <= t {
                // It lay wholly between two readings: no reading was lost to it.
                continue;
            }
            if t < self.silent_until_ms {
                // Already silent: one longer gap, not two back to back.
                if until > self.silent_until_ms {
                    self.silent_until_ms = until;
                    if let Some(last) = self.silences.last_mut() {
                        last.end_ms = until + self.skew_ms;
                    }
                }
            } else {
                self.silent_until_ms = until;
                self.silences.push(Silence {
                    start_ms: t + self.skew_ms,
                    end_ms: until + self.skew_ms,
                });
                self.counts.silences += 1;
            }
        }
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
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
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
            .map(|i| {
                let id = patient_id(i);
                let skew_ms = config
                    .faults
                    .clock_skew
                    .iter()
                    .rev()
                    .find(|(p, _)| *p == id)
                    .map_or(0, |&(_, s)| s);
                let mut fault_rng = stream(config.seed, i, 3);
                let mut planned: Vec<(i64, i64)> = config
                    .faults
                    .planned_silences
                    .iter()
                    .filter(|p| p.patient_id == id)
                    .map(|p| {
                        let from = config.start_ms.saturating_add(p.after_ms);
                        (from, from.saturating_add(p.duration_ms))
                    })
                    .collect();
                planned.sort_unstable();
                let next_silence_ms = match &silence_gap {
                    Some(d) => config.start_ms + d.sample(&mut fault_rng) as i64,
                    None => i64::MAX,
                };
                Monitor {
                    event: Event {
                        patient_id: id,
                        event_time_ms: 0,
                        heart_rate_bpm: 0,
                    },
                    patient: Patient::new(
                        config.seed,
                        i,
                        config.start_ms,
                        interval_ms,
                        &config.episodes,
                    ),
                    skew_ms,
                    fault_rng,
                    next_silence_ms,
                    silent_until_ms: i64::MIN,
                    planned: planned.into(),
                    newest_sent_ms: i64::MIN,
                    silences: Vec::new(),
                    counts: FaultCounts::default(),
                }
            })
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
            pending: BinaryHeap::new(),
            seq: 0,
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
            if let Some(Reverse(mut p)) = self.pending.peek().copied()
                && p.deliver_at_ms <= t
            {
                self.pending.pop();
                if let Some(retry_at) = self.not_yet(&p) {
                    p.deliver_at_ms = retry_at;
                    self.seq += 1;
                    p.seq = self.seq;
                    self.pending.push(Reverse(p));
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
        m.start_planned_silences(t);
        if t >= m.next_silence_ms && t >= m.silent_until_ms {
            // A fixed length spends no draw, so runs without a range keep their bytes.
            let length = match faults.silence_max_ms {
                Some(max) if max > faults.silence_ms => {
                    m.fault_rng.random_range(faults.silence_ms..=max)
                }
                _ => faults.silence_ms,
            };
            let until = t + length;
            m.silent_until_ms = until;
            m.silences.push(Silence {
                start_ms: t + m.skew_ms,
                end_ms: until + m.skew_ms,
            });
            m.counts.silences += 1;
            let gap = self
                .silence_gap
                .expect("silences are scheduled only with a rate");
            m.next_silence_ms = until + gap.sample(&mut m.fault_rng) as i64;
        }
        if t < m.silent_until_ms {
            m.counts.silenced_readings += 1;
            return None;
        }
        let now = Emitted {
            patient: p,
            reading_time_ms: t,
            deliver_at_ms: t,
            bpm,
            fault: None,
        };
        if !faults.any_per_reading() {
            return Some(now);
        }
        let u: f64 = m.fault_rng.random();
        let mut edge = 0.0;
        let choice = [
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
        .map(|(_, c)| c);
        match choice {
            None => Some(now),
            Some(Choice::OutOfOrder) => {
                // Strictly more than one reading gap, so at least the next reading overtakes it.
                let min = self.period_us.div_ceil(1000) as i64 + 1;
                let delay = m.fault_rng.random_range(min..=faults.out_of_order_max_ms);
                hold(
                    &mut self.pending,
                    &mut self.seq,
                    now,
                    delay,
                    Fault::OutOfOrder,
                );
                None
            }
            Some(Choice::Late) => {
                hold(
                    &mut self.pending,
                    &mut self.seq,
                    now,
                    faults.late_delay_ms,
                    Fault::Late,
                );
                None
            }
            Some(Choice::Malformed) => {
                let kinds = &faults.malformed_kinds;
                let kind = kinds[self.malformed_cursor % kinds.len()];
                self.malformed_cursor += 1;
                Some(Emitted {
                    fault: Some(Fault::Malformed(kind)),
                    ..now
                })
            }
            Some(Choice::Duplicate) => {
                // The copy goes right behind the original, as a producer retry would send it.
                hold(&mut self.pending, &mut self.seq, now, 0, Fault::Duplicate);
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
                PatientTruth {
                    patient_id: m.event.patient_id.clone(),
                    baseline_bpm: (m.patient.baseline_bpm() * 10.0).round() / 10.0,
                    clock_skew_ms: m.skew_ms,
                    episodes: m
                        .patient
                        .episodes()
                        .iter()
                        .map(|e| EpisodeTruth::new(e, m.skew_ms))
                        .collect(),
                    silences: m.silences.clone(),
                    faults: m.counts.clone(),
                }
            })
            .collect();
        GroundTruth {
            seed: self.config.seed,
            start_ms: self.config.start_ms,
            last_reading_ms: self.last_reading_ms,
            readings: self.readings,
            records: self.records,
            unsent: self
                .pending
                .iter()
                .filter(|Reverse(p)| p.fault != Some(Fault::Duplicate))
                .count() as u64,
            faults: totals,
            patients,
        }
    }
}

/// Queues `e` for delivery `delay_ms` after it was taken.
fn hold(
    pending: &mut BinaryHeap<Reverse<Pending>>,
    seq: &mut u64,
    e: Emitted,
    delay_ms: i64,
    fault: Fault,
) {
    *seq += 1;
    pending.push(Reverse(Pending {
        deliver_at_ms: e.reading_time_ms + delay_ms,
        seq: *seq,
        patient: e.patient as u32,
        reading_time_ms: e.reading_time_ms,
        bpm: e.bpm,
        fault: Some(fault),
    }));
}

impl Iterator for Simulation {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.next_record().map(|r| r.to_record())
    }
}
