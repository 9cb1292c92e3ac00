//! Loading a component into a [`Plugin`] ([`PluginEngine::load`]): compile,
//! link, check the world, read and validate the declaration, and dry-run
//! every call before the plugin may serve. A [`Plugin`] then makes fresh
//! [`PluginInstance`]s.
//!
//! It owns what a valid plugin is at load time. It must not depend on views,
//! windows or anything running: nothing here touches a running view.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::Component;

use super::PluginError;
use super::bindings::featherflow::plugin::types as wit;
use super::bindings::{Feature, FeaturePre};
use super::codec::Packed;
use super::declaration::{Declaration, Field, FieldType, WindowSpec};
use super::engine::PluginEngine;
use super::instance::PluginInstance;
use super::sandbox::{Limits, Sandbox, new_store};

impl PluginEngine {
    /// Load a plugin from a file.
    pub fn load_file(&self, path: &std::path::Path, limits: Limits) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes, &path.display().to_string(), limits)
    }

    /// Compile, link, instantiate and validate a component: the world must
    /// match, the declaration must be valid, and a dry run on a small batch
    /// must succeed. Nothing here touches a running view.
    pub fn load(&self, bytes: &[u8], source: &str, limits: Limits) -> Result<Plugin, PluginError> {
        let hash = hex::encode(Sha256::digest(bytes));
        let refused = |reason: String| PluginError::Refused {
            plugin: source.to_string(),
            reason,
        };
        let started = Instant::now();
        let component = Component::from_binary(&self.inner.engine, bytes)
            .map_err(|e| refused(format!("not a valid WebAssembly component: {e:#}")))?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| refused(format!("imports something the sandbox does not provide: {e:#}")))?;
        let pre = FeaturePre::new(pre).map_err(|e| {
            refused(format!(
                "does not implement the featherflow:plugin/feature world: {e:#}"
            ))
        })?;
        let mut plugin = Plugin {
            declaration: placeholder_declaration(),
            hash,
            source: source.to_string(),
            pre,
            engine: self.clone(),
            limits,
            compile_time: Duration::ZERO,
        };
        let mut instance = plugin.instantiate()?;
        let wit_decl = instance.with_deadline(|b, s| b.call_describe(s), "describe")?;
        let declaration = convert_declaration(wit_decl).map_err(&refused)?;
        declaration
            .validate()
            .map_err(|e| refused(format!("invalid declaration: {e}")))?;
        plugin.declaration = declaration.clone();
        instance.label = plugin.label();
        dry_run(&mut instance, &declaration).map_err(|e| refused(format!("dry run failed: {e}")))?;
        plugin.compile_time = started.elapsed();
        Ok(plugin)
    }
}

fn placeholder_declaration() -> Declaration {
    Declaration {
        view: String::new(),
        version: String::new(),
        description: String::new(),
        window: WindowSpec::Session { gap_ms: 1 },
        key_field: String::new(),
        fields: Arc::from(Vec::new()),
        ttl_seconds: 0,
        state_version: 0,
    }
}

fn convert_declaration(d: wit::Declaration) -> Result<Declaration, String> {
    let ms = |v: u64, what: &str| i64::try_from(v).map_err(|_| format!("{what} {v} ms is too large"));
    let window = match d.window {
        wit::Window::Tumbling(size) => {
            let size = ms(size, "tumbling size")?;
            WindowSpec::Sliding {
                size_ms: size,
                slide_ms: size,
            }
        }
        wit::Window::Sliding(s) => WindowSpec::Sliding {
            size_ms: ms(s.size_ms, "sliding size")?,
            slide_ms: ms(s.slide_ms, "sliding slide")?,
        },
        wit::Window::Session(s) => WindowSpec::Session {
            gap_ms: ms(s.gap_ms, "session gap")?,
        },
    };
    let fields: Vec<Field> = d
        .fields
        .into_iter()
        .map(|f| Field {
            name: f.name,
            ty: match f.type_ {
                wit::FieldType::Text => FieldType::Text,
                wit::FieldType::Integer => FieldType::Integer,
                wit::FieldType::Float => FieldType::Float,
                wit::FieldType::Boolean => FieldType::Boolean,
            },
        })
        .collect();
    Ok(Declaration {
        view: d.view,
        version: d.version,
        description: d.description,
        window,
        key_field: d.key_field,
        fields: fields.into(),
        ttl_seconds: d.ttl_seconds,
        state_version: d.state_version,
    })
}

/// Exercise every call on a small synthetic batch before the plugin may
/// serve: update two events into a new state, merge, finish, and check the
/// output against the declaration.
fn dry_run(instance: &mut PluginInstance, decl: &Declaration) -> Result<(), PluginError> {
    let mut states = Packed::default();
    states.clear();
    states.push_state(&[]);
    let mut events = Packed::default();
    events.clear();
    events.push_event(0, 1_000, 1.5, "view", "dry-run", "");
    events.push_event(0, 2_000, 2.5, "purchase", "dry-run", "");
    let new = instance.update(states.bytes(), events.bytes(), 1)?;
    let state = new.into_iter().next().unwrap_or_default();
    let mut group = Packed::default();
    group.clear();
    group.push_group([state.as_slice(), state.as_slice()].into_iter());
    instance.merge(group.bytes(), 1)?;
    let mut windows = Packed::default();
    windows.clear();
    windows.push_window("dry-run", 0, 3_000, std::iter::once(state.as_slice()));
    let mut values = Vec::new();
    instance.finish(windows.bytes(), 1, &decl.fields, &mut values)?;
    Ok(())
}

/// A loaded, validated plugin: compiled and pre-linked, ready to instantiate.
pub struct Plugin {
    pub declaration: Declaration,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// Where it came from (a path, or "upload").
    pub source: String,
    pub limits: Limits,
    /// Time to compile, link, instantiate and dry-run it.
    pub compile_time: Duration,
    pre: FeaturePre<Sandbox>,
    engine: PluginEngine,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("view", &self.declaration.view)
            .field("version", &self.declaration.version)
            .field("hash", &self.short_hash())
            .finish()
    }
}

impl Plugin {
    pub fn short_hash(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }

    /// `view@version (hash)`, for logs and errors.
    pub fn label(&self) -> String {
        format!(
            "{}@{} ({})",
            self.declaration.view,
            self.declaration.version,
            self.short_hash()
        )
    }

    /// A fresh sandboxed instance.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        let (store, bindings) = self.new_store()?;
        Ok(PluginInstance {
            label: self.label(),
            store,
            bindings,
            pre: self.pre.clone(),
            engine: self.engine.clone(),
            limits: self.limits,
            replaced: 0,
        })
    }

    fn new_store(&self) -> Result<(Store<Sandbox>, Feature), PluginError> {
        new_store(&self.engine, &self.pre, self.limits).map_err(|e| PluginError::Refused {
            plugin: self.label(),
            reason: format!("cannot instantiate: {e:#}"),
        })
    }
}
