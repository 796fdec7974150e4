//! The container image (`docker/Containerfile`), built from this build's binaries by
//! `docker/image.sh`, run with the host's network against the test broker: its default command is
//! the streaming job, configured by a mounted TOML file and `HR_*` variables; it gets ready, passes
//! its own health check, turns the seed scenario into exactly the seed's alerts, runs as a user
//! that is not root, stops cleanly on SIGTERM, and carries the other three binaries.

use std::time::Duration;

use hr_kafka::testkit::{bootstrap, create_topic, unique_topic};

use crate::containers::{
    Cleanup, assert_seed_alerts, engine, free_port, http_get, image, image_sh, image_sh_ok,
    produce_seed_scenario, read_committed, wait_200, world_readable,
};

#[test]
fn image_runs_the_seed_scenario_with_its_health_check_and_stops_cleanly() {
    let Some(engine) = engine("image_runs_the_seed_scenario") else {
        return;
    };
    let image = image(&engine);
    let bootstrap = bootstrap();
    let input = unique_topic("hr-image-events");
    let alerts = unique_topic("hr-image-alerts");
    let episodes = unique_topic("hr-image-episodes");
    for topic in [&input, &alerts, &episodes] {
        create_topic(&bootstrap, topic, 3);
    }
    let dir = tempfile::tempdir().unwrap();
    // The connection and the topics from the file; the HTTP address from a variable.
    let config = world_readable(
        dir.path(),
        "hr-stream.toml",
        &format!(
            "bootstrap = \"{bootstrap}\"\n\
             [pipeline]\n\
             group = \"{input}-group\"\n\
             input_topic = \"{input}\"\n\
             alerts_topic = \"{alerts}\"\n\
             episodes_topic = \"{episodes}\"\n\
             profiles_topic = \"none\"\n"
        ),
    );
    let port = free_port();
    let name = format!("hr-image-test-{}", std::process::id());
    let _cleanup = Cleanup(vec![vec![
        "engine".into(),
        "rm".into(),
        "-f".into(),
        name.clone(),
    ]]);
    image_sh_ok(
        &[
            "engine",
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "-v",
            &format!("{}:/etc/hr-stream/hr-stream.toml:ro", config.display()),
            "-e",
            "HR_CONFIG=/etc/hr-stream/hr-stream.toml",
            "-e",
            &format!("HR_HTTP=127.0.0.1:{port}"),
            image,
        ],
        &[],
    );
    let logs = || {
        let out = image_sh(&["engine", "logs", &name], &[]);
        format!(
            "--- container log\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let ready = wait_200(port, "/readyz", Duration::from_secs(90), logs);
    eprintln!("{image}: /readyz answered 200 {ready:.1?} after `run -d` returned");
    produce_seed_scenario(&bootstrap, &input);
    let got = read_committed(&bootstrap, &alerts, 3, Duration::from_secs(60));
    assert_seed_alerts(&got, &logs());

    // The image's own health check (HEALTHCHECK, kept by the docker image format).
    if engine == "podman" {
        // As the engine judges it: unhealthy only after the HEALTHCHECK's 3 retries fail in a
        // row (one `podman exec` took over its 5 s timeout on this 2-core machine while a
        // 3-node cluster test ran beside it).
        let mut tries = Vec::new();
        let healthy = (0..3).any(|_| {
            let out = image_sh(&["engine", "healthcheck", "run", &name], &[]);
            tries.push(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            out.status.success()
        });
        assert!(
            healthy,
            "podman healthcheck run failed 3 times: {tries:?}\n{}",
            logs()
        );
    } else {
        let healthy = (0..60).any(|_| {
            std::thread::sleep(Duration::from_secs(1));
            image_sh_ok(
                &[
                    "engine",
                    "inspect",
                    "--format",
                    "{{.State.Health.Status}}",
                    &name,
                ],
                &[],
            )
            .trim()
                == "healthy"
        });
        assert!(healthy, "the container never became healthy\n{}", logs());
    }
    let (status, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(metrics.contains("hr_alerts_total"), "{metrics}");

    let uid = image_sh_ok(&["engine", "exec", &name, "id", "-u"], &[]);
    assert_eq!(uid.trim(), "10001", "the job runs as the image's own user");

    // SIGTERM: the job commits what it has and exits 0.
    image_sh_ok(&["engine", "stop", "-t", "30", &name], &[]);
    let code = image_sh_ok(
        &[
            "engine",
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            &name,
        ],
        &[],
    );
    assert_eq!(code.trim(), "0", "exit status after SIGTERM\n{}", logs());

    // The other binaries run in the image too (their libraries are all there).
    for bin in ["hr-sim", "hr-batch", "hr-dashboard", "hr-pipeline"] {
        let out = image_sh(&["engine", "run", "--rm", image, bin, "--help"], &[]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{bin} --help in the image: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
