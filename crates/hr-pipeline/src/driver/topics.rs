//! Topics the job makes or reads besides its input: episodes, changelog, profiles.

use std::time::Duration;

use anyhow::{Context, bail};
use hr_kafka::{
    Source, SourceConfig, TableFollower, TableUpdate, TopicSpec, client_config, ensure_topics,
};

use crate::processor::Processor;

use super::outputs::CHANGELOG_MAX_BYTES;
use super::*;

/// Reads the profiles topic to its end into the processor, then keeps following it.
pub(super) fn follow_profiles(
    cfg: &RunConfig,
    topic: &str,
    processor: &mut Processor,
) -> anyhow::Result<TableFollower> {
    let spec = TopicSpec {
        configs: vec![("cleanup.policy".into(), "compact".into())],
        ..TopicSpec::new(topic, 1)
    };
    let admin = client_config(&cfg.bootstrap, &cfg.overrides);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(ensure_topics(&admin, &[spec], Duration::from_secs(30)))
        .with_context(|| format!("ensuring the profiles topic {topic}"))?;
    let follower = TableFollower::new(
        &cfg.bootstrap,
        &cfg.overrides,
        topic,
        Duration::from_secs(30),
    )?;
    let updates = follower
        .catch_up(Duration::from_secs(60))
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

/// The episodes topic is new: a job started against topics made before it creates it.
pub(super) fn ensure_output_topics(
    cfg: &RunConfig,
    admin: &hr_kafka::rdkafka::ClientConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let spec = TopicSpec::new(cfg.episodes_topic.clone(), 1);
    rt.block_on(ensure_topics(admin, &[spec], Duration::from_secs(30)))
        .with_context(|| format!("ensuring the episodes topic {}", cfg.episodes_topic))?;
    Ok(())
}

pub(super) fn ensure_changelog(cfg: &RunConfig, partitions: i32) -> anyhow::Result<()> {
    let topic = cfg.changelog_topic();
    let spec = TopicSpec {
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            (
                "max.message.bytes".into(),
                (CHANGELOG_MAX_BYTES + 1024).to_string(),
            ),
        ],
        ..TopicSpec::new(topic.clone(), partitions)
    };
    let admin = client_config(&cfg.bootstrap, &cfg.overrides);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(ensure_topics(&admin, &[spec], Duration::from_secs(30)))
        .with_context(|| format!("ensuring the changelog topic {topic}"))?;
    let probe = Source::new(&SourceConfig {
        bootstrap: cfg.bootstrap.clone(),
        group: format!("{}-probe", cfg.group),
        topic: topic.clone(),
        from_beginning: true,
        bounded: false,
        overrides: cfg.overrides.clone(),
    })?;
    // A topic just created (by this instance or one starting beside it) may not be in the
    // metadata yet: ask again for a while before calling it missing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        match probe.topic_partitions(Duration::from_secs(30)) {
            Ok(ids) if !ids.is_empty() => break ids.len() as i32,
            Ok(_) | Err(KafkaError::Topic { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(ids) => break ids.len() as i32,
            Err(e) => return Err(e.into()),
        }
    };
    if got != partitions {
        bail!(
            "the changelog topic {topic} has {got} partitions but {} has {partitions}: state of \
             input partition p lives in changelog partition p, so they must match (delete the \
             changelog topic to start the group afresh)",
            cfg.input_topic
        );
    }
    Ok(())
}
