//! The state changelog's records: what one partition's window state looks like in Kafka.
//!
//! The changelog is a compacted topic with as many partitions as the input (Kafka Streams'
//! design): the state of input partition `p` lives in changelog partition `p`, as
//!
//! - one record per patient, key `k/<patient_id>`, value the patient's [`KeySnapshot`] and
//!   episode tracker as JSON;
//! - one partition record, key `p`, value the next input offset to read and the partition's
//!   watermark bookkeeping ([`PartitionMeta`]).
//!
//! Each commit writes only the patients whose state changed since the previous one, plus the
//! partition record, so its cost follows the readings, not the number of open windows. The
//! latest record of every key is all a restore needs, and compaction keeps exactly that.
//!
//! A patient's record is never deleted while the partition runs: even with nothing open, the
//! patient's clock decides which of its stragglers are late, and forgetting it would make a
//! restored run differ from an uninterrupted one. A bounded run that has fired everything ends
//! its state: every patient gets a tombstone and the partition record keeps only the offset, so
//! the next run of the group starts fresh where this one stopped.

use std::collections::{BTreeMap, HashMap};

use hr_model::{EpisodeTracker, HrStats};
use hr_window::{KeySnapshot, PartitionChanges, PartitionMeta, PartitionSnapshot};
use serde::{Deserialize, Serialize};

/// Key of the partition record.
pub const PARTITION_KEY: &[u8] = b"p";
/// Prefix of a patient's key.
pub const PATIENT_PREFIX: &[u8] = b"k/";

/// One record for the changelog: key and value (`None` is a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// `p` or `k/<patient_id>`.
    pub key: Vec<u8>,
    /// The JSON value, or `None` to delete the key.
    pub value: Option<Vec<u8>>,
}

/// The partition record's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRecord {
    /// The offset of the next input record to read: everything below it is in this state.
    pub next_offset: i64,
    /// The partition's watermark bookkeeping; `None` once a bounded run has fired everything.
    pub meta: Option<PartitionMeta>,
}

/// A patient's record value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRecord {
    /// The patient's window state.
    pub window: KeySnapshot<String, HrStats>,
    /// The patient's episode state, when it holds anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodes: Option<EpisodeTracker>,
}

/// A partition's state as read back: where to resume and what the engine held there.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredPartition {
    /// The offset of the next input record to process.
    pub next_offset: i64,
    /// The window state, `None` when the partition starts fresh.
    pub snapshot: Option<PartitionSnapshot<String, HrStats>>,
    /// Episode trackers of the patients that have one.
    pub episodes: HashMap<String, EpisodeTracker>,
}

/// Why a changelog partition could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A record's value is not what this version writes.
    #[error("changelog record `{key}` is not valid: {source}")]
    Json {
        /// The record's key, lossily as text.
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A key this version does not write.
    #[error("changelog key `{0}` is not a partition or patient key")]
    UnknownKey(String),
}

/// The records for one partition's changes (see the module docs for the layout).
pub fn encode_changes(
    next_offset: i64,
    changes: PartitionChanges<String, HrStats>,
    episodes: &HashMap<String, EpisodeTracker>,
) -> Vec<ChangelogRecord> {
    let mut records = Vec::with_capacity(changes.keys.len() + 1);
    for window in changes.keys {
        let key = patient_key(window.key());
        let episodes = episodes
            .get(window.key())
            .filter(|t| !t.is_quiet())
            .cloned();
        let value =
            serde_json::to_vec(&PatientRecord { window, episodes }).expect("state serialises");
        records.push(ChangelogRecord {
            key,
            value: Some(value),
        });
    }
    records.push(partition_record(next_offset, Some(changes.meta)));
    records
}

/// The records that end a partition's state after a bounded run fired every window: a
/// tombstone per patient and a partition record with the offset alone.
pub fn encode_finished<'a>(
    next_offset: i64,
    patients: impl IntoIterator<Item = &'a str>,
) -> Vec<ChangelogRecord> {
    let mut records: Vec<ChangelogRecord> = patients
        .into_iter()
        .map(|p| ChangelogRecord {
            key: patient_key(p),
            value: None,
        })
        .collect();
    records.push(partition_record(next_offset, None));
    records
}

fn partition_record(next_offset: i64, meta: Option<PartitionMeta>) -> ChangelogRecord {
    let value = serde_json::to_vec(&PartitionRecord { next_offset, meta }).expect("serialises");
    ChangelogRecord {
        key: PARTITION_KEY.to_vec(),
        value: Some(value),
    }
}

fn patient_key(patient_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(PATIENT_PREFIX.len() + patient_id.len());
    key.extend_from_slice(PATIENT_PREFIX);
    key.extend_from_slice(patient_id.as_bytes());
    key
}

/// Rebuilds a partition's state from the latest value of each changelog key. `None` when the
/// partition has no partition record (it never committed).
///
/// # Errors
/// [`DecodeError`] for a value or key this version does not write.
pub fn decode(
    entries: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Option<RestoredPartition>, DecodeError> {
    let text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let Some(partition) = entries.get(PARTITION_KEY) else {
        return Ok(None);
    };
    let partition: PartitionRecord =
        serde_json::from_slice(partition).map_err(|source| DecodeError::Json {
            key: text(PARTITION_KEY),
            source,
        })?;
    let mut keys = Vec::new();
    let mut episodes = HashMap::new();
    for (k, v) in entries {
        if k.as_slice() == PARTITION_KEY {
            continue;
        }
        if !k.starts_with(PATIENT_PREFIX) {
            return Err(DecodeError::UnknownKey(text(k)));
        }
        let rec: PatientRecord = serde_json::from_slice(v).map_err(|source| DecodeError::Json {
            key: text(k),
            source,
        })?;
        if let Some(t) = rec.episodes {
            episodes.insert(rec.window.key().clone(), t);
        }
        keys.push(rec.window);
    }
    let Some(meta) = partition.meta else {
        return Ok(Some(RestoredPartition {
            next_offset: partition.next_offset,
            snapshot: None,
            episodes: HashMap::new(),
        }));
    };
    Ok(Some(RestoredPartition {
        next_offset: partition.next_offset,
        snapshot: Some(PartitionSnapshot::from_parts(meta, keys)),
        episodes,
    }))
}
