//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a batch run, with the path or line a user needs to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The input path does not exist (the binary exits with code 2 for this one).
    #[error("input path {} does not exist", path.display())]
    InputNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A file could not be read, listed or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be parsed and `--strict` asked for malformed lines to be fatal.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file holding the line.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Why the line was rejected.
        message: String,
    },
    /// A Parquet input lacks a column the alert schema needs, or holds it with an unusable type.
    #[error("{}: {message}", path.display())]
    Schema {
        /// The Parquet file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// An option is out of its domain (a zero window, a slide longer than the window, ...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The output path holds something an earlier hr-batch run did not write; `--force`
    /// replaces it anyway.
    #[error("refusing to replace {}: {why} (use --force to replace it anyway)", path.display())]
    WouldOverwrite {
        /// The output path.
        path: PathBuf,
        /// What is there.
        why: String,
    },
    /// No input files were found, and strict mode makes that an error.
    #[error("no {pattern} files under {}", path.display())]
    NoInput {
        /// The input folder.
        path: PathBuf,
        /// The names looked for, e.g. `*.jsonl or *.parquet`.
        pattern: String,
    },
    /// A ground-truth file is not what hr-sim's `--truth` writes.
    #[error("{}: not an hr-sim ground-truth file: {message}", path.display())]
    Truth {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        message: String,
    },
    /// `score --check`: the score misses these targets.
    #[error("targets missed: {}", .0.join("; "))]
    TargetsMissed(Vec<String>),
    /// Reading a topic failed (or did not finish in time).
    #[error("kafka: {0}")]
    Kafka(String),
    /// Polars failed while computing or writing a table.
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = BatchError> = std::result::Result<T, E>;

impl BatchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
