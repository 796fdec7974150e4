//! The transactional steps of a [`Sink`]: initialising, committing with the consumer's offsets
//! and aborting, each guarded against a librdkafka call that never returns.
//!
//! A transactional sink ([`Sink::transactional`]) is always inside a transaction:
//! [`Sink::commit`] puts the consumer's offsets into it (KIP-447: with the consumer's group
//! metadata, so the group coordinator refuses a member that has lost its partitions), commits,
//! and begins the next; [`Sink::abort`] throws the open one away. `read_committed` consumers see
//! a transaction's records all at once or never.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::Sink;
use crate::{DeliveryLog, KafkaError, Source, Witness};

/// The time left until `deadline`, at least a second: a call given no time at all cannot
/// succeed even when the broker is back.
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// How long past its own timeout a transactional call may take before it is given up on.
const STUCK_MARGIN: Duration = Duration::from_secs(5);

/// The same for a call made once the job is stopping: its exit must not wait long.
const STOPPING_MARGIN: Duration = Duration::from_secs(1);

/// The longest timeout one call of a step is given; a step with more time is called again
/// ("retry call to resume"), so a call that never returns is found after this and the margin
/// rather than after the step's whole time (a commit caught by a dead coordinator stalled 34 s).
const CALL_SLICE: Duration = Duration::from_secs(8);

/// A stop flag that is never set, for callers that do not stop a step midway.
static NEVER: AtomicBool = AtomicBool::new(false);

/// The producer a transactional call runs on, shared with the thread that runs it.
type TxnProducer = ThreadedProducer<DeliveryLog>;

/// Runs the transactional call `f` on a thread of its own and waits for it up to `timeout` plus
/// a margin. librdkafka's `send_offsets_to_transaction` can block forever when the group
/// coordinator it has cached went away (librdkafka issues #5456 and #5511: its timeout is not
/// enforced for coordinator requests); a call that does not return in time is left behind with
/// its producer, and the error says the producer must be replaced.
///
/// `stop` set meanwhile gives the call up at once, as a call that does not return: a job told
/// to stop exits within moments whatever librdkafka is waiting for. A call made once `stop` is
/// set (the job's last commit) has its timeout, and a margin of a second only.
fn guarded(
    producer: &TxnProducer,
    what: &'static str,
    timeout: Duration,
    stop: &AtomicBool,
    f: impl FnOnce(&TxnProducer, Duration) -> Result<(), RdError> + Send + 'static,
) -> Result<(), GuardedError> {
    let producer = producer.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hr-txn-call".into())
        .spawn(move || {
            let _ = tx.send(f(&producer, timeout));
        })
        .map_err(|e| GuardedError::Failed(KafkaError::State(format!("starting {what}: {e}"))))?;
    let stopping = stop.load(Ordering::Relaxed);
    let margin = if stopping {
        STOPPING_MARGIN
    } else {
        STUCK_MARGIN
    };
    let give_up = Instant::now() + timeout + margin;
    loop {
        let wait = give_up
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(r) => return r.map_err(|e| GuardedError::Failed(e.into())),
            Err(RecvTimeoutError::Timeout) if Instant::now() < give_up => {
                if !stopping && stop.load(Ordering::Relaxed) {
                    return Err(GuardedError::Stuck(KafkaError::State(format!(
                        "{what} given up: the job is stopping"
                    ))));
                }
            }
            Err(_) => {
                return Err(GuardedError::Stuck(KafkaError::State(format!(
                    "{what} did not return within {} s of its {} s timeout; the producer is \
                     given up",
                    margin.as_secs(),
                    timeout.as_secs()
                ))));
            }
        }
    }
}

/// How a [`guarded`] call failed.
enum GuardedError {
    /// It returned this error.
    Failed(KafkaError),
    /// It did not return: the producer cannot be used again.
    Stuck(KafkaError),
}

/// Calls the transactional step `f` with the time left, again while librdkafka says the call
/// must be repeated to resume (a timeout, a coordinator moving), until `deadline`. Each call
/// runs [`guarded`]; one that never returns sets `stuck`.
fn resume(
    producer: &TxnProducer,
    what: &'static str,
    deadline: Instant,
    stop: &AtomicBool,
    stuck: &mut bool,
    f: impl Fn(&TxnProducer, Duration) -> Result<(), RdError> + Send + Sync + Clone + 'static,
) -> Result<(), KafkaError> {
    let stopping = stop.load(Ordering::Relaxed);
    loop {
        let slice = left(deadline).min(CALL_SLICE);
        let result = match guarded(producer, what, slice, stop, f.clone()) {
            Ok(()) => Ok(()),
            Err(GuardedError::Failed(e)) => Err(e),
            Err(GuardedError::Stuck(e)) => {
                *stuck = true;
                return Err(e);
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e)
                if e.is_retriable_txn()
                    && Instant::now() < deadline
                    && (stopping || !stop.load(Ordering::Relaxed)) =>
            {
                tracing::debug!(error = %e, "A transactional call timed out; resuming it.");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Sink {
    /// A transactional producer with `transactional_id`, initialised (which fences any earlier
    /// producer with the same id) and inside its first transaction.
    ///
    /// # Errors
    /// [`KafkaError::Client`] when librdkafka rejects the configuration or the transaction
    /// coordinator does not answer within `timeout`.
    pub fn transactional(
        bootstrap: &str,
        overrides: &[(String, String)],
        transactional_id: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut props = vec![
            ("transactional.id".to_owned(), transactional_id.to_owned()),
            // Connect to the brokers at once: with librdkafka's sparse connections the first
            // connection waited for its one-second timer in about one start of three.
            ("enable.sparse.connections".to_owned(), "false".to_owned()),
        ];
        props.extend(overrides.iter().cloned());
        let mut sink = Self::new(bootstrap, &props)?;
        // librdkafka looks for the transaction coordinator at once and, finding no broker
        // up yet, again only on its 500 ms timer: a cluster id asked first waits until a
        // broker answers. Measured on a local broker, producer ready after: 121-126 ms, or
        // 571-574 ms by that race, or 1.1 s by the sparse connection's; 21-28 ms with both
        // (REPORT.md). Its answer does not matter: initialising reports any real failure.
        let _ = sink
            .producer
            .client()
            .fetch_cluster_id(timeout.min(Duration::from_secs(5)));
        guarded(
            &sink.producer,
            "init_transactions",
            timeout,
            &NEVER,
            |p, t| p.init_transactions(t),
        )
        .map_err(|(GuardedError::Failed(e) | GuardedError::Stuck(e))| e)?;
        sink.producer.begin_transaction()?;
        sink.transactional = true;
        Ok(sink)
    }

    /// Makes the first acknowledged record of `topic` each transaction's [`Witness`] when it
    /// has one (the job's changelog, which its principal may read back), else its first
    /// acknowledged record of any topic.
    pub fn watch(&self, topic: &str) {
        self.producer.context().watch(topic);
    }

    /// Whether this sink writes inside transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Commits the open transaction with `offsets` (partition of `source`'s topic → next offset
    /// to read) as the group's committed offsets, then begins the next transaction. An empty
    /// `offsets` commits the records alone. A step that times out against a broker that is
    /// electing a new leader is called again, as librdkafka asks ("retry call to resume"),
    /// until `timeout` has passed in all.
    ///
    /// # Errors
    /// The [`KafkaError`] of the step that failed. When the commit itself ran out of time its
    /// outcome is unknown: [`in_doubt`](Self::in_doubt) says so, and only a new producer with
    /// the same transactional id can end it (an abort would be refused as a conflicting call).
    /// Otherwise, when the error is not [fatal](KafkaError::is_fatal), the caller may
    /// [`abort`](Self::abort) and redo the work.
    pub fn commit(
        &mut self,
        source: &Source,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        self.commit_unless_stopped(source, offsets, timeout, &NEVER, &mut |_| Ok(()))
    }

    /// As [`commit`](Self::commit), given up as soon as `stop` is set (the commit is then in
    /// doubt, as one that did not return). A commit begun once `stop` is set (the last one)
    /// runs to its `timeout`.
    ///
    /// `before_end` is called once every record of the transaction is acknowledged and before
    /// the commit is sent, with the transaction's [`Witness`] (its first acknowledged record,
    /// of the [watched](Self::watch) topic if it has one; `None`: it holds no record): what is
    /// kept with it outlives a commit whose answer is lost.
    ///
    /// # Errors
    /// As [`commit`](Self::commit); [`KafkaError::State`] when `before_end` fails (nothing was
    /// committed).
    pub fn commit_unless_stopped(
        &mut self,
        source: &Source,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
        stop: &AtomicBool,
        before_end: &mut dyn FnMut(Option<&Witness>) -> std::io::Result<()>,
    ) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        self.in_doubt = false;
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (p, o) in offsets {
                tpl.add_partition_offset(source.topic(), *p, Offset::Offset(*o))?;
            }
            let meta = source.group_metadata()?;
            let (tpl, meta) = (Arc::new(tpl), Arc::new(meta));
            let mut stuck = false;
            let sent = resume(
                &self.producer,
                "send_offsets_to_transaction",
                deadline,
                stop,
                &mut stuck,
                move |p, t| p.send_offsets_to_transaction(&tpl, &meta, t),
            );
            // A call left behind holds the transaction: only a new producer can end it.
            self.in_doubt = stuck;
            sent.map_err(|e| self.refusal_or(e))?;
        }
        // rust-rdkafka's commit_transaction flushes first, in 100 ms sleeps that never wake
        // early under a threaded producer: every commit took at least 100 ms. Flushing here
        // (returning as the last acknowledgement arrives) leaves it nothing to wait for, and a
        // failed delivery fails the commit before it is attempted.
        let stopping = stop.load(Ordering::Relaxed);
        self.flush_unless(left(deadline), &|| {
            !stopping && stop.load(Ordering::Relaxed)
        })
        .map_err(|e| self.refusal_or(e))?;
        let witness = self.producer.context().take_witness();
        before_end(witness.as_ref()).map_err(|e| {
            KafkaError::State(format!(
                "keeping the transaction's witness before its commit: {e}"
            ))
        })?;
        // From here until the answer, the broker may have the commit: its outcome is unknown.
        self.in_doubt = true;
        let mut stuck = false;
        if let Err(e) = resume(
            &self.producer,
            "commit_transaction",
            deadline,
            stop,
            &mut stuck,
            |p, t| p.commit_transaction(t),
        ) {
            // An abortable or fenced transaction was not committed.
            self.in_doubt = stuck || !(e.txn_requires_abort() || e.is_fenced());
            return Err(self.refusal_or(e));
        }
        self.in_doubt = false;
        self.take_failures();
        self.producer.context().take_refused();
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// `e`, or the reason behind it when the transaction coordinator refused a partition of the
    /// transaction for want of an ACL: the transaction then fails, and the step that notices
    /// first reports only an erroneous state or records purged from the queue.
    fn refusal_or(&self, e: KafkaError) -> KafkaError {
        match self.producer.context().take_refused() {
            Some(topic) => KafkaError::Topic {
                topic,
                code: RDKafkaErrorCode::TopicAuthorizationFailed,
            },
            None => e,
        }
    }

    /// Whether the last [`commit`](Self::commit) failed with its outcome unknown (the commit
    /// request may have reached the coordinator), or a transactional call never returned. The
    /// producer cannot abort it; a new one with the same transactional id fences this one and
    /// lets the coordinator finish it.
    pub fn in_doubt(&self) -> bool {
        self.in_doubt
    }

    /// Aborts the open transaction (its records never become visible to `read_committed`
    /// readers) and begins the next; a timed-out abort is called again until `timeout`.
    ///
    /// # Errors
    /// The [`KafkaError`] of the abort or the begin; [`KafkaError::State`] at once when the
    /// last commit is [in doubt](Self::in_doubt).
    pub fn abort(&mut self, timeout: Duration) -> Result<(), KafkaError> {
        if self.in_doubt {
            return Err(KafkaError::State(
                "the last commit timed out with its outcome unknown; only a new producer can end \
                 its transaction"
                    .into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut stuck = false;
        let aborted = resume(
            &self.producer,
            "abort_transaction",
            deadline,
            &NEVER,
            &mut stuck,
            |p, t| p.abort_transaction(t),
        );
        self.in_doubt = stuck;
        aborted?;
        // Records purged by the abort report failed deliveries that mean nothing now, and
        // the aborted transaction's witness is no witness of the next.
        self.take_failures();
        self.producer.context().take_witness();
        self.producer.context().take_refused();
        self.producer.begin_transaction()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer that is never connected: the calls below never reach librdkafka's network.
    fn producer() -> TxnProducer {
        crate::client_config("127.0.0.1:1", &[])
            .create_with_context(DeliveryLog::default())
            .expect("a producer needs no broker to be made")
    }

    #[test]
    fn a_call_that_does_not_return_is_given_up_at_once_when_the_job_stops() {
        let producer = producer();
        let stop = Arc::new(AtomicBool::new(false));
        let setter = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            setter.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let result = guarded(
            &producer,
            "a call",
            Duration::from_secs(60),
            &stop,
            |_, _| {
                std::thread::sleep(Duration::from_secs(30));
                Ok(())
            },
        );
        let waited = started.elapsed();
        match result {
            Err(GuardedError::Stuck(e)) => assert!(e.to_string().contains("stopping"), "{e}"),
            other => panic!("not given up: {}", other.is_ok()),
        }
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[test]
    fn a_call_made_once_the_job_is_stopping_runs_to_its_timeout() {
        let producer = producer();
        let stop = AtomicBool::new(true);
        let result = guarded(
            &producer,
            "the last commit",
            Duration::from_secs(5),
            &stop,
            |_, _| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            },
        );
        assert!(
            result.is_ok(),
            "the last commit is not cut short by the stop that asked for it"
        );
    }

    #[test]
    fn a_call_that_returns_in_time_gives_its_answer() {
        let producer = producer();
        let result = guarded(
            &producer,
            "a call",
            Duration::from_secs(5),
            &NEVER,
            |_, t| {
                assert_eq!(t, Duration::from_secs(5));
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut))
            },
        );
        assert!(matches!(result, Err(GuardedError::Failed(_))));
    }

    #[test]
    fn a_long_step_is_called_with_a_slice_of_its_time() {
        let producer = producer();
        let mut stuck = false;
        let given = Arc::new(std::sync::Mutex::new(None));
        let seen = Arc::clone(&given);
        let deadline = Instant::now() + Duration::from_secs(30);
        let result = resume(
            &producer,
            "a step",
            deadline,
            &NEVER,
            &mut stuck,
            move |_, t| {
                *seen.lock().unwrap() = Some(t);
                Ok(())
            },
        );
        assert!(result.is_ok() && !stuck);
        // A call that never returns is found after the slice and the margin, not after 30 s.
        assert_eq!(*given.lock().unwrap(), Some(CALL_SLICE));
    }
}
