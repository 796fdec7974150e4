//! Layered configuration: flag > `HR_*` variable > `--config FILE` > built-in default, and the
//! listing of where each effective value came from.
//!
//! [`parse`] adds a global `--config FILE` (variable `HR_CONFIG`) to any clap parser and fills
//! every flag the command line and the environment left unset from the file. One TOML file
//! serves every binary:
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
//! The file's values become the defaults of the matching clap arguments, so clap's own
//! precedence (command line, then environment, then default) does the layering and every value
//! goes through the flag's own value parser.

mod effective;
mod layers;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches};

pub use effective::{Effective, Setting, Source};
use layers::{Layers, apply};

/// The clap id of the `--config` argument that [`parse`] adds.
pub const CONFIG_ID: &str = "config";

/// Top-level keys of a config file that every binary with [`KafkaArgs`](crate::KafkaArgs)
/// reads; a binary without them (hr-batch) ignores them.
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
    let effective = effective::effective(&cmd, &matches, file, &from_file);
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::{Parser, Subcommand, ValueEnum};

    use super::*;
    use crate::KafkaArgs;

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
        // The value itself is `parse_property`'s, tested with it.
        assert!(err.contains("expected KEY=VALUE"), "{err}");
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
}
