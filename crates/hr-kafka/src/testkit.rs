//! A real Kafka broker for tests, shared by every test binary of a run.
//!
//! [`bootstrap`] answers, in order: the address in `HR_KAFKA_BOOTSTRAP`; a broker already answering
//! on `localhost:$HR_KAFKA_PORT` (default 9092); otherwise it starts the native single-node broker
//! with `docker/kafka-local.sh up`, which takes a file lock, so parallel test binaries never start
//! two brokers on one port. The broker is left running for the next test binary; `just down` stops it.
//!
//! [`tls_broker`] is a second broker for TLS and SASL tests, started by `docker/kafka-tls.sh up` on
//! its own ports (SASL_SSL on `$HR_KAFKA_TLS_PORT`, default 9192, and the four ports after it),
//! with a test CA, certificates and SCRAM users of its own. It too is left running for the next
//! test binary; `docker/kafka-tls.sh down` stops it (CI does, at the end).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{KafkaError, TopicSpec, blocking, client_config};

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

/// A SCRAM (or PLAIN) user of the [`TlsBroker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// `sasl.username`.
    pub name: &'static str,
    /// `sasl.password`.
    pub password: &'static str,
}

/// Super user with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN credentials.
pub const ALICE: User = User {
    name: "alice",
    password: "alice-secret",
};

/// SCRAM-SHA-256 and PLAIN credentials but no ACLs: authenticated, authorised for nothing.
pub const BOB: User = User {
    name: "bob",
    password: "bob-secret",
};

/// The secured test broker of `docker/kafka-tls.sh` (see that script and `docker/kafka-local.sh`
/// for its listeners and users) and the certificate files a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsBroker {
    /// The SASL_SSL listener: SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN.
    pub sasl_ssl: String,
    /// The SSL listener that requires a client certificate signed by [`ca`](Self::ca).
    pub mtls: String,
    /// An SSL listener whose certificate has expired.
    pub expired: String,
    /// The CA that signed the broker's and the client's certificates (`ssl.ca.location`).
    pub ca: PathBuf,
    /// A CA that signed nothing the broker uses: trusting only it must fail.
    pub other_ca: PathBuf,
    /// The client certificate for mTLS (principal `hr-client`, a super user).
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
}

impl TlsBroker {
    /// librdkafka properties for [`sasl_ssl`](Self::sasl_ssl) as `user` with `mechanism`
    /// (`SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`), trusting the test CA: what a user passes
    /// with `-X`.
    pub fn sasl_props(&self, mechanism: &str, user: User) -> Vec<(String, String)> {
        props(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user.name),
            ("sasl.password", user.password),
            ("ssl.ca.location", &path_str(&self.ca)),
        ])
    }

    /// librdkafka properties for [`mtls`](Self::mtls) with the client certificate.
    pub fn mtls_props(&self) -> Vec<(String, String)> {
        props(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &path_str(&self.ca)),
            ("ssl.certificate.location", &path_str(&self.client_cert)),
            ("ssl.key.location", &path_str(&self.client_key)),
        ])
    }
}

fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The secured test broker, started by `docker/kafka-tls.sh up` unless it already answers on
/// `localhost:$HR_KAFKA_TLS_PORT` (default 9192). The script's file lock makes parallel test
/// binaries share one broker; it is left running afterwards (`docker/kafka-tls.sh down` stops it).
///
/// # Panics
/// Panics (failing the test) when the broker cannot be started; the message says why.
pub fn tls_broker() -> &'static TlsBroker {
    static BROKER: OnceLock<TlsBroker> = OnceLock::new();
    BROKER.get_or_init(|| start_tls_broker().unwrap_or_else(|e| panic!("{e}")))
}

fn start_tls_broker() -> Result<TlsBroker, KafkaError> {
    let port: u16 = match std::env::var("HR_KAFKA_TLS_PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| KafkaError::NoBroker(format!("HR_KAFKA_TLS_PORT={p} is not a port")))?,
        Err(_) => 9192,
    };
    let state = std::env::var_os("HR_KAFKA_TLS_STATE")
        .map_or_else(|| repo_root().join(".kafka/tls-broker"), PathBuf::from);
    let tls = state.join("tls");
    let broker = TlsBroker {
        sasl_ssl: format!("localhost:{port}"),
        mtls: format!("localhost:{}", port + 2),
        expired: format!("localhost:{}", port + 4),
        ca: tls.join("ca.pem"),
        other_ca: tls.join("other-ca.pem"),
        client_cert: tls.join("client.crt"),
        client_key: tls.join("client.key"),
    };
    if answers(&broker.sasl_ssl) && broker.ca.exists() {
        return Ok(broker);
    }
    let script = repo_root().join("docker/kafka-tls.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("up")
        .env("HR_KAFKA_TLS_PORT", port.to_string())
        .env("HR_KAFKA_TLS_STATE", &state)
        .status()
        .map_err(|e| KafkaError::NoBroker(format!("running {}: {e}", script.display())))?;
    if !status.success() || !answers(&broker.sasl_ssl) || !broker.ca.exists() {
        return Err(KafkaError::NoBroker(format!(
            "{} up failed ({status}); its log is {}",
            script.display(),
            state.join("kafka.log").display()
        )));
    }
    Ok(broker)
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
/// The topic keeps its records forever (`retention.ms=-1`): tests replay readings from fixed past
/// dates, and records stamped with their event time (alerts carry their window end) would
/// otherwise be deleted by the broker's next retention check, a few minutes at most, under
/// whichever test is reading them.
///
/// # Panics
/// Panics when the topic cannot be created.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let cfg = client_config(bootstrap, &[]);
    let spec = [TopicSpec {
        configs: vec![("retention.ms".into(), "-1".into())],
        ..TopicSpec::new(topic, partitions)
    }];
    // The blocking call makes a runtime of its own, which cannot nest in an async test's.
    let run = || blocking::ensure_topics(&cfg, &spec, Duration::from_secs(30));
    let result = match tokio::runtime::Handle::try_current() {
        Ok(_) => std::thread::scope(|s| s.spawn(run).join().expect("admin thread")),
        Err(_) => run(),
    };
    result.unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
}

/// Ends `txn`'s open transaction as a process that writes alert files does, and returns how the
/// commit call ended and the witness handed over just before the commit would be sent:
/// `commit` sends the commit; otherwise keeping the witness fails ("stopped before the
/// commit"), so the transaction stays open, as a process stopped at that point leaves it.
/// `topic` is any topic that exists (a consumer of it lends the commit its group metadata).
///
/// # Panics
/// When no consumer of `topic` can be made within ten seconds.
pub fn end_with_witness(
    txn: &mut crate::Sink,
    bootstrap: &str,
    topic: &str,
    commit: bool,
) -> (Result<(), KafkaError>, Option<crate::Witness>) {
    // A topic just made may not be known yet to the broker asked.
    let source = (0..50)
        .find_map(|_| {
            crate::Source::new(&crate::SourceConfig {
                bootstrap: bootstrap.to_owned(),
                group: unique_topic("witness-group"),
                topic: topic.to_owned(),
                from_beginning: true,
                bounded: false,
                overrides: Vec::new(),
            })
            .map_err(|_| std::thread::sleep(Duration::from_millis(200)))
            .ok()
        })
        .expect("a consumer of the topic");
    let mut seen = None;
    let ended = txn.commit_unless_stopped(
        &source,
        &std::collections::BTreeMap::new(),
        Duration::from_secs(30),
        &std::sync::atomic::AtomicBool::new(false),
        &mut |w| {
            seen = w.cloned();
            if commit {
                Ok(())
            } else {
                Err(std::io::Error::other("stopped before the commit"))
            }
        },
    );
    (ended, seen)
}
