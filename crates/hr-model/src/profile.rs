//! Per-patient threshold overrides, as read from the compacted `patient_profiles` topic.
//!
//! The topic is a table in the Kafka Streams sense: key = patient id, value = a JSON object
//! with any of `tachycardia_above`, `bradycardia_below` and `min_readings`, and a tombstone
//! (null value) returns the patient to the defaults. [`ProfileTable`] is that table in
//! memory: fed every record with [`ProfileTable::apply`], asked per window with
//! [`ProfileTable::thresholds_for`]. A record that is refused leaves the table as it was, so
//! the patient's previous profile stays in force.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::truncate_raw;
use crate::parse::json_type;
use crate::thresholds::check_bpm;
use crate::{ThresholdError, ThresholdField, Thresholds};

/// One patient's overrides: each field set replaces the default, each field unset keeps it.
///
/// Serialises ([`PatientProfile::to_json`]) to the value [`parse_profile`] reads, with unset
/// fields left out, so `{}` is a profile that overrides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PatientProfile {
    /// Replaces [`Thresholds::tachycardia_above`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tachycardia_above: Option<f64>,
    /// Replaces [`Thresholds::bradycardia_below`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bradycardia_below: Option<f64>,
    /// Replaces [`Thresholds::min_readings`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_readings: Option<u64>,
}

impl PatientProfile {
    /// The profile that overrides nothing.
    pub const EMPTY: Self = Self {
        tachycardia_above: None,
        bradycardia_below: None,
        min_readings: None,
    };

    /// `true` if no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }

    /// This profile with every field that `newer` sets replaced by `newer`'s value: what a
    /// `profiles set` that names only some fields writes over an existing profile.
    pub fn overlay(&self, newer: &Self) -> Self {
        Self {
            tachycardia_above: newer.tachycardia_above.or(self.tachycardia_above),
            bradycardia_below: newer.bradycardia_below.or(self.bradycardia_below),
            min_readings: newer.min_readings.or(self.min_readings),
        }
    }

    /// Checks the fields that are set, on their own and against each other: each bpm limit
    /// finite and above zero, `min_readings` at least 1, and, if both limits are set,
    /// tachycardia above bradycardia. Whether the profile fits the defaults it will be merged
    /// with is [`Thresholds::with_profile`]'s question.
    ///
    /// # Errors
    /// The first problem found, as a [`ThresholdError`].
    pub fn validate(&self) -> Result<(), ThresholdError> {
        if let Some(v) = self.tachycardia_above {
            check_bpm(ThresholdField::TachycardiaAbove, v)?;
        }
        if let Some(v) = self.bradycardia_below {
            check_bpm(ThresholdField::BradycardiaBelow, v)?;
        }
        if self.min_readings == Some(0) {
            return Err(ThresholdError::ZeroMinReadings);
        }
        match (self.tachycardia_above, self.bradycardia_below) {
            (Some(t), Some(b)) if t <= b => Err(ThresholdError::Inverted {
                tachycardia_above: t,
                bradycardia_below: b,
            }),
            _ => Ok(()),
        }
    }

    /// The profile as the JSON value of a `patient_profiles` record (no trailing newline).
    /// Fields are written in a fixed order, so the same profile gives the same bytes.
    ///
    /// # Example
    /// ```
    /// use hr_model::{parse_profile, PatientProfile};
    /// let p = PatientProfile { tachycardia_above: Some(120.0), ..PatientProfile::EMPTY };
    /// assert_eq!(p.to_json(), r#"{"tachycardia_above":120.0}"#);
    /// assert_eq!(parse_profile(p.to_json().as_bytes())?, p);
    /// # Ok::<(), hr_model::ProfileError>(())
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a profile always serialises")
    }
}

impl Thresholds {
    /// These thresholds with `profile`'s overrides applied, validated as a whole.
    ///
    /// # Errors
    /// The merged thresholds' [`ThresholdError`], e.g. a profile that sets only
    /// `tachycardia_above: 45` over a default `bradycardia_below` of 50. The caller keeps
    /// whatever it used before.
    ///
    /// # Example
    /// ```
    /// use hr_model::{PatientProfile, Thresholds};
    /// let athlete = PatientProfile { bradycardia_below: Some(38.0), ..PatientProfile::EMPTY };
    /// let t = Thresholds::DEFAULT.with_profile(&athlete)?;
    /// assert_eq!((t.tachycardia_above, t.bradycardia_below, t.min_readings), (100.0, 38.0, 1));
    ///
    /// let odd = PatientProfile { tachycardia_above: Some(45.0), ..PatientProfile::EMPTY };
    /// assert!(Thresholds::DEFAULT.with_profile(&odd).is_err());
    /// # Ok::<(), hr_model::ThresholdError>(())
    /// ```
    pub fn with_profile(&self, profile: &PatientProfile) -> Result<Thresholds, ThresholdError> {
        let merged = Self {
            tachycardia_above: profile.tachycardia_above.unwrap_or(self.tachycardia_above),
            bradycardia_below: profile.bradycardia_below.unwrap_or(self.bradycardia_below),
            min_readings: profile.min_readings.unwrap_or(self.min_readings),
        };
        merged.validate()?;
        Ok(merged)
    }
}

/// Why a `patient_profiles` record is refused. `raw` fields quote the value as sent (JSON
/// text, strings with their quotes), cut to [`crate::MAX_RAW_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The value is not JSON (includes an empty, non-null value).
    #[error("profile is not valid JSON: {message}")]
    InvalidJson {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// The value is JSON but not an object.
    #[error("profile must be a JSON object, found {found}: {raw}")]
    NotObject {
        /// The JSON type found.
        found: &'static str,
        /// The value as sent.
        raw: String,
    },
    /// The object has a field that is not a threshold: refused rather than ignored, so a
    /// misspelt `tachycardia_abve` cannot silently leave the default in force.
    #[error(
        "unknown profile field `{field}` (expected `tachycardia_above`, `bradycardia_below` or `min_readings`)"
    )]
    UnknownField {
        /// The field's name as sent.
        field: String,
    },
    /// A field appears twice, so which value is meant is ambiguous.
    #[error("profile field `{field}` appears more than once")]
    DuplicateField {
        /// The repeated field.
        field: ThresholdField,
    },
    /// A field holds the wrong JSON type (a string or null where a number belongs, a float
    /// where `min_readings` needs an integer).
    #[error("profile field `{field}` must be {expected}, found {found}: {raw}")]
    WrongType {
        /// The field.
        field: ThresholdField,
        /// What belongs there.
        expected: &'static str,
        /// The JSON type found: `float`, `integer`, `string`, `boolean`, `null`, `array` or
        /// `object`.
        found: &'static str,
        /// The value as sent.
        raw: String,
    },
    /// A number that is zero or negative (or too large to hold).
    #[error("profile field `{field}` must be {}: {raw}", range_of(*.field))]
    OutOfRange {
        /// The field.
        field: ThresholdField,
        /// The value as sent.
        raw: String,
    },
    /// Each field is fine on its own, but the thresholds they give are not: tachycardia not
    /// above bradycardia, within the profile or once merged with the defaults.
    #[error("profile gives invalid thresholds: {0}")]
    Thresholds(ThresholdError),
    /// The record's key is not a patient id: empty, blank or not UTF-8.
    #[error("profile key is not a patient id (empty, blank or not UTF-8): {raw}")]
    InvalidKey {
        /// The key, lossily decoded.
        raw: String,
    },
}

fn range_of(field: ThresholdField) -> &'static str {
    match field {
        ThresholdField::MinReadings => "an integer of at least 1",
        ThresholdField::TachycardiaAbove | ThresholdField::BradycardiaBelow => {
            "a number of bpm above 0"
        }
    }
}

impl ProfileError {
    /// A stable short name for the error, for counters and log fields.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson { .. } => "invalid_json",
            Self::NotObject { .. } => "not_object",
            Self::UnknownField { .. } => "unknown_field",
            Self::DuplicateField { .. } => "duplicate_field",
            Self::WrongType { .. } => "wrong_type",
            Self::OutOfRange { .. } => "out_of_range",
            Self::Thresholds(_) => "invalid_thresholds",
            Self::InvalidKey { .. } => "invalid_key",
        }
    }
}

/// Parses the value of a `patient_profiles` record.
///
/// An empty object is valid and overrides nothing. Numbers are read from their JSON text with
/// Rust's correctly rounded parser, so a profile written by [`PatientProfile::to_json`] reads
/// back to exactly the same values.
///
/// # Errors
/// A [`ProfileError`] for input that is not a JSON object, an unknown or repeated field, a
/// value of the wrong type or out of range, or bpm limits that contradict each other
/// (`tachycardia_above <= bradycardia_below`, both set).
///
/// # Example
/// ```
/// use hr_model::{parse_profile, PatientProfile};
/// let p = parse_profile(br#"{"tachycardia_above": 120, "min_readings": 5}"#)?;
/// assert_eq!(p, PatientProfile {
///     tachycardia_above: Some(120.0),
///     bradycardia_below: None,
///     min_readings: Some(5),
/// });
///
/// let err = parse_profile(br#"{"tachycardia": 120}"#).unwrap_err();
/// assert_eq!(err.code(), "unknown_field");
/// let err = parse_profile(br#"{"bradycardia_below": -40}"#).unwrap_err();
/// assert_eq!(err.to_string(), "profile field `bradycardia_below` must be a number of bpm above 0: -40");
/// # Ok::<(), hr_model::ProfileError>(())
/// ```
pub fn parse_profile(bytes: &[u8]) -> Result<PatientProfile, ProfileError> {
    let value: &RawValue =
        serde_json::from_slice(bytes).map_err(|e| ProfileError::InvalidJson {
            message: e.to_string(),
        })?;
    let text = value.get();
    let found = json_type(text);
    if found != "object" {
        return Err(ProfileError::NotObject {
            found,
            raw: truncate_raw(text),
        });
    }
    let Entries(entries) = serde_json::from_str(text).map_err(|e| ProfileError::InvalidJson {
        message: e.to_string(),
    })?;
    let mut profile = PatientProfile::EMPTY;
    for (name, raw) in entries {
        let field = ThresholdField::from_name(&name).ok_or_else(|| ProfileError::UnknownField {
            field: truncate_raw(&name),
        })?;
        let raw = raw.get();
        let duplicate = match field {
            ThresholdField::TachycardiaAbove => profile
                .tachycardia_above
                .replace(bpm(field, raw)?)
                .is_some(),
            ThresholdField::BradycardiaBelow => profile
                .bradycardia_below
                .replace(bpm(field, raw)?)
                .is_some(),
            ThresholdField::MinReadings => profile.min_readings.replace(count(raw)?).is_some(),
        };
        if duplicate {
            return Err(ProfileError::DuplicateField { field });
        }
    }
    profile.validate().map_err(ProfileError::Thresholds)?;
    Ok(profile)
}

fn bpm(field: ThresholdField, raw: &str) -> Result<f64, ProfileError> {
    let found = json_type(raw);
    if !matches!(found, "integer" | "float") {
        return Err(wrong_type(field, "a number of bpm", found, raw));
    }
    // serde_json has checked the JSON number grammar, which Rust's float syntax includes;
    // std rounds correctly where serde_json's default float parser may be one ulp off.
    let value: f64 = raw.parse().map_err(|_| out_of_range(field, raw))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(out_of_range(field, raw));
    }
    Ok(value)
}

fn count(raw: &str) -> Result<u64, ProfileError> {
    let field = ThresholdField::MinReadings;
    let found = json_type(raw);
    if found != "integer" {
        return Err(wrong_type(field, "an integer", found, raw));
    }
    match raw.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        // Zero, negative, or beyond u64.
        _ => Err(out_of_range(field, raw)),
    }
}

fn wrong_type(
    field: ThresholdField,
    expected: &'static str,
    found: &'static str,
    raw: &str,
) -> ProfileError {
    ProfileError::WrongType {
        field,
        expected,
        found,
        raw: truncate_raw(raw),
    }
}

fn out_of_range(field: ThresholdField, raw: &str) -> ProfileError {
    ProfileError::OutOfRange {
        field,
        raw: truncate_raw(raw),
    }
}

/// An object's fields in order, repeats kept (a map would keep only the last one).
struct Entries(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The `patient_profiles` table: each patient's profile and the effective thresholds it
/// gives, with the defaults for every patient without one.
///
/// Effective thresholds are computed when a record is applied, not per lookup, so
/// [`ProfileTable::thresholds_for`] is a map lookup. Patients are kept sorted, so
/// [`ProfileTable::iter`] lists them in a stable order.
///
/// # Example
/// ```
/// use hr_model::{ProfileTable, Thresholds};
/// let mut table = ProfileTable::new(Thresholds::DEFAULT)?;
/// table.apply(b"p001", Some(br#"{"tachycardia_above":120}"#))?;
/// assert_eq!(table.thresholds_for("p001").tachycardia_above, 120.0);
/// assert_eq!(table.thresholds_for("p002"), &Thresholds::DEFAULT);
///
/// // A contradictory profile is refused and the previous one stays in force.
/// assert!(table.apply(b"p001", Some(br#"{"tachycardia_above":40}"#)).is_err());
/// assert_eq!(table.thresholds_for("p001").tachycardia_above, 120.0);
///
/// // A tombstone returns the patient to the defaults.
/// table.apply(b"p001", None)?;
/// assert_eq!(table.thresholds_for("p001"), &Thresholds::DEFAULT);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTable {
    defaults: Thresholds,
    patients: BTreeMap<String, (PatientProfile, Thresholds)>,
}

impl ProfileTable {
    /// An empty table over validated `defaults`.
    ///
    /// # Errors
    /// The defaults' [`ThresholdError`].
    pub fn new(defaults: Thresholds) -> Result<Self, ThresholdError> {
        defaults.validate()?;
        Ok(Self {
            defaults,
            patients: BTreeMap::new(),
        })
    }

    /// The thresholds of patients without a profile.
    pub fn defaults(&self) -> &Thresholds {
        &self.defaults
    }

    /// Applies one `patient_profiles` record: `value` `None` (a tombstone) removes the
    /// patient's profile; otherwise the value is parsed and merged with the defaults.
    ///
    /// An empty key (Kafka's null key included; pass `&[]`) is refused. A zero-length value
    /// is not a tombstone: only a null value is, as in Kafka's log compaction.
    ///
    /// # Errors
    /// [`ProfileError::InvalidKey`], any [`parse_profile`] error, or
    /// [`ProfileError::Thresholds`] when the profile does not fit the defaults. On error the
    /// table is unchanged.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ProfileError> {
        let patient_id = std::str::from_utf8(key)
            .ok()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| ProfileError::InvalidKey {
                raw: truncate_raw(&String::from_utf8_lossy(key)),
            })?;
        match value {
            None => {
                self.remove(patient_id);
                Ok(())
            }
            Some(bytes) => self.set(patient_id, parse_profile(bytes)?),
        }
    }

    /// Sets `patient_id`'s profile.
    ///
    /// # Errors
    /// [`ProfileError::Thresholds`] when the profile merged with the defaults does not
    /// validate; the table is then unchanged.
    pub fn set(&mut self, patient_id: &str, profile: PatientProfile) -> Result<(), ProfileError> {
        let effective = self
            .defaults
            .with_profile(&profile)
            .map_err(ProfileError::Thresholds)?;
        self.patients
            .insert(patient_id.to_owned(), (profile, effective));
        Ok(())
    }

    /// Removes `patient_id`'s profile, returning it; the patient is back on the defaults.
    pub fn remove(&mut self, patient_id: &str) -> Option<PatientProfile> {
        self.patients.remove(patient_id).map(|(profile, _)| profile)
    }

    /// The thresholds to classify `patient_id`'s windows with.
    pub fn thresholds_for(&self, patient_id: &str) -> &Thresholds {
        self.patients
            .get(patient_id)
            .map_or(&self.defaults, |(_, t)| t)
    }

    /// `patient_id`'s profile, if one is in force.
    pub fn profile(&self, patient_id: &str) -> Option<&PatientProfile> {
        self.patients.get(patient_id).map(|(p, _)| p)
    }

    /// Every patient with a profile, sorted by id, with the profile and its effective
    /// thresholds.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PatientProfile, &Thresholds)> {
        self.patients.iter().map(|(id, (p, t))| (id.as_str(), p, t))
    }

    /// How many patients have a profile.
    pub fn len(&self) -> usize {
        self.patients.len()
    }

    /// `true` if no patient has a profile.
    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ProfileError {
        parse_profile(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn any_subset_of_fields_parses() {
        assert_eq!(parse_profile(b"{}").unwrap(), PatientProfile::EMPTY);
        assert_eq!(parse_profile(b" { } ").unwrap(), PatientProfile::EMPTY);
        assert_eq!(
            parse_profile(
                br#"{"min_readings":3,"bradycardia_below":42.5,"tachycardia_above":1e2}"#
            )
            .unwrap(),
            PatientProfile {
                tachycardia_above: Some(100.0),
                bradycardia_below: Some(42.5),
                min_readings: Some(3),
            }
        );
        // An escaped key names the same field, as it would for any JSON reader.
        assert_eq!(
            parse_profile(br#"{"min\u005freadings":2}"#)
                .unwrap()
                .min_readings,
            Some(2)
        );
    }

    #[test]
    fn bad_profiles_are_refused_with_field_and_value() {
        let cases = [
            ("", "invalid_json", None),
            ("{\"tachycardia_above\":120", "invalid_json", None),
            ("{} x", "invalid_json", None),
            (
                "[1,2]",
                "not_object",
                Some("profile must be a JSON object, found array: [1,2]"),
            ),
            ("null", "not_object", None),
            (
                r#"{"tachycardia_above":120,"heart_rate":80}"#,
                "unknown_field",
                Some(
                    "unknown profile field `heart_rate` (expected `tachycardia_above`, `bradycardia_below` or `min_readings`)",
                ),
            ),
            (
                r#"{"min_readings":2,"min_readings":3}"#,
                "duplicate_field",
                Some("profile field `min_readings` appears more than once"),
            ),
            (
                r#"{"tachycardia_above":"120"}"#,
                "wrong_type",
                Some(
                    r#"profile field `tachycardia_above` must be a number of bpm, found string: "120""#,
                ),
            ),
            (r#"{"bradycardia_below":null}"#, "wrong_type", None),
            (r#"{"bradycardia_below":[40]}"#, "wrong_type", None),
            (
                r#"{"min_readings":2.5}"#,
                "wrong_type",
                Some("profile field `min_readings` must be an integer, found float: 2.5"),
            ),
            (r#"{"min_readings":true}"#, "wrong_type", None),
            (
                r#"{"tachycardia_above":-120}"#,
                "out_of_range",
                Some("profile field `tachycardia_above` must be a number of bpm above 0: -120"),
            ),
            (r#"{"bradycardia_below":0}"#, "out_of_range", None),
            (r#"{"bradycardia_below":-0.0}"#, "out_of_range", None),
            (r#"{"tachycardia_above":1e400}"#, "out_of_range", None),
            (
                r#"{"min_readings":0}"#,
                "out_of_range",
                Some("profile field `min_readings` must be an integer of at least 1: 0"),
            ),
            (r#"{"min_readings":-3}"#, "out_of_range", None),
            (
                r#"{"min_readings":18446744073709551616}"#,
                "out_of_range",
                None,
            ),
            (
                r#"{"tachycardia_above":60,"bradycardia_below":60}"#,
                "invalid_thresholds",
                Some(
                    "profile gives invalid thresholds: `tachycardia_above` (60) must be greater than `bradycardia_below` (60)",
                ),
            ),
            (
                r#"{"bradycardia_below":90,"tachycardia_above":70}"#,
                "invalid_thresholds",
                None,
            ),
        ];
        for (json, code, message) in cases {
            let e = err(json);
            assert_eq!(e.code(), code, "{json}: {e}");
            if let Some(message) = message {
                assert_eq!(e.to_string(), message, "{json}");
            }
        }
    }

    #[test]
    fn a_huge_unknown_field_name_is_cut_in_the_error() {
        let json = format!("{{\"{}\":1}}", "x".repeat(10_000));
        match err(&json) {
            ProfileError::UnknownField { field } => {
                assert!(field.len() <= crate::MAX_RAW_LEN + '…'.len_utf8())
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn to_json_round_trips_exactly() {
        let profiles = [
            PatientProfile::EMPTY,
            PatientProfile {
                tachycardia_above: Some(0.1 + 0.2 + 100.0),
                bradycardia_below: Some(f64::MIN_POSITIVE),
                min_readings: Some(u64::MAX),
            },
            PatientProfile {
                bradycardia_below: Some(38.0),
                ..PatientProfile::EMPTY
            },
        ];
        for p in profiles {
            assert_eq!(parse_profile(p.to_json().as_bytes()).unwrap(), p);
        }
        assert_eq!(PatientProfile::EMPTY.to_json(), "{}");
        assert_eq!(
            PatientProfile {
                tachycardia_above: Some(130.0),
                bradycardia_below: Some(45.0),
                min_readings: Some(10),
            }
            .to_json(),
            r#"{"tachycardia_above":130.0,"bradycardia_below":45.0,"min_readings":10}"#
        );
    }

    #[test]
    fn with_profile_merges_and_validates_the_result() {
        let defaults = Thresholds::DEFAULT;
        assert_eq!(defaults.with_profile(&PatientProfile::EMPTY), Ok(defaults));
        let low_brady = PatientProfile {
            bradycardia_below: Some(40.0),
            min_readings: Some(4),
            ..PatientProfile::EMPTY
        };
        assert_eq!(
            defaults.with_profile(&low_brady),
            Ok(Thresholds::new(100.0, 40.0, 4).unwrap())
        );
        let too_high_brady = PatientProfile {
            bradycardia_below: Some(100.0),
            ..PatientProfile::EMPTY
        };
        assert_eq!(
            defaults.with_profile(&too_high_brady),
            Err(ThresholdError::Inverted {
                tachycardia_above: 100.0,
                bradycardia_below: 100.0
            })
        );
    }

    #[test]
    fn overlay_keeps_fields_the_newer_profile_leaves_unset() {
        let old = PatientProfile {
            tachycardia_above: Some(120.0),
            min_readings: Some(5),
            ..PatientProfile::EMPTY
        };
        let newer = PatientProfile {
            tachycardia_above: Some(130.0),
            bradycardia_below: Some(40.0),
            ..PatientProfile::EMPTY
        };
        assert_eq!(
            old.overlay(&newer),
            PatientProfile {
                tachycardia_above: Some(130.0),
                bradycardia_below: Some(40.0),
                min_readings: Some(5),
            }
        );
        assert_eq!(old.overlay(&PatientProfile::EMPTY), old);
        assert!(PatientProfile::EMPTY.is_empty() && !old.is_empty());
    }

    #[test]
    fn table_keeps_the_previous_profile_when_a_record_is_refused() {
        let mut table = ProfileTable::new(Thresholds::DEFAULT).unwrap();
        table
            .apply(
                b"p1",
                Some(br#"{"tachycardia_above":120,"min_readings":3}"#),
            )
            .unwrap();
        let before = table.clone();
        let refused: [&[u8]; 5] = [
            b"{not json",
            br#"{"tachycardia_above":120,"colour":"red"}"#,
            br#"{"tachycardia_above":-1}"#,
            br#"{"bradycardia_below":130}"#,
            b"",
        ];
        for value in refused {
            assert!(table.apply(b"p1", Some(value)).is_err());
            assert_eq!(table, before);
        }
        assert_eq!(
            table.thresholds_for("p1"),
            &Thresholds::new(120.0, 50.0, 3).unwrap()
        );
    }

    #[test]
    fn table_lookups_tombstones_and_keys() {
        let defaults = Thresholds::new(110.0, 45.0, 2).unwrap();
        let mut table = ProfileTable::new(defaults).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.thresholds_for("anyone"), &defaults);
        table.apply(b"p2", Some(b"{}")).unwrap();
        table
            .apply(b"p1", Some(br#"{"bradycardia_below":40}"#))
            .unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.thresholds_for("p2"), &defaults);
        assert_eq!(table.thresholds_for("p1").bradycardia_below, 40.0);
        assert_eq!(table.thresholds_for("p1").tachycardia_above, 110.0);
        let ids: Vec<&str> = table.iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["p1", "p2"]);

        table.apply(b"p1", None).unwrap();
        assert_eq!(table.thresholds_for("p1"), &defaults);
        assert_eq!(table.profile("p1"), None);
        // A tombstone for a patient without a profile is not an error: compaction may
        // deliver one long after the profile it deleted.
        table.apply(b"p9", None).unwrap();
        assert_eq!(table.len(), 1);

        for key in [&b""[..], b"  ", b"\xff\xfe"] {
            assert_eq!(
                table.apply(key, Some(b"{}")).unwrap_err().code(),
                "invalid_key"
            );
        }
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_table_needs_valid_defaults() {
        let bad = Thresholds {
            tachycardia_above: 40.0,
            ..Thresholds::DEFAULT
        };
        assert!(ProfileTable::new(bad).is_err());
    }
}
