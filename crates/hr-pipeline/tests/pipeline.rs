//! The job end to end against a real broker: alerts, dead letters, late records, counters,
//! restart from the state changelog, and the binary's `run --bounded`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hr_kafka::client_config;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::message::{Headers, Message};
use hr_kafka::rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use hr_kafka::rdkafka::{Offset, TopicPartitionList};
use hr_kafka::testkit::{bootstrap, create_topic, unique_topic};
use hr_pipeline::driver::{RunConfig, run};
use hr_pipeline::processor::RunCounters;
use serde_json::Value;

/// 2025-11-19T07:15:00Z in epoch ms: the start of a one-minute window.
const W0: i64 = 1_763_536_500_000;

struct Topics {
    cfg: RunConfig,
}

fn setup(partitions: i32, alerts_dir: Option<std::path::PathBuf>) -> Topics {
    setup_on(&bootstrap(), partitions, alerts_dir)
}

/// A bounded job's config on broker `b` with topics of its own (the input with `partitions`).
fn setup_on(b: &str, partitions: i32, alerts_dir: Option<std::path::PathBuf>) -> Topics {
    let b = b.to_owned();
    let mut cfg = RunConfig::new(b.clone());
    cfg.group = unique_topic("hr-pipeline-test-group");
    cfg.input_topic = unique_topic("events");
    cfg.alerts_topic = unique_topic("alerts");
    cfg.dlq_topic = unique_topic("dlq");
    cfg.late_topic = unique_topic("late");
    cfg.episodes_topic = unique_topic("episodes");
    cfg.profiles_topic = Some(unique_topic("profiles"));
    cfg.alerts_dir = alerts_dir;
    cfg.bounded = true;
    create_topic(&b, &cfg.input_topic, partitions);
    for t in [
        &cfg.alerts_topic,
        &cfg.dlq_topic,
        &cfg.late_topic,
        &cfg.episodes_topic,
    ] {
        create_topic(&b, t, 1);
    }
    Topics { cfg }
}

fn reading(patient: &str, offset_ms: i64, bpm: i64) -> Vec<u8> {
    let ts = hr_model::format_timestamp(W0 + offset_ms);
    format!(r#"{{"patient_id":"{patient}","timestamp":"{ts}","heart_rate_bpm":{bpm}}}"#)
        .into_bytes()
}

/// Produces `(partition, key, value)` records in order and waits for all of them.
fn produce(topic: &str, records: &[(i32, &str, Vec<u8>)]) {
    produce_to(&bootstrap(), topic, records);
}

fn produce_to(b: &str, topic: &str, records: &[(i32, &str, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(b, &[]).create().expect("producer");
    for (p, k, v) in records {
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(*p)
                    .key(*k)
                    .payload(v.as_slice()),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

struct Read {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
    timestamp_ms: Option<i64>,
}

/// Every committed record of `topic` (all partitions) up to its current end, read as a
/// `read_committed` consumer downstream of the job would.
fn read_all(topic: &str) -> Vec<Read> {
    read_all_from(&bootstrap(), topic)
}

fn read_all_from(b: &str, topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = client_config(b, &[])
        .set("group.id", unique_topic("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut open = std::collections::BTreeSet::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("tpl");
        open.insert(p.id());
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !open.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        let caught_up = |p: i32| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            let position = consumer
                .position()
                .expect("position")
                .find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(0);
            position >= high
        };
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            // A partition that reached the committed end before its markers: look again.
            open.retain(|p| !(at_end.contains(p) && caught_up(*p)));
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(hr_kafka::rdkafka::error::KafkaError::PartitionEOF(p)) => {
                // The end of what is committed: done once nothing is behind it. Right after a
                // commit the transaction markers may still be on their way, and a transaction
                // still open holds the end back; both are waited for.
                at_end.insert(p);
                if caught_up(p) {
                    open.remove(&p);
                }
                continue;
            }
            Err(e) => panic!("reading {topic}: {e}"),
        };
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let v = String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap();
                        (h.key.to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Read {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        });
    }
    out
}

fn alerts(cfg: &RunConfig) -> Vec<Value> {
    let mut v: Vec<Value> = read_all(&cfg.alerts_topic)
        .into_iter()
        .map(|r| {
            let a: Value = serde_json::from_slice(&r.value).unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(a["patient_id"].as_str().unwrap().as_bytes())
            );
            a
        })
        .collect();
    v.sort_by_key(|a| {
        (
            a["patient_id"].as_str().unwrap().to_owned(),
            a["window_start"].as_i64(),
        )
    });
    v
}

fn assert_counters_add_up(c: &RunCounters) {
    assert_eq!(c.read, c.parsed + c.invalid, "{c:?}");
    assert_eq!(c.parsed, c.aggregated + c.late, "{c:?}");
}

#[test]
fn seed_scenario_gives_exactly_the_expected_alerts() {
    let dir = std::env::temp_dir().join(unique_topic("hr-alerts"));
    let t = setup(3, Some(dir.clone()));
    let mut records = Vec::new();
    for (i, (patient, bpms)) in [
        ("p001", [72, 75, 78]),
        ("p002", [120, 125, 130]),
        ("p003", [40, 42, 45]),
    ]
    .into_iter()
    .enumerate()
    {
        for (j, bpm) in bpms.into_iter().enumerate() {
            records.push((i as i32, patient, reading(patient, 10_000 * j as i64, bpm)));
        }
    }
    produce(&t.cfg.input_topic, &records);

    let c = run(&t.cfg, &AtomicBool::new(false)).expect("run");
    assert_eq!(c.read, 9);
    assert_eq!(c.aggregated, 9);
    assert_eq!(c.windows_fired, 3);
    assert_eq!(c.alerts, 3);
    assert_counters_add_up(&c);

    // An alert's Kafka timestamp is its window's end, not when it was written.
    for r in read_all(&t.cfg.alerts_topic) {
        let a: Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(r.timestamp_ms, a["window_end"].as_i64());
    }
    let got = alerts(&t.cfg);
    let expect = [
        ("p001", 75.0, 72, 78, "normal"),
        ("p002", 125.0, 120, 130, "tachycardia"),
        ("p003", 127.0 / 3.0, 40, 45, "bradycardia"),
    ];
    assert_eq!(got.len(), 3, "{got:?}");
    for (a, (patient, avg, min, max, kind)) in got.iter().zip(expect) {
        assert_eq!(a["patient_id"], patient);
        assert_eq!(a["window_start"], W0);
        assert_eq!(a["window_end"], W0 + 60_000);
        assert!((a["avg_hr"].as_f64().unwrap() - avg).abs() < 1e-9, "{a}");
        assert_eq!(a["min_hr"], min);
        assert_eq!(a["max_hr"], max);
        assert_eq!(a["count"], 3);
        assert_eq!(a["alert_type"], kind);
        assert_eq!(a["revision"], 0);
    }

    // Published parts only: an in-progress part would mean an uncommitted alert is visible.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "jsonl")),
        "{files:?}"
    );
    let lines: usize = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_records_land_once_in_the_dlq_and_late_ones_in_the_late_topic() {
    let t = setup(1, None);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not_utf8", vec![0xff, 0xfe, b'{']),
        ("invalid_json", b"{not json".to_vec()),
        (
            "missing_field",
            br#"{"patient_id":"p001","heart_rate_bpm":80}"#.to_vec(),
        ),
        (
            "naive_timestamp",
            br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23","heart_rate_bpm":94}"#
                .to_vec(),
        ),
        (
            "bpm_out_of_range",
            br#"{"patient_id":"p001","timestamp":"2025-11-19T07:15:23Z","heart_rate_bpm":900}"#
                .to_vec(),
        ),
    ];
    let mut records = vec![
        (0, "p001", reading("p001", 10_000, 80)),
        // Watermark moves to 07:17:05, so [07:15, 07:16) fires...
        (0, "p001", reading("p001", 130_000, 82)),
        // ...and this one, for the fired window, is late.
        (0, "p001", reading("p001", 20_000, 84)),
    ];
    for (_, v) in &bad {
        records.push((0, "p001", v.clone()));
    }
    produce(&t.cfg.input_topic, &records);

    let c = run(&t.cfg, &AtomicBool::new(false)).expect("run");
    assert_eq!(
        c,
        RunCounters {
            read: 8,
            parsed: 3,
            invalid: 5,
            clock_skew: 0,
            aggregated: 2,
            late: 1,
            windows_fired: 2,
            alerts: 2,
            episodes: 0,
            profiles_applied: 0,
            profiles_refused: 0,
        }
    );
    assert_counters_add_up(&c);

    let dlq = read_all(&t.cfg.dlq_topic);
    assert_eq!(dlq.len(), bad.len());
    for (i, (d, (code, bytes))) in dlq.iter().zip(&bad).enumerate() {
        assert_eq!(&d.value, bytes);
        assert_eq!(d.headers["hr.error.code"], *code);
        assert!(!d.headers["hr.error.message"].is_empty());
        assert_eq!(d.headers["hr.source.topic"], t.cfg.input_topic);
        assert_eq!(d.headers["hr.source.partition"], "0");
        assert_eq!(d.headers["hr.source.offset"], (3 + i).to_string());
    }

    let late = read_all(&t.cfg.late_topic);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].value, records[2].2);
    assert_eq!(late[0].headers["hr.error.code"], "late");
    assert_eq!(late[0].headers["hr.source.offset"], "2");
    assert_eq!(
        late[0].headers["hr.watermark.ms"],
        (W0 + 125_000 - 1).to_string(),
        "Flink: max seen - delay - 1"
    );
    assert!(late[0].headers["hr.lateness.ms"].parse::<i64>().unwrap() > 0);

    let got = alerts(&t.cfg);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["count"], 1, "the late reading is not in the window");
    assert_eq!(got[0]["avg_hr"], 80.0);
}

/// Readings of four patients every 10 s from `from_s` to `to_s` (exclusive), one partition each
/// (modulo 3), with heart rates that make each minute's average differ.
fn stream(from_s: i64, to_s: i64) -> Vec<(i32, &'static str, Vec<u8>)> {
    let patients = ["p001", "p002", "p003", "p004"];
    let mut out = Vec::new();
    for s in (from_s..to_s).step_by(10) {
        for (i, p) in patients.iter().enumerate() {
            let bpm = 40 + (s / 10 * 7 + i as i64 * 31) % 100;
            out.push(((i % 3) as i32, *p, reading(p, s * 1_000, bpm)));
        }
    }
    out
}

fn binary(cfg: &RunConfig, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hr-pipeline"));
    cmd.arg("run")
        .args(["--bootstrap", &cfg.bootstrap])
        .args(["--group", &cfg.group])
        .args(["--input-topic", &cfg.input_topic])
        .args(["--alerts-topic", &cfg.alerts_topic])
        .args(["--dlq-topic", &cfg.dlq_topic])
        .args(["--late-topic", &cfg.late_topic])
        .args(["--episodes-topic", &cfg.episodes_topic])
        .args([
            "--profiles-topic",
            cfg.profiles_topic.as_deref().unwrap_or("none"),
        ])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("HR_TEST_JOB_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // A port the OS picks: tests run instances side by side, each with its own endpoints.
        .env("HR_HTTP", "127.0.0.1:0")
        .stdout(std::process::Stdio::null());
    cmd
}

/// The distinct alerts of `cfg`'s alerts topic, after checking that any repeat is byte-identical.
fn alert_set(cfg: &RunConfig) -> BTreeMap<(String, i64, u64), Vec<u8>> {
    alert_set_of(&bootstrap(), cfg)
}

fn alert_set_of(b: &str, cfg: &RunConfig) -> BTreeMap<(String, i64, u64), Vec<u8>> {
    let mut set = BTreeMap::new();
    for r in read_all_from(b, &cfg.alerts_topic) {
        let a: Value = serde_json::from_slice(&r.value).unwrap();
        let id = (
            a["patient_id"].as_str().unwrap().to_owned(),
            a["window_start"].as_i64().unwrap(),
            a["revision"].as_u64().unwrap(),
        );
        if let Some(prev) = set.insert(id.clone(), r.value.clone()) {
            assert_eq!(prev, r.value, "a repeat of {id:?} differs");
        }
    }
    set
}

/// Alerts by (patient, window start, revision).
type AlertSet = BTreeMap<(String, i64, u64), Vec<u8>>;

fn baseline(cfg: &RunConfig) -> AlertSet {
    baseline_with_episodes(cfg).0
}

/// An uninterrupted run over `cfg`'s input: its alerts, and its episode records sorted.
fn baseline_with_episodes(cfg: &RunConfig) -> (AlertSet, Vec<Vec<u8>>) {
    let mut base = cfg.clone();
    base.group = unique_topic("baseline-group");
    base.alerts_topic = unique_topic("baseline-alerts");
    base.episodes_topic = unique_topic("baseline-episodes");
    create_topic(&bootstrap(), &base.alerts_topic, 1);
    create_topic(&bootstrap(), &base.episodes_topic, 1);
    run(&base, &AtomicBool::new(false)).expect("baseline run");
    (alert_set(&base), sorted_values(&base.episodes_topic))
}

fn sorted_values(topic: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = read_all(topic).into_iter().map(|r| r.value).collect();
    v.sort();
    v
}

#[test]
fn kill_9_mid_stream_and_restart_gives_the_same_alerts() {
    let dir = std::env::temp_dir().join(unique_topic("hr-alerts"));
    let t = setup(3, Some(dir.clone()));
    let dir_arg = dir.to_str().unwrap().to_owned();
    produce(&t.cfg.input_topic, &stream(0, 150));
    // The dead member holds its partitions until its session times out: keep that short.
    let fast = ["-X", "session.timeout.ms=6000"];
    let mut first = binary(&t.cfg, &["--from-beginning", "--alerts-dir", &dir_arg])
        .args(fast)
        .spawn()
        .expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read_all(&t.cfg.alerts_topic).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert before the crash"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past at least one checkpoint, so the restart restores open windows rather than replaying.
    std::thread::sleep(Duration::from_millis(1_500));
    first.kill().expect("kill -9");
    first.wait().unwrap();

    produce(&t.cfg.input_topic, &stream(150, 300));
    let status = binary(
        &t.cfg,
        &["--from-beginning", "--bounded", "--alerts-dir", &dir_arg],
    )
    .args(fast)
    .status()
    .expect("restart");
    assert!(status.success());

    // The files hold committed alerts only, each once.
    let lines: usize = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 4 * 5);
    let got = alert_set(&t.cfg);
    assert_eq!(got.len(), 4 * 5, "four patients, five minutes");
    assert_eq!(
        read_all(&t.cfg.alerts_topic).len(),
        4 * 5,
        "exactly once: the killed instance's uncommitted alerts are never visible"
    );
    let mut base = t.cfg.clone();
    base.alerts_dir = None;
    let (alerts, episodes) = baseline_with_episodes(&base);
    assert_eq!(got, alerts);
    // Episode state lives in the changelog: the crash neither raised an episode twice nor lost
    // a clear, and exactly-once shows each record once.
    assert!(
        !episodes.is_empty(),
        "the stream has tachycardia and bradycardia episodes"
    );
    assert_eq!(sorted_values(&t.cfg.episodes_topic), episodes);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_resumes_open_windows() {
    let t = setup(3, None);
    let dir = std::env::temp_dir().join(unique_topic("hr-alerts"));
    let dir_arg = dir.to_str().unwrap().to_owned();
    produce(&t.cfg.input_topic, &stream(0, 90));
    let child = binary(&t.cfg, &["--from-beginning", "--alerts-dir", &dir_arg])
        .spawn()
        .expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // [0, 60 s) fires for every patient without waiting for the idle partitions' neighbours.
    while alert_set(&t.cfg).len() < 4 {
        assert!(std::time::Instant::now() < deadline, "windows did not fire");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(alert_set(&t.cfg).len(), 4, "[60 s, 120 s) is still open");

    let status = binary(&t.cfg, &["--bounded", "--alerts-dir", &dir_arg])
        .status()
        .unwrap();
    assert!(status.success());
    let got = alert_set(&t.cfg);
    assert_eq!(got.len(), 8);
    assert_eq!(got, baseline(&t.cfg));
    assert_eq!(
        read_all(&t.cfg.alerts_topic).len(),
        8,
        "no repeats after a clean stop"
    );

    // The bounded run closed every window, so a later run fires only the new one.
    produce(
        &t.cfg.input_topic,
        &[(0, "p001", reading("p001", 200_000, 77))],
    );
    let status = binary(&t.cfg, &["--bounded", "--alerts-dir", &dir_arg])
        .status()
        .unwrap();
    assert!(status.success());
    let all = read_all(&t.cfg.alerts_topic);
    assert_eq!(all.len(), 9);
    let last: Value = serde_json::from_slice(&all[8].value).unwrap();
    assert_eq!(last["window_start"], W0 + 180_000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn partitions_without_records_do_not_hold_windows_back() {
    let t = setup(3, None);
    produce(
        &t.cfg.input_topic,
        &[
            (0, "p001", reading("p001", 5_000, 70)),
            (0, "p001", reading("p001", 70_000, 71)),
        ],
    );
    let mut cfg = t.cfg.clone();
    cfg.bounded = false;
    let stop = AtomicBool::new(false);
    let c = std::thread::scope(|s| {
        let job = s.spawn(|| run(&cfg, &stop));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read_all(&cfg.alerts_topic).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        job.join().unwrap().expect("run")
    });
    assert_eq!(c.windows_fired, 1, "{c:?}");
    let got = alerts(&cfg);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["window_start"], W0);
    assert_eq!(got[0]["avg_hr"], 70.0);
}

#[test]
fn two_instances_in_one_group_together_give_every_alert() {
    let t = setup(3, None);
    let mut cfg = t.cfg.clone();
    cfg.bounded = false;
    cfg.overrides = vec![("session.timeout.ms".into(), "6000".into())];
    produce(&cfg.input_topic, &stream(0, 150));
    let expected_len = 16;

    let (stop_a, stop_b) = (AtomicBool::new(false), AtomicBool::new(false));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&cfg, &stop_a));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while alert_set(&cfg).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first instance fired nothing"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let b = s.spawn(|| run(&cfg, &stop_b));
        wait_for_members(&cfg.group, 2);
        produce(&cfg.input_topic, &stream(150, 300));
        while alert_set(&cfg).len() < expected_len && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop_a.store(true, std::sync::atomic::Ordering::Relaxed);
        stop_b.store(true, std::sync::atomic::Ordering::Relaxed);
        (a.join().unwrap().expect("a"), b.join().unwrap().expect("b"))
    });
    assert_counters_add_up(&a);
    assert_counters_add_up(&b);
    assert!(
        a.read > 0 && b.read > 0,
        "both instances worked: {a:?} {b:?}"
    );
    // With readings up to 290 s, the watermark (285 s) closes the first four minutes only.
    let expected: BTreeMap<_, _> = baseline(&t.cfg)
        .into_iter()
        .filter(|((_, start, _), _)| *start < W0 + 240_000)
        .collect();
    assert_eq!(expected.len(), expected_len);
    assert_eq!(alert_set(&cfg), expected);
}

/// Waits until `group` is stable with `n` members, so the rebalance is over.
fn wait_for_members(group: &str, n: usize) {
    let consumer: BaseConsumer = client_config(&bootstrap(), &[]).create().expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = consumer
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .expect("group list");
        if list
            .groups()
            .iter()
            .any(|g| g.state() == "Stable" && g.members().len() == n)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{group} never had {n} members"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn emit_abnormal_from_env_writes_only_abnormal_alerts_to_topic_and_file() {
    let dir = std::env::temp_dir().join(unique_topic("hr-alerts"));
    let t = setup(1, None);
    produce(
        &t.cfg.input_topic,
        &[
            (0, "p001", reading("p001", 1_000, 70)),
            (0, "p002", reading("p002", 2_000, 140)),
            (0, "p003", reading("p003", 3_000, 35)),
        ],
    );
    let status = binary(&t.cfg, &[])
        .env("HR_EMIT", "abnormal")
        .env("HR_BOUNDED", "true")
        .env("HR_FROM_BEGINNING", "true")
        .env("HR_ALERTS_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    let kinds: Vec<String> = alerts(&t.cfg)
        .iter()
        .map(|a| a["alert_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["tachycardia", "bradycardia"]);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines: Vec<Value> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, alerts(&t.cfg));
    std::fs::remove_dir_all(&dir).ok();
}

fn signal(child: &std::process::Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig}");
}

/// An instance frozen (SIGSTOP, as a long GC pause or a VM migration does) past its session
/// timeout while another takes its partitions, then resumed: whatever it still tries to write
/// must never become visible. Compared window by window with an uninterrupted run, in both
/// delivery modes: nothing missing, nothing wrong, and with exactly-once nothing repeated.
#[test]
fn a_paused_instance_whose_partitions_moved_is_fenced() {
    for guarantee in ["exactly-once", "at-least-once"] {
        let t = setup(3, None);
        produce(&t.cfg.input_topic, &stream(0, 150));
        let args = [
            "--guarantee",
            guarantee,
            "--alerts-dir",
            "none",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ];
        let mut a = binary(&t.cfg, &args).spawn().expect("start a");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read_all(&t.cfg.alerts_topic).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no alert from a");
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        signal(&a, "-STOP");
        let mut b = binary(&t.cfg, &args).spawn().expect("start b");
        // a's session times out; b takes every partition and reads on.
        std::thread::sleep(Duration::from_secs(10));
        produce(&t.cfg.input_topic, &stream(150, 300));
        std::thread::sleep(Duration::from_secs(3));
        signal(&a, "-CONT");
        std::thread::sleep(Duration::from_secs(8));
        signal(&a, "-TERM");
        signal(&b, "-TERM");
        assert!(a.wait().unwrap().success(), "{guarantee}: a");
        assert!(b.wait().unwrap().success(), "{guarantee}: b");
        let status = binary(
            &t.cfg,
            &[
                "--bounded",
                "--guarantee",
                guarantee,
                "--alerts-dir",
                "none",
            ],
        )
        .status()
        .unwrap();
        assert!(status.success());

        let got = alert_set(&t.cfg);
        assert_eq!(got.len(), 4 * 5, "{guarantee}: four patients, five minutes");
        let mut base = t.cfg.clone();
        base.alerts_dir = None;
        assert_eq!(
            got,
            baseline(&base),
            "{guarantee}: every window as uninterrupted"
        );
        if guarantee == "exactly-once" {
            assert_eq!(read_all(&t.cfg.alerts_topic).len(), 4 * 5, "no repeats");
        }
    }
}

/// A valid reading whose alert exceeds the alerts topic's limit (a 900 KB patient id) and a
/// 1 MiB invalid record whose dead-letter copy would: each is replaced by a small dead letter
/// saying why, and the job goes on.
#[test]
fn records_too_large_to_forward_are_replaced_by_small_dead_letters() {
    let b = bootstrap();
    let mut cfg = setup(1, None).cfg;
    cfg.profiles_topic = None;
    // An input topic that takes records larger than the output topics do.
    cfg.input_topic = unique_topic("big-events");
    let big = hr_kafka::TopicSpec {
        configs: vec![("max.message.bytes".into(), "4194304".into())],
        ..hr_kafka::TopicSpec::new(cfg.input_topic.clone(), 1)
    };
    hr_kafka::blocking::ensure_topics(&client_config(&b, &[]), &[big], Duration::from_secs(30))
        .unwrap();
    let long_id = "x".repeat(900 * 1024);
    let huge_invalid = vec![b'{'; 1024 * 1024];
    let records = vec![
        reading("p001", 10_000, 80),
        reading(&long_id, 10_000, 120),
        huge_invalid.clone(),
        reading(&long_id, 130_000, 120),
        reading("p001", 130_000, 82),
    ];
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(&b, &[("message.max.bytes".into(), "4194304".into())])
            .create()
            .unwrap();
    for v in &records {
        producer
            .send(BaseRecord::<[u8], [u8]>::to(&cfg.input_topic).payload(v.as_slice()))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let c = run(&cfg, &AtomicBool::new(false)).expect("the job goes on");
    assert_eq!((c.read, c.invalid), (5, 1));
    let dlq = read_all(&cfg.dlq_topic);
    let stand_ins: Vec<&Read> = dlq
        .iter()
        .filter(|d| d.headers["hr.error.code"] == "too_large")
        .collect();
    assert_eq!(
        dlq.len(),
        4,
        "the invalid record, the long id's two alerts and its episode, once each"
    );
    assert_eq!(stand_ins.len(), 4);
    for d in &stand_ins {
        assert!(d.value.len() <= 1024, "a prefix, not the record");
        let size: usize = d.headers["hr.original.size"].parse().unwrap();
        assert!(size > 900 * 1024, "{size}");
        assert!(!d.headers["hr.error.message"].is_empty());
    }
    assert_eq!(
        stand_ins[0].headers["hr.source.offset"], "2",
        "the invalid record"
    );
    assert_eq!(stand_ins[0].headers["hr.original.topic"], cfg.dlq_topic);
    assert_eq!(stand_ins[1].headers["hr.original.topic"], cfg.alerts_topic);
    assert_eq!(
        stand_ins[1].headers["hr.source.offset"], "3",
        "fired by the long id's second reading"
    );
    assert_eq!(
        stand_ins[2].headers["hr.original.topic"], cfg.episodes_topic,
        "tachycardia raised"
    );
    assert_eq!(
        stand_ins[3].headers["hr.original.topic"], cfg.alerts_topic,
        "fired at the end"
    );
    let got = alerts(&cfg);
    let ids: Vec<&str> = got
        .iter()
        .map(|a| a["patient_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["p001", "p001"],
        "the other patient's alerts are all there"
    );
}

/// Every record of `cfg`'s episodes topic as JSON, in topic order.
fn episodes(cfg: &RunConfig) -> Vec<Value> {
    read_all(&cfg.episodes_topic)
        .into_iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect()
}

/// A monitor sends 60 s at 140 bpm, then goes silent while the others stream on for 4 more
/// minutes: its windows fire, it gets one tachycardia episode and one signal_loss, and the
/// others none.
#[test]
fn a_silent_monitor_gets_signal_loss_while_the_others_stream_on() {
    let t = setup(1, None);
    let mut records = Vec::new();
    for s in 0..300 {
        if s < 60 {
            records.push((0, "p001", reading("p001", s * 1_000, 140)));
        }
        for p in ["p002", "p003"] {
            records.push((0, p, reading(p, s * 1_000, 70)));
        }
    }
    produce(&t.cfg.input_topic, &records);
    let c = run(&t.cfg, &AtomicBool::new(false)).expect("run");
    assert_counters_add_up(&c);
    let eps = episodes(&t.cfg);
    let of = |patient: &str| -> Vec<String> {
        eps.iter()
            .filter(|e| e["patient_id"] == patient)
            .map(|e| {
                format!(
                    "{} {}",
                    e["state"].as_str().unwrap(),
                    e["kind"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        of("p001"),
        ["raised tachycardia", "raised signal_loss"],
        "{eps:?}"
    );
    assert!(of("p002").is_empty() && of("p003").is_empty(), "{eps:?}");
    let loss = eps.iter().find(|e| e["kind"] == "signal_loss").unwrap();
    assert_eq!(loss["window_start"], W0 + 59_000, "the last reading");
    assert_eq!(
        loss["window_end"],
        W0 + 59_000 + 30_000,
        "declared --silence-after later"
    );
    let got = alerts(&t.cfg);
    let p001: Vec<&Value> = got.iter().filter(|a| a["patient_id"] == "p001").collect();
    assert_eq!(p001.len(), 1, "its one window");
    assert_eq!(p001[0]["count"], 60);
    assert_eq!(p001[0]["alert_type"], "tachycardia");
}

fn cli(cfg: &RunConfig, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hr-pipeline"))
        .args(args)
        .args(["--bootstrap", &cfg.bootstrap])
        .args(["--profiles-topic", cfg.profiles_topic.as_deref().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A profile written with the CLI changes that patient's classification (and says so in the
/// alert); a contradictory one is refused and the previous one stays.
#[test]
fn a_profile_set_with_the_cli_changes_one_patients_alerts() {
    let t = setup(1, None);
    let set = cli(
        &t.cfg,
        &["profiles", "set", "p002", "--tachycardia-above", "160"],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let bad = cli(
        &t.cfg,
        &["profiles", "set", "p002", "--bradycardia-below", "170"],
    );
    assert!(
        !bad.status.success(),
        "tachycardia-above 160 <= bradycardia-below 170 is refused"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bradycardia_below"));
    let get = cli(&t.cfg, &["profiles", "get", "p002"]);
    let shown = String::from_utf8_lossy(&get.stdout);
    assert!(shown.contains("tachycardia above 160"), "{shown}");
    let list = cli(&t.cfg, &["profiles", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);

    let mut records = Vec::new();
    for s in 0..70 {
        for p in ["p001", "p002"] {
            records.push((0, p, reading(p, s * 1_000, 150)));
        }
    }
    produce(&t.cfg.input_topic, &records);
    run(&t.cfg, &AtomicBool::new(false)).expect("run");
    let got = alerts(&t.cfg);
    let first = |p: &str| got.iter().find(|a| a["patient_id"] == p).unwrap().clone();
    assert_eq!(first("p001")["alert_type"], "tachycardia");
    assert_eq!(
        first("p002")["alert_type"],
        "normal",
        "150 is under p002's own 160"
    );
    assert_eq!(first("p002")["thresholds"]["tachycardia_above"], 160.0);

    let del = cli(&t.cfg, &["profiles", "delete", "p002"]);
    assert!(del.status.success());
    let get = cli(&t.cfg, &["profiles", "get", "p002"]);
    assert!(String::from_utf8_lossy(&get.stdout).contains("no profile"));
}

/// `topics --retention forever` makes outputs that keep old-dated alerts (a replay of 2025
/// readings); without it the broker's default applies.
#[test]
fn topics_take_a_retention_for_replays_of_old_data() {
    let b = bootstrap();
    let names = |tag: &str| -> Vec<String> {
        ["in", "alerts", "dlq", "late", "episodes"]
            .iter()
            .map(|w| unique_topic(&format!("retention-{tag}-{w}")))
            .collect()
    };
    let create = |names: &[String], extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hr-pipeline"))
            .args(["topics", "--bootstrap", &b, "--partitions", "1"])
            .args(["--input-topic", &names[0], "--alerts-topic", &names[1]])
            .args(["--dlq-topic", &names[2], "--late-topic", &names[3]])
            .args(["--episodes-topic", &names[4], "--profiles-topic", "none"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let retention = |topic: &str| {
        hr_kafka::blocking::topic_config(
            &client_config(&b, &[]),
            topic,
            "retention.ms",
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let kept = names("forever");
    create(&kept, &["--retention", "forever"]);
    for t in &kept {
        assert_eq!(retention(t).as_deref(), Some("-1"), "{t}");
    }
    let week = names("week");
    create(&week, &["--retention", "14d"]);
    assert_eq!(retention(&week[1]).as_deref(), Some("1209600000"));
    let plain = names("default");
    create(&plain, &[]);
    let default = retention(&plain[1]);
    assert!(
        default.is_some() && default.as_deref() != Some("-1"),
        "the broker's default: {default:?}"
    );
}

/// A wrong address is one line naming it, quickly, and exit 1; not a 30 s timeout.
#[test]
fn an_unreachable_broker_is_reported_at_once_by_one_shot_commands() {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hr-pipeline"))
        .args(["topics", "--bootstrap", "127.0.0.1:1"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

/// A broker of the test's own, so it can be killed and restarted.
struct OwnBroker {
    state: std::path::PathBuf,
    port: u16,
}

impl OwnBroker {
    fn script(&self, cmd: &str) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shared_lib = root.join(".kafka/lib");
        let mut c = std::process::Command::new("bash");
        c.arg(root.join("docker/kafka-local.sh"))
            .arg(cmd)
            .env("HR_KAFKA_PORT", self.port.to_string())
            .env("HR_KAFKA_STATE", &self.state)
            .env("HR_KAFKA_MODE", "native")
            .env("HR_KAFKA_HEAP", "512m")
            // No latency is measured on it: its starts skip the warm-up.
            .env("HR_KAFKA_WARMUP", "0");
        if shared_lib.exists() {
            c.env("HR_KAFKA_LIB", &shared_lib);
        }
        let st = c.status().unwrap();
        assert!(st.success(), "kafka-local.sh {cmd}");
    }

    fn kill_9(&self) {
        let pid = std::fs::read_to_string(self.state.join("kafka.pid")).unwrap();
        let st = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let _ = std::process::Command::new("bash")
            .arg(root.join("docker/kafka-local.sh"))
            .arg("down")
            .env("HR_KAFKA_PORT", self.port.to_string())
            .env("HR_KAFKA_STATE", &self.state)
            .env("HR_KAFKA_MODE", "native")
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The broker killed (-9) and restarted 20 s later while the job runs: the job waits with its
/// state, goes on, and the alerts equal an uninterrupted run's, once each.
#[test]
fn a_broker_restart_is_ridden_out() {
    let broker = OwnBroker {
        state: std::env::temp_dir().join(unique_topic("hr-own-broker")),
        // HR_KAFKA_OWN_PORT moves it off a port another broker on the machine uses.
        port: std::env::var("HR_KAFKA_OWN_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(19_492),
    };
    broker.script("up");
    let b = format!("localhost:{}", broker.port);
    let cfg = setup_on(&b, 3, None).cfg;
    produce_to(&b, &cfg.input_topic, &stream(0, 150));
    let mut job = binary(&cfg, &["--alerts-dir", "none"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read_all_from(&b, &cfg.alerts_topic).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert before the outage"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.kill_9();
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        job.try_wait().unwrap().is_none(),
        "the job waits for the broker"
    );
    broker.script("up");
    produce_to(&b, &cfg.input_topic, &stream(150, 300));
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        job.try_wait().unwrap().is_none(),
        "still running after the outage"
    );
    signal(&job, "-TERM");
    assert!(job.wait().unwrap().success());
    let status = binary(&cfg, &["--bounded", "--alerts-dir", "none"])
        .status()
        .unwrap();
    assert!(status.success());

    let got = alert_set_of(&b, &cfg);
    assert_eq!(got.len(), 4 * 5, "{:?}", got.keys().collect::<Vec<_>>());
    assert_eq!(
        read_all_from(&b, &cfg.alerts_topic).len(),
        4 * 5,
        "once each"
    );
    // The uninterrupted run of the same input, on the shared broker (the one this test killed
    // is not what is under comparison).
    let base = setup(3, None).cfg;
    produce(&base.input_topic, &stream(0, 150));
    produce(&base.input_topic, &stream(150, 300));
    let c = run(&base, &AtomicBool::new(false)).expect("baseline run");
    assert_eq!(
        (c.read, c.alerts),
        (120, 20),
        "the uninterrupted run read everything"
    );
    assert_eq!(got, alert_set(&base));
}

/// Alert-file parts left by a process that stopped with a commit in flight: the next start in
/// the directory publishes the part whose transaction committed and discards the one whose
/// transaction was aborted (their witnesses say which), and the part never staged for a commit.
#[test]
fn parts_left_in_doubt_are_settled_by_the_next_start_as_their_transactions_ended() {
    use hr_kafka::testkit::end_with_witness;
    use hr_kafka::{Sink, Witness};
    let dir = tempfile::tempdir().unwrap();
    let t = setup(1, Some(dir.path().to_owned()));
    let b = t.cfg.bootstrap.clone();
    let log = unique_topic("witnessed");
    create_topic(&b, &log, 1);
    // Two transactions of a writer that is gone: one committed, one aborted.
    let mut txn = Sink::transactional(&b, &[], &unique_topic("gone"), Duration::from_secs(30))
        .expect("a transactional producer");
    txn.watch(&log);
    let mut witnesses: Vec<Witness> = Vec::new();
    for commits in [true, false] {
        txn.send_record(&log, Some(0), b"k", Some(b"v"), None)
            .unwrap();
        let (ended, seen) = end_with_witness(&mut txn, &b, &log, commits);
        assert_eq!(ended.is_ok(), commits);
        witnesses.push(seen.expect("a witness"));
    }
    txn.abort(Duration::from_secs(30)).unwrap();
    // The parts as that process left them (its pid is one no process has here).
    let part = |n: u32| {
        dir.path()
            .join(format!(".alerts-7-999999999-{n}.jsonl.inprogress"))
    };
    for (n, w) in witnesses.iter().enumerate() {
        std::fs::write(part(n as u32), format!("{{\"part\":{n}}}\n")).unwrap();
        std::fs::write(
            dir.path()
                .join(format!(".alerts-7-999999999-{n}.jsonl.inprogress.witness")),
            format!("{w}\n"),
        )
        .unwrap();
    }
    std::fs::write(part(2), "{\"part\":2}\n").unwrap();

    let counters = run(&t.cfg, &AtomicBool::new(false)).expect("the next start");
    assert_counters_add_up(&counters);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["alerts-7-999999999-0.jsonl".to_owned()],
        "only the committed part is shown, and nothing is left in progress"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("alerts-7-999999999-0.jsonl")).unwrap(),
        "{\"part\":0}\n"
    );
}
