use std::time::Duration;

use hr_kafka::rdkafka::Message;
use hr_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hr_kafka::testkit::{bootstrap, create_topic, unique_topic};
use serde_json::Value;

#[test]
fn hello_world_messages_arrive_intact_and_transformed() {
    let bootstrap = bootstrap();
    let input = unique_topic("hello_input");
    let output = unique_topic("hello_output");
    create_topic(&bootstrap, &input, 1);
    create_topic(&bootstrap, &output, 1);

    hr_stream::produce_hello(&bootstrap, &input, 10).unwrap();
    let group = unique_topic("hello_job");
    let n = hr_stream::run_hello_job(
        &bootstrap,
        &group,
        &input,
        &output,
        10,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(n, 10);

    let consumer: BaseConsumer = hr_kafka::client_config(
        &bootstrap,
        &[
            ("group.id".into(), unique_topic("hello_check")),
            ("auto.offset.reset".into(), "earliest".into()),
        ],
    )
    .create()
    .unwrap();
    consumer.subscribe(&[&output]).unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 10 && std::time::Instant::now() < deadline {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.unwrap();
            seen.push(serde_json::from_slice::<Value>(msg.payload().unwrap()).unwrap());
        }
    }
    assert_eq!(seen.len(), 10, "all 10 messages reach {output}");
    seen.sort_by_key(|v| v["id"].as_u64());
    for (n, v) in seen.iter().enumerate() {
        let mut expected = hr_stream::hello_message(n);
        expected["processed_by"] = Value::from("hello_stream_job");
        assert_eq!(v, &expected, "message {n} intact and tagged");
    }
    // Nothing beyond the 10 messages arrives.
    assert!(consumer.poll(Duration::from_secs(1)).is_none());
}

#[test]
fn transform_refuses_non_objects() {
    assert!(hr_stream::transform(b"[1,2]").is_err());
    assert!(hr_stream::transform(b"not json").is_err());
    let out = hr_stream::transform(br#"{"a":1}"#).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        serde_json::json!({"a":1,"processed_by":"hello_stream_job"})
    );
}
