//! The Redis writer's connection: RESP written and read by the writer
//! itself on a plain TCP or Unix socket, or through redis-rs where the URL
//! asks for TLS.
//!
//! The writer's replies are `QUEUED`s, an `EXEC` array of integers, or the
//! write script's count of keys it skipped: it needs to know only whether
//! one is an error, a nil (an aborted transaction) or a top-level integer.
//! Parsing them into
//! redis-rs values cost about a third of the writer thread's time (a
//! combinator parser and an allocation per reply); [`Plain`] scans them in
//! place instead.

use std::io::{Read, Write};
use std::time::Duration;

/// One reply, as much as the writer needs of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    Int(i64),
    /// `$-1` or `*-1` (`EXEC` of an aborted transaction).
    Nil,
    Bulk(Vec<u8>),
    /// An error reply, or an array holding one.
    Error(String),
    /// A status or an array without errors.
    Ok,
}

/// A connection to one Redis server.
pub(super) enum Wire {
    Plain(Plain),
    /// `rediss://`: redis-rs does the TLS and parses the replies.
    Tls(Box<redis::Connection>),
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`Wire::connect`] failed.
#[derive(Debug)]
pub(super) enum Connect {
    /// No connection, or it broke: the server may come back.
    Unreachable(String),
    /// The server answered with an error (AUTH, SELECT, `NOAUTH`).
    Refused(String),
}

impl From<String> for Connect {
    fn from(e: String) -> Self {
        Connect::Unreachable(e)
    }
}

impl Wire {
    /// Connect as `client`'s URL says: address, user, password, database.
    /// A stopped server must not hang the writer: connecting waits 2 s, a
    /// read or write 5 s.
    pub(super) fn connect(client: &redis::Client) -> Result<Wire, String> {
        Self::connect_checked(client).map_err(|e| match e {
            Connect::Unreachable(e) | Connect::Refused(e) => e,
        })
    }

    /// Connect, then `PING`: tells a server that does not answer (an
    /// outage, worth waiting for) from one that answers but refuses us (a
    /// wrong or missing password, a database it does not have: waiting
    /// cannot help). The connection, if it answers, for more questions.
    pub(super) fn probe(client: &redis::Client) -> Result<Wire, Connect> {
        let mut w = Self::connect_checked(client)?;
        match w.command(&[b"PING"]).map_err(Connect::Unreachable)? {
            Reply::Error(e) => Err(Connect::Refused(e)),
            _ => Ok(w),
        }
    }

    fn connect_checked(client: &redis::Client) -> Result<Wire, Connect> {
        let info = client.get_connection_info();
        let mut tcp = None;
        let stream: Box<dyn Stream> = match &info.addr {
            redis::ConnectionAddr::Tcp(host, port) => {
                let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
                    .map_err(|e| format!("{host}:{port}: {e}"))?;
                let mut last = format!("{host}:{port}: no address");
                let mut connected = None;
                for a in addrs {
                    match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = format!("{a}: {e}"),
                    }
                }
                let s = connected.ok_or(last)?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                tcp = Some(std::os::fd::AsRawFd::as_raw_fd(&s));
                Box::new(s)
            }
            redis::ConnectionAddr::Unix(path) => {
                let s =
                    std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                Box::new(s)
            }
            _ => {
                let c = client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .map_err(|e| {
                        // redis-rs sends AUTH and SELECT itself.
                        match e.kind() {
                            redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::ResponseError => {
                                Connect::Refused(e.to_string())
                            }
                            _ => Connect::Unreachable(e.to_string()),
                        }
                    })?;
                c.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                c.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                return Ok(Wire::Tls(Box::new(c)));
            }
        };
        let mut w = Wire::Plain(Plain::new(stream, tcp, 64 << 10));
        let r = &info.redis;
        if let Some(password) = &r.password {
            let reply = match &r.username {
                Some(user) => w.command(&[b"AUTH", user.as_bytes(), password.as_bytes()])?,
                None => w.command(&[b"AUTH", password.as_bytes()])?,
            };
            if let Reply::Error(e) = reply {
                return Err(Connect::Refused(format!("AUTH: {e}")));
            }
        }
        if r.db != 0
            && let Reply::Error(e) = w.command(&[b"SELECT", r.db.to_string().as_bytes()])?
        {
            return Err(Connect::Refused(format!("SELECT {}: {e}", r.db)));
        }
        Ok(w)
    }

    /// Send bytes that are already RESP.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Wire::Plain(p) => p.stream.write_all(bytes).map_err(|e| e.to_string()),
            Wire::Tls(c) => c.send_packed_command(bytes).map_err(|e| e.to_string()),
        }
    }

    /// Read the next reply. `Err` is a broken connection or a reply that
    /// is not RESP; an error reply is [`Reply::Error`].
    pub(super) fn read(&mut self) -> Result<Reply, String> {
        match self {
            Wire::Plain(p) => p.reply(),
            Wire::Tls(c) => Ok(match c.recv_response().map_err(|e| e.to_string())? {
                redis::Value::Int(n) => Reply::Int(n),
                redis::Value::Nil => Reply::Nil,
                redis::Value::BulkString(b) => Reply::Bulk(b),
                v => match v.extract_error() {
                    Ok(_) => Reply::Ok,
                    Err(e) => Reply::Error(e.to_string()),
                },
            }),
        }
    }

    /// Say that at least `bytes` more bytes of replies are on their way
    /// (a lower bound: more may come, never fewer). Over TCP the reads
    /// then wake only once they have arrived, not for every segment Redis
    /// sends: waking once per segment of a batch's replies, the writer spent
    /// about a sixth of `run`'s CPU time in the kernel, contending for the
    /// socket's lock with the segments' delivery.
    pub(super) fn expect(&mut self, bytes: usize) {
        if let Wire::Plain(p) = self {
            let taken = p.received - (p.end - p.at) as u64;
            p.due = p.due.max(taken + bytes as u64);
        }
    }

    /// Send one command and read its reply.
    pub(super) fn command(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let mut out = Vec::new();
        super::redis::resp_array_len(&mut out, args.len());
        for a in args {
            super::redis::resp_bulk(&mut out, a);
        }
        self.send(&out)?;
        self.read()
    }
}

/// `SO_RCVLOWAT`: the bytes a blocking read of `fd` waits for.
fn set_low_water(fd: std::os::fd::RawFd, bytes: usize) -> Result<(), String> {
    let value = bytes as libc::c_int;
    // SAFETY: `fd` is the open socket `Plain` owns; the option value is a
    // c_int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(format!("SO_RCVLOWAT: {}", std::io::Error::last_os_error())),
    }
}

/// Wait until `fd` has `SO_RCVLOWAT` bytes to read, an error or an end
/// (true), or [`TIMEOUT`] has passed (false).
fn wait_readable(fd: std::os::fd::RawFd) -> Result<bool, String> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for the socket `Plain` owns.
        let rc = unsafe { libc::poll(&raw mut p, 1, TIMEOUT.as_millis() as libc::c_int) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("poll: {e}"));
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A socket and the replies read from it but not yet taken.
pub(super) struct Plain {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    at: usize,
    end: usize,
    /// The socket, where it is TCP (whose reads [`Wire::expect`] tunes).
    tcp: Option<std::os::fd::RawFd>,
    /// Bytes read from the socket so far.
    received: u64,
    /// The stream position up to which replies are sure to come.
    due: u64,
    /// The socket's `SO_RCVLOWAT` as last set.
    low_water: usize,
}

/// The most a read waits for at once: a batch of 512 keys' replies is
/// sure to take ~9 KB. Kept well under half the default receive buffer
/// (128 KiB), above which Linux grows the buffer and clamps the
/// connection's receive window to the low-water mark.
const MAX_LOW_WATER: usize = 16 << 10;

impl Plain {
    fn new(stream: Box<dyn Stream>, tcp: Option<std::os::fd::RawFd>, buffer: usize) -> Plain {
        Plain {
            stream,
            buf: vec![0; buffer],
            at: 0,
            end: 0,
            tcp,
            received: 0,
            due: 0,
            low_water: 1,
        }
    }

    /// Read more into the buffer (moving what is left to its front).
    fn fill(&mut self) -> Result<(), String> {
        if self.at > 0 {
            self.buf.copy_within(self.at..self.end, 0);
            self.end -= self.at;
            self.at = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len();
            self.buf.resize(n * 2, 0);
        }
        if let Some(fd) = self.tcp {
            let want = self.due.saturating_sub(self.received).clamp(1, MAX_LOW_WATER as u64) as usize;
            if want != self.low_water {
                set_low_water(fd, want)?;
                self.low_water = want;
            }
            // Wait in `poll`, which compares all the unread bytes with the
            // low-water mark. A read that blocks compares only the bytes
            // that arrive after what it took so far: it can sleep until its
            // timeout with everything there.
            if want > 1 && !wait_readable(fd)? {
                // Not that much in 5 s: the read takes what there is, or
                // times out.
                set_low_water(fd, 1)?;
                self.low_water = 1;
            }
        }
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err("Redis closed the connection".into()),
            Ok(n) => {
                self.end += n;
                self.received += n as u64;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The next line, without its CRLF, as a range of the buffer.
    fn line(&mut self) -> Result<std::ops::Range<usize>, String> {
        // Bytes after `at` already searched for the newline.
        let mut scanned = 0;
        loop {
            let from = self.at + scanned;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..self.end]) {
                let nl = from + i;
                if nl == self.at || self.buf[nl - 1] != b'\r' {
                    return Err("a reply that is not RESP (a line without CR)".into());
                }
                let line = self.at..nl - 1;
                self.at = nl + 1;
                return Ok(line);
            }
            scanned = self.end - self.at;
            self.fill()?;
        }
    }

    fn number(&self, r: std::ops::Range<usize>) -> Result<i64, String> {
        std::str::from_utf8(&self.buf[r.clone()])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("a reply that is not RESP: {:?}", String::from_utf8_lossy(&self.buf[r])))
    }

    /// Skip (or take) `n` bytes and the CRLF after them.
    fn bulk(&mut self, n: usize, keep: bool) -> Result<Vec<u8>, String> {
        while self.end - self.at < n + 2 {
            self.fill()?;
        }
        let out = if keep {
            self.buf[self.at..self.at + n].to_vec()
        } else {
            Vec::new()
        };
        self.at += n + 2;
        Ok(out)
    }

    /// The writer's commonest replies, `+QUEUED` and a one-digit integer,
    /// taken without a line search where they are already in the buffer.
    fn short_reply(&mut self) -> Option<Reply> {
        let rest = &self.buf[self.at..self.end];
        if rest.starts_with(b"+QUEUED\r\n") {
            self.at += 9;
            return Some(Reply::Ok);
        }
        match rest {
            [b':', d @ b'0'..=b'9', b'\r', b'\n', ..] => {
                let n = i64::from(d - b'0');
                self.at += 4;
                Some(Reply::Int(n))
            }
            _ => None,
        }
    }

    fn reply(&mut self) -> Result<Reply, String> {
        if let Some(r) = self.short_reply() {
            return Ok(r);
        }
        let line = self.line()?;
        if line.is_empty() {
            return Err("an empty reply line".into());
        }
        let kind = self.buf[line.start];
        let rest = line.start + 1..line.end;
        match kind {
            b'+' => Ok(Reply::Ok),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(&self.buf[rest]).into_owned())),
            b':' => Ok(Reply::Int(self.number(rest)?)),
            b'$' => match self.number(rest)? {
                n if n < 0 => Ok(Reply::Nil),
                n => Ok(Reply::Bulk(self.bulk(n as usize, true)?)),
            },
            b'*' => {
                let n = self.number(rest)?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                // An array is an error if any element is (EXEC's replies).
                let mut first_error = None;
                for _ in 0..n {
                    match self.element()? {
                        Some(e) if first_error.is_none() => first_error = Some(e),
                        _ => {}
                    }
                }
                Ok(first_error.map_or(Reply::Ok, Reply::Error))
            }
            _ => Err(format!(
                "a reply that is not RESP: {:?}",
                String::from_utf8_lossy(&self.buf[line])
            )),
        }
    }

    /// An array's element, skipped; `Some(message)` if it is an error.
    fn element(&mut self) -> Result<Option<String>, String> {
        // Integers (EXEC of HSET and EXPIRE) are most of them: no allocation.
        if self.at == self.end {
            self.fill()?;
        }
        match self.buf[self.at] {
            b':' => {
                if self.short_reply().is_none() {
                    self.line()?;
                }
                Ok(None)
            }
            b'$' => {
                let line = self.line()?;
                let n = self.number(line.start + 1..line.end)?;
                if n >= 0 {
                    self.bulk(n as usize, false)?;
                }
                Ok(None)
            }
            _ => match self.reply()? {
                Reply::Error(e) => Ok(Some(e)),
                _ => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [`Plain`] over `bytes`, read `chunk` bytes at a time.
    fn plain(bytes: &[u8], chunk: usize) -> Plain {
        struct Chunks(Vec<u8>, usize, usize);
        impl Read for Chunks {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.2.min(out.len()).min(self.0.len() - self.1);
                out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        impl Write for Chunks {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        Plain::new(Box::new(Chunks(bytes.to_vec(), 0, chunk)), None, 8)
    }

    /// A transaction's replies arriving in pieces, the first before the
    /// writer reads: each read waits for the bytes still due, and all of
    /// them are read as soon as they are there, not at the 5 s timeout.
    #[test]
    fn replies_that_trickle_in_are_read_once_all_are_there() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut replies = b"+OK\r\n".to_vec();
        replies.extend(b"+QUEUED\r\n".repeat(100));
        replies.extend_from_slice(b"*100\r\n");
        replies.extend(b":1\r\n".repeat(100));
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            for piece in [&replies[..600], &replies[600..700], &replies[700..]] {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
            s
        });
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let mut w = Wire::Plain(Plain::new(Box::new(stream), Some(fd), 64 << 10));
        std::thread::sleep(Duration::from_millis(50));
        let start = std::time::Instant::now();
        w.expect(b"+OK\r\n".len() + 100 * b"+QUEUED\r\n".len() + b"*0\r\n".len());
        for i in 0..102 {
            let r = w.read().unwrap();
            assert!(matches!(r, Reply::Ok), "reply {i}: {r:?}");
        }
        let took = start.elapsed();
        assert!(took < Duration::from_secs(2), "read in {took:?}");
        drop(server.join().unwrap());
    }

    #[test]
    fn replies_are_read_across_any_split() {
        let bytes = b"+OK\r\n+QUEUED\r\n*3\r\n:1\r\n:0\r\n$2\r\nhi\r\n:0\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n\
                      *2\r\n:1\r\n-ERR wrong type\r\n-NOSCRIPT no script\r\n*1\r\n*2\r\n:1\r\n-ERR deep\r\n\
                      :7\r\n:12\r\n:-3\r\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let mut p = plain(bytes, chunk);
            let got: Vec<Reply> = (0..13).map(|_| p.reply().unwrap()).collect();
            assert_eq!(
                got,
                vec![
                    Reply::Ok,
                    Reply::Ok,
                    Reply::Ok,
                    Reply::Int(0),
                    Reply::Bulk(b"abc".to_vec()),
                    Reply::Nil,
                    Reply::Nil,
                    Reply::Error("ERR wrong type".into()),
                    Reply::Error("NOSCRIPT no script".into()),
                    Reply::Error("ERR deep".into()),
                    Reply::Int(7),
                    Reply::Int(12),
                    Reply::Int(-3),
                ],
                "chunk {chunk}"
            );
            assert!(p.reply().is_err(), "the end of the stream is an error");
        }
    }

    #[test]
    fn what_is_not_resp_is_an_error() {
        for bytes in [&b"?what\r\n"[..], b":12x\r\n", b"+no cr\n", b"\r\n"] {
            assert!(
                plain(bytes, 100).reply().is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
