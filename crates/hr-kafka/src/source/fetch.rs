//! Taking records from librdkafka: the batch consume over a queue of the source's own that
//! every partition's queue is forwarded to, the records it hands out (borrowed from librdkafka
//! or owned native messages), and the partition metadata both need.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};

use super::group::lock;
use super::{FETCH_BATCH, RebalanceLog};
use crate::KafkaError;

/// One record as read: where it came from and its bytes, borrowed from librdkafka.
pub struct Record<'a> {
    pub(super) inner: Inner<'a>,
}

pub(super) enum Inner<'a> {
    Native(NativeMessage, std::marker::PhantomData<&'a ()>),
    Borrowed(BorrowedMessage<'a>),
}

impl Record<'_> {
    /// The partition it was read from.
    pub fn partition(&self) -> i32 {
        match &self.inner {
            Inner::Native(m, _) => m.get().partition,
            Inner::Borrowed(m) => m.partition(),
        }
    }
    /// Its offset in the partition.
    pub fn offset(&self) -> i64 {
        match &self.inner {
            Inner::Native(m, _) => m.get().offset,
            Inner::Borrowed(m) => m.offset(),
        }
    }
    /// The Kafka timestamp (create or log-append time) in epoch ms, if any.
    pub fn timestamp_ms(&self) -> Option<i64> {
        match &self.inner {
            Inner::Native(m, _) => m.timestamp_ms(),
            Inner::Borrowed(m) => m.timestamp().to_millis(),
        }
    }
    /// The record key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Native(m, _) => m.key(),
            Inner::Borrowed(m) => m.key(),
        }
    }
    /// The value; an absent value (tombstone) reads as empty.
    pub fn payload(&self) -> &[u8] {
        match &self.inner {
            Inner::Native(m, _) => m.payload(),
            Inner::Borrowed(m) => m.payload().unwrap_or(&[]),
        }
    }
}

/// A message owned from librdkafka's batch consume, destroyed when dropped.
pub(super) struct NativeMessage(std::ptr::NonNull<rd::rd_kafka_message_t>);

// SAFETY: a consumed message is immutable until destroyed, and librdkafka lets any thread
// destroy it; the consumer it came from outlives it (a `Record` borrows the `Source`, and the
// buffer of a `Source` is dropped before its consumer).
unsafe impl Send for NativeMessage {}

impl NativeMessage {
    pub(super) fn get(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: the pointer came non-null from rd_kafka_consume_batch_queue and is valid
        // until `drop` destroys it.
        unsafe { self.0.as_ref() }
    }

    /// `len` bytes at `ptr`, which belong to this message.
    pub(super) fn bytes(&self, ptr: *const std::ffi::c_void, len: usize) -> Option<&[u8]> {
        if ptr.is_null() {
            None
        } else {
            // SAFETY: librdkafka keeps `len` readable bytes at `ptr` until the message is
            // destroyed, and the slice borrows the message.
            Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
        }
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        let m = self.get();
        self.bytes(m.key, m.key_len)
    }

    pub(super) fn payload(&self) -> &[u8] {
        let m = self.get();
        self.bytes(m.payload, m.len).unwrap_or(&[])
    }

    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message; `kind` is valid for writes.
        let ts = unsafe { rd::rd_kafka_message_timestamp(self.0.as_ptr(), &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts != -1)
            .then_some(ts)
    }
}

impl Drop for NativeMessage {
    fn drop(&mut self) {
        // SAFETY: owned, destroyed once.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

/// The queue every partition of the topic is forwarded to, and the records taken from it and
/// not yet handed out.
pub(super) struct FetchQueue {
    pub(super) queue: std::ptr::NonNull<rd::rd_kafka_queue_t>,
    pub(super) batch: Mutex<VecDeque<NativeMessage>>,
    pub(super) topic: std::ffi::CString,
    pub(super) partitions: Vec<i32>,
    /// When the partitions' queues were last forwarded here, and the assignment count then.
    pub(super) forwarded: Mutex<(Instant, u64)>,
}

// SAFETY: librdkafka's queues are thread-safe; the batch is behind a mutex.
unsafe impl Send for FetchQueue {}
// SAFETY: as above.
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    /// Moves the records waiting (at most [`FETCH_BATCH`]) into the batch; when none are
    /// waiting, waits up to `wait` for the first one. The batch call itself never waits:
    /// librdkafka's waits until the batch is full or the timeout passes, which held every
    /// record of a real-time stream back by up to the whole timeout.
    pub(super) fn take(&self, wait: Duration) {
        let mut got: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(FETCH_BATCH);
        if self.take_ready(&mut got) == 0 && !wait.is_zero() {
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: the queue is valid while `self` lives; the message returned (if any) is
            // owned here and destroyed by `NativeMessage`.
            let first = unsafe { rd::rd_kafka_consume_queue(self.queue.as_ptr(), ms) };
            if !first.is_null() {
                got.push(first);
                self.take_ready(&mut got);
            }
        }
        lock(&self.batch).extend(
            got.into_iter()
                .filter_map(std::ptr::NonNull::new)
                .map(NativeMessage),
        );
    }

    /// Appends the records waiting now to `got`, up to its room for [`FETCH_BATCH`]; returns
    /// how many.
    pub(super) fn take_ready(&self, got: &mut Vec<*mut rd::rd_kafka_message_t>) -> usize {
        let room = FETCH_BATCH.saturating_sub(got.len());
        if room == 0 {
            return 0;
        }
        got.reserve(room);
        // SAFETY: the queue is valid while `self` lives; the spare capacity has room for
        // `room` pointers, which librdkafka fills up to the count it returns.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                got.as_mut_ptr().add(got.len()),
                room,
            )
        };
        let Ok(n) = usize::try_from(n) else { return 0 };
        let n = n.min(room);
        // SAFETY: librdkafka wrote `n` <= room pointers after the existing ones.
        unsafe { got.set_len(got.len() + n) };
        n
    }

    pub(super) fn pop(&self) -> Option<NativeMessage> {
        lock(&self.batch).pop_front()
    }

    /// Forwards every partition's queue here. librdkafka drops a partition's forwarding when
    /// it stops fetching it (a revocation), asynchronously, and then leaves an
    /// application-forwarded queue unforwarded when it starts again: the records of a
    /// partition assigned back would wait in its own queue, read by nobody. Records already
    /// waiting there are moved here, in order.
    pub(super) fn forward(&self, rk: *mut rd::rd_kafka_t) {
        for p in &self.partitions {
            // SAFETY: valid handles; the partition's queue reference is released at once (the
            // forwarding holds its own).
            unsafe {
                let pq = rd::rd_kafka_queue_get_partition(rk, self.topic.as_ptr(), *p);
                if !pq.is_null() {
                    rd::rd_kafka_queue_forward(pq, self.queue.as_ptr());
                    rd::rd_kafka_queue_destroy(pq);
                }
            }
        }
    }

    /// Forwards again after an assignment, and every 100 ms in case librdkafka stopped a
    /// partition's fetch after that (its stop and start are asynchronous).
    pub(super) fn keep_forwarded(&self, rk: *mut rd::rd_kafka_t, assigns: u64) {
        let mut last = lock(&self.forwarded);
        if last.1 != assigns || last.0.elapsed() >= Duration::from_millis(100) {
            self.forward(rk);
            *last = (Instant::now(), assigns);
        }
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        lock(&self.batch).clear();
        // SAFETY: created by rd_kafka_queue_new and destroyed once; partition queues still
        // forwarded to it hold their own reference, and a destroyed queue takes no more ops.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// A queue of the source's own with the queue of each of `partitions` of `topic` forwarded to
/// it.
pub(super) fn forward_partitions(
    consumer: &BaseConsumer<RebalanceLog>,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<FetchQueue, KafkaError> {
    let rk = consumer.client().native_ptr();
    let name = std::ffi::CString::new(topic)
        .map_err(|_| KafkaError::Client(RdError::Subscription(topic.to_owned())))?;
    // SAFETY: a valid client handle; the queue is destroyed by `FetchQueue::drop`.
    let queue = std::ptr::NonNull::new(unsafe { rd::rd_kafka_queue_new(rk) })
        .ok_or_else(|| KafkaError::Client(RdError::Subscription("no fetch queue".into())))?;
    let fetch = FetchQueue {
        queue,
        batch: Mutex::new(VecDeque::new()),
        topic: name,
        partitions,
        forwarded: Mutex::new((Instant::now(), 0)),
    };
    fetch.forward(rk);
    Ok(fetch)
}

/// The end offset (high watermark) of each of `partitions`.
pub(super) fn end_offsets(
    consumer: &BaseConsumer<RebalanceLog>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let mut ends = BTreeMap::new();
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        ends.insert(*p, high);
    }
    Ok(ends)
}
