//! Events from a JSON-lines file or stdin.
//!
//! Lines are split like Java's `BufferedReader.readLine` (`\n`, `\r` or
//! `\r\n`), as the Flink job's `TextLineInputFormat` did. The position of a
//! record is its 1-based line number.

use std::io::Read;

use smallvec::SmallVec;

/// Read `path` (`-` = stdin) and call `f(line_number, line)` for each line.
/// Stops at the first error `f` returns.
pub fn for_each_line<E>(path: &str, mut f: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), FileError<E>> {
    for_each_block(path, |block| block.iter().try_for_each(|&(n, line)| f(n, line)))
}

/// Read `path` (`-` = stdin) and call `f` with blocks of up to [`BLOCK`]
/// consecutive `(line_number, line)`: the engine looks a few events ahead
/// to fetch their keys' state from memory before it needs it.
pub fn for_each_block<E>(path: &str, f: impl FnMut(&[(u64, &[u8])]) -> Result<(), E>) -> Result<(), FileError<E>> {
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|source| FileError::Io {
            path: path.to_string(),
            source,
        })?)
    };
    read_blocks(reader, f).map_err(|e| match e {
        FileError::Io { source, .. } => FileError::Io {
            path: path.to_string(),
            source,
        },
        other => other,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum FileError<E> {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Handler(E),
}

/// Lines per block of [`for_each_block`].
pub const BLOCK: usize = 64;

/// Split a byte stream into lines.
pub fn read_lines<E>(reader: impl Read, mut f: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), FileError<E>> {
    read_blocks(reader, |block| block.iter().try_for_each(|&(n, line)| f(n, line)))
}

/// Split a byte stream into lines, handed over in blocks of up to
/// [`BLOCK`] lines.
pub fn read_blocks<E>(
    mut reader: impl Read,
    mut f: impl FnMut(&[(u64, &[u8])]) -> Result<(), E>,
) -> Result<(), FileError<E>> {
    const CHUNK: usize = 1 << 20;
    let mut buf: Vec<u8> = vec![0; CHUNK];
    let mut start = 0; // first byte of the current line
    let mut end = 0; // end of valid data
    let mut line_no = 0u64;
    // A `\r` at the very end of a chunk: a following `\n` belongs to it.
    let mut skip_lf = false;
    // Lines found but not yet handed over, as ranges of `buf`.
    let mut pending: Vec<(u64, usize, usize)> = Vec::with_capacity(BLOCK);
    let mut hand_over = |pending: &mut Vec<(u64, usize, usize)>, buf: &[u8]| -> Result<(), E> {
        if pending.is_empty() {
            return Ok(());
        }
        let block: SmallVec<[(u64, &[u8]); BLOCK]> = pending.drain(..).map(|(n, a, b)| (n, &buf[a..b])).collect();
        f(&block)
    };
    loop {
        if end == buf.len() {
            hand_over(&mut pending, &buf).map_err(FileError::Handler)?;
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = reader.read(&mut buf[end..]).map_err(|source| FileError::Io {
            path: String::new(),
            source,
        })?;
        if n == 0 {
            if start < end {
                line_no += 1;
                pending.push((line_no, start, end));
            }
            return hand_over(&mut pending, &buf).map_err(FileError::Handler);
        }
        let mut scan = end;
        end += n;
        if skip_lf && scan < end {
            if buf[scan] == b'\n' {
                start = scan + 1;
                scan += 1;
            }
            skip_lf = false;
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', &buf[scan..end]) {
            let at = scan + i;
            line_no += 1;
            pending.push((line_no, start, at));
            if pending.len() == BLOCK {
                hand_over(&mut pending, &buf).map_err(FileError::Handler)?;
            }
            let mut next = at + 1;
            if buf[at] == b'\r' {
                if next < end {
                    if buf[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    skip_lf = true;
                }
            }
            start = next;
            scan = next;
        }
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
