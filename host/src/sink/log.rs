//! JSON-lines logs of records the engine could not turn into features: bad
//! records (the dead-letter output), late events, and events of a batch a
//! plugin failed on. Nothing is dropped silently: it is counted and lands
//! here.
//!
//! A log rotates by size ([`LogLimits`]): before the current file would pass
//! `max_bytes`, `x.jsonl` becomes `x.jsonl.1` (`.1` becomes `.2`, and so on;
//! the oldest beyond `max_files` is deleted), so a storm of bad records
//! cannot fill the disk. A write that fails (disk full) never stops the
//! engine: its records are dropped and counted ([`RecordLog::stats`]), and
//! the failure is logged when it starts, at most once per [`REPORT_EVERY`]
//! while it lasts, and when writes succeed again.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::write_json_str;
use crate::config::LogLimits;

/// Bytes gathered before one write to the file: a storm costs one system
/// call per this many bytes, not one per line.
const BUF_BYTES: usize = 64 * 1024;
/// After a rotation failed, lines are dropped without touching the disk
/// for this long before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// While writes fail, at most one log line this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// An append-only JSON-lines log; cheap to clone, shared between stages.
/// A `std` mutex: writes are short and never held across an await.
#[derive(Clone)]
pub struct RecordLog {
    inner: Option<Arc<Mutex<LogInner>>>,
}

/// What a log did since it was opened (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Lines in the file (or on stderr); buffered lines count once written
    /// out (at the latest by [`RecordLog::flush`]).
    pub lines_written: u64,
    /// Lines lost to a failed write or rotation.
    pub lines_dropped: u64,
    pub rotations: u64,
    /// Failed writes and rotations, one each however many lines they cost.
    pub write_errors: u64,
}

struct LogInner {
    out: Output,
    acct: Accounts,
}

enum Output {
    /// `-`: never rotates, written line by line.
    Stderr,
    File(FileLog),
}

impl RecordLog {
    /// A log that keeps nothing (records are still counted by the caller).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Append to the file at `path` (`-` = stderr), never rotating it.
    pub fn open(path: &str) -> io::Result<Self> {
        Self::open_with(path, LogLimits::UNLIMITED)
    }

    /// Append to the file at `path` (`-` = stderr, which never rotates),
    /// rotating it by `limits`. A file there already counts towards them.
    pub fn open_with(path: &str, limits: LogLimits) -> io::Result<Self> {
        let out = if path == "-" {
            Output::Stderr
        } else {
            Output::File(FileLog::open(Path::new(path), limits)?)
        };
        Ok(Self {
            inner: Some(Arc::new(Mutex::new(LogInner {
                out,
                acct: Accounts {
                    path: path.to_string(),
                    stats: LogStats::default(),
                    trouble: Trouble::default(),
                },
            }))),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Append one entry: `{"reason", "source", "position", <extra fields>, "raw"}`.
    /// `raw` is kept as text (lossily decoded if it is not UTF-8). Never
    /// fails: an entry that cannot be written is counted as dropped.
    pub fn write(&self, reason: &str, source: &str, position: u64, extra: &[(&str, &str)], raw: &[u8]) {
        let Some(inner) = &self.inner else { return };
        let line = entry(reason, source, position, extra, raw);
        lock(inner).append(line.as_bytes());
    }

    /// Write out what is buffered.
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            lock(inner).flush();
        }
    }

    /// Lines written and dropped, rotations and write errors so far (all
    /// zero for a disabled log).
    pub fn stats(&self) -> LogStats {
        self.inner
            .as_ref()
            .map_or_else(LogStats::default, |i| lock(i).acct.stats)
    }
}

fn lock(inner: &Mutex<LogInner>) -> MutexGuard<'_, LogInner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// One JSON line, `\n` included.
fn entry(reason: &str, source: &str, position: u64, extra: &[(&str, &str)], raw: &[u8]) -> String {
    let mut line = String::with_capacity(raw.len() + 96);
    line.push_str("{\"reason\":");
    write_json_str(&mut line, reason);
    line.push_str(",\"source\":");
    write_json_str(&mut line, source);
    let _ = write!(line, ",\"position\":{position}");
    for (k, v) in extra {
        line.push(',');
        write_json_str(&mut line, k);
        line.push(':');
        write_json_str(&mut line, v);
    }
    line.push_str(",\"raw\":");
    write_json_str(&mut line, &String::from_utf8_lossy(raw));
    line.push_str("}\n");
    line
}

impl LogInner {
    fn append(&mut self, line: &[u8]) {
        let LogInner { out, acct } = self;
        let f = match out {
            Output::Stderr => {
                match io::stderr().write_all(line) {
                    Ok(()) => acct.wrote(1),
                    Err(e) => acct.failed(&e, 1),
                }
                return;
            }
            Output::File(f) => f,
        };
        if f.must_rotate(line.len() as u64 + u64::from(f.torn)) {
            if f.retry_at.is_some_and(|at| Instant::now() < at) {
                acct.dropped(1);
                return;
            }
            acct.flushed(f.flush_buf());
            match f.rotate() {
                Ok(rotated) => acct.stats.rotations += u64::from(rotated),
                Err(e) => {
                    acct.failed(&e, 1);
                    return;
                }
            }
        }
        f.push(line);
        if f.buf.len() >= BUF_BYTES {
            acct.flushed(f.flush_buf());
        }
    }

    fn flush(&mut self) {
        match &mut self.out {
            Output::Stderr => {
                let _ = io::stderr().flush();
            }
            Output::File(f) => self.acct.flushed(f.flush_buf()),
        }
    }
}

impl Drop for LogInner {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A log file, its rotated predecessors and the buffer in front of it.
struct FileLog {
    path: PathBuf,
    limits: LogLimits,
    /// `None` after a failed rotation, until one succeeds.
    file: Option<File>,
    /// Bytes of the current file, the buffered ones included: tracked here,
    /// so deciding to rotate costs no system call.
    size: u64,
    buf: Vec<u8>,
    /// Lines in `buf`.
    buf_lines: u64,
    /// A failed write left part of a line in the file that could not be cut
    /// off again: the next line starts on a new one.
    torn: bool,
    /// No rotation before this (the last one failed).
    retry_at: Option<Instant>,
}

impl FileLog {
    fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let (file, size) = open_append(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            limits,
            file: Some(file),
            size,
            buf: Vec::with_capacity(BUF_BYTES),
            buf_lines: 0,
            torn: false,
            retry_at: None,
        })
    }

    /// Whether a line of `len` bytes needs a new file first. A line longer
    /// than the limit still goes into a file of its own.
    fn must_rotate(&self, len: u64) -> bool {
        self.file.is_none() || (self.size > 0 && self.size.saturating_add(len) > self.limits.max_bytes)
    }

    fn push(&mut self, line: &[u8]) {
        if self.torn {
            self.torn = false;
            self.buf.push(b'\n');
            self.size += 1;
        }
        self.buf.extend_from_slice(line);
        self.buf_lines += 1;
        self.size += line.len() as u64;
    }

    /// Write the buffer out: `Ok(lines written)`, or the error and the
    /// lines dropped. Dropped lines are cut off the file again if a part of
    /// them made it.
    fn flush_buf(&mut self) -> Result<u64, (io::Error, u64)> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let lines = std::mem::take(&mut self.buf_lines);
        let len = self.buf.len() as u64;
        let result = match &mut self.file {
            Some(file) => {
                let (done, result) = write_out(file, &self.buf);
                if result.is_err() && done > 0 {
                    let cut = file
                        .metadata()
                        .and_then(|m| file.set_len(m.len().saturating_sub(done as u64)));
                    if cut.is_err() {
                        self.size += done as u64;
                        self.torn = true;
                    }
                }
                result
            }
            // Not reached: lines are only buffered with a file open.
            None => Err(io::Error::other("no file open")),
        };
        self.buf.clear();
        if self.buf.capacity() > 4 * BUF_BYTES {
            self.buf.shrink_to(BUF_BYTES);
        }
        match result {
            Ok(()) => Ok(lines),
            Err(e) => {
                self.size -= len;
                Err((e, lines))
            }
        }
    }

    /// Shift the rotated files by one (deleting the oldest) and start a new
    /// current file; the buffer must be written out. `Ok(false)`: there was
    /// nothing to rotate (the current file is gone or empty), only reopened.
    fn rotate(&mut self) -> io::Result<bool> {
        debug_assert!(self.buf.is_empty());
        self.file = None;
        match self.shift_and_open() {
            Ok(((file, size), rotated)) => {
                self.file = Some(file);
                self.size = size;
                self.torn = false;
                self.retry_at = None;
                Ok(rotated)
            }
            Err(e) => {
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                Err(e)
            }
        }
    }

    /// Opens a new file after [`FileLog::shift`]; after a rotation that
    /// failed half way, does again only what is left.
    fn shift_and_open(&self) -> io::Result<((File, u64), bool)> {
        let rotated = match std::fs::metadata(&self.path) {
            Ok(m) if m.len() > 0 => {
                self.shift()?;
                true
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        Ok((open_append(&self.path)?, rotated))
    }

    /// `x.jsonl.N` -> `x.jsonl.N+1` for the files there (the one beyond
    /// `max_files` is deleted), then `x.jsonl` -> `x.jsonl.1`.
    fn shift(&self) -> io::Result<()> {
        let keep = self.limits.max_files;
        if keep == 0 {
            return remove_if_there(&self.path);
        }
        // The files there, `.1` up: stops at the first gap, so a large
        // `max_files` costs nothing until the files exist.
        let mut there = 0;
        while there < keep && std::fs::symlink_metadata(self.rotated(there + 1)).is_ok() {
            there += 1;
        }
        if there == keep {
            remove_if_there(&self.rotated(keep))?;
            there -= 1;
        }
        for n in (1..=there).rev() {
            std::fs::rename(self.rotated(n), self.rotated(n + 1))?;
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    /// `x.jsonl.n`.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `write_all` that also says how many bytes made it.
fn write_out(file: &mut File, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// The counters of a log and the reports of its failures.
struct Accounts {
    path: String,
    stats: LogStats,
    trouble: Trouble,
}

impl Accounts {
    fn wrote(&mut self, lines: u64) {
        if lines > 0 {
            self.stats.lines_written += lines;
            self.trouble.ok(&self.path);
        }
    }

    /// `lines` lost to `error`.
    fn failed(&mut self, error: &io::Error, lines: u64) {
        self.stats.write_errors += 1;
        self.stats.lines_dropped += lines;
        self.trouble.failed(&self.path, Some(error), lines);
    }

    /// `lines` lost to the last error, without a new try.
    fn dropped(&mut self, lines: u64) {
        self.stats.lines_dropped += lines;
        self.trouble.failed(&self.path, None, lines);
    }

    fn flushed(&mut self, result: Result<u64, (io::Error, u64)>) {
        match result {
            Ok(lines) => self.wrote(lines),
            Err((e, lines)) => self.failed(&e, lines),
        }
    }
}

/// Repeated write failures, logged quietly: once when they start, then at
/// most once per [`REPORT_EVERY`] with the count of records dropped since,
/// and once when writes succeed again — never a line per record.
#[derive(Default)]
struct Trouble {
    /// When the failures started (`None`: all is well).
    since: Option<Instant>,
    last_line: Option<Instant>,
    /// The last error, for the lines about drops without a new try.
    error: String,
    /// Records dropped since the last line logged.
    unlogged: u64,
    /// Records dropped since the failures started.
    dropped: u64,
}

impl Trouble {
    /// `dropped` records lost (to `error`, or to the last one). Returns
    /// whether it logged.
    fn failed(&mut self, path: &str, error: Option<&io::Error>, dropped: u64) -> bool {
        if let Some(e) = error {
            self.error = e.to_string();
        }
        self.dropped += dropped;
        self.unlogged += dropped;
        let now = Instant::now();
        let error = &self.error;
        match (self.since, self.last_line) {
            (Some(since), Some(last)) => {
                let quiet = now.duration_since(last);
                if quiet < REPORT_EVERY {
                    return false;
                }
                tracing::warn!(path, error = %error, dropped = self.unlogged, failing_s = now.duration_since(since).as_secs(), "record log {path} still failing ({error}): {} records dropped in the last {} s", self.unlogged, quiet.as_secs());
            }
            _ => {
                self.since = Some(now);
                tracing::error!(path, error = %error, dropped, "cannot write the record log {path}: {error}; its records are dropped and counted until it can be written (logged again at most every {} s while it lasts)", REPORT_EVERY.as_secs());
            }
        }
        self.last_line = Some(now);
        self.unlogged = 0;
        true
    }

    /// A write succeeded: ends the failures, if any, with one line.
    fn ok(&mut self, path: &str) -> bool {
        let Some(since) = self.since.take() else {
            return false;
        };
        let secs = since.elapsed().as_secs_f64();
        tracing::info!(
            path,
            dropped = self.dropped,
            failing_s = secs,
            "record log {path} is written again, after {} records dropped over {secs:.1} s",
            self.dropped
        );
        self.last_line = None;
        self.dropped = 0;
        self.unlogged = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_len(position: u64) -> u64 {
        entry("bad", "t", position, &[], b"x").len() as u64
    }

    /// The positions in the file at `path`, each line checked to be JSON.
    fn positions(path: &Path) -> Vec<u64> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                v["position"].as_u64().unwrap()
            })
            .collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn file_log(log: &RecordLog) -> MutexGuard<'_, LogInner> {
        lock(log.inner.as_ref().unwrap())
    }

    #[test]
    fn rotates_at_the_limit_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        let len = line_len(100);
        let limits = LogLimits {
            max_bytes: 3 * len,
            max_files: 2,
        };
        let log = RecordLog::open_with(path.to_str().unwrap(), limits).unwrap();
        let write = |pos: u64| log.write("bad", "t", pos, &[], b"x");

        // Exactly at the limit: no rotation yet.
        (100..103).for_each(write);
        log.flush();
        assert_eq!(files(dir.path()), ["bad.jsonl"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * len);
        // The next line would pass it.
        write(103);
        log.flush();
        assert_eq!(files(dir.path()), ["bad.jsonl", "bad.jsonl.1"]);
        assert_eq!(positions(&path), [103]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.1")), [100, 101, 102]);

        (104..112).for_each(write);
        log.flush();
        assert_eq!(files(dir.path()), ["bad.jsonl", "bad.jsonl.1", "bad.jsonl.2"]);
        assert_eq!(positions(&path), [109, 110, 111]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.1")), [106, 107, 108]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.2")), [103, 104, 105]);
        assert_eq!(
            log.stats(),
            LogStats {
                lines_written: 12,
                lines_dropped: 0,
                rotations: 3,
                write_errors: 0
            }
        );
        drop(log);

        // Reopened, the full file there counts: the first line rotates.
        let log = RecordLog::open_with(path.to_str().unwrap(), limits).unwrap();
        log.write("bad", "t", 112, &[], b"x");
        log.flush();
        assert_eq!(files(dir.path()), ["bad.jsonl", "bad.jsonl.1", "bad.jsonl.2"]);
        assert_eq!(positions(&path), [112]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.1")), [109, 110, 111]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.2")), [106, 107, 108]);
        assert_eq!(log.stats().rotations, 1);
    }

    #[test]
    fn a_storm_stays_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.jsonl");
        let limits = LogLimits {
            max_bytes: 8192,
            max_files: 3,
        };
        let log = RecordLog::open_with(path.to_str().unwrap(), limits).unwrap();
        let n = 50_000u64;
        let mut longest = 0;
        let on_disk = || -> u64 {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum()
        };
        for pos in 0..n {
            let raw = "r".repeat((pos * 7919 % 300) as usize);
            longest = longest.max(entry("late", "t", pos, &[("view", "v")], raw.as_bytes()).len() as u64);
            log.write("late", "t", pos, &[("view", "v")], raw.as_bytes());
            if pos % 997 == 0 {
                assert!(on_disk() <= (3 + 1) * limits.max_bytes + longest, "{} bytes", on_disk());
            }
        }
        log.flush();
        assert!(on_disk() <= (3 + 1) * limits.max_bytes + longest, "{} bytes", on_disk());
        let names = ["late.jsonl.3", "late.jsonl.2", "late.jsonl.1", "late.jsonl"];
        assert_eq!(
            files(dir.path()),
            ["late.jsonl", "late.jsonl.1", "late.jsonl.2", "late.jsonl.3"]
        );
        // Oldest first, each file within the limit, no line torn or lost
        // between them.
        let mut kept = Vec::new();
        for name in names {
            let p = dir.path().join(name);
            assert!(std::fs::metadata(&p).unwrap().len() <= limits.max_bytes, "{name}");
            kept.extend(positions(&p));
        }
        let first = kept[0];
        assert_eq!(kept, (first..n).collect::<Vec<_>>());
        let s = log.stats();
        assert_eq!((s.lines_written, s.lines_dropped, s.write_errors), (n, 0, 0));
        assert!(s.rotations > 100, "{s:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_drops_and_counts() {
        // Writing to /dev/full fails with ENOSPC, as on a full disk. (No
        // limits: /dev/full must never be renamed.)
        let log = RecordLog::open("/dev/full").unwrap();
        let n = 3_000;
        for pos in 0..n {
            log.write("bad", "t", pos, &[], &[b'x'; 100]);
        }
        log.flush();
        let s = log.stats();
        assert_eq!((s.lines_written, s.lines_dropped, s.rotations), (0, n, 0), "{s:?}");
        // Once per buffer written out (about 64 KiB), not once per line.
        assert!((2..=10).contains(&s.write_errors), "{s:?}");
        assert!(file_log(&log).acct.trouble.since.is_some());
    }

    #[test]
    fn a_failed_rotation_drops_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        // A directory where the rotated file goes: the rotation fails (also
        // for root, whom a read-only directory would not stop).
        std::fs::create_dir(dir.path().join("bad.jsonl.1")).unwrap();
        std::fs::write(dir.path().join("bad.jsonl.1/keep"), "").unwrap();
        let len = line_len(1);
        let limits = LogLimits {
            max_bytes: 2 * len,
            max_files: 1,
        };
        let log = RecordLog::open_with(path.to_str().unwrap(), limits).unwrap();
        for pos in 1..=4 {
            log.write("bad", "t", pos, &[], b"x");
        }
        log.flush();
        // 3 failed to rotate, 4 was dropped without a try (within RETRY_AFTER).
        assert_eq!(positions(&path), [1, 2]);
        assert_eq!(
            log.stats(),
            LogStats {
                lines_written: 2,
                lines_dropped: 2,
                rotations: 0,
                write_errors: 1
            }
        );
        assert!(file_log(&log).acct.trouble.since.is_some());

        std::fs::remove_dir_all(dir.path().join("bad.jsonl.1")).unwrap();
        if let Output::File(f) = &mut file_log(&log).out {
            f.retry_at = None;
        }
        log.write("bad", "t", 5, &[], b"x");
        log.flush();
        assert_eq!(positions(&path), [5]);
        assert_eq!(positions(&dir.path().join("bad.jsonl.1")), [1, 2]);
        let s = log.stats();
        assert_eq!((s.lines_written, s.lines_dropped, s.rotations), (3, 2, 1), "{s:?}");
        assert!(file_log(&log).acct.trouble.since.is_none(), "writes work again");
    }

    #[test]
    fn failures_are_logged_at_the_start_then_once_per_period_then_at_the_end() {
        let mut t = Trouble::default();
        let e = io::Error::from_raw_os_error(28);
        assert!(t.failed("x", Some(&e), 10), "the start is logged");
        for _ in 0..10_000 {
            assert!(!t.failed("x", Some(&e), 1), "more within the period are not");
            assert!(!t.failed("x", None, 1));
        }
        assert_eq!(t.unlogged, 20_000);
        t.last_line = t.last_line.and_then(|l| l.checked_sub(REPORT_EVERY));
        assert!(t.failed("x", None, 1), "a period later, one line with the count");
        assert_eq!((t.unlogged, t.dropped), (0, 20_011));
        assert!(!t.failed("x", None, 1));
        assert!(t.ok("x"), "the end is logged");
        assert!(!t.ok("x"), "once");
        assert!(t.failed("x", Some(&e), 1), "a new start is logged at once");
    }

    #[test]
    fn stderr_and_disabled() {
        let log = RecordLog::open_with(
            "-",
            LogLimits {
                max_bytes: 1,
                max_files: 1,
            },
        )
        .unwrap();
        assert!(log.is_enabled());
        assert!(
            matches!(file_log(&log).out, Output::Stderr),
            "never a file, never rotated"
        );
        let off = RecordLog::disabled();
        off.write("bad", "t", 1, &[], b"x");
        off.flush();
        assert!(!off.is_enabled());
        assert_eq!(off.stats(), LogStats::default());
    }
}
