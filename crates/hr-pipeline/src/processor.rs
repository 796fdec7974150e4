//! The pure heart of the job: one record in; alerts, a verdict for the record and state changes
//! out. No Kafka, no clock of its own (processing time comes in as an argument), so every rule
//! here is tested without a broker; [`crate::driver`] moves records between it and Kafka.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use hr_model::{
    EpisodePolicy, EpisodeTracker, Event, HrStats, ParseError, ProfileError, ProfileTable,
    ThresholdError, Thresholds,
};
use hr_window::{
    Aggregator, ConfigError, Emission, EngineConfig, Outcome, RestoreError, WindowEngine,
};

use crate::changelog::{self, ChangelogRecord, RestoredPartition};

mod output;

pub use output::{AlertOut, Emit, Emitted, EpisodeOut};

/// Heart-rate statistics as a window aggregate: wiring [`HrStats`] into the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct HrAggregator;

impl Aggregator for HrAggregator {
    type Input = u16;
    type Acc = HrStats;

    fn create(&self) -> HrStats {
        HrStats::default()
    }
    fn add(&self, acc: &mut HrStats, bpm: &u16) {
        acc.add(*bpm);
    }
    fn merge(&self, acc: &mut HrStats, other: &HrStats) {
        acc.merge(other);
    }
}

/// What shapes the processor's output.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Window engine settings.
    pub engine: EngineConfig,
    /// Which windows become alerts.
    pub emit: Emit,
    /// Alert classification thresholds for patients without a profile.
    pub thresholds: Thresholds,
    /// When episodes are raised and cleared.
    pub episodes: EpisodePolicy,
    /// Signal loss: a patient whose partition's event time moved on by this much with no
    /// reading from them gets a `signal_loss` episode (and, in key scope, their open windows
    /// fired). `None` disables it. Sets the engine's `key_idle_timeout_ms`.
    pub silence_after_ms: Option<i64>,
    /// A reading whose event time is more than this ahead of its Kafka record timestamp goes
    /// to the dead-letter topic (`clock_skew`) instead of moving its patient's clock into the
    /// future. `None` disables the check.
    pub max_clock_skew_ms: Option<i64>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            emit: Emit::All,
            thresholds: Thresholds::default(),
            episodes: EpisodePolicy::default(),
            silence_after_ms: Some(30_000),
            max_clock_skew_ms: Some(3_600_000),
        }
    }
}

/// Where records went. `read = parsed + invalid` and `parsed = aggregated + late` always hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Records read (records below a restored offset, or of a partition not owned, are not).
    pub read: u64,
    /// Records that parsed into an event and entered the window engine.
    pub parsed: u64,
    /// Records sent to the dead-letter topic: invalid ones and those with a skewed clock.
    pub invalid: u64,
    /// Of `invalid`: valid readings whose event time is too far ahead of their record time.
    pub clock_skew: u64,
    /// Events added to windows.
    pub aggregated: u64,
    /// Events sent to the late topic.
    pub late: u64,
    /// Windows fired (re-firings included).
    pub windows_fired: u64,
    /// Alerts produced.
    pub alerts: u64,
    /// Episode records produced (raised and cleared, signal loss included).
    pub episodes: u64,
    /// Profile records applied, and refused (the previous profile stayed in force).
    pub profiles_applied: u64,
    /// Profile records refused as malformed or contradictory.
    pub profiles_refused: u64,
}

/// One input record as the processor needs it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The Kafka record timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
    /// What parsing the value gave.
    pub parsed: &'a Result<Event, ParseError>,
}

/// What became of one record besides the alerts it fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Added to its windows.
    Windowed,
    /// Not this processor's: the partition is not owned, or the record is below the restored
    /// offset (already in the state).
    Skipped,
    /// For the dead-letter topic, with a stable code and a message.
    DeadLetter {
        /// Stable error code (hr-model's codes, or `clock_skew`).
        code: &'static str,
        /// Human-readable reason.
        message: String,
    },
    /// For the late topic: its windows have closed.
    Late {
        /// The watermark that judged it.
        watermark_ms: i64,
        /// How far behind the watermark it was.
        lateness_ms: i64,
        /// Human-readable reason.
        message: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Offset of the next record to process; records below are already in the state.
    next_offset: i64,
    /// Where this ownership started reading (restored offset, or the first record seen):
    /// where a rewind goes back to.
    start_offset: Option<i64>,
}

type Engine = WindowEngine<String, HrAggregator>;

/// The processor: window engine, classification, emit filter and counters for the partitions
/// this instance owns.
pub struct Processor {
    engine: Engine,
    cfg: ProcessorConfig,
    counters: RunCounters,
    owned: BTreeMap<i32, Progress>,
    out: Vec<Emission<String, HrStats>>,
    profiles: ProfileTable,
    /// Per partition, the episode tracker of every patient that has had a window or a silence.
    trackers: BTreeMap<i32, HashMap<String, EpisodeTracker>>,
}

/// Why a [`Processor`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The window settings.
    #[error(transparent)]
    Window(#[from] ConfigError),
    /// The default thresholds.
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    /// The episode policy.
    #[error(transparent)]
    Episodes(#[from] hr_model::EpisodePolicyError),
}

impl Processor {
    /// A processor owning no partition yet.
    ///
    /// # Errors
    /// [`ProcessorError`] for an invalid window configuration, thresholds or episode policy.
    pub fn new(cfg: ProcessorConfig) -> Result<Self, ProcessorError> {
        let mut engine_cfg = cfg.engine.clone();
        if cfg.silence_after_ms.is_some() {
            engine_cfg.key_idle_timeout_ms = cfg.silence_after_ms;
        }
        cfg.episodes.validate()?;
        Ok(Self {
            engine: WindowEngine::new(engine_cfg, HrAggregator)?,
            profiles: ProfileTable::new(cfg.thresholds)?,
            cfg,
            counters: RunCounters::default(),
            owned: BTreeMap::new(),
            out: Vec::new(),
            trackers: BTreeMap::new(),
        })
    }

    /// Applies one record of the `patient_profiles` topic (`None`: a tombstone, back to the
    /// defaults). A refused record leaves the previous profile in force.
    ///
    /// # Errors
    /// The [`ProfileError`] saying why the record was refused.
    pub fn apply_profile(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ProfileError> {
        let applied = self.profiles.apply(key, value);
        match applied {
            Ok(()) => self.counters.profiles_applied += 1,
            Err(_) => self.counters.profiles_refused += 1,
        }
        applied
    }

    /// The thresholds in force for `patient_id`.
    pub fn thresholds_for(&self, patient_id: &str) -> &Thresholds {
        self.profiles.thresholds_for(patient_id)
    }

    /// Declares every patient of `partition` silent now (the wall-clock rule for a partition
    /// whose records stopped altogether): each gets `signal_loss` and, in key scope, its open
    /// windows fired.
    pub fn silence_partition(&mut self, partition: i32, out: &mut Emitted) {
        if !self.owns(partition) {
            return;
        }
        self.engine
            .silence_partition(partition as u32, &mut self.out);
        self.drain(out);
    }

    /// Takes ownership of `partition` with the state read back from the changelog (`None`:
    /// none saved, start fresh).
    ///
    /// # Errors
    /// [`RestoreError`] when the saved state was written under other window settings or is
    /// corrupt; the partition is then not owned.
    pub fn assign(
        &mut self,
        partition: i32,
        restored: Option<RestoredPartition>,
    ) -> Result<(), RestoreError> {
        self.revoke(partition);
        let mut progress = Progress {
            next_offset: 0,
            start_offset: None,
        };
        let mut trackers = HashMap::new();
        if let Some(r) = restored {
            if let Some(snap) = r.snapshot {
                self.engine.restore(partition as u32, snap)?;
            }
            trackers = r.episodes;
            progress = Progress {
                next_offset: r.next_offset,
                start_offset: Some(r.next_offset),
            };
        }
        self.engine.add_partition(partition as u32);
        self.owned.insert(partition, progress);
        self.trackers.insert(partition, trackers);
        Ok(())
    }

    /// Gives up `partition` and all its state; the next owner restores it from the changelog.
    pub fn revoke(&mut self, partition: i32) {
        self.engine.remove_partition(partition as u32);
        self.owned.remove(&partition);
        self.trackers.remove(&partition);
    }

    /// Whether `partition` is owned.
    pub fn owns(&self, partition: i32) -> bool {
        self.owned.contains_key(&partition)
    }

    /// The owned partitions.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.owned.keys().copied()
    }

    /// Where a rewind of `partition` must resume reading: the restored offset, or the first
    /// offset processed since it was assigned. `None` when nothing was processed or restored.
    pub fn rewind_offset(&self, partition: i32) -> Option<i64> {
        self.owned.get(&partition).and_then(|p| p.start_offset)
    }

    /// The next offset of every owned partition that has one: what a commit stores.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.owned
            .iter()
            .filter(|(_, p)| p.start_offset.is_some())
            .map(|(&id, p)| (id, p.next_offset))
            .collect()
    }

    /// Processes one record: its verdict, and every window it fires pushed into `alerts`.
    pub fn process(&mut self, rec: InputRecord<'_>, alerts: &mut Emitted) -> Verdict {
        let Some(progress) = self.owned.get_mut(&rec.partition) else {
            return Verdict::Skipped;
        };
        if progress.start_offset.is_some() && rec.offset < progress.next_offset {
            return Verdict::Skipped;
        }
        progress.start_offset.get_or_insert(rec.offset);
        progress.next_offset = rec.offset + 1;
        self.counters.read += 1;
        let ev = match rec.parsed {
            Ok(ev) => ev,
            Err(e) => {
                self.counters.invalid += 1;
                return Verdict::DeadLetter {
                    code: e.code(),
                    message: e.to_string(),
                };
            }
        };
        if let (Some(skew), Some(ts)) = (self.cfg.max_clock_skew_ms, rec.timestamp_ms)
            && ev.event_time_ms > ts.saturating_add(skew)
        {
            self.counters.invalid += 1;
            self.counters.clock_skew += 1;
            return Verdict::DeadLetter {
                code: "clock_skew",
                message: format!(
                    "event time {} is {} ms ahead of the record's Kafka timestamp {ts}, more than the {skew} ms allowed",
                    ev.event_time_ms,
                    ev.event_time_ms - ts
                ),
            };
        }
        self.counters.parsed += 1;
        let outcome = self.engine.process(
            rec.partition as u32,
            ev.patient_id.as_str(),
            ev.event_time_ms,
            &ev.heart_rate_bpm,
            &mut self.out,
        );
        self.drain(alerts);
        match outcome {
            Outcome::Aggregated => {
                self.counters.aggregated += 1;
                Verdict::Windowed
            }
            Outcome::Late {
                watermark_ms,
                lateness_ms,
            } => {
                self.counters.late += 1;
                Verdict::Late {
                    watermark_ms,
                    lateness_ms,
                    message: format!(
                        "event time {} is {lateness_ms} ms past what the watermark {watermark_ms} still accepts",
                        ev.event_time_ms
                    ),
                }
            }
        }
    }

    /// Lets processing time pass (partition idleness in global scope).
    pub fn tick(&mut self, now: Instant, alerts: &mut Emitted) {
        self.engine.on_processing_time(now, &mut self.out);
        self.drain(alerts);
    }

    /// Ends a bounded input: every open window fires.
    pub fn finish(&mut self, alerts: &mut Emitted) {
        self.engine.finish(&mut self.out);
        self.drain(alerts);
    }

    /// The changelog records for what changed in `partition` since the last call; `finished`
    /// ends its state (see [`changelog`]). Empty for a partition not owned or never read.
    pub fn take_changelog(&mut self, partition: i32, finished: bool) -> Vec<ChangelogRecord> {
        let Some(progress) = self.owned.get(&partition).copied() else {
            return Vec::new();
        };
        if progress.start_offset.is_none() {
            return Vec::new();
        }
        if finished {
            let snap = self.engine.snapshot(partition as u32);
            let _ = self.engine.take_changes(partition as u32);
            let (_, keys) = match snap {
                Some(s) => s.into_parts(),
                None => return changelog::encode_finished(progress.next_offset, []),
            };
            return changelog::encode_finished(
                progress.next_offset,
                keys.iter().map(|k| k.key().as_str()),
            );
        }
        let empty = HashMap::new();
        let trackers = self.trackers.get(&partition).unwrap_or(&empty);
        match self.engine.take_changes(partition as u32) {
            Some(changes) => changelog::encode_changes(progress.next_offset, changes, trackers),
            None => Vec::new(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> RunCounters {
        self.counters
    }

    /// `partition`'s largest event time and its watermark as a whole, epoch ms, for metrics
    /// (see [`WindowEngine::partition_watermark`]); `None` where there is none yet.
    pub fn partition_clock(&self, partition: i32) -> (Option<i64>, Option<i64>) {
        let p = partition as u32;
        (
            self.engine.max_event_time(p),
            self.engine.partition_watermark(p),
        )
    }

    /// Open windows, keys and partitions held now (counted on demand).
    pub fn engine_counters(&self) -> hr_window::Counters {
        self.engine.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hr_model::{AlertType, Episode, Validation};
    use hr_window::{WatermarkScope, WindowSpec};

    fn reading(patient: &str, t_ms: i64, bpm: u16) -> Result<Event, ParseError> {
        let ts = hr_model::format_timestamp(t_ms);
        let json =
            format!(r#"{{"patient_id":"{patient}","timestamp":"{ts}","heart_rate_bpm":{bpm}}}"#);
        Validation::default().parse(json.as_bytes())
    }

    fn input(partition: i32, offset: i64, parsed: &Result<Event, ParseError>) -> InputRecord<'_> {
        InputRecord {
            partition,
            offset,
            timestamp_ms: None,
            parsed,
        }
    }

    fn processor() -> Processor {
        Processor::new(ProcessorConfig {
            engine: EngineConfig {
                window: WindowSpec::Tumbling { size_ms: 10_000 },
                out_of_orderness_ms: 1_000,
                scope: WatermarkScope::Key,
                ..EngineConfig::default()
            },
            ..ProcessorConfig::default()
        })
        .unwrap()
    }

    /// Feeds `(patient, t, bpm)` readings to partition 0 from `offset`, returning alert JSON.
    fn feed(p: &mut Processor, offset: i64, readings: &[(&str, i64, u16)]) -> Vec<String> {
        let mut alerts = Emitted::default();
        for (i, &(patient, t, bpm)) in readings.iter().enumerate() {
            let parsed = reading(patient, t, bpm);
            p.process(input(0, offset + i as i64, &parsed), &mut alerts);
        }
        alerts.alerts.into_iter().map(|a| a.json).collect()
    }

    fn stream() -> Vec<(&'static str, i64, u16)> {
        let mut v = Vec::new();
        for i in 0..60 {
            v.push(("p1", i * 700, 120 + (i % 5) as u16));
            v.push(("p2", i * 650 + 30, 45));
        }
        v
    }

    #[test]
    fn classifies_fired_windows_and_counts_every_record() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        let alerts = feed(&mut p, 0, &stream());
        assert!(!alerts.is_empty());
        assert!(alerts.iter().any(|a| a.contains("\"tachycardia\"")));
        assert!(alerts.iter().any(|a| a.contains("\"bradycardia\"")));
        let c = p.counters();
        assert_eq!(c.read, 120);
        assert_eq!(c.read, c.parsed + c.invalid);
        assert_eq!(c.parsed, c.aggregated + c.late);
        assert_eq!(c.alerts, alerts.len() as u64);
        assert_eq!(p.offsets(), BTreeMap::from([(0, 120)]));
    }

    #[test]
    fn invalid_and_skewed_readings_go_to_the_dead_letter_topic() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        let bad = Validation::default().parse(br#"{"patient_id":"p1"}"#);
        let mut alerts = Emitted::default();
        let v = p.process(input(0, 0, &bad), &mut alerts);
        assert!(
            matches!(v, Verdict::DeadLetter { code, .. } if code == bad.as_ref().unwrap_err().code())
        );
        // A year-9999 reading sent now: far ahead of its record timestamp.
        let future = reading("p1", hr_model::MAX_TIMESTAMP_MS - 1, 80);
        let v = p.process(
            InputRecord {
                timestamp_ms: Some(1_700_000_000_000),
                ..input(0, 1, &future)
            },
            &mut alerts,
        );
        assert!(
            matches!(
                v,
                Verdict::DeadLetter {
                    code: "clock_skew",
                    ..
                }
            ),
            "{v:?}"
        );
        // It did not move p1's clock: an ordinary reading is still on time.
        let now = reading("p1", 1_700_000_000_000, 80);
        let v = p.process(
            InputRecord {
                timestamp_ms: Some(1_700_000_000_500),
                ..input(0, 2, &now)
            },
            &mut alerts,
        );
        assert_eq!(v, Verdict::Windowed);
        let c = p.counters();
        assert_eq!((c.invalid, c.clock_skew, c.parsed), (2, 1, 1));
    }

    #[test]
    fn records_of_partitions_not_owned_or_below_the_restored_offset_are_skipped() {
        let mut p = processor();
        let r = reading("p1", 0, 80);
        let mut alerts = Emitted::default();
        assert_eq!(p.process(input(0, 0, &r), &mut alerts), Verdict::Skipped);
        p.assign(
            0,
            Some(RestoredPartition {
                next_offset: 10,
                snapshot: None,
                episodes: HashMap::new(),
            }),
        )
        .unwrap();
        assert_eq!(p.process(input(0, 9, &r), &mut alerts), Verdict::Skipped);
        assert_eq!(p.process(input(0, 10, &r), &mut alerts), Verdict::Windowed);
        assert_eq!(p.rewind_offset(0), Some(10));
        p.revoke(0);
        assert_eq!(p.process(input(0, 11, &r), &mut alerts), Verdict::Skipped);
        assert_eq!(p.counters().read, 1);
    }

    /// The changelog written at any commit points, read back into a new processor, continues
    /// exactly as an uninterrupted run: the same alerts, byte for byte.
    #[test]
    fn a_restore_from_the_changelog_continues_like_an_uninterrupted_run() {
        let all = stream();
        let mut whole = processor();
        whole.assign(0, None).unwrap();
        let expected = feed(&mut whole, 0, &all);
        for cut in [1, 17, 60, 119] {
            let mut first = processor();
            first.assign(0, None).unwrap();
            let mut log: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut got = Vec::new();
            for (i, chunk) in [&all[..cut / 2], &all[cut / 2..cut]]
                .into_iter()
                .enumerate()
            {
                let offset = if i == 0 { 0 } else { (cut / 2) as i64 };
                got.extend(feed(&mut first, offset, chunk));
                for r in first.take_changelog(0, false) {
                    match r.value {
                        Some(v) => log.insert(r.key, v),
                        None => log.remove(&r.key),
                    };
                }
            }
            let restored = changelog::decode(&log).unwrap().unwrap();
            assert_eq!(restored.next_offset, cut as i64);
            let mut second = processor();
            second.assign(0, Some(restored)).unwrap();
            // Records the first run already holds are skipped if delivered again.
            got.extend(feed(&mut second, 0, &all));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_finished_partition_leaves_tombstones_and_a_fresh_start() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        feed(&mut p, 0, &stream());
        let mut alerts = Emitted::default();
        p.finish(&mut alerts);
        let recs = p.take_changelog(0, true);
        let tombstones = recs.iter().filter(|r| r.value.is_none()).count();
        assert_eq!(tombstones, 2, "one per patient");
        let log: BTreeMap<Vec<u8>, Vec<u8>> = recs
            .into_iter()
            .filter_map(|r| r.value.map(|v| (r.key, v)))
            .collect();
        let restored = changelog::decode(&log).unwrap().unwrap();
        assert_eq!(restored.next_offset, 120);
        assert_eq!(restored.snapshot, None);
    }

    #[test]
    fn abnormal_only_emission_drops_normal_windows() {
        let mut p = Processor::new(ProcessorConfig {
            emit: Emit::Abnormal,
            ..ProcessorConfig::default()
        })
        .unwrap();
        p.assign(0, None).unwrap();
        let mut readings = Vec::new();
        for i in 0..200 {
            readings.push(("p1", i * 1_000, 80));
        }
        assert!(feed(&mut p, 0, &readings).is_empty());
        assert!(p.counters().windows_fired > 0);
        let _ = AlertType::Normal;
    }

    fn episodes_of(p: &mut Processor, offset: i64, readings: &[(&str, i64, u16)]) -> Vec<String> {
        let mut out = Emitted::default();
        for (i, &(patient, t, bpm)) in readings.iter().enumerate() {
            let parsed = reading(patient, t, bpm);
            p.process(input(0, offset + i as i64, &parsed), &mut out);
        }
        out.episodes
            .into_iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.episode.patient_id, e.episode.state, e.episode.kind
                )
            })
            .collect()
    }

    #[test]
    fn a_tachycardic_run_raises_one_episode_and_normal_windows_clear_it() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        // 10 s windows: 3 windows at 130 bpm, then 3 at 70, p2 keeps the partition moving.
        let mut readings = Vec::new();
        for s in 0..70 {
            let bpm = if s < 30 { 130 } else { 70 };
            readings.push(("p1", s * 1_000, bpm));
            readings.push(("p2", s * 1_000, 70));
        }
        let got = episodes_of(&mut p, 0, &readings);
        assert_eq!(got, ["p1 raised tachycardia", "p1 cleared tachycardia"]);
    }

    #[test]
    fn a_silent_monitor_gets_its_last_window_and_one_signal_loss_then_a_restore() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        let mut alerts = Emitted::default();
        let mut offset = 0;
        let mut send = |p: &mut Processor, patient: &str, t: i64, out: &mut Emitted| {
            let parsed = reading(patient, t, 140);
            p.process(input(0, offset, &parsed), out);
            offset += 1;
        };
        for s in 0..15 {
            send(&mut p, "quiet", s * 1_000, &mut alerts);
            send(&mut p, "busy", s * 1_000, &mut alerts);
        }
        // "quiet" stops; "busy" goes on for 60 s more of event time.
        for s in 15..75 {
            send(&mut p, "busy", s * 1_000, &mut alerts);
        }
        let quiet_windows: Vec<(i64, u64)> = alerts
            .alerts
            .iter()
            .filter(|a| a.alert.patient_id == "quiet")
            .map(|a| (a.alert.window_start, a.alert.count))
            .collect();
        assert_eq!(
            quiet_windows,
            [(0, 10), (10_000, 5)],
            "its last, partial window fired too"
        );
        let lost: Vec<&Episode> = alerts
            .episodes
            .iter()
            .map(|e| &e.episode)
            .filter(|e| e.patient_id == "quiet" && e.kind == hr_model::EpisodeKind::SignalLoss)
            .collect();
        assert_eq!(lost.len(), 1, "one signal_loss record");
        assert_eq!(lost[0].state, hr_model::EpisodeState::Raised);
        assert_eq!(lost[0].window_start, 14_000, "the last reading");
        send(&mut p, "quiet", 80_000, &mut alerts);
        let restored = alerts
            .episodes
            .iter()
            .filter(|e| {
                e.episode.patient_id == "quiet"
                    && e.episode.kind == hr_model::EpisodeKind::SignalLoss
            })
            .count();
        assert_eq!(restored, 2, "raised, then cleared by the next reading");
        assert_eq!(
            alerts.episodes.last().unwrap().episode.state,
            hr_model::EpisodeState::Cleared
        );
    }

    #[test]
    fn a_profile_changes_one_patients_classification_and_a_bad_one_changes_nothing() {
        let mut p = processor();
        p.assign(0, None).unwrap();
        p.apply_profile(b"p1", Some(br#"{"tachycardia_above": 130}"#))
            .unwrap();
        assert!(
            p.apply_profile(b"p1", Some(br#"{"bradycardia_below": 200}"#))
                .is_err()
        );
        assert!(p.apply_profile(b"p1", Some(b"{not json")).is_err());
        let mut readings = Vec::new();
        for s in 0..25 {
            readings.push(("p1", s * 1_000, 120));
            readings.push(("p2", s * 1_000, 120));
        }
        let alerts = feed(&mut p, 0, &readings);
        let first = |patient: &str| -> serde_json::Value {
            let a = alerts
                .iter()
                .find(|a| a.contains(&format!("\"{patient}\"")))
                .unwrap();
            serde_json::from_str(a).unwrap()
        };
        assert_eq!(first("p1")["alert_type"], "normal", "120 is under p1's 130");
        assert_eq!(first("p1")["thresholds"]["tachycardia_above"], 130.0);
        assert_eq!(first("p2")["alert_type"], "tachycardia");
        assert_eq!(first("p2")["thresholds"]["tachycardia_above"], 100.0);
        let c = p.counters();
        assert_eq!((c.profiles_applied, c.profiles_refused), (1, 2));
        // A tombstone returns p1 to the defaults.
        p.apply_profile(b"p1", None).unwrap();
        assert_eq!(p.thresholds_for("p1").tachycardia_above, 100.0);
    }

    #[test]
    fn windows_with_too_few_readings_are_insufficient_data() {
        let mut p = Processor::new(ProcessorConfig {
            thresholds: Thresholds::new(100.0, 50.0, 5).unwrap(),
            ..ProcessorConfig::default()
        })
        .unwrap();
        p.assign(0, None).unwrap();
        let alerts = feed(
            &mut p,
            0,
            &[("p1", 0, 150), ("p1", 1_000, 150), ("p1", 70_000, 80)],
        );
        let a: serde_json::Value = serde_json::from_str(&alerts[0]).unwrap();
        assert_eq!(a["alert_type"], "insufficient_data");
        assert_eq!(a["count"], 2);
    }

    /// Episode state lives in the changelog: a restore mid-episode neither raises it again
    /// nor loses its clear.
    #[test]
    fn episodes_survive_a_restore_from_the_changelog() {
        let mut readings = Vec::new();
        for s in 0..70 {
            let bpm = if s < 30 { 130 } else { 70 };
            readings.push(("p1", s * 1_000, bpm));
            readings.push(("p2", s * 1_000, 70));
        }
        let mut whole = processor();
        whole.assign(0, None).unwrap();
        let expected = episodes_of(&mut whole, 0, &readings);
        for cut in [41, 70, 101] {
            let mut first = processor();
            first.assign(0, None).unwrap();
            let mut got = episodes_of(&mut first, 0, &readings[..cut]);
            let log: BTreeMap<Vec<u8>, Vec<u8>> = first
                .take_changelog(0, false)
                .into_iter()
                .filter_map(|r| r.value.map(|v| (r.key, v)))
                .collect();
            let mut second = processor();
            second.assign(0, changelog::decode(&log).unwrap()).unwrap();
            got.extend(episodes_of(&mut second, 0, &readings));
            assert_eq!(got, expected, "cut at {cut}");
        }
    }
}

#[cfg(test)]
mod offset_only_tests {
    use super::*;
    use hr_model::Validation;

    /// A commit after records that changed no window (a dead letter, a late reading) still
    /// moves the changelog's offset with the committed one.
    #[test]
    fn the_partition_record_follows_records_that_change_no_window() {
        for restored in [
            None,
            Some(RestoredPartition {
                next_offset: 5,
                snapshot: None,
                episodes: HashMap::new(),
            }),
        ] {
            let mut p = Processor::new(ProcessorConfig::default()).unwrap();
            p.assign(0, restored).unwrap();
            let bad = Validation::default().parse(b"{not json");
            let mut out = Emitted::default();
            p.process(
                InputRecord {
                    partition: 0,
                    offset: 5,
                    timestamp_ms: None,
                    parsed: &bad,
                },
                &mut out,
            );
            let log: BTreeMap<Vec<u8>, Vec<u8>> = p
                .take_changelog(0, false)
                .into_iter()
                .filter_map(|r| r.value.map(|v| (r.key, v)))
                .collect();
            let back = changelog::decode(&log)
                .unwrap()
                .expect("a partition record");
            assert_eq!(back.next_offset, 6);
            assert_eq!(p.offsets()[&0], 6);
        }
    }
}
