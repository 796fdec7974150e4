//! Writing results so that a reader never sees half of them: everything goes to a temporary
//! sibling first and is renamed into place, replacing what was there (Spark's
//! `mode("overwrite")`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{BatchError, Result};

/// File format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Apache Parquet (zstd-compressed), the default: typed and compact.
    #[default]
    Parquet,
    /// Comma-separated values with a header; datetimes as ISO 8601.
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
    let tmp = temp_sibling(path, "tmp")?;
    let result = std::fs::create_dir(&tmp)
        .map_err(|e| BatchError::io(&tmp, e))
        .and_then(|()| {
            let file = tmp.join(&part);
            let f = File::create(&file).map_err(|e| BatchError::io(&file, e))?;
            let mut w = BufWriter::new(f);
            encode(table, format, &mut w)?;
            let f = w
                .into_inner()
                .map_err(|e| BatchError::io(&file, e.into_error()))?;
            f.sync_all().map_err(|e| BatchError::io(&file, e))
        })
        .and_then(|()| swap_into_place(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    Ok(path.join(part))
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

fn encode(table: &mut DataFrame, format: OutputFormat, w: &mut dyn Write) -> Result<()> {
    match format {
        OutputFormat::Parquet => {
            ParquetWriter::new(w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(table)?;
        }
        OutputFormat::Csv => {
            CsvWriter::new(w).include_header(true).finish(table)?;
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
}
