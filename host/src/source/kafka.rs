//! Events from a Kafka topic (rdkafka), with partition and offset.
//!
//! The checkpoint owns the offsets: auto-commit is off, partitions are
//! assigned explicitly at the offsets the job starts from, and offsets are
//! committed to the broker only after a durable checkpoint, as a courtesy
//! so that lag shows in Kafka tools.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Bad settings: retrying cannot help.
    #[error("kafka: invalid configuration: {0}")]
    Config(String),
    /// The broker did not answer (in time); retrying can help.
    #[error("kafka {brokers}, topic {topic}: {reason}")]
    Unavailable {
        brokers: String,
        topic: String,
        reason: String,
    },
}

pub struct KafkaSource {
    consumer: BaseConsumer,
    pub topic: String,
    brokers: String,
    pub partitions: Vec<i32>,
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
        let consumer: BaseConsumer = cc.create().map_err(|e| SourceError::Config(e.to_string()))?;
        let mut attempt = 0u32;
        loop {
            match consumer.fetch_metadata(Some(&cfg.topic), Duration::from_secs(5)) {
                Ok(md) => {
                    let parts: Vec<i32> = md
                        .topics()
                        .iter()
                        .filter(|t| t.name() == cfg.topic && t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect();
                    if !parts.is_empty() {
                        let mut partitions = parts;
                        partitions.sort();
                        return Ok(Self {
                            consumer,
                            topic: cfg.topic.clone(),
                            brokers: cfg.brokers.clone(),
                            partitions,
                        });
                    }
                    if attempt.is_multiple_of(10) {
                        tracing::warn!(topic = %cfg.topic, brokers = %cfg.brokers, "topic not found (yet); waiting for it");
                    }
                }
                Err(e) => {
                    if attempt.is_multiple_of(10) {
                        tracing::warn!(brokers = %cfg.brokers, error = %e, "Kafka unreachable; retrying");
                    }
                }
            }
            if give_up() {
                return Err(SourceError::Unavailable {
                    brokers: cfg.brokers.clone(),
                    topic: cfg.topic.clone(),
                    reason: "stopped while waiting for the topic's metadata".into(),
                });
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
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
                .map_err(|e| SourceError::Config(e.to_string()))?;
        }
        self.consumer.assign(&tpl).map_err(|e| self.unavailable(e.to_string()))
    }

    /// The next offset to be written, per partition.
    pub fn end_offsets(&self) -> Result<BTreeMap<i32, i64>, SourceError> {
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

    #[inline]
    pub fn poll(&self, timeout: Duration) -> Option<rdkafka::error::KafkaResult<BorrowedMessage<'_>>> {
        self.consumer.poll(timeout)
    }

    /// Commit offsets after a durable checkpoint (a courtesy for lag tools).
    pub fn commit(&self, offsets: &[(u32, i64)]) {
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            let _ = tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(o));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "offset commit (courtesy) failed");
        }
    }

    fn unavailable(&self, reason: String) -> SourceError {
        SourceError::Unavailable {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            reason,
        }
    }
}
