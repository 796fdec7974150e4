//! A readable live view of alerts: one row per window (patient, window, avg/min/max, count, alert
//! type), tachycardia in red and bradycardia in blue; and between the rows, a line for each episode
//! raised or cleared (magenta and green) and each signal lost or restored (yellow and cyan).
//!
//! It reads alert and episode JSON lines as `hr-pipeline` writes them, either on stdin or by
//! following the job's alerts directory (the files it holds now and the ones the job rolls over to)
//! while reading the episodes topic from its beginning (`read_committed`):
//!
//! ```text
//! cargo run -q --example alert_view -- --follow output/alerts --episodes-topic heart_rate_episodes
//! kcat -b localhost:9092 -t heart_rate_alerts -C -u | cargo run -q --example alert_view
//! cargo run -q --example alert_view -- --count-episodes --episodes-topic heart_rate_episodes
//! ```
//!
//! `--count-episodes` reads the episodes topic to its current end and prints how many of each kind
//! were raised and cleared (the demo's summary). Colours only on a terminal, and `NO_COLOR=1` turns
//! them off; `alert_view | head` ends quietly. Times are UTC (`07:15:00Z`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use hr_cli::KafkaArgs;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use hr_model::{Alert, AlertType, Episode, EpisodeKind, EpisodeState};

#[derive(clap::Parser)]
#[command(about = "Show hr-pipeline alerts as they arrive, one readable row per window.")]
struct Args {
    /// Follow the `*.jsonl` files of this alerts directory instead of reading stdin.
    #[arg(long, value_name = "DIR")]
    follow: Option<PathBuf>,
    /// How often the followed directory is polled.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// With --follow: also show this topic's episodes (from its beginning, read_committed)
    /// between the alert rows.
    #[arg(long, value_name = "TOPIC")]
    episodes_topic: Option<String>,
    /// Print how many episodes of each kind the episodes topic holds, raised and cleared (from
    /// its beginning to its end now), and exit.
    #[arg(long, requires = "episodes_topic")]
    count_episodes: bool,
    /// Kafka connection, for --episodes-topic.
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn main() -> ExitCode {
    let args = hr_cli::parse::<Args>("alert_view").args;
    if args.count_episodes {
        let topic = args.episodes_topic.as_deref().unwrap_or_default();
        return match count_episodes(&args.kafka, topic) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("alert_view: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
        color: hr_cli::color_on(&stdout),
        out: stdout.lock(),
    };
    view.header()?;
    match args.follow {
        None => {
            for line in std::io::stdin().lock().lines() {
                view.line(&line?)?;
            }
        }
        Some(dir) => {
            let episodes = match &args.episodes_topic {
                Some(topic) => {
                    Some(read_episodes(&args.kafka, topic).map_err(std::io::Error::other)?)
                }
                None => None,
            };
            follow(
                &dir,
                Duration::from_millis(args.poll_ms),
                episodes.as_ref(),
                &mut view,
            )?;
        }
    }
    Ok(())
}

/// A consumer of every partition of `topic` from its beginning, read_committed: the episodes a
/// job has committed, in their order per partition.
fn episode_consumer(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<(BaseConsumer, Vec<i32>)> {
    let mut cfg = kafka.client_config("alert_view");
    cfg.set("group.id", format!("alert-view-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cfg.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} has no partitions (does it exist?)");
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok((consumer, partitions))
}

/// Reads the episodes of `topic` on a thread of its own, handing each to the view as it comes.
fn read_episodes(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<Receiver<Episode>> {
    let (consumer, _) = episode_consumer(kafka, topic)?;
    let (tx, rx): (Sender<Episode>, _) = channel();
    std::thread::spawn(move || {
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    let episode = msg
                        .payload()
                        .and_then(|p| serde_json::from_slice::<Episode>(p).ok());
                    if let Some(e) = episode
                        && tx.send(e).is_err()
                    {
                        return;
                    }
                }
                Some(Err(e)) => eprintln!("alert_view: episodes: {e}"),
                None => {}
            }
        }
    });
    Ok(rx)
}

/// `--count-episodes`: reads the topic up to the end offsets it has now and prints one line of
/// counts per kind, e.g. `tachycardia raised=3 cleared=2`.
fn count_episodes(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<()> {
    let (consumer, partitions) = episode_consumer(kafka, topic)?;
    let mut ends = Vec::new();
    for &p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ends.push((p, high));
    }
    let mut counts: BTreeMap<EpisodeKind, [u64; 2]> =
        EpisodeKind::ALL.iter().map(|&k| (k, [0, 0])).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Done once each partition's position passed its end (transaction markers included).
        let positions = consumer.position()?;
        let done = ends.iter().all(|&(p, high)| {
            high == 0
                || matches!(
                    positions.find_partition(topic, p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= high
                )
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("did not reach the end of {topic} within 30 s");
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(100)) {
            let msg = msg?;
            if let Some(e) = msg
                .payload()
                .and_then(|p| serde_json::from_slice::<Episode>(p).ok())
            {
                let state = usize::from(e.state == EpisodeState::Cleared);
                counts.entry(e.kind).or_default()[state] += 1;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    for (kind, [raised, cleared]) in counts {
        writeln!(out, "{kind} raised={raised} cleared={cleared}")?;
    }
    Ok(())
}

/// Reads every complete line appended to the directory's `*.jsonl` files, in file-name order (the
/// job names its files so that this is their write order), until the process is stopped; the
/// episodes that arrived meanwhile follow each round's alert rows.
fn follow(
    dir: &Path,
    poll: Duration,
    episodes: Option<&Receiver<Episode>>,
    view: &mut View<impl Write>,
) -> std::io::Result<()> {
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
        if let Some(rx) = episodes {
            for episode in rx.try_iter() {
                view.episode(&episode)?;
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

    /// One alert row or episode line; anything else (blank lines, `tail` banners) is skipped.
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        let Ok(alert) = serde_json::from_str::<Alert>(line) else {
            return match serde_json::from_str::<Episode>(line) {
                Ok(episode) => self.episode(&episode),
                Err(_) => Ok(()),
            };
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

impl<W: Write> View<W> {
    /// One line for an episode, in the colour of what happened: a pager would page for the
    /// raised ones, and the signal-loss lines say which monitor went quiet and when it came back.
    fn episode(&mut self, e: &Episode) -> std::io::Result<()> {
        let (text, colour) = match (e.kind, e.state) {
            (EpisodeKind::SignalLoss, EpisodeState::Raised) => (
                format!(
                    "!! signal lost: no reading since {} (declared at {})",
                    clock(e.window_start),
                    clock(e.window_end)
                ),
                "\x1b[1;33m",
            ),
            (EpisodeKind::SignalLoss, EpisodeState::Cleared) => (
                format!("<< signal restored: a reading at {}", clock(e.window_end)),
                "\x1b[36m",
            ),
            (kind, EpisodeState::Raised) => (
                format!(
                    ">> {kind} episode raised by window {}-{}{}",
                    clock(e.window_start),
                    clock(e.window_end),
                    avg(" (avg ", e.extreme_avg_hr)
                ),
                "\x1b[1;35m",
            ),
            (kind, EpisodeState::Cleared) => {
                let extreme = if kind == EpisodeKind::Bradycardia {
                    " (lowest avg "
                } else {
                    " (peak avg "
                };
                (
                    format!(
                        "<< {kind} episode cleared by window {}-{}{}",
                        clock(e.window_start),
                        clock(e.window_end),
                        avg(extreme, e.extreme_avg_hr)
                    ),
                    "\x1b[1;32m",
                )
            }
        };
        let (on, off) = if self.color {
            (colour, "\x1b[0m")
        } else {
            ("", "")
        };
        writeln!(self.out, "{on}{:<8} {text}{off}", e.patient_id)?;
        self.out.flush()
    }
}

/// `" (avg 123.4)"`-style text, or nothing without a value.
fn avg(label: &str, value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{label}{v:.1})"))
}

/// `HH:MM:SSZ` of an epoch-millisecond instant, UTC.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}
