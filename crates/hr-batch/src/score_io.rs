//! Where `hr-batch score` gets its inputs (the truth file, episode records from a JSONL dump
//! or a topic) and how it prints the result (table, CSV, JSON).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hr_kafka::{Polled, Source, SourceConfig};
use hr_model::Episode;

use crate::error::{BatchError, Result};
use crate::score::{Score, ScoredInjection, Truth, seconds};

/// Reads hr-sim's `--truth` file.
///
/// # Errors
/// [`BatchError::InputNotFound`], [`BatchError::Io`], or [`BatchError::Truth`] when the JSON
/// is not a ground truth.
pub fn read_truth(path: &Path) -> Result<Truth> {
    let text = read(path)?;
    serde_json::from_slice(&text).map_err(|e| BatchError::Truth {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Episode records from a JSONL file (one `hr_model::Episode` per line; blank lines skipped).
///
/// # Errors
/// [`BatchError::InputNotFound`], [`BatchError::Io`], or [`BatchError::Malformed`] naming the
/// first line that is not an episode record.
pub fn read_episodes_jsonl(path: &Path) -> Result<Vec<Episode>> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(
            parse_episode(line).map_err(|message| BatchError::Malformed {
                path: path.to_owned(),
                line: i as u64 + 1,
                message,
            })?,
        );
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        return Err(BatchError::InputNotFound {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(|e| BatchError::io(path, e))
}

fn parse_episode(bytes: &[u8]) -> std::result::Result<Episode, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not an episode record: {e}"))
}

/// Every episode record of `topic`, read from the beginning to the end offsets seen at start
/// with `isolation.level=read_committed` (the pipeline writes episodes in transactions), as a
/// consumer group of its own that commits nothing.
///
/// `properties` are librdkafka properties (`-X`), applied before the isolation level.
///
/// # Errors
/// [`BatchError::Kafka`] when the broker cannot be read, a record is not an episode (with its
/// partition and offset), or the end is not reached within `timeout`.
pub fn read_episodes_topic(
    bootstrap: &str,
    properties: &[(String, String)],
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Episode>> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut overrides = properties.to_vec();
    overrides.push(("isolation.level".into(), "read_committed".into()));
    let source = Source::new(&SourceConfig {
        bootstrap: bootstrap.to_owned(),
        group: format!("hr-batch-score-{}-{stamp}", std::process::id()),
        topic: topic.to_owned(),
        from_beginning: true,
        bounded: true,
        overrides,
    })
    .map_err(|e| BatchError::Kafka(format!("reading {topic} at {bootstrap}: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        source.take_rebalances();
        if source.is_done() {
            return Ok(out);
        }
        if Instant::now() > deadline {
            let why = source
                .take_client_error()
                .map_or_else(String::new, |e| format!(" ({e})"));
            return Err(BatchError::Kafka(format!(
                "{topic} at {bootstrap}: not read to its end within {} s{why}",
                timeout.as_secs()
            )));
        }
        let polled = source
            .poll(Duration::from_millis(100))
            .map_err(|e| BatchError::Kafka(format!("reading {topic}: {e}")))?;
        if let Polled::Record(r) = polled {
            let episode = parse_episode(r.payload()).map_err(|message| {
                BatchError::Kafka(format!(
                    "{topic} partition {} offset {}: {message}",
                    r.partition(),
                    r.offset()
                ))
            })?;
            out.push(episode);
        }
    }
}

/// The per-kind table, then every missed required injection and every false raised record
/// (and, with `all`, every injection), then the summary line.
pub fn render_table(score: &Score, all: bool) -> String {
    let mut out = String::new();
    write_kind_table(&mut out, score);
    write_injection_table(&mut out, score, all);
    write_false_raised_table(&mut out, score);
    let _ = writeln!(out, "\n{}", score.summary_line());
    out
}

/// The per-kind table: a header, then a row per kind.
fn write_kind_table(out: &mut String, score: &Score) {
    let _ = writeln!(
        out,
        "{:<12} {:>8} {:>8} {:>7} {:>8} {:>12} {:>6} {:>7} {:>12} {:>10}",
        "kind",
        "injected",
        "detected",
        "covered",
        "required",
        "req.detected",
        "false",
        "repeats",
        "median delay",
        "max delay"
    );
    for k in &score.kinds {
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>8} {:>7} {:>8} {:>12} {:>6} {:>7} {:>12} {:>10}",
            k.kind.as_str(),
            k.injected,
            k.detected,
            k.covered,
            k.required,
            k.required_detected,
            k.false_raised,
            k.repeats,
            seconds(k.median_delay_ms),
            seconds(k.max_delay_ms)
        );
    }
}

/// Every injection with `all`, else every missed required one, under a title (nothing when
/// there are none).
fn write_injection_table(out: &mut String, score: &Score, all: bool) {
    let rows: Vec<&ScoredInjection> = score
        .injected
        .iter()
        .filter(|i| all || (i.required && !i.detected))
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            if all {
                "Injected:"
            } else {
                "Missed (required, not detected):"
            }
        );
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<30} {:>9} {:>8} {:>8} {:>9}  episode_id",
            "patient", "kind", "start", "length", "counted", "required", "delay"
        );
        for i in rows {
            let _ = writeln!(
                out,
                "{:<8} {:<12} {:<30} {:>9} {:>8} {:>8} {:>9}  {}",
                i.patient_id,
                i.kind.as_str(),
                hr_model::format_timestamp(i.start_ms),
                seconds(Some(i.end_ms - i.start_ms)),
                seconds(Some(i.counted_ms)),
                if i.required { "yes" } else { "no" },
                seconds(i.delay_ms),
                match (&i.episode_id, &i.covered_by) {
                    (Some(id), _) => id.clone(),
                    (None, Some(open)) => format!("(covered by {open})"),
                    (None, None) => "-".to_owned(),
                }
            );
        }
    }
}

/// Every false raised record, under a title (nothing when there are none).
fn write_false_raised_table(out: &mut String, score: &Score) {
    if !score.false_raised.is_empty() {
        let _ = writeln!(out, "\nFalse raised (matching no injected episode):");
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<30} {:<30} {:>8}  episode_id",
            "patient", "kind", "window_start", "window_end", "extreme"
        );
        for f in &score.false_raised {
            let e = &f.episode;
            let _ = writeln!(
                out,
                "{:<8} {:<12} {:<30} {:<30} {:>8}  {}",
                e.patient_id,
                e.kind.as_str(),
                hr_model::format_timestamp(e.window_start),
                hr_model::format_timestamp(e.window_end),
                e.extreme_avg_hr.map_or("-".into(), |x| format!("{x:.1}")),
                e.episode_id
            );
        }
    }
}

/// One CSV row per injection (`row` = `injected`) and per false raised record (`row` =
/// `false`), times in RFC 3339 UTC, lengths and delays in seconds.
pub fn render_csv(score: &Score) -> String {
    let mut out = String::from(
        "row,patient_id,kind,start,end,counted_s,required,detected,delay_s,repeats,episode_id,\
         covered_by\n",
    );
    let secs = |ms: Option<i64>| ms.map_or(String::new(), |ms| format!("{:.3}", ms as f64 / 1e3));
    for i in &score.injected {
        let _ = writeln!(
            out,
            "injected,{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&i.patient_id),
            i.kind,
            hr_model::format_timestamp(i.start_ms),
            hr_model::format_timestamp(i.end_ms),
            secs(Some(i.counted_ms)),
            i.required,
            i.detected,
            secs(i.delay_ms),
            i.repeats,
            csv_field(i.episode_id.as_deref().unwrap_or("")),
            csv_field(i.covered_by.as_deref().unwrap_or(""))
        );
    }
    for f in &score.false_raised {
        let e = &f.episode;
        let _ = writeln!(
            out,
            "false,{},{},{},{},,,,,,{},",
            csv_field(&e.patient_id),
            e.kind,
            hr_model::format_timestamp(e.window_start),
            hr_model::format_timestamp(e.window_end),
            csv_field(&e.episode_id)
        );
    }
    out
}

/// The whole score as pretty JSON (summary, kinds, injections, false raised records).
pub fn render_json(score: &Score) -> String {
    let value = serde_json::json!({
        "summary": score.summary_line(),
        "all_required_detected": score.all_required_detected(),
        "false_raised_count": score.false_raised.len(),
        "median_rate_delay_ms": score.median_rate_delay_ms,
        "max_rate_delay_ms": score.max_rate_delay_ms,
        "raised_records": score.raised_records,
        "kinds": score.kinds,
        "injected": score.injected,
        "false_raised": score.false_raised,
    });
    serde_json::to_string_pretty(&value).expect("a score always serialises")
}

/// Quotes a field that holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{ScoreOptions, score};
    use hr_model::{EpisodeKind, EpisodeState};

    fn sample() -> (Truth, Vec<Episode>) {
        let truth: Truth = serde_json::from_str(
            r#"{"start_ms": 0, "last_reading_ms": 3600000, "patients": [
              {"patient_id": "p001", "episodes": [{"kind": "tachycardia", "start_ms": 600000,
                 "plateau_start_ms": 610000, "plateau_end_ms": 900000, "end_ms": 920000}],
               "silences": [{"start_ms": 1800000, "end_ms": 1900000}]},
              {"patient_id": "p,2", "episodes": [], "silences": []}]}"#,
        )
        .unwrap();
        let episodes = vec![
            Episode {
                patient_id: "p001".into(),
                episode_id: "p001:tachycardia:600000".into(),
                state: EpisodeState::Raised,
                kind: EpisodeKind::Tachycardia,
                window_start: 600_000,
                window_end: 660_000,
                extreme_avg_hr: Some(120.5),
            },
            Episode {
                patient_id: "p,2".into(),
                episode_id: "p,2:bradycardia:0".into(),
                state: EpisodeState::Raised,
                kind: EpisodeKind::Bradycardia,
                window_start: 0,
                window_end: 60_000,
                extreme_avg_hr: Some(45.0),
            },
        ];
        (truth, episodes)
    }

    #[test]
    fn the_table_lists_misses_and_false_records() {
        let (truth, episodes) = sample();
        let s = score(&truth, &episodes, &ScoreOptions::default());
        let table = render_table(&s, false);
        assert!(
            table.contains("Missed (required, not detected):"),
            "{table}"
        );
        // The silence is required (100 s > 30 s) and was not raised.
        assert!(
            table.contains("p001     signal_loss  1970-01-01T00:30:00"),
            "{table}"
        );
        assert!(table.contains("False raised"));
        assert!(table.contains("p,2:bradycardia:0"));
        assert!(table.trim_end().ends_with(&s.summary_line()));
        assert!(!table.contains("Injected:"));
        assert!(render_table(&s, true).contains("Injected:"));
    }

    #[test]
    fn csv_has_a_row_per_injection_and_false_record() {
        let (truth, episodes) = sample();
        let s = score(&truth, &episodes, &ScoreOptions::default());
        let csv = render_csv(&s);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 2 + 1);
        assert_eq!(
            lines[1],
            "injected,p001,tachycardia,1970-01-01T00:10:00.000000+00:00,\
             1970-01-01T00:15:20.000000+00:00,290.000,true,true,65.000,0,p001:tachycardia:600000,"
        );
        assert!(
            lines[3].starts_with("false,\"p,2\",bradycardia,"),
            "{}",
            lines[3]
        );
        assert!(lines[3].ends_with(",\"p,2:bradycardia:0\","));
    }

    #[test]
    fn json_carries_the_verdicts() {
        let (truth, episodes) = sample();
        let s = score(&truth, &episodes, &ScoreOptions::default());
        let v: serde_json::Value = serde_json::from_str(&render_json(&s)).unwrap();
        assert_eq!(v["false_raised_count"], 1);
        assert_eq!(v["all_required_detected"], false);
        assert_eq!(v["median_rate_delay_ms"], 65_000);
        assert_eq!(v["injected"][0]["detected"], true);
        assert_eq!(v["kinds"][2]["kind"], "signal_loss");
    }

    #[test]
    fn jsonl_dumps_are_read_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("episodes.jsonl");
        let (_, episodes) = sample();
        let text = format!("{}\n\n{}\n", episodes[0].to_json(), episodes[1].to_json());
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_episodes_jsonl(&path).unwrap(), episodes);
        std::fs::write(&path, format!("{}\n{{\"x\":1}}\n", episodes[0].to_json())).unwrap();
        let err = read_episodes_jsonl(&path).unwrap_err();
        assert!(
            matches!(err, BatchError::Malformed { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            read_episodes_jsonl(&dir.path().join("nope")),
            Err(BatchError::InputNotFound { .. })
        ));
        std::fs::write(&path, "[]").unwrap();
        assert!(matches!(read_truth(&path), Err(BatchError::Truth { .. })));
    }
}
