//! The heart-rate reading as it travels through the system.

use serde::Serialize;
use serde::ser::{self, SerializeStruct, Serializer};

use crate::timestamp::{TIMESTAMP_LEN, timestamp_bytes, write_timestamp};

/// One heart-rate reading from one patient's monitor.
///
/// On the wire it is the seed's JSON shape,
/// `{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":94}`;
/// in memory the timestamp is epoch milliseconds (`event_time_ms`), which is what windows use.
///
/// Its serde implementations speak that wire shape too (timestamp as RFC 3339 text,
/// deserialisation validated with [`Validation::DEFAULT`](crate::Validation::DEFAULT)), so an `Event` inside any serde
/// structure reads and writes the same JSON as [`Event::to_json`] and
/// [`parse_event`](crate::parse_event).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// The patient (also the Kafka key, so one patient stays in one partition).
    pub patient_id: String,
    /// Event time: when the monitor took the reading, epoch milliseconds UTC. Only
    /// [`MIN_TIMESTAMP_MS`](crate::MIN_TIMESTAMP_MS)`..=`[`MAX_TIMESTAMP_MS`](crate::MAX_TIMESTAMP_MS)
    /// (years 0000 to 9999) can be written out.
    pub event_time_ms: i64,
    /// Beats per minute.
    pub heart_rate_bpm: u16,
}

impl Event {
    /// The event as one line of the seed's JSON (no trailing newline), timestamp in UTC with
    /// microsecond digits: `{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123000+00:00","heart_rate_bpm":94}`.
    ///
    /// # Panics
    /// Panics if `event_time_ms` is outside the years 0000 to 9999 (see
    /// [`format_timestamp`](crate::format_timestamp)).
    ///
    /// # Example
    /// ```
    /// use hr_model::{Event, parse_event};
    /// let event = Event { patient_id: "p001".into(), event_time_ms: 1_763_536_523_123, heart_rate_bpm: 94 };
    /// let json = event.to_json();
    /// assert_eq!(json, r#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123000+00:00","heart_rate_bpm":94}"#);
    /// assert_eq!(parse_event(json.as_bytes()), Ok(event));
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.json_len_hint());
        self.write_json(&mut out);
        String::from_utf8(out).expect("serialised JSON is UTF-8")
    }

    /// Appends [`to_json`](Self::to_json)'s bytes to `out`. Reusing one buffer makes this
    /// allocation-free once the buffer has grown, which is what a producer writing millions of
    /// events a second wants.
    ///
    /// # Panics
    /// As [`to_json`](Self::to_json).
    ///
    /// # Example
    /// ```
    /// use hr_model::Event;
    /// let mut buf = Vec::new();
    /// for bpm in [61, 62] {
    ///     buf.clear();
    ///     Event { patient_id: "p1".into(), event_time_ms: 0, heart_rate_bpm: bpm }.write_json(&mut buf);
    ///     assert!(buf.ends_with(format!(r#""heart_rate_bpm":{bpm}}}"#).as_bytes()));
    /// }
    /// ```
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(self.json_len_hint());
        out.extend_from_slice(br#"{"patient_id":"#);
        // serde_json does the escaping; writing into a Vec cannot fail.
        serde_json::to_writer(&mut *out, self.patient_id.as_str())
            .expect("writing a string into a Vec cannot fail");
        out.extend_from_slice(br#","timestamp":""#);
        write_timestamp(self.event_time_ms, out);
        out.extend_from_slice(br#"","heart_rate_bpm":"#);
        write_u16(self.heart_rate_bpm, out);
        out.push(b'}');
    }

    fn json_len_hint(&self) -> usize {
        const FIXED: usize = r#"{"patient_id":"","timestamp":"","heart_rate_bpm":}"#.len();
        FIXED + self.patient_id.len() + 2 + TIMESTAMP_LEN + 5
    }
}

fn write_u16(value: u16, out: &mut Vec<u8>) {
    let mut buf = [0u8; 5];
    let mut start = buf.len();
    let mut rest = value;
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[start..]);
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let timestamp = timestamp_bytes(self.event_time_ms).ok_or_else(|| {
            ser::Error::custom(format_args!(
                "event time {} ms is outside the years 0000 to 9999",
                self.event_time_ms
            ))
        })?;
        let timestamp = std::str::from_utf8(&timestamp).expect("timestamps are ASCII");
        let mut s = serializer.serialize_struct("Event", 3)?;
        s.serialize_field("patient_id", &self.patient_id)?;
        s.serialize_field("timestamp", timestamp)?;
        s.serialize_field("heart_rate_bpm", &self.heart_rate_bpm)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, parse_event};

    fn event(id: &str, ms: i64, bpm: u16) -> Event {
        Event {
            patient_id: id.into(),
            event_time_ms: ms,
            heart_rate_bpm: bpm,
        }
    }

    #[test]
    fn seed_shape() {
        let e = event("p001", 1_763_536_523_123, 94);
        let expected = r#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123000+00:00","heart_rate_bpm":94}"#;
        assert_eq!(e.to_json(), expected);
        assert_eq!(serde_json::to_string(&e).unwrap(), expected);
        assert_eq!(serde_json::from_str::<Event>(expected).unwrap(), e);
    }

    #[test]
    fn write_json_appends_and_escapes() {
        let mut out = b"[".to_vec();
        event("a\"b\\c\n\u{1}é", -1, 0).write_json(&mut out);
        out.push(b',');
        event("z", 0, u16::MAX).write_json(&mut out);
        out.push(b']');
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"[{"patient_id":"a\"b\\c\n\u0001é","timestamp":"1969-12-31T23:59:59.999000+00:00","heart_rate_bpm":0},"#,
                r#"{"patient_id":"z","timestamp":"1970-01-01T00:00:00.000000+00:00","heart_rate_bpm":65535}]"#
            )
        );
        let back: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        assert_eq!(back[0]["patient_id"], "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn extremes_round_trip() {
        for ms in [MIN_TIMESTAMP_MS, -1, 0, MAX_TIMESTAMP_MS] {
            let e = event("p", ms, 20);
            assert_eq!(parse_event(e.to_json().as_bytes()), Ok(e));
        }
    }

    #[test]
    fn serde_refuses_what_cannot_be_written_or_is_invalid() {
        let err = serde_json::to_string(&event("p", MAX_TIMESTAMP_MS + 1, 60)).unwrap_err();
        assert!(err.to_string().contains("outside the years"), "{err}");
        let naive = r#"{"patient_id":"p","timestamp":"2025-11-19T07:15:23","heart_rate_bpm":94}"#;
        let err = serde_json::from_str::<Event>(naive).unwrap_err();
        assert!(err.to_string().contains("no UTC offset"), "{err}");
        let blank = r#"{"patient_id":" ","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":94}"#;
        assert!(serde_json::from_str::<Event>(blank).is_err());
        let slow = r#"{"patient_id":"p","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":5}"#;
        assert!(serde_json::from_str::<Event>(slow).is_err());
    }

    #[test]
    #[should_panic(expected = "outside the years 0000 to 9999")]
    fn to_json_panics_out_of_range() {
        event("p", i64::MIN, 60).to_json();
    }
}
