//! What a feature author writes against: the [`Feature`] trait and the plain
//! Rust types it speaks ([`Event`], [`Window`], [`Value`], [`Declaration`]).
//!
//! Nothing here knows about Wasm, the generated bindings or byte layouts; the
//! adapter (`crate::adapter`) translates. That is what lets a feature crate
//! unit-test its arithmetic natively with `cargo test`.

use std::fmt;

/// One event, borrowed from the packed batch (no copies of its strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    /// Event time, epoch milliseconds.
    pub time_ms: i64,
    pub price: f64,
    /// Compared as given: `"view"` and `"View"` are different types.
    pub event_type: &'a str,
    /// The value of the view's key field, as text.
    pub key: &'a str,
    /// The event's other top-level fields as one JSON object, or `""`.
    pub extra: &'a str,
}

impl Event<'_> {
    /// The top-level field `name` of the event's extra fields, or `None` when
    /// there is no such field (or `extra` is empty or not a JSON object).
    ///
    /// Parses `extra` on every call: fine for a field or two, but a feature
    /// reading many fields should parse `extra` once itself.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        if self.extra.is_empty() {
            return None;
        }
        let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(self.extra).ok()?;
        object.remove(name)
    }
}

/// The window being finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window<'a> {
    /// The key's value (`user_id`), as text.
    pub key: &'a str,
    /// Inclusive start, epoch milliseconds.
    pub start_ms: i64,
    /// Exclusive end, epoch milliseconds.
    pub end_ms: i64,
}

/// The type of an output field (WIT `field-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Integer,
    Float,
    Boolean,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
        })
    }
}

/// One output value; its variant must match the declared [`FieldType`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Value {
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::Text(_) => FieldType::Text,
            Value::Integer(_) => FieldType::Integer,
            Value::Float(_) => FieldType::Float,
            Value::Boolean(_) => FieldType::Boolean,
        }
    }
}

/// How the host groups a key's events into windows (WIT `window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumbling { size_ms: u64 },
    Sliding { size_ms: u64, slide_ms: u64 },
    Session { gap_ms: u64 },
}

/// One output field (WIT `field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
}

/// What a plugin is (WIT `declaration`), built like
/// `Declaration::sliding("user_features", 3_600_000, 600_000).key_field("user_id").integer("n")`.
///
/// Defaults: version `"0.0.0"`, no description, no key field (the host
/// refuses an empty one, so set it), no fields, `ttl_seconds` 0 (no expiry),
/// `state_version` 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    pub view: String,
    pub version: String,
    pub description: String,
    pub window: WindowKind,
    pub key_field: String,
    /// In the order `finish` returns their values.
    pub fields: Vec<Field>,
    pub ttl_seconds: u64,
    pub state_version: u32,
}

impl Declaration {
    pub fn new(view: impl Into<String>, window: WindowKind) -> Self {
        Declaration {
            view: view.into(),
            version: "0.0.0".into(),
            description: String::new(),
            window,
            key_field: String::new(),
            fields: Vec::new(),
            ttl_seconds: 0,
            state_version: 1,
        }
    }

    pub fn sliding(view: impl Into<String>, size_ms: u64, slide_ms: u64) -> Self {
        Self::new(view, WindowKind::Sliding { size_ms, slide_ms })
    }

    pub fn session(view: impl Into<String>, gap_ms: u64) -> Self {
        Self::new(view, WindowKind::Session { gap_ms })
    }

    pub fn tumbling(view: impl Into<String>, size_ms: u64) -> Self {
        Self::new(view, WindowKind::Tumbling { size_ms })
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn key_field(mut self, key_field: impl Into<String>) -> Self {
        self.key_field = key_field.into();
        self
    }

    pub fn ttl_seconds(mut self, ttl_seconds: u64) -> Self {
        self.ttl_seconds = ttl_seconds;
        self
    }

    pub fn state_version(mut self, state_version: u32) -> Self {
        self.state_version = state_version;
        self
    }

    /// Appends an output field.
    pub fn field(mut self, name: impl Into<String>, ty: FieldType) -> Self {
        self.fields.push(Field { name: name.into(), ty });
        self
    }

    pub fn text(self, name: impl Into<String>) -> Self {
        self.field(name, FieldType::Text)
    }

    pub fn integer(self, name: impl Into<String>) -> Self {
        self.field(name, FieldType::Integer)
    }

    pub fn float(self, name: impl Into<String>) -> Self {
        self.field(name, FieldType::Float)
    }

    pub fn boolean(self, name: impl Into<String>) -> Self {
        self.field(name, FieldType::Boolean)
    }
}

/// A feature's logic: a state, how events change it, how states combine and
/// what a window's state outputs.
///
/// Every method is a pure function of its arguments (the component has no
/// clock, files or network). A panic traps the component; the host contains
/// it, but an error value is kinder, so decoding returns `Result`.
pub trait Feature {
    /// The state of one slice or session. `Default` is the empty state: what a
    /// new window starts from.
    type State: Default;

    /// Called on load and by the adapter to check `finish`'s output; keep it
    /// cheap and deterministic.
    fn declare() -> Declaration;

    /// Apply one event.
    fn update(state: &mut Self::State, event: &Event<'_>);

    /// Fold `other` into `into`. States are merged in a fixed order (oldest
    /// first), so a non-commutative merge is still deterministic.
    fn merge(into: &mut Self::State, other: &Self::State);

    /// The window's output values, one per declared field, in declaration
    /// order and of the declared types.
    fn finish(state: &Self::State, window: &Window<'_>) -> Vec<Value>;

    /// Append the state's encoding (in the current `state_version`) to `out`.
    /// It runs for every state an `update` batch touches: a fixed-size state
    /// is cheapest assembled in an array and appended once (the seed plugins
    /// do this), rather than appended a field at a time.
    fn encode(state: &Self::State, out: &mut Vec<u8>);

    /// Decode a state written by [`Feature::encode`]. Never called with an
    /// empty slice: an empty blob is `State::default()`.
    fn decode(bytes: &[u8]) -> Result<Self::State, String>;

    /// Whether [`Feature::migrate`] can read states of `from_version`. Asked
    /// before any state is touched, so a migration the plugin cannot do is
    /// reported as `unsupported` even for an empty batch.
    fn migrates_from(from_version: u32) -> bool {
        let _ = from_version;
        false
    }

    /// Decode a state written by an older `state_version` (one for which
    /// [`Feature::migrates_from`] is true). Never called with an empty slice.
    fn migrate(from_version: u32, bytes: &[u8]) -> Result<Self::State, String> {
        let _ = bytes;
        Err(format!("no migration from state version {from_version}"))
    }
}
