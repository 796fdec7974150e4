//! The binary's contract: the token, a port in use, clean shutdown. These need no broker: the
//! dashboard points at a closed port and keeps serving.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Dashboard, closed_port, http, wait_exit};

fn dead_broker() -> String {
    format!("127.0.0.1:{}", closed_port())
}

#[test]
fn with_a_token_nothing_is_served_without_it() {
    let bootstrap = dead_broker();
    let dash = Dashboard::start_with_env(
        &["--bootstrap", &bootstrap, "--pipeline-metrics", "off"],
        &[("HR_DASHBOARD_TOKEN", "t0ken-A")],
    );
    for path in [
        "/",
        "/app.js",
        "/app.css",
        "/events",
        "/api/snapshot",
        "/api/status",
        "/nope",
    ] {
        let (status, text) = http(&dash.addr, path, &[], 1 << 16);
        assert_eq!(status, 401, "{path}: {text}");
        assert!(
            !text.contains("<html") && !text.contains("tiles"),
            "{path} leaked: {text}"
        );
    }
    let wrong = [("Authorization", "Bearer t0ken-B")];
    assert_eq!(http(&dash.addr, "/", &wrong, 1 << 16).0, 401);
    assert_eq!(http(&dash.addr, "/?token=t0ken-", &[], 1 << 16).0, 401);
    assert_eq!(
        http(
            &dash.addr,
            "/",
            &[("Cookie", "hr_dashboard_token=nope")],
            1 << 16
        )
        .0,
        401
    );

    let bearer = [("Authorization", "Bearer t0ken-A")];
    let (status, page) = http(&dash.addr, "/", &bearer, 1 << 16);
    assert_eq!(status, 200);
    assert!(page.contains("<title>hr-stream ward</title>"));
    assert!(page.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    let (status, snap) = http(&dash.addr, "/api/snapshot?token=t0ken-A", &[], 1 << 16);
    assert_eq!(status, 200);
    assert!(snap.contains(r#""tiles":[]"#), "{snap}");
    // The event stream opens with a snapshot (read only its start: it never ends).
    let (status, events) = http(&dash.addr, "/events", &bearer, 200);
    assert_eq!(status, 200);
    assert!(events.contains("text/event-stream"), "{events}");

    // /?token= moves the token into a cookie and away from the address bar.
    let (status, head) = http(&dash.addr, "/?token=t0ken-A", &[], 1 << 16);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /\r\n"), "{head}");
    assert!(
        head.contains("set-cookie: hr_dashboard_token=t0ken-A; Path=/; HttpOnly; SameSite=Strict"),
        "{head}"
    );
    let cookie = [("Cookie", "other=1; hr_dashboard_token=t0ken-A")];
    assert_eq!(http(&dash.addr, "/app.js", &cookie, 1 << 16).0, 200);
}

#[test]
fn the_config_file_has_a_dashboard_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hr-stream.toml");
    let broker = dead_broker();
    std::fs::write(
        &file,
        format!(
            "bootstrap = \"{}\"\n[dashboard]\nauth-token = \"from-file\"\npipeline-metrics = \"off\"\n",
            broker
        ),
    )
    .unwrap();
    let dash = Dashboard::start(&["--config", file.to_str().unwrap()]);
    assert_eq!(http(&dash.addr, "/", &[], 1 << 16).0, 401);
    let (status, body) = http(
        &dash.addr,
        "/api/status",
        &[("Authorization", "Bearer from-file")],
        1 << 16,
    );
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""status":"off""#),
        "metrics off from the file: {body}"
    );
}

#[test]
fn without_a_token_it_serves_loopback_only_by_default() {
    let bootstrap = dead_broker();
    let dash = Dashboard::start(&["--bootstrap", &bootstrap, "--pipeline-metrics", "off"]);
    assert!(dash.url.starts_with("http://127.0.0.1:"), "{}", dash.url);
    let (status, js) = http(&dash.addr, "/app.js", &[], 1 << 20);
    assert_eq!(status, 200);
    // The page never builds markup from data.
    assert!(
        !js.contains("innerHTML") && !js.contains("insertAdjacentHTML"),
        "app.js uses HTML sinks"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_hr-dashboard"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:8090]"), "{help}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hr-dashboard"))
        .args(["--listen", &addr.to_string(), "--bootstrap", &dead_broker()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("it exits");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("port {} is already in use", addr.port())),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "it served nothing: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(taken);
}

#[test]
fn sigterm_stops_it_cleanly_with_a_browser_connected() {
    let bootstrap = dead_broker();
    let mut dash = Dashboard::start(&["--bootstrap", &bootstrap, "--pipeline-metrics", "off"]);
    // An open event stream must not hold the shutdown up.
    let addr = dash.addr.clone();
    let stream = std::thread::spawn(move || http(&addr, "/events", &[], 1 << 20));
    std::thread::sleep(Duration::from_millis(500));
    let status = dash
        .terminate(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM; log:\n{}", dash.log()));
    assert!(status.success(), "{status}; log:\n{}", dash.log());
    let (code, events) = stream.join().unwrap();
    assert_eq!(code, 200);
    assert!(events.contains("event: snapshot"), "{events}");
    assert!(dash.log().contains("Stopping."), "{}", dash.log());
}
