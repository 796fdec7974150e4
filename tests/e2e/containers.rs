//! What the image and stack tests share: the container engine (through `docker/image.sh`, which
//! knows this host's podman options), the image built once per run from this build's binaries,
//! the seed scenario's readings and alerts, and small HTTP and Kafka helpers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::Message;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use hr_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

/// The image the tests build and run.
pub const IMAGE: &str = "localhost/hr-stream:test";

/// Start of the seed scenario's window (2025-11-19T07:15:00Z).
pub const W0: i64 = 1_763_536_500_000;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Says on the terminal (not captured by the test harness) why a test did not run.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// `docker/image.sh ARGS` with extra environment, from the repository root.
pub fn image_sh(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("docker/image.sh"))
        .args(args)
        .current_dir(root());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("running docker/image.sh")
}

/// Like [`image_sh`], panicking with its output unless it succeeds; returns its stdout.
pub fn image_sh_ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = image_sh(args, envs);
    assert!(
        out.status.success(),
        "docker/image.sh {args:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `podman` or `docker`, or `None` (after saying so) where neither can run containers.
pub fn engine(test: &str) -> Option<String> {
    let out = image_sh(&["which"], &[]);
    if out.status.success() {
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        skip(
            test,
            &format!(
                "neither podman nor docker can run containers here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        );
        None
    }
}

/// Removes what `cargo test` tells its test about the package under test (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...) from the environment of `cmd`, which runs `cargo build`: some build scripts
/// (ring's) rerun when one of these changes, and every crate above them (polars, hr-batch) is
/// rebuilt, minutes of work, each time a test builds after a plain `cargo build` and the other way
/// round.
pub fn without_test_env(cmd: &mut Command) -> &mut Command {
    const SET_FOR_TESTS: [&str; 6] = [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if SET_FOR_TESTS.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The folder of this build's binaries (`target/debug` for `cargo test`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // <target>/<profile>/deps/e2e-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("the profile folder")
        .to_path_buf()
}

/// [`IMAGE`], built once per test run from this build's four binaries (built first if needed,
/// as the demo does), on the local debootstrap base where podman has no registry.
pub fn image(engine: &str) -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let bins = bin_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        without_test_env(&mut build);
        // The demo's build command, word for word: the same packages give the same features, so
        // the demo test and this one share one build of the binaries.
        build.current_dir(root()).args([
            "build",
            "-q",
            "-p",
            "hr-sim",
            "-p",
            "hr-pipeline",
            "-p",
            "hr-batch",
            "-p",
            "hr-dashboard",
            "-p",
            "hr-stream",
            "--bins",
            "--example",
            "alert_view",
        ]);
        if bins.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo build").success());
        if engine == "podman" && std::env::var_os("HR_IMAGE_BASE").is_none() {
            // Made once (about two minutes), then kept: `image.sh base` returns at once.
            image_sh_ok(&["base"], &[]);
        }
        let bin_dir = bins.to_string_lossy().into_owned();
        image_sh_ok(
            &["build"],
            &[("HR_IMAGE", IMAGE), ("HR_BIN_DIR", bin_dir.as_str())],
        );
        let _ = writeln!(
            std::io::stderr(),
            "image {IMAGE} built from {bin_dir} in {:.0?}",
            started.elapsed()
        );
    });
    IMAGE
}

/// A container (or compose project) removed when the test ends, whatever happens.
pub struct Cleanup(pub Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = image_sh(&args, &[]);
        }
    }
}

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on `127.0.0.1:port`: the status code and the body, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Waits until `GET path` answers 200; the time it took.
///
/// # Panics
/// When it does not within `timeout`; the message has `context()`.
pub fn wait_200(
    port: u16,
    path: &str,
    timeout: Duration,
    context: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    loop {
        if let Some((200, _)) = http_get(port, path) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{path} on port {port} did not answer 200 within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One reading as a monitor sends it.
fn reading(patient: &str, offset_ms: i64, bpm: i64) -> String {
    format!(
        r#"{{"patient_id":"{patient}","timestamp":"{}","heart_rate_bpm":{bpm}}}"#,
        hr_model::format_timestamp(W0 + offset_ms)
    )
}

/// The seed scenario (three patients, three readings each in one minute: normal, tachycardia,
/// bradycardia, each patient on a partition of its own) and then one reading per patient 70 s
/// later, whose event time closes the first window of a job that runs on.
pub fn produce_seed_scenario(bootstrap: &str, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .expect("a producer");
    let patients = [
        ("p001", [72, 75, 78], 74),
        ("p002", [120, 125, 130], 124),
        ("p003", [40, 42, 45], 43),
    ];
    for (partition, (patient, bpms, later)) in patients.into_iter().enumerate() {
        let readings = bpms
            .into_iter()
            .enumerate()
            .map(|(j, bpm)| reading(patient, 10_000 * j as i64, bpm))
            .chain([reading(patient, 70_000, later)]);
        for value in readings {
            producer
                .send(
                    BaseRecord::to(topic)
                        .key(patient)
                        .payload(&value)
                        .partition(partition as i32),
                )
                .map_err(|(e, _)| e)
                .expect("queueing a reading");
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("the readings acknowledged");
}

/// Every record of `topic` committed so far, read_committed, once `want` have arrived (or the
/// timeout passed), and a second more to catch any extra one; values as JSON.
pub fn read_committed(bootstrap: &str, topic: &str, want: usize, timeout: Duration) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("the topic's metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut extra_until = None;
    loop {
        let now = Instant::now();
        if now > deadline || extra_until.is_some_and(|t| now > t) {
            break;
        }
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
            let value =
                serde_json::from_slice(msg.payload().unwrap_or_default()).expect("a JSON record");
            out.push(value);
        }
        if out.len() >= want && extra_until.is_none() {
            extra_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    out.sort_by(|a: &Value, b: &Value| {
        a["patient_id"]
            .as_str()
            .cmp(&b["patient_id"].as_str())
            .then(a["window_start"].as_i64().cmp(&b["window_start"].as_i64()))
    });
    out
}

/// Asserts that `alerts` are exactly the seed scenario's three, one per patient for the first
/// window: normal, tachycardia, bradycardia.
pub fn assert_seed_alerts(alerts: &[Value], context: &str) {
    let expect = [
        ("p001", 75.0, 72, 78, "normal"),
        ("p002", 125.0, 120, 130, "tachycardia"),
        ("p003", 127.0 / 3.0, 40, 45, "bradycardia"),
    ];
    assert_eq!(
        alerts.len(),
        3,
        "exactly three alerts: {alerts:?}\n{context}"
    );
    for (a, (patient, avg, min, max, kind)) in alerts.iter().zip(expect) {
        assert_eq!(a["patient_id"], patient, "{a}");
        assert_eq!(a["window_start"], W0, "{a}");
        assert_eq!(a["window_end"], W0 + 60_000, "{a}");
        assert!((a["avg_hr"].as_f64().unwrap() - avg).abs() < 1e-9, "{a}");
        assert_eq!(a["min_hr"], min, "{a}");
        assert_eq!(a["max_hr"], max, "{a}");
        assert_eq!(a["count"], 3, "{a}");
        assert_eq!(a["alert_type"], kind, "{a}");
        assert_eq!(a["revision"], 0, "{a}");
    }
}

/// Writes `text` to `dir/name`, readable by the image's user (uid 10001) through a bind mount.
pub fn world_readable(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}
