//! A readable live view of alerts: reads alert JSON lines on stdin (as `hr-pipeline` writes them to
//! its alerts directory) and prints one row per window, abnormal ones highlighted.
//!
//! `tail -F output/alerts/*.jsonl | cargo run -q --example alert_view`

use std::io::{BufRead, Write};

use hr_model::{Alert, AlertType};

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let color = std::env::var_os("NO_COLOR").is_none();
    writeln!(
        out,
        "{:<8} {:<17} {:>6} {:>5} {:>5} {:>6}  alert",
        "patient", "window (UTC)", "avg", "min", "max", "count"
    )?;
    for line in stdin.lock().lines() {
        let line = line?;
        // tail -F prints file banners and blank lines between files; only alerts are shown.
        let Ok(alert) = serde_json::from_str::<Alert>(&line) else {
            continue;
        };
        let (start, end) = (clock(alert.window_start), clock(alert.window_end));
        let label = match alert.alert_type {
            AlertType::Tachycardia => "TACHYCARDIA",
            AlertType::Bradycardia => "BRADYCARDIA",
            AlertType::Normal => "normal",
        };
        let (on, off) = match (color, alert.alert_type) {
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
            out,
            "{on}{:<8} {start}-{end} {:>6.1} {:>5} {:>5} {:>6}  {label}{revision}{off}",
            alert.patient_id, alert.avg_hr, alert.min_hr, alert.max_hr, alert.count
        )?;
        out.flush()?;
    }
    Ok(())
}

/// `HH:MM:SS` of an epoch-millisecond instant, UTC.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
