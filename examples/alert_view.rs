//! A readable live view of alerts: one row per window (patient, window, avg/min/max, count, alert
//! type), tachycardia in red and bradycardia in blue.
//!
//! It reads alert JSON lines as `hr-pipeline` writes them to its alerts directory, either on stdin
//! or by following the directory itself (the files it holds now and the ones the job rolls over to):
//!
//! ```text
//! cargo run -q --example alert_view -- --follow output/alerts
//! kcat -b localhost:9092 -t heart_rate_alerts -C -u | cargo run -q --example alert_view
//! ```
//!
//! Colours only on a terminal, and `NO_COLOR=1` turns them off; `alert_view | head` ends quietly.
//! Times are UTC (`07:15:00Z`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::process::ExitCode;

use hr_model::{Alert, AlertType};

#[derive(clap::Parser)]
#[command(about = "Show hr-pipeline alerts as they arrive, one readable row per window.")]
struct Args {
    /// Follow the `*.jsonl` files of this alerts directory instead of reading stdin.
    #[arg(long, value_name = "DIR")]
    follow: Option<PathBuf>,
    /// How often the followed directory is polled.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
}

fn main() -> ExitCode {
    let args = hr_kafka::cli::parse::<Args>("alert_view").args;
    match show(args) {
        Ok(()) => ExitCode::SUCCESS,
        // `alert_view | head`: the reader has seen enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alert_view: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(args: Args) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut view = View {
        color: hr_kafka::cli::color_on(&stdout),
        out: stdout.lock(),
    };
    view.header()?;
    match args.follow {
        None => {
            for line in std::io::stdin().lock().lines() {
                view.line(&line?)?;
            }
        }
        Some(dir) => follow(&dir, Duration::from_millis(args.poll_ms), &mut view)?,
    }
    Ok(())
}

/// Reads every complete line appended to the directory's `*.jsonl` files, in file-name order (the
/// job names its files so that this is their write order), until the process is stopped.
fn follow(dir: &Path, poll: Duration, view: &mut View<impl Write>) -> std::io::Result<()> {
    // Per file: bytes consumed so far and a partial last line still being written.
    let mut files: BTreeMap<PathBuf, (u64, Vec<u8>)> = BTreeMap::new();
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "jsonl") {
                    files.entry(path).or_default();
                }
            }
        }
        for (path, (offset, partial)) in &mut files {
            let Ok(mut file) = File::open(path) else {
                continue;
            };
            file.seek(SeekFrom::Start(*offset))?;
            let read = file.read_to_end(partial)?;
            *offset += read as u64;
            if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
                let complete: Vec<u8> = partial.drain(..=end).collect();
                for line in complete.split(|&b| b == b'\n') {
                    view.line(&String::from_utf8_lossy(line))?;
                }
            }
        }
        std::thread::sleep(poll);
    }
}

struct View<W> {
    out: W,
    color: bool,
}

impl<W: Write> View<W> {
    fn header(&mut self) -> std::io::Result<()> {
        writeln!(
            self.out,
            "{:<8} {:<19} {:>6} {:>5} {:>5} {:>6}  alert",
            "patient", "window (UTC)", "avg", "min", "max", "count"
        )?;
        self.out.flush()
    }

    /// One alert row; anything that is not an alert (blank lines, `tail` banners) is skipped.
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        let Ok(alert) = serde_json::from_str::<Alert>(line) else {
            return Ok(());
        };
        let (start, end) = (clock(alert.window_start), clock(alert.window_end));
        let label = match alert.alert_type {
            AlertType::Tachycardia => "TACHYCARDIA",
            AlertType::Bradycardia => "BRADYCARDIA",
            AlertType::Normal => "normal",
            AlertType::InsufficientData => "too few readings",
        };
        let (on, off) = match (self.color, alert.alert_type) {
            (true, AlertType::Tachycardia) => ("\x1b[1;31m", "\x1b[0m"),
            (true, AlertType::Bradycardia) => ("\x1b[1;34m", "\x1b[0m"),
            _ => ("", ""),
        };
        let revision = if alert.revision > 0 {
            format!(" (revision {})", alert.revision)
        } else {
            String::new()
        };
        writeln!(
            self.out,
            "{on}{:<8} {start}-{end} {:>6.1} {:>5} {:>5} {:>6}  {label}{revision}{off}",
            alert.patient_id, alert.avg_hr, alert.min_hr, alert.max_hr, alert.count
        )?;
        self.out.flush()
    }
}

/// `HH:MM:SSZ` of an epoch-millisecond instant, UTC.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}
