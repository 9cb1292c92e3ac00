//! `featherflow gen`: the deterministic event generator (the benchmark's
//! input, and what `produce` sends when no file is given).
//!
//! The generator is deterministic for a seed on every machine: its own
//! SplitMix64, no dependency whose stream could change between versions.
//! Event `i` has base time `start + i / event-rate`; each gets a delay in
//! `[0, disorder)` and lines are written in order of time + delay, so no
//! event is more than `disorder` behind an earlier line.
//!
//! The engine never imports this: it is a tool around it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

use anyhow::Context;
use clap::Args;

/// What to generate: one set of flags, shared by `gen`, `bench` and
/// `produce`.
#[derive(Debug, Args, Clone)]
pub struct GeneratorArgs {
    /// Events to generate.
    #[arg(long, alias = "count", default_value_t = 10_000_000)]
    pub events: u64,
    /// Distinct users (user ids 1..=N).
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Churn: at any point of the log, draw users from a window of this
    /// many consecutive ids that slides from the first id to the last over
    /// the log, so users come, stay a while and never return (default: every
    /// user all along).
    #[arg(long)]
    pub active_users: Option<u64>,
    /// Events per second of event time.
    #[arg(long, default_value_t = 2_000)]
    pub event_rate: u64,
    /// Events are up to this many seconds out of order.
    #[arg(long, default_value_t = 9.0)]
    pub disorder_seconds: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of malformed lines.
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Fraction of events that are out of order (by up to --disorder-seconds).
    #[arg(long, default_value_t = 1.0)]
    pub out_of_order: f64,
    /// Fraction of late events: stamped 30 minutes in the past.
    #[arg(long, default_value_t = 0.0)]
    pub late: f64,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Where the log goes (`-` = stdout).
    #[arg(long, default_value = "-")]
    pub out: String,
}

/// SplitMix64: small, fast, and fixed forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// 2024-01-01T00:00:00Z.
pub const START_MS: i64 = 1_704_067_200_000;

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]` (UTC) for epoch ms; `frac` 0, 3 or 6 digits.
pub fn format_time(ms: i64, micros: i64, frac: u8, out: &mut String) {
    use std::fmt::Write;
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    match frac {
        3 => {
            let _ = write!(out, ".{:03}", ms.rem_euclid(1000));
        }
        6 => {
            let _ = write!(out, ".{:03}{:03}", ms.rem_euclid(1000), micros);
        }
        _ => {}
    }
}

/// Days since 1970-01-01 → (year, month, day); Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Write the generated log to `out` (a path or `-`).
pub fn generate(args: &GeneratorArgs, out: &str) -> anyhow::Result<u64> {
    let out: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        if let Some(dir) = std::path::Path::new(out).parent() {
            std::fs::create_dir_all(dir).ok();
        }
        Box::new(std::fs::File::create(out).with_context(|| format!("--out {out}"))?)
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let n = generate_lines(args, |line| {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

/// Generate the log line by line into `emit`.
pub fn generate_lines(args: &GeneratorArgs, mut emit: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let mut rng = Rng::new(args.seed);
    // A fixed catalog of 10,000 product prices.
    let catalog: Vec<f64> = (0..10_000).map(|_| (rng.below(49_900) + 100) as f64 / 100.0).collect();
    let disorder_ms = (args.disorder_seconds * 1000.0) as i64;
    let mut pending: BinaryHeap<Reverse<(i64, u64, String)>> = BinaryHeap::new();
    let mut line = String::with_capacity(128);
    let mut written = 0u64;
    for i in 0..args.events {
        let base = START_MS + (i as i128 * 1000 / args.event_rate.max(1) as i128) as i64;
        // Sub-millisecond detail for the microsecond format.
        let micros = rng.below(1000) as i64;
        let frac = match rng.below(100) {
            0..25 => 0,
            25..40 => 3,
            _ => 6,
        };
        let t = if frac == 0 { base - base.rem_euclid(1000) } else { base };
        let mut delay = if disorder_ms > 0 {
            rng.below(disorder_ms as u64) as i64
        } else {
            0
        };
        // Extra draws only when asked for, so default logs never change.
        if args.out_of_order < 1.0 && rng.next_f64() >= args.out_of_order {
            delay = 0;
        }
        let stamped = if args.late > 0.0 && rng.next_f64() < args.late {
            t - 1_800_000
        } else {
            t
        };
        let user = match args.active_users {
            Some(active) if active < args.users => {
                let first = (i as u128 * (args.users - active) as u128 / args.events.max(1) as u128) as u64;
                first + rng.below(active) + 1
            }
            _ => rng.below(args.users) + 1,
        };
        let ty = match rng.below(100) {
            0..80 => "view",
            80..95 => "cart",
            _ => "purchase",
        };
        let price = catalog[rng.below(catalog.len() as u64) as usize];
        line.clear();
        if args.malformed > 0.0 && rng.next_f64() < args.malformed {
            line.push_str("{\"event_time\": \"not a time\", \"event_type\": \"view\"}");
        } else {
            line.push_str("{\"event_time\": \"");
            format_time(stamped, micros, frac, &mut line);
            use std::fmt::Write as _;
            let _ = write!(
                line,
                "\", \"event_type\": \"{ty}\", \"user_id\": \"{user}\", \"price\": {price:?}}}"
            );
        }
        pending.push(Reverse((t + delay, i, line.clone())));
        // Every later event is due at or after `base - 999` (whole-second
        // times are truncated), so what is due before that can go out: the
        // file is sorted by due time.
        while let Some(Reverse((due, _, _))) = pending.peek() {
            if *due > base - 1000 {
                break;
            }
            let Reverse((_, _, l)) = pending.pop().expect("peeked");
            emit(&l)?;
            written += 1;
        }
    }
    while let Some(Reverse((_, _, l))) = pending.pop() {
        emit(&l)?;
        written += 1;
    }
    Ok(written)
}

/// `featherflow gen`.
pub fn run(args: &GenArgs) -> anyhow::Result<()> {
    generate(&args.generator, &args.out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let mut s = String::new();
        format_time(START_MS + 5_123, 456, 6, &mut s);
        assert_eq!(s, "2024-01-01T00:00:05.123456");
    }

    #[test]
    fn generator_is_deterministic_and_bounded_in_disorder() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str| {
            let out = dir.path().join(name).display().to_string();
            let args = GeneratorArgs {
                events: 5_000,
                users: 50,
                active_users: None,
                event_rate: 100,
                disorder_seconds: 3.0,
                seed: 7,
                malformed: 0.0,
                out_of_order: 1.0,
                late: 0.0,
            };
            assert_eq!(generate(&args, &out).unwrap(), 5_000);
            std::fs::read_to_string(out).unwrap()
        };
        let a = mk("a.jsonl");
        assert_eq!(a, mk("b.jsonl"));
        let cfg = crate::event::ParserConfig {
            zone_offset_ms: 0,
            max_future_skew_ms: None,
            now_ms: 0,
        };
        let mut max = i64::MIN;
        for line in a.lines() {
            let ev = crate::event::parse_event(line.as_bytes(), &cfg).unwrap();
            assert!(ev.time_ms > max.saturating_sub(3_000), "{line} is more than 3 s behind");
            max = max.max(ev.time_ms);
        }
    }

    #[test]
    fn churning_users_come_and_never_return() {
        let args = GeneratorArgs {
            events: 20_000,
            users: 1_000,
            active_users: Some(100),
            event_rate: 10,
            disorder_seconds: 0.0,
            seed: 3,
            malformed: 0.0,
            out_of_order: 1.0,
            late: 0.0,
        };
        let mut users = Vec::new();
        generate_lines(&args, |line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            users.push(v["user_id"].as_str().unwrap().parse::<u64>()?);
            Ok(())
        })
        .unwrap();
        let tenth = users.len() / 10;
        assert!(
            users[..tenth].iter().all(|&u| u <= 190),
            "the first tenth draws from the first ids"
        );
        assert!(
            users[users.len() - tenth..].iter().all(|&u| u > 800),
            "the last tenth from the last ids"
        );
        let distinct: std::collections::BTreeSet<u64> = users.iter().copied().collect();
        assert!(distinct.len() > 950, "almost every user comes once: {}", distinct.len());
    }
}
