//! The binary as a user runs it: a wrong broker address, `--config` precedence and unknown keys,
//! a closed pipe, `NO_COLOR`, and Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hr_sim() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hr-sim"));
    // The tests decide these themselves.
    for var in [
        "HR_BOOTSTRAP_SERVERS",
        "HR_CONFIG",
        "HR_SIM_PATIENTS",
        "NO_COLOR",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Patient ids of a short simulated run on stdout.
fn patients_seen(out: &Output) -> std::collections::BTreeSet<String> {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["patient_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

const SHORT_RUN: [&str; 6] = [
    "--output",
    "stdout",
    "--start",
    "2025-11-19T07:00:00Z",
    "--events",
    "60",
];

#[test]
fn an_unreachable_broker_is_one_line_within_ten_seconds_and_exit_1() {
    // Nothing listens on port 1: the connection is refused at once.
    let started = Instant::now();
    let out = hr_sim().args(["-b", "127.0.0.1:1"]).output().unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line, got:\n{err}");
    assert!(
        errors[0].contains("cannot reach Kafka at 127.0.0.1:1"),
        "{err}"
    );
    assert!(errors[0].contains("just up"), "{err}");
    assert!(err.lines().count() <= 2, "no stream of log lines:\n{err}");
}

#[test]
fn config_file_then_environment_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hr-stream.toml");
    std::fs::write(
        &file,
        "bootstrap = \"unused:9092\"\n[sim]\npatients = 3\nseed = 9\n[pipeline]\ngroup = \"x\"\n",
    )
    .unwrap();
    let ids = |n: usize| -> std::collections::BTreeSet<String> {
        (1..=n).map(|i| format!("p{i:03}")).collect()
    };
    let run = |cmd: &mut Command| cmd.args(SHORT_RUN).output().unwrap();

    let from_file = run(hr_sim().arg("--config").arg(&file));
    assert_eq!(patients_seen(&from_file), ids(3));
    let from_env = run(hr_sim().env("HR_CONFIG", &file).env("HR_SIM_PATIENTS", "4"));
    assert_eq!(patients_seen(&from_env), ids(4));
    let from_flag = run(hr_sim()
        .env("HR_CONFIG", &file)
        .env("HR_SIM_PATIENTS", "4")
        .args(["--patients", "2"]));
    assert_eq!(patients_seen(&from_flag), ids(2));
    // seed = 9 from the file changes the data; the flag gives the default seed's data back.
    let seeded = run(hr_sim()
        .arg("--config")
        .arg(&file)
        .args(["--patients", "3"]));
    let default_seed = run(hr_sim().args(["--patients", "3", "--seed", "1"]));
    assert_ne!(seeded.stdout, default_seed.stdout);
}

#[test]
fn unknown_and_wrong_typed_keys_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (text, says) in [
        ("[sim]\npatiens = 3\n", "unknown key `sim.patiens`"),
        ("[sim]\npatients = \"many\"\n", "key `patients`"),
        ("[simulator]\npatients = 3\n", "unknown key `simulator`"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = hr_sim()
            .arg("--config")
            .arg(&file)
            .args(SHORT_RUN)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_closed_pipe_ends_the_run_quietly_with_status_0() {
    for clock in [
        &["--output", "stdout"][..],
        &["--output", "stdout", "--start", "2025-11-19T07:00:00Z"],
    ] {
        let mut child = hr_sim()
            .args(clock)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("patient_id"), "{line}");
        drop(out); // `| head -1`
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "still running");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "{clock:?}: {err}");
        assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
        assert!(!err.contains("error"), "{err}");
    }
}

/// Runs `hr-sim args` under `script`, so its standard error is a terminal; returns what it wrote.
fn on_a_terminal(no_color: bool) -> String {
    let bin = env!("CARGO_BIN_EXE_hr-sim");
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("{bin} {} >/dev/null", SHORT_RUN.join(" ")),
        "/dev/null",
    ])
    .env_remove("RUST_LOG");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `text` holds an SGR (colour or style) escape, `ESC [ <digits;> m`; cursor movement
/// (the progress bar's) is not colour.
fn has_colour(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        params.starts_with('m')
    })
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let coloured = on_a_terminal(false);
    assert!(coloured.contains("Simulating monitors"), "{coloured}");
    assert!(
        has_colour(&coloured),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = on_a_terminal(true);
    assert!(plain.contains("Simulating monitors"), "{plain}");
    assert!(!has_colour(&plain), "NO_COLOR: {plain:?}");
    // Not a terminal: no colour either.
    let piped = hr_sim().args(SHORT_RUN).output().unwrap();
    assert!(!has_colour(&stderr(&piped)));
}

#[test]
fn ctrl_c_stops_a_real_time_run_within_five_seconds() {
    let bootstrap = hr_kafka::testkit::bootstrap();
    let topic = hr_kafka::testkit::unique_topic("hr_sim_ctrl_c");
    hr_kafka::testkit::create_topic(&bootstrap, &topic, 1);
    let mut child = hr_sim()
        .args(["-b", &bootstrap, "--topic", &topic, "--rate", "50"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("Simulating monitors"), "{line}");
    std::thread::sleep(Duration::from_millis(700));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("0 failed"), "{rest}");
    let _ = std::io::stderr().flush();
}

#[test]
fn the_example_config_file_is_accepted() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr-stream.toml");
    let out = hr_sim()
        .args(["--config", file])
        .args(SHORT_RUN)
        .output()
        .unwrap();
    assert_eq!(patients_seen(&out).len(), 10, "[sim] patients = 10");
}
