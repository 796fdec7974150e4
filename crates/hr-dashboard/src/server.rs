//! The HTTP side: one page, its two assets, a snapshot as JSON, and the live updates as
//! Server-Sent Events.
//!
//! Updates are coalesced: every [`THROTTLE`] the view's changes (only the tiles that changed) go
//! out as one `delta` event, serialised once for every browser, and once a second a `status`
//! event says how the Kafka connection and the job are. A browser that connects gets a
//! `snapshot` first; one that falls too far behind gets a fresh snapshot instead of the deltas
//! it missed.
//!
//! With a token configured nothing is served without it: `Authorization: Bearer <token>`, or
//! `?token=<token>` on any URL. Opening the page as `/?token=<token>` sets an HttpOnly,
//! SameSite=Strict cookie and redirects to `/`, so the token leaves the address bar and the
//! page's own requests (assets, the event stream) carry the cookie.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::health::{JobHealth, JobScrape, RateTracker};
use crate::reader::{Shared, lock};
use crate::scrape::{MetricsUrl, fetch};
use crate::status::{BrokerSnap, Connection, ReaderSnap, connection};
use crate::view::ViewStats;

/// How often changed tiles are pushed to browsers, at most.
pub const THROTTLE: Duration = Duration::from_millis(250);
/// How often the status (Kafka connection, job health) is pushed.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the pipeline's metrics are scraped.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(2);
/// The cookie that carries the token after `/?token=...`.
pub const TOKEN_COOKIE: &str = "hr_dashboard_token";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Scripts, styles and connections from this origin only, no inline script, no framing: a value
/// from the stream that slipped into markup still could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct Msg {
    event: &'static str,
    data: Arc<str>,
}

/// The server's state.
pub struct App {
    shared: Arc<Shared>,
    token: Option<String>,
    metrics: Option<MetricsUrl>,
    job: Mutex<JobHealth>,
    tx: broadcast::Sender<Msg>,
    shutdown: watch::Receiver<bool>,
}

/// The status event's body.
#[derive(Serialize)]
struct Status {
    connection: Connection,
    broker: BrokerSnap,
    readers: Vec<ReaderSnap>,
    job: JobHealth,
    view: ViewStats,
    metrics_url: Option<String>,
}

impl App {
    /// The server state over `shared`; `shutdown` turning true ends every event stream.
    pub fn new(
        shared: Arc<Shared>,
        token: Option<String>,
        metrics: Option<MetricsUrl>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let job = if metrics.is_some() {
            JobHealth::WAITING
        } else {
            JobHealth::OFF
        };
        Arc::new(Self {
            shared,
            token,
            metrics,
            job: Mutex::new(job),
            tx: broadcast::channel(256).0,
            shutdown,
        })
    }

    fn status(&self) -> Status {
        let broker = self.shared.broker();
        let readers = self.shared.readers();
        Status {
            connection: connection(&broker, &readers),
            broker,
            readers,
            job: lock(&self.job).clone(),
            view: lock(&self.shared.view).stats(),
            metrics_url: self.metrics.as_ref().map(ToString::to_string),
        }
    }

    fn status_json(&self) -> String {
        serde_json::to_string(&self.status()).expect("status serialises")
    }

    fn snapshot_json(&self) -> String {
        let snap = lock(&self.shared.view).snapshot();
        serde_json::to_string(&snap).expect("snapshot serialises")
    }

    fn publish(&self, event: &'static str, data: String) {
        // No subscriber is fine: nobody is looking.
        let _ = self.tx.send(Msg {
            event,
            data: data.into(),
        });
    }
}

/// The page's routes, behind the token check when a token is configured.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/events", get(events))
        .route("/api/snapshot", get(snapshot))
        .route("/api/status", get(status))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Pushes the view's changes every [`THROTTLE`] and the status every [`STATUS_EVERY`] until
/// shutdown.
pub async fn publish_loop(app: Arc<App>) {
    let mut tick = tokio::time::interval(THROTTLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = Instant::now() - STATUS_EVERY;
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let changes = lock(&app.shared.view).take_changes();
        if !changes.is_empty() {
            app.publish(
                "delta",
                serde_json::to_string(&changes).expect("changes serialise"),
            );
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            app.publish("status", app.status_json());
        }
    }
}

/// Scrapes the pipeline's metrics every [`SCRAPE_EVERY`] until shutdown (returns at once when no
/// URL is configured).
pub async fn scrape_loop(app: Arc<App>) {
    let Some(url) = app.metrics.clone() else {
        return;
    };
    let started = Instant::now();
    let mut rates = RateTracker::default();
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(SCRAPE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let health = match fetch(&url, Duration::from_millis(1500)).await {
            Ok(text) => rates.observe(
                started.elapsed().as_millis() as u64,
                JobScrape::from_text(&text),
            ),
            Err(e) => rates.failed(e),
        };
        *lock(&app.job) = health;
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn snapshot(State(app): State<Arc<App>>) -> Response {
    json(app.snapshot_json())
}

async fn status(State(app): State<Arc<App>>) -> Response {
    json(app.status_json())
}

fn json(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before the snapshot: a delta racing it is applied twice, which is harmless
    // (tiles are replaced whole, feed entries are skipped by sequence number); a delta lost
    // between the two would not be.
    let rx = app.tx.subscribe();
    let first = vec![
        Event::default().event("snapshot").data(app.snapshot_json()),
        Event::default().event("status").data(app.status_json()),
    ];
    let for_lag = app.clone();
    let live = futures::stream::unfold(rx, move |mut rx| {
        let app = for_lag.clone();
        async move {
            let ev = match rx.recv().await {
                Ok(m) => Event::default().event(m.event).data(&*m.data),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "A browser fell behind; sending it a snapshot.");
                    Event::default().event("snapshot").data(app.snapshot_json())
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((ev, rx))
        }
    });
    let mut shutdown = app.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let stream = futures::stream::iter(first)
        .chain(live)
        .map(Ok)
        .take_until(stop);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Security headers on every answer, and the token check.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut resp = match &app.token {
        None => next.run(req).await,
        Some(token) => match presented(&req, token) {
            Presented::Query if req.uri().path() == "/" => {
                // Move the token from the address bar into a cookie.
                let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            Presented::Query | Presented::Header | Presented::Cookie => next.run(req).await,
            Presented::None => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "hr-dashboard: this dashboard needs its token: open /?token=<token>, or send \
                 `Authorization: Bearer <token>`.\n",
            )
                .into_response(),
        },
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

enum Presented {
    Query,
    Header,
    Cookie,
    None,
}

fn presented(req: &Request, token: &str) -> Presented {
    let h: &HeaderMap = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
        && same(t.trim(), token)
    {
        return Presented::Header;
    }
    if let Some(q) = req.uri().query()
        && q.split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|t| same(&percent_decode(t), token))
    {
        return Presented::Query;
    }
    let in_cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .any(|t| same(t, token));
    if in_cookie {
        Presented::Cookie
    } else {
        Presented::None
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token's
/// prefix.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `token` can travel in a cookie and a URL unchanged (printable ASCII without
/// separators), which the server relies on.
pub fn token_is_usable(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_graphic() && !b";,\"\\%&+=".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_decoding() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
        assert!(token_is_usable("s3cr3t-Token_1.~"));
        assert!(!token_is_usable(""));
        assert!(!token_is_usable("a b"));
        assert!(!token_is_usable("a;b"));
    }
}
