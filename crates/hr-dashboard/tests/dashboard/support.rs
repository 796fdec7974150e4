//! Helpers: the dashboard binary as a child process, headless Chromium over WebDriver, records
//! written straight to a topic, and a raw HTTP request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// The dashboard binary, started with `args` plus `--listen 127.0.0.1:0`; stopped when dropped.
pub struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT/` as it printed.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: tempfile::NamedTempFile,
}

impl Dashboard {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hr-dashboard"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("HR_DASHBOARD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting hr-dashboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "hr-dashboard printed no URL (got {line:?}); its log:\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                )
            })
            .to_owned();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self {
            child,
            url,
            addr,
            log,
        }
    }

    /// What the dashboard logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_exit(&mut self.child, within)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Writes `(key, json)` records to `topic` and waits until the broker has them all.
pub fn produce(bootstrap: &str, topic: &str, records: &[(String, String)]) {
    let mut sink = hr_kafka::Sink::new(bootstrap, &[]).expect("a producer");
    for (k, v) in records {
        sink.send_json(topic, k, v).expect("queued");
    }
    sink.flush(Duration::from_secs(30)).expect("acknowledged");
}

/// An alert record as the pipeline writes it today.
pub fn alert(
    id: &str,
    minute: i64,
    avg: f64,
    min: u16,
    max: u16,
    count: u64,
    t: &str,
) -> (String, String) {
    let start = 1_764_000_000_000 + minute * 60_000;
    let v = json!({
        "patient_id": id, "window_start": start, "window_end": start + 60_000,
        "avg_hr": avg, "min_hr": min, "max_hr": max, "count": count,
        "alert_type": t, "revision": 0,
    });
    (id.to_owned(), v.to_string())
}

/// A free port on loopback (bound and released; a test race on it is vanishingly unlikely).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Sends one HTTP/1.0 request and returns the status and the head and body as text; reads at
/// most `max` bytes (an event stream never ends).
pub fn http(addr: &str, path: &str, headers: &[(&str, &str)], max: usize) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < max {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

/// Headless Chromium under chromedriver; both stop when dropped. One at a time: the timing
/// assertions are about the page, not about three browsers sharing two cores.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

static TURN: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Default::default);

fn tool(name: &str, default: &str) -> PathBuf {
    let p = PathBuf::from(default);
    if p.exists() {
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|c| c.exists())
        })
        .unwrap_or_else(|| {
            panic!("{name} not found: install Debian's chromium and chromium-driver (.ci/run does)")
        })
}

impl Browser {
    pub async fn start() -> Self {
        let turn = TURN.clone().lock_owned().await;
        let driver_bin = tool("chromedriver", "/usr/bin/chromedriver");
        let chromium = tool("chromium", "/usr/bin/chromium");
        let port = closed_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let caps = json!({
            "browserName": "chrome",
            // Leave a JavaScript alert open, so the test can see whether one fired.
            "unhandledPromptBehavior": "ignore",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium");
        Self {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` every 100 ms until it returns something other than null/false, or panics
    /// after `within` with `what`.
    pub async fn until(&self, within: Duration, what: &str, script: &str) -> Value {
        let until = Instant::now() + within;
        loop {
            let v = self.js(script).await;
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            assert!(Instant::now() < until, "within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser console's entries (level, message) since the last call.
    pub async fn console(&self) -> Vec<(String, String)> {
        let v = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Fails the test when the console logged an error (Chromium's SEVERE: an exception, a failed
    /// load, a CSP violation) or an `alert()` dialog is open.
    pub async fn assert_clean(&self) {
        let errors: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .collect();
        assert!(errors.is_empty(), "browser console errors: {errors:?}");
        assert!(
            self.client.get_alert_text().await.is_err(),
            "an alert() dialog is open"
        );
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type":"browser"}`: the console as Chromium logged
/// it, including errors thrown before any script of ours could listen.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}
