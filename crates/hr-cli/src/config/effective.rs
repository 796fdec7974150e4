//! The effective configuration: every setting of the command that runs and where it came from.

use std::fmt;
use std::path::PathBuf;

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::{CONFIG_ID, file_key, normalise};

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
/// The settings of the command `matches` chose, from the final command and its matches.
pub(super) fn effective(
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
