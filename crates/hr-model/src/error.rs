//! Why a message is not a valid heart-rate event.
//!
//! Every way to be invalid is its own [`ParseError`] variant with a stable short
//! [`code`](ParseError::code): the pipeline writes the code and the `Display` message into the
//! dead-letter record's headers, so each error names the field and carries the value it saw.

use std::fmt;

/// The longest raw value, in bytes, that an error keeps. Enough to show any plausible patient
/// id or timestamp in a Kafka header, short enough that a megabyte of junk does not become a
/// megabyte of header.
pub const MAX_RAW_LEN: usize = 128;

/// A field of the input event, named as it appears in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `patient_id`
    PatientId,
    /// `timestamp`
    Timestamp,
    /// `heart_rate_bpm`
    HeartRateBpm,
}

impl Field {
    /// The field's name in the JSON input.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PatientId => "patient_id",
            Self::Timestamp => "timestamp",
            Self::HeartRateBpm => "heart_rate_bpm",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a [`ParseError`], for counting and routing without matching on its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The text is not JSON.
    InvalidJson,
    /// The JSON is not an object.
    NotObject,
    /// A required field is absent.
    MissingField,
    /// A field appears more than once.
    DuplicateField,
    /// A field holds the wrong JSON type.
    WrongType,
    /// `patient_id` is empty or only whitespace.
    EmptyPatientId,
    /// `timestamp` is not an RFC 3339 date-time.
    BadTimestamp,
    /// `timestamp` is a date-time without a UTC offset.
    NaiveTimestamp,
    /// `heart_rate_bpm` is an integer outside the plausible range.
    BpmOutOfRange,
}

impl ParseErrorKind {
    /// Every kind, in declaration order (for metrics that pre-register one counter per kind).
    pub const ALL: [Self; 10] = [
        Self::NotUtf8,
        Self::InvalidJson,
        Self::NotObject,
        Self::MissingField,
        Self::DuplicateField,
        Self::WrongType,
        Self::EmptyPatientId,
        Self::BadTimestamp,
        Self::NaiveTimestamp,
        Self::BpmOutOfRange,
    ];

    /// A stable `snake_case` code for headers, metrics labels and logs. Codes never change
    /// meaning; new kinds get new codes.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::InvalidJson => "invalid_json",
            Self::NotObject => "not_object",
            Self::MissingField => "missing_field",
            Self::DuplicateField => "duplicate_field",
            Self::WrongType => "wrong_type",
            Self::EmptyPatientId => "empty_patient_id",
            Self::BadTimestamp => "bad_timestamp",
            Self::NaiveTimestamp => "naive_timestamp",
            Self::BpmOutOfRange => "bpm_out_of_range",
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a message is not a valid heart-rate event.
///
/// `raw` fields hold the offending value as JSON text (strings keep their quotes, so `"94"`
/// and `94` stay distinguishable), cut to at most [`MAX_RAW_LEN`] bytes with a trailing `…`
/// when longer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes are not UTF-8 (JSON text must be).
    #[error("input is not UTF-8: invalid byte at offset {valid_up_to}")]
    NotUtf8 {
        /// Length of the valid UTF-8 prefix, i.e. the offset of the first bad byte.
        valid_up_to: usize,
    },
    /// The text is not JSON (includes truncated input and trailing garbage).
    #[error("input is not valid JSON: {message}")]
    InvalidJson {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// The input is JSON, but not an object.
    #[error("input is a JSON {found}, not an object: {raw}")]
    NotObject {
        /// The JSON type found: `array`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
        /// The input text.
        raw: String,
    },
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// The absent field.
        field: Field,
    },
    /// A field appears twice: which value is meant is ambiguous, so neither is trusted.
    #[error("field `{field}` appears more than once")]
    DuplicateField {
        /// The repeated field.
        field: Field,
    },
    /// A field holds a JSON value of the wrong type (a float, string, boolean or null where
    /// an integer belongs, and so on).
    #[error("field `{field}` must be {expected}, found {found}: {raw}")]
    WrongType {
        /// The field.
        field: Field,
        /// What belongs there, e.g. `an integer`.
        expected: &'static str,
        /// The JSON type found: `float`, `integer`, `string`, `boolean`, `null`, `array` or
        /// `object`.
        found: &'static str,
        /// The value as sent.
        raw: String,
    },
    /// `patient_id` is empty or only whitespace: it is the partition key and the window key,
    /// and a blank one would pool unrelated readings.
    #[error("field `patient_id` is empty or blank: {raw}")]
    EmptyPatientId {
        /// The value as sent.
        raw: String,
    },
    /// `timestamp` is a string but not an RFC 3339 date-time, or names an instant outside
    /// the years 0000 to 9999 UTC.
    #[error("field `timestamp` is not an RFC 3339 date-time ({reason}): {raw}")]
    BadTimestamp {
        /// What is wrong with it.
        reason: String,
        /// The value as sent.
        raw: String,
    },
    /// `timestamp` is a valid date-time without a UTC offset: guessing a zone on clinical
    /// data is worse than refusing it.
    #[error("field `timestamp` has no UTC offset (expected `Z` or `+HH:MM`/`-HH:MM`): {raw}")]
    NaiveTimestamp {
        /// The value as sent.
        raw: String,
    },
    /// `heart_rate_bpm` is an integer outside the configured plausible range.
    #[error("field `heart_rate_bpm` is outside the plausible range {min}..={max}: {raw}")]
    BpmOutOfRange {
        /// Lowest accepted value.
        min: u16,
        /// Highest accepted value.
        max: u16,
        /// The value as sent.
        raw: String,
    },
}

impl ParseError {
    /// The kind of error, without its payload.
    pub const fn kind(&self) -> ParseErrorKind {
        match self {
            Self::NotUtf8 { .. } => ParseErrorKind::NotUtf8,
            Self::InvalidJson { .. } => ParseErrorKind::InvalidJson,
            Self::NotObject { .. } => ParseErrorKind::NotObject,
            Self::MissingField { .. } => ParseErrorKind::MissingField,
            Self::DuplicateField { .. } => ParseErrorKind::DuplicateField,
            Self::WrongType { .. } => ParseErrorKind::WrongType,
            Self::EmptyPatientId { .. } => ParseErrorKind::EmptyPatientId,
            Self::BadTimestamp { .. } => ParseErrorKind::BadTimestamp,
            Self::NaiveTimestamp { .. } => ParseErrorKind::NaiveTimestamp,
            Self::BpmOutOfRange { .. } => ParseErrorKind::BpmOutOfRange,
        }
    }

    /// The stable short code of [`kind`](Self::kind), e.g. `"naive_timestamp"`.
    pub const fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// The field at fault, if the error concerns one field.
    pub const fn field(&self) -> Option<Field> {
        match self {
            Self::MissingField { field }
            | Self::DuplicateField { field }
            | Self::WrongType { field, .. } => Some(*field),
            Self::EmptyPatientId { .. } => Some(Field::PatientId),
            Self::BadTimestamp { .. } | Self::NaiveTimestamp { .. } => Some(Field::Timestamp),
            Self::BpmOutOfRange { .. } => Some(Field::HeartRateBpm),
            Self::NotUtf8 { .. } | Self::InvalidJson { .. } | Self::NotObject { .. } => None,
        }
    }

    /// The offending value as JSON text (possibly truncated), if the error has one.
    pub fn raw(&self) -> Option<&str> {
        match self {
            Self::NotObject { raw, .. }
            | Self::WrongType { raw, .. }
            | Self::EmptyPatientId { raw }
            | Self::BadTimestamp { raw, .. }
            | Self::NaiveTimestamp { raw }
            | Self::BpmOutOfRange { raw, .. } => Some(raw),
            Self::NotUtf8 { .. }
            | Self::InvalidJson { .. }
            | Self::MissingField { .. }
            | Self::DuplicateField { .. } => None,
        }
    }
}

/// Copies JSON text for an error, cut at a character boundary to at most [`MAX_RAW_LEN`]
/// bytes plus a `…` marker.
pub(crate) fn truncate_raw(text: &str) -> String {
    if text.len() <= MAX_RAW_LEN {
        return text.to_owned();
    }
    let mut end = MAX_RAW_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + '…'.len_utf8());
    out.push_str(&text[..end]);
    out.push('…');
    out
}

/// A decoded string value re-encoded as JSON text for an error's `raw` field.
pub(crate) fn quoted_raw(value: &str) -> String {
    // Cutting the value before quoting keeps a megabyte-long string from being encoded whole.
    let cut = truncate_raw(value);
    let quoted = serde_json::to_string(&cut).expect("a string always serialises");
    truncate_raw(&quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_header_safe() {
        let codes: std::collections::BTreeSet<_> =
            ParseErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ParseErrorKind::ALL.len());
        for code in codes {
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let short = "p001";
        assert_eq!(truncate_raw(short), short);
        let exact = "x".repeat(MAX_RAW_LEN);
        assert_eq!(truncate_raw(&exact), exact);
        // 'é' is two bytes: 127 ASCII bytes then 'é' straddles the limit.
        let straddle = format!("{}é", "x".repeat(MAX_RAW_LEN - 1));
        let cut = truncate_raw(&straddle);
        assert_eq!(cut, format!("{}…", "x".repeat(MAX_RAW_LEN - 1)));
    }

    #[test]
    fn quoted_raw_escapes_and_bounds() {
        assert_eq!(quoted_raw("a\"b"), r#""a\"b""#);
        let long = quoted_raw(&"y".repeat(10_000));
        assert!(long.len() <= MAX_RAW_LEN + '…'.len_utf8());
        assert!(long.starts_with("\"yyy"));
    }
}
