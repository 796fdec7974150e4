//! Duration flags. The grammar (`500ms`, `5s`, `1.5m`, `2h`, `1d`) is hr-model's
//! [`parse_duration_ms`](hr_model::parse_duration_ms), which library code reads too; this module
//! is the one place that turns it into flag values: a length (never negative), a signed offset,
//! or a length that a word switches off.

use std::time::Duration;

/// Milliseconds as `i64` (saturating), the unit the engine and the topic configs count in.
///
/// # Example
/// ```
/// assert_eq!(hr_cli::millis(std::time::Duration::from_secs(90)), 90_000);
/// ```
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A duration that a word can stand in for: `--silence-after off`, `--retention forever`.
/// `None` is the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationOr(pub Option<Duration>);

impl DurationOr {
    /// The duration, or `None` for the word.
    pub const fn get(self) -> Option<Duration> {
        self.0
    }
}

/// The one parser behind every duration flag: a length (zero or more), or `None` when the text
/// is `word`.
fn length_or(text: &str, word: Option<&str>) -> Result<Option<Duration>, String> {
    if word.is_some_and(|w| text.trim() == w) {
        return Ok(None);
    }
    let ms = parse_duration_ms(text)?;
    match u64::try_from(ms) {
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(match word {
            Some(w) => format!("`{text}` is negative; this setting needs zero or more, or `{w}`"),
            None => format!("`{text}` is negative; this setting needs zero or more"),
        }),
    }
}

/// A length such as `500ms`, `5s`, `1.5m`, `2h`: zero or more (a clap `value_parser`).
///
/// # Errors
/// A message quoting the text when it is not a duration with a unit, or is negative.
///
/// # Example
/// ```
/// use std::time::Duration;
/// assert_eq!(hr_cli::parse_duration("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(hr_cli::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(hr_cli::parse_duration("90").is_err()); // seconds or milliseconds? Say which.
/// assert!(hr_cli::parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    length_or(text, None).map(|d| d.unwrap_or_default())
}

/// A signed duration in milliseconds (`-90s` is fine): an offset such as hr-sim's
/// `--clock-skew p003=-90s`, or a setting that its command checks itself.
///
/// # Errors
/// A message quoting the text when it is not a duration with a unit.
///
/// # Example
/// ```
/// assert_eq!(hr_cli::parse_duration_ms("-1.5m"), Ok(-90_000));
/// ```
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    hr_model::parse_duration_ms(text).map_err(|e| e.to_string())
}

/// A length, or `off` for none: `--silence-after off`.
///
/// # Errors
/// As [`parse_duration`].
///
/// # Example
/// ```
/// use hr_cli::{DurationOr, parse_duration_or_off};
/// assert_eq!(parse_duration_or_off("off"), Ok(DurationOr(None)));
/// assert_eq!(parse_duration_or_off("30s"), Ok(DurationOr(Some(std::time::Duration::from_secs(30)))));
/// ```
pub fn parse_duration_or_off(text: &str) -> Result<DurationOr, String> {
    length_or(text, Some("off")).map(DurationOr)
}

/// A length, or `forever` for no limit: `--retention forever`.
///
/// # Errors
/// As [`parse_duration`].
///
/// # Example
/// ```
/// use hr_cli::{DurationOr, parse_duration_or_forever};
/// assert_eq!(parse_duration_or_forever("forever"), Ok(DurationOr(None)));
/// assert!(parse_duration_or_forever("off").is_err());
/// ```
pub fn parse_duration_or_forever(text: &str) -> Result<DurationOr, String> {
    length_or(text, Some("forever")).map(DurationOr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("7").is_err(), "a bare number is ambiguous");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(
            parse_duration("off").is_err(),
            "no word where none is wanted"
        );
        assert!(
            parse_duration("-1s")
                .unwrap_err()
                .contains("needs zero or more")
        );
    }

    #[test]
    fn signed_durations_keep_their_sign() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("-2h"), Ok(-7_200_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_duration_ms("90").is_err());
        assert!(parse_duration_ms("5 parsecs").is_err());
    }

    #[test]
    fn each_word_only_where_it_is_wanted() {
        assert_eq!(parse_duration_or_off("off"), Ok(DurationOr(None)));
        assert_eq!(parse_duration_or_off(" off "), Ok(DurationOr(None)));
        assert_eq!(
            parse_duration_or_off("0s").map(DurationOr::get),
            Ok(Some(Duration::ZERO))
        );
        assert!(parse_duration_or_off("forever").is_err());
        assert_eq!(parse_duration_or_forever("forever"), Ok(DurationOr(None)));
        assert_eq!(
            parse_duration_or_forever("14d").map(DurationOr::get),
            Ok(Some(Duration::from_secs(14 * 86_400)))
        );
        assert!(
            parse_duration_or_forever("-1s")
                .unwrap_err()
                .contains("or `forever`")
        );
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
