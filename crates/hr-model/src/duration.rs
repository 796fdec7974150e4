//! Durations as every hr-stream command line and environment variable writes them.

use thiserror::Error;

/// Why a duration's text was refused; the message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// A number without a unit (only zero may be written bare).
    #[error("`{0}` needs a unit: ms, s, m, h or d (e.g. 500ms, 5s, 1.5m)")]
    MissingUnit(String),
    /// The part before the unit is not a number.
    #[error("`{0}` does not start with a number (e.g. 500ms, 5s, 1.5m)")]
    NotANumber(String),
    /// A unit other than ms, s, m (min), h or d.
    #[error("`{0}` has an unknown unit (use ms, s, m, h or d)")]
    UnknownUnit(String),
    /// More than about 31 000 years either way.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// Parses a signed duration into whole milliseconds: a number, possibly negative or decimal,
/// and a unit `ms`, `s`, `m` (or `min`), `h` or `d`; `0` may be written without one. Sub-millisecond
/// parts round to the nearest millisecond.
///
/// One parser serves every binary, so `--delay 5s`, `HR_WINDOW_SIZE=1m` and `--clock-skew
/// p003=-90s` read alike; callers that need a positive or non-negative value check the sign.
///
/// # Errors
/// A [`DurationError`] quoting the text when it is not such a duration.
///
/// # Example
/// ```
/// use hr_model::parse_duration_ms;
/// assert_eq!(parse_duration_ms("90s"), Ok(90_000));
/// assert_eq!(parse_duration_ms("1.5m"), Ok(90_000));
/// assert_eq!(parse_duration_ms("-250ms"), Ok(-250));
/// assert_eq!(parse_duration_ms("0"), Ok(0));
/// assert!(parse_duration_ms("90").is_err()); // seconds or milliseconds? Say which.
/// ```
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError> {
    let t = text.trim();
    let Some(split) = t.find(|c: char| c.is_ascii_alphabetic()) else {
        return match t.parse::<f64>() {
            Ok(0.0) => Ok(0),
            Ok(_) => Err(DurationError::MissingUnit(text.to_owned())),
            Err(_) => Err(DurationError::NotANumber(text.to_owned())),
        };
    };
    let (number, unit) = t.split_at(split);
    let number = number.trim();
    // The number holds no letters (the unit starts at the first one), so `inf`, `NaN` and
    // exponents never get this far.
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_owned()))?;
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3_600e3,
        "d" => 86_400e3,
        _ => return Err(DurationError::UnknownUnit(text.to_owned())),
    };
    let ms = (value * scale).round();
    if ms.abs() > 1e15 {
        return Err(DurationError::OutOfRange(text.to_owned()));
    }
    Ok(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_reads_and_signs_and_fractions_are_kept() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("5s"), Ok(5_000));
        assert_eq!(parse_duration_ms("1m"), Ok(60_000));
        assert_eq!(parse_duration_ms("2min"), Ok(120_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_ms(" -90s "), Ok(-90_000));
        assert_eq!(parse_duration_ms("+1.25s"), Ok(1_250));
        assert_eq!(parse_duration_ms("0.4ms"), Ok(0));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
    }

    #[test]
    fn each_way_to_be_wrong_has_its_error() {
        use DurationError::*;
        assert_eq!(parse_duration_ms("7"), Err(MissingUnit("7".into())));
        assert_eq!(parse_duration_ms("s"), Err(NotANumber("s".into())));
        assert_eq!(parse_duration_ms(""), Err(NotANumber("".into())));
        assert_eq!(parse_duration_ms("1e3s"), Err(UnknownUnit("1e3s".into())));
        assert_eq!(parse_duration_ms("infs"), Err(NotANumber("infs".into())));
        assert_eq!(parse_duration_ms("1-2s"), Err(NotANumber("1-2s".into())));
        assert_eq!(parse_duration_ms("5x"), Err(UnknownUnit("5x".into())));
        assert_eq!(
            parse_duration_ms("5 weeks"),
            Err(UnknownUnit("5 weeks".into()))
        );
        assert_eq!(
            parse_duration_ms("99999999999d"),
            Err(OutOfRange("99999999999d".into()))
        );
        assert_eq!(
            parse_duration_ms("7").unwrap_err().to_string(),
            "`7` needs a unit: ms, s, m, h or d (e.g. 500ms, 5s, 1.5m)"
        );
    }
}
