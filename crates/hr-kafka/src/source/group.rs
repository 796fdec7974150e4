//! The consumer's group side: rebalance events and the hook run before a revocation, the
//! client context that collects them, and what librdkafka says of this member (its membership
//! in the group metadata, its join state in the statistics).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};

/// A change of the partitions this consumer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions newly assigned to this consumer.
    Assigned(Vec<i32>),
    /// Partitions taken away; their uncommitted work will be redone by the next owner.
    Revoked(Vec<i32>),
}

/// Called inside librdkafka's rebalance callback with the partitions about to be revoked, before
/// the revocation completes: the place to commit work for them (Kafka Streams commits in
/// `onPartitionsRevoked`). It runs on the polling thread and blocks that poll.
///
/// The flag says the partitions were *lost*, not handed over: the group dropped this member
/// (a pause past the session timeout, a cut) and may already have given them to another. Work
/// for lost partitions must not be committed (Kafka Streams' `onPartitionsLost` closes its
/// tasks dirty): their next owner redoes it.
pub type RevokeHook = Box<dyn Fn(&[i32], bool) + Send + Sync>;

/// Collects rebalance notifications from librdkafka's callback for the poll loop to act on.
#[derive(Default)]
pub struct RebalanceLog {
    pub(super) events: Mutex<Vec<RebalanceEvent>>,
    /// Set after each push, so the poll loop's per-record check is one atomic load, not a lock.
    pub(super) pending: AtomicBool,
    pub(super) on_revoke: std::sync::OnceLock<RevokeHook>,
    /// Assignments seen, so a batch source forwards the assigned partitions' queues again.
    pub(super) assigns: std::sync::atomic::AtomicU64,
    /// Whether the consumer's group membership is being renegotiated (librdkafka's join state,
    /// from its statistics, is not `steady`), so a caller can hold back commits meanwhile.
    pub(super) rejoining: AtomicBool,
    /// The last client-level error librdkafka reported (brokers down, transport), for a caller
    /// that wants to say why it is waiting; cleared by [`Source::take_client_error`].
    pub(super) last_error: Mutex<Option<String>>,
}

impl RebalanceLog {
    pub(super) fn push(&self, e: RebalanceEvent) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e);
        self.pending.store(true, Ordering::Release);
    }

    pub(super) fn take(&self) -> Vec<RebalanceEvent> {
        // A plain load first: this runs once per record, and a swap would write the line.
        if !self.pending.load(Ordering::Relaxed) || !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ClientContext for RebalanceLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::error::log_librdkafka(level, fac, message);
    }

    /// Only the group's join state is read from the statistics, by a search, not a parse.
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(state) = join_state(statistics) {
            let rejoining = state != b"steady";
            if self.rejoining.swap(rejoining, Ordering::AcqRel) != rejoining {
                tracing::debug!(
                    join_state = %String::from_utf8_lossy(state),
                    "The consumer's group join state changed."
                );
            }
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        // End of partition is how bounded mode learns it is done, not a fault.
        let eof = matches!(
            error,
            RdError::PartitionEOF(_) | RdError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            // Brokers going away and coming back are reported by the caller once per change of
            // state; a line per librdkafka retry would flood the log.
            tracing::debug!("librdkafka: {error}: {reason}");
            *self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let ps = partitions(tpl);
            if let Some(hook) = self.on_revoke.get() {
                hook(&ps, c.assignment_lost());
            }
            self.push(RebalanceEvent::Revoked(ps));
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.assigns.fetch_add(1, Ordering::Release);
            self.push(RebalanceEvent::Assigned(partitions(tpl)));
        }
    }
}

/// The sets behind a `Source` hold plain data, so a panic elsewhere cannot leave them half-written.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The consumer group's `join_state` in librdkafka's statistics JSON (`"cgrp": { ...,
/// "join_state": "steady", ... }`), found by a search: the JSON is tens of kilobytes, read every
/// 100 ms.
pub(super) fn join_state(statistics: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"join_state\":";
    let at = statistics.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = statistics[at..].trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    Some(&rest[..end])
}

/// The generation and member id in librdkafka's serialized group metadata
/// (`"CGMDv2:" <generation: i32, native order> <group id> NUL <member id> NUL ...`), when they
/// name a member: a generation of at least 0 and a member id.
pub(super) fn membership(written: &[u8]) -> Option<(i32, String)> {
    let rest = written.strip_prefix(b"CGMDv2:")?;
    let generation = i32::from_ne_bytes(rest.get(..4)?.try_into().ok()?);
    let mut fields = rest.get(4..)?.split(|b| *b == 0);
    let _group = fields.next()?;
    let member = String::from_utf8(fields.next()?.to_vec()).ok()?;
    (generation >= 0 && !member.is_empty()).then_some((generation, member))
}

pub(super) fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::bindings as rd;

    /// librdkafka's own serialization of a group metadata with `generation` and `member`.
    fn written(generation: i32, member: &str) -> Vec<u8> {
        let group = std::ffi::CString::new("hr-pipeline").unwrap();
        let member = std::ffi::CString::new(member).unwrap();
        // SAFETY: the strings outlive the calls; the metadata and buffer are freed here.
        unsafe {
            let md = rd::rd_kafka_consumer_group_metadata_new_with_genid(
                group.as_ptr(),
                generation,
                member.as_ptr(),
                std::ptr::null(),
            );
            let mut buf: *mut std::ffi::c_void = std::ptr::null_mut();
            let mut size = 0usize;
            let err = rd::rd_kafka_consumer_group_metadata_write(md, &mut buf, &mut size);
            assert!(err.is_null());
            rd::rd_kafka_consumer_group_metadata_destroy(md);
            let bytes = std::slice::from_raw_parts(buf as *const u8, size).to_vec();
            rd::rd_kafka_mem_free(std::ptr::null_mut(), buf);
            bytes
        }
    }

    #[test]
    fn a_member_of_a_generation_is_a_member() {
        assert_eq!(
            membership(&written(7, "rdkafka-5e1f")),
            Some((7, "rdkafka-5e1f".to_owned()))
        );
        assert_eq!(
            membership(&written(0, "m")),
            Some((0, "m".to_owned())),
            "generation 0 is the first generation"
        );
    }

    #[test]
    fn a_consumer_dropped_by_its_group_is_not_a_member() {
        // librdkafka resets both when the coordinator says the member is unknown: the
        // coordinator would accept transactional offsets sent with them, unfenced.
        assert_eq!(membership(&written(-1, "")), None);
        assert_eq!(membership(&written(-1, "rdkafka-5e1f")), None);
        assert_eq!(membership(&written(3, "")), None);
    }

    #[test]
    fn the_join_state_is_found_in_the_statistics() {
        // As librdkafka 2.12 writes it (rdkafka.c), and without the spaces.
        let stats = br#"{"name": "rdkafka#consumer-1", "brokers":{ }, "cgrp": { "state": "up", "stateage": 9001, "join_state": "wait-join", "rebalance_age": 12, "rebalance_cnt": 2, "rebalance_reason": "", "assignment_size": 6 }}"#;
        assert_eq!(
            join_state(br#"{"cgrp":{"join_state":"wait-sync"}}"#),
            Some(&b"wait-sync"[..])
        );
        assert_eq!(join_state(stats), Some(&b"wait-join"[..]));
        let steady = String::from_utf8_lossy(stats).replace("wait-join", "steady");
        assert_eq!(join_state(steady.as_bytes()), Some(&b"steady"[..]));
        assert_eq!(
            join_state(br#"{"name":"rdkafka#producer-1","brokers":{}}"#),
            None
        );
        assert_eq!(join_state(br#"{"cgrp":{"join_state":"stead"#), None);
    }

    #[test]
    fn anything_else_is_not_read_as_a_membership() {
        assert_eq!(membership(b""), None);
        assert_eq!(membership(b"CGMDv1:\x07\x00\x00\x00g\x00m\x00\x01"), None);
        assert_eq!(membership(b"CGMDv2:\x07\x00"), None);
    }
}
