//! Whether a transaction committed, told by one of its own records.
//!
//! A commit whose answer was lost (the producer timed out, the process was stopped or killed
//! with `EndTxn` in flight) may or may not have gone through, and the group's committed
//! offsets cannot say which once another instance has taken the partitions on and committed
//! past them. The transaction's records can: once it has ended, a `read_committed` reader
//! finds them if it committed and skips them if it was aborted, whoever wrote after. The
//! transactional [`Sink`](crate::Sink) keeps the first record each transaction had
//! acknowledged, its [`Witness`], and hands it over just before the commit is sent.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaError;
use crate::table::{assigning_reader, short_polls};

/// Where one record of a transaction landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The record's topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// `<partition> <offset> <topic>`: topic names hold neither spaces nor line ends.
impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.partition, self.offset, self.topic)
    }
}

impl FromStr for Witness {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().splitn(3, ' ');
        let mut next = |what: &str| {
            parts
                .next()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("no {what} in {s:?}"))
        };
        let partition = next("partition")?
            .parse()
            .map_err(|e| format!("partition in {s:?}: {e}"))?;
        let offset = next("offset")?
            .parse()
            .map_err(|e| format!("offset in {s:?}: {e}"))?;
        let topic = next("topic")?.to_owned();
        Ok(Self {
            topic,
            partition,
            offset,
        })
    }
}

/// What a [`Witness`] says of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The record is readable `read_committed`: the transaction committed.
    Committed,
    /// The record is skipped by `read_committed` readers: the transaction was aborted.
    Aborted,
    /// The transaction has not ended yet (its coordinator aborts it after its timeout, or a
    /// producer with its transactional id ends it).
    Open,
    /// The record is no longer in the log (retention deleted it): nobody can tell.
    Gone,
}

/// The outcome, from the partition's first offset `low`, its last stable offset `stable_end`
/// (the end of what `read_committed` readers may see), and the offset of the first record a
/// `read_committed` reader returned from the witness's offset on (`None`: it reached the
/// stable end first).
pub fn decide(witness: i64, low: i64, stable_end: i64, first_read: Option<i64>) -> Outcome {
    if witness < low {
        Outcome::Gone
    } else if stable_end <= witness {
        Outcome::Open
    } else if first_read == Some(witness) {
        Outcome::Committed
    } else {
        Outcome::Aborted
    }
}

/// Asks the cluster at `bootstrap` what became of `witness`'s transaction, with a reader of its
/// own (`read_committed`; it assigns the partition itself, as the changelog reader does, and a
/// `group.id` in `overrides` is the one an authorizer checks).
///
/// # Errors
/// [`KafkaError::Client`] when the reader cannot be made, or the partition's leader does not
/// answer within `timeout`.
pub fn outcome(
    bootstrap: &str,
    overrides: &[(String, String)],
    witness: &Witness,
    timeout: Duration,
) -> Result<Outcome, KafkaError> {
    let deadline = Instant::now() + timeout;
    let consumer = assigning_reader(bootstrap, &short_polls(overrides), "hr-witness-reader")?;
    // A read_committed client's ends are the first offset and the last stable offset: they
    // alone say whether the record is gone or its transaction still open; only an ended
    // transaction needs its record read.
    let (low, stable_end) =
        consumer.fetch_watermarks(&witness.topic, witness.partition, timeout)?;
    if witness.offset < low || stable_end <= witness.offset {
        return Ok(decide(witness.offset, low, stable_end, None));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        &witness.topic,
        witness.partition,
        Offset::Offset(witness.offset),
    )?;
    consumer.assign(&tpl)?;
    loop {
        if Instant::now() > deadline {
            return Err(KafkaError::Client(rdkafka::error::KafkaError::Global(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) if m.partition() == witness.partition => {
                return Ok(decide(witness.offset, low, stable_end, Some(m.offset())));
            }
            Some(Ok(_)) => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) if p == witness.partition => {
                return Ok(decide(witness.offset, low, stable_end, None));
            }
            Some(Err(e)) => {
                let e = KafkaError::from(e);
                if e.is_fatal() {
                    return Err(e);
                }
                tracing::debug!(error = %e, "Reading a transaction's witness: a transient error; reading on.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_read_from_the_witness_decides() {
        // Committed: the reader returns the witness itself.
        assert_eq!(decide(5, 0, 9, Some(5)), Outcome::Committed);
        // Aborted: the reader skipped it (and the rest of its transaction).
        assert_eq!(decide(5, 0, 9, Some(8)), Outcome::Aborted);
        assert_eq!(decide(5, 0, 9, None), Outcome::Aborted);
        // Open: the stable end has not passed it, whatever was read.
        assert_eq!(decide(5, 0, 5, None), Outcome::Open);
        assert_eq!(decide(5, 0, 3, None), Outcome::Open);
        // Deleted by retention: nobody can tell.
        assert_eq!(decide(5, 6, 9, None), Outcome::Gone);
    }

    #[test]
    fn a_witness_reads_back_as_written() {
        let w = Witness {
            topic: "heart_rate_alerts".into(),
            partition: 2,
            offset: 41_007,
        };
        assert_eq!(w.to_string(), "2 41007 heart_rate_alerts");
        assert_eq!(w.to_string().parse::<Witness>(), Ok(w));
        assert!("2 x t".parse::<Witness>().is_err());
        assert!("2 7".parse::<Witness>().is_err(), "no topic");
        assert!("".parse::<Witness>().is_err());
    }
}
