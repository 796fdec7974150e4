//! What can go wrong between a monitor and Kafka, and how each fault is rendered and counted.
//!
//! Per reading, at most one of out-of-order, late, malformed or duplicate applies (one uniform
//! draw against the cumulative fractions), so every record has a single reason to be unusual and
//! the counts add up. Silences (a monitor sends nothing for a while) and clock skew (a device's
//! clock lags or leads) are per-patient conditions that compose with them.

use std::fmt;
use std::str::FromStr;

use hr_model::ParseErrorKind;
use serde::Serialize;

/// A malformed record, one per error kind that `hr_model::parse_event` rejects (and that a
/// monitor could plausibly send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Truncated JSON: the closing brace never arrived.
    InvalidJson,
    /// A JSON array of the three values instead of an object.
    NotObject,
    /// `heart_rate_bpm` is absent.
    MissingField,
    /// `heart_rate_bpm` is a string (`"94"`), the classic stringly-typed producer bug.
    WrongType,
    /// `patient_id` is `""`.
    EmptyPatientId,
    /// `timestamp` is not a date-time at all.
    BadTimestamp,
    /// `timestamp` is a date-time without a UTC offset.
    NaiveTimestamp,
    /// `heart_rate_bpm` is 999, outside any plausible range.
    BpmOutOfRange,
}

impl MalformedKind {
    /// Every kind, in the order a run cycles through them.
    pub const ALL: [Self; 8] = [
        Self::InvalidJson,
        Self::NotObject,
        Self::MissingField,
        Self::WrongType,
        Self::EmptyPatientId,
        Self::BadTimestamp,
        Self::NaiveTimestamp,
        Self::BpmOutOfRange,
    ];

    /// The error `hr_model::parse_event` reports for a record of this kind.
    pub const fn error_kind(self) -> ParseErrorKind {
        match self {
            Self::InvalidJson => ParseErrorKind::InvalidJson,
            Self::NotObject => ParseErrorKind::NotObject,
            Self::MissingField => ParseErrorKind::MissingField,
            Self::WrongType => ParseErrorKind::WrongType,
            Self::EmptyPatientId => ParseErrorKind::EmptyPatientId,
            Self::BadTimestamp => ParseErrorKind::BadTimestamp,
            Self::NaiveTimestamp => ParseErrorKind::NaiveTimestamp,
            Self::BpmOutOfRange => ParseErrorKind::BpmOutOfRange,
        }
    }

    /// The error code `hr_model` reports for this kind (and the name `--malformed-kinds` takes).
    pub const fn code(self) -> &'static str {
        self.error_kind().code()
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for MalformedKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or_else(|| {
                let codes: Vec<&str> = Self::ALL.iter().map(|k| k.code()).collect();
                format!("unknown malformed kind `{s}` (one of {})", codes.join(", "))
            })
    }
}

/// Writes a malformed record of `kind` for a reading into `out` (cleared first).
///
/// Each record looks like the reading it replaces with exactly one thing wrong, so the error a
/// parser reports is the one named by `kind`.
pub fn write_malformed(
    kind: MalformedKind,
    patient_id: &str,
    event_time_ms: i64,
    bpm: u16,
    out: &mut Vec<u8>,
) {
    out.clear();
    let field = |out: &mut Vec<u8>, name: &str| {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let string = |out: &mut Vec<u8>, s: &[u8]| {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    };
    let timestamp = |out: &mut Vec<u8>| {
        out.push(b'"');
        hr_model::write_timestamp(event_time_ms, out);
        out.push(b'"');
    };
    let mut digits = [0u8; 5];
    let bpm_text = format_u16(bpm, &mut digits);
    match kind {
        MalformedKind::NotObject => {
            out.push(b'[');
            string(out, patient_id.as_bytes());
            out.push(b',');
            timestamp(out);
            out.push(b',');
            out.extend_from_slice(bpm_text);
            out.push(b']');
            return;
        }
        _ => out.push(b'{'),
    }
    field(out, "patient_id");
    let id: &[u8] = if kind == MalformedKind::EmptyPatientId {
        b""
    } else {
        patient_id.as_bytes()
    };
    string(out, id);
    out.push(b',');
    field(out, "timestamp");
    match kind {
        MalformedKind::BadTimestamp => string(out, b"yesterday at noon"),
        MalformedKind::NaiveTimestamp => {
            timestamp(out);
            // Drop the `+00:00"` and close the string again: a local time with no zone.
            out.truncate(out.len() - 7);
            out.push(b'"');
        }
        _ => timestamp(out),
    }
    if kind != MalformedKind::MissingField {
        out.push(b',');
        field(out, "heart_rate_bpm");
        match kind {
            MalformedKind::WrongType => string(out, bpm_text),
            MalformedKind::BpmOutOfRange => out.extend_from_slice(b"999"),
            _ => out.extend_from_slice(bpm_text),
        }
    }
    if kind != MalformedKind::InvalidJson {
        out.push(b'}');
    }
}

fn format_u16(mut value: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Which faults to inject and how hard. Everything is off by default.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Fraction of readings delivered out of order: each is held back a random delay of more
    /// than one reading gap and at most [`out_of_order_max_ms`](Self::out_of_order_max_ms),
    /// and in any case until a newer valid reading has been sent.
    pub out_of_order: f64,
    /// The out-of-order bound, milliseconds. Keep it below the pipeline's out-of-orderness
    /// (5 s by default) so these readings still land in their windows.
    pub out_of_order_max_ms: i64,
    /// Fraction of readings delivered late: held back by
    /// [`late_delay_ms`](Self::late_delay_ms), and in any case until their own monitor has
    /// sent a valid reading taken that long after them (so they are late for a per-patient
    /// watermark as much as for the stream's).
    pub late: f64,
    /// How long a late reading is held back, milliseconds. To reach the pipeline's late topic it
    /// must exceed window size + out-of-orderness + allowed lateness (60 s + 5 s + 0 by default),
    /// so that the reading's window has fired wherever in the window the reading falls.
    pub late_delay_ms: i64,
    /// Fraction of readings replaced by a malformed record.
    pub malformed: f64,
    /// Which malformed kinds to produce, cycled in order (all of them by default).
    pub malformed_kinds: Vec<MalformedKind>,
    /// Fraction of readings sent twice.
    pub duplicate: f64,
    /// Expected silences per patient per hour of event time.
    pub silence_rate_per_hour: f64,
    /// How long a silent monitor sends nothing, milliseconds: the shortest silence when
    /// [`silence_max_ms`](Self::silence_max_ms) is set, every silence's length otherwise.
    pub silence_ms: i64,
    /// The longest silence, milliseconds: each silence's length is then drawn uniformly from
    /// `silence_ms..=silence_max_ms`. `None` (or a value equal to `silence_ms`) gives every
    /// silence the same length and spends no random draw on it, so such runs keep their bytes.
    pub silence_max_ms: Option<i64>,
    /// Silences at fixed times, whatever the rate (a monitor unplugged on purpose, as in a
    /// demo or a test); they compose with the random ones.
    pub planned_silences: Vec<PlannedSilence>,
    /// Devices whose clock is off: `(patient_id, skew_ms)`, negative lags, positive leads.
    pub clock_skew: Vec<(String, i64)>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            out_of_order: 0.0,
            out_of_order_max_ms: 4_000,
            late: 0.0,
            late_delay_ms: 90_000,
            malformed: 0.0,
            malformed_kinds: MalformedKind::ALL.to_vec(),
            duplicate: 0.0,
            silence_rate_per_hour: 0.0,
            silence_ms: 180_000,
            silence_max_ms: None,
            planned_silences: Vec::new(),
            clock_skew: Vec::new(),
        }
    }
}

/// A monitor unplugged at a fixed time: `patient_id` sends nothing from `after_ms` after the
/// run's start for `duration_ms` (simulation clock, so a skewed device's gap is shifted in its
/// timestamps like everything else it sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSilence {
    /// `p001`, ...
    pub patient_id: String,
    /// When the monitor stops, milliseconds after the run's start.
    pub after_ms: i64,
    /// How long it stays silent, milliseconds.
    pub duration_ms: i64,
}

impl FromStr for PlannedSilence {
    type Err = String;

    /// `PATIENT@AT+DURATION`, e.g. `p003@40s+60s`: p003 stops 40 s into the run for 60 s.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected PATIENT@AT+DURATION (e.g. p003@40s+60s), got `{s}`");
        let (patient, when) = s.split_once('@').ok_or_else(bad)?;
        let (at, duration) = when.split_once('+').ok_or_else(bad)?;
        let parse = |d: &str| hr_model::parse_duration_ms(d.trim()).map_err(|e| e.to_string());
        let patient_id = patient.trim();
        if patient_id.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            patient_id: patient_id.to_owned(),
            after_ms: parse(at)?,
            duration_ms: parse(duration)?,
        })
    }
}

impl FaultConfig {
    /// Whether any per-reading fault is on (when none is, no random draw is spent on faults).
    pub(crate) fn any_per_reading(&self) -> bool {
        self.out_of_order > 0.0 || self.late > 0.0 || self.malformed > 0.0 || self.duplicate > 0.0
    }
}

/// The unusual thing about one record, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Delivered after newer readings, within the out-of-order bound.
    OutOfOrder,
    /// Delivered after the late delay: beyond the bound and the reading's window.
    Late,
    /// The second copy of a reading that was also delivered normally just before.
    Duplicate,
    /// Not a valid event; replaces the reading it was made from.
    Malformed(MalformedKind),
}

/// How many times each fault happened: per patient and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Records delivered out of order within the bound.
    pub out_of_order: u64,
    /// Records delivered late, beyond the bound.
    pub late: u64,
    /// Extra copies sent.
    pub duplicate: u64,
    /// Malformed records, by kind code (every kind listed, zeros included).
    pub malformed: MalformedCounts,
    /// Silences that began.
    pub silences: u64,
    /// Readings a silent monitor did not send.
    pub silenced_readings: u64,
    /// Records stamped by a skewed clock.
    pub skewed: u64,
}

impl FaultCounts {
    /// Records that reach the stream's dead-letter queue: the malformed ones.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.total()
    }

    pub(crate) fn add(&mut self, other: &Self) {
        self.out_of_order += other.out_of_order;
        self.late += other.late;
        self.duplicate += other.duplicate;
        for k in MalformedKind::ALL {
            self.malformed.0[k.index()] += other.malformed.0[k.index()];
        }
        self.silences += other.silences;
        self.silenced_readings += other.silenced_readings;
        self.skewed += other.skewed;
    }

    pub(crate) fn count(&mut self, fault: Option<Fault>) {
        match fault {
            None => {}
            Some(Fault::OutOfOrder) => self.out_of_order += 1,
            Some(Fault::Late) => self.late += 1,
            Some(Fault::Duplicate) => self.duplicate += 1,
            Some(Fault::Malformed(k)) => self.malformed.0[k.index()] += 1,
        }
    }
}

/// Malformed record counts by kind; serialises as `{"invalid_json": n, ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MalformedCounts([u64; 8]);

impl MalformedCounts {
    /// How many malformed records of `kind` were sent.
    pub fn get(&self, kind: MalformedKind) -> u64 {
        self.0[kind.index()]
    }

    /// All malformed records.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for MalformedCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(MalformedKind::ALL.len()))?;
        for k in MalformedKind::ALL {
            map.serialize_entry(k.code(), &self.0[k.index()])?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_763_536_523_123;

    #[test]
    fn every_malformed_kind_fails_with_its_own_code() {
        let mut buf = Vec::new();
        for kind in MalformedKind::ALL {
            write_malformed(kind, "p007", T, 94, &mut buf);
            let text = String::from_utf8(buf.clone()).unwrap();
            let err = hr_model::parse_event(&buf).expect_err(&text);
            assert_eq!(err.kind(), kind.error_kind(), "{text}");
        }
    }

    #[test]
    fn malformed_records_look_like_the_reading_they_replace() {
        let mut buf = Vec::new();
        write_malformed(MalformedKind::WrongType, "p007", T, 94, &mut buf);
        assert_eq!(
            buf,
            br#"{"patient_id":"p007","timestamp":"2025-11-19T07:15:23.123000+00:00","heart_rate_bpm":"94"}"#
        );
        write_malformed(MalformedKind::NaiveTimestamp, "p007", T, 94, &mut buf);
        assert_eq!(
            buf,
            br#"{"patient_id":"p007","timestamp":"2025-11-19T07:15:23.123000","heart_rate_bpm":94}"#
        );
        write_malformed(MalformedKind::NotObject, "p007", T, 7, &mut buf);
        assert_eq!(buf, br#"["p007","2025-11-19T07:15:23.123000+00:00",7]"#);
    }

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for k in MalformedKind::ALL {
            assert_eq!(k.code().parse::<MalformedKind>(), Ok(k));
        }
        assert!(
            "nope"
                .parse::<MalformedKind>()
                .unwrap_err()
                .contains("not_object")
        );
    }

    #[test]
    fn counts_serialise_every_kind() {
        let mut c = FaultCounts::default();
        c.count(Some(Fault::Malformed(MalformedKind::BadTimestamp)));
        c.count(Some(Fault::Late));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["malformed"]["bad_timestamp"], 1);
        assert_eq!(v["malformed"]["invalid_json"], 0);
        assert_eq!(v["late"], 1);
        assert_eq!(c.malformed_total(), 1);
    }
}
