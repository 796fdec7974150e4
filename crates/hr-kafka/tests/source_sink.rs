//! Source, sink and table against a real broker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hr_kafka::rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use hr_kafka::rdkafka::types::RDKafkaErrorCode;
use hr_kafka::testkit::{bootstrap, create_topic, end_with_witness, unique_topic};
use hr_kafka::{
    KafkaError, PartitionReader, Polled, RebalanceEvent, Sink, Source, SourceConfig, TableFollower,
    blocking, client_config, read_table,
};

fn produce(topic: &str, records: &[(i32, Option<&str>, Option<&str>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(&bootstrap(), &[]).create().unwrap();
    for (p, k, v) in records {
        let mut r = BaseRecord::<str, str>::to(topic).partition(*p);
        if let Some(k) = k {
            r = r.key(*k);
        }
        if let Some(v) = v {
            r = r.payload(*v);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn source(topic: &str, group: &str, bounded: bool) -> Source {
    Source::new(&SourceConfig {
        bootstrap: bootstrap(),
        group: group.into(),
        topic: topic.into(),
        from_beginning: true,
        bounded,
        overrides: Vec::new(),
    })
    .unwrap()
}

/// Reads until the source is done; returns (partition, offset, payload) in reading order.
fn drain(src: &Source) -> Vec<(i32, i64, String)> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !src.is_done() {
        assert!(
            std::time::Instant::now() < deadline,
            "the bounded source never ended"
        );
        src.take_rebalances();
        if let Polled::Record(r) = src.poll(Duration::from_millis(100)).unwrap() {
            let payload = String::from_utf8(r.payload().to_vec()).unwrap();
            out.push((r.partition(), r.offset(), payload));
        }
    }
    out
}

#[test]
fn bounded_source_stops_at_the_end_offsets_seen_at_start_and_resumes_from_commits() {
    let topic = unique_topic("source");
    create_topic(&bootstrap(), &topic, 3);
    produce(
        &topic,
        &[
            (0, None, Some("a")),
            (0, None, Some("b")),
            (2, None, Some("c")),
        ],
    );
    let group = unique_topic("group");

    let src = source(&topic, &group, true);
    // Records written after the start are past the captured end.
    produce(&topic, &[(0, None, Some("late"))]);
    let mut got = drain(&src);
    got.sort();
    assert_eq!(
        got,
        [(0, 0, "a".into()), (0, 1, "b".into()), (2, 0, "c".into())]
    );
    assert_eq!(
        src.assigned().len(),
        3,
        "partition 1 had nothing and still counts as done"
    );
    src.commit(&BTreeMap::from([(0, 2), (2, 1)])).unwrap();
    drop(src);

    let again = source(&topic, &group, true);
    assert_eq!(drain(&again), [(0, 2, "late".into())]);
}

#[test]
fn a_deleted_group_reads_from_the_start_and_a_group_with_members_is_not_deleted() {
    let topic = unique_topic("source");
    create_topic(&bootstrap(), &topic, 1);
    produce(&topic, &[(0, None, Some("a")), (0, None, Some("b"))]);
    let group = unique_topic("group");
    let src = source(&topic, &group, true);
    assert_eq!(drain(&src).len(), 2);
    src.commit(&BTreeMap::from([(0, 2)])).unwrap();

    let cfg = client_config(&bootstrap(), &[]);
    let timeout = Duration::from_secs(30);
    let refused = blocking::delete_groups(&cfg, &[&group], timeout).unwrap_err();
    assert!(
        refused.to_string().contains(&group) && refused.to_string().contains("not empty"),
        "{refused}"
    );
    drop(src);

    blocking::delete_groups(&cfg, &[&group, &unique_topic("never-made")], timeout).unwrap();
    let again = source(&topic, &group, true);
    assert_eq!(
        drain(&again),
        [(0, 0, "a".into()), (0, 1, "b".into())],
        "the group's commits went with it"
    );
    drop(again);

    blocking::delete_topics(&cfg, &[&topic], timeout).unwrap();
    let admin = hr_kafka::Admin::new(&cfg).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while blocking::describe_topic_on(&admin, &topic, Duration::from_secs(5)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "{topic} still there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rebalance_events_report_the_assignment() {
    let topic = unique_topic("source");
    create_topic(&bootstrap(), &topic, 2);
    let src = source(&topic, &unique_topic("group"), false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    while events.is_empty() {
        assert!(std::time::Instant::now() < deadline, "never assigned");
        let _ = src.poll(Duration::from_millis(100)).unwrap();
        events = src.take_rebalances();
    }
    assert_eq!(events, [RebalanceEvent::Assigned(vec![0, 1])]);
    assert!(!src.is_done(), "an unbounded source never ends");
}

#[test]
fn table_keeps_the_last_value_per_key_and_honours_deletes() {
    let topic = unique_topic("table");
    create_topic(&bootstrap(), &topic, 2);
    produce(
        &topic,
        &[
            (0, Some("x"), Some("1")),
            (1, Some("y"), Some("1")),
            (0, Some("x"), Some("2")),
            (1, Some("y"), None),
            (1, None, Some("keyless")),
        ],
    );
    let table = read_table(&bootstrap(), &[], &topic, Duration::from_secs(30)).unwrap();
    assert_eq!(table, BTreeMap::from([(b"x".to_vec(), b"2".to_vec())]));
    let empty = unique_topic("table");
    create_topic(&bootstrap(), &empty, 1);
    assert!(
        read_table(&bootstrap(), &[], &empty, Duration::from_secs(30))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_table_of_a_topic_that_does_not_exist_is_an_error_not_an_empty_table() {
    let missing = unique_topic("missing");
    // The broker's answer, or librdkafka's own when it finds no such partition in it.
    let unknown = |e: KafkaError| {
        assert!(
            matches!(
                e.code(),
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownPartition
                )
            ),
            "{e}"
        );
    };
    let started = Instant::now();
    unknown(read_table(&bootstrap(), &[], &missing, Duration::from_secs(2)).unwrap_err());
    unknown(
        TableFollower::new(&bootstrap(), &[], &missing, Duration::from_secs(2))
            .err()
            .unwrap(),
    );
    unknown(
        PartitionReader::new(&bootstrap(), &[], &missing)
            .unwrap()
            .read(0, Duration::from_secs(2))
            .unwrap_err(),
    );
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "each reader asks again for its whole timeout before the answer stands: {:?}",
        started.elapsed()
    );
}

/// Instances started together on a cluster: one creates the changelog while another is already
/// asking a broker about it. The readers wait for the topic instead of failing the job (the
/// changelog reader) or following nothing (the table follower).
#[test]
fn a_topic_created_while_its_readers_ask_for_it_is_read() {
    let topic = unique_topic("late-table");
    let reader = PartitionReader::new(&bootstrap(), &[], &topic).unwrap();
    let maker = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            create_topic(&bootstrap(), &topic, 2);
            produce(
                &topic,
                &[
                    (0, Some("a"), Some("1")),
                    (1, Some("b"), Some("1")),
                    (0, Some("a"), Some("2")),
                ],
            );
        })
    };
    let follower = TableFollower::new(&bootstrap(), &[], &topic, Duration::from_secs(30))
        .expect("the follower waits for a topic that appears");
    let partition = reader
        .read(0, Duration::from_secs(30))
        .expect("the changelog reader waits for a topic that appears");
    maker.join().unwrap();
    // Read before or after the records came: all of them or none, never a part.
    let a = partition.entries.get(b"a".as_slice());
    assert!(
        partition.entries.is_empty() || a == Some(&b"2".to_vec()),
        "{:?}",
        partition.entries
    );
    let mut table = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while table.len() < 2 || table.get(b"a".as_slice()) != Some(&b"2".to_vec()) {
        assert!(
            Instant::now() < deadline,
            "the follower saw only {table:?} of both partitions"
        );
        for u in follower.poll().unwrap() {
            table.insert(u.key.unwrap(), u.value.unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        table,
        BTreeMap::from([
            (b"a".to_vec(), b"2".to_vec()),
            (b"b".to_vec(), b"1".to_vec())
        ])
    );
}

/// 4 MB of pseudo-random hex: the producer takes it, the broker's 1 MB limit refuses it, and
/// lz4 cannot shrink it under that.
fn too_big_for_the_broker() -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: String = (0..4_000_000)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            char::from_digit(((x >> 60) & 0xf) as u32, 16).unwrap()
        })
        .collect();
    big
}

#[test]
fn sink_flush_reports_failed_deliveries() {
    let mut sink = Sink::new(
        &bootstrap(),
        &[
            ("message.timeout.ms".into(), "5000".into()),
            ("message.max.bytes".into(), "10000000".into()),
        ],
    )
    .unwrap();
    let topic = unique_topic("sink");
    create_topic(&bootstrap(), &topic, 1);
    sink.send_json(&topic, "p001", "{}").unwrap();
    sink.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(sink.progress(), (1, 1));
    // The producer accepts it but the broker's 1 MB record limit refuses it: the flush must say so.
    let big = too_big_for_the_broker();
    sink.send_json(&topic, "p001", &big).unwrap();
    let err = sink.flush(Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(err, hr_kafka::KafkaError::Delivery { failed: 1, .. }),
        "{err}"
    );
}

/// `Delivered::wait` on another thread returns once the records queued before the mark have
/// answers, and reports a failed one.
#[test]
fn delivered_wait_covers_the_records_before_the_mark() {
    let mut sink = Sink::new(
        &bootstrap(),
        &[
            ("message.timeout.ms".into(), "5000".into()),
            ("message.max.bytes".into(), "10000000".into()),
        ],
    )
    .unwrap();
    let topic = unique_topic("sink-mark");
    create_topic(&bootstrap(), &topic, 3);
    for i in 0..200 {
        sink.send_json(&topic, &format!("p{i}"), "{}").unwrap();
    }
    let mark = sink.mark();
    assert_eq!(mark, 200);
    let delivered = sink.delivered();
    std::thread::spawn(move || delivered.wait(mark, Duration::from_secs(30)))
        .join()
        .unwrap()
        .unwrap();
    assert!(sink.progress().1 >= 200, "{:?}", sink.progress());
    // A record the broker refuses.
    let big = too_big_for_the_broker();
    sink.send_json(&topic, "p001", &big).unwrap();
    let err = sink
        .delivered()
        .wait(sink.mark(), Duration::from_secs(30))
        .unwrap_err();
    assert!(
        matches!(err, hr_kafka::KafkaError::Delivery { failed: 1, .. }),
        "{err}"
    );
    // Reported once: the next wait is clean.
    sink.send_json(&topic, "p002", "{}").unwrap();
    sink.delivered()
        .wait(sink.mark(), Duration::from_secs(30))
        .unwrap();
}

#[test]
fn lag_counts_the_records_behind_each_partitions_end() {
    let topic = unique_topic("source");
    create_topic(&bootstrap(), &topic, 2);
    let records: Vec<(i32, Option<&str>, Option<&str>)> = (0..10)
        .map(|i| (i32::from(i >= 7), None, Some("x")))
        .collect();
    produce(&topic, &records);
    let src = source(&topic, &unique_topic("group"), false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // The consumer's position per partition: the offset after the last record polled.
    let mut position = BTreeMap::from([(0, 0), (1, 0)]);
    while src.assigned().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never assigned");
        if let Polled::Record(r) = src.poll(Duration::from_millis(100)).unwrap() {
            position.insert(r.partition(), r.offset() + 1);
        }
        // Updates `assigned`.
        let _ = src.take_rebalances();
    }
    // No next offsets from the caller: from the consumer's position, also for a partition
    // no fetch has reached yet.
    assert_eq!(
        src.lag(&BTreeMap::new()),
        BTreeMap::from([(0, 7 - position[&0]), (1, 3 - position[&1])])
    );
    // The caller's next offsets: 5 of partition 0 processed, all of partition 1.
    let next = BTreeMap::from([(0, 5), (1, 3)]);
    assert_eq!(src.lag(&next), BTreeMap::from([(0, 2), (1, 0)]));
    produce(&topic, &[(1, None, Some("y"))]);
    // The new end shows once a fetch response has carried it.
    while src.lag(&next).get(&1) != Some(&1) {
        assert!(std::time::Instant::now() < deadline, "{:?}", src.lag(&next));
        let _ = src.poll(Duration::from_millis(100)).unwrap();
    }
}

/// A member that gets partitions back after a rebalance reads them again: librdkafka drops a
/// partition queue's forwarding when it stops fetching it, and the batch reader forwards it
/// again (before, partitions assigned back were never read).
#[test]
fn partitions_assigned_back_after_a_rebalance_are_read_again() {
    let topic = unique_topic("source");
    create_topic(&bootstrap(), &topic, 4);
    let first: Vec<_> = (0..4).map(|p| (p, None, Some("first"))).collect();
    produce(&topic, &first);
    let group = unique_topic("group");
    let a = source(&topic, &group, false);
    let mut read: Vec<(char, i32, String)> = Vec::new();
    let poll = |name: char, src: &Source, read: &mut Vec<(char, i32, String)>| {
        src.take_rebalances();
        if let Polled::Record(r) = src.poll(Duration::from_millis(20)).unwrap() {
            let payload = String::from_utf8(r.payload().to_vec()).unwrap();
            read.push((name, r.partition(), payload));
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "a read {read:?}");
        poll('a', &a, &mut read);
    }
    // A second member: an eager rebalance takes every partition from `a` and gives some back.
    let b = source(&topic, &group, false);
    while a.assigned().is_empty()
        || b.assigned().is_empty()
        || a.assigned().len() + b.assigned().len() != 4
    {
        assert!(std::time::Instant::now() < deadline, "never rebalanced");
        poll('a', &a, &mut read);
        poll('b', &b, &mut read);
    }
    let second: Vec<_> = (0..4).map(|p| (p, None, Some("second"))).collect();
    produce(&topic, &second);
    let seconds = |read: &[(char, i32, String)]| {
        read.iter()
            .filter(|(_, _, v)| v == "second")
            .map(|(who, p, _)| (*p, *who))
            .collect::<BTreeMap<i32, char>>()
    };
    while seconds(&read).len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "partitions not read after the rebalance: a has {:?}, b has {:?}, read {:?}",
            a.assigned(),
            b.assigned(),
            seconds(&read)
        );
        poll('a', &a, &mut read);
        poll('b', &b, &mut read);
    }
    let owners = seconds(&read);
    for p in a.assigned() {
        assert_eq!(owners[&p], 'a', "{owners:?}");
    }
    for p in b.assigned() {
        assert_eq!(owners[&p], 'b', "{owners:?}");
    }
    assert_eq!(
        read.iter().filter(|(_, _, v)| v == "second").count(),
        4,
        "each new record once: {read:?}"
    );
}

/// A transaction's witness (its first acknowledged record, of the watched topic first) says
/// whether it committed, was aborted, or is still open, whatever was written after it.
#[test]
fn a_witness_tells_committed_aborted_and_open_transactions_apart() {
    use hr_kafka::{Outcome, Witness, witness};
    let b = bootstrap();
    let out = unique_topic("witness-out");
    let log = unique_topic("witness-log");
    create_topic(&b, &out, 1);
    create_topic(&b, &log, 2);
    let id = unique_topic("witness-txn");
    let mut txn = Sink::transactional(&b, &[], &id, Duration::from_secs(30)).unwrap();
    txn.watch(&log);
    let ask = |w: &Witness| witness::outcome(&b, &[], w, Duration::from_secs(30)).unwrap();

    // Committed: the witness is the watched topic's record, though the other came first.
    txn.send_json(&out, "p1", "{\"a\":1}").unwrap();
    txn.send_record(&log, Some(1), b"k", Some(b"v"), None)
        .unwrap();
    let (ended, seen) = end_with_witness(&mut txn, &b, &out, true);
    ended.unwrap();
    let committed = seen.expect("a witness");
    assert_eq!(
        (committed.topic.as_str(), committed.partition),
        (log.as_str(), 1)
    );
    assert_eq!(ask(&committed), Outcome::Committed);

    // Still open: the commit is never sent (keeping its witness failed).
    txn.send_json(&out, "p2", "{\"a\":2}").unwrap();
    let (ended, seen) = end_with_witness(&mut txn, &b, &out, false);
    let err = ended.unwrap_err();
    assert!(
        err.to_string().contains("stopped before the commit"),
        "{err}"
    );
    let open = seen.expect("a witness");
    assert_eq!(open.topic, out, "no watched record: the first of any topic");
    assert_eq!(ask(&open), Outcome::Open);

    // Aborted, and then written past by a committed transaction.
    txn.abort(Duration::from_secs(30)).unwrap();
    txn.send_json(&out, "p3", "{\"a\":3}").unwrap();
    end_with_witness(&mut txn, &b, &out, true).0.unwrap();
    assert_eq!(ask(&open), Outcome::Aborted);
    assert_eq!(ask(&committed), Outcome::Committed);
}
