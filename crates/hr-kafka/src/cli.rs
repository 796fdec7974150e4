//! What every hr-stream command line shares: the Kafka flags, the `--config FILE` loader and the
//! listing of the effective configuration (a broker check that fails in one readable line is
//! [`crate::probe`]).
//!
//! # The Kafka flags
//! [`KafkaArgs`] is flattened into each binary's clap arguments, so `-b/--bootstrap` (alias
//! `--bootstrap-servers`, variable `HR_BOOTSTRAP_SERVERS`) and `-X key=value` mean the same in
//! every binary, and [`KafkaArgs::properties`] adds a `client.id` naming the binary, host and
//! process, so group members can be told apart in Kafka's tools.
//!
//! # The config file
//! [`parse`] adds a global `--config FILE` (variable `HR_CONFIG`) to any clap parser and fills
//! every flag the command line and the environment left unset from the file, so the precedence
//! is flag > `HR_*` variable > file > built-in default. One TOML file serves every binary:
//!
//! ```toml
//! bootstrap = "broker:9093"                 # shared: every binary with Kafka flags
//! [properties]                              # shared librdkafka properties (`-X` adds and wins)
//! "security.protocol" = "sasl_ssl"
//!
//! [pipeline]                                # hr-pipeline's flags, by their long names
//! group = "ward-3"
//! window = "sliding"
//! [batch.recompute]                         # one subcommand's flags
//! window = "10s"
//! ```
//!
//! Keys are the long flag names, in kebab-case or snake_case. The file's top level takes only the
//! shared keys ([`SHARED_KEYS`]) and the binaries' tables ([`SECTIONS`]); inside a table, a key
//! that names no flag of that binary, or a value of the wrong type, is an error naming the key
//! and the file. Lists (repeatable flags) are TOML arrays, switches are booleans.
//!
//! # Example
//! ```
//! use clap::Parser;
//! use hr_kafka::cli::{KafkaArgs, Source};
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     kafka: KafkaArgs,
//!     /// Consumer group.
//!     #[arg(long, default_value = "hr-pipeline")]
//!     group: String,
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("hr-stream.toml");
//! std::fs::write(&file, "bootstrap = \"b:9092\"\n[pipeline]\ngroup = \"ward-3\"\n").unwrap();
//! let parsed = hr_kafka::cli::try_parse_from::<Args, _, _>(
//!     "pipeline",
//!     ["hr-pipeline", "--config", file.to_str().unwrap(), "-b", "flag:9092"],
//! )?;
//! assert_eq!(parsed.args.kafka.bootstrap, "flag:9092");
//! assert_eq!(parsed.args.group, "ward-3");
//! assert_eq!(parsed.effective.get("group").unwrap().source, Source::File);
//! # Ok::<(), hr_kafka::cli::ConfigError>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use rdkafka::ClientConfig;

use crate::{client_config, client_id};

/// The clap id of the `--config` argument that [`parse`] adds.
pub const CONFIG_ID: &str = "config";

/// Top-level keys of a config file that every binary with [`KafkaArgs`] reads; a binary without
/// them (hr-batch) ignores them.
pub const SHARED_KEYS: &[&str] = &["bootstrap", "properties"];

/// The tables of a config file, one per binary. A top-level table not listed here is an error
/// (a misspelt `[pipline]` would otherwise be ignored).
pub const SECTIONS: &[&str] = &[
    "pipeline",
    "sim",
    "batch",
    "dashboard",
    "hello",
    "alert_view",
];

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
/// use hr_kafka::cli::parse_property;
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

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// An environment variable (its name).
    Env(String),
    /// The `--config` file.
    File,
    /// The built-in default (or unset).
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Env(name) => write!(f, "env {name}"),
            Self::File => f.write_str("file"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// One setting of the effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config-file key (the long flag in snake_case; `-X` for librdkafka properties).
    pub key: String,
    /// The value as given (list items joined by `, `; secrets shown as `***`); empty when unset.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The configuration a command runs with and where each value came from; its `Display` is the
/// table `hr-pipeline config` prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effective {
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// The subcommands chosen, outermost first (empty for the top level).
    pub command: Vec<String>,
    /// Every setting of the command that runs, in the order of its flags.
    pub settings: Vec<Setting>,
}

impl Effective {
    /// The setting with this key (snake_case or kebab-case).
    pub fn get(&self, key: &str) -> Option<&Setting> {
        let norm = normalise(key);
        self.settings.iter().find(|s| s.key == key || s.key == norm)
    }
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => writeln!(f, "# config file: {}", p.display())?,
            None => writeln!(f, "# config file: none (--config FILE or HR_CONFIG)")?,
        }
        let width = self.settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
        let vwidth = self
            .settings
            .iter()
            .map(|s| s.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        for s in &self.settings {
            writeln!(f, "{:<width$}  {:<vwidth$}  # {}", s.key, s.value, s.source)?;
        }
        Ok(())
    }
}

/// The arguments a [`parse`] produced, and the effective configuration behind them.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The parsed arguments.
    pub args: T,
    /// Every setting of the command that runs and where it came from.
    pub effective: Effective,
}

/// A config file that cannot be used, or a command line clap refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A key names no flag (or no table) the binary knows.
    #[error("config file {}: unknown key `{key}`{hint}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, with its table (`pipeline.gruop`).
        key: String,
        /// What the table does accept, for the message.
        hint: String,
    },
    /// A value has the wrong type or does not parse as the flag's value.
    #[error("config file {}: key `{key}`: {message}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key, with its table.
        key: String,
        /// What was expected.
        message: String,
    },
    /// clap refused the command line (or was asked for `--help` / `--version`).
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// Parses the process's arguments into `T` with a `--config` file for the table `section` (one
/// of [`SECTIONS`]); prints clap's message and exits 2 on bad usage or a bad file (0 for
/// `--help`).
pub fn parse<T: CommandFactory + FromArgMatches>(section: &str) -> Parsed<T> {
    match try_parse_from(section, std::env::args_os()) {
        Ok(p) => p,
        Err(ConfigError::Clap(e)) => e.exit(),
        Err(e) => {
            let bin = std::env::args()
                .next()
                .map(|a| {
                    Path::new(&a)
                        .file_name()
                        .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            eprintln!("{bin}: error: {e}");
            std::process::exit(2)
        }
    }
}

/// [`parse`] over explicit arguments (the first is the program name), returning every failure.
///
/// # Errors
/// [`ConfigError`]: a file that cannot be read or parsed, an unknown key, a wrong-typed value,
/// or clap's own error for the command line.
pub fn try_parse_from<T, I, A>(section: &str, argv: I) -> Result<Parsed<T>, ConfigError>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let base = T::command().arg(
        Arg::new(CONFIG_ID)
            .long("config")
            .env("HR_CONFIG")
            .value_name("FILE")
            .global(true)
            .value_parser(clap::value_parser!(PathBuf))
            .help(format!(
                "TOML file with defaults for these flags (its [{section}] table and the shared \
                 bootstrap/properties); flags and HR_* variables win over it"
            )),
    );
    // A first, forgiving pass only to find the file: required flags may come from it.
    let file = base
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .ok()
        .and_then(|m| config_path(&m));
    let mut cmd = base;
    let mut from_file = Vec::new();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.clone(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let layers = Layers::split(table, section, path)?;
        layers.check_keys(&cmd, section, path)?;
        cmd = apply(cmd, &layers, &[], path, &mut from_file)?;
    }
    // The file is read: `--config` has done its job, and left on the command line before a
    // subcommand it would conflict with it (`args_conflicts_with_subcommands`).
    let argv = without_config_flag(argv);
    let mut matches = cmd.clone().try_get_matches_from(&argv)?;
    let effective = effective(&cmd, &matches, file, &from_file);
    let args = T::from_arg_matches_mut(&mut matches)?;
    Ok(Parsed { args, effective })
}

/// `argv` less its `--config FILE` / `--config=FILE` (up to a `--`).
fn without_config_flag(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a);
            out.extend(it);
            break;
        }
        if a == "--config" {
            it.next();
        } else if !a.to_string_lossy().starts_with("--config=") {
            out.push(a);
        }
    }
    out
}

fn config_path(m: &ArgMatches) -> Option<PathBuf> {
    let mut cur = m;
    let mut found = cur.get_one::<PathBuf>(CONFIG_ID).cloned();
    while let Some((_, sub)) = cur.subcommand() {
        cur = sub;
        if let Some(p) = cur.get_one::<PathBuf>(CONFIG_ID) {
            found = Some(p.clone());
        }
    }
    found
}

/// `kebab-case` and `snake_case` are one key.
fn normalise(key: &str) -> String {
    key.replace('-', "_")
}

/// The config-file key of an argument: its long flag in snake_case; none without a long flag.
fn file_key(arg: &Arg) -> Option<String> {
    arg.get_long().map(normalise)
}

fn accepts(arg: &Arg, key: &str) -> bool {
    if arg.get_id() == CONFIG_ID || matches!(arg.get_id().as_str(), "help" | "version") {
        return false;
    }
    file_key(arg).is_some_and(|k| k == key)
        || arg
            .get_all_aliases()
            .unwrap_or_default()
            .iter()
            .any(|a| normalise(a) == key)
}

/// The file's values for one binary: the shared top level and its table (whose tables named
/// after a subcommand hold that subcommand's values).
struct Layers {
    shared: toml::Table,
    section: toml::Table,
}

impl Layers {
    fn split(table: toml::Table, section: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut shared = toml::Table::new();
        let mut mine = toml::Table::new();
        for (key, value) in table {
            let k = normalise(&key);
            if SHARED_KEYS.contains(&k.as_str()) {
                shared.insert(k, value);
            } else if k == section {
                let toml::Value::Table(t) = value else {
                    return Err(ConfigError::WrongType {
                        path: path.to_owned(),
                        key,
                        message: format!("expected a table ([{section}])"),
                    });
                };
                mine = t;
            } else if !SECTIONS.contains(&k.as_str()) {
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    key,
                    hint: format!(
                        " (the top level takes {} and the tables [{}])",
                        SHARED_KEYS.join(", "),
                        SECTIONS.join("], [")
                    ),
                });
            }
        }
        Ok(Self {
            shared,
            section: mine,
        })
    }

    /// Every key must name a flag of the binary (or of some subcommand for the section's own
    /// keys); a table named after a subcommand holds that subcommand's keys.
    fn check_keys(
        &self,
        cmd: &clap::Command,
        section: &str,
        path: &Path,
    ) -> Result<(), ConfigError> {
        fn known_anywhere(cmd: &clap::Command, key: &str) -> bool {
            cmd.get_arguments().any(|a| accepts(a, key))
                || cmd.get_subcommands().any(|s| known_anywhere(s, key))
        }
        fn keys_of(cmd: &clap::Command) -> Vec<String> {
            let mut keys: Vec<String> = cmd
                .get_arguments()
                .filter(|a| !a.is_hide_set() || a.get_id() == "properties")
                .filter(|a| accepts(a, &file_key(a).unwrap_or_default()))
                .filter_map(file_key)
                .collect();
            for s in cmd.get_subcommands() {
                keys.extend(keys_of(s));
            }
            keys.sort();
            keys.dedup();
            keys
        }
        let unknown = |key: String, within: &clap::Command| ConfigError::UnknownKey {
            path: path.to_owned(),
            key,
            hint: format!(" (known: {})", keys_of(within).join(", ")),
        };
        for (key, value) in &self.section {
            let k = normalise(key);
            if let (Some(sub), toml::Value::Table(t)) = (cmd.find_subcommand(&k), value) {
                for sub_key in t.keys() {
                    if !known_anywhere(sub, &normalise(sub_key)) {
                        return Err(unknown(format!("{section}.{key}.{sub_key}"), sub));
                    }
                }
            } else if !known_anywhere(cmd, &k) {
                return Err(unknown(format!("{section}.{key}"), cmd));
            }
        }
        Ok(())
    }

    /// The values for the command at `path` (subcommand names), most general first.
    fn for_command(&self, sub_path: &[String]) -> toml::Table {
        let mut out = self.shared.clone();
        merge(&mut out, &self.section);
        let mut table = self.section.clone();
        for name in sub_path {
            let next = table
                .iter()
                .find(|(k, _)| normalise(k) == *name)
                .and_then(|(_, v)| v.as_table().cloned());
            match next {
                Some(t) => {
                    merge(&mut out, &t);
                    table = t;
                }
                None => break,
            }
        }
        out
    }
}

/// Later keys win; two tables under one key merge (a section's `properties` add to the shared).
fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (k, v) in from {
        let k = normalise(k);
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
                for (bk, bv) in b {
                    a.insert(bk.clone(), bv.clone());
                }
            }
            _ => {
                into.insert(k, v.clone());
            }
        }
    }
}

/// Makes the file's values the defaults of `cmd` and, recursively, of its subcommands, so clap
/// itself gives flags and variables precedence over them. Records `(command path, arg id)` of
/// each value taken from the file.
fn apply(
    mut cmd: clap::Command,
    layers: &Layers,
    sub_path: &[String],
    path: &Path,
    from_file: &mut Vec<(Vec<String>, String)>,
) -> Result<clap::Command, ConfigError> {
    let values = layers.for_command(sub_path);
    let args: Vec<Arg> = cmd.get_arguments().cloned().collect();
    for arg in args {
        let Some(key) = file_key(&arg).filter(|k| accepts(&arg, k)) else {
            continue;
        };
        let Some(value) = values
            .iter()
            .find(|(k, _)| accepts(&arg, k))
            .map(|(_, v)| v)
        else {
            continue;
        };
        let full_key = if sub_path.is_empty() {
            key.clone()
        } else {
            format!("{}.{key}", sub_path.join("."))
        };
        let raw = raw_values(&arg, value).map_err(|message| ConfigError::WrongType {
            path: path.to_owned(),
            key: full_key.clone(),
            message,
        })?;
        check_value(&arg, &raw).map_err(|message| ConfigError::WrongType {
            path: path.to_owned(),
            key: full_key.clone(),
            message,
        })?;
        cmd = cmd.mut_arg(arg.get_id().clone(), |a| {
            // A required flag given by the file is no longer required on the command line.
            a.required(false).default_values(raw)
        });
        from_file.push((sub_path.to_vec(), arg.get_id().to_string()));
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subs {
        let mut p = sub_path.to_vec();
        p.push(name.clone());
        let sub = cmd
            .find_subcommand(&name)
            .cloned()
            .expect("listed just above");
        let sub = apply(sub, layers, &p, path, from_file)?;
        cmd = cmd.mut_subcommand(&name, |_| sub);
    }
    Ok(cmd)
}

fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// The TOML value as clap's raw strings for `arg`, or what type was expected.
fn raw_values(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(x) => Ok(x.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Datetime(d) => Ok(d.to_string()),
            toml::Value::Array(_) | toml::Value::Table(_) => {
                Err(format!("expected a single value, got {}", v.type_str()))
            }
        }
    };
    if is_switch {
        return match value {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            other => Err(format!("expected true or false, got {}", other.type_str())),
        };
    }
    match value {
        toml::Value::Array(items) if takes_many(arg) => items.iter().map(scalar).collect(),
        toml::Value::Table(t) if takes_many(arg) => Ok(t
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok(format!("{k}={s}")),
                other => scalar(other).map(|s| format!("{k}={s}")),
            })
            .collect::<Result<_, _>>()?),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err(format!("expected a single value, got {}", value.type_str()))
        }
        v => {
            let s = scalar(v)?;
            if takes_many(arg) {
                Err(format!("expected an array, got {}", v.type_str()))
            } else {
                Ok(vec![s])
            }
        }
    }
}

/// Runs the flag's own value parser over the file's values (on a one-flag command, so the
/// message is clap's: "invalid value '9x' ... invalid digit").
fn check_value(arg: &Arg, raw: &[String]) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return Ok(());
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let probe = clap::Command::new("config-file")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(arg.clone().env(None::<&str>).required(false).global(false));
    let argv: Vec<String> = raw.iter().map(|v| format!("--{long}={v}")).collect();
    match probe.try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            // clap's message up to its blank line: the error and its possible values.
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            Err(message
                .join(" ")
                .trim_start_matches("error: ")
                .replace(&format!("'--{long} <"), "'<")
                .replace(&format!("'--{long}'"), "'value'"))
        }
    }
}

/// The settings of the command `matches` chose, from the final command and its matches.
fn effective(
    cmd: &clap::Command,
    matches: &ArgMatches,
    file: Option<PathBuf>,
    from_file: &[(Vec<String>, String)],
) -> Effective {
    let mut path = Vec::new();
    let (mut c, mut m) = (cmd, matches);
    while let Some((name, sub)) = m.subcommand() {
        let Some(next) = c.find_subcommand(name) else {
            break;
        };
        path.push(name.to_owned());
        c = next;
        m = sub;
    }
    let mut settings = Vec::new();
    for arg in c.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") || id == CONFIG_ID {
            continue;
        }
        let key = match (file_key(arg), arg.get_short()) {
            (Some(k), _) => k,
            (None, Some(s)) => format!("-{s}"),
            (None, None) => id.to_owned(),
        };
        let values: Vec<String> = m
            .get_raw(id)
            .map(|vals| vals.map(|v| redact(&v.to_string_lossy())).collect())
            .unwrap_or_default();
        if arg.is_hide_set() && values.is_empty() {
            continue;
        }
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            Some(ValueSource::DefaultValue)
                if from_file.iter().any(|(p, a)| *p == path && a == id) =>
            {
                Source::File
            }
            _ => Source::Default,
        };
        settings.push(Setting {
            key,
            value: values.join(", "),
            source,
        });
    }
    Effective {
        file,
        command: path,
        settings,
    }
}

/// `key=value` with a secret-looking key keeps the key only.
fn redact(raw: &str) -> String {
    match raw.split_once('=') {
        Some((k, _))
            if ["password", "secret", "token"]
                .iter()
                .any(|w| k.to_ascii_lowercase().contains(w)) =>
        {
            format!("{k}=***")
        }
        _ => raw.to_owned(),
    }
}

/// Whether to write colour to `stream`: only a terminal, and never when `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>).
pub fn color_on(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A `tracing` filter that lets one event per cause through each second, so a client retrying a
/// broker that is down (librdkafka logs each reconnect) cannot flood the log; the cause is the
/// event's target and level plus its message with digits and any parenthesised detail left out
/// (`Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)`).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let layer = tracing_subscriber::fmt::layer().with_filter(hr_kafka::cli::OncePerSecond::default());
/// let _guard = tracing_subscriber::registry().with(layer).set_default();
/// ```
#[derive(Debug, Default)]
pub struct OncePerSecond {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl OncePerSecond {
    /// Whether an event of this `cause` may pass now (and, if so, remembers that it did).
    fn admit(&self, cause: String) -> bool {
        let now = std::time::Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.get(&cause) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(1) => false,
            _ => {
                if last.len() > 1024 {
                    last.clear();
                }
                last.insert(cause, now);
                true
            }
        }
    }
}

/// The cause of a message: digits and `( ... )` details dropped.
fn cause_of(message: &str) -> String {
    let head = message.split(" (").next().unwrap_or(message);
    head.chars().filter(|c| !c.is_ascii_digit()).collect()
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for OncePerSecond {
    fn enabled(
        &self,
        _meta: &tracing::Metadata<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let meta = event.metadata();
        self.admit(format!(
            "{} {} {}",
            meta.level(),
            meta.target(),
            cause_of(&m.0)
        ))
    }
}

/// The logging every hr-stream binary sets up: `tracing` events on standard error, filtered by
/// `RUST_LOG` (default `info`), coloured only on a terminal without `NO_COLOR`, and a line
/// repeated for the same cause at most once a second ([`OncePerSecond`]). The level filter is
/// the outer one, so an event it rejects is never formatted or rate-limited (the other way round
/// cost about 30 % of the streaming job's CPU).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color_on(&std::io::stderr()))
        .with_filter(OncePerSecond::default())
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::{Parser, Subcommand, ValueEnum};

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    enum Scope {
        Key,
        Global,
    }

    #[derive(Debug, Parser)]
    #[command(name = "tool", args_conflicts_with_subcommands = true)]
    struct Tool {
        #[command(subcommand)]
        command: Option<Cmd>,
        #[command(flatten)]
        run: RunArgs,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        Run(RunArgs),
        Topics {
            #[command(flatten)]
            kafka: KafkaArgs,
            #[arg(long, default_value_t = 3)]
            partitions: i32,
            #[arg(long)]
            name: String,
        },
    }

    #[derive(Debug, clap::Args)]
    struct RunArgs {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[arg(long, default_value = "hr-pipeline")]
        group: String,
        #[arg(long, default_value_t = 10)]
        patients: u32,
        #[arg(long, value_enum, default_value = "key")]
        scope: Scope,
        #[arg(long)]
        bounded: bool,
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        #[arg(long)]
        alerts_dir: Option<PathBuf>,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn parse_with(text: &str, args: &[&str]) -> Result<Parsed<Tool>, ConfigError> {
        let f = file(text);
        let mut argv = vec!["tool", "--config", f.path().to_str().unwrap()];
        argv.extend_from_slice(args);
        try_parse_from::<Tool, _, _>("pipeline", argv)
    }

    fn run_args(p: &Parsed<Tool>) -> &RunArgs {
        match &p.args.command {
            Some(Cmd::Run(r)) => r,
            None => &p.args.run,
            Some(other) => panic!("not run: {other:?}"),
        }
    }

    const FILE: &str = r#"
bootstrap = "shared:9092"
[properties]
"security.protocol" = "sasl_ssl"
"sasl.password" = "hunter2"

[pipeline]
group = "ward-3"
patients = 7
scope = "global"
bounded = true
kinds = ["a", "b"]
alerts-dir = "/tmp/alerts"
[pipeline.properties]
"linger.ms" = "9"
[pipeline.topics]
name = "from-file"

[sim]
patients = 999
"#;

    #[test]
    fn the_file_fills_what_flags_leave_unset() {
        let p = parse_with(FILE, &[]).unwrap();
        let r = run_args(&p);
        assert_eq!(r.kafka.bootstrap, "shared:9092");
        assert_eq!(r.group, "ward-3");
        assert_eq!(r.patients, 7, "the [sim] table is another binary's");
        assert_eq!(r.scope, Scope::Global);
        assert!(r.bounded);
        assert_eq!(r.kinds, ["a", "b"]);
        assert_eq!(r.alerts_dir.as_deref(), Some(Path::new("/tmp/alerts")));
        // The shared and the section's properties merge.
        assert_eq!(
            r.kafka.file_properties,
            [
                ("linger.ms".into(), "9".into()),
                ("sasl.password".into(), "hunter2".into()),
                ("security.protocol".into(), "sasl_ssl".into()),
            ]
        );
        assert_eq!(p.effective.get("group").unwrap().source, Source::File);
        assert_eq!(p.effective.get("alerts-dir").unwrap().source, Source::File);
    }

    #[test]
    fn flags_win_over_the_file_and_x_adds_to_its_properties() {
        let p = parse_with(
            FILE,
            &[
                "run",
                "-b",
                "flag:1",
                "--group",
                "g2",
                "--patients",
                "3",
                "-X",
                "linger.ms=1",
            ],
        )
        .unwrap();
        let r = run_args(&p);
        assert_eq!(r.kafka.bootstrap, "flag:1");
        assert_eq!(r.group, "g2");
        assert_eq!(r.patients, 3);
        assert_eq!(r.scope, Scope::Global, "still from the file");
        let props = r.kafka.properties("tool");
        assert_eq!(props[0].0, "client.id");
        assert!(props[0].1.starts_with("tool-"));
        // -X comes last, so librdkafka applies it over the file's linger.ms=9.
        assert_eq!(props.last().unwrap(), &("linger.ms".into(), "1".into()));
        assert!(props.contains(&("security.protocol".into(), "sasl_ssl".into())));
        assert_eq!(p.effective.command, ["run"]);
        assert_eq!(p.effective.get("bootstrap").unwrap().source, Source::Flag);
        assert_eq!(p.effective.get("scope").unwrap().source, Source::File);
        assert_eq!(p.effective.get("-X").unwrap().value, "linger.ms=1");
    }

    #[derive(Debug, Parser)]
    #[command(name = "envtool")]
    struct EnvTool {
        #[arg(long, default_value = "built-in", env = "HR_TEST_CLI_ENV_GROUP")]
        group: String,
    }

    #[test]
    fn environment_wins_over_the_file_and_loses_to_flags() {
        let f = file("[pipeline]\ngroup = \"from-file\"\n");
        let path = f.path().to_str().unwrap();
        let parse = |extra: &[&str]| {
            let mut argv = vec!["envtool", "--config", path];
            argv.extend_from_slice(extra);
            try_parse_from::<EnvTool, _, _>("pipeline", argv).unwrap()
        };
        assert_eq!(parse(&[]).args.group, "from-file");
        // SAFETY: the variable is this test's own; no other test reads it.
        unsafe { std::env::set_var("HR_TEST_CLI_ENV_GROUP", "from-env") };
        let p = parse(&[]);
        assert_eq!(p.args.group, "from-env");
        assert_eq!(
            p.effective.get("group").unwrap().source,
            Source::Env("HR_TEST_CLI_ENV_GROUP".into())
        );
        let p = parse(&["--group", "from-flag"]);
        assert_eq!(p.args.group, "from-flag");
        assert_eq!(p.effective.get("group").unwrap().source, Source::Flag);
        unsafe { std::env::remove_var("HR_TEST_CLI_ENV_GROUP") };
    }

    #[test]
    fn defaults_without_a_file_and_sources_say_so() {
        let p = try_parse_from::<Tool, _, _>("pipeline", ["tool"]).unwrap();
        assert_eq!(run_args(&p).patients, 10);
        assert_eq!(p.effective.file, None);
        assert_eq!(p.effective.get("patients").unwrap().source, Source::Default);
        assert_eq!(p.effective.get("alerts_dir").unwrap().value, "");
        let text = p.effective.to_string();
        assert!(text.contains("# config file: none"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("patients") && l.ends_with("# default"))
        );
    }

    #[test]
    fn a_subcommand_table_supplies_a_required_flag() {
        let p = parse_with(FILE, &["topics"]).unwrap();
        match p.args.command {
            Some(Cmd::Topics {
                name,
                partitions,
                kafka,
            }) => {
                assert_eq!(name, "from-file");
                assert_eq!(partitions, 3);
                assert_eq!(kafka.bootstrap, "shared:9092");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.effective.command, ["topics"]);
        assert_eq!(p.effective.get("name").unwrap().source, Source::File);
        // Without the file the flag is required again.
        let err = try_parse_from::<Tool, _, _>("pipeline", ["tool", "topics"]).unwrap_err();
        assert!(matches!(err, ConfigError::Clap(_)), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        for (text, key) in [
            ("[pipeline]\ngruop = \"x\"\n", "pipeline.gruop"),
            (
                "[pipeline.topics]\ngroup = \"x\"\n",
                "pipeline.topics.group",
            ),
            ("[pipline]\ngroup = \"x\"\n", "pipline"),
            ("window = \"60s\"\n", "window"),
            ("[pipeline]\nconfig = \"other.toml\"\n", "pipeline.config"),
            ("[pipeline]\nX = \"a=b\"\n", "pipeline.X"),
        ] {
            let f = file(text);
            let err = try_parse_from::<Tool, _, _>(
                "pipeline",
                ["tool", "--config", f.path().to_str().unwrap()],
            )
            .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::UnknownKey { .. }), "{msg}");
            assert!(msg.contains(&format!("`{key}`")), "{msg}");
            assert!(msg.contains(f.path().to_str().unwrap()), "{msg}");
        }
    }

    #[test]
    fn the_unknown_key_message_lists_the_known_ones() {
        let msg = parse_with("[pipeline]\ngruop = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("known: alerts_dir, bootstrap, bounded, group"),
            "{msg}"
        );
        let known = &msg[msg.find("(known:").unwrap()..];
        assert!(
            !known.contains("config") && !known.contains("help"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_file() {
        for (text, key, says) in [
            (
                "[pipeline]\npatients = \"many\"\n",
                "patients",
                "invalid digit",
            ),
            (
                "[pipeline]\npatients = -1\n",
                "patients",
                "invalid value '-1'",
            ),
            (
                "[pipeline]\nscope = \"planet\"\n",
                "scope",
                "possible values: key, global",
            ),
            (
                "[pipeline]\nbounded = \"yes\"\n",
                "bounded",
                "expected true or false, got string",
            ),
            (
                "[pipeline]\ngroup = [\"a\"]\n",
                "group",
                "expected a single value, got array",
            ),
            (
                "[pipeline]\nkinds = \"a\"\n",
                "kinds",
                "expected an array, got string",
            ),
            (
                "[pipeline.topics]\npartitions = 1.5\n",
                "topics.partitions",
                "invalid digit",
            ),
            ("bootstrap = 9092\n[pipeline]\n", "bootstrap", ""),
            ("pipeline = 3\n", "pipeline", "expected a table"),
        ] {
            let f = file(text);
            let result = try_parse_from::<Tool, _, _>(
                "pipeline",
                ["tool", "--config", f.path().to_str().unwrap()],
            );
            if key == "bootstrap" {
                // A number is a fine string for a string flag.
                assert_eq!(run_args(&result.unwrap()).kafka.bootstrap, "9092");
                continue;
            }
            let err = result.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::WrongType { .. }), "{msg}");
            assert!(msg.contains(&format!("key `{key}`")), "{msg}");
            assert!(msg.contains(f.path().to_str().unwrap()), "{msg}");
            assert!(msg.contains(says), "{msg}");
        }
    }

    #[test]
    fn bad_toml_and_missing_files_are_errors_naming_the_file() {
        let err = parse_with("[pipeline\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = try_parse_from::<Tool, _, _>("pipeline", ["tool", "--config", "/nope/x.toml"])
            .unwrap_err();
        assert!(err.to_string().contains("/nope/x.toml"), "{err}");
    }

    #[test]
    fn the_listing_hides_secrets() {
        let p = parse_with(FILE, &["-X", "sasl.oauthbearer.token=abc"]).unwrap();
        let text = p.effective.to_string();
        assert!(text.contains("sasl.password=***"), "{text}");
        assert!(text.contains("sasl.oauthbearer.token=***"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
        assert!(text.contains("security.protocol=sasl_ssl"), "{text}");
    }

    #[test]
    fn x_needs_key_equals_value() {
        let err = try_parse_from::<Tool, _, _>("pipeline", ["tool", "-X", "linger.ms"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected KEY=VALUE"), "{err}");
        assert!(parse_property("=5").is_err());
        assert_eq!(
            parse_property(" acks =all"),
            Ok(("acks".into(), "all".into()))
        );
    }

    #[test]
    fn bootstrap_has_its_short_flag_and_alias() {
        for argv in [
            ["tool", "-b", "a:1"],
            ["tool", "--bootstrap", "a:1"],
            ["tool", "--bootstrap-servers", "a:1"],
        ] {
            let p = try_parse_from::<Tool, _, _>("pipeline", argv).unwrap();
            assert_eq!(run_args(&p).kafka.bootstrap, "a:1");
        }
        let f = file("bootstrap_servers = \"x\"\n");
        let err = try_parse_from::<Tool, _, _>(
            "pipeline",
            ["tool", "--config", f.path().to_str().unwrap()],
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
        let p = parse_with("[pipeline]\nbootstrap_servers = \"alias:1\"\n", &[]).unwrap();
        assert_eq!(run_args(&p).kafka.bootstrap, "alias:1");
    }

    #[test]
    fn config_after_the_subcommand() {
        let f = file(FILE);
        let p = try_parse_from::<Tool, _, _>(
            "pipeline",
            ["tool", "run", "--config", f.path().to_str().unwrap()],
        )
        .unwrap();
        assert_eq!(run_args(&p).group, "ward-3");
        assert_eq!(p.effective.file.as_deref(), Some(f.path()));
    }

    #[test]
    fn a_repeated_cause_passes_once_a_second() {
        let f = OncePerSecond::default();
        let refused = |ms: u32| {
            cause_of(&format!(
                "localhost:9099/bootstrap: Connect to ipv4#127.0.0.1:9099 failed: Connection \
                 refused (after {ms}ms in state CONNECT)"
            ))
        };
        assert!(f.admit(refused(0)));
        assert!(!f.admit(refused(3)), "same cause within a second");
        assert!(f.admit("another cause".into()));
        *f.last.lock().unwrap().get_mut(&refused(0)).unwrap() -= Duration::from_millis(1100);
        assert!(f.admit(refused(7)), "a second later it is shown again");
    }
}
