//! The job's transitions without a broker: a fake [`Broker`] keeps a group's committed offsets
//! and a changelog as `read_committed` readers see them, and fails the steps a test tells it
//! to; the processor is the real one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hr_kafka::rdkafka::error::KafkaError as RdError;
use hr_kafka::rdkafka::types::RDKafkaErrorCode;
use hr_kafka::{Diversion, KafkaError, PartitionTable};
use hr_model::Validation;

use super::batch::{Batch, BatchRecord, Item};
use super::broker::{Broker, Transaction};
use super::commit::{self, COMMIT_TIMEOUT, State};
use super::committer::Committer;
use super::job::{Closing, Job};
use super::rebalance::RevokeBarrier;
use super::rebalance::lock;
use super::{Guarantee, RunConfig};
use crate::changelog::ChangelogRecord;
use crate::processor::{Emitted, Processor};

/// What the fake cluster holds, and what it was asked.
#[derive(Default)]
struct Cluster {
    at_least_once: bool,
    /// The group's committed offsets.
    committed: BTreeMap<i32, i64>,
    /// The latest committed value of each changelog key, per partition.
    changelog: BTreeMap<i32, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// The changelog records of the open transaction.
    open: Vec<(i32, ChangelogRecord)>,
    /// The offsets of every commit that went through, in order.
    commits: Vec<BTreeMap<i32, i64>>,
    /// The next commits fail with these.
    failing_commits: VecDeque<KafkaError>,
    /// Why the producer refused an output (the job's outputs keep the first).
    refused_output: Option<KafkaError>,
    /// The consumer is rejoining its group.
    rejoining: bool,
    /// Every abort fails (librdkafka left in a state it cannot abort from).
    aborts_fail: bool,
    /// The next commit goes through but its answer is lost: it fails in doubt.
    answer_lost: bool,
    /// The last commit's outcome is unknown to the producer.
    in_doubt: bool,
    /// Whether the commit in doubt went through: what its witness says.
    doubtful_went_through: bool,
    aborts: usize,
    renewals: usize,
    /// Alert file parts published.
    published: usize,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Cluster>>);

impl Fake {
    fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        lock(&self.0)
    }
}

/// A broker error that is neither fatal nor fencing: the transaction can be aborted.
fn transient() -> KafkaError {
    KafkaError::Client(RdError::MessageProduction(
        RDKafkaErrorCode::BrokerTransportFailure,
    ))
}

impl Transaction for Fake {
    fn wait_outputs(&mut self, _mark: u64, _timeout: Duration) -> Result<(), KafkaError> {
        Ok(())
    }

    fn send_changelog(
        &mut self,
        _topic: &str,
        p: i32,
        rec: &ChangelogRecord,
    ) -> Result<(), KafkaError> {
        self.cluster().open.push((p, rec.clone()));
        Ok(())
    }

    fn commit(
        &mut self,
        offsets: &BTreeMap<i32, i64>,
        _timeout: Duration,
    ) -> Result<(), KafkaError> {
        let mut c = self.cluster();
        if let Some(e) = c.failing_commits.pop_front() {
            return Err(e);
        }
        let answer_lost = std::mem::take(&mut c.answer_lost);
        for (p, rec) in std::mem::take(&mut c.open) {
            let table = c.changelog.entry(p).or_default();
            match rec.value {
                Some(v) => table.insert(rec.key, v),
                None => table.remove(&rec.key),
            };
        }
        c.committed.extend(offsets.iter().map(|(&p, &o)| (p, o)));
        c.commits.push(offsets.clone());
        if answer_lost {
            c.in_doubt = true;
            c.doubtful_went_through = true;
            return Err(transient());
        }
        Ok(())
    }
}

impl Broker for Fake {
    fn emit(&mut self, _: &Emitted, _: Option<(i32, i64)>, _: &RunConfig) -> anyhow::Result<()> {
        Ok(())
    }

    fn divert(
        &mut self,
        _: &str,
        _: Option<&[u8]>,
        _: &[u8],
        _: &Diversion<'_>,
        _: &RunConfig,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    fn replaced(&self) -> u64 {
        0
    }

    fn take_failure(&mut self) -> Option<KafkaError> {
        self.cluster().refused_output.take()
    }

    fn mark(&self) -> Option<u64> {
        self.cluster().at_least_once.then_some(0)
    }

    fn prepare_file(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn file_committed(&mut self) -> anyhow::Result<()> {
        self.cluster().published += 1;
        Ok(())
    }

    fn file_aborted(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn file_in_doubt(&mut self, _cfg: &RunConfig, _patience: Duration) -> anyhow::Result<()> {
        let mut c = self.cluster();
        if std::mem::take(&mut c.doubtful_went_through) {
            c.published += 1;
        }
        Ok(())
    }

    fn in_doubt(&self) -> bool {
        self.cluster().in_doubt
    }

    fn abort(&mut self, _timeout: Duration) -> Result<(), KafkaError> {
        let mut c = self.cluster();
        if c.aborts_fail || c.in_doubt {
            return Err(transient());
        }
        c.open.clear();
        c.aborts += 1;
        Ok(())
    }

    fn renew_txn(&mut self, _cfg: &RunConfig) -> Result<(), KafkaError> {
        let mut c = self.cluster();
        c.open.clear();
        c.in_doubt = false;
        c.renewals += 1;
        Ok(())
    }

    fn committed(
        &self,
        ps: &[i32],
        _timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
        let c = self.cluster();
        Ok(ps
            .iter()
            .map(|p| (*p, c.committed.get(p).copied()))
            .collect())
    }

    fn read_changelog(
        &mut self,
        p: i32,
        _timeout: Duration,
        _cfg: &RunConfig,
    ) -> Result<PartitionTable, KafkaError> {
        Ok(PartitionTable {
            entries: self
                .cluster()
                .changelog
                .get(&p)
                .cloned()
                .unwrap_or_default(),
            ..PartitionTable::default()
        })
    }

    fn lag(&self, _next: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
        BTreeMap::new()
    }

    fn take_client_error(&self) -> Option<String> {
        None
    }

    fn ping(&self, _timeout: Duration) -> Result<(), KafkaError> {
        Ok(())
    }

    fn rejoining(&self) -> bool {
        self.cluster().rejoining
    }
}

/// The fake's transaction as the committer thread runs it, held at its first step until the
/// test says go.
struct Gated {
    fake: Fake,
    go: Receiver<()>,
}

impl Transaction for Gated {
    fn wait_outputs(&mut self, mark: u64, timeout: Duration) -> Result<(), KafkaError> {
        let _ = self.go.recv();
        self.fake.wait_outputs(mark, timeout)
    }

    fn send_changelog(
        &mut self,
        topic: &str,
        p: i32,
        rec: &ChangelogRecord,
    ) -> Result<(), KafkaError> {
        self.fake.send_changelog(topic, p, rec)
    }

    fn commit(
        &mut self,
        offsets: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        self.fake.commit(offsets, timeout)
    }
}

/// A job's surroundings: a configuration that never waits on the broker (a failing call is
/// given up at once), its stop flag, and the fake.
struct Rig {
    cfg: RunConfig,
    stop: AtomicBool,
    fake: Fake,
}

impl Rig {
    fn new(guarantee: Guarantee) -> Self {
        let mut cfg = RunConfig::new("fake:9092");
        cfg.guarantee = guarantee;
        cfg.broker_timeout = Duration::ZERO;
        cfg.alerts_dir = None;
        cfg.profiles_topic = None;
        let fake = Fake::default();
        fake.cluster().at_least_once = guarantee == Guarantee::AtLeastOnce;
        Self {
            cfg,
            stop: AtomicBool::new(false),
            fake,
        }
    }

    fn job(&self) -> Job<'_, Fake> {
        let processor =
            Processor::new(self.cfg.processor.clone()).expect("the default configuration");
        Job::new(&self.cfg, &self.stop, self.fake.clone(), processor, None)
    }
}

/// What the reader hands over: records (one reading each, a second apart) and seeks.
enum Polled {
    Records(i32, std::ops::Range<i64>),
    Seeked(i32),
}

fn batch(polled: &[Polled]) -> Batch {
    let mut b = Batch::default();
    push(&mut b, polled);
    b
}

/// Adds `polled` to `b` as the reader does, and parses the batch.
fn push(b: &mut Batch, polled: &[Polled]) {
    for item in polled {
        match item {
            Polled::Seeked(p) => b.items.push(Item::Seeked(*p)),
            Polled::Records(p, offsets) => {
                for offset in offsets.clone() {
                    let json = format!(
                        r#"{{"patient_id":"p{p}","timestamp":"2025-11-19T07:15:{:02}Z","heart_rate_bpm":80}}"#,
                        offset % 60
                    );
                    let payload = b.push_bytes(json.as_bytes());
                    b.items.push(Item::Record(BatchRecord {
                        partition: *p,
                        offset,
                        timestamp_ms: None,
                        index: b.records,
                        payload,
                        key: None,
                    }));
                    b.records += 1;
                }
            }
        }
    }
    b.parse(&Validation::default());
}

fn offsets(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    pairs.iter().copied().collect()
}

/// Partition 0 read to offset 3 and committed, then read on to 6.
fn commit_and_read_on(job: &mut Job<'_, Fake>) {
    job.on_assign(&[0]).unwrap();
    job.apply(&batch(&[Polled::Records(0, 0..3)])).unwrap();
    assert!(job.commit(false).unwrap());
    job.apply(&batch(&[Polled::Records(0, 3..6)])).unwrap();
    assert_eq!(job.processor.offsets(), offsets(&[(0, 6)]));
}

/// Partition 0 read to offset 3 and committed, read on to 6, and that commit failed.
fn commit_then_fail(job: &mut Job<'_, Fake>, fake: &Fake) {
    commit_and_read_on(job);
    fake.cluster().failing_commits.push_back(transient());
    assert!(!job.commit(false).unwrap(), "the commit was aborted");
}

/// An error of a producer librdkafka gave up on (as producing returns it after a fatal error).
fn producer_fatal() -> KafkaError {
    KafkaError::Client(RdError::MessageProduction(RDKafkaErrorCode::Fatal))
}

/// Partitions 0 and 1 assigned, read to offsets 3 and 2.
fn read_two_partitions(job: &mut Job<'_, Fake>) {
    job.on_assign(&[0, 1]).unwrap();
    job.apply(&batch(&[
        Polled::Records(0, 0..3),
        Polled::Records(1, 0..2),
    ]))
    .unwrap();
}

/// Partitions 0 and 1 read on to offsets 5 and 4.
fn read_on(job: &mut Job<'_, Fake>) {
    job.apply(&batch(&[
        Polled::Records(0, 3..5),
        Polled::Records(1, 2..4),
    ]))
    .unwrap();
}

/// The seeks the job has queued for the reader, performed as the reader does.
fn performed_seeks(job: &Job<'_, Fake>) -> (Vec<(i32, i64)>, Batch) {
    let mut seeks = Vec::new();
    let mut b = Batch::default();
    job.seeks.queue().perform(&mut b, |p, o| {
        seeks.push((p, o));
        Ok(())
    });
    (seeks, b)
}

#[test]
fn a_failed_commit_aborts_and_rewinds_to_the_last_commit() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    commit_then_fail(&mut job, fake);
    assert_eq!(fake.cluster().aborts, 1);
    assert_eq!(fake.cluster().renewals, 0);
    assert_eq!(fake.cluster().commits, vec![offsets(&[(0, 3)])]);
    // The state restored from the changelog is the committed one, and the reader goes back.
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    assert!(job.seeks.is_stale(0));
    assert_eq!(performed_seeks(&job).0, vec![(0, 3)]);
    assert!(!job.dirty);
    // The work since is redone and committed.
    job.apply(&batch(&[Polled::Seeked(0), Polled::Records(0, 3..6)]))
        .unwrap();
    assert!(job.commit(false).unwrap());
    assert_eq!(
        fake.cluster().commits,
        vec![offsets(&[(0, 3)]), offsets(&[(0, 6)])]
    );
}

#[test]
fn an_abort_that_cannot_complete_starts_a_new_producer_and_rewinds() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    fake.cluster().aborts_fail = true;
    commit_then_fail(&mut job, fake);
    assert_eq!(fake.cluster().aborts, 0);
    assert_eq!(
        fake.cluster().renewals,
        1,
        "a new producer ended the transaction"
    );
    assert!(fake.cluster().open.is_empty());
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    assert_eq!(performed_seeks(&job).0, vec![(0, 3)]);
    job.apply(&batch(&[Polled::Seeked(0), Polled::Records(0, 3..4)]))
        .unwrap();
    assert!(job.commit(false).unwrap(), "the new producer commits");
    assert_eq!(fake.cluster().committed, offsets(&[(0, 4)]));
}

#[test]
fn records_polled_before_their_seek_is_confirmed_are_skipped() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    commit_then_fail(&mut job, fake);
    let read = job.processor.counters().read;
    // The reader polled on from its old position before it took the seek.
    job.apply(&batch(&[Polled::Records(0, 6..8)])).unwrap();
    assert_eq!(job.processor.counters().read, read, "stale records skipped");
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    // The reader seeks between two polls, and says so before the records that follow.
    let (seeks, mut next) = performed_seeks(&job);
    assert_eq!(seeks, vec![(0, 3)]);
    assert!(performed_seeks(&job).0.is_empty(), "each seek is done once");
    push(&mut next, &[Polled::Records(0, 3..6)]);
    assert!(matches!(next.items[0], Item::Seeked(0)));
    job.apply(&next).unwrap();
    assert!(!job.seeks.is_stale(0));
    assert_eq!(job.processor.counters().read, read + 3);
    assert_eq!(job.processor.offsets(), offsets(&[(0, 6)]));
}

#[test]
fn a_revoke_settles_the_commit_in_flight_before_committing_and_dropping() {
    let rig = Rig::new(Guarantee::AtLeastOnce);
    let (mut job, fake, cfg) = (rig.job(), &rig.fake, &rig.cfg);
    let (link, work, done) = commit::link();
    let (go, gate) = std::sync::mpsc::channel();
    let closing = AtomicBool::new(false);
    std::thread::scope(|s| {
        let committer = Committer {
            txn: Gated {
                fake: fake.clone(),
                go: gate,
            },
            changelog_topic: cfg.changelog_topic(),
            delivery_timeout: cfg.broker_timeout,
            commit_timeout: COMMIT_TIMEOUT,
        };
        let closing = &closing;
        // Whatever happens below, the committer thread ends and the scope with it.
        let _closing = Closing(closing);
        s.spawn(move || committer.serve(&work, &done, closing));
        job.committer = Some(link);
        read_two_partitions(&mut job);
        job.commit_in_turn().unwrap();
        assert!(job.in_flight());
        // The job reads on while the commit waits for its outputs.
        read_on(&mut job);
        job.settle(false).unwrap();
        assert!(job.in_flight(), "not answered yet");
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = go.send(());
        });
        job.on_revoke(&[1], false).unwrap();
        assert!(!job.in_flight());
        job.committer = None;
    });
    assert_eq!(
        fake.cluster().commits,
        vec![offsets(&[(0, 3), (1, 2)]), offsets(&[(0, 5), (1, 4)])],
        "the commit in flight first, then the revocation's"
    );
    assert!(!job.processor.owns(1));
    assert_eq!(job.processor.offsets(), offsets(&[(0, 5)]));
    assert_eq!(fake.cluster().aborts, 0);
}

#[test]
fn lost_partitions_are_dropped_without_a_commit_and_the_rest_rewinds() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    read_two_partitions(&mut job);
    assert!(job.commit(false).unwrap());
    read_on(&mut job);
    job.on_revoke(&[1], true).unwrap();
    assert_eq!(
        fake.cluster().commits,
        vec![offsets(&[(0, 3), (1, 2)])],
        "nothing committed for lost partitions"
    );
    assert_eq!(fake.cluster().aborts, 1);
    assert!(!job.processor.owns(1));
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    assert_eq!(performed_seeks(&job).0, vec![(0, 3)]);
    assert!(!job.seeks.is_stale(1));
}

#[test]
fn a_commit_in_doubt_is_ended_by_a_new_producer_and_kept_when_it_went_through() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    job.on_assign(&[0]).unwrap();
    job.apply(&batch(&[Polled::Records(0, 0..3)])).unwrap();
    fake.cluster().answer_lost = true;
    assert!(!job.commit(false).unwrap(), "its outcome was unknown");
    {
        let c = fake.cluster();
        assert_eq!(c.aborts, 0, "a commit in doubt is not aborted");
        assert_eq!(c.renewals, 1, "a new producer ended it");
        assert_eq!(
            c.published, 1,
            "it went through: its alert file part is published"
        );
    }
    assert_eq!(job.last_committed, offsets(&[(0, 3)]));
    // The state restored is the one that commit wrote: nothing is redone.
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    job.apply(&batch(&[Polled::Seeked(0), Polled::Records(0, 3..4)]))
        .unwrap();
    assert!(job.commit(false).unwrap());
    assert_eq!(
        fake.cluster().commits,
        vec![offsets(&[(0, 3)]), offsets(&[(0, 4)])]
    );
}

#[test]
fn a_bounded_run_whose_last_commit_is_aborted_ends_in_an_error() {
    let mut rig = Rig::new(Guarantee::ExactlyOnce);
    rig.cfg.bounded = true;
    let (mut job, fake) = (rig.job(), &rig.fake);
    job.on_assign(&[0]).unwrap();
    job.apply(&batch(&[Polled::Records(0, 0..3)])).unwrap();
    fake.cluster().failing_commits.push_back(transient());
    let ended = job.drain();
    let e = ended.expect_err("an aborted last commit is not a success");
    assert!(
        format!("{e:#}").contains("the last commit was aborted"),
        "{e:#}"
    );
    assert!(fake.cluster().commits.is_empty(), "nothing was committed");
    assert_eq!(fake.cluster().aborts, 1);
}

#[test]
fn a_producer_librdkafka_gave_up_on_is_replaced_and_the_job_goes_on() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    commit_and_read_on(&mut job);
    // The commit fails with a fatal error of the producer's own state (a sequence out of step
    // with a new leader): not the end of the job.
    fake.cluster().failing_commits.push_back(producer_fatal());
    assert!(!job.commit(false).unwrap(), "the commit was given up");
    {
        let c = fake.cluster();
        assert_eq!(c.renewals, 1, "a new producer took the old one's place");
        assert_eq!(c.aborts, 0, "the old producer cannot abort");
        assert_eq!(c.commits, vec![offsets(&[(0, 3)])]);
    }
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]));
    assert_eq!(performed_seeks(&job).0, vec![(0, 3)]);
    job.apply(&batch(&[Polled::Seeked(0), Polled::Records(0, 3..6)]))
        .unwrap();
    assert!(job.commit(false).unwrap(), "the new producer commits");
    assert_eq!(fake.cluster().committed, offsets(&[(0, 6)]));
    assert_eq!(
        job.renewals, 0,
        "a commit that went through starts the count again"
    );
}

#[test]
fn an_output_refused_for_the_producers_state_gives_up_the_next_commit() {
    for guarantee in [Guarantee::ExactlyOnce, Guarantee::AtLeastOnce] {
        let rig = Rig::new(guarantee);
        let (mut job, fake) = (rig.job(), &rig.fake);
        commit_and_read_on(&mut job);
        // An output was refused between commits: the offsets must not pass it.
        fake.cluster().refused_output = Some(producer_fatal());
        let went_through = if guarantee == Guarantee::AtLeastOnce {
            // The at-least-once commit cut for the committer thread is given up at once.
            job.commit_in_turn().unwrap();
            assert!(!job.in_flight(), "{guarantee:?}");
            false
        } else {
            job.commit(false).unwrap()
        };
        assert!(!went_through, "{guarantee:?}");
        let c = fake.cluster();
        assert_eq!(c.commits, vec![offsets(&[(0, 3)])], "{guarantee:?}");
        assert_eq!(c.renewals, 1, "{guarantee:?}");
        drop(c);
        assert_eq!(job.processor.offsets(), offsets(&[(0, 3)]), "{guarantee:?}");
    }
}

#[test]
fn an_authorization_failure_at_commit_ends_the_job() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    job.on_assign(&[0]).unwrap();
    job.apply(&batch(&[Polled::Records(0, 0..3)])).unwrap();
    fake.cluster()
        .failing_commits
        .push_back(KafkaError::Client(RdError::MessageProduction(
            RDKafkaErrorCode::TopicAuthorizationFailed,
        )));
    let e = job.commit(false).expect_err("a refusal is not redone");
    let text = format!("{e:#}");
    assert!(text.contains("not authorized"), "{text}");
    assert_eq!(fake.cluster().renewals, 0);
}

#[test]
fn producers_failing_again_and_again_end_the_job_instead_of_looping() {
    let rig = Rig::new(Guarantee::ExactlyOnce);
    let (mut job, fake) = (rig.job(), &rig.fake);
    job.on_assign(&[0]).unwrap();
    let mut ended = None;
    for round in 0..20 {
        job.apply(&batch(&[Polled::Seeked(0), Polled::Records(0, 0..3)]))
            .unwrap();
        fake.cluster().failing_commits.push_back(producer_fatal());
        match job.commit(false) {
            Ok(went_through) => assert!(!went_through),
            Err(e) => {
                ended = Some((round, format!("{e:#}")));
                break;
            }
        }
    }
    let (round, text) = ended.expect("the job gives up");
    assert_eq!(round as u32, super::restore::MAX_RENEWALS, "{text}");
    assert!(text.contains("in a row"), "{text}");
    assert_eq!(fake.cluster().renewals as u32, super::restore::MAX_RENEWALS);
}

#[test]
fn a_turn_applies_a_batch_commits_when_due_and_waits_while_the_group_rebalances() {
    let mut rig = Rig::new(Guarantee::ExactlyOnce);
    rig.cfg.commit_interval = Duration::ZERO;
    let (mut job, fake) = (rig.job(), &rig.fake);
    let (to_job, batches) = std::sync::mpsc::sync_channel(2);
    let (recycle, spare) = std::sync::mpsc::channel();
    let barrier = RevokeBarrier::default();
    let validation = Validation::default();
    job.on_assign(&[0, 1]).unwrap();
    // The consumer is rejoining its group: the batch is applied, the commit waits.
    fake.cluster().rejoining = true;
    to_job
        .send(Ok(batch(&[
            Polled::Records(0, 0..3),
            Polled::Records(1, 0..2),
        ])))
        .unwrap();
    assert!(job.turn(&barrier, &batches, &recycle, &validation).unwrap());
    assert_eq!(job.processor.offsets(), offsets(&[(0, 3), (1, 2)]));
    assert!(matches!(job.state, State::Rebalancing));
    assert!(
        fake.cluster().commits.is_empty(),
        "no commit while rejoining"
    );
    assert!(
        spare.try_recv().is_ok(),
        "the batch goes back to the reader"
    );
    // Back in the group: the commit is due at once.
    fake.cluster().rejoining = false;
    assert!(job.turn(&barrier, &batches, &recycle, &validation).unwrap());
    assert!(matches!(job.state, State::Reading));
    assert_eq!(fake.cluster().commits, vec![offsets(&[(0, 3), (1, 2)])]);
    // A revocation the reader thread waits on is served by the next turn, with a commit of
    // what was read since (a revocation does not wait for the rejoin: it is part of it).
    fake.cluster().rejoining = true;
    to_job.send(Ok(batch(&[Polled::Records(1, 2..4)]))).unwrap();
    assert!(job.turn(&barrier, &batches, &recycle, &validation).unwrap());
    assert_eq!(fake.cluster().commits.len(), 1);
    *lock(&barrier.pending) = Some((vec![1], false));
    assert!(job.turn(&barrier, &batches, &recycle, &validation).unwrap());
    assert!(barrier.pending().is_none(), "the reader thread is released");
    assert!(!job.processor.owns(1));
    assert_eq!(fake.cluster().committed, offsets(&[(0, 3), (1, 4)]));
    // The reader thread has ended: the loop ends.
    drop(to_job);
    assert!(!job.turn(&barrier, &batches, &recycle, &validation).unwrap());
}
