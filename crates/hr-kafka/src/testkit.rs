//! A real Kafka broker for tests, shared by every test binary of a run.
//!
//! [`bootstrap`] answers, in order: the address in `HR_KAFKA_BOOTSTRAP`; a broker already answering
//! on `localhost:$HR_KAFKA_PORT` (default 9092); otherwise it starts the native single-node broker
//! with `docker/kafka-local.sh up`, which takes a file lock, so parallel test binaries never start
//! two brokers on one port. The broker is left running for the next test binary; `just down` stops it.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{KafkaError, TopicSpec, client_config, ensure_topics};

/// The bootstrap address of a running broker for tests, starting one if none answers.
///
/// # Panics
/// Panics (failing the test) when no broker can be found or started; the message says why.
pub fn bootstrap() -> String {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| find_or_start().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

fn find_or_start() -> Result<String, KafkaError> {
    if let Ok(addr) = std::env::var("HR_KAFKA_BOOTSTRAP") {
        return Ok(addr);
    }
    let port = std::env::var("HR_KAFKA_PORT").unwrap_or_else(|_| "9092".into());
    let addr = format!("localhost:{port}");
    if answers(&addr) {
        return Ok(addr);
    }
    let script = repo_root().join("docker/kafka-local.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("up")
        .status()
        .map_err(|e| KafkaError::NoBroker(format!("running {}: {e}", script.display())))?;
    if !status.success() || !answers(&addr) {
        return Err(KafkaError::NoBroker(format!(
            "{} up failed ({status}); set HR_KAFKA_BOOTSTRAP to use another broker",
            script.display()
        )));
    }
    Ok(addr)
}

fn answers(addr: &str) -> bool {
    addr.to_socket_addrs()
        .map(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
        })
        .unwrap_or(false)
}

/// The workspace root: this crate lives in `<root>/crates/hr-kafka`.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A topic name no other test (in this or any other run) uses: `prefix`, the process id, a counter
/// and the time, so tests never see each other's records.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Creates `topic` with `partitions` partitions on the broker at `bootstrap` (blocking; fine to call
/// from sync or async tests).
///
/// # Panics
/// Panics when the topic cannot be created.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let cfg = client_config(bootstrap, &[]);
    let spec = [TopicSpec::new(topic, partitions)];
    let run = async { ensure_topics(&cfg, &spec, Duration::from_secs(30)).await };
    let result = match tokio::runtime::Handle::try_current() {
        Ok(_) => std::thread::scope(|s| s.spawn(|| block_on(run)).join().expect("admin thread")),
        Err(_) => block_on(run),
    };
    result.unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the admin call")
        .block_on(f)
}
