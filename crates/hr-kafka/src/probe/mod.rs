//! A connection check that fails fast and says why: [`probe`].
//!
//! librdkafka never gives up on a broker: a wrong password, an untrusted certificate or a closed
//! port all end, for a caller that only waits for an answer, as `OperationTimedOut` after the
//! request timeout (30-60 s). The reason is known much earlier: librdkafka reports it through the
//! client's error callback within a few hundred milliseconds (`SASL authentication error: ...
//! Invalid username or password`, `SSL handshake failed: ... certificate verify failed`). [`probe`]
//! asks for metadata with a client whose error and log events it reads itself, returns at the
//! first one that cannot fix itself by retrying, and classifies it ([`ConnectErrorKind`]) so that
//! a binary can print one line a newcomer understands. A certificate verification callback adds
//! OpenSSL's verdict (`certificate has expired`, `self-signed certificate in certificate chain`),
//! which librdkafka's handshake error leaves out.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;

mod client;
mod report;

use client::ProbeClient;
pub use report::{ConnectError, ConnectErrorKind};

/// How long an unreachable broker is given to come up before [`probe`] reports it: librdkafka's
/// first reconnect comes 100 ms after a refused connection, so a broker that is just starting (or
/// one of several bootstrap addresses that answers a little later) still gets its chance.
const UNREACHABLE_GRACE: Duration = Duration::from_millis(1500);

/// One metadata request's wait; between them the captured errors are checked.
const STEP: Duration = Duration::from_millis(100);

/// What the cluster answered to [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The bootstrap servers the probe was given.
    pub bootstrap: String,
    /// The brokers the cluster advertises, as `host:port`.
    pub brokers: Vec<String>,
    /// How many topics the client may see (those it is authorised to describe).
    pub topics: usize,
    /// How long the answer took.
    pub elapsed: Duration,
}

/// Connects to the cluster of `config` and asks for its metadata: `Ok` as soon as it answers,
/// otherwise, within `timeout` (10 s is a good value), the first decisive reason librdkafka or the
/// broker gave.
///
/// Authentication, TLS, protocol and configuration failures return at once (a wrong SCRAM
/// password takes about 0.3 s); an unreachable broker is given about 1.5 s to come up. The call
/// blocks the thread: from async code run it in `tokio::task::spawn_blocking`.
///
/// `config` is used as given (bootstrap servers and every `-X` property), so the probe sees
/// exactly what the real clients will. It only reads metadata, which any authenticated principal
/// may do: a missing ACL shows up later, as an [`Authorization`](ConnectErrorKind::Authorization)
/// failure of the operation itself ([`ConnectError::from_kafka_error`]).
///
/// # Errors
/// A [`ConnectError`] whose [`kind`](ConnectError::kind) says what failed and whose `Display` is a
/// one-line message naming the address and the reason.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// let cfg = hr_kafka::client_config("localhost:9092", &[]);
/// match hr_kafka::probe(&cfg, Duration::from_secs(10)) {
///     Ok(info) => println!("connected to {} broker(s)", info.brokers.len()),
///     Err(e) => {
///         eprintln!("error: {e}");
///         std::process::exit(1);
///     }
/// }
/// ```
pub fn probe(config: &ClientConfig, timeout: Duration) -> Result<BrokerInfo, ConnectError> {
    let started = Instant::now();
    let bootstrap = config.get("bootstrap.servers").unwrap_or("").to_owned();
    let fail =
        |kind, reason: String| ConnectError::new(kind, &bootstrap, reason, started.elapsed());
    let client =
        ProbeClient::new(config).map_err(|e| fail(ConnectErrorKind::Config, config_reason(&e)))?;
    let mut verify: Option<String> = None;
    let mut unreachable: Option<String> = None;
    let mut all_down: Option<String> = None;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        match client.client.fetch_metadata(None, left.min(STEP)) {
            Ok(md) => {
                return Ok(BrokerInfo {
                    bootstrap: bootstrap.clone(),
                    brokers: md
                        .brokers()
                        .iter()
                        .map(|b| format!("{}:{}", b.host(), b.port()))
                        .collect(),
                    topics: md.topics().len(),
                    elapsed: started.elapsed(),
                });
            }
            Err(e) => {
                let code = e.rdkafka_error_code();
                if code != Some(RDKafkaErrorCode::OperationTimedOut)
                    && let Some(kind) = ConnectErrorKind::classify(code, &e.to_string())
                    && kind.is_decisive()
                {
                    return Err(fail(kind, e.to_string()));
                }
            }
        }
        let events = client.events();
        verify = events.verify.or(verify);
        let with_verdict = |reason: String| match &verify {
            Some(v) if reason.contains("certificate verify failed") => format!("{reason}; {v}"),
            _ => reason,
        };
        for (code, reason) in events.errors {
            match ConnectErrorKind::classify(code, &reason) {
                Some(kind) if kind.is_decisive() => return Err(fail(kind, with_verdict(reason))),
                Some(ConnectErrorKind::Unreachable) => {
                    // Only a refused connection or an unknown name proves the address wrong:
                    // "1/1 brokers are down" also follows a connection that a listener in
                    // another protocol accepted and then left unanswered.
                    if code == Some(RDKafkaErrorCode::AllBrokersDown) {
                        all_down = Some(reason);
                    } else {
                        unreachable = Some(reason);
                    }
                }
                _ => {}
            }
        }
        let elapsed = started.elapsed();
        if let Some(reason) = &unreachable
            && elapsed >= UNREACHABLE_GRACE.min(timeout)
        {
            return Err(fail(ConnectErrorKind::Unreachable, reason.clone()));
        }
        if elapsed >= timeout {
            return Err(fail(
                ConnectErrorKind::Timeout,
                all_down.unwrap_or_default(),
            ));
        }
    }
}

fn config_reason(e: &RdError) -> String {
    match e {
        RdError::ClientCreation(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// librdkafka's compiled-in features (`builtin.features`), e.g. `ssl`, `sasl_scram`,
/// `sasl_oauthbearer`: what `security.protocol` and `sasl.mechanism` values this build accepts.
///
/// # Example
/// ```
/// let features = hr_kafka::builtin_features();
/// assert!(features.iter().any(|f| f == "ssl"), "{features:?}");
/// ```
pub fn builtin_features() -> Vec<String> {
    ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectErrorKind as K;

    #[test]
    fn this_build_has_tls_and_every_sasl_mechanism_we_document() {
        let features = builtin_features();
        for needed in ["ssl", "sasl_plain", "sasl_scram", "sasl_oauthbearer"] {
            assert!(
                features.iter().any(|f| f == needed),
                "{needed} missing from {features:?}"
            );
        }
    }

    #[test]
    fn an_invalid_configuration_fails_before_connecting() {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", "localhost:1")
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", "/nonexistent/ca.pem");
        let e = probe(&cfg, Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), K::Config, "{e}");
        assert!(e.to_string().contains("ssl.ca.location"), "{e}");
        assert!(e.elapsed() < Duration::from_secs(1), "{e:?}");
    }

    #[test]
    fn a_closed_port_is_reported_as_unreachable_within_two_seconds() {
        // Port 1 (tcpmux) is closed on any machine that runs these tests.
        let cfg = crate::client_config("localhost:1", &[]);
        let e = probe(&cfg, Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.kind(), K::Unreachable, "{e}");
        assert!(
            e.reason().contains("127.0.0.1:1") || e.reason().contains("localhost:1"),
            "{e}"
        );
        assert!(e.to_string().contains("just up"), "{e}");
        assert!(e.elapsed() < Duration::from_secs(2), "{e:?}");
    }
}
