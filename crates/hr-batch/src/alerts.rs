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

/// An alert table being filled one alert at a time, column by column, in [`alert_schema`]'s order.
pub(crate) struct AlertColumns<'a> {
    patient_id: Vec<Cow<'a, str>>,
    window_start: Vec<i64>,
    window_end: Vec<i64>,
    avg_hr: Vec<f64>,
    min_hr: Vec<u16>,
    max_hr: Vec<u16>,
    count: Vec<u64>,
    alert_type: Vec<&'static str>,
    revision: Vec<u32>,
}

impl<'a> AlertColumns<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            patient_id: Vec::with_capacity(n),
            window_start: Vec::with_capacity(n),
            window_end: Vec::with_capacity(n),
            avg_hr: Vec::with_capacity(n),
            min_hr: Vec::with_capacity(n),
            max_hr: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            alert_type: Vec::with_capacity(n),
            revision: Vec::with_capacity(n),
        }
    }

    /// Appends one alert.
    pub(crate) fn push(&mut self, a: AlertLine<'a>) {
        self.patient_id.push(a.patient_id);
        self.window_start.push(a.window_start);
        self.window_end.push(a.window_end);
        self.avg_hr.push(a.avg_hr);
        self.min_hr.push(a.min_hr);
        self.max_hr.push(a.max_hr);
        self.count.push(a.count);
        self.alert_type.push(a.alert_type.as_str());
        self.revision.push(a.revision);
    }

    pub(crate) fn into_frame(self) -> Result<DataFrame> {
        let height = self.patient_id.len();
        let columns = vec![
            StringChunked::from_iter_values(
                "patient_id".into(),
                self.patient_id.iter().map(AsRef::as_ref),
            )
            .into_column(),
            Column::new("window_start".into(), self.window_start),
            Column::new("window_end".into(), self.window_end),
            Column::new("avg_hr".into(), self.avg_hr),
            Column::new("min_hr".into(), self.min_hr),
            Column::new("max_hr".into(), self.max_hr),
            Column::new("count".into(), self.count),
            StringChunked::from_iter_values("alert_type".into(), self.alert_type.into_iter())
                .into_column(),
            Column::new("revision".into(), self.revision),
        ];
        Ok(DataFrame::new(height, columns)?)
    }
}

/// One alert line, borrowing the patient id from the input where it has no escapes.
#[derive(Deserialize)]
pub(crate) struct AlertLine<'a> {
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

impl From<hr_model::Alert> for AlertLine<'static> {
    fn from(a: hr_model::Alert) -> Self {
        AlertLine {
            patient_id: Cow::Owned(a.patient_id),
            window_start: a.window_start,
            window_end: a.window_end,
            avg_hr: a.avg_hr,
            min_hr: a.min_hr,
            max_hr: a.max_hr,
            count: a.count,
            alert_type: a.alert_type,
            revision: a.revision,
        }
    }
}

struct AlertParser;

impl LineParser for AlertParser {
    fn parse_piece(&self, piece: &[u8]) -> Result<Piece> {
        let mut columns = AlertColumns::with_capacity(piece.len() / 160 + 1);
        let mut bad = Vec::new();
        for (idx, line) in input::lines(piece) {
            match serde_json::from_slice::<AlertLine<'_>>(line) {
                Ok(a) => columns.push(a),
                Err(e) => bad.push((idx, e.to_string())),
            }
        }
        Ok(Piece {
            frame: columns.into_frame()?,
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
    input::require_some(&files, path, ALERT_FILES, &opts)?;
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

/// The alert files a folder is searched for.
pub const ALERT_FILES: &str = "*.jsonl or *.parquet";
