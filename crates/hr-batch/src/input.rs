//! Finding input files and reading JSONL lines into Polars columns, in parallel, while keeping
//! every malformed line's file and line number.
//!
//! A JSONL file is read in blocks of [`BLOCK_BYTES`] cut at a newline, so memory stays bounded by
//! the columns being built, not by the file size. Each block is split into pieces parsed on all
//! cores; the pieces come back in order, so line numbers and row order are those of the file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{BatchError, Result};

/// Bytes read from a file per block; big enough to amortise the fan-out, small enough that a
/// block's raw text stays a small part of peak memory.
const BLOCK_BYTES: usize = 32 << 20;

/// How many malformed lines a [`ReadReport`] keeps verbatim (all of them are counted).
pub const MAX_REPORTED: usize = 20;

/// Receives progress while input bytes are read. The binary draws a progress bar with it; the
/// unit `()` ignores it.
pub trait Progress: Sync {
    /// Called once, before reading, with the total bytes of all input files.
    fn start(&self, _total_bytes: u64) {}
    /// Called after each block with the bytes just consumed.
    fn advance(&self, _bytes: u64) {}
}

impl Progress for () {}

/// One line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The file holding the line.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Why the line was rejected.
    pub message: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// What a read saw: files, rows kept, and the malformed lines (counted, the first
/// [`MAX_REPORTED`] kept with their position).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Files read.
    pub files: usize,
    /// Rows that made it into the table.
    pub rows: u64,
    /// Number of malformed lines (blank lines are not counted: they carry nothing).
    pub malformed: u64,
    /// The first malformed lines, in file order.
    pub examples: Vec<Malformed>,
}

impl ReadReport {
    fn note(&mut self, m: Malformed) {
        self.malformed += 1;
        if self.examples.len() < MAX_REPORTED {
            self.examples.push(m);
        }
    }
}

/// How to treat bad input while reading.
#[derive(Clone, Copy)]
pub struct ReadOptions<'a> {
    /// Make the first malformed line an error instead of counting it.
    pub strict: bool,
    /// Where to report bytes read.
    pub progress: &'a dyn Progress,
}

impl Default for ReadOptions<'_> {
    fn default() -> Self {
        Self {
            strict: false,
            progress: &(),
        }
    }
}

/// The kind of file an input path resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileKind {
    Jsonl,
    Parquet,
}

/// Lists the files under `path`: the file itself, or every `*.jsonl` / `*.parquet` file below a
/// directory, recursively, sorted by path so reads are reproducible. Names starting with `.` or
/// `_` are skipped, which leaves out in-progress temporary files and Spark-style `_SUCCESS`
/// markers.
pub(crate) fn list_inputs(path: &Path) -> Result<Vec<(PathBuf, FileKind)>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BatchError::InputNotFound {
                path: path.to_owned(),
            }
        } else {
            BatchError::io(path, e)
        }
    })?;
    if meta.is_file() {
        let kind = if has_ext(path, "parquet") {
            FileKind::Parquet
        } else {
            // A single file is taken as JSONL whatever its name: it was named explicitly.
            FileKind::Jsonl
        };
        return Ok(vec![(path.to_owned(), kind)]);
    }
    let mut out = Vec::new();
    walk(path, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, FileKind)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| BatchError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BatchError::io(dir, e))?;
        let p = entry.path();
        let hidden = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        if hidden {
            continue;
        }
        let ft = entry.file_type().map_err(|e| BatchError::io(&p, e))?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if has_ext(&p, "jsonl") {
            out.push((p, FileKind::Jsonl));
        } else if has_ext(&p, "parquet") {
            out.push((p, FileKind::Parquet));
        }
    }
    Ok(())
}

pub(crate) fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// In strict mode, finding no input file is an error naming the folder and `pattern`.
pub(crate) fn require_some(
    files: &[(PathBuf, FileKind)],
    path: &Path,
    pattern: &str,
    opts: &ReadOptions<'_>,
) -> Result<()> {
    if files.is_empty() && opts.strict {
        return Err(BatchError::NoInput {
            path: path.to_owned(),
            pattern: pattern.to_owned(),
        });
    }
    Ok(())
}

/// Total size of the files, for the progress bar.
pub(crate) fn total_bytes(files: &[(PathBuf, FileKind)]) -> u64 {
    files
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// What parsing one piece of a block produced.
pub(crate) struct Piece {
    /// The rows parsed, as a frame of the target schema.
    pub frame: DataFrame,
    /// Lines in the piece (the last one may lack its newline).
    pub lines: u64,
    /// Malformed lines: 0-based index within the piece, and the reason.
    pub bad: Vec<(u64, String)>,
}

/// Parses the lines of a piece of JSONL into a frame. Implemented once per record kind.
pub(crate) trait LineParser: Sync {
    fn parse_piece(&self, piece: &[u8]) -> Result<Piece>;
}

/// Splits a piece into lines (without `\n` or a trailing `\r`), with their 0-based index, and
/// skips blank ones.
pub(crate) fn lines(piece: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let piece = piece.strip_suffix(b"\n").unwrap_or(piece);
    piece
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.trim_ascii().is_empty())
}

pub(crate) fn count_lines(piece: &[u8]) -> u64 {
    let nl = memchr::memchr_iter(b'\n', piece).count() as u64;
    nl + u64::from(!piece.is_empty() && !piece.ends_with(b"\n"))
}

/// Reads one JSONL file through `parser`, appending the rows to `frames`.
pub(crate) fn read_jsonl_file(
    path: &Path,
    parser: &dyn LineParser,
    opts: ReadOptions<'_>,
    report: &mut ReadReport,
    frames: &mut Vec<DataFrame>,
) -> Result<()> {
    read_jsonl_blocks(path, parser, opts, report, frames, BLOCK_BYTES)
}

/// [`read_jsonl_file`] in blocks of `block_bytes`. The next block is read while the current one
/// is parsed, so the cores do not wait on the file between blocks.
fn read_jsonl_blocks(
    path: &Path,
    parser: &dyn LineParser,
    opts: ReadOptions<'_>,
    report: &mut ReadReport,
    frames: &mut Vec<DataFrame>,
    block_bytes: usize,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| BatchError::io(path, e))?;
    let mut read_more = |buf: &mut Vec<u8>| -> Result<bool> {
        // Reads into the spare capacity, so no block is zeroed first.
        let n = (&mut file)
            .take(block_bytes as u64)
            .read_to_end(buf)
            .map_err(|e| BatchError::io(path, e))?;
        Ok(n < block_bytes)
    };
    // Two buffers taking turns: one being parsed, the other being filled. Reusing them keeps
    // the pages mapped; fresh ones would fault in every block again.
    let mut buf: Vec<u8> = Vec::with_capacity(block_bytes);
    let mut spare: Vec<u8> = Vec::with_capacity(block_bytes);
    let mut eof = read_more(&mut buf)?;
    let mut line_base = 0u64;
    loop {
        let cut = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                // One line longer than a block: keep reading until it ends.
                None => {
                    eof = read_more(&mut buf)?;
                    continue;
                }
            }
        };
        let (block, tail) = buf.split_at(cut);
        spare.clear();
        spare.extend_from_slice(tail);
        let pieces = split_pieces(block, rayon::current_num_threads() * 4);
        let (parsed, next_eof) = rayon::join(
            || -> Vec<Result<Piece>> { pieces.par_iter().map(|p| parser.parse_piece(p)).collect() },
            || if eof { Ok(true) } else { read_more(&mut spare) },
        );
        for piece in parsed {
            let piece = piece?;
            for (idx, message) in piece.bad {
                let m = Malformed {
                    path: path.to_owned(),
                    line: line_base + idx + 1,
                    message,
                };
                if opts.strict {
                    return Err(BatchError::Malformed {
                        path: m.path,
                        line: m.line,
                        message: m.message,
                    });
                }
                report.note(m);
            }
            line_base += piece.lines;
            report.rows += piece.frame.height() as u64;
            if piece.frame.height() > 0 {
                frames.push(piece.frame);
            }
        }
        opts.progress.advance(cut as u64);
        if eof {
            break;
        }
        std::mem::swap(&mut buf, &mut spare);
        eof = next_eof?;
    }
    report.files += 1;
    Ok(())
}

/// Cuts `block` into about `n` pieces, each ending just after a newline (the last at the end).
fn split_pieces(block: &[u8], n: usize) -> Vec<&[u8]> {
    let target = (block.len() / n.max(1)).max(1 << 16);
    let mut out = Vec::with_capacity(n + 1);
    let mut rest = block;
    while rest.len() > target {
        match memchr::memchr(b'\n', &rest[target..]) {
            Some(i) => {
                let (a, b) = rest.split_at(target + i + 1);
                out.push(a);
                rest = b;
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Stacks per-piece frames into one, or an empty frame of `schema` when there are none.
pub(crate) fn concat(frames: Vec<DataFrame>, schema: &Schema) -> Result<DataFrame> {
    let mut iter = frames.into_iter();
    let Some(mut acc) = iter.next() else {
        return Ok(DataFrame::empty_with_schema(schema));
    };
    for f in iter {
        acc.vstack_mut_owned(f)?;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One integer per line, into a column `n`.
    struct Numbers;

    impl LineParser for Numbers {
        fn parse_piece(&self, piece: &[u8]) -> Result<Piece> {
            let mut values = Vec::new();
            let mut bad = Vec::new();
            for (idx, line) in lines(piece) {
                match std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.parse::<i64>().ok())
                {
                    Some(v) => values.push(v),
                    None => bad.push((idx, "not a number".to_owned())),
                }
            }
            Ok(Piece {
                frame: DataFrame::new(values.len(), vec![Column::new("n".into(), values)])?,
                lines: count_lines(piece),
                bad,
            })
        }
    }

    #[test]
    fn small_blocks_read_the_same_rows_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let mut text = String::new();
        for i in 0..5_000 {
            match i % 97 {
                0 => text.push_str("oops\n"),
                1 => text.push('\n'),
                // Longer than the smallest block below.
                2 => text.push_str(&format!("{}\n", "9".repeat(18))),
                _ => text.push_str(&format!("{i}\r\n")),
            }
        }
        text.push_str("42"); // no final newline
        std::fs::write(&path, text).unwrap();
        let read = |block_bytes| {
            let mut report = ReadReport::default();
            let mut frames = Vec::new();
            read_jsonl_blocks(
                &path,
                &Numbers,
                ReadOptions::default(),
                &mut report,
                &mut frames,
                block_bytes,
            )
            .unwrap();
            let n: Vec<i64> = concat(
                frames,
                &Schema::from_iter([Field::new("n".into(), DataType::Int64)]),
            )
            .unwrap()
            .column("n")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
            let lines: Vec<u64> = report.examples.iter().map(|m| m.line).collect();
            (n, report.rows, report.malformed, lines)
        };
        let whole = read(BLOCK_BYTES);
        assert_eq!(whole.0.len(), 5_000 - 2 * 52 + 1);
        assert_eq!(whole.2, 52);
        assert_eq!(whole.3[..2], [1, 98]);
        for block_bytes in [7, 64, 4096] {
            assert_eq!(read(block_bytes), whole, "blocks of {block_bytes}");
        }
    }

    #[test]
    fn pieces_end_at_newlines_and_cover_the_block() {
        let block: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let pieces = split_pieces(&block, 7);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), block);
        assert!(pieces.iter().all(|p| p.ends_with(b"\n")));
        let total: u64 = pieces.iter().map(|p| count_lines(p)).sum();
        assert_eq!(total, 50_000);
    }

    #[test]
    fn lines_skip_blanks_and_keep_indices() {
        let got: Vec<_> = lines(b"a\r\n\n  \nb\nc").collect();
        assert_eq!(got, vec![(0, &b"a"[..]), (3, &b"b"[..]), (4, &b"c"[..])]);
        assert_eq!(count_lines(b"a\r\n\n  \nb\nc"), 5);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b""), 0);
    }

    #[test]
    fn listing_recurses_sorts_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        for f in [
            "b/c/2.jsonl",
            "a.jsonl",
            "x.parquet",
            ".tmp.jsonl",
            "_SUCCESS",
            "n.txt",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let got: Vec<_> = list_inputs(dir.path())
            .unwrap()
            .into_iter()
            .map(|(p, k)| (p.strip_prefix(dir.path()).unwrap().to_owned(), k))
            .collect();
        assert_eq!(
            got,
            vec![
                (PathBuf::from("a.jsonl"), FileKind::Jsonl),
                (PathBuf::from("b/c/2.jsonl"), FileKind::Jsonl),
                (PathBuf::from("x.parquet"), FileKind::Parquet),
            ]
        );
        assert!(matches!(
            list_inputs(&dir.path().join("nope")),
            Err(BatchError::InputNotFound { .. })
        ));
    }
}
