//! The `hr-pipeline` binary's HTTP endpoints against a real broker, scraped by a real
//! Prometheus (Debian's `prometheus`, which `.ci/run` installs): its HTTP API must say the
//! target is up and count every record the job read. Also: a port in use stops the binary
//! before it touches Kafka.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hr_kafka::Sink;
use hr_kafka::testkit::{bootstrap, create_topic, unique_topic};

/// Kills Prometheus when the test ends, also when it panics.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Self {
        let addr = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: hr-pipeline\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let bin = std::env::var_os("PROMETHEUS").unwrap_or_else(|| "prometheus".into());
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e}; install Debian's prometheus (apt-get install prometheus) \
                     or point PROMETHEUS at the binary",
                    bin.to_string_lossy()
                )
            });
        Self {
            child,
            addr,
            log: dir.join("prometheus.err"),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/-/ready` answers 200.
    fn wait_ready(&mut self, within: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", self.logs());
            }
            if http_get(self.addr, "/-/ready").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "prometheus not ready within {within:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of an instant query's only sample, or `None` while it has none.
    fn query(&self, promql: &str) -> Option<f64> {
        let (code, body) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", encode(promql)),
        )?;
        assert_eq!(code, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{promql} gave several series: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `promql` until `accept` holds for its value.
    fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool, within: Duration) -> f64 {
        let started = Instant::now();
        let mut last = None;
        loop {
            last = self.query(promql).or(last);
            if let Some(v) = last.filter(|v| accept(*v)) {
                return v;
            }
            assert!(
                started.elapsed() < within,
                "{promql} was {last:?} after {within:?}; targets: {}\n{}",
                http_get(self.addr, "/api/v1/targets").map_or_else(String::new, |r| r.1),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 GET (no chunked bodies); `None` when nothing listens yet.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The pipeline binary, sent SIGTERM (then killed) when the test ends, also when it panics.
struct Pipeline {
    child: Child,
    log: std::path::PathBuf,
}

impl Pipeline {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `path` answers `code`.
    fn wait_for(&mut self, addr: SocketAddr, path: &str, code: u16, within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("hr-pipeline exited ({status}):\n{}", self.logs());
            }
            if let Some((got, body)) = http_get(addr, path)
                && got == code
            {
                return body;
            }
            assert!(
                started.elapsed() < within,
                "{path} did not answer {code} within {within:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status within 30 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit 30 s after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// 2025-11-19T07:15:00Z in epoch ms: the start of a one-minute window.
const W0: i64 = 1_763_536_500_000;

#[test]
fn prometheus_scrapes_the_running_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let b = bootstrap();
    let topic = |name: &str| unique_topic(&format!("prom-{name}"));
    let (input, alerts, dlq, late, episodes) = (
        topic("events"),
        topic("alerts"),
        topic("dlq"),
        topic("late"),
        topic("episodes"),
    );
    create_topic(&b, &input, 2);
    for t in [&alerts, &dlq, &late, &episodes] {
        create_topic(&b, t, 1);
    }
    // Three patients, one reading a second for 150 s (two windows fire per patient), and one
    // record that is not JSON.
    let mut sink = Sink::new(&b, &[]).unwrap();
    let mut sent = 0u64;
    for s in 0..150 {
        for (i, patient) in ["p1", "p2", "p3"].iter().enumerate() {
            let ts = hr_model::format_timestamp(W0 + s * 1000);
            let bpm = if *patient == "p2" { 130 } else { 70 };
            let value = format!(
                r#"{{"patient_id":"{patient}","timestamp":"{ts}","heart_rate_bpm":{bpm}}}"#
            );
            let partition = (i % 2) as i32;
            sink.send_record(
                &input,
                Some(partition),
                patient.as_bytes(),
                Some(value.as_bytes()),
                None,
            )
            .unwrap();
            sent += 1;
        }
    }
    sink.send_record(&input, Some(0), b"p1", Some(b"not json"), None)
        .unwrap();
    sent += 1;
    sink.flush(Duration::from_secs(30)).unwrap();

    let http = free_port();
    let log = dir.path().join("pipeline.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hr-pipeline"))
        .arg("run")
        .args(["--bootstrap", &b])
        .args(["--group", &unique_topic("prom-group")])
        .args(["--input-topic", &input, "--alerts-topic", &alerts])
        .args(["--dlq-topic", &dlq, "--late-topic", &late])
        .args(["--episodes-topic", &episodes, "--profiles-topic", "none"])
        .args(["--alerts-dir", "none", "--http", &http.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut pipeline = Pipeline { child, log };
    pipeline.wait_for(http, "/readyz", 200, Duration::from_secs(90));
    assert!(
        pipeline
            .wait_for(http, "/healthz", 200, Duration::from_secs(5))
            .starts_with("ok")
    );

    let mut prom = Prometheus::start(dir.path(), http);
    prom.wait_ready(Duration::from_secs(30));
    let within = Duration::from_secs(60);
    prom.wait_for(r#"up{job="hr-pipeline"}"#, |v| v == 1.0, within);
    prom.wait_for(
        r#"hr_records_total{job="hr-pipeline",outcome="parsed"}"#,
        |v| v > 0.0,
        within,
    );
    // Every record is counted once, by where it went.
    prom.wait_for(
        r#"sum(hr_records_total{job="hr-pipeline"})"#,
        |v| v == sent as f64,
        within,
    );
    assert_eq!(
        prom.query(r#"hr_invalid_records_total{job="hr-pipeline",code="invalid_json"}"#),
        Some(1.0)
    );
    // Windows 07:15 and 07:16 fired for each patient (07:17 is still open): 2 tachycardia
    // alerts for p2, 4 normal ones.
    prom.wait_for(
        r#"sum(hr_alerts_total{job="hr-pipeline"})"#,
        |v| v == 6.0,
        within,
    );
    assert_eq!(
        prom.query(r#"hr_alerts_total{job="hr-pipeline",type="tachycardia"}"#),
        Some(2.0)
    );
    prom.wait_for(
        r#"hr_alert_latency_seconds_count{job="hr-pipeline"}"#,
        |v| v == 6.0,
        within,
    );
    // Caught up: the committed offsets are the ends of the partitions, no lag left.
    prom.wait_for(
        r#"sum(hr_committed_offset{job="hr-pipeline"})"#,
        |v| v == sent as f64,
        within,
    );
    prom.wait_for(
        r#"sum(hr_consumer_lag_records{job="hr-pipeline"})"#,
        |v| v == 0.0,
        within,
    );
    assert!(
        prom.query(r#"hr_commits_total{job="hr-pipeline",result="ok"}"#)
            .is_some_and(|v| v >= 1.0)
    );
    assert_eq!(prom.query(r#"hr_keys{job="hr-pipeline"}"#), Some(3.0));
    // Both partitions' last reading is at 07:17:29; the watermark is 5 s and 1 ms behind.
    let last = (W0 + 149_000) as f64 / 1000.0;
    for p in ["0", "1"] {
        let series = |name: &str| format!(r#"{name}{{job="hr-pipeline",partition="{p}"}}"#);
        let max = prom.wait_for(&series("hr_max_event_time_seconds"), |_| true, within);
        assert!((max - last).abs() < 1e-3, "partition {p}: {max}");
        let wm = prom.wait_for(&series("hr_watermark_seconds"), |_| true, within);
        assert!((wm - (last - 5.001)).abs() < 1e-3, "partition {p}: {wm}");
    }
    assert_eq!(prom.query(r#"hr_broker_up{job="hr-pipeline"}"#), Some(1.0));
    assert!(
        prom.query(r#"process_resident_memory_bytes{job="hr-pipeline"}"#)
            .is_some_and(|v| v > 1e6),
        "no process metrics"
    );

    let status = pipeline.stop();
    let logs = pipeline.logs();
    assert!(status.success(), "{status}:\n{logs}");
    let exit = logs.lines().find(|l| l.contains("Exit.")).expect(&logs);
    assert!(exit.contains(&format!("read={sent} ")), "{exit}");
    assert!(
        exit.contains("events_per_s=") && exit.contains("lag=0"),
        "{exit}"
    );
    prom.wait_for(r#"up{job="hr-pipeline"}"#, |v| v == 0.0, within);
}

#[test]
fn a_port_in_use_stops_the_binary_before_it_touches_kafka() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    // Nothing listens on port 1: had the job gone on to Kafka it would wait --broker-timeout.
    let out = Command::new(env!("CARGO_BIN_EXE_hr-pipeline"))
        .args([
            "run",
            "--bootstrap",
            "127.0.0.1:1",
            "--broker-timeout",
            "1m",
        ])
        .args([
            "--http",
            &format!("127.0.0.1:{port}"),
            "--alerts-dir",
            "none",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(taken);
}
