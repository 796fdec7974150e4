//! The Kafka flags every binary shares: `-b/--bootstrap` and `-X key=value`.

use hr_kafka::rdkafka::ClientConfig;
use hr_kafka::{client_config, client_id};

/// The Kafka connection flags of every hr-stream binary. Flatten it into a clap parser:
/// `#[command(flatten)] kafka: KafkaArgs`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        short = 'b',
        long = "bootstrap",
        visible_alias = "bootstrap-servers",
        env = "HR_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap: String,
    /// Any librdkafka property, e.g. -X security.protocol=sasl_ssl (repeatable; added to the
    /// config file's `properties` and winning over them).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub property: Vec<(String, String)>,
    /// The config file's `properties` table: librdkafka properties applied before `-X`.
    #[arg(
        id = "properties",
        long = "properties",
        hide = true,
        value_name = "KEY=VALUE",
        value_parser = parse_property
    )]
    pub file_properties: Vec<(String, String)>,
}

impl Default for KafkaArgs {
    fn default() -> Self {
        Self {
            bootstrap: "localhost:9092".to_owned(),
            property: Vec::new(),
            file_properties: Vec::new(),
        }
    }
}

/// Only a bootstrap address, no properties (tests and examples that have nothing else).
impl From<&str> for KafkaArgs {
    fn from(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            ..Self::default()
        }
    }
}

impl From<&String> for KafkaArgs {
    fn from(bootstrap: &String) -> Self {
        Self::from(bootstrap.as_str())
    }
}

impl KafkaArgs {
    /// The librdkafka properties for a client of `binary`: `client.id=<binary>-<host>-<pid>`
    /// first (see [`client_id`]), then the config file's `properties`, then `-X`, so a later
    /// entry wins (a `client.id` of the user's own included).
    pub fn properties(&self, binary: &str) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(1 + self.file_properties.len() + self.property.len());
        out.push(("client.id".to_owned(), client_id(binary)));
        out.extend(self.file_properties.iter().cloned());
        out.extend(self.property.iter().cloned());
        out
    }

    /// A librdkafka configuration for `binary`: `bootstrap.servers` and [`Self::properties`].
    pub fn client_config(&self, binary: &str) -> ClientConfig {
        client_config(&self.bootstrap, &self.properties(binary))
    }
}

/// Parses one `-X` value: `key=value`, the key trimmed, the value kept as written (it may be a
/// password); an empty key or a missing `=` is refused.
///
/// # Errors
/// A message saying what was expected and what was given.
///
/// # Example
/// ```
/// use hr_cli::parse_property;
/// assert_eq!(parse_property("linger.ms=5"), Ok(("linger.ms".into(), "5".into())));
/// assert_eq!(parse_property("sasl.password=a=b"), Ok(("sasl.password".into(), "a=b".into())));
/// assert!(parse_property("linger.ms").unwrap_err().contains("KEY=VALUE"));
/// ```
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!(
            "expected KEY=VALUE, e.g. security.protocol=ssl, got `{s}`"
        )),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_is_key_equals_value() {
        assert!(parse_property("=5").is_err());
        assert!(parse_property("linger.ms").is_err());
        assert_eq!(
            parse_property(" acks =all"),
            Ok(("acks".into(), "all".into()))
        );
    }

    #[test]
    fn properties_name_the_binary_first_and_let_x_win() {
        let kafka = KafkaArgs {
            property: vec![("linger.ms".into(), "1".into())],
            file_properties: vec![("linger.ms".into(), "9".into())],
            ..KafkaArgs::from("b:9092")
        };
        let props = kafka.properties("tool");
        assert_eq!(props[0].0, "client.id");
        assert!(props[0].1.starts_with("tool-"));
        assert_eq!(props.last().unwrap(), &("linger.ms".into(), "1".into()));
        let cfg = kafka.client_config("tool");
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(cfg.get("linger.ms"), Some("1"));
    }
}
