//! What a guest prints: its stdout and stderr, kept in memory per instance
//! instead of going nowhere. A Python traceback or a `console.error` is how
//! an interpreted plugin says what went wrong; the host logs it
//! (rate-limited) and puts it in the failure reason of a failed call.
//!
//! Bounded: at most [`GuestOutput::CAPACITY`] bytes wait between two drains;
//! more is counted and dropped. A write never fails, so printing can never
//! make a plugin fail.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// One output stream of one instance (stdout or stderr), shared by the
/// instance's WASI context and the host.
#[derive(Clone, Default)]
pub struct GuestOutput(Arc<Mutex<Buffer>>);

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

impl GuestOutput {
    /// Bytes kept between two drains.
    pub const CAPACITY: usize = 64 << 10;

    fn append(&self, data: &[u8]) {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = Self::CAPACITY.saturating_sub(b.bytes.len());
        let take = data.len().min(room);
        b.bytes.extend_from_slice(&data[..take]);
        b.dropped += (data.len() - take) as u64;
    }

    /// Take what was written since the last drain, as text (invalid UTF-8
    /// replaced), and the number of bytes dropped past the capacity.
    pub fn drain(&self) -> Option<(String, u64)> {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if b.bytes.is_empty() && b.dropped == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&b.bytes).into_owned();
        let dropped = std::mem::take(&mut b.dropped);
        b.bytes.clear();
        Some((text, dropped))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: what does not fit is counted and dropped.
        Ok(Self::CAPACITY)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_up_to_the_capacity_and_the_rest_counted() {
        let out = GuestOutput::default();
        assert_eq!(out.drain(), None);
        let mut stream = out.p2_stream();
        stream
            .write(bytes::Bytes::from_static(b"Traceback (most recent call last):\n"))
            .unwrap();
        assert_eq!(out.drain(), Some(("Traceback (most recent call last):\n".into(), 0)));
        assert_eq!(out.drain(), None, "a drain empties it");
        stream
            .write(bytes::Bytes::from(vec![b'x'; GuestOutput::CAPACITY + 10]))
            .unwrap();
        let (text, dropped) = out.drain().unwrap();
        assert_eq!((text.len(), dropped), (GuestOutput::CAPACITY, 10));
    }
}
