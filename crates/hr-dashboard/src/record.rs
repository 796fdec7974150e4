//! The records the dashboard reads, parsed leniently.
//!
//! The alert and episode formats are still growing (new alert types, thresholds, episode fields), and
//! a dashboard that stops showing a ward because a producer added a field is worse than one that
//! shows what it understands. So a record is read with [`hr_model::Alert`] or
//! [`hr_model::Episode`] while that still deserialises it, and otherwise field by field from JSON: only what a tile cannot do without
//! (patient, window start, average) is required, and unknown fields are ignored.

pub use hr_model::EpisodeState;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a record could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The value is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A field the dashboard needs is absent or of the wrong type.
    #[error("field `{0}` is missing or not {1}")]
    Field(&'static str, &'static str),
    /// A text field is longer than the view keeps (see [`MAX_ID_BYTES`], [`MAX_WORD_BYTES`]).
    #[error("field `{field}` is {len} bytes long, more than {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The longest patient or episode id kept: the view is bounded in patients, and so in bytes
/// only if each id is.
pub const MAX_ID_BYTES: usize = 256;
/// The longest alert type or episode kind kept.
pub const MAX_WORD_BYTES: usize = 64;

fn within(field: &'static str, value: &str, max: usize) -> Result<(), RecordError> {
    if value.len() > max {
        return Err(RecordError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// The classification thresholds an alert says it used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThresholdsSeen {
    /// Tachycardia above this average, if given.
    pub tachycardia_above: Option<f64>,
    /// Bradycardia below this average, if given.
    pub bradycardia_below: Option<f64>,
}

/// One fired window for one patient, as the dashboard needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// The patient.
    pub patient_id: String,
    /// Window start, epoch ms.
    pub window_start: i64,
    /// Window end, epoch ms (the start when absent).
    pub window_end: i64,
    /// Mean heart rate in the window.
    pub avg_hr: f64,
    /// Lowest reading, if given.
    pub min_hr: Option<f64>,
    /// Highest reading, if given.
    pub max_hr: Option<f64>,
    /// Number of readings, if given.
    pub count: Option<u64>,
    /// The classification as sent (`normal`, `tachycardia`, `bradycardia`, `insufficient_data`, or
    /// a type this dashboard does not know yet).
    pub alert_type: String,
    /// Re-firing number within allowed lateness (0 when absent).
    pub revision: u32,
    /// The thresholds the alert says it used, if it says.
    pub thresholds: Option<ThresholdsSeen>,
}

/// One episode record (`heart_rate_episodes`).
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    /// The patient.
    pub patient_id: String,
    /// The episode's id as sent (numbers are kept as their decimal text); empty when absent.
    pub episode_id: String,
    /// Raised or cleared.
    pub state: EpisodeState,
    /// `tachycardia`, `bradycardia`, `signal_loss`, or a kind this dashboard does not know yet.
    pub kind: String,
    /// Start of the window that raised or cleared it, epoch ms, if given.
    pub window_start: Option<i64>,
    /// End of that window, epoch ms, if given.
    pub window_end: Option<i64>,
    /// The episode's extreme (peak or lowest) average, if given.
    pub extreme_avg_hr: Option<f64>,
}

/// Parses an alert value; `key` (the record key, the patient id) stands in for a missing
/// `patient_id`.
///
/// # Errors
/// [`RecordError`] when the value is not a JSON object, lacks the patient, `window_start` or
/// `avg_hr`, or has a patient id or alert type longer than the view keeps.
///
/// # Example
/// ```
/// let json = br#"{"patient_id":"p1","window_start":0,"window_end":60000,"avg_hr":101.5,
///                 "min_hr":100,"max_hr":103,"count":2,"alert_type":"insufficient_data",
///                 "revision":0,"thresholds":{"tachycardia_above":90}}"#;
/// let a = hr_dashboard::parse_alert(None, json).unwrap();
/// assert_eq!(a.alert_type, "insufficient_data");
/// assert_eq!(a.thresholds.unwrap().tachycardia_above, Some(90.0));
/// ```
pub fn parse_alert(key: Option<&[u8]>, payload: &[u8]) -> Result<AlertRecord, RecordError> {
    let a = read_alert(key, payload)?;
    within("patient_id", &a.patient_id, MAX_ID_BYTES)?;
    within("alert_type", &a.alert_type, MAX_WORD_BYTES)?;
    Ok(a)
}

fn read_alert(key: Option<&[u8]>, payload: &[u8]) -> Result<AlertRecord, RecordError> {
    if let Ok(a) = serde_json::from_slice::<hr_model::Alert>(payload) {
        let thresholds = a.thresholds.map(|t| ThresholdsSeen {
            tachycardia_above: Some(t.tachycardia_above),
            bradycardia_below: Some(t.bradycardia_below),
        });
        return Ok(AlertRecord {
            patient_id: a.patient_id,
            window_start: a.window_start,
            window_end: a.window_end,
            avg_hr: a.avg_hr,
            min_hr: Some(f64::from(a.min_hr)),
            max_hr: Some(f64::from(a.max_hr)),
            count: Some(a.count),
            alert_type: a.alert_type.as_str().to_owned(),
            revision: a.revision,
            thresholds,
        });
    }
    let o = object(payload)?;
    let patient_id = patient(&o, key)?;
    let window_start =
        int(&o, "window_start").ok_or(RecordError::Field("window_start", "an integer"))?;
    let avg_hr = num(&o, "avg_hr").ok_or(RecordError::Field("avg_hr", "a number"))?;
    let thresholds = thresholds(&o);
    let alert_type = match o.get("alert_type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_owned(),
        // No type sent: classify with the thresholds it names (hr-model's rule, not one of ours).
        _ => {
            let mut t = hr_model::Thresholds::DEFAULT;
            if let Some(seen) = thresholds {
                t.tachycardia_above = seen.tachycardia_above.unwrap_or(t.tachycardia_above);
                t.bradycardia_below = seen.bradycardia_below.unwrap_or(t.bradycardia_below);
            }
            hr_model::classify_window(avg_hr, &t).as_str().to_owned()
        }
    };
    Ok(AlertRecord {
        patient_id,
        window_start,
        window_end: int(&o, "window_end").unwrap_or(window_start),
        avg_hr,
        min_hr: num(&o, "min_hr"),
        max_hr: num(&o, "max_hr"),
        count: o.get("count").and_then(Value::as_u64),
        alert_type,
        revision: o
            .get("revision")
            .and_then(Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
        thresholds,
    })
}

/// Parses an episode value: with [`hr_model::Episode`] while that reads it, otherwise field by
/// field; `key` stands in for a missing `patient_id`.
///
/// Read field by field, the window may come as `window_start`/`window_end` or as an object `window` with
/// `start`/`end`; the extreme average under any of `extreme_avg_hr`, `peak_avg_hr`,
/// `lowest_avg_hr`, `extreme_avg`, `avg_hr`.
///
/// # Errors
/// [`RecordError`] when the value is not a JSON object, lacks the patient, a `state` of
/// `raised`/`cleared` or a `kind`, or has an id or kind longer than the view keeps.
pub fn parse_episode(key: Option<&[u8]>, payload: &[u8]) -> Result<EpisodeRecord, RecordError> {
    let e = read_episode(key, payload)?;
    within("patient_id", &e.patient_id, MAX_ID_BYTES)?;
    within("episode_id", &e.episode_id, MAX_ID_BYTES)?;
    within("kind", &e.kind, MAX_WORD_BYTES)?;
    Ok(e)
}

fn read_episode(key: Option<&[u8]>, payload: &[u8]) -> Result<EpisodeRecord, RecordError> {
    if let Ok(e) = serde_json::from_slice::<hr_model::Episode>(payload) {
        return Ok(EpisodeRecord {
            patient_id: e.patient_id,
            episode_id: e.episode_id,
            state: e.state,
            kind: e.kind.as_str().to_owned(),
            window_start: Some(e.window_start),
            window_end: Some(e.window_end),
            extreme_avg_hr: e.extreme_avg_hr,
        });
    }
    let o = object(payload)?;
    let patient_id = patient(&o, key)?;
    let state = match o.get("state").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("raised") => EpisodeState::Raised,
        Some(s) if s.eq_ignore_ascii_case("cleared") => EpisodeState::Cleared,
        _ => return Err(RecordError::Field("state", "\"raised\" or \"cleared\"")),
    };
    let kind = match o.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => return Err(RecordError::Field("kind", "a string")),
    };
    let episode_id = match o.get("episode_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let window = o.get("window").and_then(Value::as_object);
    let window_start = int(&o, "window_start").or_else(|| window.and_then(|w| int(w, "start")));
    let window_end = int(&o, "window_end").or_else(|| window.and_then(|w| int(w, "end")));
    let extreme_avg_hr = [
        "extreme_avg_hr",
        "peak_avg_hr",
        "lowest_avg_hr",
        "extreme_avg",
        "avg_hr",
    ]
    .iter()
    .find_map(|k| num(&o, k));
    Ok(EpisodeRecord {
        patient_id,
        episode_id,
        state,
        kind,
        window_start,
        window_end,
        extreme_avg_hr,
    })
}

fn object(payload: &[u8]) -> Result<Map<String, Value>, RecordError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(RecordError::NotJson(format!("a JSON {}", kind_of(&other)))),
        Err(e) => Err(RecordError::NotJson(e.to_string())),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn patient(o: &Map<String, Value>, key: Option<&[u8]>) -> Result<String, RecordError> {
    match o.get("patient_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => key
            .filter(|k| !k.is_empty())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .ok_or(RecordError::Field("patient_id", "a non-empty string")),
    }
}

fn int(o: &Map<String, Value>, k: &str) -> Option<i64> {
    let v = o.get(k)?;
    v.as_i64().or_else(|| {
        // 60000.0 is an integer too; 60000.5 is not a window boundary.
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

fn num(o: &Map<String, Value>, k: &str) -> Option<f64> {
    o.get(k).and_then(Value::as_f64).filter(|f| f.is_finite())
}

fn thresholds(o: &Map<String, Value>) -> Option<ThresholdsSeen> {
    let t = o.get("thresholds")?.as_object()?;
    let seen = ThresholdsSeen {
        tachycardia_above: num(t, "tachycardia_above"),
        bradycardia_below: num(t, "bradycardia_below"),
    };
    (seen.tachycardia_above.is_some() || seen.bradycardia_below.is_some()).then_some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: &[u8] = br#"{"patient_id":"p001","window_start":60000,"window_end":120000,"avg_hr":101.5,"min_hr":100,"max_hr":103,"count":2,"alert_type":"tachycardia","revision":1}"#;

    #[test]
    fn todays_alert_reads_through_hr_model() {
        let a = parse_alert(Some(b"p001"), TODAY).unwrap();
        assert_eq!(a.patient_id, "p001");
        assert_eq!((a.window_start, a.window_end), (60_000, 120_000));
        assert_eq!(a.avg_hr, 101.5);
        assert_eq!(
            (a.min_hr, a.max_hr, a.count),
            (Some(100.0), Some(103.0), Some(2))
        );
        assert_eq!(a.alert_type, "tachycardia");
        assert_eq!(a.revision, 1);
        assert_eq!(a.thresholds, None);
    }

    #[test]
    fn new_fields_and_types_do_not_break_it() {
        let v = br#"{"patient_id":"p2","window_start":0,"window_end":10000,"avg_hr":72,"min_hr":70,
            "max_hr":75,"count":1,"alert_type":"insufficient_data","revision":0,
            "thresholds":{"tachycardia_above":120.0,"bradycardia_below":40,"min_readings":5},
            "something_new":[1,2]}"#;
        let a = parse_alert(None, v).unwrap();
        assert_eq!(a.alert_type, "insufficient_data");
        assert_eq!(a.avg_hr, 72.0);
        assert_eq!(
            a.thresholds,
            Some(ThresholdsSeen {
                tachycardia_above: Some(120.0),
                bradycardia_below: Some(40.0)
            })
        );
        // The typed path keeps the thresholds too.
        let typed = br#"{"patient_id":"p3","window_start":0,"window_end":1,"avg_hr":80.0,"min_hr":80,"max_hr":80,"count":1,"alert_type":"normal","revision":0,"thresholds":{"tachycardia_above":95}}"#;
        let a = parse_alert(None, typed).unwrap();
        assert_eq!(a.thresholds.unwrap().tachycardia_above, Some(95.0));
        assert_eq!(a.thresholds.unwrap().bradycardia_below, None);
    }

    #[test]
    fn missing_optional_fields_are_tolerated_and_type_is_classified() {
        let a = parse_alert(Some(b"from-key"), br#"{"window_start":5,"avg_hr":130.2}"#).unwrap();
        assert_eq!(a.patient_id, "from-key");
        assert_eq!(a.window_end, 5);
        assert_eq!((a.min_hr, a.max_hr, a.count), (None, None, None));
        assert_eq!(a.alert_type, "tachycardia");
        let a = parse_alert(
            None,
            br#"{"patient_id":"x","window_start":5,"avg_hr":45,"thresholds":{"bradycardia_below":40}}"#,
        )
        .unwrap();
        assert_eq!(
            a.alert_type, "normal",
            "45 is above the alert's own 40 bpm threshold"
        );
    }

    #[test]
    fn unusable_alerts_say_why() {
        assert!(matches!(
            parse_alert(None, b"not json"),
            Err(RecordError::NotJson(_))
        ));
        assert!(
            matches!(parse_alert(None, b"[1]"), Err(RecordError::NotJson(m)) if m.contains("array"))
        );
        assert_eq!(
            parse_alert(None, br#"{"window_start":1,"avg_hr":80}"#),
            Err(RecordError::Field("patient_id", "a non-empty string"))
        );
        assert_eq!(
            parse_alert(None, br#"{"patient_id":"p","avg_hr":80}"#),
            Err(RecordError::Field("window_start", "an integer"))
        );
        assert_eq!(
            parse_alert(
                None,
                br#"{"patient_id":"p","window_start":1,"avg_hr":"80"}"#
            ),
            Err(RecordError::Field("avg_hr", "a number"))
        );
    }

    #[test]
    fn episodes_read_in_either_window_shape() {
        let e = parse_episode(
            None,
            br#"{"patient_id":"p9","episode_id":"p9-3","state":"raised","kind":"signal_loss","window_start":0,"window_end":60000,"peak_avg_hr":null,"x":1}"#,
        )
        .unwrap();
        assert_eq!(e.state, EpisodeState::Raised);
        assert_eq!(e.kind, "signal_loss");
        assert_eq!(e.episode_id, "p9-3");
        assert_eq!((e.window_start, e.window_end), (Some(0), Some(60_000)));
        assert_eq!(e.extreme_avg_hr, None);
        let e = parse_episode(
            Some(b"p7"),
            br#"{"episode_id":12,"state":"cleared","kind":"tachycardia","window":{"start":1,"end":2},"extreme_avg_hr":131.5}"#,
        )
        .unwrap();
        assert_eq!(e.patient_id, "p7");
        assert_eq!(e.episode_id, "12");
        assert_eq!(e.state, EpisodeState::Cleared);
        assert_eq!((e.window_start, e.window_end), (Some(1), Some(2)));
        assert_eq!(e.extreme_avg_hr, Some(131.5));
    }

    #[test]
    fn the_pipelines_episode_reads_through_hr_model() {
        let sent = hr_model::Episode {
            patient_id: "p4".into(),
            episode_id: "p4:signal_loss:60000".into(),
            state: EpisodeState::Raised,
            kind: hr_model::EpisodeKind::SignalLoss,
            window_start: 60_000,
            window_end: 90_000,
            extreme_avg_hr: None,
        };
        let e = parse_episode(None, sent.to_json().as_bytes()).unwrap();
        assert_eq!(e.kind, "signal_loss");
        assert_eq!(e.episode_id, "p4:signal_loss:60000");
        assert_eq!((e.window_start, e.window_end), (Some(60_000), Some(90_000)));
    }

    #[test]
    fn overlong_text_is_refused_so_the_view_stays_bounded() {
        let id = "p".repeat(MAX_ID_BYTES + 1);
        let v = format!(r#"{{"patient_id":"{id}","window_start":0,"avg_hr":80}}"#);
        assert_eq!(
            parse_alert(None, v.as_bytes()),
            Err(RecordError::TooLong {
                field: "patient_id",
                len: MAX_ID_BYTES + 1,
                max: MAX_ID_BYTES
            })
        );
        let ok = format!(
            r#"{{"patient_id":"{}","window_start":0,"avg_hr":80}}"#,
            &id[1..]
        );
        assert!(parse_alert(None, ok.as_bytes()).is_ok());
        let kind = "k".repeat(MAX_WORD_BYTES + 1);
        let v = format!(r#"{{"patient_id":"p","state":"raised","kind":"{kind}"}}"#);
        assert!(matches!(
            parse_episode(None, v.as_bytes()),
            Err(RecordError::TooLong { field: "kind", .. })
        ));
    }

    #[test]
    fn unusable_episodes_say_why() {
        assert_eq!(
            parse_episode(None, br#"{"patient_id":"p","state":"paused","kind":"x"}"#),
            Err(RecordError::Field("state", "\"raised\" or \"cleared\""))
        );
        assert_eq!(
            parse_episode(None, br#"{"patient_id":"p","state":"raised"}"#),
            Err(RecordError::Field("kind", "a string"))
        );
    }
}
