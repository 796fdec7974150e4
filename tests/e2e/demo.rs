//! `examples/demo.sh --quick` (what `just demo --quick` runs) against the real broker: it must end
//! with exit 0, show tachycardia and bradycardia alerts as they arrive, with episodes and the
//! unplugged monitor's signal loss between them, count the episodes by kind, write the batch
//! report, and leave no process behind.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hr_kafka::testkit::bootstrap;

/// Long enough for a first build of the binaries on a slow machine; the demo itself runs about a minute.
const WATCHDOG: Duration = Duration::from_secs(900);

#[test]
fn quick_demo_shows_alerts_writes_the_report_and_leaves_nothing_running() {
    let bootstrap = bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut demo = Command::new("bash");
    // The demo builds the binaries with cargo: not as the package under test.
    crate::containers::without_test_env(&mut demo);
    let mut child = demo
        .arg(root.join("examples/demo.sh"))
        .arg("--quick")
        .current_dir(root)
        .env("HR_BOOTSTRAP_SERVERS", &bootstrap)
        .env("HR_DEMO_DIR", dir.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so "nothing left behind" can be checked over everything it started.
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(WATCHDOG);
        // Still running after the watchdog's time: stop the whole group so the test fails, not hangs.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
    });
    let mut stderr = String::new();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        stderr_pipe.read_to_string(&mut stderr).unwrap();
        stderr
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = err_reader.join().unwrap();
    drop(watchdog);
    let context = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    assert!(
        status.success(),
        "the demo exits 0, got {status}\n{context}"
    );

    // The live view printed every alert the job wrote, abnormal ones among them.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("normal") || l.ends_with("CARDIA"))
        .collect();
    let written: usize = std::fs::read_dir(dir.path().join("alerts"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|s| s.lines().count())
        .sum();
    assert!(written > 0, "the job wrote alerts\n{context}");
    assert_eq!(rows.len(), written, "one row per alert\n{context}");
    assert!(
        rows.iter().any(|r| r.ends_with("TACHYCARDIA")),
        "a tachycardia alert is shown\n{context}"
    );
    assert!(
        rows.iter().any(|r| r.ends_with("BRADYCARDIA")),
        "a bradycardia alert is shown\n{context}"
    );

    // Between the rows, what sets hr-stream apart: episodes raised, and the signal loss of p003,
    // whose monitor the demo unplugs.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("p003") && l.contains("signal lost")),
        "p003's signal loss is shown\n{context}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("episode raised")),
        "an episode raised is shown\n{context}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.contains("Episodes: "))
        .unwrap_or_else(|| panic!("the episodes are counted by kind\n{context}"));
    assert!(
        summary.contains("signal loss ") && !summary.contains("signal loss 0 raised"),
        "{summary}\n{context}"
    );

    // The batch report exists in both formats and counts what the job wrote.
    let parquet = dir.path().join("alert_stats/part-00000.parquet");
    assert!(
        std::fs::metadata(&parquet).is_ok_and(|m| m.len() > 0),
        "{} written\n{context}",
        parquet.display()
    );
    let csv = std::fs::read_to_string(dir.path().join("alert_stats.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let count_col = header.iter().position(|h| *h == "alert_count").unwrap();
    let type_col = header.iter().position(|h| *h == "alert_type").unwrap();
    let mut total = 0;
    let mut types = Vec::new();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        total += cells[count_col].parse::<usize>().unwrap();
        types.push(cells[type_col].to_string());
    }
    assert_eq!(total, written, "the report counts every alert\n{context}");
    assert!(types.iter().any(|t| t == "tachycardia") && types.iter().any(|t| t == "bradycardia"));
    assert!(stderr.contains("The job's counters: read="), "{context}");

    let left = processes_in_group(group);
    assert!(
        left.is_empty(),
        "processes left behind: {left:?}\n{context}"
    );
}

/// Command lines of the live processes whose process group is `group`.
fn processes_in_group(group: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&group.to_string().as_str()) && fields[0] != "Z" {
            let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            found.push(cmd.replace('\0', " "));
        }
    }
    found
}
