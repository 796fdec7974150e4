//! The ward as the page shows it: a bounded, in-memory view built from alert and episode records.
//!
//! Pure: no I/O, no clock. The readers feed it records ([`WardView::apply_alert`],
//! [`WardView::apply_episode`]); the server takes what changed since the last look
//! ([`WardView::take_changes`]) to push to browsers, and a full [`WardView::snapshot`] for a
//! browser that just connected.
//!
//! # Bounds
//! - Per patient, the last [`ViewConfig::windows_per_patient`] windows by window start (30 by
//!   default): a window older than all kept ones is dropped when the history is full, and a
//!   re-fired window (higher `revision`) replaces the one it revises.
//! - At most [`ViewConfig::max_patients`] patients. When a record for a new patient arrives and the
//!   view is full, the patient whose last record is the oldest (least recently updated) is
//!   evicted and the page is told to remove its tile; if that patient's monitor reports again it
//!   comes back with the history it sends from then on. A ward that really has more patients
//!   than the cap keeps the most active ones.
//! - At most [`ViewConfig::feed_len`] feed entries (abnormal alerts and every episode record).
//! - At most [`MAX_EPISODE_KINDS`] open episode kinds per patient; ids and words are bounded too
//!   ([`crate::record::MAX_ID_BYTES`], [`crate::record::MAX_WORD_BYTES`]): longer ones are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;

use crate::record::{AlertRecord, EpisodeRecord, EpisodeState, ThresholdsSeen};

/// How much the view keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewConfig {
    /// Windows kept per patient (the sparkline's length).
    pub windows_per_patient: usize,
    /// Patients kept; beyond this the least recently updated one is evicted.
    pub max_patients: usize,
    /// Entries kept in the feed of latest alerts and episodes.
    pub feed_len: usize,
}

impl ViewConfig {
    /// 30 windows per patient, 5,000 patients, 200 feed entries.
    pub const DEFAULT: Self = Self {
        windows_per_patient: 30,
        max_patients: 5_000,
        feed_len: 200,
    };
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Open episode kinds kept per patient; a producer inventing kinds cannot grow a tile without bound.
pub const MAX_EPISODE_KINDS: usize = 8;

/// A patient's current state, shown as a colour and a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A `signal_loss` episode is open.
    SignalLost,
    /// The latest window is tachycardic.
    Tachycardia,
    /// The latest window is bradycardic.
    Bradycardia,
    /// The latest window has an alert type this dashboard does not know (shown by its name).
    Other,
    /// The latest window had too few readings to be classified.
    InsufficientData,
    /// The latest window is normal.
    Normal,
    /// Only episode records so far, no window.
    NoData,
}

impl State {
    /// The word shown on a tile.
    pub const fn word(self) -> &'static str {
        match self {
            Self::SignalLost => "signal lost",
            Self::Tachycardia => "tachycardia",
            Self::Bradycardia => "bradycardia",
            Self::Other => "other",
            Self::InsufficientData => "insufficient data",
            Self::Normal => "normal",
            Self::NoData => "no data",
        }
    }

    /// Sort rank, abnormal first: 0 signal lost, 1 tachycardia or bradycardia, 2 an unknown type,
    /// 3 insufficient data, 4 normal, 5 no data.
    pub const fn rank(self) -> u8 {
        match self {
            Self::SignalLost => 0,
            Self::Tachycardia | Self::Bradycardia => 1,
            Self::Other => 2,
            Self::InsufficientData => 3,
            Self::Normal => 4,
            Self::NoData => 5,
        }
    }

    fn of_alert_type(t: &str) -> Self {
        match t {
            "tachycardia" => Self::Tachycardia,
            "bradycardia" => Self::Bradycardia,
            "normal" => Self::Normal,
            "insufficient_data" => Self::InsufficientData,
            "signal_loss" => Self::SignalLost,
            _ => Self::Other,
        }
    }
}

/// One kept window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowPoint {
    /// Window start, epoch ms.
    pub start: i64,
    /// Window end, epoch ms.
    pub end: i64,
    /// Average heart rate.
    pub avg: f64,
    /// Lowest reading, if known.
    pub min: Option<f64>,
    /// Highest reading, if known.
    pub max: Option<f64>,
    /// Readings in the window, if known.
    pub count: Option<u64>,
    /// The alert type as sent.
    pub alert_type: String,
    /// The window's revision.
    pub revision: u32,
}

/// An episode that was raised and not yet cleared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenEpisode {
    /// Its kind (`tachycardia`, `bradycardia`, `signal_loss`, ...).
    pub kind: String,
    /// Its id as sent.
    pub episode_id: String,
    /// End of the window that raised it, epoch ms, if given.
    pub since: Option<i64>,
}

/// What the page needs to draw one patient's tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tile {
    /// The patient id (the page renders it as text, never as markup).
    pub id: String,
    /// The state.
    pub state: State,
    /// The state's word; for [`State::Other`] the alert type as sent.
    pub word: String,
    /// [`State::rank`], for sorting abnormal first.
    pub rank: u8,
    /// The latest window (largest start), if any.
    pub latest: Option<WindowPoint>,
    /// Averages of the kept windows, oldest first (the sparkline).
    pub spark: Vec<f64>,
    /// Open episodes.
    pub episodes: Vec<OpenEpisode>,
    /// The thresholds the latest alert names, if it names them.
    pub thresholds: Option<ThresholdsSeen>,
}

/// One entry of the feed of latest alerts and episodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedItem {
    /// Increasing number; the page uses it to skip entries it already shows.
    pub seq: u64,
    /// The patient.
    pub patient_id: String,
    /// `alert` or `episode`.
    pub what: &'static str,
    /// The alert type or episode kind.
    pub kind: String,
    /// For episodes: raised or cleared.
    pub state: Option<EpisodeState>,
    /// The window's start, epoch ms, if known.
    pub window_start: Option<i64>,
    /// The window's end, epoch ms, if known.
    pub window_end: Option<i64>,
    /// The window's average (alerts) or the episode's extreme average.
    pub avg: Option<f64>,
}

/// Everything, for a browser that just connected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Every tile, abnormal first, then by patient id.
    pub tiles: Vec<Tile>,
    /// The feed, oldest first.
    pub feed: Vec<FeedItem>,
    /// Counters.
    pub stats: ViewStats,
}

/// What changed since the previous [`WardView::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    /// Tiles added or changed, by patient id.
    pub tiles: Vec<Tile>,
    /// Patients evicted.
    pub removed: Vec<String>,
    /// New feed entries, oldest first.
    pub feed: Vec<FeedItem>,
    /// Counters.
    pub stats: ViewStats,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty() && self.removed.is_empty() && self.feed.is_empty()
    }
}

/// Counters of what the view has taken in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ViewStats {
    /// Patients shown.
    pub patients: usize,
    /// Alert records applied.
    pub alerts: u64,
    /// Episode records applied.
    pub episodes: u64,
    /// Records that changed nothing: repeats of a kept revision, or windows older than a full
    /// history.
    pub ignored: u64,
    /// Patients evicted to stay within the cap.
    pub evicted: u64,
}

#[derive(Debug, Default)]
struct Patient {
    /// Sorted by start, at most `windows_per_patient`.
    windows: VecDeque<WindowPoint>,
    episodes: BTreeMap<String, OpenEpisode>,
    thresholds: Option<ThresholdsSeen>,
    /// The view's sequence number at this patient's last record (the eviction order).
    touched: u64,
}

/// The bounded view of the ward. See the [module docs](self) for what it keeps.
#[derive(Debug)]
pub struct WardView {
    cfg: ViewConfig,
    patients: HashMap<String, Patient>,
    /// `touched` -> patient id: the least recently updated patient is the first entry.
    by_touch: BTreeMap<u64, String>,
    seq: u64,
    dirty: BTreeSet<String>,
    removed: Vec<String>,
    feed: VecDeque<FeedItem>,
    /// Feed entries with a larger `seq` are not yet taken.
    feed_taken: u64,
    stats: ViewStats,
}

impl WardView {
    /// An empty view with these bounds (each at least 1).
    pub fn new(cfg: ViewConfig) -> Self {
        let cfg = ViewConfig {
            windows_per_patient: cfg.windows_per_patient.max(1),
            max_patients: cfg.max_patients.max(1),
            feed_len: cfg.feed_len.max(1),
        };
        Self {
            cfg,
            patients: HashMap::new(),
            by_touch: BTreeMap::new(),
            seq: 0,
            dirty: BTreeSet::new(),
            removed: Vec::new(),
            feed: VecDeque::new(),
            feed_taken: 0,
            stats: ViewStats::default(),
        }
    }

    /// Applies one alert; returns false when it changed nothing (a repeat, or older than a full
    /// history).
    pub fn apply_alert(&mut self, a: AlertRecord) -> bool {
        let point = WindowPoint {
            start: a.window_start,
            end: a.window_end,
            avg: a.avg_hr,
            min: a.min_hr,
            max: a.max_hr,
            count: a.count,
            alert_type: a.alert_type,
            revision: a.revision,
        };
        let cap = self.cfg.windows_per_patient;
        // Decide before touching the patient, so an ignored record does not count as activity.
        if let Some(p) = self.patients.get(&a.patient_id) {
            let w = &p.windows;
            let stale = match w.binary_search_by_key(&point.start, |x| x.start) {
                Ok(i) => w[i].revision >= point.revision,
                Err(0) => w.len() >= cap,
                Err(_) => false,
            };
            if stale {
                self.stats.ignored += 1;
                return false;
            }
        }
        self.stats.alerts += 1;
        let feed = (point.alert_type != "normal").then(|| FeedItem {
            seq: 0,
            patient_id: a.patient_id.clone(),
            what: "alert",
            kind: point.alert_type.clone(),
            state: None,
            window_start: Some(point.start),
            window_end: Some(point.end),
            avg: Some(point.avg),
        });
        let p = self.touch(&a.patient_id);
        match p.windows.binary_search_by_key(&point.start, |x| x.start) {
            Ok(i) => p.windows[i] = point,
            Err(i) => {
                p.windows.insert(i, point);
                if p.windows.len() > cap {
                    p.windows.pop_front();
                }
            }
        }
        if p.windows.back().is_some_and(|w| w.start <= a.window_start) {
            p.thresholds = a.thresholds.or(p.thresholds);
        }
        if let Some(item) = feed {
            self.push_feed(item);
        }
        true
    }

    /// Applies one episode record: a raised one opens an episode of its kind on the patient, a
    /// cleared one closes it. Every episode record goes to the feed.
    pub fn apply_episode(&mut self, e: EpisodeRecord) -> bool {
        self.stats.episodes += 1;
        let p = self.touch(&e.patient_id);
        match e.state {
            EpisodeState::Raised => {
                if p.episodes.len() < MAX_EPISODE_KINDS || p.episodes.contains_key(&e.kind) {
                    p.episodes.insert(
                        e.kind.clone(),
                        OpenEpisode {
                            kind: e.kind.clone(),
                            episode_id: e.episode_id.clone(),
                            since: e.window_end.or(e.window_start),
                        },
                    );
                }
            }
            EpisodeState::Cleared => {
                p.episodes.remove(&e.kind);
            }
        }
        self.push_feed(FeedItem {
            seq: 0,
            patient_id: e.patient_id,
            what: "episode",
            kind: e.kind,
            state: Some(e.state),
            window_start: e.window_start,
            window_end: e.window_end,
            avg: e.extreme_avg_hr,
        });
        true
    }

    /// The tile of one patient, if shown.
    pub fn tile(&self, id: &str) -> Option<Tile> {
        self.patients.get(id).map(|p| tile(id, p))
    }

    /// Every tile and the whole feed.
    pub fn snapshot(&self) -> Snapshot {
        let mut tiles: Vec<Tile> = self.patients.iter().map(|(id, p)| tile(id, p)).collect();
        tiles.sort_by(|a, b| (a.rank, &a.id).cmp(&(b.rank, &b.id)));
        Snapshot {
            tiles,
            feed: self.feed.iter().cloned().collect(),
            stats: self.stats(),
        }
    }

    /// What changed since the previous call (tiles by patient id, evictions, new feed entries).
    pub fn take_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        let tiles = dirty
            .iter()
            .filter_map(|id| self.patients.get(id).map(|p| tile(id, p)))
            .collect();
        let feed: Vec<FeedItem> = self
            .feed
            .iter()
            .filter(|f| f.seq > self.feed_taken)
            .cloned()
            .collect();
        if let Some(last) = self.feed.back() {
            self.feed_taken = last.seq;
        }
        Changes {
            tiles,
            removed: std::mem::take(&mut self.removed),
            feed,
            stats: self.stats(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ViewStats {
        ViewStats {
            patients: self.patients.len(),
            ..self.stats
        }
    }

    /// Marks `id` as just updated (creating it, and evicting the least recently updated patient
    /// when the view is full) and returns it.
    fn touch(&mut self, id: &str) -> &mut Patient {
        self.seq += 1;
        let seq = self.seq;
        if !self.patients.contains_key(id)
            && self.patients.len() >= self.cfg.max_patients
            && let Some((_, victim)) = self.by_touch.pop_first()
        {
            self.patients.remove(&victim);
            self.dirty.remove(&victim);
            self.removed.push(victim);
            self.stats.evicted += 1;
        }
        self.dirty.insert(id.to_owned());
        // A patient evicted earlier and now back must not also be listed as removed.
        self.removed.retain(|r| r != id);
        let p = self.patients.entry(id.to_owned()).or_default();
        if p.touched != 0 {
            self.by_touch.remove(&p.touched);
        }
        p.touched = seq;
        self.by_touch.insert(seq, id.to_owned());
        p
    }

    fn push_feed(&mut self, mut item: FeedItem) {
        self.seq += 1;
        item.seq = self.seq;
        self.feed.push_back(item);
        while self.feed.len() > self.cfg.feed_len {
            self.feed.pop_front();
        }
    }
}

fn tile(id: &str, p: &Patient) -> Tile {
    let latest = p.windows.back().cloned();
    let state = if p.episodes.contains_key("signal_loss") {
        State::SignalLost
    } else {
        latest
            .as_ref()
            .map_or(State::NoData, |w| State::of_alert_type(&w.alert_type))
    };
    let word = match (&state, &latest) {
        (State::Other, Some(w)) => w.alert_type.replace('_', " "),
        _ => state.word().to_owned(),
    };
    Tile {
        id: id.to_owned(),
        state,
        word,
        rank: state.rank(),
        latest,
        spark: p.windows.iter().map(|w| w.avg).collect(),
        episodes: p.episodes.values().cloned().collect(),
        thresholds: p.thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, start: i64, avg: f64, t: &str) -> AlertRecord {
        AlertRecord {
            patient_id: id.into(),
            window_start: start,
            window_end: start + 60_000,
            avg_hr: avg,
            min_hr: Some(avg - 1.0),
            max_hr: Some(avg + 1.0),
            count: Some(2),
            alert_type: t.into(),
            revision: 0,
            thresholds: None,
        }
    }

    fn episode(id: &str, state: EpisodeState, kind: &str) -> EpisodeRecord {
        EpisodeRecord {
            patient_id: id.into(),
            episode_id: format!("{id}-1"),
            state,
            kind: kind.into(),
            window_start: Some(0),
            window_end: Some(60_000),
            extreme_avg_hr: None,
        }
    }

    fn small(windows: usize, patients: usize) -> WardView {
        WardView::new(ViewConfig {
            windows_per_patient: windows,
            max_patients: patients,
            feed_len: 5,
        })
    }

    #[test]
    fn a_tile_shows_the_latest_window_and_its_state() {
        let mut v = WardView::new(ViewConfig::default());
        v.apply_alert(alert("p1", 0, 80.0, "normal"));
        v.apply_alert(alert("p1", 60_000, 101.5, "tachycardia"));
        let t = v.tile("p1").unwrap();
        assert_eq!(t.state, State::Tachycardia);
        assert_eq!(t.word, "tachycardia");
        assert_eq!(t.latest.as_ref().unwrap().avg, 101.5);
        assert_eq!(t.latest.as_ref().unwrap().count, Some(2));
        assert_eq!(t.spark, vec![80.0, 101.5]);
    }

    #[test]
    fn history_is_capped_and_kept_in_window_order() {
        let mut v = small(3, 10);
        for (i, start) in [4, 1, 3, 2, 5].into_iter().enumerate() {
            v.apply_alert(alert("p", start * 60_000, i as f64, "normal"));
        }
        let t = v.tile("p").unwrap();
        // Windows 3, 4, 5 remain, in window order whatever the arrival order.
        assert_eq!(t.spark, vec![2.0, 0.0, 4.0]);
        assert_eq!(t.latest.unwrap().start, 5 * 60_000);
        // Older than a full history: nothing to show.
        assert!(!v.apply_alert(alert("p", 0, 9.0, "normal")));
        assert_eq!(v.stats().ignored, 1);
    }

    #[test]
    fn a_higher_revision_replaces_a_window_and_a_repeat_is_ignored() {
        let mut v = small(30, 10);
        assert!(v.apply_alert(alert("p", 0, 99.0, "normal")));
        assert!(!v.apply_alert(alert("p", 0, 99.0, "normal")));
        let mut late = alert("p", 0, 104.0, "tachycardia");
        late.revision = 1;
        assert!(v.apply_alert(late.clone()));
        assert!(!v.apply_alert(late));
        let t = v.tile("p").unwrap();
        assert_eq!(t.spark, vec![104.0]);
        assert_eq!(t.state, State::Tachycardia);
        assert_eq!(v.stats().alerts, 2);
        assert_eq!(v.stats().ignored, 2);
    }

    #[test]
    fn signal_loss_overrides_the_window_state_until_cleared() {
        let mut v = small(30, 10);
        v.apply_alert(alert("p", 0, 80.0, "normal"));
        v.apply_episode(episode("p", EpisodeState::Raised, "signal_loss"));
        let t = v.tile("p").unwrap();
        assert_eq!(
            (t.state, t.word.as_str()),
            (State::SignalLost, "signal lost")
        );
        assert_eq!(t.episodes[0].kind, "signal_loss");
        v.apply_episode(episode("p", EpisodeState::Cleared, "signal_loss"));
        assert_eq!(v.tile("p").unwrap().state, State::Normal);
        // An episode alone makes a tile, without a window yet.
        v.apply_episode(episode("q", EpisodeState::Raised, "tachycardia"));
        let q = v.tile("q").unwrap();
        assert_eq!((q.state, q.latest), (State::NoData, None));
        assert_eq!(q.episodes.len(), 1);
    }

    #[test]
    fn new_and_unknown_types_get_their_own_words() {
        let mut v = small(30, 10);
        v.apply_alert(alert("a", 0, 70.0, "insufficient_data"));
        v.apply_alert(alert("b", 0, 70.0, "arrhythmia_suspected"));
        let a = v.tile("a").unwrap();
        assert_eq!(
            (a.state, a.word.as_str()),
            (State::InsufficientData, "insufficient data")
        );
        let b = v.tile("b").unwrap();
        assert_eq!(
            (b.state, b.word.as_str()),
            (State::Other, "arrhythmia suspected")
        );
    }

    #[test]
    fn the_least_recently_updated_patient_is_evicted() {
        let mut v = small(30, 2);
        v.apply_alert(alert("a", 0, 70.0, "normal"));
        v.apply_alert(alert("b", 0, 70.0, "normal"));
        v.apply_alert(alert("a", 60_000, 70.0, "normal"));
        v.take_changes();
        v.apply_alert(alert("c", 0, 70.0, "normal"));
        let ch = v.take_changes();
        assert_eq!(ch.removed, vec!["b".to_owned()]);
        assert_eq!(
            ch.tiles.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert!(v.tile("b").is_none());
        assert_eq!(v.stats().patients, 2);
        assert_eq!(v.stats().evicted, 1);
        // b comes back, evicting a (now the least recent); b is not reported both ways.
        v.apply_alert(alert("b", 120_000, 70.0, "normal"));
        let ch = v.take_changes();
        assert_eq!(ch.removed, vec!["a".to_owned()]);
        assert_eq!(ch.tiles[0].id, "b");
        assert_eq!(v.tile("b").unwrap().spark.len(), 1);
    }

    #[test]
    fn an_ignored_record_does_not_count_as_activity() {
        let mut v = small(30, 2);
        v.apply_alert(alert("a", 0, 70.0, "normal"));
        v.apply_alert(alert("b", 0, 70.0, "normal"));
        v.apply_alert(alert("a", 0, 70.0, "normal")); // a repeat
        v.apply_alert(alert("c", 0, 70.0, "normal"));
        assert!(v.tile("a").is_none(), "a was least recently changed");
        assert!(v.tile("b").is_some());
    }

    #[test]
    fn changes_list_each_changed_tile_once_and_only_new_feed_entries() {
        let mut v = small(30, 10);
        v.apply_alert(alert("p", 0, 120.0, "tachycardia"));
        v.apply_alert(alert("p", 60_000, 121.0, "tachycardia"));
        v.apply_alert(alert("q", 0, 70.0, "normal"));
        let ch = v.take_changes();
        assert_eq!(ch.tiles.len(), 2);
        // Normal windows stay out of the feed.
        assert_eq!(
            ch.feed.iter().map(|f| f.avg).collect::<Vec<_>>(),
            [Some(120.0), Some(121.0)]
        );
        assert!(v.take_changes().is_empty());
        v.apply_episode(episode("q", EpisodeState::Raised, "bradycardia"));
        let ch = v.take_changes();
        assert_eq!(ch.feed.len(), 1);
        assert_eq!(ch.feed[0].what, "episode");
        assert_eq!(ch.feed[0].state, Some(EpisodeState::Raised));
    }

    #[test]
    fn feed_is_capped_oldest_out() {
        let mut v = small(30, 10);
        for i in 0..8 {
            v.apply_alert(alert("p", i * 60_000, 130.0 + i as f64, "tachycardia"));
        }
        let s = v.snapshot();
        assert_eq!(s.feed.len(), 5);
        assert_eq!(s.feed[0].avg, Some(133.0));
        assert!(s.feed.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn snapshot_sorts_abnormal_first_then_by_id() {
        let mut v = small(30, 10);
        v.apply_alert(alert("n2", 0, 70.0, "normal"));
        v.apply_alert(alert("n1", 0, 70.0, "normal"));
        v.apply_alert(alert("t", 0, 130.0, "tachycardia"));
        v.apply_alert(alert("i", 0, 70.0, "insufficient_data"));
        v.apply_alert(alert("s", 0, 70.0, "normal"));
        v.apply_episode(episode("s", EpisodeState::Raised, "signal_loss"));
        let ids: Vec<_> = v.snapshot().tiles.into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["s", "t", "i", "n1", "n2"]);
    }

    #[test]
    fn episode_kinds_per_patient_are_bounded() {
        let mut v = small(30, 10);
        for k in 0..20 {
            v.apply_episode(episode("p", EpisodeState::Raised, &format!("kind{k}")));
        }
        assert_eq!(v.tile("p").unwrap().episodes.len(), MAX_EPISODE_KINDS);
    }

    #[test]
    fn a_thousand_patients_stay_within_the_cap() {
        let mut v = small(30, 1_000);
        for i in 0..3_000 {
            v.apply_alert(alert(&format!("p{i:04}"), 0, 70.0, "normal"));
        }
        let s = v.stats();
        assert_eq!((s.patients, s.evicted), (1_000, 2_000));
        assert!(v.tile("p2999").is_some() && v.tile("p1999").is_none());
        assert_eq!(v.by_touch.len(), 1_000);
    }
}
