//! A live ward dashboard for hr-stream: reads the alert and episode topics as its own consumer
//! group and serves one page that updates itself over Server-Sent Events.
//!
//! The design decision that shapes it: the dashboard is a reader of the job's output, never part
//! of the job. It joins its own consumer group (unique per process), commits nothing, and keeps
//! a bounded view in memory ([`WardView`]: the last 30 windows per patient, a cap on patients
//! with least-recently-updated eviction), so any number of dashboards can run, start and stop
//! without touching the pipeline, and a restart simply rebuilds the view from the topics.
//!
//! - [`record`]: alert and episode records, read leniently (new fields and alert types pass).
//! - [`view`]: the pure, bounded ward view, and what changed since the last look.
//! - [`health`]: the job's rate and lag from its Prometheus `/metrics` text (pure).
//! - [`status`]: one status line about the Kafka connection (pure).
//! - [`reader`], [`scrape`], [`server`]: the I/O around them: Kafka readers, the metrics scrape,
//!   and the axum server with the embedded page.
//!
//! # Example
//! ```
//! use hr_dashboard::{parse_alert, ViewConfig, WardView};
//! let mut view = WardView::new(ViewConfig::default());
//! let json = br#"{"patient_id":"p001","window_start":60000,"window_end":120000,"avg_hr":101.5,
//!                 "min_hr":100,"max_hr":103,"count":2,"alert_type":"tachycardia","revision":1}"#;
//! view.apply_alert(parse_alert(None, json).unwrap());
//! let tile = view.tile("p001").unwrap();
//! assert_eq!(tile.word, "tachycardia");
//! assert_eq!(tile.latest.unwrap().avg, 101.5);
//! ```
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub mod health;
pub mod reader;
pub mod record;
pub mod scrape;
pub mod server;
pub mod status;
pub mod view;

pub use health::{JobHealth, JobScrape, parse_prometheus};
pub use record::{
    AlertRecord, EpisodeRecord, EpisodeState, RecordError, parse_alert, parse_episode,
};
pub use scrape::MetricsUrl;
pub use view::{State, Tile, ViewConfig, WardView};

/// Everything the dashboard needs to run.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// librdkafka properties for the readers and the broker probe (`-X key=value`), applied
    /// after the dashboard's own (`isolation.level=read_committed`).
    pub overrides: Vec<(String, String)>,
    /// The alerts topic.
    pub alerts_topic: String,
    /// The episodes topic, read once it exists; `None` to not read one.
    pub episodes_topic: Option<String>,
    /// The consumer group of the alerts reader; the episodes reader uses `<group>-episodes`, so
    /// the two never rebalance each other.
    pub group: String,
    /// Read each topic from its earliest offset (the group is new, so this fills the view with
    /// the topics' history), or only what arrives from now on.
    pub from_beginning: bool,
    /// The pipeline's Prometheus endpoint, if any.
    pub metrics: Option<MetricsUrl>,
    /// The token every request must carry, if any.
    pub auth_token: Option<String>,
    /// The view's bounds.
    pub view: ViewConfig,
}

/// Serves the dashboard on `listener` until `shutdown` completes, then stops the Kafka readers
/// and returns once they are gone (or after 5 s, when closing them waits on a dead broker).
///
/// # Errors
/// The server's I/O error, if serving fails.
pub async fn serve(
    cfg: DashboardConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut topics = vec![cfg.alerts_topic.clone()];
    topics.extend(cfg.episodes_topic.clone());
    let shared = Arc::new(reader::Shared::new(&cfg.bootstrap, &topics, cfg.view));

    let threads = start_readers(&cfg, &shared, &topics)?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = server::App::new(shared.clone(), cfg.auth_token, cfg.metrics, stop_rx);
    let publisher = tokio::spawn(server::publish_loop(app.clone()));
    let scraper = tokio::spawn(server::scrape_loop(app.clone()));
    let result = axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Ends the event streams, which graceful shutdown would otherwise wait for forever.
            let _ = stop_tx.send(true);
        })
        .await;

    shared.stop();
    let _ = publisher.await;
    let _ = scraper.await;
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    // Closing a consumer leaves its group, which waits on the broker: a dead broker must not
    // keep a stopped dashboard alive.
    if tokio::time::timeout(Duration::from_secs(5), joined)
        .await
        .is_err()
    {
        tracing::warn!("The Kafka readers did not close within 5 s; exiting without them.");
    }
    result
}

/// Starts the Kafka side, with `isolation.level=read_committed` and then `cfg.overrides`: the
/// broker probe, and one reader thread per topic in `topics` (the alerts topic first). Returns
/// the reader threads.
fn start_readers(
    cfg: &DashboardConfig,
    shared: &Arc<reader::Shared>,
    topics: &[String],
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut overrides = vec![("isolation.level".to_owned(), "read_committed".to_owned())];
    overrides.extend(cfg.overrides.iter().cloned());
    {
        // Not joined at shutdown: it holds no group membership or offsets, and a probe blocked
        // on a dead broker must not delay the exit.
        let (shared, bootstrap, overrides, topics) = (
            shared.clone(),
            cfg.bootstrap.clone(),
            overrides.clone(),
            topics.to_vec(),
        );
        std::thread::Builder::new()
            .name("broker-probe".into())
            .spawn(move || {
                reader::probe_broker(
                    &shared,
                    &bootstrap,
                    &overrides,
                    &topics,
                    Duration::from_secs(2),
                );
            })?;
    }
    let mut threads = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let (kind, group) = if i == 0 {
            (reader::TopicKind::Alerts, cfg.group.clone())
        } else {
            (
                reader::TopicKind::Episodes,
                format!("{}-episodes", cfg.group),
            )
        };
        let source = hr_kafka::SourceConfig {
            bootstrap: cfg.bootstrap.clone(),
            group,
            topic: topic.clone(),
            from_beginning: cfg.from_beginning,
            bounded: false,
            overrides: overrides.clone(),
        };
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("read-{topic}"))
                .spawn(move || reader::read_topic(&shared, i, kind, &source))?,
        );
    }
    Ok(threads)
}
