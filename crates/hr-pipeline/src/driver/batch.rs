//! What the reader thread hands the job thread: records polled together, and their tally.

use std::ops::Range;
use std::time::Duration;

use hr_kafka::{KafkaError, Polled, RebalanceEvent, Source};
use hr_model::{Event, ParseError, Validation};

use crate::metrics::{Metrics, Outcome};
use crate::processor::Verdict;

/// Records polled together, copied into one buffer so the job thread can own them.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    pub(super) items: Vec<Item>,
    pub(super) records: usize,
    pub(super) parsed: Vec<Result<Event, ParseError>>,
}

pub(super) enum Item {
    Rebalance(RebalanceEvent),
    Record(BatchRecord),
    /// The reader moved `partition`'s position: records after this are from the new one.
    Seeked(i32),
}

pub(super) struct BatchRecord {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) timestamp_ms: Option<i64>,
    pub(super) index: usize,
    pub(super) payload: Range<usize>,
    pub(super) key: Option<Range<usize>>,
}

/// Records per batch: large enough that handing a batch between threads costs nothing per
/// record, small enough that a batch is parsed in well under a millisecond.
pub(super) const BATCH_RECORDS: usize = 1024;

impl Batch {
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
        self.records = 0;
        self.parsed.clear();
    }

    /// Polls up to [`BATCH_RECORDS`] records, waiting at most `wait` for the first. Rebalance
    /// events a poll reports are placed before the record that poll returned. Errors that are
    /// not fatal (brokers down, transport) end the batch and are left for the job to notice.
    pub(super) fn fill(&mut self, source: &Source, wait: Duration) -> Result<(), KafkaError> {
        let mut wait = wait;
        while self.records < BATCH_RECORDS {
            let polled = match source.poll(wait) {
                Ok(p) => p,
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "Poll error; librdkafka retries.");
                    Polled::Idle
                }
            };
            for ev in source.take_rebalances() {
                self.items.push(Item::Rebalance(ev));
            }
            let Polled::Record(r) = polled else { break };
            let key = r.key().map(|k| self.push_bytes(k));
            let payload = self.push_bytes(r.payload());
            self.items.push(Item::Record(BatchRecord {
                partition: r.partition(),
                offset: r.offset(),
                timestamp_ms: r.timestamp_ms(),
                index: self.records,
                payload,
                key,
            }));
            self.records += 1;
            wait = Duration::ZERO;
        }
        Ok(())
    }

    pub(super) fn push_bytes(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    pub(super) fn parse(&mut self, validation: &Validation) {
        self.parsed.clear();
        for item in &self.items {
            if let Item::Record(r) = item {
                self.parsed
                    .push(validation.parse(&self.bytes[r.payload.clone()]));
            }
        }
    }
}

/// One batch's record outcomes, added to the metrics at once: a batch costs a few atomic
/// adds, not one per record. Dead letters, which are rare and carry a code, are counted as
/// they come.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) parsed: u64,
    pub(super) late: u64,
    pub(super) skipped: u64,
}

impl Tally {
    pub(super) fn count(&mut self, verdict: &Verdict, metrics: Option<&Metrics>) {
        match verdict {
            Verdict::Windowed => self.parsed += 1,
            Verdict::Late { .. } => self.late += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::DeadLetter { code, .. } => {
                if let Some(m) = metrics {
                    m.record(Outcome::Invalid { code });
                }
            }
        }
    }

    pub(super) fn add_to(&self, m: &Metrics) {
        m.add_records(Outcome::Parsed, self.parsed);
        m.add_records(Outcome::Late, self.late);
        m.add_records(Outcome::Skipped, self.skipped);
    }
}
