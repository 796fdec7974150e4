//! What a person sees, in headless Chromium, with the dashboard reading the real broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hr_kafka::testkit;
use serde_json::{Value, json};

use crate::support::{Browser, Dashboard, alert, closed_port, produce};

/// Every tile as the page shows it, in page order.
const TILES: &str = r#"
    return [...document.querySelectorAll('#tiles .tile')].map((t) => ({
      id: t.querySelector('.pid').textContent,
      state: t.dataset.state,
      word: t.querySelector('.word').textContent,
      shown_word: t.querySelector('.word').innerText,
      avg: t.querySelector('.num').textContent,
      min: t.querySelector('.min').textContent,
      max: t.querySelector('.max').textContent,
      count: t.querySelector('.count').textContent,
      colour: getComputedStyle(t).borderLeftColor,
      points: t.querySelector('.line').getAttribute('points').split(' ').filter(Boolean).length,
      episodes: t.querySelector('.ep').textContent,
      hidden: t.hidden,
    }));
"#;

const XSS_ID: &str = "<img src=x onerror=alert(1)>";
const TOKEN: &str = "ward-7-token";

fn tile<'a>(tiles: &'a Value, id: &str) -> &'a Value {
    tiles
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no tile for {id} in {tiles:#}"))
}

/// Twelve windows per patient, oldest first, ending at `last` (the avg shown on the tile).
fn history(id: &str, from: f64, last: f64, t_last: &str) -> Vec<(String, String)> {
    (0..12)
        .map(|m| {
            let avg = from + (last - from) * f64::from(m) / 11.0;
            let t = if m == 11 { t_last } else { "normal" };
            let avg = if m == 11 {
                last
            } else {
                (avg * 10.0).round() / 10.0
            };
            alert(
                id,
                i64::from(m),
                avg,
                (avg - 6.0) as u16,
                (avg + 7.0) as u16,
                118,
                t,
            )
        })
        .collect()
}

/// A stand-in for the pipeline's `/metrics`: the records counter grows 500 per scrape.
async fn fake_pipeline_metrics() -> String {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::Relaxed) * 500;
            async move {
                format!(
                    "# TYPE hr_records_total counter\n\
                     hr_records_total{{outcome=\"parsed\"}} {n}\n\
                     hr_records_total{{outcome=\"late\"}} 2\n\
                     # TYPE hr_consumer_lag_records gauge\n\
                     hr_consumer_lag_records{{partition=\"0\"}} 10\n\
                     hr_consumer_lag_records{{partition=\"1\"}} 5\n"
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn screenshot_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ward_page_shows_the_scripted_scenario() {
    let bootstrap = testkit::bootstrap();
    let alerts_topic = testkit::unique_topic("dash-alerts");
    let episodes_topic = testkit::unique_topic("dash-episodes");
    testkit::create_topic(&bootstrap, &alerts_topic, 3);
    testkit::create_topic(&bootstrap, &episodes_topic, 1);
    let metrics = fake_pipeline_metrics().await;
    let dash = Dashboard::start(&[
        "--bootstrap",
        &bootstrap,
        "--alerts-topic",
        &alerts_topic,
        "--episodes-topic",
        &episodes_topic,
        "--pipeline-metrics",
        &metrics,
        "--auth-token",
        TOKEN,
    ]);
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("{}?token={TOKEN}", dash.url))
        .await
        .unwrap();
    // The token moved into a cookie and out of the address bar.
    assert_eq!(c.current_url().await.unwrap().as_str(), dash.url);
    browser
        .until(
            Duration::from_secs(30),
            "the page says the dashboard is reading live",
            "return document.querySelector('#conn.level-ok') && \
             document.getElementById('conn').textContent.startsWith('Live')",
        )
        .await;

    let mut records = Vec::new();
    records.extend(history("bed-01", 70.0, 72.4, "normal"));
    records.extend(history("bed-02", 88.0, 131.4, "tachycardia"));
    records.extend(history("bed-03", 58.0, 44.5, "bradycardia"));
    records.extend(history("bed-04", 76.0, 79.0, "normal"));
    records.extend(history(XSS_ID, 80.0, 81.0, "normal"));
    for (i, base) in [64.0, 69.0, 75.0, 83.0, 91.0].into_iter().enumerate() {
        records.extend(history(
            &format!("bed-{:02}", i + 6),
            base,
            base + 3.0,
            "normal",
        ));
    }
    // A type and a field the pipeline is only now adding.
    let mut v: Value =
        serde_json::from_str(&history("bed-05", 70.0, 73.0, "normal")[11].1).unwrap();
    v["window_start"] = json!(1_764_000_000_000_i64 + 11 * 60_000);
    v["alert_type"] = json!("insufficient_data");
    v["count"] = json!(2);
    v["thresholds"] =
        json!({"tachycardia_above": 100.0, "bradycardia_below": 50.0, "min_readings": 10});
    records.extend(history("bed-05", 70.0, 73.0, "normal").into_iter().take(11));
    records.push(("bed-05".into(), v.to_string()));
    records.push(alert("bed-11", 11, 77.0, 70, 85, 120, "normal"));
    let started = Instant::now();
    produce(&bootstrap, &alerts_topic, &records);
    let episode = |id: &str, state: &str, kind: &str| {
        let v = json!({
            "patient_id": id, "episode_id": format!("{id}-1"), "state": state, "kind": kind,
            "window_start": 1_764_000_000_000_i64 + 11 * 60_000,
            "window_end": 1_764_000_000_000_i64 + 12 * 60_000,
            "extreme_avg_hr": 131.4,
        });
        (id.to_owned(), v.to_string())
    };
    produce(
        &bootstrap,
        &episodes_topic,
        &[
            episode("bed-04", "raised", "signal_loss"),
            episode("bed-02", "raised", "tachycardia"),
        ],
    );

    // A tile for every patient within 10 s of their windows.
    browser
        .until(
            Duration::from_secs(10).saturating_sub(started.elapsed()),
            "a tile for each of the 12 patients",
            "return document.querySelectorAll('#tiles .tile').length === 12",
        )
        .await;
    browser
        .until(
            Duration::from_secs(10).saturating_sub(started.elapsed()),
            "bed-04 shown as signal lost",
            &format!(
                "return (() => {{ {TILES} }})().some((t) => t.id === 'bed-04' && t.state === 'signal_lost')"
            ),
        )
        .await;
    let tiles = browser.js(TILES).await;

    let tachy = tile(&tiles, "bed-02");
    assert_eq!(tachy["state"], "tachycardia");
    assert_eq!(tachy["word"], "tachycardia");
    assert_eq!(
        tachy["shown_word"], "TACHYCARDIA",
        "shown as a word, in capitals"
    );
    assert_eq!(tachy["avg"], "131.4");
    assert_eq!(
        (&tachy["min"], &tachy["max"], &tachy["count"]),
        (&json!("125"), &json!("138"), &json!("118"))
    );
    assert_eq!(tachy["colour"], "rgb(198, 40, 40)", "tachycardia red");
    assert_eq!(tachy["points"], 12, "a sparkline of all 12 windows");
    assert_eq!(tachy["episodes"], "episode: tachycardia");

    let lost = tile(&tiles, "bed-04");
    assert_eq!(lost["word"], "signal lost");
    assert_eq!(lost["colour"], "rgb(106, 27, 154)");
    let brady = tile(&tiles, "bed-03");
    assert_eq!(
        (&brady["word"], &brady["avg"]),
        (&json!("bradycardia"), &json!("44.5"))
    );
    assert_eq!(brady["colour"], "rgb(21, 101, 192)");
    let few = tile(&tiles, "bed-05");
    assert_eq!(
        (&few["word"], &few["count"]),
        (&json!("insufficient data"), &json!("2"))
    );
    let normal = tile(&tiles, "bed-01");
    assert_eq!(
        (&normal["word"], &normal["avg"]),
        (&json!("normal"), &json!("72.4"))
    );
    assert_eq!(normal["colour"], "rgb(46, 125, 50)");
    assert_eq!(tile(&tiles, "bed-11")["points"], 1);

    // The hostile id is text: no element was made from it and no alert fired.
    assert_eq!(tile(&tiles, XSS_ID)["word"], "normal");
    assert_eq!(
        browser
            .js("return document.querySelectorAll('img').length")
            .await,
        0
    );
    assert!(
        c.get_alert_text().await.is_err(),
        "an alert() dialog opened"
    );

    // Abnormal first: signal lost, then tachycardia/bradycardia, then insufficient data, then normal.
    let order: Vec<&str> = tiles
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        &order[..4],
        ["bed-04", "bed-02", "bed-03", "bed-05"],
        "{order:?}"
    );

    // The feed, and the job's health from its metrics.
    let feed = browser
        .js("return document.getElementById('feed').innerText")
        .await;
    let feed = feed.as_str().unwrap();
    assert!(
        feed.contains("bed-04") && feed.contains("signal loss episode raised"),
        "{feed}"
    );
    assert!(feed.contains("tachycardia · 131.4 bpm"), "{feed}");
    let job = browser
        .until(
            Duration::from_secs(10),
            "the job's rate shown",
            "const t = document.getElementById('job').textContent; return t.includes('records/s') && !t.includes('rate –') && t",
        )
        .await;
    assert!(
        job.as_str()
            .unwrap()
            .contains("lag 15 records (2 partitions)"),
        "{job}"
    );

    let topics = browser
        .until(
            Duration::from_secs(5),
            "what the dashboard reads",
            &format!("const t = document.getElementById('topics').textContent; return t.includes('{episodes_topic}: 2 records') && t"),
        )
        .await;
    assert!(
        topics
            .as_str()
            .unwrap()
            .starts_with(&format!("{alerts_topic}: 133 records")),
        "{topics}"
    );

    // Live: a new tachycardic window moves bed-01 up among the abnormal tiles.
    produce(
        &bootstrap,
        &alerts_topic,
        &[alert("bed-01", 12, 118.2, 110, 126, 119, "tachycardia")],
    );
    let moved = browser
        .until(
            Duration::from_secs(10),
            "bed-01 turns tachycardic",
            &format!(
                "const ts = (() => {{ {TILES} }})(); const i = ts.findIndex((t) => t.id === 'bed-01'); \
                 return ts[i].state === 'tachycardia' && ts[i].avg === '118.2' && i"
            ),
        )
        .await;
    assert_eq!(moved, 1, "after the signal-lost tile, before bed-02");

    // Filters: by id, and by state.
    c.find(fantoccini::Locator::Id("filter"))
        .await
        .unwrap()
        .send_keys("bed-0")
        .await
        .unwrap();
    browser
        .until(
            Duration::from_secs(5),
            "filter by id hides the others",
            "return document.getElementById('shown').textContent === 'Showing 9 of 12 patients'",
        )
        .await;
    c.find(fantoccini::Locator::Id("filter"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    browser
        .js(
            "const s = document.getElementById('state'); s.value = 'tachycardia'; \
             s.dispatchEvent(new Event('change')); return null",
        )
        .await;
    let visible = browser
        .js(&format!(
            "return (() => {{ {TILES} }})().filter((t) => !t.hidden).map((t) => t.id)"
        ))
        .await;
    assert_eq!(visible, json!(["bed-01", "bed-02"]));
    browser
        .js("const s = document.getElementById('state'); s.value = ''; \
             s.dispatchEvent(new Event('change')); \
             const f = document.getElementById('filter'); f.value = ''; \
             f.dispatchEvent(new Event('input')); return null")
        .await;
    browser
        .until(
            Duration::from_secs(5),
            "all tiles shown again",
            "return document.getElementById('shown').textContent === 'Showing 12 of 12 patients'",
        )
        .await;

    browser.assert_clean().await;

    let png = c.screenshot().await.unwrap();
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    browser.close().await;
    assert!(!dash.log().contains("ERROR"), "{}", dash.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_patients_stay_responsive() {
    let bootstrap = testkit::bootstrap();
    let topic = testkit::unique_topic("dash-alerts-1k");
    testkit::create_topic(&bootstrap, &topic, 3);
    let dash = Dashboard::start(&[
        "--bootstrap",
        &bootstrap,
        "--alerts-topic",
        &topic,
        "--episodes-topic",
        "off",
        "--pipeline-metrics",
        "off",
    ]);
    let browser = Browser::start().await;
    browser.client.goto(&dash.url).await.unwrap();
    browser
        .until(
            Duration::from_secs(30),
            "the page says the dashboard is reading live",
            "return !!document.querySelector('#conn.level-ok')",
        )
        .await;
    // Record the longest gap between timer ticks while the ward streams in: a page busy
    // re-rendering would show it here.
    browser
        .js("window.__gap = 0; let last = performance.now(); \
             setInterval(() => { const n = performance.now(); window.__gap = Math.max(window.__gap, n - last); last = n; }, 20); \
             return null")
        .await;
    let mut records = Vec::new();
    for m in 0..3 {
        for i in 0..1000 {
            let id = format!("p{i:04}");
            let (avg, t) = if i % 20 == 7 {
                (125.0, "tachycardia")
            } else {
                (60.0 + f64::from(i % 30), "normal")
            };
            records.push(alert(&id, m, avg + f64::from(m as u32), 50, 140, 100, t));
        }
    }
    let started = Instant::now();
    produce(&bootstrap, &topic, &records);
    browser
        .until(
            Duration::from_secs(10).saturating_sub(started.elapsed()),
            "1,000 tiles",
            "return document.querySelectorAll('#tiles .tile').length === 1000 && \
                    document.getElementById('shown').textContent === 'Showing 1000 of 1000 patients'",
        )
        .await;
    browser
        .until(
            Duration::from_secs(10),
            "every patient's third window",
            "return [...document.querySelectorAll('#tiles .line')].every((l) => l.getAttribute('points').split(' ').length === 3)",
        )
        .await;
    let gap = browser.js("return window.__gap").await.as_f64().unwrap();
    assert!(
        gap < 1000.0,
        "the page stalled for {gap} ms while 3,000 windows arrived"
    );
    let first = browser
        .js("return [...document.querySelectorAll('#tiles .tile')].slice(0, 51).map((t) => t.dataset.state)")
        .await;
    let first: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        first[..50].iter().all(|s| *s == "tachycardia"),
        "the 50 tachycardic patients first"
    );
    assert_eq!(first[50], "normal");
    let t = Instant::now();
    browser
        .client
        .find(fantoccini::Locator::Id("filter"))
        .await
        .unwrap()
        .send_keys("p0427")
        .await
        .unwrap();
    browser
        .until(
            Duration::from_secs(3),
            "the filter finds one patient among 1,000",
            "return document.getElementById('shown').textContent === 'Showing 1 of 1000 patients'",
        )
        .await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "filtering took {:?}",
        t.elapsed()
    );
    assert_eq!(
        browser
            .js("return document.getElementById('job').textContent")
            .await,
        "Job: metrics not configured"
    );
    browser.assert_clean().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_when_the_broker_is_down() {
    let dead = format!("127.0.0.1:{}", closed_port());
    let no_job = format!("http://127.0.0.1:{}/metrics", closed_port());
    let mut dash = Dashboard::start(&["--bootstrap", &dead, "--pipeline-metrics", &no_job]);
    let browser = Browser::start().await;
    browser.client.goto(&dash.url).await.unwrap();
    let text = browser
        .until(
            Duration::from_secs(15),
            "the page shows the broker as down",
            "const c = document.getElementById('conn'); return c.classList.contains('level-down') && c.textContent",
        )
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains(&format!("Kafka broker {dead} unreachable")),
        "{text}"
    );
    browser
        .until(
            Duration::from_secs(10),
            "the job's metrics shown as unavailable",
            "return document.getElementById('job').textContent === 'Job: metrics unavailable'",
        )
        .await;
    browser.assert_clean().await;

    // And when the dashboard itself goes away, the page says that too instead of going stale.
    assert!(
        dash.terminate(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    browser
        .until(
            Duration::from_secs(10),
            "the page shows the dashboard server as unreachable",
            "const c = document.getElementById('conn'); \
             return c.classList.contains('level-down') && c.textContent.startsWith('Dashboard server unreachable')",
        )
        .await;
    browser.close().await;
}
