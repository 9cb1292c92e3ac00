//! A synchronous sink on a thread of its own, so that rendering and writing
//! records overlaps with the engine firing the next ones (replay's JSON
//! lines: a line per window fired, over a million a second).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{FeatureRecord, Sink, SinkError};

/// Runs `S` on its own thread; batches reach it in order through a bounded
/// queue, so a slow disk holds the engine back instead of filling memory.
///
/// A failed write is returned by the next call after it. The writer drops
/// the batches queued behind the failed one until that call has returned
/// the error (the pipeline then restores its checkpoint and sends them
/// again), then writes what comes next, as the inner sink would.
pub struct Background {
    name: String,
    tx: Option<SyncSender<Message>>,
    failed: Arc<Mutex<Option<SinkError>>>,
    thread: Option<JoinHandle<()>>,
}

enum Message {
    Records(Vec<FeatureRecord>),
    Flush(SyncSender<Result<(), SinkError>>),
    /// The error was returned: write again.
    Resume,
}

impl Background {
    /// Batches queued ahead of the writer.
    const QUEUE: usize = 8;

    pub fn start<S: Sink + 'static>(name: &str, sink: S) -> Result<Self, SinkError> {
        let (tx, rx) = sync_channel(Self::QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let slot = failed.clone();
        let thread = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || serve(sink, rx, &slot))
            .map_err(|source| SinkError::Io {
                sink: name.to_string(),
                source,
            })?;
        Ok(Self {
            name: name.to_string(),
            tx: Some(tx),
            failed,
            thread: Some(thread),
        })
    }

    /// Return a write error the writer met since the last call.
    fn check(&mut self) -> Result<(), SinkError> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner()).take();
        match failed {
            Some(e) => {
                self.send(Message::Resume)?;
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn send(&mut self, message: Message) -> Result<(), SinkError> {
        match &self.tx {
            Some(tx) if tx.send(message).is_ok() => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// The writer thread has ended (it only ends when told to, or panics).
    fn stopped(&mut self) -> SinkError {
        self.tx = None;
        let panicked = self.thread.take().map(JoinHandle::join).is_some_and(|r| r.is_err());
        SinkError::Store {
            sink: self.name.clone(),
            reason: if panicked {
                "the writer thread panicked"
            } else {
                "the writer thread has stopped"
            }
            .to_string(),
            retryable: false,
        }
    }
}

fn serve<S: Sink>(mut sink: S, rx: Receiver<Message>, failed: &Mutex<Option<SinkError>>) {
    let mut dropping = false;
    for message in rx {
        match message {
            Message::Records(_) if dropping => {}
            Message::Records(records) => {
                if let Err(e) = sink.write_owned(records) {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    dropping = true;
                }
            }
            Message::Flush(ack) => {
                let _ = ack.send(if dropping { Ok(()) } else { sink.flush() });
            }
            Message::Resume => dropping = false,
        }
    }
    if let Err(e) = sink.flush() {
        tracing::error!("{e}");
    }
}

impl Sink for Background {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        self.write_owned(records.to_vec())
    }

    fn write_owned(&mut self, records: Vec<FeatureRecord>) -> Result<(), SinkError> {
        self.check()?;
        self.send(Message::Records(records))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.check()?;
        let (ack, done) = sync_channel(1);
        self.send(Message::Flush(ack))?;
        let flushed = done.recv().map_err(|_| self.stopped())?;
        // A write that failed while the flush waited in the queue.
        self.check()?;
        flushed
    }
}

impl Drop for Background {
    /// Lets the writer finish the queue and flush (the engine flushed
    /// already when it finished), then waits for it.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(e) = self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tracing::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sink::{JsonlFormat, JsonlSink};

    fn records(n: usize, from: i64) -> Vec<FeatureRecord> {
        (0..n as i64)
            .map(|i| FeatureRecord {
                view: "v".into(),
                key: format!("v:{}", from + i),
                entity_span: 2..2 + (from + i).to_string().len(),
                window_start: from + i,
                window_end: from + i + 1,
                fields: Vec::new().into(),
                values: Vec::new(),
                ttl_seconds: 0,
                fired_at: std::time::Instant::now(),
            })
            .collect()
    }

    /// Fails every write while `full` is set.
    #[derive(Clone, Default)]
    struct Disk {
        bytes: Arc<Mutex<Vec<u8>>>,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"));
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn starts(disk: &Disk) -> Vec<i64> {
        let text = String::from_utf8(disk.bytes.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["window_start"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn lines_arrive_in_order_and_flush_waits_for_them() {
        let disk = Disk::default();
        let inner = JsonlSink::new("t", Box::new(disk.clone()), JsonlFormat::Flink);
        let mut sink = Background::start("t", inner).unwrap();
        for batch in 0..50 {
            sink.write_owned(records(100, batch * 100)).unwrap();
        }
        sink.write(&records(1, 5000)).unwrap();
        sink.flush().unwrap();
        assert_eq!(starts(&disk), (0..=5000).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_write_is_returned_by_a_later_call_and_what_follows_it_is_dropped_until_then() {
        let disk = Disk::default();
        // No buffer: each line is a write to the disk.
        let inner = JsonlSink::new("disk.jsonl", Box::new(disk.clone()), JsonlFormat::Record);
        let mut sink = Background::start("disk.jsonl", inner).unwrap();
        sink.write_owned(records(10, 0)).unwrap();
        sink.flush().unwrap();
        disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut sent = 0;
        let e = loop {
            match sink.write_owned(records(10, 100 + sent * 10)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1000, "no error returned");
        };
        assert!(e.to_string().contains("no space left"), "{e}");
        assert!(sent >= 1);
        // The disk has room again; the batches queued behind the failed one
        // were dropped, the next ones are written after the first ten.
        disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
        sink.write_owned(records(5, 900)).unwrap();
        sink.flush().unwrap();
        let mut want: Vec<i64> = (0..10).collect();
        want.extend(900..905);
        assert_eq!(starts(&disk), want);
    }

    #[test]
    fn a_write_that_fails_while_a_flush_waits_fails_the_flush() {
        let disk = Disk::default();
        let inner = JsonlSink::new("disk.jsonl", Box::new(disk.clone()), JsonlFormat::Record);
        let mut sink = Background::start("disk.jsonl", inner).unwrap();
        disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
        sink.write_owned(records(3, 0)).unwrap();
        let e = sink.flush().expect_err("the write failed");
        assert!(e.to_string().contains("no space left"), "{e}");
        disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
        sink.flush().unwrap();
        sink.write_owned(records(2, 7)).unwrap();
        drop(sink);
        assert_eq!(starts(&disk), vec![7, 8], "dropping the sink writes the queue");
    }
}
