//! A real Prometheus (Debian's `prometheus`, which `.ci/run` installs) scrapes hr-pipeline's
//! `/metrics`; its HTTP API must then say the target is up and the records counter is above 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hr_pipeline::http::{Health, serve};
use hr_pipeline::metrics::{Metrics, Outcome};

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

#[test]
fn prometheus_scrapes_the_metrics_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    metrics.add_records(Outcome::Parsed, 1234);
    metrics.record(Outcome::Invalid { code: "bad_json" });
    metrics.set_consumer_lag(0, 7);
    let health = Health::new();
    health.set_ready(true);
    let server = serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), health).unwrap();

    let mut prom = Prometheus::start(dir.path(), server.local_addr());
    prom.wait_ready(Duration::from_secs(30));
    let within = Duration::from_secs(30);
    prom.wait_for(r#"up{job="hr-pipeline"}"#, |v| v == 1.0, within);
    let parsed = prom.wait_for(
        r#"hr_records_total{job="hr-pipeline",outcome="parsed"}"#,
        |v| v > 0.0,
        within,
    );
    assert_eq!(parsed, 1234.0);
    assert_eq!(
        prom.query(r#"sum(hr_records_total{job="hr-pipeline"})"#),
        Some(1235.0)
    );
    assert_eq!(
        prom.query(r#"hr_invalid_records_total{job="hr-pipeline",code="bad_json"}"#),
        Some(1.0)
    );
    assert_eq!(
        prom.query(r#"hr_consumer_lag_records{job="hr-pipeline",partition="0"}"#),
        Some(7.0)
    );
    assert!(
        prom.query(r#"process_resident_memory_bytes{job="hr-pipeline"}"#)
            .is_some_and(|v| v > 0.0),
        "no process metrics"
    );

    // A counter that moves shows in the next scrapes.
    metrics.add_records(Outcome::Parsed, 1000);
    prom.wait_for(
        r#"hr_records_total{job="hr-pipeline",outcome="parsed"}"#,
        |v| v == 2234.0,
        within,
    );

    // The target going away is seen as down.
    server.shutdown();
    prom.wait_for(r#"up{job="hr-pipeline"}"#, |v| v == 0.0, within);
}
