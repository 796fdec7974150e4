//! Per-patient thresholds in the compacted profiles topic: what `hr-pipeline profiles` reads,
//! merges, checks and writes.
//!
//! Every running instance reads the topic as a table (latest value per patient; a tombstone
//! restores the defaults). A `set` names only the fields it changes, so the record written is
//! the current profile with those fields laid over it ([`merge`]), and it is checked exactly as
//! an instance checks it when it reads the record: a profile the job would refuse never reaches
//! the topic.
//!
//! # Example
//! ```
//! use hr_model::PatientProfile;
//! use hr_pipeline::profiles::{describe, merge};
//!
//! let current = br#"{"tachycardia_above":120.0}"#;
//! let newer = PatientProfile { min_readings: Some(3), ..PatientProfile::EMPTY };
//! let json = merge("p001", Some(current), &newer)?;
//! assert_eq!(json, r#"{"tachycardia_above":120.0,"min_readings":3}"#);
//! assert!(describe("p001", json.as_bytes()).ends_with("tachycardia above 120, bradycardia below 50, at least 3 readings"));
//! # Ok::<(), hr_pipeline::profiles::ProfilesError>(())
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use hr_kafka::{KafkaError, Replication, Sink, TopicSpec, blocking, client_config, read_table};
use hr_model::{PatientProfile, ProfileError, Thresholds, parse_profile};

/// How long each Kafka step of a profile command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The profiles topic: compacted, one partition (every instance reads all of it).
pub fn topic_spec(topic: &str, replication: Replication) -> TopicSpec {
    TopicSpec::compacted(topic, 1).replicated(replication)
}

/// What a profile command does.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileCommand {
    /// Merges `fields` into the patient's profile (unset fields keep their value).
    Set {
        /// The patient.
        patient_id: String,
        /// The fields to set.
        fields: PatientProfile,
    },
    /// Shows a patient's profile and the thresholds it gives.
    Get {
        /// The patient.
        patient_id: String,
    },
    /// Shows every profile.
    List,
    /// Deletes a patient's profile (a tombstone): the defaults apply again.
    Delete {
        /// The patient.
        patient_id: String,
    },
}

/// Why a profile command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfilesError {
    /// `set` without a field.
    #[error("nothing to set: give --tachycardia-above, --bradycardia-below or --min-readings")]
    NothingToSet,
    /// The merged profile is one the job would refuse.
    #[error("refusing the profile {json} for {patient_id}")]
    Refused {
        /// The patient.
        patient_id: String,
        /// The merged profile.
        json: String,
        /// Why.
        #[source]
        source: ProfileError,
    },
    /// A Kafka step failed; `step` says which (`reading patient_profiles`, ...).
    #[error("{step}")]
    Kafka {
        /// What was being done.
        step: String,
        /// The Kafka error.
        #[source]
        source: KafkaError,
    },
}

/// The profile `set` writes for `patient_id`: the current record's value (`None`: no profile; a
/// value that does not parse counts as empty) with every field of `newer` laid over it, checked
/// as an instance checks it (against the default thresholds). Returns the record's JSON.
///
/// # Errors
/// [`ProfilesError::NothingToSet`] when `newer` sets nothing; [`ProfilesError::Refused`] when
/// the merged profile gives invalid thresholds.
pub fn merge(
    patient_id: &str,
    current: Option<&[u8]>,
    newer: &PatientProfile,
) -> Result<String, ProfilesError> {
    if newer.is_empty() {
        return Err(ProfilesError::NothingToSet);
    }
    let current = current
        .and_then(|bytes| parse_profile(bytes).ok())
        .unwrap_or(PatientProfile::EMPTY);
    let json = current.overlay(newer).to_json();
    let checked = parse_profile(json.as_bytes()).and_then(|p| {
        Thresholds::DEFAULT
            .with_profile(&p)
            .map_err(ProfileError::Thresholds)
    });
    match checked {
        Ok(_) => Ok(json),
        Err(source) => Err(ProfilesError::Refused {
            patient_id: patient_id.to_owned(),
            json,
            source,
        }),
    }
}

/// One line of `profiles get` and `list`: the patient, the record's value and the thresholds it
/// gives (or why the job refuses it), separated by tabs.
pub fn describe(patient_id: &str, value: &[u8]) -> String {
    match parse_profile(value) {
        Ok(p) => {
            let gives = Thresholds::DEFAULT.with_profile(&p).map_or_else(
                |e| format!("invalid: {e}"),
                |t| {
                    format!(
                        "tachycardia above {}, bradycardia below {}, at least {} readings",
                        t.tachycardia_above, t.bradycardia_below, t.min_readings
                    )
                },
            );
            format!("{patient_id}\t{}\t{gives}", p.to_json())
        }
        Err(e) => format!(
            "{patient_id}\t{}\tinvalid: {e}",
            String::from_utf8_lossy(value)
        ),
    }
}

/// The profiles topic of one cluster, and the commands on it.
#[derive(Debug, Clone)]
pub struct ProfilesTopic {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// librdkafka properties (`client.id`, TLS, SASL, ...).
    pub properties: Vec<(String, String)>,
    /// The topic.
    pub topic: String,
    /// How the topic is replicated if a command creates it.
    pub replication: Replication,
}

impl ProfilesTopic {
    /// Runs `command` and returns the lines it prints.
    ///
    /// # Errors
    /// [`ProfilesError`]: a refused or empty `set`, or the Kafka step that failed.
    pub fn run(&self, command: &ProfileCommand) -> Result<Vec<String>, ProfilesError> {
        match command {
            ProfileCommand::Set { patient_id, fields } => {
                let table = self.read()?;
                let current = table.get(patient_id.as_bytes()).map(Vec::as_slice);
                let json = merge(patient_id, current, fields)?;
                self.write(patient_id, Some(&json))?;
                Ok(vec![describe(patient_id, json.as_bytes())])
            }
            ProfileCommand::Get { patient_id } => {
                Ok(vec![match self.read()?.get(patient_id.as_bytes()) {
                    Some(value) => describe(patient_id, value),
                    None => format!("{patient_id}\t(no profile: the defaults apply)"),
                }])
            }
            ProfileCommand::List => Ok(self
                .read()?
                .iter()
                .map(|(k, v)| describe(&String::from_utf8_lossy(k), v))
                .collect()),
            ProfileCommand::Delete { patient_id } => {
                self.write(patient_id, None)?;
                Ok(vec![format!("{patient_id}\tdeleted: the defaults apply")])
            }
        }
    }

    /// Every profile: the topic (created if missing) read to its end, committed records only.
    ///
    /// # Errors
    /// [`ProfilesError::Kafka`] when the topic cannot be created or read.
    pub fn read(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ProfilesError> {
        let topic = &self.topic;
        blocking::ensure_topics(
            &client_config(&self.bootstrap, &self.properties),
            &[topic_spec(topic, self.replication)],
            TIMEOUT,
        )
        .map_err(|source| ProfilesError::Kafka {
            step: format!("ensuring the profiles topic {topic}"),
            source,
        })?;
        let mut properties = self.properties.clone();
        properties.push(("isolation.level".into(), "read_committed".into()));
        read_table(&self.bootstrap, &properties, topic, TIMEOUT).map_err(|source| {
            ProfilesError::Kafka {
                step: format!("reading {topic}"),
                source,
            }
        })
    }

    /// Writes one patient's record (`None`: a tombstone) and waits for the broker to take it.
    ///
    /// # Errors
    /// [`ProfilesError::Kafka`] when the producer cannot be made or the record is not taken.
    pub fn write(&self, patient_id: &str, value: Option<&str>) -> Result<(), ProfilesError> {
        let failed = |source| ProfilesError::Kafka {
            step: format!("writing to {}", self.topic),
            source,
        };
        let mut sink = Sink::new(&self.bootstrap, &self.properties).map_err(failed)?;
        sink.send_record(
            &self.topic,
            None,
            patient_id.as_bytes(),
            value.map(str::as_bytes),
            None,
        )
        .map_err(failed)?;
        sink.flush(TIMEOUT).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(t: Option<f64>, b: Option<f64>, m: Option<u64>) -> PatientProfile {
        PatientProfile {
            tachycardia_above: t,
            bradycardia_below: b,
            min_readings: m,
        }
    }

    #[test]
    fn a_set_keeps_the_fields_it_does_not_name() {
        let current = br#"{"tachycardia_above":160.0,"min_readings":2}"#;
        let json = merge("p", Some(current), &fields(None, Some(40.0), None)).unwrap();
        assert_eq!(
            json,
            r#"{"tachycardia_above":160.0,"bradycardia_below":40.0,"min_readings":2}"#
        );
        // A later value of a field replaces the earlier one.
        let json = merge("p", Some(json.as_bytes()), &fields(Some(150.0), None, None)).unwrap();
        assert!(json.starts_with(r#"{"tachycardia_above":150.0,"#), "{json}");
    }

    #[test]
    fn no_profile_or_an_unreadable_one_starts_empty() {
        let newer = fields(Some(120.0), None, None);
        let want = r#"{"tachycardia_above":120.0}"#;
        assert_eq!(merge("p", None, &newer).unwrap(), want);
        assert_eq!(merge("p", Some(b"not json"), &newer).unwrap(), want);
        assert_eq!(
            merge("p", Some(br#"{"tachycardia_abve":1}"#), &newer).unwrap(),
            want
        );
    }

    #[test]
    fn nothing_to_set_is_refused() {
        let err = merge("p", None, &PatientProfile::EMPTY).unwrap_err();
        assert!(matches!(err, ProfilesError::NothingToSet));
        assert!(err.to_string().contains("--tachycardia-above"), "{err}");
    }

    #[test]
    fn a_profile_the_job_would_refuse_is_never_written() {
        // Inverted within the profile.
        let current = br#"{"tachycardia_above":160.0}"#;
        let err = merge("p002", Some(current), &fields(None, Some(170.0), None)).unwrap_err();
        assert!(
            err.to_string().starts_with("refusing the profile {"),
            "{err}"
        );
        assert!(err.to_string().ends_with("} for p002"), "{err}");
        let ProfilesError::Refused { json, source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(
            json,
            r#"{"tachycardia_above":160.0,"bradycardia_below":170.0}"#
        );
        assert!(source.to_string().contains("bradycardia_below"), "{source}");
        // Fine on its own, inverted once merged with the defaults (bradycardia below 50).
        let err = merge("p", None, &fields(Some(45.0), None, None)).unwrap_err();
        assert!(matches!(err, ProfilesError::Refused { .. }), "{err}");
        // Out of range on its own.
        assert!(merge("p", None, &fields(None, None, Some(0))).is_err());
        assert!(merge("p", None, &fields(Some(-1.0), None, None)).is_err());
    }

    #[test]
    fn a_line_shows_the_profile_and_what_it_gives() {
        assert_eq!(
            describe("p002", br#"{"tachycardia_above":160.0}"#),
            "p002\t{\"tachycardia_above\":160.0}\ttachycardia above 160, bradycardia below 50, \
             at least 1 readings"
        );
        let odd = describe("p003", br#"{"tachycardia_above":45.0}"#);
        assert!(
            odd.starts_with("p003\t{\"tachycardia_above\":45.0}\tinvalid: "),
            "{odd}"
        );
        let broken = describe("p004", b"{oops");
        assert!(broken.starts_with("p004\t{oops\tinvalid: "), "{broken}");
    }
}
