//! The scoring targets on a small scenario through the real broker: hr-sim writes readings with
//! episodes, out-of-order readings and silences, `hr-pipeline run --bounded` turns them into
//! episode records, and `hr-batch score --check` reads those from the topic and must find every
//! required episode and silence, no false raised episode, and the delay targets.
//!
//! hr-sim and hr-pipeline are run as binaries, built here into the same target directory if the
//! test run has not built them already.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use hr_kafka::testkit;

/// `target/<profile>/`, where cargo put this package's binary and builds the others.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_hr-batch"))
        .parent()
        .expect("the binary has a folder")
        .to_owned()
}

/// The hr-sim and hr-pipeline binaries next to hr-batch's, built once per test run (the
/// packages are not dependencies of this one, so cargo does not build their binaries for it).
fn other_binaries() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "hr-sim", "-p", "hr-pipeline", "--bins"]);
        if bin_dir().ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "building hr-sim and hr-pipeline failed");
        (bin_dir().join("hr-sim"), bin_dir().join("hr-pipeline"))
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the binary runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the job over `input` with `flags` and returns its episodes topic.
fn pipeline(bootstrap: &str, input: &str, name: &str, flags: &[&str]) -> String {
    let (_, pipeline) = other_binaries();
    let topic = |what: &str| testkit::unique_topic(&format!("score-{name}-{what}"));
    let episodes = topic("episodes");
    // Made here rather than by the job: episodes carry their (2025) event time as the Kafka
    // timestamp, and only the testkit's topics are exempt from the broker's time retention.
    testkit::create_topic(bootstrap, &episodes, 1);
    run(Command::new(pipeline)
        .args([
            "run",
            "--bounded",
            "--bootstrap",
            bootstrap,
            "--input-topic",
            input,
        ])
        .args(["--group", &topic("group"), "--episodes-topic", &episodes])
        .args([
            "--alerts-topic",
            &topic("alerts"),
            "--dlq-topic",
            &topic("dlq"),
        ])
        .args(["--late-topic", &topic("late"), "--profiles-topic", "none"])
        .args(["--alerts-dir", "none", "--partition-silence-after", "off"])
        .args(flags)
        .env("RUST_LOG", "warn"));
    episodes
}

fn score(bootstrap: &str, truth: &Path, episodes: &str, flags: &[&str]) -> serde_json::Value {
    let out = run(Command::new(env!("CARGO_BIN_EXE_hr-batch"))
        .arg("score")
        .arg("--truth")
        .arg(truth)
        .args(["--episodes-topic", episodes, "--bootstrap", bootstrap])
        .args(["--format", "json", "--check"])
        .args(flags));
    serde_json::from_slice(&out.stdout).expect("score --format json is JSON")
}

#[test]
fn a_small_scenario_meets_the_targets_through_the_broker() {
    let bootstrap = testkit::bootstrap();
    let (sim, _) = other_binaries();
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let input = testkit::unique_topic("score-events");
    testkit::create_topic(&bootstrap, &input, 2);
    run(Command::new(sim)
        .args([
            "--bootstrap",
            &bootstrap,
            "--topic",
            &input,
            "--no-progress",
        ])
        .args(["--start", "2025-11-19T07:00:00Z", "--duration", "20m"])
        .args(["--patients", "20", "--rate", "20", "--seed", "3"])
        .args(["--episode-rate", "3", "--brady-share", "0.4"])
        .args([
            "--onset",
            "20s",
            "--plateau",
            "90s..8m",
            "--recovery",
            "60s",
        ])
        .args(["--out-of-order", "0.02", "--out-of-order-max", "2500ms"])
        .args(["--silence-rate", "2", "--silence-duration", "20s..3m"])
        .arg("--truth")
        .arg(&truth));
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let count = |what: &str| -> usize {
        t["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[what].as_array().unwrap().len())
            .sum()
    };
    assert!(count("episodes") >= 8, "too few episodes to score: {t}");
    assert!(count("silences") >= 8, "too few silences to score");

    // The defaults: every required episode and silence, nothing false, median delay within
    // window + out-of-orderness + 10 s.
    let episodes = pipeline(&bootstrap, &input, "default", &[]);
    let v = score(
        &bootstrap,
        &truth,
        &episodes,
        &["--max-median-delay", "75s"],
    );
    assert_eq!(v["all_required_detected"], true, "{v}");
    assert_eq!(v["false_raised_count"], 0);
    let required: u64 = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["required"].as_u64().unwrap())
        .sum();
    assert!(required >= 10, "the scenario must require something: {v}");

    // Tuned for speed: 10 s windows every second.
    let tuned = [
        "--window",
        "sliding",
        "--size",
        "10s",
        "--slide",
        "1s",
        "--delay",
        "3s",
        "--raise-after",
        "2",
        "--clear-after",
        "10",
        "--min-readings",
        "8",
    ];
    let episodes = pipeline(&bootstrap, &input, "tuned", &tuned);
    let v = score(
        &bootstrap,
        &truth,
        &episodes,
        &["--window", "10s", "--delay", "3s"],
    );
    assert_eq!(v["all_required_detected"], true, "{v}");
    assert_eq!(v["false_raised_count"], 0, "{v}");
}
