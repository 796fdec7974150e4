//! Building librdkafka client configurations.

use rdkafka::ClientConfig;

/// A client configuration for `bootstrap` with every `(key, value)` of `overrides` applied last,
/// so any librdkafka property (TLS, SASL, batching, ...) passes through without code changes.
///
/// # Example
/// ```
/// let cfg = hr_kafka::client_config("localhost:9092", &[("linger.ms".into(), "5".into())]);
/// assert_eq!(cfg.get("linger.ms"), Some("5"));
/// ```
pub fn client_config(bootstrap: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in overrides {
        cfg.set(k, v);
    }
    cfg
}
