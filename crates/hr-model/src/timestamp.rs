//! Event time on the wire (RFC 3339 text) and in memory (epoch milliseconds).
//!
//! Parsing accepts what RFC 3339 allows and Python's `isoformat()` writes: `Z` or a `±HH:MM`
//! offset, any number of fractional digits, `T`, `t` or a space between date and time.
//! Milliseconds are *truncated* (floored), never rounded: `07:15:59.9999Z` belongs to the
//! minute it was measured in, not to the next window.
//!
//! The shape producers write (`YYYY-MM-DDTHH:MM:SS`, a fraction, `Z` or `±HH:MM`) takes a
//! short path of calendar arithmetic; `time`'s parser stays the authority for everything else,
//! and for every error, so both paths give the same answer for every text.
//!
//! Formatting writes the fixed-width form the seed's producer writes, in UTC with microsecond
//! digits: `2025-11-19T07:15:23.123000+00:00`.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::error::{ParseError, quoted_raw};

/// The earliest event time that can be written as RFC 3339 text: `0000-01-01T00:00:00Z`.
pub const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;

/// The latest event time that can be written as RFC 3339 text: `9999-12-31T23:59:59.999Z`.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Length of a formatted timestamp: `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
pub const TIMESTAMP_LEN: usize = 32;

const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
const MS_PER_DAY: i64 = 86_400_000;

/// Parses an RFC 3339 date-time with a UTC offset into epoch milliseconds (floored).
///
/// # Errors
/// [`ParseError::NaiveTimestamp`] if the text is a valid date-time without an offset,
/// [`ParseError::BadTimestamp`] for anything else that is not an RFC 3339 date-time or that
/// lies outside [`MIN_TIMESTAMP_MS`]`..=`[`MAX_TIMESTAMP_MS`] once converted to UTC.
///
/// # Example
/// ```
/// use hr_model::parse_timestamp;
/// assert_eq!(parse_timestamp("1970-01-01T00:00:01.2345Z"), Ok(1_234));
/// assert_eq!(parse_timestamp("1970-01-01T05:30:00+05:30"), Ok(0));
/// // Before 1970 the fraction still floors: .9995 s before the epoch is in millisecond -1.
/// assert_eq!(parse_timestamp("1969-12-31T23:59:59.9995Z"), Ok(-1));
/// assert_eq!(parse_timestamp("2025-11-19T07:15:23").unwrap_err().code(), "naive_timestamp");
/// ```
pub fn parse_timestamp(text: &str) -> Result<i64, ParseError> {
    if let Some(ms) = common_shape_ms(text.as_bytes())
        && (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms)
    {
        return Ok(ms);
    }
    parse_timestamp_in_full(text)
}

/// [`parse_timestamp`] by `time`'s general parser alone: the authority on every input, and the
/// only path that builds errors.
#[cold]
fn parse_timestamp_in_full(text: &str) -> Result<i64, ParseError> {
    match parse_rfc3339(text) {
        Ok(dt) => {
            // `unix_timestamp` floors to whole seconds and `millisecond` counts up from that
            // floor, so the sum is the floor of the exact instant, also before 1970.
            let ms = dt.unix_timestamp() * 1000 + i64::from(dt.millisecond());
            if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
                Ok(ms)
            } else {
                Err(ParseError::BadTimestamp {
                    reason: "outside the years 0000 to 9999 UTC".to_owned(),
                    raw: quoted_raw(text),
                })
            }
        }
        Err(()) => Err(timestamp_error(text)),
    }
}

/// Epoch milliseconds (floored) of `YYYY-MM-DD(T|t| )HH:MM:SS[.f+](Z|z|±HH:MM)` with a
/// second below 60, or `None` for anything else, which is then left to `time`'s full parser.
///
/// This is the shape every producer writes, and `time`'s general parser costs as much as
/// decoding the whole JSON message around it. The contract is narrow on purpose: `Some` only
/// for text `time` accepts, with exactly `time`'s instant (a property test holds the two to
/// agreeing); leap seconds, errors and their messages all take the full parser.
#[inline]
fn common_shape_ms(b: &[u8]) -> Option<i64> {
    // The shortest accepted text is `YYYY-MM-DDTHH:MM:SSZ`.
    if b.len() < 20 {
        return None;
    }
    // `YYYY-MM-` and `DDTHH:MM`, eight bytes each, and `HH:MM:SS` overlapping the second, so
    // the fourteen digits and four separators are checked word by word rather than byte by byte.
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let (date, day_time, time) = (word(0), word(8), word(11));
    if date & 0xff00_00ff_0000_0000 != 0x2d00_002d_0000_0000 // `-` at 4 and 7
        || day_time & 0x0000_ff00_0000_0000 != 0x0000_3a00_0000_0000 // `:` at 13
        || time & 0x0000_ff00_0000_0000 != 0x0000_3a00_0000_0000 // `:` at 16
        || !matches!(b[10], b'T' | b't' | b' ')
        || !all_digits(date, 0x00ff_ff00_ffff_ffff)
        || !all_digits(day_time, 0xffff_00ff_ff00_ffff)
        || !all_digits(time, 0xffff_0000_0000_0000)
    {
        return None;
    }
    let two = |at: usize| (b[at] - b'0') * 10 + (b[at + 1] - b'0');
    let year = u32::from(two(0)) * 100 + u32::from(two(2));
    let (month, day, hour, minute, second) = (two(5), two(8), two(11), two(14), two(17));
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == 20 {
            return None;
        }
        // Truncate to milliseconds: the first three digits, as if padded with zeros.
        let digit = |k: usize| {
            if 20 + k < i {
                i64::from(b[20 + k] - b'0')
            } else {
                0
            }
        };
        millis = digit(0) * 100 + digit(1) * 10 + digit(2);
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        rest @ [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits2(rest, 1)?, digits2(rest, 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = i64::from(h) * 3600 + i64::from(m) * 60;
            if *sign == b'-' { -s } else { s }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_s;
    Some(seconds * 1000 + millis)
}

/// Whether every byte of `word` that `mask` selects is an ASCII digit.
///
/// After `^ 0x30` a digit is 0 to 9, so it and it plus 6 both fit the low nibble; anything
/// else sets a high-nibble bit in one or the other. A carry out of a byte that is not a digit
/// can only add to its neighbour, which makes the check fail, never pass.
#[inline]
fn all_digits(word: u64, mask: u64) -> bool {
    let v = word ^ 0x3030_3030_3030_3030;
    (v | v.wrapping_add(0x0606_0606_0606_0606)) & 0xf0f0_f0f0_f0f0_f0f0 & mask == 0
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date in the years 0 to 9999.
///
/// Years are counted from March, so a leap day is the last day of its year and the days before
/// a month do not depend on the year; the leap days before a year are then `y/4 - y/100 + y/400`,
/// three independent divisions rather than a chain of them.
#[inline]
fn days_from_civil(year: u32, month: u8, day: u8) -> i64 {
    /// Days from 1 March to the first of each month (index 1 is January).
    const DAYS_FROM_MARCH: [u32; 13] = [0, 306, 337, 0, 31, 61, 92, 122, 153, 184, 214, 245, 275];
    // One 400-year cycle added keeps January and February of year 0 unsigned.
    let y = year + 400 - u32::from(month <= 2);
    let days =
        365 * y + y / 4 - y / 100 + y / 400 + DAYS_FROM_MARCH[usize::from(month)] + u32::from(day)
            - 1;
    // 1970-01-01 in the same count: 719 468 days after 0000-03-01, plus the added cycle.
    i64::from(days) - 146_097 - 719_468
}

#[inline]
fn days_in_month(year: u32, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The two ASCII digits at `b[i..i + 2]` as a number.
#[inline]
fn digits2(b: &[u8], i: usize) -> Option<u8> {
    let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (hi < 10 && lo < 10).then(|| hi * 10 + lo)
}

/// The date-time, or `Err(())` with the reason left to [`timestamp_error`], which keeps the
/// valid path free of error values.
#[inline]
fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, ()> {
    // `time` accepts any byte between date and time; RFC 3339 names `T` (either case) and
    // allows a space, and anything else is more likely corruption than a dialect.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return Err(());
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ())
}

#[cold]
fn timestamp_error(text: &str) -> ParseError {
    // "Valid but for the missing offset" is exactly: appending `Z` makes it valid.
    if text.len() <= 64 && parse_rfc3339(&format!("{text}Z")).is_ok() {
        return ParseError::NaiveTimestamp {
            raw: quoted_raw(text),
        };
    }
    let reason = match OffsetDateTime::parse(text, &Rfc3339) {
        Err(e) => e.to_string(),
        Ok(_) => "date and time must be separated by `T`".to_owned(),
    };
    ParseError::BadTimestamp {
        reason,
        raw: quoted_raw(text),
    }
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, the seed's wire form.
///
/// # Panics
/// Panics if `ms` is outside [`MIN_TIMESTAMP_MS`]`..=`[`MAX_TIMESTAMP_MS`] (years 0000 to
/// 9999), which RFC 3339 cannot express. [`parse_timestamp`] never returns such a value.
///
/// # Example
/// ```
/// use hr_model::format_timestamp;
/// assert_eq!(format_timestamp(1_763_536_523_123), "2025-11-19T07:15:23.123000+00:00");
/// assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999000+00:00");
/// ```
pub fn format_timestamp(ms: i64) -> String {
    let bytes = timestamp_bytes(ms).unwrap_or_else(|| out_of_range(ms));
    String::from_utf8(bytes.to_vec()).expect("timestamps are ASCII")
}

/// Appends [`format_timestamp`]'s text to `out` without allocating (beyond `out` growing).
///
/// # Panics
/// As [`format_timestamp`].
pub fn write_timestamp(ms: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&timestamp_bytes(ms).unwrap_or_else(|| out_of_range(ms)));
}

#[cold]
fn out_of_range(ms: i64) -> ! {
    panic!("epoch ms {ms} is outside the years 0000 to 9999 that RFC 3339 can express")
}

/// The formatted timestamp, or `None` outside the expressible range.
pub(crate) fn timestamp_bytes(ms: i64) -> Option<[u8; TIMESTAMP_LEN]> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(MS_PER_DAY);
    let ms_of_day = ms.rem_euclid(MS_PER_DAY) as u32;
    let julian = i32::try_from(days + UNIX_EPOCH_JULIAN_DAY).ok()?;
    let (year, month, day) = Date::from_julian_day(julian).ok()?.to_calendar_date();

    let mut buf = *b"0000-00-00T00:00:00.000000+00:00";
    put_digits(&mut buf[0..4], year as u32);
    put_digits(&mut buf[5..7], u8::from(month).into());
    put_digits(&mut buf[8..10], day.into());
    put_digits(&mut buf[11..13], ms_of_day / 3_600_000);
    put_digits(&mut buf[14..16], ms_of_day / 60_000 % 60);
    put_digits(&mut buf[17..19], ms_of_day / 1000 % 60);
    // Microsecond digits as Python writes them; the last three are always 0 here.
    put_digits(&mut buf[20..23], ms_of_day % 1000);
    Some(buf)
}

/// Writes `value` as zero-padded decimal filling `dst` exactly.
#[inline]
fn put_digits(dst: &mut [u8], mut value: u32) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ms(text: &str) -> i64 {
        parse_timestamp(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[track_caller]
    fn code(text: &str) -> &'static str {
        parse_timestamp(text).expect_err(text).code()
    }

    /// 2025-11-19T07:15:23Z, worked out by hand: 20 411 days since 1970-01-01.
    const SEED_SECOND_MS: i64 = (20_411 * 86_400 + 7 * 3600 + 15 * 60 + 23) * 1000;

    #[test]
    fn seed_timestamp() {
        assert_eq!(SEED_SECOND_MS, 1_763_536_523_000);
        assert_eq!(ms("2025-11-19T07:15:23.123456+00:00"), SEED_SECOND_MS + 123);
    }

    #[test]
    fn offsets_name_the_same_instant() {
        for text in [
            "2025-11-19T07:15:23.123Z",
            "2025-11-19T07:15:23.123z",
            "2025-11-19T07:15:23.123+00:00",
            "2025-11-19T07:15:23.123-00:00",
            "2025-11-19T02:15:23.123-05:00",
            "2025-11-19T12:45:23.123+05:30",
            "2025-11-19T20:00:23.123+12:45",
            "2025-11-18T07:16:23.123-23:59",
            "2025-11-19 07:15:23.123Z",
            "2025-11-19t07:15:23.123Z",
        ] {
            assert_eq!(ms(text), SEED_SECOND_MS + 123, "{text}");
        }
    }

    #[test]
    fn fraction_lengths_truncate() {
        let cases = [
            ("", 0),
            (".9", 900),
            (".99", 990),
            (".999", 999),
            (".9999", 999),
            (".99999", 999),
            (".999999", 999),
            (".9999999", 999),
            (".99999999", 999),
            (".999999999", 999),
            (".9999999999999", 999),
            (".0005", 0),
            (".0015", 1),
            (".123456789", 123),
        ];
        for (fraction, millis) in cases {
            let text = format!("2025-11-19T07:15:23{fraction}Z");
            assert_eq!(ms(&text), SEED_SECOND_MS + millis, "{text}");
        }
    }

    #[test]
    fn minute_boundary_milliseconds() {
        let minute = ms("2025-11-19T07:16:00Z");
        assert_eq!(minute % 60_000, 0);
        assert_eq!(ms("2025-11-19T07:15:59.999999999Z"), minute - 1);
        assert_eq!(ms("2025-11-19T07:16:00.000Z"), minute);
        assert_eq!(ms("2025-11-19T07:16:00.001Z"), minute + 1);
        assert_eq!(ms("2025-11-19T02:15:59.9999-05:00"), minute - 1);
    }

    #[test]
    fn leap_years() {
        let day = 86_400_000;
        assert_eq!(ms("2024-02-29T00:00:00Z"), ms("2024-02-28T00:00:00Z") + day);
        assert_eq!(ms("2024-03-01T00:00:00Z"), ms("2024-02-29T00:00:00Z") + day);
        assert_eq!(ms("2000-02-29T12:00:00Z"), 951_825_600_000);
        assert_eq!(code("2025-02-29T00:00:00Z"), "bad_timestamp");
        assert_eq!(code("1900-02-29T00:00:00Z"), "bad_timestamp");
        // 2100 is not a leap year either: 1 March follows 28 February.
        assert_eq!(ms("2100-03-01T00:00:00Z"), ms("2100-02-28T00:00:00Z") + day);
    }

    #[test]
    fn before_the_epoch_floors() {
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), -1);
        assert_eq!(ms("1969-12-31T23:59:59.0001Z"), -1000);
        assert_eq!(ms("1969-12-31T23:59:59Z"), -1000);
        assert_eq!(ms("1970-01-01T00:00:00.0009Z"), 0);
        assert_eq!(ms("1969-12-31T18:59:59.9999-05:00"), -1);
    }

    #[test]
    fn leap_second_is_the_last_millisecond() {
        assert_eq!(ms("2016-12-31T23:59:60Z"), ms("2017-01-01T00:00:00Z") - 1);
        assert_eq!(code("2016-12-30T23:59:60Z"), "bad_timestamp");
    }

    #[test]
    fn range_limits() {
        assert_eq!(ms("0000-01-01T00:00:00Z"), MIN_TIMESTAMP_MS);
        assert_eq!(ms("9999-12-31T23:59:59.999999Z"), MAX_TIMESTAMP_MS);
        // Valid text whose UTC instant falls in year -1 or 10000.
        assert_eq!(code("0000-01-01T00:00:00+00:01"), "bad_timestamp");
        assert_eq!(code("9999-12-31T23:59:59-00:01"), "bad_timestamp");
    }

    #[test]
    fn naive_and_bad() {
        for naive in [
            "2025-11-19T07:15:23",
            "2025-11-19T07:15:23.123456",
            "2025-11-19 07:15:23",
        ] {
            assert_eq!(code(naive), "naive_timestamp", "{naive}");
        }
        for bad in [
            "",
            "yesterday",
            "2025-11-19",
            "2025-11-19T07:15Z",
            "2025-11-19T07:15:23.Z",
            "2025-11-19T07:15:23+0000",
            "2025-11-19T07:15:23+05",
            "2025-11-19T07:15:23+24:00",
            "2025-11-19T07:15:23+05:60",
            "2025-11-19T24:00:00Z",
            "2025-13-19T07:15:23Z",
            "2025-11-31T07:15:23Z",
            "2025-11-19X07:15:23Z",
            "2025-11-19X07:15:23",
            "2025-11-19T07:15:23Z ",
            " 2025-11-19T07:15:23Z",
            "+2025-11-19T07:15:23Z",
            "1763536523123",
        ] {
            assert_eq!(code(bad), "bad_timestamp", "{bad:?}");
        }
    }

    #[test]
    fn bad_timestamp_reasons() {
        let e = parse_timestamp("2025-11-19X07:15:23Z").unwrap_err();
        assert!(e.to_string().contains("separated by `T`"), "{e}");
        let e = parse_timestamp("2025-13-19T07:15:23Z").unwrap_err();
        assert!(e.to_string().contains("month"), "{e}");
        assert_eq!(e.raw(), Some(r#""2025-13-19T07:15:23Z""#));
    }

    #[test]
    fn formats_like_python_isoformat() {
        assert_eq!(
            format_timestamp(SEED_SECOND_MS + 123),
            "2025-11-19T07:15:23.123000+00:00"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999000+00:00");
        assert_eq!(
            format_timestamp(MIN_TIMESTAMP_MS),
            "0000-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(
            format_timestamp(MAX_TIMESTAMP_MS),
            "9999-12-31T23:59:59.999000+00:00"
        );
        assert_eq!(
            format_timestamp(951_825_600_000),
            "2000-02-29T12:00:00.000000+00:00"
        );
        let mut out = b"x".to_vec();
        write_timestamp(0, &mut out);
        assert_eq!(out.len(), 1 + TIMESTAMP_LEN);
    }

    #[test]
    fn out_of_range_is_not_formatted() {
        assert_eq!(timestamp_bytes(MIN_TIMESTAMP_MS - 1), None);
        assert_eq!(timestamp_bytes(MAX_TIMESTAMP_MS + 1), None);
        assert_eq!(timestamp_bytes(i64::MIN), None);
        assert_eq!(timestamp_bytes(i64::MAX), None);
    }

    #[test]
    #[should_panic(expected = "outside the years 0000 to 9999")]
    fn format_panics_out_of_range() {
        format_timestamp(MAX_TIMESTAMP_MS + 1);
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date, by Howard Hinnant's
    /// `days_from_civil`: an independent check on the `time` crate's calendar.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn days_in_month(year: i64, month: i64) -> i64 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn all_digits_is_exact_for_every_byte_pair() {
        // Every byte value next to every other, so carries between neighbours are covered.
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                for at in 0..7 {
                    let mut bytes = *b"55555555";
                    bytes[at] = x;
                    bytes[at + 1] = y;
                    let word = u64::from_le_bytes(bytes);
                    let both = x.is_ascii_digit() && y.is_ascii_digit();
                    assert_eq!(all_digits(word, u64::MAX), both, "{x:#x} {y:#x} at {at}");
                    // Unselected bytes are ignored whatever they hold.
                    let mask = !(0xffff << (8 * at));
                    assert!(all_digits(word, mask), "{x:#x} {y:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn common_shape_agrees_on_every_calendar_day() {
        for year in [
            0, 1, 1600, 1900, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for time in ["00:00:00Z", "23:59:59.999999-23:59", "12:30:00+14:00"] {
                        let text = format!("{year:04}-{month:02}-{day:02}T{time}");
                        assert_eq!(
                            parse_timestamp(&text),
                            parse_timestamp_in_full(&text),
                            "{text}"
                        );
                    }
                }
            }
        }
    }

    /// Timestamps that are valid, or wrong in one or a few places: every component ranges a
    /// little past its limits, and the separators and offset include near misses.
    fn near_timestamp() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        fn mostly<T: std::fmt::Debug + Clone + 'static>(
            usual: impl Strategy<Value = T> + 'static,
            odd: impl Strategy<Value = T> + 'static,
        ) -> impl Strategy<Value = T> {
            prop_oneof![9 => usual, 1 => odd]
        }
        let offset = prop_oneof![
            1 => Just(String::new()),
            3 => "[Zz]".boxed(),
            6 => "[+-][0-2][0-9]:[0-6][0-9]".boxed(),
            1 => "[+-][0-9]{1,4}(:[0-9]{0,3})?".boxed(),
            1 => "[Zz+-: .0-9a-z]{1,6}".boxed(),
        ];
        (
            mostly("[0-9]{4}|[0-9]{2}00", "[0-9]{3}|[+-][0-9]{4}"),
            mostly("-", "[/:]"),
            0u8..=14,
            prop_oneof![0u8..=33, 27u8..=32],
            mostly("[Tt ]", "[X_]"),
            0u8..=25,
            0u8..=61,
            0u8..=61,
            "(\\.[0-9]{0,12})?|\\.[0-9]{0,4}[a-z.,]",
            offset,
        )
            .prop_map(|(y, dash, mo, d, sep, h, mi, s, frac, off)| {
                format!("{y}{dash}{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}")
            })
    }

    /// A valid timestamp with one to four characters replaced, mostly by ASCII, sometimes by
    /// any character (multi-byte ones shift everything after them).
    fn mutated_timestamp() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let valid = "2024-02-29T23:59:59.123456789-05:30";
        let replacement = prop_oneof![4 => (0u8..0x80).prop_map(char::from), 1 => any::<char>()];
        proptest::collection::vec((0..valid.len(), replacement), 1..5).prop_map(move |edits| {
            let mut chars: Vec<char> = valid.chars().collect();
            for (at, c) in edits {
                chars[at] = c;
            }
            chars.into_iter().collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]
        #[test]
        fn common_shape_agrees_on_corrupted_text(text in mutated_timestamp()) {
            proptest::prop_assert_eq!(parse_timestamp(&text), parse_timestamp_in_full(&text), "{:?}", text);
        }

        /// The common-shape shortcut changes nothing: same instant, same error, same message
        /// as `time`'s full parser, and it takes every valid text short of a leap second.
        #[test]
        fn common_shape_agrees_with_the_full_parser(text in near_timestamp()) {
            let full = parse_timestamp_in_full(&text);
            proptest::prop_assert_eq!(parse_timestamp(&text), full.clone(), "{}", text);
            let fast = common_shape_ms(text.as_bytes());
            if let Some(ms) = fast {
                let dt = OffsetDateTime::parse(&text, &Rfc3339).expect("shortcut accepted what time refuses");
                proptest::prop_assert_eq!(ms, dt.unix_timestamp() * 1000 + i64::from(dt.millisecond()));
            }
            if full.is_ok() && text.as_bytes()[17..19] != *b"60" {
                proptest::prop_assert!(fast.is_some(), "shortcut missed {}", text);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn epoch_ms_matches_independent_computation(
            year in 0i64..=9999,
            month in 1i64..=12,
            day_seed in 0i64..31,
            hour in 0i64..24,
            minute in 0i64..60,
            second in 0i64..60,
            fraction in "[0-9]{0,12}",
            offset in proptest::option::of((proptest::bool::ANY, 0i64..24, 0i64..60)),
        ) {
            let day = 1 + day_seed % days_in_month(year, month);
            let (suffix, offset_s) = match offset {
                None => ("Z".to_owned(), 0),
                Some((west, h, m)) => {
                    let sign = if west { '-' } else { '+' };
                    let secs = (h * 3600 + m * 60) * if west { -1 } else { 1 };
                    (format!("{sign}{h:02}:{m:02}"), secs)
                }
            };
            let dot = if fraction.is_empty() { "" } else { "." };
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{dot}{fraction}{suffix}"
            );
            let millis: i64 = format!("{fraction:0<3}")[..3].parse().unwrap();
            let expected = (days_from_civil(year, month, day) * 86_400
                + hour * 3600 + minute * 60 + second - offset_s) * 1000 + millis;
            if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&expected) {
                proptest::prop_assert_eq!(parse_timestamp(&text), Ok(expected), "{}", text);
                // Without the offset the same text is naive, never silently UTC.
                let naive = &text[..text.len() - suffix.len()];
                proptest::prop_assert_eq!(parse_timestamp(naive).unwrap_err().code(), "naive_timestamp");
            } else {
                proptest::prop_assert_eq!(parse_timestamp(&text).unwrap_err().code(), "bad_timestamp");
            }
        }

        #[test]
        fn format_then_parse_is_identity(ms in MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS) {
            let text = format_timestamp(ms);
            proptest::prop_assert_eq!(text.len(), TIMESTAMP_LEN);
            proptest::prop_assert_eq!(parse_timestamp(&text), Ok(ms));
            // The date part agrees with the independent calendar too.
            let (y, m, d) = (&text[0..4], &text[5..7], &text[8..10]);
            let days = days_from_civil(y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap());
            proptest::prop_assert_eq!(days, ms.div_euclid(86_400_000));
        }
    }
}
