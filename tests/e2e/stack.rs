//! `docker/compose-stack.yml`, the whole stack, run by `docker compose` or podman-compose (through
//! `docker/image.sh compose`) with this build's image: the `topics` job, two pipeline instances
//! in one group, the dashboard and Prometheus, all with the host's network. Kafka is the test broker
//! (the file's `kafka` service needs the apache/kafka image, which no registry here serves); where
//! `prom/prometheus` cannot be pulled either, Prometheus is Debian's binary in an image of its own.
//! The seed scenario must give exactly its alerts, both instances must be ready and scraped, and the
//! dashboard must show the patients.

use std::time::{Duration, Instant};

use hr_kafka::testkit::{bootstrap, create_topic, unique_topic};
use serde_json::Value;

use crate::containers::{
    Cleanup, assert_seed_alerts, engine, free_port, http_get, image, image_sh, image_sh_ok,
    produce_seed_scenario, read_committed, root, wait_200, world_readable,
};

#[test]
fn the_stack_runs_two_instances_the_dashboard_and_prometheus() {
    let Some(engine) = engine("the_stack_runs") else {
        return;
    };
    let image = image(&engine);
    let prometheus_image = if which("prometheus") {
        image_sh_ok(&["prometheus"], &[]);
        "localhost/hr-prometheus:local"
    } else {
        "prom/prometheus:v3.5.0"
    };
    let bootstrap = bootstrap();
    let input = unique_topic("hr-stack-events");
    let alerts = unique_topic("hr-stack-alerts");
    let episodes = unique_topic("hr-stack-episodes");
    // The changelog too is made by the job; the input topic with its 3 partitions by the test, so
    // each seed patient has a partition of its own. The `topics` service makes the rest.
    create_topic(&bootstrap, &input, 3);

    let dir = tempfile::tempdir().unwrap();
    let config = world_readable(
        dir.path(),
        "stack.toml",
        &format!(
            "bootstrap = \"{bootstrap}\"\n\
             [pipeline]\n\
             group = \"{input}-group\"\n\
             input_topic = \"{input}\"\n\
             alerts_topic = \"{alerts}\"\n\
             episodes_topic = \"{episodes}\"\n\
             profiles_topic = \"none\"\n\
             partitions = 3\n\
             [dashboard]\n\
             alerts_topic = \"{alerts}\"\n\
             episodes_topic = \"{episodes}\"\n"
        ),
    );
    let (p1, p2, dash, prom) = (free_port(), free_port(), free_port(), free_port());
    let prometheus_config = world_readable(
        dir.path(),
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: hr-pipeline\n    static_configs:\n      \
             - targets: ['127.0.0.1:{p1}', '127.0.0.1:{p2}']\n"
        ),
    );
    let project = format!("hr-stack-test-{}", std::process::id());
    let file = root().join("docker/compose-stack.yml");
    let file = file.to_string_lossy().into_owned();
    let env: Vec<(&str, String)> = vec![
        ("HR_IMAGE", image.to_owned()),
        ("HR_PROMETHEUS_IMAGE", prometheus_image.to_owned()),
        ("HR_STACK_CONFIG", config.to_string_lossy().into_owned()),
        (
            "HR_STACK_PROMETHEUS_CONFIG",
            prometheus_config.to_string_lossy().into_owned(),
        ),
        ("HR_PIPELINE_1_HTTP", format!("127.0.0.1:{p1}")),
        ("HR_PIPELINE_2_HTTP", format!("127.0.0.1:{p2}")),
        ("HR_STACK_DASHBOARD", format!("127.0.0.1:{dash}")),
        ("HR_STACK_PROMETHEUS", format!("127.0.0.1:{prom}")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-f", &file, "-p", &project];
        all.extend_from_slice(args);
        image_sh(&all, &env)
    };
    let _cleanup = Cleanup(vec![
        ["compose", "-f", &file, "-p", &project, "down", "-t", "10"]
            .map(String::from)
            .to_vec(),
    ]);
    let logs = || {
        let out = compose(&["logs"]);
        format!(
            "--- compose logs\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let started = Instant::now();
    // The topics first (the file's order, without its kafka service), then the long-running ones.
    let out = compose(&["run", "--rm", "--no-deps", "topics"]);
    assert!(
        out.status.success(),
        "the topics service: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let out = compose(&[
        "up",
        "-d",
        "--no-deps",
        "pipeline-1",
        "pipeline-2",
        "dashboard",
        "prometheus",
    ]);
    assert!(
        out.status.success(),
        "compose up: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    for port in [p1, p2] {
        wait_200(port, "/readyz", Duration::from_secs(90), logs);
    }
    eprintln!(
        "stack: both instances ready {:.1?} after compose run",
        started.elapsed()
    );

    produce_seed_scenario(&bootstrap, &input);
    let got = read_committed(&bootstrap, &alerts, 3, Duration::from_secs(60));
    assert_seed_alerts(&got, &logs());

    for port in [p1, p2] {
        let (status, metrics) = http_get(port, "/metrics").expect("/metrics answers");
        assert_eq!(status, 200);
        assert!(metrics.contains("hr_records_total"), "{metrics}");
    }
    // The dashboard shows the three patients, the tachycardic one as such.
    wait_until(Duration::from_secs(60), &logs, || {
        http_get(dash, "/api/snapshot").is_some_and(|(status, body)| {
            status == 200
                && ["p001", "p002", "p003", "tachycardia"]
                    .iter()
                    .all(|w| body.contains(w))
        })
    });
    // Prometheus scrapes both instances.
    wait_until(Duration::from_secs(60), &logs, || {
        let Some((200, body)) = http_get(prom, "/api/v1/query?query=up") else {
            return false;
        };
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let up = v["data"]["result"].as_array().cloned().unwrap_or_default();
        up.len() == 2 && up.iter().all(|r| r["value"][1] == "1")
    });
}

fn which(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Polls `check` every 200 ms until it holds; panics with `context()` after `timeout`.
fn wait_until(timeout: Duration, context: &dyn Fn() -> String, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < timeout,
            "not within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
