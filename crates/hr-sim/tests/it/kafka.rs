//! Records reach a real broker, keyed by patient, and a consumer reads them back.
//!
//! The broker comes from `hr_kafka::testkit` (`HR_KAFKA_BOOTSTRAP`, a running local broker, or
//! one it starts); the test fails, rather than skips, when none can be had.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::Message;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_sim::{FaultConfig, KafkaSink, Pace, SimConfig, Simulation, run};

/// The shared test broker and a fresh topic for this test.
mod broker {
    pub use hr_kafka::testkit::{bootstrap, create_topic, unique_topic as unique_name};
}

#[test]
fn records_are_keyed_by_patient_and_readable() {
    let bootstrap = broker::bootstrap();
    let topic = broker::unique_name("hr_sim_keyed");
    broker::create_topic(&bootstrap, &topic, 3);

    let config = SimConfig {
        seed: 5,
        patients: 25,
        max_records: Some(20_000),
        faults: FaultConfig {
            malformed: 0.01,
            duplicate: 0.01,
            out_of_order: 0.01,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(config.clone()).unwrap();
    let mut sink = KafkaSink::new(&bootstrap, &[], &topic).unwrap();
    let report = run(
        &mut sim,
        &mut sink,
        Pace::AsFastAsPossible,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.records, 20_000);
    assert_eq!(
        (report.delivery.delivered, report.delivery.failed),
        (20_000, 0)
    );

    // What was sent, per key in order: the same configuration replays the same records.
    let mut expected: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for r in Simulation::new(config).unwrap() {
        expected.entry(r.patient_id).or_default().push(r.payload);
    }

    let consumer: BaseConsumer = hr_kafka::client_config(
        &bootstrap,
        &[
            ("group.id".into(), broker::unique_name("hr_sim_reader")),
            ("auto.offset.reset".into(), "earliest".into()),
            ("enable.auto.commit".into(), "false".into()),
        ],
    )
    .create()
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut got: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < 20_000 && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.unwrap();
        let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
        let payload = msg.payload().unwrap().to_vec();
        // One patient, one partition: what per-patient ordering downstream rests on.
        let p = *partition_of.entry(key.clone()).or_insert(msg.partition());
        assert_eq!(p, msg.partition(), "{key} moved partition");
        if let Ok(event) = hr_model::parse_event(&payload) {
            assert_eq!(event.patient_id, key);
        }
        got.entry(key).or_default().push(payload);
        total += 1;
    }
    assert_eq!(total, 20_000);
    assert_eq!(got, expected, "every patient's records, in the order sent");
    let partitions: std::collections::HashSet<i32> = partition_of.values().copied().collect();
    assert_eq!(
        partitions.len(),
        3,
        "25 patients spread over all partitions"
    );
}
