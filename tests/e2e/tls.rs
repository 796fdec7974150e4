//! The real binaries on a TLS + SCRAM-SHA-256 cluster (`testkit::tls_broker`), configured only
//! through `-X`, as a user of a hospital cluster runs them: `hr-pipeline topics`, `hr-sim`, a
//! bounded `hr-pipeline run`, and a read-back of the alerts topic over SASL_SSL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hr_kafka::testkit::{ALICE, tls_broker, unique_topic};
use hr_kafka::{Polled, Source, SourceConfig};
use serde_json::Value;

/// Readings the simulator writes; every one must end in exactly one window.
const READINGS: u64 = 300;

/// Builds the two binaries (as `examples/demo.sh` does) and returns the folder they are in.
fn binaries() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "hr-sim", "-p", "hr-pipeline", "--bins"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "building hr-sim and hr-pipeline");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("debug")
}

/// Runs `bin args`, with no `HR_*` variable of the caller's shell leaking in, and fails the test
/// on a non-zero exit, showing what the binary printed.
fn run(bin: &Path, args: &[String]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HR_") {
            cmd.env_remove(k);
        }
    }
    let started = Instant::now();
    // A port the OS picks for hr-pipeline's endpoints: the demo test may hold the default.
    let out = cmd
        .env("RUST_LOG", "warn")
        .env("HR_HTTP", "127.0.0.1:0")
        .output()
        .unwrap();
    eprintln!(
        "{} {} took {:?}",
        bin.file_name().unwrap().to_string_lossy(),
        args.first().map_or("", String::as_str),
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn topics_simulator_job_and_read_back_work_over_sasl_ssl_with_scram() {
    let broker = tls_broker();
    let props = broker.sasl_props("SCRAM-SHA-256", ALICE);
    let bin = binaries();
    let input = unique_topic("tls_events");
    let alerts = unique_topic("tls_alerts");
    let group = unique_topic("tls_job");
    let dir = tempfile::tempdir().unwrap();

    let mut kafka = vec!["--bootstrap".to_owned(), broker.sasl_ssl.clone()];
    for (k, v) in &props {
        kafka.push("-X".into());
        kafka.push(format!("{k}={v}"));
    }
    let topics = [
        "--input-topic".to_owned(),
        input.clone(),
        "--alerts-topic".into(),
        alerts.clone(),
    ];

    let mut args = vec!["topics".to_owned()];
    args.extend(kafka.iter().cloned());
    args.extend(topics.iter().cloned());
    args.extend(["--partitions".into(), "2".into()]);
    let out = run(&bin.join("hr-pipeline"), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("created {input}")), "{stdout}");

    // 300 readings of 5 patients in simulated time: a minute of event time, 10 s windows.
    let mut args = kafka.clone();
    args.extend([
        "--topic".into(),
        input.clone(),
        "--start".into(),
        "2025-11-19T07:00:00Z".into(),
        "--events".into(),
        READINGS.to_string(),
        "--patients".into(),
        "5".into(),
        "--rate".into(),
        "5".into(),
        "--no-progress".into(),
    ]);
    run(&bin.join("hr-sim"), &args);

    let mut args = vec!["run".to_owned()];
    args.extend(kafka.iter().cloned());
    args.extend(topics.iter().cloned());
    args.extend([
        "--group".into(),
        group,
        "--from-beginning".into(),
        "--bounded".into(),
        "--size".into(),
        "10s".into(),
        "--alerts-dir".into(),
        dir.path().to_string_lossy().into_owned(),
    ]);
    run(&bin.join("hr-pipeline"), &args);

    // Read the alerts back over SASL_SSL, as a pager would.
    let src = Source::new(&SourceConfig {
        bootstrap: broker.sasl_ssl.clone(),
        group: unique_topic("tls_check"),
        topic: alerts.clone(),
        from_beginning: true,
        bounded: true,
        overrides: props.clone(),
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows: Vec<Value> = Vec::new();
    while !src.is_done() {
        assert!(Instant::now() < deadline, "read {} alerts", rows.len());
        src.take_rebalances();
        if let Polled::Record(r) = src.poll(Duration::from_millis(100)).unwrap() {
            rows.push(serde_json::from_slice(r.payload()).unwrap());
        }
    }
    assert!(!rows.is_empty(), "the job wrote alerts to {alerts}");
    let patients: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|a| a["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(patients.len(), 5, "every patient has windows: {patients:?}");
    let counted: u64 = rows.iter().map(|a| a["count"].as_u64().unwrap()).sum();
    assert_eq!(
        counted, READINGS,
        "every reading is in exactly one 10 s window"
    );
}
