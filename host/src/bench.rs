//! The event generator and the replay benchmark.
//!
//! The generator is deterministic for a seed on every machine: its own
//! SplitMix64, no dependency whose stream could change between versions.
//! Event `i` has base time `start + i / rate`; each gets a delay in
//! `[0, disorder)` and lines are written in order of time + delay, so no
//! event is more than `disorder` behind an earlier line (the same scheme as
//! `../shared/flink-anchor/gen_events.py`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;

use crate::app::{BenchArgs, GenArgs, SharedCounting};
use crate::sink::CountingSink;

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
pub fn generate(args: &GenArgs) -> anyhow::Result<u64> {
    let out: Box<dyn Write> = if args.out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        if let Some(dir) = std::path::Path::new(&args.out).parent() {
            std::fs::create_dir_all(dir).ok();
        }
        Box::new(std::fs::File::create(&args.out).with_context(|| format!("--out {}", args.out))?)
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
pub fn generate_lines(args: &GenArgs, mut emit: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let mut rng = Rng::new(args.seed);
    // A fixed catalog of 10,000 product prices.
    let catalog: Vec<f64> = (0..10_000).map(|_| (rng.below(49_900) + 100) as f64 / 100.0).collect();
    let disorder_ms = (args.disorder_seconds * 1000.0) as i64;
    let mut pending: BinaryHeap<Reverse<(i64, u64, String)>> = BinaryHeap::new();
    let mut line = String::with_capacity(128);
    let mut written = 0u64;
    for i in 0..args.events {
        let base = START_MS + (i as i128 * 1000 / args.rate.max(1) as i128) as i64;
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
        let user = rng.below(args.users) + 1;
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

/// Peak resident set size of this process, from /proc (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `featherflow bench`: generate (or reuse) the log, replay it through the
/// plugins into a counting sink, print the figures.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let g = &args.gen_args;
    std::fs::create_dir_all(&args.dir)?;
    let path = args.dir.join(format!(
        "events-{}-{}u-{}r-{}d-s{}.jsonl",
        g.events, g.users, g.rate, g.disorder_seconds, g.seed
    ));
    if !path.exists() {
        let tmp = path.with_extension("partial");
        let started = Instant::now();
        let mut ga = g.clone();
        ga.out = tmp.display().to_string();
        let n = generate(&ga)?;
        std::fs::rename(&tmp, &path)?;
        eprintln!(
            "generated {n} events into {} in {:.1}s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut config = crate::config::Config::load(None)?;
    config.engine.batch_size = args.batch_size;
    config.output.dead_letter = String::new();
    let plugin_engine = crate::plugin::PluginEngine::new()?;
    let plugins = crate::app::load_plugin_dir(&plugin_engine, &args.plugins, crate::app::limits(&config))?;
    anyhow::ensure!(!plugins.is_empty(), "no plugins in {}", args.plugins.display());
    if args.checkpoints {
        return checkpoints(&config, &plugins, &path, &args.dir);
    }
    let rss_before = peak_rss_bytes().unwrap_or(0);
    // The VM this was tuned on runs the same binary up to ±25 % apart from
    // one minute to the next: several runs, each printed, and their median.
    let mut rates = Vec::with_capacity(args.repeat as usize);
    let mut checksums = Vec::with_capacity(args.repeat as usize);
    for run in 1..=args.repeat {
        let counts = Arc::new(Mutex::new(CountingSink::default()));
        let started = Instant::now();
        let engine = crate::app::replay_file(
            &config,
            &plugins,
            &path.display().to_string(),
            Box::new(SharedCounting(counts.clone())),
        )?;
        let secs = started.elapsed().as_secs_f64();
        let c = counts.lock().unwrap_or_else(|e| e.into_inner());
        let s = &engine.stats;
        let rate = s.records_read as f64 / secs;
        rates.push(rate);
        checksums.push(c.checksum);
        if run == 1 {
            print_run_header(&path, s.records_read, &plugins, args.batch_size);
        }
        println!("run {run} of {}", args.repeat);
        println!("  elapsed:      {secs:.2} s");
        println!("  throughput:   {rate:.0} events/s");
        println!(
            "  peak RSS:     {:.1} MiB (before replay: {:.1} MiB)",
            peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0,
            rss_before as f64 / 1048576.0
        );
        println!(
            "  windows:      {} ({})",
            c.records,
            c.per_view
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  bad / late:   {} / {}",
            s.bad_records,
            engine.views().iter().map(|v| v.stats.late).sum::<u64>()
        );
        let mut plugin_nanos = 0;
        for v in engine.views() {
            let st = &v.stats;
            plugin_nanos += st.plugin_nanos;
            println!(
                "  view {:<18} plugin calls {:>7}  time in plugin {:>6.2} s ({:>4.1} %)  {:.1} ns/event",
                v.name(),
                st.plugin_calls,
                st.plugin_nanos as f64 / 1e9,
                st.plugin_nanos as f64 / 1e9 / secs * 100.0,
                st.plugin_nanos as f64 / st.events.max(1) as f64
            );
        }
        let records = s.records_read.max(1) as f64;
        println!(
            "  per event:    {:.0} ns: {:.0} in plugin calls (with unpacking their output), {:.0} elsewhere (parse, windows, packing, sink)",
            secs * 1e9 / records,
            plugin_nanos as f64 / records,
            (secs * 1e9 - plugin_nanos as f64) / records
        );
        println!("  checksum:     {:016x}", c.checksum);
    }
    anyhow::ensure!(
        checksums.windows(2).all(|w| w[0] == w[1]),
        "runs of the same log gave different checksums: {checksums:016x?}"
    );
    if args.repeat > 1 {
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "median of {}: {:.0} events/s (slowest {:.0}, fastest {:.0}); peak RSS {:.1} MiB",
            args.repeat,
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1],
            peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run_header(path: &std::path::Path, records: u64, plugins: &[Arc<crate::plugin::Plugin>], batch_size: usize) {
    println!("featherflow replay benchmark");
    println!("  input:        {} ({records} records)", path.display());
    println!(
        "  plugins:      {}",
        plugins.iter().map(|p| p.label()).collect::<Vec<_>>().join(", ")
    );
    println!("  batch size:   {batch_size}");
}

/// `featherflow bench --checkpoints`: what a checkpoint of a large state
/// costs. Replays the first 90 % of the log (no end: every window stays
/// open), then checkpoints as `run` does — capture on the event loop,
/// encode and write to sled on a thread — while the last 10 % is replayed,
/// and reports the pause, the encode and write times, and the replay rate
/// during the checkpoint. Then restores the checkpoint into a new engine.
fn checkpoints(
    config: &crate::config::Config,
    plugins: &[Arc<crate::plugin::Plugin>],
    path: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use crate::engine::{Engine, Position};
    use crate::state::{CheckpointMeta, CheckpointStore, SledStore};

    let new_engine = || -> anyhow::Result<Engine> {
        let mut engine = Engine::new(crate::app::engine_config(config), Box::new(CountingSink::default()));
        for p in plugins {
            engine.add_view(p.clone())?;
        }
        Ok(engine)
    };
    let mut engine = new_engine()?;
    let file = path.display().to_string();
    let total = std::fs::read(path)?.iter().filter(|&&b| b == b'\n').count() as u64;
    let cut = total * 9 / 10;
    // Replay lines `from..` while `go()` says so; returns how many.
    let replay = |engine: &mut Engine, from: u64, go: &dyn Fn(u64) -> bool| -> anyhow::Result<u64> {
        let mut n = 0u64;
        crate::source::file::for_each_line(&file, |line, raw| {
            if line < from || !go(line) {
                return Ok(());
            }
            n += 1;
            engine.process_record(
                Position {
                    partition: 0,
                    offset: line,
                },
                raw,
                0,
            )
        })?;
        Ok(n)
    };
    let started = Instant::now();
    replay(&mut engine, 0, &|line| line < cut)?;
    let before_rate = cut as f64 / started.elapsed().as_secs_f64();

    let store_dir = dir.join("checkpoint-bench");
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = Arc::new(SledStore::open(&store_dir.display().to_string())?);
    let started = Instant::now();
    let capture = engine.capture()?;
    let pause = started.elapsed();
    let open_states: u64 = engine.views().iter().map(|v| v.open_states() as u64).sum();
    let keys = engine.views().iter().map(|v| v.open_keys()).max().unwrap_or(0);
    let mut meta = capture.meta(1, "bench", vec![(0, cut as i64)], open_states);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || -> anyhow::Result<(CheckpointMeta, f64, f64)> {
            let t = Instant::now();
            crate::job::put_capture(store.as_ref(), &capture, &mut meta)?;
            let encode = t.elapsed().as_secs_f64();
            let t = Instant::now();
            store.commit(&meta)?;
            Ok((meta, encode, t.elapsed().as_secs_f64()))
        })
    };
    // The event loop goes on while the checkpoint is written.
    let during = Instant::now();
    let replayed_during = replay(&mut engine, cut, &|_| !writer.is_finished())?;
    let during_secs = during.elapsed().as_secs_f64();
    let (meta, encode, write) = writer.join().expect("checkpoint thread")?;
    let duration = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (_, snap) = crate::job::load_checkpoint(store.as_ref(), 1)?;
    let mut restored = new_engine()?;
    restored.restore(&snap, 0)?;
    let restore = started.elapsed().as_secs_f64();
    let restored_states: u64 = restored.views().iter().map(|v| v.open_states() as u64).sum();
    anyhow::ensure!(
        restored_states == open_states,
        "restored {restored_states} open states, the checkpoint had {open_states}"
    );

    println!("featherflow checkpoint benchmark");
    println!(
        "  input:          {} (first {cut} of {total} records, no end)",
        path.display()
    );
    println!("  state:          {keys} open keys, {open_states} open window parts");
    println!("  replay rate:    {before_rate:.0} events/s before the checkpoint");
    println!(
        "  pause:          {:.2} ms (event loop: flush + copy-on-write capture)",
        pause.as_secs_f64() * 1000.0
    );
    println!(
        "  encode + put:   {:.0} ms (checkpoint thread; each chunk into sled as it is made)",
        encode * 1000.0
    );
    println!(
        "  sled commit:    {:.0} ms ({:.1} MiB, {} chunks, flushed)",
        write * 1000.0,
        meta.size_bytes as f64 / 1048576.0,
        meta.chunks.len()
    );
    println!("  duration:       {:.0} ms (capture to durable)", duration * 1000.0);
    println!(
        "  during it:      {replayed_during} events replayed in {:.0} ms ({:.0} events/s)",
        during_secs * 1000.0,
        replayed_during as f64 / during_secs.max(1e-9)
    );
    println!(
        "  restore:        {:.0} ms (read, decode, {restored_states} parts back)",
        restore * 1000.0
    );
    println!(
        "  peak RSS:       {:.1} MiB",
        peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
    );
    let _ = std::fs::remove_dir_all(&store_dir);
    Ok(ExitCode::SUCCESS)
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
            let args = GenArgs {
                events: 5_000,
                users: 50,
                rate: 100,
                disorder_seconds: 3.0,
                seed: 7,
                malformed: 0.0,
                out_of_order: 1.0,
                late: 0.0,
                out: out.clone(),
            };
            assert_eq!(generate(&args).unwrap(), 5_000);
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
}
