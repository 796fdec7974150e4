//! TLS, SASL (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN) and mTLS against the real secured test broker
//! (`testkit::tls_broker`, started by `docker/kafka-tls.sh`), and [`probe`]'s fast, explained
//! failures: a wrong password, an untrusted CA, an expired certificate, a missing client
//! certificate, the wrong `security.protocol`, and a user without ACLs.

use std::time::{Duration, Instant};

use hr_kafka::testkit::{ALICE, BOB, TlsBroker, User, tls_broker, unique_topic};
use hr_kafka::{
    ConnectError, ConnectErrorKind, KafkaError, Polled, Sink, Source, SourceConfig, TopicOutcome,
    TopicSpec, blocking, client_config, probe,
};

/// The bound for a reported authentication or TLS failure.
const FAST: Duration = Duration::from_secs(10);

fn with(mut props: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    props.retain(|(k, _)| k != key);
    props.push((key.into(), value.into()));
    props
}

/// Probes `bootstrap` with `props`, expecting a failure of `kind` within [`FAST`].
fn fails_fast(bootstrap: &str, props: &[(String, String)], kind: ConnectErrorKind) -> ConnectError {
    let started = Instant::now();
    let result = probe(&client_config(bootstrap, props), FAST);
    let took = started.elapsed();
    let e = result.expect_err("the probe must fail");
    eprintln!("{kind:?} after {took:?}: {e}");
    assert_eq!(e.kind(), kind, "{e}");
    assert!(took < FAST, "took {took:?}: {e}");
    assert!(e.to_string().contains(bootstrap), "names the address: {e}");
    e
}

/// Creates a topic, writes `n` records through [`Sink`] and reads them back through a bounded
/// [`Source`], all with `props` on `bootstrap`.
fn round_trip(bootstrap: &str, props: &[(String, String)], n: usize) {
    let info = probe(&client_config(bootstrap, props), FAST).unwrap();
    assert_eq!(info.brokers.len(), 1, "{info:?}");

    let topic = unique_topic("tls");
    let outcomes = blocking::ensure_topics(
        &client_config(bootstrap, props),
        &[TopicSpec::new(&topic, 2)],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(outcomes, [TopicOutcome::Created(topic.clone())]);

    let mut sink = Sink::new(bootstrap, props).unwrap();
    for i in 0..n {
        sink.send_json(&topic, &format!("p{:03}", i % 7), &format!("{{\"n\":{i}}}"))
            .unwrap();
    }
    sink.flush(Duration::from_secs(30)).unwrap();

    let src = Source::new(&SourceConfig {
        bootstrap: bootstrap.into(),
        group: unique_topic("tls-group"),
        topic: topic.clone(),
        from_beginning: true,
        bounded: true,
        overrides: props.to_vec(),
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while !src.is_done() {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} records",
            got.len()
        );
        src.take_rebalances();
        if let Polled::Record(r) = src.poll(Duration::from_millis(100)).unwrap() {
            got.push(String::from_utf8(r.payload().to_vec()).unwrap());
        }
    }
    got.sort_by_key(|s| s[5..s.len() - 1].parse::<usize>().unwrap());
    let want: Vec<String> = (0..n).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(got, want, "every record read back once, intact");
}

fn alice(broker: &TlsBroker, mechanism: &str) -> Vec<(String, String)> {
    broker.sasl_props(mechanism, ALICE)
}

#[test]
fn scram_sha_256_topics_sink_and_source_work_over_tls() {
    let b = tls_broker();
    round_trip(&b.sasl_ssl, &alice(b, "SCRAM-SHA-256"), 200);
}

#[test]
fn scram_sha_512_topics_sink_and_source_work_over_tls() {
    let b = tls_broker();
    round_trip(&b.sasl_ssl, &alice(b, "SCRAM-SHA-512"), 200);
}

#[test]
fn plain_over_tls_works_too() {
    let b = tls_broker();
    round_trip(&b.sasl_ssl, &alice(b, "PLAIN"), 50);
}

#[test]
fn mtls_with_the_client_certificate_works() {
    let b = tls_broker();
    round_trip(&b.mtls, &b.mtls_props(), 50);
}

#[test]
fn a_wrong_password_fails_fast_with_the_brokers_reason() {
    let b = tls_broker();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let props = with(alice(b, mechanism), "sasl.password", "not-alice-secret");
        let e = fails_fast(&b.sasl_ssl, &props, ConnectErrorKind::Authentication);
        assert!(e.reason().contains("SASL authentication error"), "{e}");
        assert!(
            e.reason().contains("invalid credentials")
                || e.reason().contains("Invalid username or password"),
            "{e}"
        );
        assert!(
            e.to_string().contains("sasl.password"),
            "says what to check: {e}"
        );
        // librdkafka reports it within a second; anything near the timeout means the error
        // callback was missed and the probe waited for metadata instead.
        assert!(e.elapsed() < Duration::from_secs(3), "{e:?}");
    }
}

#[test]
fn an_unknown_user_and_a_mechanism_without_credentials_fail_as_authentication() {
    let b = tls_broker();
    let nobody = User {
        name: "nobody",
        password: "x",
    };
    fails_fast(
        &b.sasl_ssl,
        &b.sasl_props("SCRAM-SHA-256", nobody),
        ConnectErrorKind::Authentication,
    );
    // bob has SCRAM-SHA-256 credentials only.
    fails_fast(
        &b.sasl_ssl,
        &b.sasl_props("SCRAM-SHA-512", BOB),
        ConnectErrorKind::Authentication,
    );
}

#[test]
fn an_untrusted_ca_fails_fast_as_tls() {
    let b = tls_broker();
    let props = with(
        alice(b, "SCRAM-SHA-256"),
        "ssl.ca.location",
        b.other_ca.to_str().unwrap(),
    );
    let e = fails_fast(&b.sasl_ssl, &props, ConnectErrorKind::Tls);
    assert!(e.reason().contains("certificate verify failed"), "{e}");
    // OpenSSL's verdict, which librdkafka's own message leaves out.
    assert!(
        e.reason()
            .contains("self-signed certificate in certificate chain"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("not signed by a CA in ssl.ca.location"),
        "says what to check: {e}"
    );
}

#[test]
fn an_expired_broker_certificate_fails_fast_as_tls() {
    let b = tls_broker();
    let props = [
        ("security.protocol".to_owned(), "SSL".to_owned()),
        (
            "ssl.ca.location".to_owned(),
            b.ca.to_str().unwrap().to_owned(),
        ),
    ];
    let e = fails_fast(&b.expired, &props, ConnectErrorKind::Tls);
    assert!(e.reason().contains("certificate has expired"), "{e}");
    assert!(
        e.to_string().contains("subject=/CN=localhost"),
        "names the certificate: {e}"
    );
}

#[test]
fn mtls_without_a_client_certificate_fails_fast() {
    let b = tls_broker();
    let props: Vec<(String, String)> = b
        .mtls_props()
        .into_iter()
        .filter(|(k, _)| k == "security.protocol" || k == "ssl.ca.location")
        .collect();
    let e =
        probe(&client_config(&b.mtls, &props), FAST).expect_err("a client certificate is required");
    eprintln!("{e}");
    // TLS 1.3 finishes the client's side of the handshake before the broker checks for a
    // certificate, so librdkafka may see the refusal as a TLS alert or as a closed connection.
    assert!(
        matches!(e.kind(), ConnectErrorKind::Tls | ConnectErrorKind::Protocol),
        "{e}"
    );
    assert!(e.elapsed() < FAST, "{e:?}");
}

#[test]
fn tls_to_a_plaintext_listener_is_reported_as_the_wrong_protocol() {
    let b = tls_broker();
    // The broker's internal listener (port + 3) speaks plaintext.
    let port: u16 = b.sasl_ssl.rsplit_once(':').unwrap().1.parse().unwrap();
    let plaintext = format!("127.0.0.1:{}", port + 3);
    let props = [
        ("security.protocol".to_owned(), "SSL".to_owned()),
        (
            "ssl.ca.location".to_owned(),
            b.ca.to_str().unwrap().to_owned(),
        ),
    ];
    let e = fails_fast(&plaintext, &props, ConnectErrorKind::Protocol);
    assert!(e.reason().contains("PLAINTEXT"), "{e}");
    assert!(e.to_string().contains("security.protocol"), "{e}");
}

#[test]
fn plaintext_to_the_tls_listener_times_out_pointing_at_security_protocol() {
    // A Java TLS listener waits for the rest of what it takes for a TLS record, so the client
    // sees neither an error nor an answer: the probe's own timeout is what ends it.
    let b = tls_broker();
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let e = probe(&client_config(&b.sasl_ssl, &[]), timeout).expect_err("no answer");
    assert_eq!(e.kind(), ConnectErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{e:?}"
    );
    assert!(e.to_string().contains("security.protocol"), "{e}");
}

#[test]
fn a_user_without_acls_connects_but_topic_creation_is_an_authorization_failure() {
    let b = tls_broker();
    let props = b.sasl_props("SCRAM-SHA-256", BOB);
    probe(&client_config(&b.sasl_ssl, &props), FAST).expect("bob authenticates");
    let topic = unique_topic("tls-denied");
    let err = blocking::ensure_topics(
        &client_config(&b.sasl_ssl, &props),
        &[TopicSpec::new(&topic, 1)],
        Duration::from_secs(30),
    )
    .expect_err("bob may not create topics");
    assert!(matches!(err, KafkaError::Topic { .. }), "{err}");
    let e = ConnectError::from_kafka_error(&b.sasl_ssl, &err).expect("classified");
    assert_eq!(e.kind(), ConnectErrorKind::Authorization, "{e}");
    assert!(e.to_string().contains(&topic), "{e}");
}

#[test]
fn oauthbearer_with_an_unsecured_jwt_works_through_properties_alone() {
    // librdkafka's built-in unsecured-JWT token source (no token endpoint; for development
    // clusters whose brokers use Kafka's default unsecured validator, as the test broker does).
    let b = tls_broker();
    let props: Vec<(String, String)> = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
        ("sasl.oauthbearer.config", "principal=alice"),
        ("ssl.ca.location", b.ca.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    round_trip(&b.sasl_ssl, &props, 20);
}
