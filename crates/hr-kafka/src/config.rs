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

/// A `client.id` that tells this process apart in the broker's logs, quotas and
/// `kafka-consumer-groups --describe`: `<binary>-<host>-<pid>`, e.g. `hr-sim-ward3-4242`.
///
/// librdkafka's default is `rdkafka` for every client, so the members of a group could not be
/// told apart. The host name comes from the kernel (`/proc/sys/kernel/hostname`), then
/// `$HOSTNAME`, else `localhost`; characters Kafka's quota names dislike become `_`.
///
/// # Example
/// ```
/// let id = hr_kafka::client_id("hr-sim");
/// assert!(id.starts_with("hr-sim-"));
/// assert!(id.ends_with(&format!("-{}", std::process::id())));
/// ```
pub fn client_id(binary: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{binary}-{host}-{}", std::process::id())
}
