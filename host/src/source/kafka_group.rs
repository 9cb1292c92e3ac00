//! Kafka partitions owned through a consumer group (`kafka.assignment =
//! "group"`), each read through a source of its own.
//!
//! [`KafkaGroup`] joins the group `kafka.group` (cooperative-sticky) and
//! serves its callbacks. The partitions the group gives this engine arrive
//! paused: the caller restores each one's checkpoint in the background,
//! then its [`PartitionSource`] seeks to the checkpoint's offsets and
//! resumes it. A partition taken away is handed back only once the caller
//! has released it ([`Release`]): drained and checkpointed, or, when the
//! assignment was lost (this engine was out of the group past its session
//! timeout), dropped without writing anything.
//!
//! [`KafkaGroup::fixed`] reads every partition the same way without a group
//! (a bounded run reads them all, alone).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::kafka::{
    MessageQueue, QuietContext, client_config, commit_courtesy, polled, position_passed, wait_for_partitions,
};
use super::{Block, Polled, Source, SourceError};
use crate::config::KafkaConfig;

/// Called inside the rebalance with the partitions taken away and whether
/// the assignment was lost; returns once they are released.
pub type Release = Box<dyn Fn(&[i32], bool) + Send + Sync>;

/// The group's callbacks: librdkafka's errors go to a [`QuietContext`];
/// partitions assigned are paused and reported, partitions revoked are
/// released by the caller before the rebalance goes on.
pub struct GroupContext {
    quiet: QuietContext,
    assigned: Mutex<Sender<Vec<i32>>>,
    release: OnceLock<Release>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.quiet.log(level, fac, log_message)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason)
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    ps.sort();
    ps
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let ps = partitions_of(tpl);
            let lost = consumer.assignment_lost();
            tracing::info!(partitions = ?ps, lost, "partitions revoked by the group");
            if let Some(release) = self.release.get() {
                release(&ps, lost);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ps = partitions_of(tpl);
                if ps.is_empty() {
                    return;
                }
                // Nothing is read before its checkpoint is restored.
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, partitions = ?ps, "cannot pause newly assigned partitions");
                }
                tracing::info!(partitions = ?ps, "partitions assigned by the group");
                let _ = self.assigned.lock().unwrap_or_else(|e| e.into_inner()).send(ps);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "group rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

type GroupConsumer = BaseConsumer<GroupContext>;

/// Membership in the consumer group (or a fixed set of partitions).
pub struct KafkaGroup {
    consumer: Arc<GroupConsumer>,
    topic: String,
    brokers: String,
    assigned: Receiver<Vec<i32>>,
    /// Records the main queue delivered (fetched before their partition's
    /// own queue was split off); dropped, since every partition seeks to
    /// its checkpoint first.
    pub strays: u64,
}

impl KafkaGroup {
    fn create(cfg: &KafkaConfig, group: bool) -> Result<(Self, Sender<Vec<i32>>), SourceError> {
        let mut cc = client_config(cfg);
        if group {
            cc.set("partition.assignment.strategy", "cooperative-sticky");
            if !cfg.instance_id.is_empty() {
                cc.set("group.instance.id", &cfg.instance_id);
            }
            // The user's properties win (session.timeout.ms, ...).
            for (k, v) in &cfg.properties {
                cc.set(k, v);
            }
        }
        let (tx, rx) = channel();
        let context = GroupContext {
            quiet: QuietContext::default(),
            assigned: Mutex::new(tx.clone()),
            release: OnceLock::new(),
        };
        let consumer: GroupConsumer = cc.create_with_context(context).map_err(|e| SourceError::Config {
            source_name: format!("kafka topic {}", cfg.topic),
            reason: e.to_string(),
        })?;
        Ok((
            Self {
                consumer: Arc::new(consumer),
                topic: cfg.topic.clone(),
                brokers: cfg.brokers.clone(),
                assigned: rx,
                strays: 0,
            },
            tx,
        ))
    }

    /// Join the group `kafka.group`; `release` is called inside each
    /// rebalance that takes partitions away.
    pub fn join(cfg: &KafkaConfig, release: Release) -> Result<Self, SourceError> {
        let (group, _) = Self::create(cfg, true)?;
        let _ = group.consumer.context().release.set(release);
        group
            .consumer
            .subscribe(&[&cfg.topic])
            .map_err(|e| group.unavailable(e.to_string()))?;
        tracing::info!(group = %cfg.group, topic = %cfg.topic, instance_id = %cfg.instance_id, "joining the consumer group");
        Ok(group)
    }

    /// Every partition of the topic, without a group: waits (retrying)
    /// until the topic's partitions are known or `give_up` says stop.
    pub fn fixed(cfg: &KafkaConfig, give_up: &dyn Fn() -> bool) -> Result<Self, SourceError> {
        let (group, tx) = Self::create(cfg, false)?;
        let partitions = wait_for_partitions(&group.consumer, cfg, give_up)?;
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(&cfg.topic, p, Offset::Stored)
                .map_err(|e| group.unavailable(e.to_string()))?;
        }
        group
            .consumer
            .assign(&tpl)
            .map_err(|e| group.unavailable(e.to_string()))?;
        group
            .consumer
            .pause(&tpl)
            .map_err(|e| group.unavailable(e.to_string()))?;
        let _ = tx.send(partitions);
        Ok(group)
    }

    /// Serve the group's callbacks for up to `timeout`; returns the
    /// partitions newly assigned (paused), each with its own source.
    pub fn poll(&mut self, timeout: Duration) -> Vec<PartitionSource> {
        match self.consumer.poll(timeout) {
            Some(Ok(_)) => self.strays += 1,
            Some(Err(e)) => self.consumer.context().quiet.error(e, "group consumer"),
            None => {}
        }
        let mut out = Vec::new();
        while let Ok(ps) = self.assigned.try_recv() {
            for p in ps {
                let split = self
                    .consumer
                    .split_partition_queue(&self.topic, p)
                    .and_then(|split| Some((MessageQueue::of_partition(&self.consumer, &self.topic, p)?, split)));
                match split {
                    Some((queue, split)) => out.push(PartitionSource {
                        queue,
                        _split: split,
                        consumer: self.consumer.clone(),
                        topic: self.topic.clone(),
                        brokers: self.brokers.clone(),
                        partition: p,
                        end: None,
                        next: None,
                        last_message: Instant::now(),
                    }),
                    None => tracing::error!(partition = p, "cannot read partition {p} on its own queue"),
                }
            }
        }
        out
    }

    /// The broker is failing now (for health checks).
    pub fn is_failing(&self) -> bool {
        self.consumer.context().quiet.is_failing()
    }

    /// Leave the group (its partitions go to the others at once), after
    /// every partition was released.
    pub fn leave(&self) {
        self.consumer.unsubscribe();
        // Serve the revocation the unsubscribe starts.
        let _ = self.consumer.poll(Duration::from_millis(100));
    }

    fn unavailable(&self, reason: String) -> SourceError {
        SourceError::Unavailable {
            source_name: format!("kafka {}, topic {}", self.brokers, self.topic),
            reason,
        }
    }
}

/// One partition of a [`KafkaGroup`], read on its own queue.
pub struct PartitionSource {
    /// The partition's queue, read in batches; released before `split`
    /// and `consumer`.
    queue: MessageQueue,
    /// Keeps the partition's messages off the consumer's queue (held for
    /// that only).
    _split: PartitionQueue<GroupContext>,
    consumer: Arc<GroupConsumer>,
    topic: String,
    brokers: String,
    pub partition: i32,
    /// Bounded: the end offset found when the partition was sought.
    end: Option<i64>,
    next: Option<i64>,
    last_message: Instant,
}

impl PartitionSource {
    /// Read up to the end offset found at the first seek, then end.
    pub fn bounded(mut self) -> Self {
        self.end = Some(-1);
        self
    }

    fn unavailable(&self, reason: String) -> SourceError {
        SourceError::Unavailable {
            source_name: format!(
                "kafka {}, topic {} partition {}",
                self.brokers, self.topic, self.partition
            ),
            reason,
        }
    }

    fn tpl(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, self.partition);
        tpl
    }

    /// The group's committed offset of this partition, if any.
    fn committed(&self) -> Option<i64> {
        match self.consumer.committed_offsets(self.tpl(), Duration::from_secs(10)) {
            Ok(tpl) => tpl.elements().first().and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            }),
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "cannot read the group's committed offset; starting from the earliest");
                None
            }
        }
    }

    fn at_end(&self) -> bool {
        match self.end {
            Some(end) if end >= 0 => {
                self.last_message.elapsed() >= Duration::from_millis(500)
                    && (self.next.unwrap_or(0) >= end
                        || position_passed(&self.consumer, &self.topic, self.partition, end))
            }
            _ => false,
        }
    }
}

impl Source for PartitionSource {
    fn name(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> Vec<u32> {
        vec![self.partition as u32]
    }

    /// Go to `next` (else the group's committed offset, else the earliest)
    /// and resume the partition.
    fn seek(&mut self, next: &BTreeMap<u32, i64>) -> Result<(), SourceError> {
        let start = match next.get(&(self.partition as u32)) {
            Some(&o) => Some(o),
            None => self.committed(),
        };
        let offset = start.map_or(Offset::Beginning, Offset::Offset);
        if self.end == Some(-1) {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, self.partition, Duration::from_secs(10))
                .map_err(|e| self.unavailable(e.to_string()))?;
            tracing::info!(
                partition = self.partition,
                end = high,
                "bounded run: reading up to this offset"
            );
            self.end = Some(high);
        }
        // A seek right after the assignment can find the partition not yet
        // started: try for a few seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .consumer
                .seek(&self.topic, self.partition, offset, Duration::from_secs(5))
            {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(partition = self.partition, error = %e, "seek failed; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(self.unavailable(format!("seek to {offset:?}: {e}"))),
            }
        }
        self.next = start;
        self.consumer
            .resume(&self.tpl())
            .map_err(|e| self.unavailable(format!("resume: {e}")))?;
        tracing::info!(partition = self.partition, offset = ?offset, "partition resumed");
        Ok(())
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError> {
        if self.at_end() {
            return Ok(Polled::End);
        }
        let next = &mut self.next;
        let Some((records, failed)) = self.queue.hand_over(timeout, f, |_, o| *next = Some(o)) else {
            return Ok(Polled::Quiet);
        };
        if records {
            self.consumer.context().quiet.ok();
            self.last_message = Instant::now();
        }
        polled(failed, |reason| self.unavailable(reason))
    }

    fn is_bounded(&self) -> bool {
        self.end.is_some()
    }

    fn commit(&mut self, next: &[(u32, i64)]) {
        commit_courtesy(&self.consumer, &self.topic, next)
    }

    fn end_offsets(&self) -> BTreeMap<u32, i64> {
        self.consumer
            .fetch_watermarks(&self.topic, self.partition, Duration::from_millis(200))
            .ok()
            .map(|(_, h)| (self.partition as u32, h))
            .into_iter()
            .collect()
    }
}
