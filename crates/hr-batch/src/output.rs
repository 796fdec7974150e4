//! Writing results so that a reader never sees half of them: everything goes to a temporary
//! sibling first and is renamed into place, replacing what was there (Spark's
//! `mode("overwrite")`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{BatchError, Result};
use crate::input::has_ext;

/// File format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Apache Parquet (zstd-compressed), the default: typed and compact.
    #[default]
    Parquet,
    /// Comma-separated values with a header; datetimes as ISO 8601 in UTC (`...T07:15:00.000Z`).
    Csv,
}

impl OutputFormat {
    /// The file extension for this format.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
        }
    }
}

/// Where the report goes: a path ending in `.parquet` or `.csv` is written as that one file;
/// any other path is a directory (Spark's layout) holding `part-00000.<ext>`. Returns the file
/// written.
///
/// The data goes to a temporary sibling of `path` and is renamed into place only once complete,
/// so a failed run leaves the previous report intact. Replacing a directory takes two renames
/// (old aside, new in); a reader in between sees no report, never a partial one.
///
/// # Errors
/// I/O errors creating, writing or renaming, and Polars errors encoding the table.
///
/// # Example
/// ```
/// use polars::prelude::*;
/// # fn main() -> Result<(), hr_batch::BatchError> {
/// let dir = tempfile::tempdir().unwrap();
/// let mut table = df!("patient_id" => ["p1"], "alert_count" => [3u64])?;
/// let file = hr_batch::write_table(&mut table, &dir.path().join("stats"), hr_batch::OutputFormat::Csv)?;
/// assert!(file.ends_with("stats/part-00000.csv"));
/// assert_eq!(std::fs::read_to_string(file).unwrap(), "patient_id,alert_count\np1,3\n");
/// # Ok(())
/// # }
/// ```
pub fn write_table(table: &mut DataFrame, path: &Path, format: OutputFormat) -> Result<PathBuf> {
    let single_file = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("csv"));
    if single_file {
        replace_file(path, |w| encode(table, format, w))?;
        return Ok(path.to_owned());
    }
    let part = format!("part-00000.{}", format.extension());
    replace_dir(path, |dir| {
        let file = dir.join(&part);
        let f = File::create(&file).map_err(|e| BatchError::io(&file, e))?;
        let mut w = BufWriter::new(f);
        encode(table, format, &mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| BatchError::io(&file, e.into_error()))?;
        f.sync_all().map_err(|e| BatchError::io(&file, e))
    })?;
    Ok(path.join(part))
}

/// Writes a directory atomically: `fill` writes its files into a temporary sibling, which then
/// replaces `path` (whatever it was: two renames, old aside and new in, so a reader in between
/// sees nothing there, never a partial directory).
///
/// # Errors
/// I/O errors, or whatever `fill` returns; the temporary directory is removed on failure and
/// the previous `path` stays.
///
/// # Example
/// ```
/// # fn main() -> Result<(), hr_batch::BatchError> {
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("generated");
/// hr_batch::replace_dir(&out, |tmp| {
///     std::fs::write(tmp.join("a.jsonl"), "{}\n").map_err(|e| hr_batch::BatchError::Io {
///         path: tmp.join("a.jsonl"),
///         source: e,
///     })
/// })?;
/// assert!(out.join("a.jsonl").is_file());
/// # Ok(())
/// # }
/// ```
pub fn replace_dir(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(path, "tmp")?;
    let result = std::fs::create_dir(&tmp)
        .map_err(|e| BatchError::io(&tmp, e))
        .and_then(|()| fill(&tmp))
        .and_then(|()| swap_into_place(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes one file atomically: into a temporary sibling, synced, then renamed over `path`.
///
/// # Errors
/// I/O errors, or whatever `write` returns; the temporary file is removed on failure.
pub fn replace_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(path, "tmp")?;
    let result = (|| {
        let f = File::create(&tmp).map_err(|e| BatchError::io(&tmp, e))?;
        let mut w = BufWriter::new(f);
        write(&mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| BatchError::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| BatchError::io(&tmp, e))?;
        if path.is_dir() {
            // A previous run wrote a directory here; it gives way like a file would.
            swap_into_place(&tmp, path)
        } else {
            std::fs::rename(&tmp, path).map_err(|e| BatchError::io(path, e))
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a previous hr-batch run leaves at an output path, so a new run may replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousOutput {
    /// The report of `stats`: a directory holding only `part-00000.parquet` or `.csv`, or one
    /// `.parquet` / `.csv` file with the report's columns.
    Report,
    /// An alert JSONL file (`recompute`): empty, or starting with an alert line.
    AlertLines,
    /// The synthetic alerts of `generate`: a directory of `alerts-NNNN.jsonl` files or one
    /// `alerts.parquet`.
    Generated,
}

/// Refuses to let a run replace `path` unless nothing is there or it is what an earlier run of
/// the same kind wrote (see [`PreviousOutput`]): an output path that points at the input, a
/// home directory or someone's notes by mistake is an error, not a loss. `--force` skips this.
///
/// # Errors
/// [`BatchError::WouldOverwrite`] naming the path and why it is not taken for an earlier output.
pub fn ensure_replaceable(path: &Path, kind: PreviousOutput) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let refuse = |why: String| {
        Err(BatchError::WouldOverwrite {
            path: path.to_owned(),
            why,
        })
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if meta.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| BatchError::io(path, e))? {
            let entry = entry.map_err(|e| BatchError::io(path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        let ours = |n: &str| match kind {
            PreviousOutput::Report => n == "part-00000.parquet" || n == "part-00000.csv",
            PreviousOutput::Generated => {
                n == "alerts.parquet"
                    || n.strip_prefix("alerts-")
                        .and_then(|r| r.strip_suffix(".jsonl"))
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            }
            PreviousOutput::AlertLines => false,
        };
        return match names.iter().find(|n| !ours(n)) {
            None => Ok(()),
            Some(other) => refuse(format!(
                "it is a directory holding {other:?}, which hr-batch does not write there"
            )),
        };
    }
    let looks_ours = match kind {
        PreviousOutput::Report if has_ext(path, "parquet") => {
            ParquetReader::new(File::open(path).map_err(|e| BatchError::io(path, e))?)
                .schema()
                .is_ok_and(|schema| {
                    let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
                    let want: Vec<String> = crate::stats_schema()
                        .iter_names()
                        .map(|n| n.to_string())
                        .collect();
                    names == want
                })
        }
        PreviousOutput::Report => first_line(path)? == csv_header(),
        PreviousOutput::AlertLines => {
            let line = first_line(path)?;
            line.is_empty() || serde_json::from_str::<hr_model::Alert>(&line).is_ok()
        }
        PreviousOutput::Generated => false,
    };
    if looks_ours {
        Ok(())
    } else {
        refuse("it is a file hr-batch did not write".into())
    }
}

/// The report's CSV header line.
fn csv_header() -> String {
    crate::stats_schema()
        .iter_names()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The first line of a file (up to 64 KiB), without its newline.
fn first_line(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut buf))
        .map_err(|e| BatchError::io(path, e))?;
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end])
        .trim_end_matches('\r')
        .to_owned())
}

/// Writes `table` as CSV with a header, datetimes in UTC with a `Z` (as [`write_table`] does).
///
/// # Errors
/// Polars' error encoding or writing.
pub fn write_csv(table: &mut DataFrame, w: &mut dyn Write) -> Result<()> {
    encode(table, OutputFormat::Csv, w)
}

fn encode(table: &mut DataFrame, format: OutputFormat, w: &mut dyn Write) -> Result<()> {
    match format {
        OutputFormat::Parquet => {
            ParquetWriter::new(w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(table)?;
        }
        OutputFormat::Csv => {
            // Every datetime hr-batch writes is UTC (see `stats_schema`): say so with a `Z`.
            CsvWriter::new(w)
                .include_header(true)
                .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.3fZ".into()))
                .finish(table)?;
        }
    }
    Ok(())
}

/// `dir/.name.<tag>-<pid>`: same filesystem as `path` (so rename is atomic), hidden (so the
/// readers in this crate skip it), and distinct per process.
fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        BatchError::InvalidOption(format!("output path {} has no file name", path.display()))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| BatchError::io(&parent, e))?;
    let tmp = parent.join(format!(
        ".{}.{tag}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A crashed earlier run with the same pid may have left one behind.
    if tmp.is_dir() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else if tmp.exists() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(tmp)
}

/// Moves `new` to `target`, setting aside and then deleting whatever `target` was.
fn swap_into_place(new: &Path, target: &Path) -> Result<()> {
    if target.symlink_metadata().is_err() {
        return std::fs::rename(new, target).map_err(|e| BatchError::io(target, e));
    }
    let old = temp_sibling(target, "old")?;
    std::fs::rename(target, &old).map_err(|e| BatchError::io(target, e))?;
    if let Err(e) = std::fs::rename(new, target) {
        // Put the previous result back rather than leave nothing.
        let _ = std::fs::rename(&old, target);
        return Err(BatchError::io(target, e));
    }
    let removed = if old.is_dir() {
        std::fs::remove_dir_all(&old)
    } else {
        std::fs::remove_file(&old)
    };
    removed.map_err(|e| BatchError::io(&old, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_replaces_directory_and_file_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stats");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("stale.parquet"), "old").unwrap();
        let mut t = df!("a" => [1i64, 2]).unwrap();
        let file = write_table(&mut t, &target, OutputFormat::Parquet).unwrap();
        let names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["part-00000.parquet"]);
        let back = ParquetReader::new(File::open(&file).unwrap())
            .finish()
            .unwrap();
        assert!(back.equals(&t));

        let single = dir.path().join("s.csv");
        std::fs::write(&single, "old").unwrap();
        write_table(&mut t, &single, OutputFormat::Csv).unwrap();
        assert_eq!(std::fs::read_to_string(&single).unwrap(), "a\n1\n2\n");
        // Nothing temporary is left next to the outputs.
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["s.csv", "stats"]);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("alerts.jsonl");
        std::fs::write(&target, "previous\n").unwrap();
        let err = replace_file(&target, |w| {
            w.write_all(b"half").unwrap();
            Err(BatchError::InvalidOption("boom".into()))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "previous\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_an_earlier_output_may_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        use PreviousOutput::*;
        // Nothing there yet.
        assert!(ensure_replaceable(&p("new"), Report).is_ok());
        // An earlier report, in each layout.
        let mut t = crate::alert_stats(crate::alerts_frame(std::iter::empty()).unwrap()).unwrap();
        write_table(&mut t, &p("stats"), OutputFormat::Parquet).unwrap();
        write_table(&mut t, &p("stats.csv"), OutputFormat::Csv).unwrap();
        write_table(&mut t, &p("stats.parquet"), OutputFormat::Parquet).unwrap();
        for ok in ["stats", "stats.csv", "stats.parquet"] {
            assert!(ensure_replaceable(&p(ok), Report).is_ok(), "{ok}");
        }
        // Unrelated files and folders.
        std::fs::write(p("notes.csv"), "my,own\n1,2\n").unwrap();
        std::fs::create_dir(p("home")).unwrap();
        std::fs::write(p("home/thesis.tex"), "x").unwrap();
        std::fs::write(p("other.parquet"), "not parquet").unwrap();
        std::fs::write(p("alerts.jsonl"), "{\"patient_id\":\"p1\"}\n").unwrap();
        for (bad, kind) in [
            ("notes.csv", Report),
            ("home", Report),
            ("other.parquet", Report),
            ("alerts.jsonl", AlertLines),
            ("stats", Generated),
            ("stats.csv", AlertLines),
        ] {
            let err = ensure_replaceable(&p(bad), kind).unwrap_err();
            assert!(
                matches!(err, BatchError::WouldOverwrite { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad), "{err}");
            assert!(err.to_string().contains("--force"), "{err}");
        }
        // An earlier recompute and generate output.
        std::fs::write(p("re.jsonl"), "").unwrap();
        assert!(ensure_replaceable(&p("re.jsonl"), AlertLines).is_ok());
        let alert = crate::generate_alerts(crate::GenerateSpec {
            alerts: 1,
            patients: 1,
            revised_per_mille: 0,
            seed: 1,
        })
        .next()
        .unwrap();
        std::fs::write(p("re.jsonl"), alert.to_json() + "\n").unwrap();
        assert!(ensure_replaceable(&p("re.jsonl"), AlertLines).is_ok());
        std::fs::create_dir(p("gen")).unwrap();
        std::fs::write(p("gen/alerts-0000.jsonl"), "").unwrap();
        std::fs::write(p("gen/alerts-0001.jsonl"), "").unwrap();
        assert!(ensure_replaceable(&p("gen"), Generated).is_ok());
        std::fs::write(p("gen/README"), "").unwrap();
        assert!(ensure_replaceable(&p("gen"), Generated).is_err());
    }
}
