//! JSON-lines logs of records the engine could not turn into features: bad
//! records (the dead-letter output), late events, and events of a batch a
//! plugin failed on. Nothing is dropped silently: it is counted and lands
//! here.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::write_json_str;

/// An append-only JSON-lines log; cheap to clone, shared between stages.
/// A `std` mutex: writes are short and never held across an await.
#[derive(Clone)]
pub struct RecordLog {
    inner: Option<Arc<Mutex<LogInner>>>,
}

struct LogInner {
    path: String,
    out: Box<dyn Write + Send>,
    written: u64,
}

impl RecordLog {
    /// A log that keeps nothing (records are still counted by the caller).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Append to the file at `path` (`-` = stderr).
    pub fn open(path: &str) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stderr())
        } else {
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new().create(true).append(true).open(path)?,
            ))
        };
        Ok(Self {
            inner: Some(Arc::new(Mutex::new(LogInner {
                path: path.to_string(),
                out,
                written: 0,
            }))),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Append one entry: `{"reason", "source", "position", <extra fields>, "raw"}`.
    /// `raw` is kept as text (lossily decoded if it is not UTF-8).
    pub fn write(&self, reason: &str, source: &str, position: u64, extra: &[(&str, &str)], raw: &[u8]) {
        let Some(inner) = &self.inner else { return };
        let mut line = String::with_capacity(raw.len() + 96);
        line.push_str("{\"reason\":");
        write_json_str(&mut line, reason);
        line.push_str(",\"source\":");
        write_json_str(&mut line, source);
        line.push_str(",\"position\":");
        line.push_str(&position.to_string());
        for (k, v) in extra {
            line.push(',');
            write_json_str(&mut line, k);
            line.push(':');
            write_json_str(&mut line, v);
        }
        line.push_str(",\"raw\":");
        write_json_str(&mut line, &String::from_utf8_lossy(raw));
        line.push_str("}\n");
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = g.out.write_all(line.as_bytes()) {
            tracing::error!(path = %g.path, error = %e, "cannot write to the record log");
        }
        g.written += 1;
    }

    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
            let _ = g.out.flush();
        }
    }
}
