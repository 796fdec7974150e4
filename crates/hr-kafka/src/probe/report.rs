//! How a failed connection is told: the kind of failure ([`ConnectErrorKind`], classified from
//! librdkafka's code and words) and [`ConnectError`], whose one-line message names the address,
//! quotes the reason and says what to check.

use std::time::Duration;

use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// Why [`probe`](super::probe) (or another call to Kafka) failed, in the terms a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// No broker could be reached: connection refused, name not resolved, all brokers down.
    Unreachable,
    /// The broker refused the SASL credentials (wrong user, password or mechanism).
    Authentication,
    /// The TLS handshake failed: an unknown CA, an expired certificate, a name mismatch, a
    /// missing or refused client certificate.
    Tls,
    /// The broker closed the connection in a way that usually means the client speaks another
    /// `security.protocol` than the listener (plaintext to a TLS port, or TLS to a plaintext one).
    Protocol,
    /// Connected and authenticated, but the principal may not do what was asked (ACLs).
    Authorization,
    /// librdkafka refused the client configuration itself (an unknown property, an unsupported
    /// value, a certificate file that cannot be read).
    Config,
    /// Nothing decisive was reported, but no answer came in time either.
    Timeout,
}

impl ConnectErrorKind {
    /// The kind of failure that `code` and librdkafka's `reason` describe, or `None` when they
    /// are not about connecting (e.g. a message too large).
    ///
    /// The text is looked at as well as the code because librdkafka reports several causes under
    /// one code (a broker that closes a TLS handshake is `__TRANSPORT`, not `__SSL`).
    ///
    /// # Example
    /// ```
    /// use hr_kafka::ConnectErrorKind;
    /// let reason = "sasl_ssl://localhost:9192/bootstrap: SASL authentication error: \
    ///     Authentication failed during authentication due to invalid credentials with SASL \
    ///     mechanism SCRAM-SHA-256 (after 305ms in state AUTH_REQ)";
    /// assert_eq!(ConnectErrorKind::classify(None, reason), Some(ConnectErrorKind::Authentication));
    /// ```
    pub fn classify(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<Self> {
        use RDKafkaErrorCode as C;
        let text = reason.to_ascii_lowercase();
        let has = |needle: &str| text.contains(needle);
        // librdkafka's own hints for a listener spoken to in the wrong protocol come first: the
        // same line may also say "SSL handshake failed" or "Disconnected".
        if has("security.protocol")
            || has("connecting to a plaintext")
            || has("connecting to a ssl")
        {
            return Some(Self::Protocol);
        }
        if matches!(code, Some(C::Authentication | C::SaslAuthenticationFailed))
            || has("sasl authentication error")
            || has("authentication failed")
            || has("invalid username or password")
        {
            return Some(Self::Authentication);
        }
        if matches!(code, Some(C::SSL))
            || has("ssl handshake failed")
            || has("certificate verify")
            || has("ssl routines")
            || has("ssl alert")
        {
            return Some(Self::Tls);
        }
        if matches!(
            code,
            Some(
                C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::TransactionalIdAuthorizationFailed
                    | C::DelegationTokenAuthorizationFailed
            )
        ) || has("authorization failed")
            || has("not authorized")
        {
            return Some(Self::Authorization);
        }
        if matches!(
            code,
            Some(C::AllBrokersDown | C::Resolve | C::BrokerTransportFailure)
        ) || has("connection refused")
            || has("failed to resolve")
            || has("brokers are down")
        {
            return Some(Self::Unreachable);
        }
        if matches!(code, Some(C::OperationTimedOut)) {
            return Some(Self::Timeout);
        }
        None
    }

    /// Whether retrying cannot help: credentials, certificates, protocols and configuration do not
    /// change by themselves, so [`probe`](super::probe) reports these at the first sign.
    pub(super) fn is_decisive(self) -> bool {
        !matches!(self, Self::Unreachable | Self::Timeout)
    }
}

/// A failed [`probe`](super::probe): what kind of failure, librdkafka's or the broker's own words, and where.
///
/// Its `Display` is one line that names the address, quotes the reason and says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct ConnectError {
    kind: ConnectErrorKind,
    bootstrap: String,
    reason: String,
    elapsed: Duration,
}

impl ConnectError {
    /// A failure of `kind` talking to `bootstrap`, with librdkafka's or the broker's `reason`.
    pub fn new(
        kind: ConnectErrorKind,
        bootstrap: impl Into<String>,
        reason: impl Into<String>,
        elapsed: Duration,
    ) -> Self {
        Self {
            kind,
            bootstrap: bootstrap.into(),
            reason: reason.into(),
            elapsed,
        }
    }

    /// The classified failure of any hr-kafka call (e.g. [`ensure_topics`](crate::ensure_topics)
    /// refused with `TopicAuthorizationFailed`), or `None` when `error` is not about connecting.
    pub fn from_kafka_error(bootstrap: &str, error: &KafkaError) -> Option<Self> {
        let (code, reason) = match error {
            KafkaError::Client(e) => (e.rdkafka_error_code(), e.to_string()),
            KafkaError::Topic { topic, code } => (Some(*code), format!("topic {topic}: {code}")),
            KafkaError::Delivery { first, .. } => (None, first.clone()),
            other => (None, other.to_string()),
        };
        let kind = match error {
            KafkaError::Client(RdError::ClientCreation(_) | RdError::ClientConfig(..)) => {
                Some(ConnectErrorKind::Config)
            }
            _ => ConnectErrorKind::classify(code, &reason),
        }?;
        Some(Self::new(kind, bootstrap, reason, Duration::ZERO))
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> ConnectErrorKind {
        self.kind
    }

    /// librdkafka's or the broker's own words.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The bootstrap servers that were tried.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// How long it took to know.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    fn message(&self) -> String {
        let at = &self.bootstrap;
        let reason = &self.reason;
        let hint = self.hint();
        match self.kind {
            ConnectErrorKind::Unreachable => {
                format!("cannot reach Kafka at {at}: {reason}; {hint}")
            }
            ConnectErrorKind::Authentication => {
                format!("Kafka at {at} refused the credentials: {reason}; {hint}")
            }
            ConnectErrorKind::Tls => format!("TLS with Kafka at {at} failed: {reason}; {hint}"),
            ConnectErrorKind::Protocol => {
                format!("Kafka at {at} closed the connection: {reason}; {hint}")
            }
            ConnectErrorKind::Authorization => {
                format!("Kafka at {at} refused access: {reason}; {hint}")
            }
            ConnectErrorKind::Config => {
                format!("the Kafka client configuration for {at} is invalid: {reason}")
            }
            ConnectErrorKind::Timeout => format!(
                "no answer from Kafka at {at} within {:.1} s{}; {hint}",
                self.elapsed.as_secs_f64(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            ),
        }
    }

    fn hint(&self) -> &'static str {
        let text = self.reason.to_ascii_lowercase();
        match self.kind {
            ConnectErrorKind::Unreachable if is_local(&self.bootstrap) => {
                "is the local broker running? Start it with `just up`"
            }
            ConnectErrorKind::Unreachable => {
                "check the address (-b/--bootstrap) and that the brokers are running"
            }
            // A listener that accepts the connection and then never answers is most often one
            // spoken to in the wrong protocol (plaintext to a TLS port).
            ConnectErrorKind::Timeout if is_local(&self.bootstrap) => {
                "check that security.protocol matches the listener, or start the local broker with `just up`"
            }
            ConnectErrorKind::Timeout => {
                "check that security.protocol matches the listener and that the brokers are running"
            }
            ConnectErrorKind::Authentication => {
                "check sasl.username, sasl.password and sasl.mechanism (-X)"
            }
            ConnectErrorKind::Tls if text.contains("expired") => {
                "a certificate has expired (the broker's, or the client's in ssl.certificate.location)"
            }
            ConnectErrorKind::Tls
                if text.contains("unable to get local issuer")
                    || text.contains("self-signed")
                    || text.contains("self signed")
                    || text.contains("unknown ca") =>
            {
                "the broker's certificate is not signed by a CA in ssl.ca.location (or the system store)"
            }
            ConnectErrorKind::Tls if text.contains("hostname") || text.contains("mismatch") => {
                "the broker's certificate does not name this host (ssl.endpoint.identification.algorithm)"
            }
            ConnectErrorKind::Tls
                if text.contains("certificate required") || text.contains("bad certificate") =>
            {
                "the broker refused the client certificate or its absence: set ssl.certificate.location and ssl.key.location to one its CA signed"
            }
            ConnectErrorKind::Tls => {
                "check ssl.ca.location and, for mTLS, ssl.certificate.location and ssl.key.location"
            }
            ConnectErrorKind::Protocol => {
                "check security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl) against the listener"
            }
            ConnectErrorKind::Authorization => "the principal needs ACLs for this operation",
            ConnectErrorKind::Config => "",
        }
    }
}

fn is_local(bootstrap: &str) -> bool {
    bootstrap.split(',').all(|server| {
        let server = server.trim();
        let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
        matches!(
            host.trim_matches(['[', ']']),
            "localhost" | "127.0.0.1" | "::1" | ""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectErrorKind as K;

    /// Lines librdkafka 2.12 reported through the error callback against the test brokers
    /// (`docker/kafka-tls.sh`) and a closed port.
    #[test]
    fn captured_reasons_are_classified() {
        let cases: &[(Option<RDKafkaErrorCode>, &str, Option<K>)] = &[
            (
                Some(RDKafkaErrorCode::Authentication),
                "sasl_ssl://localhost:9192/bootstrap: SASL authentication error: Authentication \
                 failed during authentication due to invalid credentials with SASL mechanism \
                 SCRAM-SHA-256 (after 302ms in state AUTH_REQ)",
                Some(K::Authentication),
            ),
            (
                Some(RDKafkaErrorCode::Authentication),
                "sasl_ssl://localhost:9192/bootstrap: SASL authentication error: Invalid username \
                 or password (after 12ms in state AUTH_REQ)",
                Some(K::Authentication),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                "ssl://localhost:9192/bootstrap: SSL handshake failed: error:0A000086:SSL \
                 routines::certificate verify failed: broker certificate could not be verified, \
                 verify that ssl.ca.location is correctly configured or root CA certificates are \
                 installed (install ca-certificates package) (after 6ms in state SSL_HANDSHAKE)",
                Some(K::Tls),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                "ssl://localhost:9196/bootstrap: SSL handshake failed: error:0A000086:SSL \
                 routines::certificate verify failed: certificate has expired (after 5ms in state \
                 SSL_HANDSHAKE)",
                Some(K::Tls),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "localhost:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection \
                 refused (after 0ms in state CONNECT)",
                Some(K::Unreachable),
            ),
            (
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
                Some(K::Unreachable),
            ),
            (
                Some(RDKafkaErrorCode::Resolve),
                "nosuchhost:9092/bootstrap: Failed to resolve 'nosuchhost:9092': Name or service \
                 not known (after 3ms in state CONNECT)",
                Some(K::Unreachable),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "localhost:9192/bootstrap: Disconnected while requesting ApiVersion: might be \
                 caused by incorrect security.protocol configuration (connecting to a SSL \
                 listener?) or broker version is < 0.10 (see api.version.request) (after 2ms in \
                 state APIVERSION_QUERY)",
                Some(K::Protocol),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                "ssl://localhost:9092/bootstrap: SSL handshake failed: error:0A00010B:SSL \
                 routines::wrong version number (connecting to a PLAINTEXT broker listener?) \
                 (after 1ms in state SSL_HANDSHAKE)",
                Some(K::Protocol),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "ssl://localhost:9194/bootstrap: Receive failed: error:0A000412:SSL \
                 routines::sslv3 alert bad certificate: SSL alert number 42 (after 1ms in state \
                 APIVERSION_QUERY)",
                Some(K::Tls),
            ),
            (
                Some(RDKafkaErrorCode::TopicAuthorizationFailed),
                "topic t: Broker: Topic authorization failed",
                Some(K::Authorization),
            ),
            (
                Some(RDKafkaErrorCode::MessageSizeTooLarge),
                "Broker: Message size too large",
                None,
            ),
        ];
        for (code, reason, want) in cases {
            assert_eq!(K::classify(*code, reason), *want, "{reason}");
            // The text alone is enough: the same line logged without its code classifies alike.
            assert_eq!(
                K::classify(None, reason),
                *want,
                "{reason} without its code"
            );
        }
    }

    #[test]
    fn messages_name_the_address_the_reason_and_what_to_check() {
        let e = ConnectError::new(
            K::Unreachable,
            "localhost:9092",
            "Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
            Duration::from_millis(1500),
        );
        assert_eq!(
            e.to_string(),
            "cannot reach Kafka at localhost:9092: Connect to ipv4#127.0.0.1:9092 failed: \
             Connection refused; is the local broker running? Start it with `just up`"
        );
        let remote = ConnectError::new(
            K::Unreachable,
            "kafka-1.ward:9093",
            "refused",
            Duration::ZERO,
        );
        assert!(!remote.to_string().contains("just up"), "{remote}");
        assert!(remote.to_string().contains("kafka-1.ward:9093"), "{remote}");

        let auth = ConnectError::new(
            K::Authentication,
            "broker:9093",
            "SASL authentication error: Invalid username or password",
            Duration::ZERO,
        );
        assert!(
            auth.to_string().contains("Invalid username or password"),
            "{auth}"
        );
        assert!(auth.to_string().contains("sasl.password"), "{auth}");

        let ca = ConnectError::new(
            K::Tls,
            "broker:9093",
            "SSL handshake failed: certificate verify failed: unable to get local issuer certificate",
            Duration::ZERO,
        );
        assert!(
            ca.to_string()
                .contains("not signed by a CA in ssl.ca.location"),
            "{ca}"
        );
        let expired = ConnectError::new(
            K::Tls,
            "broker:9093",
            "SSL handshake failed: certificate verify failed: certificate has expired",
            Duration::ZERO,
        );
        assert!(expired.to_string().contains("has expired"), "{expired}");

        let slow = ConnectError::new(K::Timeout, "[::1]:9092", "", Duration::from_secs(10));
        assert_eq!(
            slow.to_string(),
            "no answer from Kafka at [::1]:9092 within 10.0 s; check that security.protocol \
             matches the listener, or start the local broker with `just up`"
        );
    }

    #[test]
    fn local_means_every_bootstrap_server_is_this_machine() {
        assert!(is_local("localhost:9092"));
        assert!(is_local("127.0.0.1:9092,localhost:9094"));
        assert!(is_local("sasl_ssl://localhost:9192"));
        assert!(!is_local("localhost:9092,kafka-2:9092"));
        assert!(!is_local("kafka.example.org:9093"));
    }

    #[test]
    fn errors_of_other_calls_are_classified_too() {
        let refused = KafkaError::Topic {
            topic: "heart_rate_events".into(),
            code: RDKafkaErrorCode::TopicAuthorizationFailed,
        };
        let e = ConnectError::from_kafka_error("broker:9093", &refused).unwrap();
        assert_eq!(e.kind(), K::Authorization);
        assert!(e.to_string().contains("heart_rate_events"), "{e}");
        let unrelated = KafkaError::Topic {
            topic: "t".into(),
            code: RDKafkaErrorCode::InvalidReplicationFactor,
        };
        assert_eq!(ConnectError::from_kafka_error("b:1", &unrelated), None);
    }
}
