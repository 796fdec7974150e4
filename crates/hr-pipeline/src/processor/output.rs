//! What the processor hands the driver: alerts and episode records made from what the window
//! engine emits, alerts filtered by [`Emit`].

use hr_model::{Alert, Episode, WindowOutcome};
use hr_window::Emission;

use super::Processor;

/// Which fired windows become alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every window, normal ones included (the seed's behaviour).
    All,
    /// Only tachycardia and bradycardia.
    Abnormal,
}

/// What the processor hands the driver to send: alerts and episode records.
#[derive(Debug, Default)]
pub struct Emitted {
    /// One per fired window that passes the emit filter.
    pub alerts: Vec<AlertOut>,
    /// Raised and cleared episodes.
    pub episodes: Vec<EpisodeOut>,
}

impl Emitted {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.episodes.is_empty()
    }

    /// Forgets everything (after it was sent).
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.episodes.clear();
    }
}

/// An alert ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertOut {
    /// The source partition whose state fired it.
    pub partition: i32,
    /// The alert (its `patient_id` is the record key).
    pub alert: Alert,
    /// The alert as JSON.
    pub json: String,
}

/// An episode record ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOut {
    /// The source partition whose state produced it.
    pub partition: i32,
    /// The record (its `patient_id` is the key).
    pub episode: Episode,
    /// The record as JSON.
    pub json: String,
}

impl Processor {
    /// Turns what the engine emitted into alerts (those [`Emit`] lets through) and episode
    /// records in `emitted`, counting them.
    pub(super) fn drain(&mut self, emitted: &mut Emitted) {
        let policy = self.cfg.episodes;
        for e in self.out.drain(..) {
            let partition = e.partition() as i32;
            let trackers = self.trackers.entry(partition).or_default();
            let episodes = match e {
                Emission::Fired(w) => {
                    self.counters.windows_fired += 1;
                    let thresholds = self.profiles.thresholds_for(&w.key);
                    let alert =
                        Alert::from_stats(w.key, w.start, w.end, &w.acc, w.revision, thresholds);
                    let episodes = trackers
                        .entry(alert.patient_id.clone())
                        .or_default()
                        .on_window(&alert.patient_id, &WindowOutcome::from(&alert), &policy);
                    if self.cfg.emit == Emit::All || alert.alert_type.is_abnormal() {
                        self.counters.alerts += 1;
                        let json = alert.to_json();
                        emitted.alerts.push(AlertOut {
                            partition,
                            alert,
                            json,
                        });
                    }
                    episodes
                }
                Emission::KeyIdle {
                    key,
                    last_event_time_ms,
                    ..
                } => {
                    // Declared at the event time that made the silence certain.
                    let declared =
                        last_event_time_ms.saturating_add(self.cfg.silence_after_ms.unwrap_or(0));
                    trackers
                        .entry(key.clone())
                        .or_default()
                        .on_signal_lost(&key, last_event_time_ms, declared)
                        .into_iter()
                        .collect()
                }
                Emission::KeyResumed {
                    key, event_time_ms, ..
                } => trackers
                    .entry(key.clone())
                    .or_default()
                    .on_signal_restored(&key, event_time_ms)
                    .into_iter()
                    .collect(),
            };
            for episode in episodes {
                self.counters.episodes += 1;
                let json = episode.to_json();
                emitted.episodes.push(EpisodeOut {
                    partition,
                    episode,
                    json,
                });
            }
        }
    }
}
