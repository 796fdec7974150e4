//! Reading alerts, as the pipeline writes them (JSONL) or as a previous batch saved them
//! (Parquet), into one Polars frame of [`alert_schema`].

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use hr_model::AlertType;
use polars::prelude::*;
use serde::Deserialize;

use crate::error::{BatchError, Result};
use crate::input::{self, FileKind, LineParser, Piece, ReadOptions, ReadReport};

/// The columns of an alert table, in the order of the alert JSON record.
pub fn alert_schema() -> Schema {
    Schema::from_iter([
        Field::new("patient_id".into(), DataType::String),
        Field::new("window_start".into(), DataType::Int64),
        Field::new("window_end".into(), DataType::Int64),
        Field::new("avg_hr".into(), DataType::Float64),
        Field::new("min_hr".into(), DataType::UInt16),
        Field::new("max_hr".into(), DataType::UInt16),
        Field::new("count".into(), DataType::UInt64),
        Field::new("alert_type".into(), DataType::String),
        Field::new("revision".into(), DataType::UInt32),
    ])
}

/// One alert line, borrowing the patient id from the input where it has no escapes.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct AlertLine<'a> {
    #[serde(borrow)]
    patient_id: Cow<'a, str>,
    window_start: i64,
    window_end: i64,
    avg_hr: f64,
    min_hr: u16,
    max_hr: u16,
    count: u64,
    alert_type: AlertType,
    // Alerts written before revisions existed are first firings.
    #[serde(default)]
    revision: u32,
}

/// An alert line spelled exactly as the pipeline writes it (`Alert::to_json`: these fields in
/// this order, no spaces, no escapes), read by walking the known keys instead of running a
/// general JSON parser, about twice as fast. `None` for any other spelling, which then goes
/// through serde and so keeps its meaning and its error message; numbers are taken as serde
/// takes them (the float through serde itself, so it rounds the same way).
fn parse_canonical(line: &[u8]) -> Option<AlertLine<'_>> {
    // Between the keys, a value runs to the next comma (the last one to the closing brace);
    // a string value holding one is cut short and then refused for its missing quote.
    let mut rest = line.strip_suffix(b"}")?;
    let mut field = |key: &[u8]| -> Option<&[u8]> {
        rest = rest.strip_prefix(key)?;
        let end = rest.iter().position(|&b| b == b',')?;
        let (value, tail) = rest.split_at(end);
        rest = &tail[1..];
        Some(value)
    };
    let patient_id = field(b"{\"patient_id\":")?;
    let window_start = field(b"\"window_start\":")?;
    let window_end = field(b"\"window_end\":")?;
    let avg_hr = field(b"\"avg_hr\":")?;
    let min_hr = field(b"\"min_hr\":")?;
    let max_hr = field(b"\"max_hr\":")?;
    let count = field(b"\"count\":")?;
    let alert_type = field(b"\"alert_type\":")?;
    let revision = rest.strip_prefix(b"\"revision\":")?;
    let patient_id = patient_id.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if patient_id
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || b < 0x20)
    {
        return None;
    }
    let alert_type = match alert_type {
        b"\"tachycardia\"" => AlertType::Tachycardia,
        b"\"bradycardia\"" => AlertType::Bradycardia,
        b"\"normal\"" => AlertType::Normal,
        _ => return None,
    };
    // Only plain number characters, so that serde sees a lone number and nothing it would
    // read differently inside an object.
    if avg_hr.is_empty() || !avg_hr.iter().all(|b| b"0123456789.eE+-".contains(b)) {
        return None;
    }
    Some(AlertLine {
        patient_id: Cow::Borrowed(std::str::from_utf8(patient_id).ok()?),
        window_start: integer(window_start)?,
        window_end: integer(window_end)?,
        avg_hr: serde_json::from_slice(avg_hr).ok()?,
        min_hr: integer(min_hr)?,
        max_hr: integer(max_hr)?,
        count: integer(count)?,
        alert_type,
        revision: integer(revision)?,
    })
}

/// A JSON integer as serde reads it into `T`: an optional minus, then `0` or digits without a
/// leading zero, in range, not `-0`. `None` for anything else.
fn integer<T: TryFrom<i128>>(digits: &[u8]) -> Option<T> {
    let (negative, digits) = match digits.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if digits.is_empty() || digits.len() > 20 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut value: i128 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i128::from(d - b'0');
    }
    if negative && value == 0 {
        // serde reads `-0` as the float -0.0, which no integer field accepts.
        return None;
    }
    T::try_from(if negative { -value } else { value }).ok()
}

struct AlertParser;

impl LineParser for AlertParser {
    fn parse_piece(&self, piece: &[u8]) -> Result<Piece> {
        let cap = piece.len() / 160 + 1;
        let mut pid: Vec<Cow<'_, str>> = Vec::with_capacity(cap);
        let mut ws = Vec::with_capacity(cap);
        let mut we = Vec::with_capacity(cap);
        let mut avg = Vec::with_capacity(cap);
        let mut min = Vec::with_capacity(cap);
        let mut max = Vec::with_capacity(cap);
        let mut count = Vec::with_capacity(cap);
        let mut kind = Vec::with_capacity(cap);
        let mut rev = Vec::with_capacity(cap);
        let mut bad = Vec::new();
        for (idx, line) in input::lines(piece) {
            let parsed = match parse_canonical(line) {
                Some(a) => Ok(a),
                None => serde_json::from_slice::<AlertLine<'_>>(line),
            };
            match parsed {
                Ok(a) => {
                    pid.push(a.patient_id);
                    ws.push(a.window_start);
                    we.push(a.window_end);
                    avg.push(a.avg_hr);
                    min.push(a.min_hr);
                    max.push(a.max_hr);
                    count.push(a.count);
                    kind.push(a.alert_type.as_str());
                    rev.push(a.revision);
                }
                Err(e) => bad.push((idx, e.to_string())),
            }
        }
        let height = pid.len();
        let columns = vec![
            StringChunked::from_iter_values("patient_id".into(), pid.iter().map(|s| s.as_ref()))
                .into_column(),
            Column::new("window_start".into(), ws),
            Column::new("window_end".into(), we),
            Column::new("avg_hr".into(), avg),
            Column::new("min_hr".into(), min),
            Column::new("max_hr".into(), max),
            Column::new("count".into(), count),
            StringChunked::from_iter_values("alert_type".into(), kind.into_iter()).into_column(),
            Column::new("revision".into(), rev),
        ];
        Ok(Piece {
            frame: DataFrame::new(height, columns)?,
            lines: input::count_lines(piece),
            bad,
        })
    }
}

/// Reads every alert under `path` (a JSONL file, a Parquet file, or a directory searched
/// recursively for `*.jsonl` and `*.parquet`, skipping names that start with `.` or `_`) into
/// one frame of [`alert_schema`], in path order then line order.
///
/// Malformed JSONL lines are counted in the report with their file and line, unless
/// `opts.strict` is set. An input with no alerts gives an empty frame of the same schema.
///
/// # Errors
/// [`BatchError::InputNotFound`] if `path` does not exist; [`BatchError::Malformed`] in strict
/// mode; [`BatchError::Schema`] for a Parquet file without the alert columns; I/O and Polars
/// errors otherwise.
///
/// # Example
/// ```
/// # fn main() -> Result<(), hr_batch::BatchError> {
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(
///     dir.path().join("a.jsonl"),
///     "{\"patient_id\":\"p1\",\"window_start\":0,\"window_end\":60000,\"avg_hr\":104.5,\
///      \"min_hr\":98,\"max_hr\":111,\"count\":120,\"alert_type\":\"tachycardia\",\"revision\":0}\n\
///      not json\n",
/// )
/// .unwrap();
/// let (alerts, report) = hr_batch::read_alerts(dir.path(), Default::default())?;
/// assert_eq!(alerts.height(), 1);
/// assert_eq!((report.malformed, report.examples[0].line), (1, 2));
/// # Ok(())
/// # }
/// ```
pub fn read_alerts(path: &Path, opts: ReadOptions<'_>) -> Result<(DataFrame, ReadReport)> {
    let (mut df, report) = read_alert_columns(path, opts, &alert_schema())?;
    df.rechunk_mut_par();
    Ok((df, report))
}

/// [`read_alerts`] keeping only the columns of `schema` (a part of [`alert_schema`]), left in
/// the chunks they were read in: a Parquet file then decodes only what is asked for, and
/// nothing is copied into one piece for a caller that does not need it.
pub(crate) fn read_alert_columns(
    path: &Path,
    opts: ReadOptions<'_>,
    schema: &Schema,
) -> Result<(DataFrame, ReadReport)> {
    let files = input::list_inputs(path)?;
    opts.progress.start(input::total_bytes(&files));
    let mut report = ReadReport::default();
    let mut frames = Vec::new();
    let names: Vec<PlSmallStr> = schema.iter_names().cloned().collect();
    for (file, kind) in &files {
        match kind {
            FileKind::Jsonl => {
                let first = frames.len();
                input::read_jsonl_file(file, &AlertParser, opts, &mut report, &mut frames)?;
                for frame in &mut frames[first..] {
                    *frame = frame.select(names.iter().cloned())?;
                }
            }
            FileKind::Parquet => {
                let df = read_parquet(file, schema)?;
                opts.progress
                    .advance(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
                report.files += 1;
                report.rows += df.height() as u64;
                frames.push(df);
            }
        }
    }
    Ok((input::concat(frames, schema)?, report))
}

/// Reads a Parquet file and brings it to `schema`: columns selected by name and cast, so a
/// file written with wider integer types still reads. `revision` may be absent (then 0).
fn read_parquet(path: &Path, schema: &Schema) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| BatchError::io(path, e))?;
    let mut reader = ParquetReader::new(file);
    // Decode only the wanted columns; a missing one is reported (or defaulted) below.
    let present = reader.schema()?;
    let wanted = schema
        .iter_names()
        .filter(|name| present.contains(name))
        .map(|name| name.to_string())
        .collect();
    let df = reader.with_columns(Some(wanted)).finish()?;
    let height = df.height();
    let mut columns = Vec::with_capacity(schema.len());
    for (name, dtype) in schema.iter() {
        let column = match df.column(name) {
            Ok(c) => c.strict_cast(dtype).map_err(|e| BatchError::Schema {
                path: path.to_owned(),
                message: format!("column {name}: {e}"),
            })?,
            Err(_) if name == "revision" => {
                Column::full_null(name.clone(), height, dtype).fill_null(FillNullStrategy::Zero)?
            }
            Err(_) => {
                return Err(BatchError::Schema {
                    path: path.to_owned(),
                    message: format!("missing column {name}"),
                });
            }
        };
        columns.push(column);
    }
    Ok(DataFrame::new(height, columns)?)
}

#[cfg(test)]
mod tests {
    use hr_model::Alert;
    use proptest::prelude::*;

    use super::*;

    fn serde(line: &[u8]) -> Option<AlertLine<'_>> {
        serde_json::from_slice(line).ok()
    }

    fn alert() -> impl Strategy<Value = Alert> {
        (
            "[a-zA-Z0-9_.-]{0,20}",
            any::<i64>(),
            any::<i64>(),
            prop_oneof![
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
                20.0..250.0f64
            ],
            any::<u16>(),
            any::<u16>(),
            any::<u64>(),
            prop_oneof![
                Just(AlertType::Tachycardia),
                Just(AlertType::Bradycardia),
                Just(AlertType::Normal)
            ],
            any::<u32>(),
        )
            .prop_map(
                |(p, ws, we, avg, min, max, count, alert_type, revision)| Alert {
                    patient_id: p,
                    window_start: ws,
                    window_end: we,
                    avg_hr: avg,
                    min_hr: min,
                    max_hr: max,
                    count,
                    alert_type,
                    revision,
                },
            )
    }

    proptest! {
        #[test]
        fn canonical_lines_parse_as_serde_parses_them(a in alert()) {
            let line = a.to_json();
            let fast = parse_canonical(line.as_bytes());
            prop_assert!(fast.is_some(), "{line}");
            prop_assert_eq!(fast, serde(line.as_bytes()));
        }

        #[test]
        fn an_edited_line_is_either_refused_or_read_as_serde_reads_it(
            a in alert(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b" ,:{}\"\\-+.0123456789eEx\n".to_vec()),
            insert in any::<bool>(),
        ) {
            let mut line = a.to_json().into_bytes();
            let i = at.index(line.len() + 1);
            if insert {
                line.insert(i, byte);
            } else if i < line.len() {
                line[i] = byte;
            }
            if let Some(fast) = parse_canonical(&line) {
                prop_assert_eq!(Some(fast), serde(&line), "{}", String::from_utf8_lossy(&line));
            }
        }
    }

    #[test]
    fn other_spellings_go_to_serde() {
        let canonical = r#"{"patient_id":"p1","window_start":0,"window_end":60000,"avg_hr":104.5,"min_hr":98,"max_hr":111,"count":120,"alert_type":"tachycardia","revision":0}"#;
        assert!(parse_canonical(canonical.as_bytes()).is_some());
        for other in [
            // Escapes, spaces, another order, a missing revision, an integer with a leading
            // zero, a negative count, a float where an integer belongs, a trailing comma.
            canonical.replace("p1", r"p\u0031"),
            canonical.replace(",", ", "),
            canonical.replace(r#""min_hr":98,"max_hr":111"#, r#""max_hr":111,"min_hr":98"#),
            canonical.replace(r#","revision":0"#, ""),
            canonical.replace(":98", ":098"),
            canonical.replace(":120", ":-120"),
            canonical.replace(":111", ":111.0"),
            canonical.replace("0}", "0,}"),
        ] {
            assert_eq!(parse_canonical(other.as_bytes()), None, "{other}");
        }
        // An integer given for the float reads as serde reads it; -0 is serde's to refuse.
        let spelled = canonical.replace("104.5", "104");
        assert!(serde(spelled.as_bytes()).is_some());
        assert_eq!(
            parse_canonical(spelled.as_bytes()),
            serde(spelled.as_bytes())
        );
        let minus_zero = canonical.replace(":0,", ":-0,");
        assert_eq!(parse_canonical(minus_zero.as_bytes()), None);
        assert_eq!(serde(minus_zero.as_bytes()), None);
    }
}
