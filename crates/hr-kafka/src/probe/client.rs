//! The probe's own librdkafka client: its main queue, read for error and log events, and the
//! certificate verification callback that names OpenSSL's verdict.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use rdkafka::ClientConfig;
use rdkafka::bindings;
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaType};

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
pub(super) struct ProbeClient {
    queue: *mut bindings::rd_kafka_queue_t,
    pub(super) client: Client<DefaultClientContext>,
}

/// What one look at the queue found.
#[derive(Default)]
pub(super) struct Events {
    /// Error events and warning (or worse) log lines: code (none for a log line) and text.
    pub(super) errors: Vec<(Option<RDKafkaErrorCode>, String)>,
    /// Why the certificate verification callback refused the broker's certificate.
    pub(super) verify: Option<String>,
}

impl ProbeClient {
    pub(super) fn new(config: &ClientConfig) -> Result<Self, RdError> {
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
    pub(super) fn events(&self) -> Events {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
