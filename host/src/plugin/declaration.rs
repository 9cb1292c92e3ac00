//! A plugin's declaration, as the host uses it: converted from the WIT record
//! and validated once, when the plugin is loaded.

use std::sync::Arc;

/// The window a view runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum WindowSpec {
    /// Sliding (or, with `slide_ms == size_ms`, tumbling) windows.
    Sliding {
        size_ms: i64,
        slide_ms: i64,
    },
    Session {
        gap_ms: i64,
    },
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = |ms: i64| humantime::format_duration(std::time::Duration::from_millis(ms as u64));
        match *self {
            WindowSpec::Sliding { size_ms, slide_ms } if size_ms == slide_ms => {
                write!(f, "tumbling {}", d(size_ms))
            }
            WindowSpec::Sliding { size_ms, slide_ms } => {
                write!(f, "sliding {} every {}", d(size_ms), d(slide_ms))
            }
            WindowSpec::Session { gap_ms } => write!(f, "session gap {}", d(gap_ms)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Float,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
}

/// What a plugin is; see `declaration` in `wit/feature.wit`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Declaration {
    pub view: String,
    pub version: String,
    pub description: String,
    pub window: WindowSpec,
    pub key_field: String,
    pub fields: Arc<[Field]>,
    pub ttl_seconds: u64,
    pub state_version: u32,
}

impl Declaration {
    /// Check what the host relies on; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if !name_ok(&self.view) {
            return Err(format!(
                "view name {:?} must be 1-128 characters of [A-Za-z0-9_.-] (it is a Redis key prefix)",
                self.view
            ));
        }
        if self.key_field.is_empty() {
            return Err("key-field is empty".into());
        }
        match self.window {
            WindowSpec::Sliding { size_ms, slide_ms } => {
                if size_ms <= 0 || slide_ms <= 0 {
                    return Err(format!(
                        "sliding window size ({size_ms} ms) and slide ({slide_ms} ms) must be positive"
                    ));
                }
                if size_ms % slide_ms != 0 {
                    return Err(format!(
                        "sliding window size ({size_ms} ms) must be a multiple of its slide ({slide_ms} ms)"
                    ));
                }
                if size_ms / slide_ms > 1000 {
                    return Err(format!(
                        "sliding window of {size_ms} ms every {slide_ms} ms has more than 1000 slices"
                    ));
                }
            }
            WindowSpec::Session { gap_ms } => {
                if gap_ms <= 0 {
                    return Err(format!("session gap ({gap_ms} ms) must be positive"));
                }
            }
        }
        if self.fields.is_empty() {
            return Err("declares no output fields".into());
        }
        for (i, f) in self.fields.iter().enumerate() {
            if f.name.is_empty() {
                return Err(format!("output field {i} has an empty name"));
            }
            if f.name.starts_with('_') {
                return Err(format!(
                    "output field {:?}: names beginning with `_` are the engine's (it keeps `_window_end` in each Redis hash)",
                    f.name
                ));
            }
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("output field {:?} is declared twice", f.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Declaration {
        Declaration {
            view: "user_features".into(),
            version: "1".into(),
            description: String::new(),
            window: WindowSpec::Sliding {
                size_ms: 3_600_000,
                slide_ms: 600_000,
            },
            key_field: "user_id".into(),
            fields: vec![Field {
                name: "user_id".into(),
                ty: FieldType::Text,
            }]
            .into(),
            ttl_seconds: 7200,
            state_version: 1,
        }
    }

    #[test]
    fn seed_declaration_is_valid() {
        assert_eq!(seed().validate(), Ok(()));
    }

    #[test]
    fn invalid_declarations_say_why() {
        let mut d = seed();
        d.window = WindowSpec::Sliding {
            size_ms: 3_600_000,
            slide_ms: 700_000,
        };
        assert!(d.validate().unwrap_err().contains("multiple of its slide"));
        let mut d = seed();
        d.view = "user features".into();
        assert!(d.validate().unwrap_err().contains("Redis key prefix"));
        let mut d = seed();
        d.fields = vec![d.fields[0].clone(), d.fields[0].clone()].into();
        assert!(d.validate().unwrap_err().contains("declared twice"));
        let mut d = seed();
        let mut field = d.fields[0].clone();
        field.name = "_window_end".into();
        d.fields = vec![field].into();
        assert!(d.validate().unwrap_err().contains("are the engine's"));
        let mut d = seed();
        d.window = WindowSpec::Session { gap_ms: 0 };
        assert!(d.validate().unwrap_err().contains("positive"));
    }
}
