//! From bytes off the wire to a validated [`Event`], or a [`ParseError`] that says why not.
//!
//! serde_json does the JSON, in two readings. The first decodes the three known fields as the
//! types a valid message has (strings borrowed from the input, the heart rate as an integer),
//! skips every other field, and gives up at the first surprise. Nearly every message stops
//! there. A message the first reading gives up on is read again: a map visitor borrows each
//! known field's value as a [`RawValue`] (its exact JSON text), and the fields are checked
//! one by one from that text, so an error can say which field is wrong, what type it has and
//! quote it as sent. The second reading alone decides errors; the first can only say "valid"
//! (a property test holds them to agreeing).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Field, ParseError, quoted_raw, truncate_raw};
use crate::event::Event;
use crate::timestamp::parse_timestamp;

/// The plausible-range check applied to `heart_rate_bpm`.
///
/// The default accepts 20 to 300 bpm inclusive ([`Validation::DEFAULT`]):
///
/// - **20 bpm** is below the slowest rhythms worth alerting on (ventricular escape rhythms in
///   complete heart block run at about 20 to 40, trained athletes asleep reach the 30s), so a
///   lower number from a monitor is far more often a lead-off or motion artefact than a
///   heartbeat. Bradycardia (window average below 50) stays well inside the range.
/// - **300 bpm** is about as fast as a human ventricle is ever driven (pre-excited atrial
///   fibrillation and infant supraventricular tachycardia approach it); beyond it the number
///   is noise. Tachycardia (average above 100) stays well inside the range.
/// - **0** is refused: it is what a monitor with a detached lead reports as readily as
///   asystole, and folding it into an average would raise a bradycardia alert for a sensor
///   fault. A monitor that stops sending is reported as signal loss instead (hr-pipeline's
///   `--silence-after`, built on the window engine's key idleness).
///
/// Refused readings are not dropped: the pipeline routes them to the dead-letter topic with
/// the code `bpm_out_of_range`. Deployments with neonatal monitors or different devices set
/// their own range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Validation {
    /// Lowest accepted heart rate, inclusive.
    pub min_bpm: u16,
    /// Highest accepted heart rate, inclusive. If it is below `min_bpm`, nothing is accepted.
    pub max_bpm: u16,
}

impl Validation {
    /// 20 to 300 bpm inclusive; see the type's documentation for why.
    pub const DEFAULT: Self = Self {
        min_bpm: 20,
        max_bpm: 300,
    };

    /// Parses and validates one JSON message with this range.
    ///
    /// The message is a JSON object with `patient_id` (a non-blank string), `timestamp` (an
    /// RFC 3339 string with a UTC offset, see [`parse_timestamp`]) and `heart_rate_bpm` (a
    /// JSON integer within `min_bpm..=max_bpm`). Other fields are ignored; whitespace around
    /// the object is allowed.
    ///
    /// # Errors
    /// One [`ParseError`] per way to be invalid. When a message is wrong in several ways, the
    /// first of these wins: not UTF-8, not JSON, not an object, a duplicate field, then each
    /// field in the order `patient_id`, `timestamp`, `heart_rate_bpm` (missing, then wrong
    /// type, then bad value).
    ///
    /// # Example
    /// ```
    /// use hr_model::{ParseErrorKind, Validation};
    /// let neonatal = Validation { min_bpm: 60, max_bpm: 320 };
    /// let msg = br#"{"patient_id":"n7","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":310}"#;
    /// assert_eq!(neonatal.parse(msg).unwrap().heart_rate_bpm, 310);
    /// let err = Validation::default().parse(msg).unwrap_err();
    /// assert_eq!(err.kind(), ParseErrorKind::BpmOutOfRange);
    /// assert_eq!(err.to_string(), "field `heart_rate_bpm` is outside the plausible range 20..=300: 310");
    /// ```
    pub fn parse(&self, bytes: &[u8]) -> Result<Event, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        // Valid messages, nearly all of them, take one typed pass. Anything that pass does
        // not accept is read again, field by field from its JSON text, to say exactly why;
        // that second reading is the authority on errors, the first only ever says "valid".
        match self.parse_valid(text) {
            Some(event) => Ok(event),
            None => self.diagnose(text),
        }
    }

    fn parse_valid(&self, text: &str) -> Option<Event> {
        let mut de = serde_json::Deserializer::from_str(text);
        let typed = de.deserialize_map(TypedVisitor).ok()?;
        de.end().ok()?;
        let patient_id = typed.patient_id?;
        if typed.duplicate || patient_id.trim().is_empty() {
            return None;
        }
        Some(Event {
            event_time_ms: parse_timestamp(&typed.timestamp?).ok()?,
            heart_rate_bpm: self.in_range(typed.heart_rate_bpm?)?,
            patient_id: patient_id.into_owned(),
        })
    }

    fn diagnose(&self, text: &str) -> Result<Event, ParseError> {
        let fields = read_fields(text)?;
        if let Some(field) = fields.duplicate {
            return Err(ParseError::DuplicateField { field });
        }

        let patient_id = json_str(Field::PatientId, fields.patient_id)?;
        if patient_id.trim().is_empty() {
            return Err(ParseError::EmptyPatientId {
                raw: quoted_raw(&patient_id),
            });
        }
        let timestamp = json_str(Field::Timestamp, fields.timestamp)?;
        let event_time_ms = parse_timestamp(&timestamp)?;
        let heart_rate_bpm = self.bpm(fields.heart_rate_bpm)?;

        Ok(Event {
            patient_id: patient_id.into_owned(),
            event_time_ms,
            heart_rate_bpm,
        })
    }

    /// Checks a decoded heart rate against the range.
    ///
    /// # Errors
    /// [`ParseError::BpmOutOfRange`] outside `min_bpm..=max_bpm`.
    pub fn check_bpm(&self, bpm: i64) -> Result<u16, ParseError> {
        self.in_range(bpm)
            .ok_or_else(|| self.out_of_range(bpm.to_string()))
    }

    fn in_range(&self, bpm: i64) -> Option<u16> {
        u16::try_from(bpm)
            .ok()
            .filter(|v| (self.min_bpm..=self.max_bpm).contains(v))
    }

    fn bpm(&self, raw: Option<&RawValue>) -> Result<u16, ParseError> {
        let text = present(Field::HeartRateBpm, raw)?.get();
        match json_type(text) {
            // A failed `parse` means beyond i64 (only an integer literal reaches it), which
            // is out of any range too.
            "integer" => text
                .parse::<i64>()
                .ok()
                .and_then(|bpm| self.in_range(bpm))
                .ok_or_else(|| self.out_of_range(truncate_raw(text))),
            found => Err(wrong_type(Field::HeartRateBpm, "an integer", found, text)),
        }
    }

    fn out_of_range(&self, raw: String) -> ParseError {
        ParseError::BpmOutOfRange {
            min: self.min_bpm,
            max: self.max_bpm,
            raw,
        }
    }
}

impl Default for Validation {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Parses and validates one JSON message with the default range (20 to 300 bpm).
///
/// See [`Validation::parse`] for the accepted shape and the order in which problems are
/// reported.
///
/// # Errors
/// A [`ParseError`] naming the first problem found; its [`code`](ParseError::code) is stable.
///
/// # Example
/// ```
/// use hr_model::parse_event;
/// let msg = br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":94}"#;
/// let event = parse_event(msg)?;
/// assert_eq!(event.patient_id, "p001");
/// assert_eq!(event.event_time_ms, 1_763_536_523_123);
/// assert_eq!(event.heart_rate_bpm, 94);
///
/// let err = parse_event(br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23","heart_rate_bpm":94}"#)
///     .unwrap_err();
/// assert_eq!(err.code(), "naive_timestamp");
/// # Ok::<(), hr_model::ParseError>(())
/// ```
pub fn parse_event(bytes: &[u8]) -> Result<Event, ParseError> {
    Validation::DEFAULT.parse(bytes)
}

/// The known fields decoded as the types a valid message has; any other type fails the pass.
#[derive(Default)]
struct Typed<'a> {
    patient_id: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    heart_rate_bpm: Option<i64>,
    duplicate: bool,
}

struct TypedVisitor;

impl<'de> Visitor<'de> for TypedVisitor {
    type Value = Typed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    // This and the small `deserialize`/`visit_*` functions below are `#[inline]` so that
    // serde_json's map loop, the key match and each value's decoding compile into one function,
    // as a derived `Deserialize` does; as separate calls the typed pass took about a quarter
    // longer.
    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Typed<'de>, A::Error> {
        let mut typed = Typed::default();
        while let Some(key) = map.next_key::<Key>()? {
            let repeated = match key {
                Key::PatientId => typed
                    .patient_id
                    .replace(map.next_value::<JsonStr>()?.0)
                    .is_some(),
                Key::Timestamp => typed
                    .timestamp
                    .replace(map.next_value::<JsonStr>()?.0)
                    .is_some(),
                Key::HeartRateBpm => typed
                    .heart_rate_bpm
                    .replace(map.next_value::<JsonInt>()?.0)
                    .is_some(),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    false
                }
            };
            typed.duplicate |= repeated;
        }
        Ok(typed)
    }
}

/// A JSON string, borrowed from the input unless it has escapes.
struct JsonStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for JsonStr<'de> {
    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            #[inline]
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            #[inline]
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A JSON integer that fits an `i64`. serde_json hands `-0` and integers beyond 64 bits over
/// as floats, so those fail here and are judged by their text in the second reading.
struct JsonInt(i64);

impl<'de> Deserialize<'de> for JsonInt {
    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = JsonInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            #[inline]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonInt, E> {
                Ok(JsonInt(v))
            }
            #[inline]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonInt, E> {
                i64::try_from(v)
                    .map(JsonInt)
                    .map_err(|_| E::custom("integer beyond i64"))
            }
        }
        deserializer.deserialize_i64(IntVisitor)
    }
}

/// The known fields' JSON text, borrowed from the input.
#[derive(Default)]
struct Fields<'a> {
    patient_id: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    heart_rate_bpm: Option<&'a RawValue>,
    duplicate: Option<Field>,
}

fn read_fields(text: &str) -> Result<Fields<'_>, ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = de
        .deserialize_map(FieldsVisitor)
        .and_then(|fields| de.end().map(|()| fields));
    fields.map_err(|e| match e.classify() {
        // The visitor accepts any object, so a data error means the top level is some other
        // JSON value; but serde_json reports that on the first byte, before reading the rest,
        // so the rest must still be checked before calling it "not an object".
        serde_json::error::Category::Data => match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => ParseError::NotObject {
                found: json_type(text.trim_start()),
                raw: truncate_raw(text.trim()),
            },
            Err(e) => ParseError::InvalidJson {
                message: e.to_string(),
            },
        },
        _ => ParseError::InvalidJson {
            message: e.to_string(),
        },
    })
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let (field, slot) = match key {
                Key::PatientId => (Field::PatientId, &mut fields.patient_id),
                Key::Timestamp => (Field::Timestamp, &mut fields.timestamp),
                Key::HeartRateBpm => (Field::HeartRateBpm, &mut fields.heart_rate_bpm),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<&'de RawValue>()?;
            // Recorded rather than returned, so the rest of the input is still checked and
            // malformed JSON is reported as such.
            if slot.replace(value).is_some() {
                fields.duplicate.get_or_insert(field);
            }
        }
        Ok(fields)
    }
}

/// An object key: one of ours or anything else. Deserialised from `&str`, so escaped keys
/// (`"patient\u005fid"`) decode to the same field, as they would with a derived struct.
enum Key {
    PatientId,
    Timestamp,
    HeartRateBpm,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            #[inline]
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "patient_id" => Key::PatientId,
                    "timestamp" => Key::Timestamp,
                    "heart_rate_bpm" => Key::HeartRateBpm,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

fn present(field: Field, raw: Option<&RawValue>) -> Result<&RawValue, ParseError> {
    raw.ok_or(ParseError::MissingField { field })
}

/// A string field's value, borrowed from the input unless it contains escapes.
fn json_str<'a>(field: Field, raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, ParseError> {
    let text = present(field, raw)?.get();
    match json_type(text) {
        // serde_json has validated the literal, so without a backslash its content is the
        // text between the quotes.
        "string" if !text.contains('\\') => Ok(text[1..text.len() - 1].into()),
        // Skipping a string checks only that each `\u` has four hex digits; decoding it can
        // still fail on a lone UTF-16 surrogate, which no Rust string can hold.
        "string" => serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|e| ParseError::InvalidJson {
                message: format!("field `{field}` is not a decodable string: {e}"),
            }),
        found => Err(wrong_type(field, "a string", found, text)),
    }
}

/// The JSON type of a validated value's text, told apart by its first byte (and, for
/// numbers, by whether it has a fraction or exponent).
pub(crate) fn json_type(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ if text.contains(['.', 'e', 'E']) => "float",
        _ => "integer",
    }
}

fn wrong_type(field: Field, expected: &'static str, found: &'static str, raw: &str) -> ParseError {
    ParseError::WrongType {
        field,
        expected,
        found,
        raw: truncate_raw(raw),
    }
}

/// The wire shape, validated as [`Validation::DEFAULT`] validates it (this is parsing, so it
/// lives with the parser rather than with the type).
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            patient_id: String,
            timestamp: String,
            heart_rate_bpm: i64,
        }
        let wire = Wire::deserialize(deserializer)?;
        if wire.patient_id.trim().is_empty() {
            return Err(de::Error::custom(ParseError::EmptyPatientId {
                raw: quoted_raw(&wire.patient_id),
            }));
        }
        Ok(Event {
            event_time_ms: parse_timestamp(&wire.timestamp).map_err(de::Error::custom)?,
            heart_rate_bpm: Validation::DEFAULT
                .check_bpm(wire.heart_rate_bpm)
                .map_err(de::Error::custom)?,
            patient_id: wire.patient_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseErrorKind as K;

    const SEED: &str = r#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23.123456+00:00","heart_rate_bpm":94}"#;

    #[track_caller]
    fn err(msg: &str) -> ParseError {
        // The typed pass must never accept what the diagnosis refuses.
        assert!(Validation::DEFAULT.parse_valid(msg).is_none(), "{msg}");
        parse_event(msg.as_bytes()).expect_err(msg)
    }

    /// The seed message with one field's JSON value replaced (`None` removes the field).
    fn seed_with(field: &str, value: Option<&str>) -> String {
        let mut parts = vec![
            ("patient_id", r#""p001""#),
            ("timestamp", r#""2025-11-19T07:15:23.123456+00:00""#),
            ("heart_rate_bpm", "94"),
        ];
        match value {
            Some(v) => parts.iter_mut().find(|(k, _)| *k == field).unwrap().1 = v,
            None => parts.retain(|(k, _)| *k != field),
        }
        let body: Vec<_> = parts.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        format!("{{{}}}", body.join(","))
    }

    #[test]
    fn seed_message_parses() {
        let event = parse_event(SEED.as_bytes()).unwrap();
        assert_eq!(
            event,
            Event {
                patient_id: "p001".into(),
                event_time_ms: 1_763_536_523_123,
                heart_rate_bpm: 94,
            }
        );
        assert_eq!(seed_with("heart_rate_bpm", Some("94")), SEED);
    }

    #[test]
    fn extra_fields_whitespace_order_and_escapes() {
        let msg = r#"
            { "device": {"model": "X", "leads": [1, 2, 3]}, "heart_rate_bpm" : 120,
              "patient\u005fid": "p\u00e9\"x", "note": null,
              "timestamp": "2025-11-19T02:15:23.5-05:00" }
        "#;
        let event = parse_event(msg.as_bytes()).unwrap();
        assert_eq!(event.patient_id, "pé\"x");
        assert_eq!(event.event_time_ms, 1_763_536_523_500);
        assert_eq!(event.heart_rate_bpm, 120);
    }

    #[test]
    fn seed_expectation_invalid_json_and_each_missing_field() {
        assert_eq!(err("not json").kind(), K::InvalidJson);
        for field in [Field::PatientId, Field::Timestamp, Field::HeartRateBpm] {
            let e = err(&seed_with(field.as_str(), None));
            assert_eq!(e, ParseError::MissingField { field });
            assert_eq!(e.code(), "missing_field");
            assert_eq!(e.field(), Some(field));
        }
        assert_eq!(err("{}").kind(), K::MissingField);
    }

    #[test]
    fn not_utf8() {
        let mut bytes = SEED.as_bytes().to_vec();
        bytes[16] = 0xff;
        let e = parse_event(&bytes).unwrap_err();
        assert_eq!(e, ParseError::NotUtf8 { valid_up_to: 16 });
        assert_eq!(e.code(), "not_utf8");
    }

    #[test]
    fn invalid_json() {
        for msg in [
            "",
            "   ",
            "{",
            r#"{"patient_id":"p001""#,
            r#"{"patient_id":"p001",}"#,
            &format!("{SEED}x"),
            &format!("{SEED}{SEED}"),
            "[1,",
            "[1, 2",
            "tru",
            r#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":94,"x":[}"#,
        ] {
            let e = err(msg);
            assert_eq!(e.kind(), K::InvalidJson, "{msg:?}: {e}");
            assert_eq!(e.code(), "invalid_json");
            assert!(e.to_string().contains("line 1"), "{e}");
        }
    }

    #[test]
    fn lone_surrogate_escape_is_invalid_json() {
        for field in ["patient_id", "timestamp"] {
            let e = err(&seed_with(field, Some(r#""\udcce1-20""#)));
            assert_eq!(e.code(), "invalid_json");
            assert!(e.to_string().contains(field), "{e}");
        }
        // A well-formed surrogate pair decodes.
        let ok = parse_event(seed_with("patient_id", Some(r#""p\ud83d\udc93""#)).as_bytes());
        assert_eq!(ok.unwrap().patient_id, "p\u{1f493}");
    }

    #[test]
    fn not_object() {
        let cases = [
            ("[1, 2]", "array"),
            (r#""p001""#, "string"),
            ("94", "integer"),
            ("9.4", "float"),
            ("true", "boolean"),
            (" null\n", "null"),
        ];
        for (msg, found) in cases {
            let e = err(msg);
            assert_eq!(
                e,
                ParseError::NotObject {
                    found,
                    raw: msg.trim().to_owned()
                }
            );
            assert_eq!(e.code(), "not_object");
        }
    }

    #[test]
    fn duplicate_field() {
        let msg = r#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":94,"heart_rate_bpm":95}"#;
        let e = err(msg);
        assert_eq!(
            e,
            ParseError::DuplicateField {
                field: Field::HeartRateBpm
            }
        );
        assert_eq!(e.code(), "duplicate_field");
        // A duplicate in malformed JSON is reported as malformed JSON.
        assert_eq!(err(&msg.replace('}', ",")).kind(), K::InvalidJson);
    }

    #[test]
    fn wrong_type_for_each_field() {
        let cases = [
            ("heart_rate_bpm", r#""94""#, "string"),
            ("heart_rate_bpm", "94.0", "float"),
            ("heart_rate_bpm", "9.4e1", "float"),
            ("heart_rate_bpm", "94E0", "float"),
            ("heart_rate_bpm", "true", "boolean"),
            ("heart_rate_bpm", "null", "null"),
            ("heart_rate_bpm", "[94]", "array"),
            ("heart_rate_bpm", r#"{"v":94}"#, "object"),
            ("patient_id", "1", "integer"),
            ("patient_id", "null", "null"),
            ("patient_id", r#"["p001"]"#, "array"),
            ("timestamp", "1763536523123", "integer"),
            ("timestamp", "1763536523.123", "float"),
            ("timestamp", "false", "boolean"),
        ];
        for (field, value, found) in cases {
            let e = err(&seed_with(field, Some(value)));
            assert_eq!(e.code(), "wrong_type");
            assert_eq!(e.field().unwrap().as_str(), field);
            match &e {
                ParseError::WrongType {
                    found: f, raw: r, ..
                } => {
                    assert_eq!((*f, r.as_str()), (found, value));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            err(&seed_with("heart_rate_bpm", Some("94.5"))).to_string(),
            "field `heart_rate_bpm` must be an integer, found float: 94.5"
        );
    }

    #[test]
    fn empty_patient_id() {
        for id in [r#""""#, r#"" ""#, r#""\t\n""#] {
            let e = err(&seed_with("patient_id", Some(id)));
            assert_eq!(e.code(), "empty_patient_id");
            assert_eq!(e.field(), Some(Field::PatientId));
        }
        assert_eq!(
            err(&seed_with("patient_id", Some(r#"" ""#))).raw(),
            Some(r#"" ""#)
        );
    }

    #[test]
    fn bad_and_naive_timestamp_through_parse_event() {
        let e = err(&seed_with("timestamp", Some(r#""19/11/2025 07:15""#)));
        assert_eq!(e.code(), "bad_timestamp");
        assert_eq!(e.raw(), Some(r#""19/11/2025 07:15""#));
        assert!(
            e.to_string()
                .starts_with("field `timestamp` is not an RFC 3339")
        );

        let e = err(&seed_with(
            "timestamp",
            Some(r#""2025-11-19T07:15:23.123456""#),
        ));
        assert_eq!(
            e,
            ParseError::NaiveTimestamp {
                raw: r#""2025-11-19T07:15:23.123456""#.into()
            }
        );
    }

    #[test]
    fn bpm_range_edges() {
        let bpm = |v: &str| parse_event(seed_with("heart_rate_bpm", Some(v)).as_bytes());
        assert_eq!(bpm("20").unwrap().heart_rate_bpm, 20);
        assert_eq!(bpm("300").unwrap().heart_rate_bpm, 300);
        for v in [
            "19",
            "301",
            "0",
            "-0",
            "-94",
            "65536",
            "9223372036854775808",
            "-99999999999999999999999",
        ] {
            let e = bpm(v).unwrap_err();
            assert_eq!(e.code(), "bpm_out_of_range", "{v}");
            assert_eq!(e.raw(), Some(v));
        }
        let strict = Validation {
            min_bpm: 90,
            max_bpm: 95,
        };
        assert!(strict.parse(SEED.as_bytes()).is_ok());
        let empty = Validation {
            min_bpm: 95,
            max_bpm: 90,
        };
        assert_eq!(
            empty.parse(SEED.as_bytes()).unwrap_err().code(),
            "bpm_out_of_range"
        );
    }

    #[test]
    fn first_problem_wins() {
        // Missing id before a bad timestamp; duplicates before field checks.
        let msg = r#"{"timestamp":"nope","heart_rate_bpm":"x"}"#;
        assert_eq!(err(msg).code(), "missing_field");
        let msg = r#"{"patient_id":"","patient_id":"","heart_rate_bpm":1}"#;
        assert_eq!(err(msg).code(), "duplicate_field");
        let msg = r#"{"patient_id":"p","timestamp":"nope","heart_rate_bpm":"x"}"#;
        assert_eq!(err(msg).code(), "bad_timestamp");
    }

    #[test]
    fn long_raw_values_are_truncated() {
        let id = format!(r#""{}""#, " ".repeat(10_000));
        let e = err(&seed_with("patient_id", Some(&id)));
        assert!(e.raw().unwrap().len() <= crate::MAX_RAW_LEN + 3);
        let big = format!("[{}]", vec!["1"; 5_000].join(","));
        let e = err(&seed_with("heart_rate_bpm", Some(&big)));
        assert!(e.raw().unwrap().ends_with('…'));
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn deep_nesting_neither_crashes_nor_confuses() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        // Skipped as an extra field: the message is judged on its own fields.
        let msg = format!(r#"{{"x":{deep},"patient_id":"p"}}"#);
        assert_eq!(
            err(&msg),
            ParseError::MissingField {
                field: Field::Timestamp
            }
        );
        // Where a number belongs: a wrong type, quoted in part.
        let e = err(&seed_with("heart_rate_bpm", Some(&deep)));
        assert_eq!(
            (e.code(), e.raw().unwrap().len()),
            ("wrong_type", crate::MAX_RAW_LEN + 3)
        );
        assert_eq!(err(&deep).code(), "not_object");
    }

    fn any_event() -> impl proptest::strategy::Strategy<Value = Event> {
        use proptest::prelude::*;
        (
            any::<String>().prop_filter("blank ids are refused", |id| !id.trim().is_empty()),
            crate::MIN_TIMESTAMP_MS..=crate::MAX_TIMESTAMP_MS,
            Validation::DEFAULT.min_bpm..=Validation::DEFAULT.max_bpm,
        )
            .prop_map(|(patient_id, event_time_ms, heart_rate_bpm)| Event {
                patient_id,
                event_time_ms,
                heart_rate_bpm,
            })
    }

    /// The seed message with random bytes overwritten, inserted or removed: closer to real
    /// corruption than uniformly random bytes, so it reaches the field checks.
    fn mutated_seed() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        proptest::collection::vec((0usize..SEED.len(), any::<u8>(), 0u8..3), 1..6).prop_map(
            |edits| {
                let mut bytes = SEED.as_bytes().to_vec();
                for (at, byte, op) in edits {
                    let at = at.min(bytes.len().saturating_sub(1));
                    match op {
                        0 if !bytes.is_empty() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if !bytes.is_empty() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                }
                bytes
            },
        )
    }

    /// Whatever parses must write back out and parse to the same event.
    fn check_consistent(bytes: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
        match parse_event(bytes) {
            Ok(event) => {
                proptest::prop_assert!(!event.patient_id.trim().is_empty());
                proptest::prop_assert!((20..=300).contains(&event.heart_rate_bpm));
                proptest::prop_assert_eq!(parse_event(event.to_json().as_bytes()), Ok(event));
            }
            Err(e) => {
                proptest::prop_assert!(!e.to_string().is_empty());
                if let Some(raw) = e.raw() {
                    proptest::prop_assert!(raw.len() <= crate::MAX_RAW_LEN + 3);
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn any_valid_event_round_trips(event in any_event()) {
            let json = event.to_json();
            proptest::prop_assert_eq!(parse_event(json.as_bytes()), Ok(event.clone()));
            proptest::prop_assert_eq!(serde_json::to_string(&event).unwrap(), json.clone());
            proptest::prop_assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            check_consistent(&bytes)?;
        }

        #[test]
        fn corrupted_seed_never_panics(bytes in mutated_seed()) {
            check_consistent(&bytes)?;
        }

        #[test]
        fn typed_pass_and_diagnosis_agree(bytes in mutated_seed()) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let v = Validation::DEFAULT;
                match v.parse_valid(text) {
                    Some(event) => proptest::prop_assert_eq!(v.diagnose(text), Ok(event)),
                    None => proptest::prop_assert!(v.diagnose(text).is_err(), "{}", text),
                }
            }
        }
    }
}
