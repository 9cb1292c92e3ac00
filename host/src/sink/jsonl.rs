//! The JSON-lines sink: one line per fired window, to a file or stdout.

use std::io::Write;
use std::sync::Arc;

use super::{FeatureRecord, Sink, SinkError, write_json_str};
use crate::plugin::declaration::Field;

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
    renderer: LineRenderer,
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
            renderer: LineRenderer::new(format),
            line: String::with_capacity(256),
        }
    }
}

/// Renders records as lines. A view's name and field names are escaped once
/// and kept (replay writes a line per window fired, a million a second).
#[derive(Debug, Default)]
pub struct LineRenderer {
    format: JsonlFormat,
    views: Vec<ViewNames>,
}

/// One view's rendered names.
#[derive(Debug)]
struct ViewNames {
    view: Arc<str>,
    fields: Arc<[Field]>,
    /// `{"view":"…","key":` or, for Flink's shape, `{"view":"…","user_id":`.
    head: String,
    /// Per field, `"name":` with its leading comma; `None` for a field the
    /// shape leaves out (Flink's `user_id`, which is the key).
    names: Vec<Option<String>>,
}

impl LineRenderer {
    /// Views kept; beyond it (many hot swaps) the list starts again.
    const MAX_VIEWS: usize = 16;

    pub fn new(format: JsonlFormat) -> Self {
        Self {
            format,
            views: Vec::new(),
        }
    }

    /// Render one record as a line (without the newline) into `line`.
    pub fn render(&mut self, record: &FeatureRecord, line: &mut String) {
        line.clear();
        let format = self.format;
        let names = self.names(record);
        line.push_str(&names.head);
        match format {
            JsonlFormat::Record => {
                write_json_str(line, &record.key);
                push_bounds(line, record);
                line.push_str(",\"fields\":{");
            }
            JsonlFormat::Flink => {
                write_json_str(line, record.entity());
                push_bounds(line, record);
            }
        }
        for (name, v) in names.names.iter().zip(&record.values) {
            if let Some(name) = name {
                line.push_str(name);
                v.write_json(line);
            }
        }
        line.push_str(match format {
            JsonlFormat::Record => "}}",
            JsonlFormat::Flink => "}",
        });
    }

    fn names(&mut self, record: &FeatureRecord) -> &ViewNames {
        let found = self
            .views
            .iter()
            .position(|n| Arc::ptr_eq(&n.fields, &record.fields) && n.view == record.view);
        let at = match found {
            Some(at) => at,
            None => {
                if self.views.len() >= Self::MAX_VIEWS {
                    self.views.clear();
                }
                self.views.push(ViewNames::new(self.format, record));
                self.views.len() - 1
            }
        };
        &self.views[at]
    }
}

impl ViewNames {
    fn new(format: JsonlFormat, record: &FeatureRecord) -> Self {
        let mut head = String::from("{\"view\":");
        write_json_str(&mut head, &record.view);
        head.push_str(match format {
            JsonlFormat::Record => ",\"key\":",
            JsonlFormat::Flink => ",\"user_id\":",
        });
        let names = record
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut name = String::new();
                match format {
                    JsonlFormat::Record if i > 0 => name.push(','),
                    JsonlFormat::Record => {}
                    JsonlFormat::Flink if f.name == "user_id" => return None,
                    JsonlFormat::Flink => name.push(','),
                }
                write_json_str(&mut name, &f.name);
                name.push(':');
                Some(name)
            })
            .collect();
        Self {
            view: record.view.clone(),
            fields: record.fields.clone(),
            head,
            names,
        }
    }
}

/// Append `,"window_start":…,"window_end":…` (no formatter: a record per
/// window fired makes this a hot path of replay).
fn push_bounds(line: &mut String, record: &FeatureRecord) {
    let mut n = itoa::Buffer::new();
    line.push_str(",\"window_start\":");
    line.push_str(n.format(record.window_start));
    line.push_str(",\"window_end\":");
    line.push_str(n.format(record.window_end));
}

impl Sink for JsonlSink {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        for r in records {
            self.renderer.render(r, &mut self.line);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::declaration::FieldType;
    use crate::sink::Value;

    fn record(
        view: &str,
        key: &str,
        entity: std::ops::Range<usize>,
        fields: &Arc<[Field]>,
        values: Vec<Value>,
    ) -> FeatureRecord {
        FeatureRecord {
            view: view.into(),
            key: key.into(),
            entity_span: entity,
            window_start: -5,
            window_end: 1_704_067_200_000,
            fields: fields.clone(),
            values,
            ttl_seconds: 0,
            fired_at: std::time::Instant::now(),
        }
    }

    fn field(name: &str, ty: FieldType) -> Field {
        Field { name: name.into(), ty }
    }

    #[test]
    fn both_shapes_of_two_views_in_turn() {
        let user: Arc<[Field]> = vec![
            field("user_id", FieldType::Text),
            field("n", FieldType::Integer),
            field("avg \"p\"", FieldType::Float),
        ]
        .into();
        let session: Arc<[Field]> = vec![field("ok", FieldType::Boolean)].into();
        let a = record(
            "u",
            "u:7\"",
            2..4,
            &user,
            vec![Value::Text("7\"".into()), Value::Integer(3), Value::Float(2.5)],
        );
        let b = record("s\\v", "s\\v:a:-5", 4..5, &session, vec![Value::Boolean(false)]);
        let want_record = [
            r#"{"view":"u","key":"u:7\"","window_start":-5,"window_end":1704067200000,"fields":{"user_id":"7\"","n":3,"avg \"p\"":2.5}}"#,
            r#"{"view":"s\\v","key":"s\\v:a:-5","window_start":-5,"window_end":1704067200000,"fields":{"ok":false}}"#,
        ];
        let want_flink = [
            r#"{"view":"u","user_id":"7\"","window_start":-5,"window_end":1704067200000,"n":3,"avg \"p\"":2.5}"#,
            r#"{"view":"s\\v","user_id":"a","window_start":-5,"window_end":1704067200000,"ok":false}"#,
        ];
        for (format, want) in [(JsonlFormat::Record, want_record), (JsonlFormat::Flink, want_flink)] {
            let mut renderer = LineRenderer::new(format);
            let mut line = String::from("left over");
            // The views alternate, as two views' chunks of fired windows do.
            for r in [&a, &b, &a, &b] {
                renderer.render(r, &mut line);
                let i = if Arc::ptr_eq(&r.fields, &user) { 0 } else { 1 };
                assert_eq!(line, want[i], "{format:?}");
                serde_json::from_str::<serde_json::Value>(&line).expect("valid JSON");
            }
            assert_eq!(renderer.views.len(), 2);
        }
    }

    #[test]
    fn a_swapped_view_gets_its_new_field_names() {
        let v1: Arc<[Field]> = vec![field("a", FieldType::Integer)].into();
        let v2: Arc<[Field]> = vec![field("b", FieldType::Integer)].into();
        let mut renderer = LineRenderer::new(JsonlFormat::Flink);
        let mut line = String::new();
        renderer.render(&record("v", "v:k", 2..3, &v1, vec![Value::Integer(1)]), &mut line);
        assert!(line.ends_with(r#","a":1}"#), "{line}");
        renderer.render(&record("v", "v:k", 2..3, &v2, vec![Value::Integer(1)]), &mut line);
        assert!(line.ends_with(r#","b":1}"#), "{line}");
        for i in 0..LineRenderer::MAX_VIEWS * 2 {
            let fields: Arc<[Field]> = vec![field(&format!("f{i}"), FieldType::Integer)].into();
            renderer.render(
                &record("v", "v:k", 2..3, &fields, vec![Value::Integer(i as i64)]),
                &mut line,
            );
            assert!(line.ends_with(&format!(r#","f{i}":{i}}}"#)), "{line}");
            assert!(renderer.views.len() <= LineRenderer::MAX_VIEWS);
        }
    }
}
