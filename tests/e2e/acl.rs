//! Least privilege: the streaming job as a principal with exactly the ACLs of the README's
//! "Least privilege" section, on the TLS broker with its authorizer (`testkit::tls_broker`:
//! StandardAuthorizer, `allow.everyone.if.no.acl.found=false`). The job runs as `bob` (no ACLs
//! of his own), whose ACLs the test grants as `alice` (a super user) on resources named for this
//! test only, never by wildcard, and removes at the end.
//!
//! - With the documented ACLs the job turns the seed scenario (plus one invalid and one late
//!   reading, so that every output topic is written) into exactly the seed's three alerts, read
//!   back as `alice` with `read_committed`; so does a job that creates its changelog, episodes
//!   and profiles topics itself, given CREATE on them.
//! - Without any one of those ACLs the job exits non-zero within [`FAST`], naming the operation
//!   and the resource it lacks: one run per ACL, [`AT_ONCE`] at a time. READ on the changelog is
//!   first needed when there is state to restore, so that case is a second run of the first job.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::admin::AdminClient;
use hr_kafka::rdkafka::bindings as rd;
use hr_kafka::rdkafka::client::DefaultClientContext;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use hr_kafka::testkit::{ALICE, BOB, TlsBroker, tls_broker, unique_topic};
use hr_kafka::{Sink, TopicSpec, blocking, client_config};
use serde_json::Value;

/// How long a job refused an ACL may take to say so: well under the 5-minute broker timeout.
const FAST: Duration = Duration::from_secs(60);

/// How many jobs run at a time.
const AT_ONCE: usize = 6;

/// When a job that does not end is killed.
const KILL_AFTER: Duration = Duration::from_secs(120);

/// 2025-11-19T07:15:00Z in epoch ms: the start of the seed scenario's one-minute window.
const W0: i64 = 1_763_536_500_000;

/// What an ACL is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topic,
    Group,
    TransactionalId,
}

impl Kind {
    fn native(self) -> rd::rd_kafka_ResourceType_t {
        match self {
            Kind::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            Kind::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
            Kind::TransactionalId => {
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID
            }
        }
    }
}

/// One ALLOW ACL for `User:bob` from any host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acl {
    kind: Kind,
    name: String,
    /// A prefixed pattern (else literal).
    prefixed: bool,
    /// `READ`, `WRITE`, `CREATE` or `DESCRIBE_CONFIGS`.
    operation: &'static str,
}

impl Acl {
    fn topic(name: &str, operation: &'static str) -> Self {
        Acl {
            kind: Kind::Topic,
            name: name.to_owned(),
            prefixed: false,
            operation,
        }
    }

    fn native_operation(&self) -> rd::rd_kafka_AclOperation_t {
        use rd::rd_kafka_AclOperation_t as Op;
        match self.operation {
            "READ" => Op::RD_KAFKA_ACL_OPERATION_READ,
            "WRITE" => Op::RD_KAFKA_ACL_OPERATION_WRITE,
            "CREATE" => Op::RD_KAFKA_ACL_OPERATION_CREATE,
            "DESCRIBE_CONFIGS" => Op::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
            other => panic!("no such operation in this test: {other}"),
        }
    }

    /// How the job's error names the resource.
    fn resource(&self) -> String {
        match self.kind {
            Kind::Topic => format!("topic {}", self.name),
            Kind::Group => format!("group {}", self.name),
            Kind::TransactionalId => format!("transactional id prefix {}", self.name),
        }
    }
}

/// The resources of one job, named for this test alone.
struct Job {
    input: String,
    alerts: String,
    dlq: String,
    late: String,
    episodes: String,
    profiles: String,
    group: String,
}

impl Job {
    fn new() -> Self {
        let base = unique_topic("acl");
        let t = |s: &str| format!("{base}-{s}");
        Job {
            input: t("events"),
            alerts: t("alerts"),
            dlq: t("dlq"),
            late: t("late"),
            episodes: t("episodes"),
            profiles: t("profiles"),
            group: t("job"),
        }
    }

    fn changelog(&self) -> String {
        format!("{}-changelog", self.group)
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.input.clone(),
            self.alerts.clone(),
            self.dlq.clone(),
            self.late.clone(),
            self.episodes.clone(),
            self.profiles.clone(),
            self.changelog(),
        ]
    }

    /// The README's list: read the input and the profiles, write the outputs and the
    /// changelog (which the job reads back too), see the configs of the topics whose
    /// settings it checks, read as its group, write with its transactional ids.
    fn documented(&self) -> Vec<Acl> {
        let changelog = self.changelog();
        let mut acls = vec![
            Acl::topic(&self.input, "READ"),
            Acl::topic(&self.profiles, "READ"),
            Acl::topic(&self.profiles, "DESCRIBE_CONFIGS"),
        ];
        for out in [&self.alerts, &self.dlq, &self.late, &self.episodes] {
            acls.push(Acl::topic(out, "WRITE"));
            acls.push(Acl::topic(out, "DESCRIBE_CONFIGS"));
        }
        acls.extend([
            Acl::topic(&changelog, "READ"),
            Acl::topic(&changelog, "WRITE"),
            Acl::topic(&changelog, "DESCRIBE_CONFIGS"),
            Acl {
                kind: Kind::Group,
                name: self.group.clone(),
                prefixed: false,
                operation: "READ",
            },
            Acl {
                kind: Kind::TransactionalId,
                name: format!("{}-", self.group),
                prefixed: true,
                operation: "WRITE",
            },
        ]);
        acls
    }

    /// For a job that creates its own changelog, episodes and profiles topics.
    fn create(&self) -> Vec<Acl> {
        vec![
            Acl::topic(&self.changelog(), "CREATE"),
            Acl::topic(&self.episodes, "CREATE"),
            Acl::topic(&self.profiles, "CREATE"),
        ]
    }

    /// Makes the topics as an operator would (all but the three the job can make itself when
    /// `all` is false) and writes the seed scenario to the input.
    fn prepare(&self, b: &TlsBroker, all: bool) {
        let admin = client_config(&b.sasl_ssl, &alice(b));
        // Alerts carry 2025 window ends as Kafka timestamps: kept forever, or the broker's
        // retention check could delete them under the read-back.
        let keep = |s: TopicSpec| s.config("retention.ms", "-1");
        let mut specs = vec![
            keep(TopicSpec::new(&self.input, 3)),
            keep(TopicSpec::new(&self.alerts, 1)),
            keep(TopicSpec::new(&self.dlq, 1)),
            keep(TopicSpec::new(&self.late, 1)),
        ];
        if all {
            specs.extend([
                keep(TopicSpec::new(&self.episodes, 1)),
                TopicSpec::compacted(&self.profiles, 1),
                TopicSpec::compacted(self.changelog(), 3),
            ]);
        }
        blocking::ensure_topics(&admin, &specs, Duration::from_secs(30)).expect("topics");
        self.produce(b, &seed_records());
    }

    fn produce(&self, b: &TlsBroker, records: &[(i32, &str, String)]) {
        let mut sink = Sink::new(&b.sasl_ssl, &alice(b)).expect("producer");
        for (p, key, value) in records {
            sink.send_record(
                &self.input,
                Some(*p),
                key.as_bytes(),
                Some(value.as_bytes()),
                None,
            )
            .expect("send");
        }
        sink.flush(Duration::from_secs(30)).expect("flush");
    }

    fn args(&self, b: &TlsBroker) -> Vec<String> {
        let mut args = vec!["run".to_owned(), "--bootstrap".into(), b.sasl_ssl.clone()];
        for (k, v) in b.sasl_props("SCRAM-SHA-256", BOB) {
            args.extend(["-X".into(), format!("{k}={v}")]);
        }
        for (flag, value) in [
            ("--input-topic", &self.input),
            ("--alerts-topic", &self.alerts),
            ("--dlq-topic", &self.dlq),
            ("--late-topic", &self.late),
            ("--episodes-topic", &self.episodes),
            ("--profiles-topic", &self.profiles),
            ("--group", &self.group),
        ] {
            args.extend([flag.to_owned(), value.clone()]);
        }
        args.extend(
            ["--bounded", "--http", "off", "--alerts-dir", "none"]
                .into_iter()
                .map(str::to_owned),
        );
        args
    }
}

fn alice(b: &TlsBroker) -> Vec<(String, String)> {
    b.sasl_props("SCRAM-SHA-256", ALICE)
}

fn reading(patient: &str, at_ms: i64, bpm: &str) -> String {
    let ts = hr_model::format_timestamp(at_ms);
    format!(r#"{{"patient_id":"{patient}","timestamp":"{ts}","heart_rate_bpm":{bpm}}}"#)
}

/// The seed scenario (p001 normal, p002 tachycardia, p003 bradycardia, one partition each),
/// then an invalid reading (to the dead-letter topic) and one too late for its window (to the
/// late topic), so that the job writes every output topic and needs every ACL.
fn seed_records() -> Vec<(i32, &'static str, String)> {
    let mut records = Vec::new();
    for (p, (patient, bpms)) in [
        ("p001", [72, 75, 78]),
        ("p002", [120, 125, 130]),
        ("p003", [40, 42, 45]),
    ]
    .into_iter()
    .enumerate()
    {
        for (j, bpm) in bpms.into_iter().enumerate() {
            let at = W0 + 10_000 * j as i64;
            records.push((p as i32, patient, reading(patient, at, &bpm.to_string())));
        }
    }
    records.push((0, "p001", reading("p001", W0 + 5_000, "\"fast\"")));
    // p003's clock is at W0 + 20 s: a reading from before W0 is past its window's end.
    records.push((2, "p003", reading("p003", W0 - 30_000, "44")));
    records
}

/// Every committed record of `topic`, read as `alice` with `read_committed`.
fn read_all(b: &TlsBroker, topic: &str) -> Vec<Value> {
    let consumer: BaseConsumer = client_config(&b.sasl_ssl, &alice(b))
        .set("group.id", unique_topic("acl-reader"))
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while !open.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(hr_kafka::rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                out.push(serde_json::from_slice(m.payload().unwrap_or(b"null")).unwrap())
            }
        }
    }
    out
}

/// Whether `bob` may see `topic` yet.
fn bob_sees(b: &TlsBroker, topic: &str) -> bool {
    let consumer: BaseConsumer = client_config(&b.sasl_ssl, &b.sasl_props("SCRAM-SHA-256", BOB))
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .is_ok_and(|md| md.topics().iter().all(|t| t.error().is_none()))
}

/// Creates (or, with `delete`, deletes) `acls` for `User:bob`, as `alice`, through librdkafka's
/// admin API (rust-rdkafka has no safe form of CreateAcls and DeleteAcls).
fn apply_acls(b: &TlsBroker, acls: &[Acl], delete: bool) {
    if acls.is_empty() {
        return;
    }
    let admin: AdminClient<DefaultClientContext> = client_config(&b.sasl_ssl, &alice(b))
        .create()
        .expect("admin client");
    let rk = admin.inner().native_ptr();
    let principal = CString::new(format!("User:{}", BOB.name)).unwrap();
    let host = CString::new("*").unwrap();
    let names: Vec<CString> = acls
        .iter()
        .map(|a| CString::new(a.name.as_str()).unwrap())
        .collect();
    let mut errstr = [0 as c_char; 512];
    // SAFETY: every pointer passed is valid for the call: `rk` lives as long as `admin`, the
    // C strings as long as this function, `errstr` is 512 bytes; every object made here is
    // destroyed here, the bindings after the request that copied them, the event once read.
    unsafe {
        let mut bindings: Vec<*mut rd::rd_kafka_AclBinding_t> = Vec::new();
        for (acl, name) in acls.iter().zip(&names) {
            let pattern = if acl.prefixed {
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED
            } else {
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL
            };
            let make = if delete {
                rd::rd_kafka_AclBindingFilter_new
            } else {
                rd::rd_kafka_AclBinding_new
            };
            let binding = make(
                acl.kind.native(),
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                host.as_ptr(),
                acl.native_operation(),
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            assert!(
                !binding.is_null(),
                "{acl:?}: {}",
                CStr::from_ptr(errstr.as_ptr()).to_string_lossy()
            );
            bindings.push(binding);
        }
        let op = if delete {
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS
        } else {
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS
        };
        let options = rd::rd_kafka_AdminOptions_new(rk, op);
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            30_000,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        if delete {
            rd::rd_kafka_DeleteAcls(rk, bindings.as_mut_ptr(), bindings.len(), options, queue);
        } else {
            rd::rd_kafka_CreateAcls(rk, bindings.as_mut_ptr(), bindings.len(), options, queue);
        }
        rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), bindings.len());
        let event = rd::rd_kafka_queue_poll(queue, 60_000);
        let mut failures = Vec::new();
        if event.is_null() {
            failures.push("no answer within 60 s".to_owned());
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            failures.push(
                CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                    .to_string_lossy()
                    .into_owned(),
            );
        } else {
            let mut n = 0;
            let errors: Vec<*const rd::rd_kafka_error_t> = if delete {
                let result = rd::rd_kafka_event_DeleteAcls_result(event);
                let responses = rd::rd_kafka_DeleteAcls_result_responses(result, &mut n);
                (0..n)
                    .map(|i| rd::rd_kafka_DeleteAcls_result_response_error(*responses.add(i)))
                    .collect()
            } else {
                let result = rd::rd_kafka_event_CreateAcls_result(event);
                let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
                (0..n)
                    .map(|i| rd::rd_kafka_acl_result_error(*results.add(i)))
                    .collect()
            };
            for e in errors.into_iter().filter(|e| !e.is_null()) {
                failures.push(
                    CStr::from_ptr(rd::rd_kafka_error_string(e))
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        assert!(
            failures.is_empty(),
            "{} ACLs: {failures:?}",
            if delete { "deleting" } else { "creating" }
        );
    }
}

/// ACLs granted by the test, and topics made, removed when it ends (passed or not), so that
/// `bob` stays a user without ACLs for the other tests.
struct Cleanup<'a> {
    broker: &'a TlsBroker,
    acls: std::sync::Mutex<Vec<Acl>>,
    topics: std::sync::Mutex<Vec<String>>,
}

impl Cleanup<'_> {
    fn grant(&self, acls: &[Acl]) {
        self.acls.lock().unwrap().extend(acls.iter().cloned());
        apply_acls(self.broker, acls, false);
    }

    fn revoke(&self, acls: &[Acl]) {
        apply_acls(self.broker, acls, true);
        self.acls.lock().unwrap().retain(|a| !acls.contains(a));
    }

    fn topics(&self, job: &Job) {
        self.topics.lock().unwrap().extend(job.topics());
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let acls = std::mem::take(&mut *self.acls.lock().unwrap());
        apply_acls(self.broker, &acls, true);
        let topics = std::mem::take(&mut *self.topics.lock().unwrap());
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let admin = client_config(&self.broker.sasl_ssl, &alice(self.broker));
        let _ = blocking::delete_topics(&admin, &names, Duration::from_secs(30));
    }
}

/// Builds `hr-pipeline` (as `examples/demo.sh` does) and returns its path.
fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "hr-pipeline", "--bin", "hr-pipeline"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "building hr-pipeline");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("debug/hr-pipeline")
}

/// How a run of the job ended.
struct Ran {
    success: bool,
    took: Duration,
    /// Its last `error:` line (empty when none).
    error: String,
    output: String,
}

/// Runs the job with no `HR_*` variable of the caller's shell leaking in; killed after
/// [`KILL_AFTER`].
fn run(bin: &Path, args: &[String]) -> Ran {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HR_") {
            cmd.env_remove(k);
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    while child.try_wait().unwrap().is_none() && started.elapsed() < KILL_AFTER {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let error = output
        .lines()
        .rfind(|l| l.contains("error:"))
        .unwrap_or_default()
        .to_owned();
    Ran {
        success: out.status.success(),
        took,
        error,
        output,
    }
}

/// The seed's three alerts, and the dead letter, late reading and two episodes around them.
fn assert_seed_outputs(b: &TlsBroker, job: &Job) {
    let mut alerts = read_all(b, &job.alerts);
    alerts.sort_by(|x, y| x["patient_id"].as_str().cmp(&y["patient_id"].as_str()));
    let got: Vec<(&str, i64, i64, i64, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["patient_id"].as_str().unwrap(),
                a["window_start"].as_i64().unwrap(),
                a["min_hr"].as_i64().unwrap(),
                a["max_hr"].as_i64().unwrap(),
                a["alert_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("p001", W0, 72, 78, "normal"),
            ("p002", W0, 120, 130, "tachycardia"),
            ("p003", W0, 40, 45, "bradycardia"),
        ],
        "{alerts:?}"
    );
    assert_eq!(read_all(b, &job.dlq).len(), 1, "the invalid reading");
    assert_eq!(read_all(b, &job.late).len(), 1, "the late reading");
    assert_eq!(read_all(b, &job.episodes).len(), 2, "p002's and p003's");
}

/// The job refused `acl` exits non-zero within [`FAST`], naming the operation and the resource.
fn assert_refused(acl: &Acl, ran: &Ran) {
    let what = format!("{} {}", acl.operation, acl.resource());
    eprintln!("without {what}: {:?}: {}", ran.took, ran.error);
    assert!(
        !ran.success,
        "without {what} the job succeeded:\n{}",
        ran.output
    );
    assert!(
        ran.took < FAST,
        "without {what} the job took {:?}:\n{}",
        ran.took,
        ran.output
    );
    assert!(
        ran.error.contains("not authorized"),
        "without {what}:\n{}",
        ran.output
    );
    // A topic the principal may not even see is not told from one that does not exist: the
    // job then names CREATE, and what it needs on one made beforehand.
    let hidden = format!("needs CREATE on {}", acl.resource());
    let instead = format!("the job needs {} on it instead of CREATE", acl.operation);
    let named = format!("needs {} on {}", acl.operation, acl.resource());
    assert!(
        ran.error.contains(&named) || (ran.error.contains(&hidden) && ran.error.contains(&instead)),
        "without {what} the error does not name it:\n{}",
        ran.output
    );
}

#[test]
fn the_job_runs_with_exactly_the_documented_acls_and_names_any_one_missing() {
    let broker = tls_broker();
    let bin = binary();
    let started = Instant::now();
    let cleanup = Cleanup {
        broker,
        acls: Default::default(),
        topics: Default::default(),
    };

    // One job with all the documented ACLs; one that creates three of its topics; and one
    // job per documented ACL with that one left out (READ on the changelog comes later).
    let full = Job::new();
    let creating = Job::new();
    let mut cases: Vec<(Job, Acl)> = Vec::new();
    for acl_index in 0..full.documented().len() {
        let job = Job::new();
        let acl = job.documented()[acl_index].clone();
        if acl == Acl::topic(&job.changelog(), "READ") {
            continue;
        }
        cases.push((job, acl));
    }
    let all: Vec<&Job> = std::iter::once(&full)
        .chain(cases.iter().map(|(j, _)| j))
        .collect();
    for job in all.iter().copied().chain([&creating]) {
        cleanup.topics(job);
    }
    std::thread::scope(|s| {
        for job in &all {
            s.spawn(|| job.prepare(broker, true));
        }
        s.spawn(|| creating.prepare(broker, false));
    });
    let mut grants = Vec::new();
    grants.extend(full.documented());
    grants.extend(creating.documented());
    grants.extend(creating.create());
    for (job, left_out) in &cases {
        grants.extend(job.documented().into_iter().filter(|a| a != left_out));
    }
    cleanup.grant(&grants);
    // The broker's authorizer takes the new ACLs from the metadata log a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bob_sees(broker, &cases.last().expect("cases").0.input) {
        assert!(
            Instant::now() < deadline,
            "the ACLs granted do not take effect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{} jobs prepared in {:?}",
        cases.len() + 2,
        started.elapsed()
    );

    // At most `AT_ONCE` jobs run at a time: each stops in seconds, but seventeen at once on a
    // small CI machine would measure the machine, not the job.
    let jobs: Vec<&Job> = [&full, &creating]
        .into_iter()
        .chain(cases.iter().map(|(j, _)| j))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut ran: Vec<Option<Ran>> = Vec::new();
    ran.resize_with(jobs.len(), || None);
    let ran = std::sync::Mutex::new(ran);
    std::thread::scope(|s| {
        for _ in 0..AT_ONCE {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = run(&bin, &job.args(broker));
                    ran.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let mut ran = ran.into_inner().unwrap().into_iter().map(Option::unwrap);
    let (full_ran, creating_ran) = (ran.next().unwrap(), ran.next().unwrap());
    let refused: Vec<Ran> = ran.collect();

    assert!(
        full_ran.success,
        "with the documented ACLs:\n{}",
        full_ran.output
    );
    assert_seed_outputs(broker, &full);
    assert!(
        creating_ran.success,
        "creating its topics:\n{}",
        creating_ran.output
    );
    assert_seed_outputs(broker, &creating);
    for ((_, acl), ran) in cases.iter().zip(&refused) {
        assert_refused(acl, ran);
    }

    // READ on the changelog: the first job has state to restore now.
    let changelog_read = Acl::topic(&full.changelog(), "READ");
    cleanup.revoke(std::slice::from_ref(&changelog_read));
    std::thread::sleep(Duration::from_secs(1));
    full.produce(broker, &[(0, "p001", reading("p001", W0 + 70_000, "80"))]);
    let ran = run(&bin, &full.args(broker));
    assert_refused(&changelog_read, &ran);
    eprintln!("{} jobs in {:?}", cases.len() + 3, started.elapsed());
}
