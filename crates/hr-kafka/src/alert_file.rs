//! The JSONL alert files: [`AlertFile`] appends to one file per run; [`StagedAlertFile`] keeps
//! each commit's lines in a part that becomes visible only when its transaction commits.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Alerts appended as JSON lines to one file per run under a directory.
pub struct AlertFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl AlertFile {
    /// Creates `dir` if needed and a new file `alerts-<unix-ms>-<pid>.jsonl` in it.
    ///
    /// # Errors
    /// The I/O error when the directory or file cannot be created.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = dir.join(format!("alerts-{ms}-{}.jsonl", std::process::id()));
        let out = BufWriter::new(File::create(&path)?);
        Ok(Self { path, out })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn append(&mut self, json: &str) -> std::io::Result<()> {
        self.out.write_all(json.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes buffered lines through to the file.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Alerts written for exactly-once delivery, as Flink's `FileSink` does: lines go to a hidden
/// in-progress part (`.alerts-<ms>-<pid>-<n>.jsonl.inprogress`) that becomes a visible
/// `alerts-<ms>-<pid>-<n>.jsonl` only when [`publish`](Self::publish) is called after the Kafka
/// transaction holding the same alerts committed. An aborted transaction
/// [`discard`](Self::discard)s the part. Readers that take `*.jsonl` never see uncommitted lines.
pub struct StagedAlertFile {
    dir: PathBuf,
    stem: String,
    seq: u64,
    open: Option<(PathBuf, BufWriter<File>)>,
}

impl StagedAlertFile {
    /// Creates `dir` if needed and removes in-progress parts left by processes that are gone
    /// (a part's name carries its writer's pid; parts of live processes are left alone).
    ///
    /// # Errors
    /// The I/O error when the directory cannot be created or read.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(pid) = in_progress_pid(name) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                tracing::info!(path = %path.display(), "Discarding an in-progress alerts part of a process that is gone.");
                std::fs::remove_file(&path)?;
            }
        }
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Ok(Self {
            dir: dir.to_owned(),
            stem: format!("alerts-{ms}-{}", std::process::id()),
            seq: 0,
            open: None,
        })
    }

    /// Appends one line to the current in-progress part, opening one if needed.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn append(&mut self, json: &str) -> std::io::Result<()> {
        if self.open.is_none() {
            let path = self
                .dir
                .join(format!(".{}-{}.jsonl.inprogress", self.stem, self.seq));
            self.open = Some((path.clone(), BufWriter::new(File::create(&path)?)));
        }
        let (_, out) = self.open.as_mut().expect("opened above");
        out.write_all(json.as_bytes())?;
        out.write_all(b"\n")
    }

    /// Writes the current part through to disk (before the transaction commits).
    ///
    /// # Errors
    /// The I/O error of the write or sync.
    pub fn prepare(&mut self) -> std::io::Result<()> {
        if let Some((_, out)) = self.open.as_mut() {
            out.flush()?;
            out.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Makes the current part visible under its final name; returns it (`None`: no lines).
    ///
    /// # Errors
    /// The I/O error of the flush or rename.
    pub fn publish(&mut self) -> std::io::Result<Option<PathBuf>> {
        let Some((path, mut out)) = self.open.take() else {
            return Ok(None);
        };
        out.flush()?;
        drop(out);
        let done = self.dir.join(format!("{}-{}.jsonl", self.stem, self.seq));
        std::fs::rename(&path, &done)?;
        self.seq += 1;
        Ok(Some(done))
    }

    /// Throws away the current part (its transaction was aborted).
    ///
    /// # Errors
    /// The I/O error of the removal.
    pub fn discard(&mut self) -> std::io::Result<()> {
        if let Some((path, out)) = self.open.take() {
            drop(out);
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// The writer's pid in an in-progress part's name `.alerts-<ms>-<pid>-<n>.jsonl.inprogress`.
fn in_progress_pid(name: &str) -> Option<u32> {
    let inner = name
        .strip_prefix(".alerts-")?
        .strip_suffix(".jsonl.inprogress")?;
    let mut parts = inner.split('-');
    let _ms = parts.next()?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_parts_are_visible_only_when_published() {
        let dir = std::env::temp_dir().join(format!("hr-staged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A part left by a process that is gone (pid 0 is never a user process here).
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join(".alerts-1-999999999-0.jsonl.inprogress");
        std::fs::write(&stale, "{}\n").unwrap();
        let mut f = StagedAlertFile::new(&dir).unwrap();
        assert!(!stale.exists(), "a dead writer's part is discarded");
        let visible = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".jsonl"))
                .collect();
            v.sort();
            v
        };
        f.append("a").unwrap();
        f.prepare().unwrap();
        assert!(visible(&dir).is_empty());
        let published = f.publish().unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&published).unwrap(), "a\n");
        f.append("b").unwrap();
        f.discard().unwrap();
        assert_eq!(f.publish().unwrap(), None, "nothing left to publish");
        f.append("c").unwrap();
        f.publish().unwrap();
        let names = visible(&dir);
        assert_eq!(names.len(), 2);
        let all: String = names
            .iter()
            .map(|n| std::fs::read_to_string(dir.join(n)).unwrap())
            .collect();
        assert_eq!(all, "a\nc\n", "the aborted line never shows");
        assert_eq!(
            in_progress_pid(".alerts-17-42-3.jsonl.inprogress"),
            Some(42)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
