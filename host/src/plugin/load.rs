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
        let limits = declared_limits(bytes, limits).map_err(&refused)?;
        let (component, from_cache) = self.compile(bytes, &hash).map_err(&refused)?;
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
            from_cache,
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

/// `limits` with the memory limit the component declares for itself, if it
/// declares one within `limits.max_memory_bytes`.
fn declared_limits(bytes: &[u8], limits: Limits) -> Result<Limits, String> {
    let Some(mib) = super::sections::declared_memory_limit_mib(bytes)? else {
        return Ok(limits);
    };
    if mib < 2 || mib << 20 > limits.max_memory_bytes {
        return Err(format!(
            "declares a memory limit of {mib} MiB (custom section {}), outside 2..={} MiB (plugins.max-memory-limit-mib)",
            super::sections::MEMORY_LIMIT_SECTION,
            limits.max_memory_bytes >> 20
        ));
    }
    Ok(Limits {
        memory_bytes: mib << 20,
        ..limits
    })
}

impl PluginEngine {
    /// [`PluginEngine::compile_or_read`], once for all the loads of the
    /// same component at the same time (see `EngineInner::compiling`).
    /// Returns whether the component was read from the cache or compiled
    /// by another load.
    fn compile(&self, bytes: &[u8], hash: &str) -> Result<(Component, bool), String> {
        let lock = || self.inner.compiling.lock().unwrap_or_else(|e| e.into_inner());
        let cell = lock().entry(hash.to_string()).or_default().clone();
        let mut ran = false;
        let result = cell
            .get_or_init(|| {
                ran = true;
                self.compile_or_read(bytes, hash)
            })
            .clone();
        {
            let mut map = lock();
            if map.get(hash).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(hash);
            }
        }
        let (component, from_cache) = result?;
        Ok((component, from_cache || !ran))
    }

    /// Compile `bytes` (SHA-256 `hash`), or read them compiled from the
    /// cache directory. Returns whether they came from the cache. The cache
    /// is best effort: a file that cannot be read or written is logged and
    /// the component compiled.
    fn compile_or_read(&self, bytes: &[u8], hash: &str) -> Result<(Component, bool), String> {
        let engine = &self.inner.engine;
        let compile =
            || Component::from_binary(engine, bytes).map_err(|e| format!("not a valid WebAssembly component: {e:#}"));
        let Some(dir) = &self.inner.cache_dir else {
            return Ok((compile()?, false));
        };
        // The same component compiled by another wasmtime or with other
        // settings is another file.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        let path = dir.join(format!(
            "{hash}-{:016x}-{}.cwasm",
            std::hash::Hasher::finish(&h),
            env!("CARGO_PKG_VERSION")
        ));
        // Read into memory rather than mapped: a file changed in place while
        // mapped would crash the process (SIGBUS).
        if let Ok(compiled) = std::fs::read(&path) {
            // SAFETY: wasmtime runs precompiled code as trusted. The files
            // are written only by this function, under the component's hash
            // and the engine's settings, into a directory the operator keeps
            // private (see `plugins.cache-dir`); wasmtime checks that the
            // bytes are a compiled artifact for this engine.
            match unsafe { Component::deserialize(engine, &compiled) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "a cached compiled plugin cannot be read; compiling it again");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile()?;
        let stored = component.serialize().map_err(|e| e.to_string()).and_then(|compiled| {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            // A name of its own: loads in several threads or processes may
            // store the same component at once; the last rename wins.
            static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            std::fs::write(&tmp, compiled).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
        });
        if let Err(e) = stored {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot keep the compiled plugin in the cache directory (plugins.cache-dir)");
        }
        Ok((component, false))
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
    /// Time to compile (or read from the cache), link, instantiate and
    /// dry-run it.
    pub compile_time: Duration,
    /// Whether the compiled code came from `plugins.cache-dir`.
    pub from_cache: bool,
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
            recycled: 0,
            printed: Default::default(),
            last_stderr: String::new(),
        })
    }

    fn new_store(&self) -> Result<(Store<Sandbox>, Feature), PluginError> {
        new_store(&self.engine, &self.pre, self.limits).map_err(|e| PluginError::Refused {
            plugin: self.label(),
            reason: format!("cannot instantiate: {e:#}"),
        })
    }
}
