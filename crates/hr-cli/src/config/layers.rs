//! The config file's values laid under clap: the shared top level, the binary's table and its
//! subcommands' tables become the defaults of the matching flags, so clap itself gives flags and
//! `HR_*` variables precedence over the file.

use std::path::Path;

use clap::{Arg, ArgAction};

use super::{ConfigError, SECTIONS, SHARED_KEYS, accepts, file_key, normalise};

/// The file's values for one binary: the shared top level and its table (whose tables named
/// after a subcommand hold that subcommand's values).
pub(super) struct Layers {
    shared: toml::Table,
    section: toml::Table,
}

impl Layers {
    pub(super) fn split(
        table: toml::Table,
        section: &str,
        path: &Path,
    ) -> Result<Self, ConfigError> {
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
    pub(super) fn check_keys(
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
pub(super) fn apply(
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
