//! `featherflow produce`: send events to Kafka, keyed by `user_id` — the
//! generator that replaces the Flink project's notebooks, or a recorded
//! file.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::app::{GenArgs, ProduceArgs};
use crate::event::{ParserConfig, parse_event};

pub fn produce(args: ProduceArgs) -> anyhow::Result<u64> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &args.brokers)
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4");
    if args.exact {
        // One message per batch: brokers that report the high watermark as
        // the last batch's base offset + 1 (tansu) then report it exactly.
        cc.set("batch.num.messages", "1").set("linger.ms", "0");
    } else {
        cc.set("linger.ms", "5");
    }
    let producer: ThreadedProducer<DefaultProducerContext> = cc.create().context("creating the Kafka producer")?;
    let cfg = ParserConfig::default();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut send = |line: &str| -> anyhow::Result<()> {
        let key = parse_event(line.as_bytes(), &cfg).ok().map(|e| e.user_id.into_owned());
        let mut record = BaseRecord::<str, str>::to(&args.topic).payload(line);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((e, r)) = producer.send(r) {
                if matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ) {
                    std::thread::sleep(Duration::from_millis(5));
                    record = Some(r);
                } else {
                    anyhow::bail!("produce failed: {e}");
                }
            }
        }
        sent += 1;
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if sent.is_multiple_of(100_000) {
            eprintln!(
                "produced {sent} events ({:.0}/s)",
                sent as f64 / started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    };
    match &args.from_file {
        Some(path) => {
            crate::source::file::for_each_line(path, |_, raw| send(&String::from_utf8_lossy(raw))).map_err(
                |e| match e {
                    crate::source::file::FileError::Handler(e) => e,
                    crate::source::file::FileError::Io { path, source } => anyhow::anyhow!("{path}: {source}"),
                },
            )?;
        }
        None => {
            let g = GenArgs {
                events: args.count,
                users: args.users,
                rate: args.event_rate,
                disorder_seconds: args.disorder_seconds,
                seed: args.seed,
                malformed: args.malformed,
                out: String::new(),
            };
            crate::bench::generate_lines(&g, &mut send)?;
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    eprintln!(
        "produced {sent} events to {} in {:.1}s",
        args.topic,
        started.elapsed().as_secs_f64()
    );
    Ok(sent)
}
