//! A directory of plugins: every `*.wasm` in it, one view each.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Limits, Plugin, PluginEngine, PluginError};

/// Load every `.wasm` in `dir`, in name order. A plugin that fails to load,
/// or that declares a view another plugin already serves, is reported and
/// skipped; the rest run. Fails only when the directory cannot be read.
pub fn load_dir(engine: &PluginEngine, dir: &Path, limits: Limits) -> Result<Vec<Arc<Plugin>>, PluginError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| PluginError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    for path in paths {
        match engine.load_file(&path, limits) {
            Ok(p) => {
                if let Some(other) = plugins.iter().find(|o| o.declaration.view == p.declaration.view) {
                    tracing::error!(path = %path.display(), view = %p.declaration.view, other = %other.source, "plugin refused: another plugin already serves this view");
                    continue;
                }
                tracing::info!(path = %path.display(), view = %p.declaration.view, version = %p.declaration.version, hash = %p.short_hash(), window = %p.declaration.window, load_ms = p.compile_time.as_millis() as u64, cached = p.from_cache, "plugin loaded");
                plugins.push(Arc::new(p));
            }
            Err(e) => tracing::error!(path = %path.display(), error = %e, "plugin refused"),
        }
    }
    Ok(plugins)
}

impl Limits {
    /// The limits `plugins.memory-limit-mib`, `plugins.max-memory-limit-mib`
    /// and `plugins.batch-deadline` set.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Limits {
            memory_bytes: config.plugins.memory_limit_mib << 20,
            max_memory_bytes: config.plugins.max_memory_limit_mib << 20,
            deadline: config.plugins.batch_deadline,
        }
    }
}
