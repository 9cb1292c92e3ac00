//! Events from a JSON-lines file or stdin.
//!
//! Lines are split like Java's `BufferedReader.readLine` (`\n`, `\r` or
//! `\r\n`), as the Flink job's `TextLineInputFormat` did. The position of a
//! record is its 1-based line number.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use smallvec::SmallVec;

use super::{BLOCK, Block, Polled, Source, SourceError};

/// Splits a byte stream into lines, a block at a time, without copying
/// them: a block borrows the reader's buffer until the next call.
pub struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    /// First byte of the current (unfinished) line.
    start: usize,
    /// Where the search for the next line end continues.
    scan: usize,
    /// End of valid data.
    end: usize,
    line_no: u64,
    /// A `\r` at the very end of the data: a following `\n` belongs to it.
    skip_lf: bool,
    eof: bool,
    /// Lines found but not yet handed over, as ranges of `buf`.
    pending: Vec<(u64, usize, usize)>,
}

impl<R: Read> LineReader<R> {
    const CHUNK: usize = 1 << 20;

    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: vec![0; Self::CHUNK],
            start: 0,
            scan: 0,
            end: 0,
            line_no: 0,
            skip_lf: false,
            eof: false,
            pending: Vec::with_capacity(BLOCK),
        }
    }

    /// Number of the last line handed over (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.pending.last().map_or(self.line_no, |&(n, _, _)| n)
    }

    /// Call `f` with the next block of up to [`BLOCK`] `(line_number,
    /// line)`; `Ok(None)` at the end of the input.
    pub fn next_block<T>(&mut self, f: impl FnOnce(&Block<'_>) -> T) -> std::io::Result<Option<T>> {
        self.pending.clear();
        loop {
            self.find_lines();
            if self.pending.len() == BLOCK {
                break;
            }
            if self.eof {
                if self.start < self.end {
                    self.line_no += 1;
                    self.pending.push((self.line_no, self.start, self.end));
                    self.start = self.end;
                    self.scan = self.end;
                }
                break;
            }
            if !self.pending.is_empty() && self.end == self.buf.len() {
                // The buffer is full: hand over what it holds before
                // making room (the block borrows it).
                break;
            }
            self.fill()?;
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let buf = &self.buf;
        let block: SmallVec<[(u64, &[u8]); BLOCK]> = self.pending.iter().map(|&(n, a, b)| (n, &buf[a..b])).collect();
        Ok(Some(f(&block)))
    }

    /// Record the complete lines in `scan..end`, up to a block.
    #[inline]
    fn find_lines(&mut self) {
        while self.pending.len() < BLOCK {
            let Some(i) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scan..self.end]) else {
                self.scan = self.end;
                return;
            };
            let at = self.scan + i;
            self.line_no += 1;
            self.pending.push((self.line_no, self.start, at));
            let mut next = at + 1;
            if self.buf[at] == b'\r' {
                if next < self.end {
                    if self.buf[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            self.start = next;
            self.scan = next;
        }
    }

    /// Read more data, making room first (nothing is pending).
    fn fill(&mut self) -> std::io::Result<()> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scan -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
        }
        let n = self.reader.read(&mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
            return Ok(());
        }
        let first = self.end;
        self.end += n;
        if self.skip_lf {
            self.skip_lf = false;
            if self.buf[first] == b'\n' {
                self.start = first + 1;
                self.scan = first + 1;
            }
        }
        Ok(())
    }
}

/// Read `path` (`-` = stdin) and call `f(line_number, line)` for each line.
/// Stops at the first error `f` returns.
pub fn for_each_line<E>(path: &str, mut f: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), FileError<E>> {
    for_each_block(path, |block| block.iter().try_for_each(|&(n, line)| f(n, line)))
}

/// Read `path` (`-` = stdin) and call `f` with blocks of up to [`BLOCK`]
/// consecutive `(line_number, line)`.
pub fn for_each_block<E>(path: &str, f: impl FnMut(&Block<'_>) -> Result<(), E>) -> Result<(), FileError<E>> {
    let reader = open(path).map_err(|error| FileError::Io {
        path: path.to_string(),
        error,
    })?;
    read_blocks(reader, f).map_err(|e| match e {
        FileError::Io { error, .. } => FileError::Io {
            path: path.to_string(),
            error,
        },
        other => other,
    })
}

fn open(path: &str) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path)?)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum FileError<E> {
    #[error("{path}: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error(transparent)]
    Handler(E),
}

/// Split a byte stream into lines.
pub fn read_lines<E>(reader: impl Read, mut f: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), FileError<E>> {
    read_blocks(reader, |block| block.iter().try_for_each(|&(n, line)| f(n, line)))
}

/// Split a byte stream into lines, handed over in blocks of up to
/// [`BLOCK`] lines.
pub fn read_blocks<E>(reader: impl Read, mut f: impl FnMut(&Block<'_>) -> Result<(), E>) -> Result<(), FileError<E>> {
    let mut lines = LineReader::new(reader);
    loop {
        let io = |error| FileError::Io {
            path: String::new(),
            error,
        };
        match lines.next_block(&mut f).map_err(io)? {
            Some(r) => r.map_err(FileError::Handler)?,
            None => return Ok(()),
        }
    }
}

/// A JSON-lines file (or stdin) as a [`Source`]: one partition, 0; the
/// offset of a record is its line number. Seeking to line `n` reads from
/// the start again (a file) and skips the lines before `n`.
pub struct FileSource {
    path: String,
    lines: LineReader<Box<dyn Read + Send>>,
    /// Lines before this one are skipped (a restore's position).
    first: u64,
    /// Lines after this one are not read (`u64::MAX`: to the end).
    last: u64,
    /// `last` was reached.
    ended: bool,
}

impl FileSource {
    /// Open `path` (`-` = stdin).
    pub fn open(path: &str) -> Result<Self, SourceError> {
        Ok(Self {
            path: path.to_string(),
            lines: LineReader::new(Self::reader(path)?),
            first: 1,
            last: u64::MAX,
            ended: false,
        })
    }

    /// Read no line after `last` (a prefix of the file).
    pub fn until(mut self, last: u64) -> Self {
        self.last = last;
        self
    }

    fn reader(path: &str) -> Result<Box<dyn Read + Send>, SourceError> {
        open(path).map_err(|error| SourceError::Io {
            path: path.to_string(),
            error,
        })
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.path
    }

    fn partitions(&self) -> Vec<u32> {
        vec![0]
    }

    fn seek(&mut self, next: &BTreeMap<u32, i64>) -> Result<(), SourceError> {
        let first = next.get(&0).map_or(1, |&n| n.max(1) as u64);
        if self.lines.line_no() >= first {
            if self.path == "-" {
                return Err(SourceError::Seek {
                    source_name: self.path.clone(),
                    reason: format!("line {first} was already read from stdin"),
                });
            }
            self.lines = LineReader::new(Self::reader(&self.path)?);
        }
        self.first = first;
        self.ended = false;
        Ok(())
    }

    fn poll(&mut self, _timeout: Duration, f: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError> {
        let (first, last) = (self.first, self.last);
        loop {
            if self.ended {
                return Ok(Polled::End);
            }
            let r = self.lines.next_block(|block| {
                let a = block.partition_point(|&(n, _)| n < first);
                let b = block.partition_point(|&(n, _)| n <= last);
                if a < b {
                    f(0, &block[a..b]);
                }
                (a < b, block.last().map_or(0, |&(n, _)| n) >= last)
            });
            match r {
                Ok(Some((handed, done))) => {
                    self.ended = done;
                    if handed {
                        return Ok(Polled::Records);
                    }
                    if done {
                        return Ok(Polled::End);
                    }
                }
                Ok(None) => return Ok(Polled::End),
                Err(error) => {
                    return Err(SourceError::Io {
                        path: self.path.clone(),
                        error,
                    });
                }
            }
        }
    }

    fn is_bounded(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        read_lines::<()>(input, |n, l| {
            out.push((n, String::from_utf8_lossy(l).into_owned()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn splits_like_buffered_reader() {
        assert_eq!(
            lines(b"a\nb\r\nc\rd\n\ne"),
            vec![
                (1, "a".into()),
                (2, "b".into()),
                (3, "c".into()),
                (4, "d".into()),
                (5, "".into()),
                (6, "e".into())
            ]
        );
        assert_eq!(lines(b"a\n"), vec![(1, "a".into())]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn crlf_split_across_reads() {
        // A reader that returns one byte at a time.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut out = Vec::new();
        read_lines::<()>(OneByte(b"ab\r\ncd\r\n\r\nef"), |n, l| {
            out.push((n, l.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out,
            vec![
                (1, b"ab".to_vec()),
                (2, b"cd".to_vec()),
                (3, b"".to_vec()),
                (4, b"ef".to_vec())
            ]
        );
    }
}
