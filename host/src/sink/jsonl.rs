//! The JSON-lines sink: one line per fired window, to a file or stdout.

use std::io::Write;

use super::{FeatureRecord, Sink, SinkError, write_json_str};

/// The line shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JsonlFormat {
    /// docs/semantics.md, "The output record": `{"view","key","window_start","window_end","fields":{..}}`.
    #[default]
    Record,
    /// The flat shape of the Flink job's output (view, user_id, window bounds
    /// and fields at the top level), to compare the two (docs/semantics.md,
    /// "Comparing with the Flink job").
    Flink,
}

pub struct JsonlSink {
    name: String,
    out: Box<dyn Write + Send>,
    format: JsonlFormat,
    line: String,
}

impl JsonlSink {
    /// `path` `-` is stdout.
    pub fn create(path: &str, format: JsonlFormat) -> Result<Self, SinkError> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()))
        } else {
            let f = std::fs::File::create(path).map_err(|source| SinkError::Io {
                sink: path.to_string(),
                source,
            })?;
            Box::new(std::io::BufWriter::with_capacity(1 << 16, f))
        };
        Ok(Self::new(path, out, format))
    }

    pub fn new(name: &str, out: Box<dyn Write + Send>, format: JsonlFormat) -> Self {
        Self {
            name: name.to_string(),
            out,
            format,
            line: String::with_capacity(256),
        }
    }

    /// Render one record as a line (without the newline).
    pub fn render(record: &FeatureRecord, format: JsonlFormat, line: &mut String) {
        use std::fmt::Write;
        line.clear();
        match format {
            JsonlFormat::Record => {
                line.push_str("{\"view\":");
                write_json_str(line, &record.view);
                line.push_str(",\"key\":");
                write_json_str(line, &record.key);
                let _ = write!(
                    line,
                    ",\"window_start\":{},\"window_end\":{},\"fields\":{{",
                    record.window_start, record.window_end
                );
                for (i, (f, v)) in record.fields.iter().zip(&record.values).enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    write_json_str(line, &f.name);
                    line.push(':');
                    v.write_json(line);
                }
                line.push_str("}}");
            }
            JsonlFormat::Flink => {
                line.push_str("{\"view\":");
                write_json_str(line, &record.view);
                line.push_str(",\"user_id\":");
                write_json_str(line, record.entity());
                let _ = write!(
                    line,
                    ",\"window_start\":{},\"window_end\":{}",
                    record.window_start, record.window_end
                );
                for (f, v) in record.fields.iter().zip(&record.values) {
                    if f.name == "user_id" {
                        continue;
                    }
                    line.push(',');
                    write_json_str(line, &f.name);
                    line.push(':');
                    v.write_json(line);
                }
                line.push('}');
            }
        }
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        for r in records {
            Self::render(r, self.format, &mut self.line);
            self.line.push('\n');
            self.out
                .write_all(self.line.as_bytes())
                .map_err(|source| SinkError::Io {
                    sink: self.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })
    }
}
