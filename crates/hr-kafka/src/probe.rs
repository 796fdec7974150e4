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

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::bindings;
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaType};

use crate::KafkaError;

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

/// Why [`probe`] (or another call to Kafka) failed, in the terms a user can act on.
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
    /// change by themselves, so [`probe`] reports these at the first sign.
    fn is_decisive(self) -> bool {
        !matches!(self, Self::Unreachable | Self::Timeout)
    }
}

/// A failed [`probe`]: what kind of failure, librdkafka's or the broker's own words, and where.
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

/// A log line without librdkafka's `[thrd:...]: ` prefix, so it reads like the error events.
fn strip_thread(message: &str) -> &str {
    message
        .strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
        .map_or(message, |(_, line)| line)
}

/// The probe's client, and the main queue it polls itself for librdkafka's error and log events
/// (instead of a context's callbacks: the probe also installs a certificate verification
/// callback, which needs the native configuration before the client exists).
struct ProbeClient {
    queue: *mut bindings::rd_kafka_queue_t,
    client: Client<DefaultClientContext>,
}

/// What one look at the queue found.
#[derive(Default)]
struct Events {
    /// Error events and warning (or worse) log lines: code (none for a log line) and text.
    errors: Vec<(Option<RDKafkaErrorCode>, String)>,
    /// Why the certificate verification callback refused the broker's certificate.
    verify: Option<String>,
}

impl ProbeClient {
    fn new(config: &ClientConfig) -> Result<Self, RdError> {
        let native = config.create_native_config()?;
        let verifies = config
            .get("enable.ssl.certificate.verification")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        // SAFETY: `native` owns a valid configuration until `Client::new` takes it over.
        unsafe {
            bindings::rd_kafka_conf_set_events(native.ptr(), bindings::RD_KAFKA_EVENT_ERROR);
            if verifies {
                // A build without TLS refuses the callback; the probe then works without it.
                bindings::rd_kafka_conf_set_ssl_cert_verify_cb(native.ptr(), Some(verify_cb));
            }
        }
        let client = Client::new(
            config,
            native,
            RDKafkaType::RD_KAFKA_PRODUCER,
            DefaultClientContext,
        )?;
        // SAFETY: the client is valid; the queue reference is released in `drop`.
        let queue = unsafe { bindings::rd_kafka_queue_get_main(client.native_ptr()) };
        Ok(Self { queue, client })
    }

    /// Takes every event queued so far, without waiting.
    fn events(&self) -> Events {
        let mut out = Events::default();
        loop {
            // SAFETY: the queue is valid while `self` lives; each event is destroyed below.
            let ev = unsafe { bindings::rd_kafka_queue_poll(self.queue, 0) };
            if ev.is_null() {
                return out;
            }
            // SAFETY: `ev` is a valid event until `rd_kafka_event_destroy`; the strings it
            // hands out are copied before that.
            unsafe {
                match bindings::rd_kafka_event_type(ev) {
                    bindings::RD_KAFKA_EVENT_ERROR => {
                        let code = RDKafkaErrorCode::from(bindings::rd_kafka_event_error(ev));
                        let text = c_text(bindings::rd_kafka_event_error_string(ev));
                        out.errors.push((Some(code), text));
                    }
                    bindings::RD_KAFKA_EVENT_LOG => {
                        let (mut fac, mut text, mut level) = (ptr::null(), ptr::null(), 0);
                        if bindings::rd_kafka_event_log(ev, &mut fac, &mut text, &mut level) == 0 {
                            let (fac, text) = (c_text(fac), c_text(text));
                            tracing::debug!(
                                level,
                                fac,
                                text,
                                "librdkafka log during the connection probe."
                            );
                            if fac == "SSLCERTVRFY" {
                                out.verify = Some(strip_thread(&text).to_owned());
                            } else if level <= WARNING {
                                // Some causes are only logged, never reported as errors.
                                out.errors.push((None, strip_thread(&text).to_owned()));
                            }
                        }
                    }
                    _ => {}
                }
                bindings::rd_kafka_event_destroy(ev);
            }
        }
    }
}

impl Drop for ProbeClient {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `new`, released once, before the client is destroyed.
        unsafe { bindings::rd_kafka_queue_destroy(self.queue) };
    }
}

/// syslog's warning level, as librdkafka's log events carry it.
const WARNING: c_int = 4;

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    unsafe { CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_owned()
}

/// librdkafka's certificate verification callback: accepts exactly what OpenSSL accepted, and
/// names OpenSSL's verdict when it did not (librdkafka's handshake error only says "certificate
/// verify failed", whatever the cause); librdkafka logs that text, which the probe adds to its
/// reason.
unsafe extern "C" fn verify_cb(
    _rk: *mut bindings::rd_kafka_t,
    _broker_name: *const c_char,
    _broker_id: i32,
    x509_error: *mut c_int,
    depth: c_int,
    _buf: *const c_char,
    _size: usize,
    errstr: *mut c_char,
    errstr_size: usize,
    _opaque: *mut c_void,
) -> c_int {
    // SAFETY: librdkafka passes a valid error pointer and an `errstr_size`-byte buffer.
    let code = unsafe { *x509_error };
    if code == 0 {
        return 1;
    }
    let text = format!("{} (X509 error {code} at depth {depth})", x509_reason(code));
    let n = text.len().min(errstr_size.saturating_sub(1));
    if errstr_size > 0 {
        // SAFETY: `n + 1 <= errstr_size` bytes are written.
        unsafe {
            ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), errstr, n);
            *errstr.add(n) = 0;
        }
    }
    0
}

/// OpenSSL's text for the verification errors a Kafka client meets (`X509_verify_cert_error_string`).
fn x509_reason(code: c_int) -> &'static str {
    match code {
        2 => "unable to get issuer certificate",
        9 => "certificate is not yet valid",
        10 => "certificate has expired",
        18 => "self-signed certificate",
        19 => "self-signed certificate in certificate chain",
        20 => "unable to get local issuer certificate",
        21 => "unable to verify the first certificate",
        23 => "certificate revoked",
        24 => "invalid CA certificate",
        26 => "unsupported certificate purpose",
        62 => "hostname mismatch",
        64 => "IP address mismatch",
        _ => "certificate verification failed",
    }
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
    fn log_lines_lose_the_thread_prefix() {
        assert_eq!(
            strip_thread(
                "[thrd:ssl://localhost:9192/bootstrap]: ssl://localhost:9192/bootstrap: x"
            ),
            "ssl://localhost:9192/bootstrap: x"
        );
        assert_eq!(strip_thread("1/1 brokers are down"), "1/1 brokers are down");
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
