//! `hr-dashboard`: the live ward page. Parses flags, binds the port (before anything is read),
//! and runs [`hr_dashboard::serve`] until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};
use hr_cli::{KafkaArgs, OnSignal, StopFlag};
use hr_dashboard::{DashboardConfig, MetricsUrl, ViewConfig};

#[derive(Debug, Parser)]
#[command(
    name = "hr-dashboard",
    version,
    about = "Live ward dashboard: reads heart_rate_alerts (and heart_rate_episodes once it exists) as \
             its own consumer group and serves one page with live updates.",
    after_help = "Examples:
  # The local broker, the pipeline's metrics on their default port
  hr-dashboard
  # Another port, reachable from the ward's network, with a token
  HR_DASHBOARD_TOKEN=s3cret hr-dashboard --listen 0.0.0.0:8090
  # Only what arrives from now on, no job health
  hr-dashboard --from-beginning false --pipeline-metrics off"
)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The alerts topic.
    #[arg(long, env = "HR_ALERTS_TOPIC", default_value = "heart_rate_alerts")]
    alerts_topic: String,
    /// The episodes topic, read once it exists ("off": none).
    #[arg(long, env = "HR_EPISODES_TOPIC", default_value = "heart_rate_episodes")]
    episodes_topic: String,
    /// Consumer group of the alerts reader (the episodes reader adds "-episodes"). Default: a new
    /// group per process, so every dashboard sees every partition. Dashboards given the same group
    /// split the partitions, and so the ward, between them.
    #[arg(long, env = "HR_DASHBOARD_GROUP")]
    group: Option<String>,
    /// Read the topics from their earliest offset, so the page fills with the latest windows
    /// already written (the default), or "false": only records that arrive from now on.
    #[arg(long, env = "HR_DASHBOARD_FROM_BEGINNING", action = ArgAction::Set,
          num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    from_beginning: bool,
    /// Address to serve on. The default is loopback only: patient data stays on this machine
    /// unless you choose otherwise.
    #[arg(long, env = "HR_DASHBOARD_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The pipeline's Prometheus endpoint, for the job's rate and lag ("off": none).
    #[arg(
        long,
        env = "HR_PIPELINE_METRICS",
        default_value = "http://127.0.0.1:9464/metrics"
    )]
    pipeline_metrics: String,
    /// Require this token for every request: open /?token=TOKEN once (it then lives in a cookie), or
    /// send "Authorization: Bearer TOKEN". Printable ASCII without ; , " \ % & + = or spaces.
    #[arg(long, env = "HR_DASHBOARD_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Patients kept in memory; beyond this the least recently updated patient's tile goes.
    #[arg(long, env = "HR_DASHBOARD_MAX_PATIENTS", default_value_t = ViewConfig::DEFAULT.max_patients)]
    max_patients: usize,
}

fn off(s: &str) -> bool {
    s.is_empty() || s.eq_ignore_ascii_case("off")
}

fn config(cli: Cli) -> anyhow::Result<DashboardConfig> {
    let metrics = if off(&cli.pipeline_metrics) {
        None
    } else {
        Some(
            MetricsUrl::parse(&cli.pipeline_metrics)
                .map_err(anyhow::Error::msg)
                .context("--pipeline-metrics")?,
        )
    };
    if let Some(t) = &cli.auth_token
        && !hr_dashboard::server::token_is_usable(t)
    {
        bail!(
            "--auth-token / HR_DASHBOARD_TOKEN: use printable ASCII without spaces or any of ; , \" \\ % & + ="
        );
    }
    let group = cli.group.unwrap_or_else(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("hr-dashboard-{}-{ms}", std::process::id())
    });
    Ok(DashboardConfig {
        overrides: cli.kafka.properties("hr-dashboard"),
        bootstrap: cli.kafka.bootstrap,
        alerts_topic: cli.alerts_topic,
        episodes_topic: (!off(&cli.episodes_topic)).then_some(cli.episodes_topic),
        group,
        from_beginning: cli.from_beginning,
        metrics,
        auth_token: cli.auth_token,
        view: ViewConfig {
            max_patients: cli.max_patients,
            ..ViewConfig::DEFAULT
        },
    })
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "port {} is already in use ({addr}); choose another with --listen",
            addr.port()
        ),
        _ => anyhow::Error::new(e).context(format!("listening on {addr} (port {})", addr.port())),
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = cli.listen;
    let cfg = config(cli)?;
    // Bind first: a port in use fails before anything is read from Kafka.
    let std_listener = bind(listen)?;
    let stop = StopFlag::on_signals(OnSignal {
        notice: Some("Stopping."),
        second_exits: None,
    })
    .context("catching SIGINT/SIGTERM")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let note = if cfg.auth_token.is_some() {
            " (token required: open /?token=<token>)"
        } else {
            ""
        };
        // One line on stdout, for people and scripts (`just demo`, the tests) to find the page.
        println!("hr-dashboard: serving http://{host}:{}/{note}", addr.port());
        tracing::info!(
            %addr, bootstrap = %cfg.bootstrap, alerts = %cfg.alerts_topic,
            episodes = ?cfg.episodes_topic, group = %cfg.group, "Serving."
        );
        hr_dashboard::serve(cfg, listener, async move { stop.wait().await }).await?;
        anyhow::Ok(())
    });
    // Dropping the runtime would wait for a reader thread stuck closing on a dead broker.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn main() -> ExitCode {
    hr_cli::init_logging();
    // Flags, then HR_* variables, then the `[dashboard]` table of a `--config` file, then defaults.
    let cli = hr_cli::parse::<Cli>("dashboard").args;
    hr_cli::finish("hr-dashboard", run(cli))
}
