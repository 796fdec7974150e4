//! The JSONL alert files: [`AlertFile`] appends to one file per run; [`StagedAlertFile`] keeps
//! each commit's lines in a part that becomes visible only when its transaction commits, and
//! settles a part whose commit's answer was lost by the transaction's [`Witness`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Witness;

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
///
/// Just before the commit is sent, [`stage`](Self::stage) writes the transaction's
/// [`Witness`] beside the part (`<part>.witness`): a part whose commit's answer never came (the
/// process was stopped or killed with the commit in flight, or the commit timed out) is
/// [`detach`](Self::detach)ed or found by the next start ([`leftovers`](Self::leftovers)), and
/// its witness says whether to publish or discard it. A part without one was never committed.
pub struct StagedAlertFile {
    dir: PathBuf,
    stem: String,
    seq: u64,
    open: Option<(PathBuf, BufWriter<File>)>,
}

/// A staged part whose commit's outcome is not known here: its witness decides.
#[derive(Debug)]
pub struct Leftover {
    part: PathBuf,
    /// The witness of the transaction that held the part's alerts.
    pub witness: Witness,
}

impl Leftover {
    /// The in-progress part.
    pub fn path(&self) -> &Path {
        &self.part
    }

    /// Its transaction committed: the part becomes visible; returns its visible name.
    ///
    /// # Errors
    /// The I/O error of the rename.
    pub fn publish(self) -> std::io::Result<PathBuf> {
        let name = self
            .part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".inprogress"))
            .map(str::to_owned)
            .ok_or_else(|| std::io::Error::other("not an in-progress part"))?;
        let done = self.part.with_file_name(name);
        std::fs::rename(&self.part, &done)?;
        remove_if_there(&witness_path(&self.part))?;
        Ok(done)
    }

    /// Its transaction was aborted: the part goes.
    ///
    /// # Errors
    /// The I/O error of the removal.
    pub fn discard(self) -> std::io::Result<()> {
        remove_if_there(&self.part)?;
        remove_if_there(&witness_path(&self.part))
    }
}

impl StagedAlertFile {
    /// Creates `dir` if needed. Parts left by earlier processes are [`leftovers`](Self::leftovers)'s.
    ///
    /// # Errors
    /// The I/O error when the directory cannot be created.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
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

    /// The in-progress parts in `dir` of processes that are gone (a part's name carries its
    /// writer's pid; parts of live processes are left alone): those never staged for a commit
    /// are discarded here, those with a witness are returned for it to decide.
    ///
    /// # Errors
    /// The I/O error when the directory cannot be read or a part removed.
    pub fn leftovers(dir: &Path) -> std::io::Result<Vec<Leftover>> {
        let mut found = Vec::new();
        if !dir.exists() {
            return Ok(found);
        }
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(pid) = in_progress_pid(name) else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let witness = std::fs::read_to_string(witness_path(&path))
                .ok()
                .and_then(|w| w.parse::<Witness>().ok());
            match witness {
                Some(witness) => found.push(Leftover {
                    part: path,
                    witness,
                }),
                None => {
                    tracing::info!(path = %path.display(), "Discarding an in-progress alerts part of a process that is gone (its commit was never sent).");
                    std::fs::remove_file(&path)?;
                    remove_if_there(&witness_path(&path))?;
                }
            }
        }
        found.sort_by(|a, b| a.part.cmp(&b.part));
        Ok(found)
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

    /// Keeps `witness`, the witness of the transaction about to commit, beside the current part
    /// (written through to disk), so that the part can be settled whatever becomes of this
    /// process. Nothing to do without a part; a part without a witness (its transaction holds
    /// no record) is one whose commit cannot be told, and is kept only by an answered commit.
    ///
    /// # Errors
    /// The I/O error of the write or sync.
    pub fn stage(&mut self, witness: Option<&Witness>) -> std::io::Result<()> {
        let (Some((part, _)), Some(witness)) = (self.open.as_ref(), witness) else {
            return Ok(());
        };
        let mut out = File::create(witness_path(part))?;
        writeln!(out, "{witness}")?;
        out.sync_data()
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
        remove_if_there(&witness_path(&path))?;
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
            std::fs::remove_file(&path)?;
            remove_if_there(&witness_path(&path))?;
        }
        Ok(())
    }

    /// Takes the current part out of this file, to be settled by its witness: its commit's
    /// answer was lost. `None` when there is no part, or it has no witness (its commit was
    /// never sent, or its transaction held no record): it is discarded then.
    ///
    /// # Errors
    /// The I/O error of the flush, or of the removal.
    pub fn detach(&mut self) -> std::io::Result<Option<Leftover>> {
        let Some((path, mut out)) = self.open.take() else {
            return Ok(None);
        };
        out.flush()?;
        drop(out);
        self.seq += 1;
        let witness = std::fs::read_to_string(witness_path(&path))
            .ok()
            .and_then(|w| w.parse::<Witness>().ok());
        match witness {
            Some(witness) => Ok(Some(Leftover {
                part: path,
                witness,
            })),
            None => {
                std::fs::remove_file(&path)?;
                remove_if_there(&witness_path(&path))?;
                Ok(None)
            }
        }
    }
}

/// Where a part's witness is kept.
fn witness_path(part: &Path) -> PathBuf {
    let mut name = part.file_name().unwrap_or_default().to_os_string();
    name.push(".witness");
    part.with_file_name(name)
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
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
        assert!(StagedAlertFile::leftovers(&dir).unwrap().is_empty());
        assert!(
            !stale.exists(),
            "a dead writer's part never staged for a commit is discarded"
        );
        let mut f = StagedAlertFile::new(&dir).unwrap();
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

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_staged_part_keeps_its_witness_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let w = |offset| Witness {
            topic: "hr-pipeline-changelog".into(),
            partition: 1,
            offset,
        };
        let mut f = StagedAlertFile::new(dir.path()).unwrap();
        // Published and discarded parts take their witness with them.
        f.append("a").unwrap();
        f.prepare().unwrap();
        f.stage(Some(&w(3))).unwrap();
        assert_eq!(files(dir.path()).len(), 2, "the part and its witness");
        f.publish().unwrap();
        f.append("b").unwrap();
        f.stage(Some(&w(4))).unwrap();
        f.discard().unwrap();
        assert_eq!(files(dir.path()).len(), 1, "{:?}", files(dir.path()));
        // A commit whose answer was lost: the part leaves the file with its witness.
        f.append("c").unwrap();
        f.stage(Some(&w(9))).unwrap();
        let left = f.detach().unwrap().expect("a staged part");
        assert_eq!(left.witness, w(9));
        f.append("d").unwrap();
        f.publish().unwrap();
        let shown = left.publish().unwrap();
        assert_eq!(std::fs::read_to_string(&shown).unwrap(), "c\n");
        let visible: Vec<String> = files(dir.path());
        assert_eq!(visible.len(), 3, "{visible:?}");
        assert!(
            visible
                .iter()
                .all(|n| n.starts_with("alerts-") && n.ends_with(".jsonl"))
        );
        // Not staged: its commit was never sent, so it is discarded.
        f.append("e").unwrap();
        assert!(f.detach().unwrap().is_none());
        assert_eq!(files(dir.path()).len(), 3);
    }

    #[test]
    fn a_gone_writers_staged_part_is_left_for_its_witness() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join(".alerts-1-999999999-4.jsonl.inprogress");
        std::fs::write(&part, "x\n").unwrap();
        std::fs::write(witness_path(&part), "0 12 hr-pipeline-changelog\n").unwrap();
        let unstaged = dir.path().join(".alerts-1-999999999-5.jsonl.inprogress");
        std::fs::write(&unstaged, "y\n").unwrap();
        // A live writer's parts are its own.
        let live = dir.path().join(format!(
            ".alerts-1-{}-0.jsonl.inprogress",
            std::process::id()
        ));
        std::fs::write(&live, "z\n").unwrap();
        let left = StagedAlertFile::leftovers(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path(), part);
        assert_eq!(left[0].witness.offset, 12);
        assert!(!unstaged.exists() && live.exists());
        let left = left.into_iter().next().unwrap();
        left.discard().unwrap();
        assert_eq!(
            files(dir.path()),
            vec![live.file_name().unwrap().to_str().unwrap().to_owned()]
        );
    }
}
