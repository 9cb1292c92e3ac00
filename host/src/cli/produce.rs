//! `featherflow produce`: send events to Kafka, keyed by `user_id` — the
//! generator that replaces the Flink project's notebooks, or a recorded
//! file.

use std::time::{Duration, Instant};

use std::sync::Mutex;

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::source::kafka::QuietContext;

use clap::Args;

use super::generate::{GeneratorArgs, START_MS, format_time, generate_lines};
use crate::event::{ParserConfig, parse_event};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    #[arg(long, default_value = "ecommerce-events")]
    pub topic: String,
    /// Send the lines of this file instead of generating events.
    #[arg(long)]
    pub from_file: Option<String>,
    /// What to generate (when neither --from-file nor --scenario is given).
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Events per second of wall time (0 = as fast as possible); what is due
    /// goes out every 10 ms.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop after this long (e.g. 10m), whatever --events says.
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
    /// Also write the events to this file, in the order they were sent (a
    /// tee: the broker is still needed; `featherflow gen` writes a log
    /// without one). Events the broker did not take are removed from the
    /// file when `produce` ends; they are counted, and `produce` then fails
    /// saying how many.
    #[arg(long)]
    pub to_file: Option<String>,
    /// A fixed scenario instead of random events: `sessions` reproduces the
    /// Flink project's notebook checks and prints the Redis keys to look at.
    #[arg(long)]
    pub scenario: Option<String>,
    /// One message per produce batch (exact high watermarks on tansu; slow).
    #[arg(long)]
    pub exact: bool,
}

/// `--rate` sends what is due and sleeps once it is this far ahead: events
/// go out in bursts of `rate / 100`. A sleep per event (50 µs apart at
/// 20 k events/s) woke the thread 20 000 times a second, and every wake-up
/// preempted whatever ran on that core, such as an engine on the same machine.
const PACE_STEP: Duration = Duration::from_millis(10);

pub fn produce(args: ProduceArgs) -> anyhow::Result<u64> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &args.brokers)
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        // A send retried after a lost acknowledgement is not written twice,
        // and retries keep each partition's order: the topic holds each
        // event once, in the order sent (what exactly-once downstream needs).
        .set("enable.idempotence", "true");
    if args.exact {
        // One message per batch: brokers that report the high watermark as
        // the last batch's base offset + 1 (tansu) then report it exactly.
        cc.set("batch.num.messages", "1").set("linger.ms", "0");
    } else {
        cc.set("linger.ms", "5");
    }
    let tee = match &args.to_file {
        Some(p) => Some(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("--to-file {p}"))?,
        ))),
        None => None,
    };
    let producer: ThreadedProducer<ProduceContext> = cc
        .create_with_context(ProduceContext {
            quiet: QuietContext::default(),
            tee,
            failed: Mutex::new(Vec::new()),
        })
        .context("creating the Kafka producer")?;
    // A broker that does not answer is one clear error within 10 s, not a
    // stream of librdkafka errors and a flush timeout a minute later.
    producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("cannot reach the Kafka broker at {} within 10 s ({e}); `featherflow gen` writes events to a file without a broker", args.brokers))?;
    let cfg = ParserConfig::default();
    let started = Instant::now();
    let mut sent = 0u64;
    let deadline = args.duration.map(|d| started + *d);
    let mut last_progress = Instant::now();
    let context_tee = &producer.context().tee;
    let mut send = |line: &str| -> anyhow::Result<()> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop.into());
        }
        let key = parse_event(line.as_bytes(), &cfg).ok().map(|e| e.user_id.into_owned());
        let mut record = BaseRecord::<str, str, usize>::with_opaque_to(&args.topic, sent as usize).payload(line);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((e, r)) = producer.send(r) {
                // Retried below: the line is teed once it is queued.
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
        if let Some(tee) = &context_tee {
            use std::io::Write;
            let mut f = tee.lock().unwrap_or_else(|e| e.into_inner());
            f.write_all(line.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .with_context(|| format!("--to-file {}", args.to_file.as_deref().unwrap_or("")))?;
        }
        sent += 1;
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed())
                && wait >= PACE_STEP
            {
                std::thread::sleep(wait);
            }
        }
        // A progress line with the rate, once a second.
        if sent.is_multiple_of(1024) && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\rproduced {sent} events ({:.0}/s)   ",
                sent as f64 / started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    };
    let result = match (&args.scenario, &args.from_file) {
        (Some(name), _) => {
            let (lines, keys) = scenario(name)?;
            let r = lines.iter().try_for_each(|l| send(l));
            eprintln!(
                "scenario {name}: look at\n{}",
                keys.iter()
                    .map(|k| format!("  redis-cli hgetall {k}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            r
        }
        (None, Some(path)) => crate::source::file::for_each_line(path, |_, raw| send(&String::from_utf8_lossy(raw)))
            .map_err(|e| match e {
                crate::source::file::FileError::Handler(e) => e,
                crate::source::file::FileError::Io { path, error } => anyhow::anyhow!("{path}: {error}"),
            }),
        (None, None) => generate_lines(&args.generator, &mut send).map(|_| ()),
    };
    match result {
        Err(e) if e.is::<Stop>() => eprintln!("\n--duration reached"),
        other => other?,
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("Kafka broker at {}: not every event was delivered", args.brokers))?;
    let context = producer.context();
    let failed = std::mem::take(&mut *context.failed.lock().unwrap_or_else(|e| e.into_inner()));
    if let (Some(tee), Some(path)) = (&context.tee, &args.to_file) {
        use std::io::Write;
        tee.lock().unwrap_or_else(|e| e.into_inner()).flush()?;
        if !failed.is_empty() {
            drop_lines(path, &failed).with_context(|| format!("--to-file {path}"))?;
        }
    }
    let undelivered = failed.len();
    anyhow::ensure!(
        undelivered == 0,
        "{undelivered} of {sent} events were not delivered to {} (the broker refused them or went away; see the log){}",
        args.brokers,
        if args.to_file.is_some() {
            "; --to-file holds the delivered ones"
        } else {
            ""
        }
    );
    eprintln!(
        "produced {sent} events to {} in {:.1}s",
        args.topic,
        started.elapsed().as_secs_f64()
    );
    Ok(sent)
}

/// Removes the lines numbered `drop` (0-based) from the file at `path`.
fn drop_lines(path: &str, drop: &[usize]) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut drop = drop.to_vec();
    drop.sort_unstable();
    let tmp = format!("{path}.tmp");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut next = drop.iter().copied().peekable();
        for (i, line) in std::io::BufReader::new(std::fs::File::open(path)?)
            .split(b'\n')
            .enumerate()
        {
            let line = line?;
            if next.peek() == Some(&i) {
                next.next();
                continue;
            }
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    std::fs::rename(tmp, path)
}

/// The producer's callbacks: librdkafka's errors through a [`QuietContext`];
/// each event the broker did not take recorded by its sequence number.
struct ProduceContext {
    quiet: QuietContext,
    tee: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    failed: Mutex<Vec<usize>>,
}

impl ClientContext for ProduceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.quiet.log(level, fac, log_message)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason)
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        match result {
            Ok(_) => self.quiet.ok(),
            Err((e, _)) => {
                self.failed.lock().unwrap_or_else(|e| e.into_inner()).push(seq);
                self.quiet.error(e.clone(), "delivery failed");
            }
        }
    }
}

/// `--duration` ran out.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("duration reached")
    }
}

impl std::error::Error for Stop {}

/// Fixed scenarios: (lines, Redis keys to look at).
fn scenario(name: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    anyhow::ensure!(name == "sessions", "unknown --scenario {name:?} (known: sessions)");
    // The notebook's checks, at 2024-01-01T10:00 UTC: user 111 has a
    // 5-minute session (3 views, 1 cart, 1 purchase), 222 two views, 333
    // one purchase; user 999 an hour later moves the watermark past every
    // window so that all of them fire.
    let at = |min: i64, sec: i64| START_MS + 10 * 3_600_000 + min * 60_000 + sec * 1000;
    let ev = |t: i64, ty: &str, user: &str, price: f64| {
        let mut s = String::from("{\"event_time\": \"");
        format_time(t, 0, 0, &mut s);
        s.push_str(&format!(
            "\", \"event_type\": \"{ty}\", \"user_id\": \"{user}\", \"price\": {price:?}}}"
        ));
        s
    };
    let lines = vec![
        ev(at(0, 0), "view", "111", 10.0),
        ev(at(1, 0), "view", "111", 20.0),
        ev(at(2, 0), "cart", "111", 20.0),
        ev(at(3, 0), "view", "222", 5.0),
        ev(at(4, 0), "view", "111", 30.0),
        ev(at(4, 30), "view", "222", 7.0),
        ev(at(5, 0), "purchase", "111", 20.0),
        ev(at(5, 0), "purchase", "333", 99.0),
        ev(at(80, 0), "view", "999", 1.0),
    ];
    let keys = vec![
        "user_features:111".to_string(),
        "user_features:222".to_string(),
        "user_features:333".to_string(),
        format!("session_features:111:{}", at(0, 0)),
        format!("session_features:222:{}", at(3, 0)),
    ];
    Ok((lines, keys))
}

#[cfg(test)]
mod tests {
    use super::drop_lines;

    #[test]
    fn the_undelivered_lines_leave_the_tee_and_the_rest_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sent.jsonl");
        std::fs::write(&path, "a\nb\nc\nd\ne\n").unwrap();
        drop_lines(path.to_str().unwrap(), &[3, 0]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\nc\ne\n");
        drop_lines(path.to_str().unwrap(), &[2]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\nc\n");
    }
}
