//! Driving a simulation into a sink, on either clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sim::Simulation;
use crate::sink::{Delivery, Sink, SinkError};

/// Which clock paces a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Simulated time: records go out as fast as the sink takes them. For preloading.
    AsFastAsPossible,
    /// Real time: each record waits until the wall clock reaches its delivery time, so a
    /// simulation that starts now has timestamps that are now, and held-back records really
    /// arrive late.
    RealTime,
}

/// How a run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Records handed to the sink.
    pub records: u64,
    /// Wall time from the first record to the end of the final flush.
    pub elapsed: Duration,
    /// What the sink delivered.
    pub delivery: Delivery,
    /// Whether the stop flag ended the run early.
    pub stopped: bool,
}

impl RunReport {
    /// Records per second of wall time, flush included.
    pub fn events_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Call `progress` every this many records: cheap enough to vanish in the hot loop.
const PROGRESS_EVERY: u64 = 1 << 14;
/// Longest single sleep in a real-time run, so a stop request is seen promptly.
const MAX_NAP: Duration = Duration::from_millis(100);

/// Sends every record of `sim` to `sink` on the `pace` clock, until the simulation ends or
/// `stop` is set, then flushes the sink.
///
/// `progress` sees the simulation every few thousand records (and once at the end) to report
/// how far it got.
///
/// # Errors
/// The first [`SinkError`] from sending or flushing.
///
/// # Example
/// ```
/// use std::sync::atomic::AtomicBool;
/// use hr_sim::{JsonLinesSink, Pace, SimConfig, Simulation, run};
///
/// let mut sim = Simulation::new(SimConfig { max_records: Some(100), ..SimConfig::default() })?;
/// let mut sink = JsonLinesSink::new(Vec::new());
/// let report = run(&mut sim, &mut sink, Pace::AsFastAsPossible, &AtomicBool::new(false), |_| {})?;
/// assert_eq!(report.records, 100);
/// assert_eq!(sink.into_inner().iter().filter(|&&b| b == b'\n').count(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<S: Sink + ?Sized>(
    sim: &mut Simulation,
    sink: &mut S,
    pace: Pace,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Simulation),
) -> Result<RunReport, SinkError> {
    let started = Instant::now();
    let mut records = 0u64;
    let mut stopped = false;
    while let Some(record) = sim.next_record() {
        if pace == Pace::RealTime {
            loop {
                let wait_ms = record.deliver_at_ms - wall_clock_ms();
                // A stop request still sends the record in hand, so the ground truth (which
                // counts records as the simulation produces them) matches what was sent.
                if wait_ms <= 0 || stop.load(Ordering::Relaxed) {
                    break;
                }
                sink.idle()?;
                std::thread::sleep(Duration::from_millis(wait_ms as u64).min(MAX_NAP));
            }
        }
        sink.send(record.key, record.payload)?;
        records += 1;
        if records.is_multiple_of(PROGRESS_EVERY) || pace == Pace::RealTime {
            if stop.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
            if records.is_multiple_of(PROGRESS_EVERY) {
                progress(sim);
            }
        }
    }
    let delivery = sink.finish()?;
    progress(sim);
    Ok(RunReport {
        records,
        elapsed: started.elapsed(),
        delivery,
        stopped,
    })
}

/// Milliseconds since the Unix epoch on the wall clock.
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;
    use crate::sink::JsonLinesSink;

    #[test]
    fn real_time_waits_for_delivery_times() {
        let config = SimConfig {
            patients: 2,
            rate_per_sec: 50.0,
            start_ms: wall_clock_ms(),
            max_records: Some(10),
            ..SimConfig::default()
        };
        let mut sim = Simulation::new(config).unwrap();
        let mut sink = JsonLinesSink::new(Vec::new());
        let report = run(
            &mut sim,
            &mut sink,
            Pace::RealTime,
            &AtomicBool::new(false),
            |_| {},
        )
        .unwrap();
        assert_eq!(report.records, 10);
        // Ten readings 20 ms apart: the last is due 180 ms after the first.
        assert!(
            report.elapsed >= Duration::from_millis(170),
            "{:?}",
            report.elapsed
        );
    }

    #[test]
    fn stop_flag_ends_a_run_that_would_never_end() {
        let mut sim = Simulation::new(SimConfig::default()).unwrap();
        let mut sink = JsonLinesSink::new(std::io::sink());
        let stop = AtomicBool::new(false);
        let report = run(&mut sim, &mut sink, Pace::AsFastAsPossible, &stop, |s| {
            if s.records() >= 50_000 {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .unwrap();
        assert!(report.stopped);
        assert_eq!(report.records, sim.records());
        assert!((50_000..50_000 + 2 * PROGRESS_EVERY).contains(&report.records));
    }
}
