//! Events from a Kafka topic (rdkafka), with partition and offset.
//!
//! The checkpoint owns the offsets: auto-commit is off, partitions are
//! assigned explicitly at the offsets the job starts from, and offsets are
//! committed to the broker only after a durable checkpoint, as a courtesy
//! so that lag shows in Kafka tools.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use smallvec::SmallVec;

use super::{BLOCK, Block, Polled, Source, SourceError};
use crate::config::KafkaConfig;
use crate::outage::Outage;

/// librdkafka's own errors and log lines, routed through an [`Outage`]: a
/// broker that is down makes librdkafka report every reconnect attempt,
/// several a second; the log gets the first, then one line per 10 s with a
/// count, then one when it is back (the next message).
#[derive(Default)]
pub struct QuietContext {
    outage: Mutex<Option<Outage>>,
}

impl QuietContext {
    fn failed(&self, what: &dyn std::fmt::Display) {
        let mut o = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        o.get_or_insert_with(|| Outage::new("kafka")).failed(what);
    }

    /// A message or metadata came through: an outage, if any, has ended.
    pub fn ok(&self) {
        if let Ok(mut o) = self.outage.try_lock()
            && let Some(o) = o.as_mut()
        {
            o.ok();
        }
    }

    /// Failing now (for health checks).
    pub fn is_failing(&self) -> bool {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(Outage::is_failing)
    }
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                self.failed(&format_args!("librdkafka {fac}: {log_message}"))
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.failed(&format_args!("{error}: {reason}"));
    }
}

impl ConsumerContext for QuietContext {}

/// The consumer's settings: offsets are the checkpoint's (no auto commit),
/// then `kafka.properties` over them.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("reconnect.backoff.max.ms", "2000");
    for (k, v) in &cfg.properties {
        cc.set(k, v);
    }
    cc
}

/// Wait (retrying, the wait logged as an outage) until `cfg.topic`'s
/// partitions are known, or `give_up` says stop; sorted.
pub(super) fn wait_for_partitions<C: ClientContext + ConsumerContext>(
    consumer: &BaseConsumer<C>,
    cfg: &KafkaConfig,
    give_up: &dyn Fn() -> bool,
) -> Result<Vec<i32>, SourceError> {
    let mut waiting = Outage::new("kafka metadata");
    loop {
        match consumer.fetch_metadata(Some(&cfg.topic), Duration::from_secs(5)) {
            Ok(md) => {
                let mut partitions: Vec<i32> = md
                    .topics()
                    .iter()
                    .filter(|t| t.name() == cfg.topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if !partitions.is_empty() {
                    waiting.ok();
                    partitions.sort();
                    return Ok(partitions);
                }
                waiting.failed(&format_args!(
                    "topic {} not found (yet) on {}; waiting for it",
                    cfg.topic, cfg.brokers
                ));
            }
            Err(e) => {
                waiting.failed(&format_args!("{} unreachable: {e}", cfg.brokers));
            }
        }
        if give_up() {
            return Err(SourceError::Unavailable {
                source_name: format!("kafka {}, topic {}", cfg.brokers, cfg.topic),
                reason: "stopped while waiting for the topic's metadata".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A counted reference to one of librdkafka's message queues, read in
/// batches (`rd_kafka_consume_batch_queue`): one lock, clock read and
/// poll-interval bookkeeping per batch. Polling message by message paid
/// them for every message, about 6 % of `run`'s CPU.
///
/// Only for queues on which nothing arrives that librdkafka cannot hand
/// over as a message: messages, consumer errors, and events it serves
/// itself (logs, errors). A rebalance or an auto-commit reply would stop
/// it; so it reads a consumer's own queue only under an explicit
/// assignment with auto-commit off (`kafka.properties` may not turn it
/// on), and a group's partitions on their split-off queues.
///
/// Declare it before the consumer it belongs to, so that it is released
/// first.
pub(super) struct MessageQueue(std::ptr::NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: a librdkafka queue is locked inside; the handle is a counted
// reference that may be used and released from any thread.
unsafe impl Send for MessageQueue {}

impl MessageQueue {
    /// The consumer's own queue (see above for when it may be read).
    pub(super) fn of_consumer<C: ClientContext + ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Self> {
        // SAFETY: a live client; the call returns a new reference or null.
        let q = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        std::ptr::NonNull::new(q).map(Self)
    }

    /// A partition's own queue, once `split_partition_queue` has taken it
    /// off the consumer's.
    pub(super) fn of_partition<C: ClientContext + ConsumerContext>(
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> Option<Self> {
        let topic = std::ffi::CString::new(topic).ok()?;
        // SAFETY: a live client and a NUL-terminated topic name; returns a
        // new reference or null.
        let q =
            unsafe { rdsys::rd_kafka_queue_get_partition(consumer.client().native_ptr(), topic.as_ptr(), partition) };
        std::ptr::NonNull::new(q).map(Self)
    }

    /// The messages already waiting, up to a block; when there are none,
    /// the first to arrive within `timeout` and what came with it.
    /// (`rd_kafka_consume_batch_queue` waits out its timeout unless the
    /// batch is full, so it only ever waits for one message.)
    fn take(&self, timeout: Duration) -> Taken {
        let mut t = Taken {
            messages: [std::ptr::null_mut(); BLOCK],
            n: 0,
        };
        t.n = self.consume(0, &mut t.messages);
        if t.n == 0 && !timeout.is_zero() {
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
            t.n = self.consume(ms, &mut t.messages[..1]);
            if t.n == 1 {
                t.n += self.consume(0, &mut t.messages[1..]);
            }
        }
        t
    }

    /// [`MessageQueue::take`], then hand the records over partition by
    /// partition (each partition's run of them as one block), telling
    /// `next` each partition's next offset. `None` when nothing came;
    /// else whether any record came, and the error that came with them.
    pub(super) fn hand_over(
        &self,
        timeout: Duration,
        f: &mut dyn FnMut(u32, &Block<'_>),
        mut next: impl FnMut(i32, i64),
    ) -> Option<(bool, Option<String>)> {
        let taken = self.take(timeout);
        if taken.is_empty() {
            return None;
        }
        let (records, failed) = taken.records();
        for run in records.chunk_by(|a, b| a.0 == b.0) {
            let lines: SmallVec<[(u64, &[u8]); BLOCK]> = run.iter().map(|&(_, o, b)| (o, b)).collect();
            f(run[0].0 as u32, &lines);
            next(run[0].0, run[run.len() - 1].1 as i64 + 1);
        }
        Some((!records.is_empty(), failed))
    }

    fn consume(&self, timeout_ms: i32, into: &mut [*mut rdsys::rd_kafka_message_t]) -> usize {
        // SAFETY: a live queue; librdkafka writes at most `into.len()`
        // message pointers, each ours until destroyed (by `Taken`).
        let n =
            unsafe { rdsys::rd_kafka_consume_batch_queue(self.0.as_ptr(), timeout_ms, into.as_mut_ptr(), into.len()) };
        n.clamp(0, into.len() as isize) as usize
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // SAFETY: our own reference, released once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// Messages taken off a [`MessageQueue`], handed back to librdkafka (their
/// payloads released) when dropped.
struct Taken {
    messages: [*mut rdsys::rd_kafka_message_t; BLOCK],
    n: usize,
}

/// A message's partition, offset and payload.
type Record<'a> = (i32, u64, &'a [u8]);

impl Taken {
    fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The records in the order taken, and the reason of the first error
    /// among the messages, if any. An error does not end the batch: the
    /// records after it are handed over too (they are the partitions'
    /// next messages either way).
    fn records(&self) -> (SmallVec<[Record<'_>; BLOCK]>, Option<String>) {
        let mut records = SmallVec::new();
        let mut failed = None;
        for &m in &self.messages[..self.n] {
            // SAFETY: a message librdkafka handed over and `self` has not
            // destroyed yet; its payload lives as long as it does.
            let msg = unsafe { &*m };
            let payload = if msg.payload.is_null() {
                &[][..]
            } else {
                // SAFETY: `len` bytes at `payload`, alive with the message.
                unsafe { std::slice::from_raw_parts(msg.payload as *const u8, msg.len) }
            };
            if msg.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // An error's payload, if any, is its description.
                if failed.is_none() {
                    let code = rdkafka::error::RDKafkaErrorCode::from(msg.err);
                    failed = Some(match payload {
                        [] => code.to_string(),
                        why => format!("{code}: {}", String::from_utf8_lossy(why)),
                    });
                }
                continue;
            }
            records.push((msg.partition, msg.offset as u64, payload));
        }
        (records, failed)
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        for &m in &self.messages[..self.n] {
            // SAFETY: each message is ours and destroyed once.
            unsafe { rdsys::rd_kafka_message_destroy(m) }
        }
    }
}

/// The outcome of a poll that took messages: records, then the error
/// that came with them, if any.
pub(super) fn polled(
    failed: Option<String>,
    unavailable: impl FnOnce(String) -> SourceError,
) -> Result<Polled, SourceError> {
    match failed {
        Some(reason) => Err(unavailable(reason)),
        None => Ok(Polled::Records),
    }
}

/// Whether the consumer's position in `partition` has reached `end`.
/// Some offsets carry no message (a transactional producer's commit and
/// abort markers, aborted messages) and are never delivered, so the last
/// message's offset + 1 can stay below the end; the position, which
/// librdkafka moves past them once everything before is handed over, does
/// not. Without this a bounded run over such a topic never ended.
pub(super) fn position_passed<C: ClientContext + ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    end: i64,
) -> bool {
    consumer.position().is_ok_and(|position| {
        position
            .find_partition(topic, partition)
            .is_some_and(|tp| matches!(tp.offset(), Offset::Offset(o) if o >= end))
    })
}

/// Commit `offsets` to the group, asynchronously (a courtesy for lag tools:
/// the checkpoint is what the engine trusts).
pub(super) fn commit_courtesy<C: ClientContext + ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &[(u32, i64)],
) {
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        let _ = tpl.add_partition_offset(topic, p as i32, Offset::Offset(o));
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "offset commit (courtesy) failed");
    }
}

pub struct KafkaSource {
    /// The consumer's queue, read in batches; before `consumer`, so that
    /// it is released first.
    queue: MessageQueue,
    consumer: BaseConsumer<QuietContext>,
    pub topic: String,
    brokers: String,
    pub partitions: Vec<i32>,
    /// Bounded reading: the end offsets found at the start; the source
    /// ends when every partition is read up to them.
    end: Option<BTreeMap<i32, i64>>,
    /// Next offset per partition, as handed over.
    next: BTreeMap<i32, i64>,
    last_message: Instant,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Offset(i64),
    Earliest,
}

impl KafkaSource {
    /// Create the consumer and wait (retrying) until the topic's partitions
    /// are known or `give_up` says stop.
    pub fn connect(cfg: &KafkaConfig, give_up: &dyn Fn() -> bool) -> Result<Self, SourceError> {
        let consumer: BaseConsumer<QuietContext> = client_config(cfg)
            .create_with_context(QuietContext::default())
            .map_err(|e| SourceError::Config {
                source_name: format!("kafka topic {}", cfg.topic),
                reason: e.to_string(),
            })?;
        let partitions = wait_for_partitions(&consumer, cfg, give_up)?;
        let queue = MessageQueue::of_consumer(&consumer).ok_or_else(|| SourceError::Config {
            source_name: format!("kafka topic {}", cfg.topic),
            reason: "librdkafka gave no consumer queue".into(),
        })?;
        Ok(Self {
            queue,
            consumer,
            topic: cfg.topic.clone(),
            brokers: cfg.brokers.clone(),
            partitions,
            end: None,
            next: BTreeMap::new(),
            last_message: Instant::now(),
        })
    }

    /// The group's committed offsets, where it has any.
    pub fn committed(&self) -> BTreeMap<i32, i64> {
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        match self.consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the group's committed offsets; starting from the earliest");
                BTreeMap::new()
            }
        }
    }

    /// Assign every partition at its start position.
    pub fn assign(&self, start: &BTreeMap<i32, StartAt>) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            let offset = match start.get(&p).copied().unwrap_or(StartAt::Earliest) {
                StartAt::Offset(o) => Offset::Offset(o),
                StartAt::Earliest => Offset::Beginning,
            };
            tpl.add_partition_offset(&self.topic, p, offset)
                .map_err(|e| SourceError::Config {
                    source_name: self.describe(),
                    reason: e.to_string(),
                })?;
        }
        self.consumer.assign(&tpl).map_err(|e| self.unavailable(e.to_string()))
    }

    /// The next offset to be written, per partition.
    pub fn end_offsets_now(&self) -> Result<BTreeMap<i32, i64>, SourceError> {
        let mut out = BTreeMap::new();
        for &p in &self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .map_err(|e| self.unavailable(format!("partition {p}: {e}")))?;
            out.insert(p, high);
        }
        Ok(out)
    }

    /// End offsets with a short timeout; partitions that do not answer are
    /// left out (for lag metrics, never for correctness).
    pub fn end_offsets_quick(&self, timeout: Duration) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .filter_map(|&p| {
                self.consumer
                    .fetch_watermarks(&self.topic, p, timeout)
                    .ok()
                    .map(|(_, h)| (p, h))
            })
            .collect()
    }

    /// Commit offsets after a durable checkpoint (a courtesy for lag tools).
    pub fn commit_offsets(&self, offsets: &[(u32, i64)]) {
        commit_courtesy(&self.consumer, &self.topic, offsets)
    }

    fn unavailable(&self, reason: String) -> SourceError {
        SourceError::Unavailable {
            source_name: self.describe(),
            reason,
        }
    }

    fn describe(&self) -> String {
        format!("kafka {}, topic {}", self.brokers, self.topic)
    }

    /// Read up to the end offsets found now, then end (Flink's bounded
    /// Kafka source): for tests and backfills.
    pub fn bounded(mut self) -> Result<Self, SourceError> {
        let end = self.end_offsets_now()?;
        tracing::info!(end = ?end, "bounded run: reading up to these offsets");
        self.end = Some(end);
        Ok(self)
    }

    /// Bounded and read to the end: every partition at its end offset, and
    /// the topic quiet for a moment (some brokers, tansu among them, report
    /// the high watermark of a batched produce short).
    fn at_end(&self) -> bool {
        let Some(end) = &self.end else { return false };
        if self.last_message.elapsed() < Duration::from_millis(500) {
            return false;
        }
        end.iter().all(|(&p, &e)| {
            self.next.get(&p).copied().unwrap_or(0) >= e || position_passed(&self.consumer, &self.topic, p, e)
        })
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> Vec<u32> {
        self.partitions.iter().map(|&p| p as u32).collect()
    }

    /// Assign every partition: at `next` where given, else at the group's
    /// committed offset, else the earliest.
    fn seek(&mut self, next: &BTreeMap<u32, i64>) -> Result<(), SourceError> {
        let mut start: BTreeMap<i32, StartAt> = BTreeMap::new();
        if next.is_empty() {
            let committed = self.committed();
            tracing::info!(committed = ?committed, "no checkpoint; starting from the group's committed offsets, else the earliest");
            for (p, o) in committed {
                start.insert(p, StartAt::Offset(o));
                self.next.insert(p, o);
            }
        }
        for (&p, &o) in next {
            start.insert(p as i32, StartAt::Offset(o));
            self.next.insert(p as i32, o);
        }
        self.assign(&start)
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError> {
        if self.at_end() {
            return Ok(Polled::End);
        }
        let next = &mut self.next;
        let Some((records, failed)) = self.queue.hand_over(timeout, f, |p, o| {
            next.insert(p, o);
        }) else {
            return Ok(Polled::Quiet);
        };
        if records {
            self.consumer.context().ok();
            self.last_message = Instant::now();
        }
        polled(failed, |reason| self.unavailable(reason))
    }

    fn is_bounded(&self) -> bool {
        self.end.is_some()
    }

    fn commit(&mut self, next: &[(u32, i64)]) {
        self.commit_offsets(next)
    }

    fn end_offsets(&self) -> BTreeMap<u32, i64> {
        self.end_offsets_quick(Duration::from_millis(200))
            .into_iter()
            .map(|(p, o)| (p as u32, o))
            .collect()
    }
}
