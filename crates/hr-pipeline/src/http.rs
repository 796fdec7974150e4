//! The job's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (liveness) and `/readyz`
//! (readiness), served by axum on a thread of their own.
//!
//! [`serve`] binds before it returns, so a port already in use is an error naming the port
//! before the job reads a record, not a log line after it has started. The server runs on its
//! own single-threaded runtime: scrapes never compete with the job thread for a worker, and a
//! stuck job never stops `/healthz` from saying so.
//!
//! # Example
//! ```
//! use hr_pipeline::http::{Health, parse_http_addr, serve};
//! use hr_pipeline::metrics::Metrics;
//!
//! let addr = parse_http_addr("127.0.0.1:0")?.expect("not off");
//! let health = Health::new();
//! let server = serve(addr, Metrics::new(), health.clone())?;
//! println!("metrics on http://{}/metrics", server.local_addr());
//! health.beat(); // each turn of the job loop
//! health.set_ready(true); // once the group is joined and the assignment restored
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::{self, Metrics};

/// The address `--http` defaults to: loopback only, since the metrics describe patients'
/// data flow and nothing outside the host needs them unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// How long open connections get to finish after [`HttpServer::shutdown`].
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Liveness and readiness, shared between the job thread (which reports) and the server
/// (which answers probes). Cloning is cheap; clones share the state.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug)]
struct HealthInner {
    epoch: Instant,
    /// Nanoseconds from `epoch` to the last beat.
    last_beat_ns: AtomicU64,
    ready: AtomicBool,
    timeout: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// How long the job loop may go without turning before `/healthz` answers 503.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Live (creation counts as a beat), not ready, with [`Health::DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self::with_timeout(Self::DEFAULT_TIMEOUT)
    }

    /// Live, not ready, declared stalled after `timeout` without a beat.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            inner: Arc::new(HealthInner {
                epoch: Instant::now(),
                last_beat_ns: AtomicU64::new(0),
                ready: AtomicBool::new(false),
                timeout,
            }),
        }
    }

    /// The job loop turned. Cheap enough for every iteration (a clock read and a store).
    pub fn beat(&self) {
        let ns = self.inner.epoch.elapsed().as_nanos();
        self.inner
            .last_beat_ns
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Ready (the group is joined and the assigned partitions are restored) or not (before
    /// that, during a rebalance's restore, while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether [`Health::set_ready`] last said ready.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Time since the last beat.
    pub fn since_beat(&self) -> Duration {
        self.since_beat_at(Instant::now())
    }

    /// Whether the job loop turned within the timeout.
    pub fn is_live(&self) -> bool {
        self.since_beat() <= self.inner.timeout
    }

    fn since_beat_at(&self, now: Instant) -> Duration {
        let last = self.inner.epoch
            + Duration::from_nanos(self.inner.last_beat_ns.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// `/healthz`'s status and body as of `now`.
    fn liveness_at(&self, now: Instant) -> (StatusCode, String) {
        let since = self.since_beat_at(now);
        if since <= self.inner.timeout {
            (
                StatusCode::OK,
                format!("ok: the job loop turned {} ms ago\n", since.as_millis()),
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "stalled: the job loop has not turned for {} s (limit {} s)\n",
                    since.as_secs(),
                    self.inner.timeout.as_secs()
                ),
            )
        }
    }

    fn readiness(&self) -> (StatusCode, &'static str) {
        if self.is_ready() {
            (StatusCode::OK, "ready\n")
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: joining the group or restoring the assigned partitions\n",
            )
        }
    }
}

/// Why the HTTP server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Something else listens on the port.
    #[error(
        "port {port} is already in use ({addr}): stop what listens there, pick another \
         address with --http HOST:PORT, or turn the endpoints off with --http off"
    )]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
        /// Its port.
        port: u16,
    },
    /// Binding failed for another reason (a privileged port, an address not on this host).
    #[error("cannot listen on {addr} (port {port}): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Its port.
        port: u16,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("starting the HTTP server: {0}")]
    Start(#[source] std::io::Error),
}

/// A running server; [`HttpServer::shutdown`] or dropping it stops it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Where it listens (with the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, gives open requests up to a second, and waits for the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

/// Binds `addr` now and serves `/metrics`, `/healthz` and `/readyz` on a thread of its own
/// until the returned [`HttpServer`] is shut down or dropped.
///
/// # Errors
/// [`HttpError::AddrInUse`] naming the port when something already listens there,
/// [`HttpError::Bind`] for any other bind failure, [`HttpError::Start`] when the runtime or
/// thread cannot be created.
pub fn serve(addr: SocketAddr, metrics: Metrics, health: Health) -> Result<HttpServer, HttpError> {
    let port = addr.port();
    let listener = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            HttpError::AddrInUse { addr, port }
        } else {
            HttpError::Bind { addr, port, source }
        }
    })?;
    listener.set_nonblocking(true).map_err(HttpError::Start)?;
    let local = listener.local_addr().map_err(HttpError::Start)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Start)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(HttpError::Start)?
    };
    let app = router(AppState { metrics, health });
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("hr-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut graceful = stopped.clone();
                let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = graceful.wait_for(|s| *s).await;
                });
                let mut hard = stopped;
                // A client holding a keep-alive connection open must not hold shutdown up.
                let deadline = async move {
                    let _ = hard.wait_for(|s| *s).await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::select! {
                    result = server => {
                        if let Err(error) = result {
                            tracing::warn!(%error, "The HTTP server stopped.");
                        }
                    }
                    () = deadline => {}
                }
            });
        })
        .map_err(HttpError::Start)?;
    tracing::info!("Serving http://{local}/metrics, /healthz and /readyz.");
    Ok(HttpServer {
        addr: local,
        stop,
        thread: Some(thread),
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn index() -> &'static str {
    "hr-pipeline: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)\n"
}

async fn metrics_page(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    s.health.liveness_at(Instant::now()).into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    s.health.readiness().into_response()
}

/// Reads `--http`'s value: `off` disables the endpoints; `HOST:PORT` (a host name is
/// resolved, its first address used); a bare `PORT` means `127.0.0.1:PORT`.
///
/// # Errors
/// A message quoting the text when it is none of those.
///
/// # Example
/// ```
/// use hr_pipeline::http::parse_http_addr;
/// assert_eq!(parse_http_addr("off"), Ok(None));
/// assert_eq!(parse_http_addr("9464").unwrap().unwrap().to_string(), "127.0.0.1:9464");
/// assert_eq!(parse_http_addr("0.0.0.0:9100").unwrap().unwrap().port(), 9100);
/// assert!(parse_http_addr("nine").is_err());
/// ```
pub fn parse_http_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    if !s.contains(':') {
        return Err(format!(
            "`{s}` is not an address: expected HOST:PORT (e.g. {DEFAULT_ADDR}), a port, or `off`"
        ));
    }
    s.to_socket_addrs()
        .map_err(|e| {
            format!("`{s}` is not an address: {e} (expected HOST:PORT, a port, or `off`)")
        })?
        .next()
        .map(Some)
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Outcome;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// One HTTP/1.0 GET: (status, content-type, body).
    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let ctype = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, ctype, body.to_owned())
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn metrics_are_served_in_prometheus_text() {
        let m = Metrics::new();
        m.add_records(Outcome::Parsed, 41);
        let server = serve(loopback(), m.clone(), Health::new()).unwrap();
        m.record(Outcome::Parsed);
        let (status, ctype, body) = get(server.local_addr(), "/metrics");
        assert_eq!(status, 200);
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            body.contains("hr_records_total{outcome=\"parsed\"} 42\n"),
            "{body}"
        );
        assert_eq!(get(server.local_addr(), "/nope").0, 404);
        assert!(get(server.local_addr(), "/").2.contains("/metrics"));
        server.shutdown();
    }

    #[test]
    fn healthz_follows_the_beat_and_readyz_the_flag() {
        let health = Health::with_timeout(Duration::from_millis(200));
        let server = serve(loopback(), Metrics::new(), health.clone()).unwrap();
        let addr = server.local_addr();
        health.beat();
        let (status, _, body) = get(addr, "/healthz");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("ok"), "{body}");
        assert_eq!(get(addr, "/readyz").0, 503);
        health.set_ready(true);
        assert_eq!(
            get(addr, "/readyz"),
            (200, "text/plain; charset=utf-8".into(), "ready\n".into())
        );
        std::thread::sleep(Duration::from_millis(300));
        let (status, _, body) = get(addr, "/healthz");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("has not turned"), "{body}");
        health.beat();
        assert_eq!(get(addr, "/healthz").0, 200);
        health.set_ready(false);
        assert_eq!(get(addr, "/readyz").0, 503);
    }

    #[test]
    fn liveness_turns_503_after_30_s_without_a_beat() {
        let health = Health::new();
        health.beat();
        let now = Instant::now();
        assert_eq!(health.liveness_at(now).0, StatusCode::OK);
        assert_eq!(
            health.liveness_at(now + Duration::from_secs(29)).0,
            StatusCode::OK
        );
        let (status, body) = health.liveness_at(now + Duration::from_secs(31));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("for 31 s (limit 30 s)"), "{body}");
        assert!(health.is_live());
        assert!(!health.is_ready());
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_the_port() {
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, Metrics::new(), Health::new()).unwrap_err();
        assert!(matches!(err, HttpError::AddrInUse { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("port {} is already in use", addr.port())),
            "{text}"
        );
        assert!(text.contains("--http off"), "{text}");
    }

    #[test]
    fn an_address_not_on_this_host_is_a_bind_error() {
        // TEST-NET-1 (RFC 5737) is never a local address.
        let addr: SocketAddr = "192.0.2.1:9464".parse().unwrap();
        let err = serve(addr, Metrics::new(), Health::new()).unwrap_err();
        assert!(matches!(err, HttpError::Bind { port: 9464, .. }), "{err:?}");
        assert!(err.to_string().contains("port 9464"), "{err}");
    }

    #[test]
    fn shutdown_frees_the_port_even_with_a_keep_alive_client() {
        let server = serve(loopback(), Metrics::new(), Health::new()).unwrap();
        let addr = server.local_addr();
        // An HTTP/1.1 client that keeps its connection open after a response.
        let mut idle = TcpStream::connect(addr).unwrap();
        write!(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(idle.read(&mut buf).unwrap() > 0);
        let started = Instant::now();
        server.shutdown();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // The port is free again: binding it succeeds.
        let again = serve(addr, Metrics::new(), Health::new()).unwrap();
        drop(again);
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn http_addresses_parse() {
        assert_eq!(parse_http_addr("off"), Ok(None));
        assert_eq!(parse_http_addr("OFF"), Ok(None));
        assert_eq!(
            parse_http_addr(DEFAULT_ADDR),
            Ok(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            parse_http_addr("9100"),
            Ok(Some("127.0.0.1:9100".parse().unwrap()))
        );
        assert_eq!(
            parse_http_addr("[::1]:9464"),
            Ok(Some("[::1]:9464".parse().unwrap()))
        );
        let local = parse_http_addr("localhost:9464").unwrap().unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9464, "{local}");
        for bad in ["", "nine", "127.0.0.1", "127.0.0.1:99999", "host:port"] {
            assert!(parse_http_addr(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
