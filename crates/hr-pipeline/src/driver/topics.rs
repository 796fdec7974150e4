//! Topics the job makes or reads besides its input: episodes, changelog, profiles.

use std::time::Duration;

use anyhow::{Context, bail};
use hr_kafka::{Admin, TableFollower, TableUpdate, TopicInfo, TopicSpec, blocking};

use crate::processor::Processor;

use super::outputs::CHANGELOG_MAX_BYTES;
use super::*;

/// How long an admin call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The compacted profiles topic: one partition, every instance reads all of it.
pub(super) fn profiles_spec(topic: &str, cfg: &RunConfig) -> TopicSpec {
    TopicSpec::compacted(topic, 1).replicated(cfg.replication)
}

/// The changelog: compacted, co-partitioned with the input, room for a large patient state.
pub(super) fn changelog_spec(cfg: &RunConfig, partitions: i32) -> TopicSpec {
    TopicSpec::compacted(cfg.changelog_topic(), partitions)
        .config(
            "max.message.bytes",
            (CHANGELOG_MAX_BYTES + 1024).to_string(),
        )
        .replicated(cfg.replication)
}

/// Reads the profiles topic to its end into the processor, then keeps following it.
pub(super) fn follow_profiles(
    cfg: &RunConfig,
    admin: &Admin,
    topic: &str,
    processor: &mut Processor,
) -> anyhow::Result<TableFollower> {
    ensure(cfg, admin, profiles_spec(topic, cfg), "profiles", "READ")?;
    let info = describe(admin, topic)?;
    refuse_uncompacted(topic, &info, "profiles")?;
    warn_single_replica(topic, &info);
    let follower = TableFollower::new(&cfg.bootstrap, &reader_props(cfg), topic, ADMIN_TIMEOUT)
        .map_err(refused(cfg, "READ", topic))
        .with_context(|| format!("reading the profiles topic {topic}"))?;
    let updates = follower
        .catch_up(Duration::from_secs(60))
        .map_err(refused(cfg, "READ", topic))
        .with_context(|| format!("reading the profiles topic {topic}"))?;
    apply_profiles(processor, topic, updates);
    tracing::info!(
        topic,
        applied = processor.counters().profiles_applied,
        refused = processor.counters().profiles_refused,
        "Patient profiles read."
    );
    Ok(follower)
}

/// Properties of the readers that assign partitions themselves (profiles, changelog): the
/// job's own group id, so its principal needs no ACL on another group (they never join it).
pub(super) fn reader_props(cfg: &RunConfig) -> Vec<(String, String)> {
    let mut props = cfg.overrides.clone();
    props.push(("group.id".to_owned(), cfg.group.clone()));
    props
}

pub(super) fn apply_profiles(processor: &mut Processor, topic: &str, updates: Vec<TableUpdate>) {
    for u in updates {
        let key = u.key.as_deref().unwrap_or_default();
        if let Err(e) = processor.apply_profile(key, u.value.as_deref()) {
            tracing::warn!(
                topic,
                partition = u.partition,
                offset = u.offset,
                patient = %String::from_utf8_lossy(key),
                error = %e,
                "Profile refused; the previous one stays in force."
            );
        }
    }
}

/// The episodes topic is new: a job started against topics made before it creates it. Every
/// topic the job writes is checked for a single replica on a cluster that has more.
pub(super) fn ensure_output_topics(cfg: &RunConfig, admin: &Admin) -> anyhow::Result<()> {
    let spec = TopicSpec::new(cfg.episodes_topic.clone(), 1).replicated(cfg.replication);
    ensure(cfg, admin, spec, "episodes", "WRITE")?;
    for topic in [
        &cfg.alerts_topic,
        &cfg.dlq_topic,
        &cfg.late_topic,
        &cfg.episodes_topic,
    ] {
        match describe_within(admin, topic, Duration::ZERO) {
            Ok(info) => warn_single_replica(topic, &info),
            // A topic the broker creates on first write (auto.create.topics.enable) is not
            // there yet; nothing to check.
            Err(e) => {
                tracing::debug!(topic, error = %format!("{e:#}"), "Output topic not described.")
            }
        }
    }
    Ok(())
}

pub(super) fn ensure_changelog(
    cfg: &RunConfig,
    admin: &Admin,
    partitions: i32,
) -> anyhow::Result<()> {
    let topic = cfg.changelog_topic();
    ensure(
        cfg,
        admin,
        changelog_spec(cfg, partitions),
        "changelog",
        "READ and WRITE",
    )?;
    // A topic just created (by this instance or one starting beside it) may not be in the
    // metadata yet: `describe` asks again for a while before calling it missing.
    let info = describe(admin, &topic)?;
    check_copartitioned(&topic, info.partitions, &cfg.input_topic, partitions)?;
    refuse_uncompacted(&topic, &info, "changelog")?;
    warn_single_replica(&topic, &info);
    Ok(())
}

/// Creates the job's `what` topic from `spec` unless it exists. A principal that may not
/// create it may still use one made beforehand, with `use_op` on it (and DESCRIBE_CONFIGS);
/// refused both, the error says so.
fn ensure(
    cfg: &RunConfig,
    admin: &Admin,
    spec: TopicSpec,
    what: &str,
    use_op: &str,
) -> anyhow::Result<()> {
    let topic = spec.name.clone();
    match blocking::ensure_topics_on(admin, &[spec], ADMIN_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(e) if e.is_authorization() => Err(anyhow::anyhow!(refused(cfg, "CREATE", &topic)(e))
            .context(format!(
                "ensuring the {what} topic {topic}: it does not exist or this principal may not \
                 see it (made beforehand, the job needs {use_op} on it instead of CREATE)"
            ))),
        Err(e) => Err(anyhow::anyhow!(e).context(format!("ensuring the {what} topic {topic}"))),
    }
}

/// The topic as the cluster describes it. A topic just created may not have reached the
/// metadata of every broker yet (a cluster answers from whichever broker it asks): it is asked
/// again for a while before being called missing.
fn describe(admin: &Admin, topic: &str) -> anyhow::Result<TopicInfo> {
    describe_within(admin, topic, ADMIN_TIMEOUT)
}

fn describe_within(admin: &Admin, topic: &str, wait: Duration) -> anyhow::Result<TopicInfo> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match blocking::describe_topic_on(admin, topic, ADMIN_TIMEOUT) {
            Err(KafkaError::Topic { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            r => return r.with_context(|| format!("describing topic {topic}")),
        }
    }
}

/// State of input partition p lives in changelog partition p: a changelog with another
/// partition count (the input topic was expanded, say) would restore patients' state into the
/// wrong partitions.
pub(super) fn check_copartitioned(
    changelog: &str,
    changelog_partitions: i32,
    input: &str,
    input_partitions: i32,
) -> anyhow::Result<()> {
    if changelog_partitions != input_partitions {
        bail!(
            "the changelog topic {changelog} has {changelog_partitions} partitions but {input} \
             has {input_partitions}: the state of input partition p lives in changelog partition \
             p, so they must match (keys of an expanded input topic moved partitions, and \
             restored state would be wrong). Start the group afresh: stop every instance, delete \
             {changelog} (hr-pipeline topics --delete {changelog}) and start them with a new \
             --group or from the input's beginning"
        );
    }
    Ok(())
}

/// A changelog or profiles topic that deletes old records loses state: refuse it.
pub(super) fn refuse_uncompacted(topic: &str, info: &TopicInfo, what: &str) -> anyhow::Result<()> {
    if !info.is_compacted() {
        bail!(
            "the {what} topic {topic} has cleanup.policy={}, not compact: the broker would \
             delete records that hold the latest value of a key. Make it compacted \
             (kafka-configs.sh --bootstrap-server ... --alter --entity-type topics --entity-name \
             {topic} --add-config cleanup.policy=compact) or delete it so the job creates it",
            info.cleanup_policy.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// One replica on a cluster of three or more brokers: one broker lost loses the topic's data.
pub(super) fn warn_single_replica(topic: &str, info: &TopicInfo) {
    if info.replication < 2 && info.brokers >= 3 {
        tracing::warn!(
            topic,
            replication = info.replication,
            brokers = info.brokers,
            "This topic has a single replica on a cluster of several brokers: losing one broker \
             loses its data. Recreate it with replicas (--replication-factor, or the cluster's \
             default.replication.factor)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(replication: i32, brokers: usize, policy: Option<&str>) -> TopicInfo {
        TopicInfo {
            partitions: 3,
            replication,
            brokers,
            cleanup_policy: policy.map(str::to_owned),
        }
    }

    #[test]
    fn a_changelog_with_another_partition_count_is_refused_with_what_to_do() {
        assert!(check_copartitioned("g-changelog", 3, "in", 3).is_ok());
        let err = check_copartitioned("g-changelog", 3, "in", 6)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g-changelog has 3 partitions but in has 6"),
            "{err}"
        );
        assert!(err.contains("--delete g-changelog"), "{err}");
    }

    #[test]
    fn only_compacted_state_topics_are_accepted() {
        for ok in ["compact", "compact,delete", "delete, compact"] {
            assert!(refuse_uncompacted("t", &info(3, 3, Some(ok)), "changelog").is_ok());
        }
        let err = refuse_uncompacted("t", &info(3, 3, Some("delete")), "profiles")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles topic t has cleanup.policy=delete"),
            "{err}"
        );
        assert!(err.contains("cleanup.policy=compact"), "{err}");
    }

    #[test]
    fn specs_take_the_cluster_default_unless_told() {
        let mut cfg = RunConfig::new("b:9092");
        let spec = changelog_spec(&cfg, 6);
        assert_eq!(spec.replication, None, "the cluster's default");
        assert_eq!(spec.partitions, 6);
        assert!(
            spec.configs
                .contains(&("cleanup.policy".into(), "compact".into()))
        );
        cfg.replication = hr_kafka::Replication {
            factor: Some(3),
            min_insync: Some(2),
        };
        for spec in [changelog_spec(&cfg, 6), profiles_spec("p", &cfg)] {
            assert_eq!(spec.replication, Some(3));
            assert!(
                spec.configs
                    .contains(&("min.insync.replicas".into(), "2".into()))
            );
            assert!(
                spec.configs
                    .contains(&("cleanup.policy".into(), "compact".into()))
            );
        }
    }
}
