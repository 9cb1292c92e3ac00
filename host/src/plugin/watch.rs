//! Watching the plugin directory: deploy what appears or changes, stop
//! what disappears.
//!
//! File events are debounced (nothing happens until the directory has been
//! quiet for [`DEBOUNCE`]); only `*.wasm` names count, so the safe way to
//! deploy is to write `x.wasm.tmp` (or anywhere else) and rename it to
//! `x.wasm` — a rename is atomic, and a half-written file is never loaded.
//!
//! A deploy that should drop the view's state (a new state version without a
//! migration, or a changed window) asks for it explicitly: a file `x.reset`
//! beside `x.wasm` when the new `x.wasm` arrives. The marker is consumed by
//! that deploy.
//! The event loop applies what the watcher sends (the pipeline does, between
//! two blocks); this module never touches the engine.
//!
//! Everything expensive — reading, compiling, linking, instantiating,
//! validating, the dry run — happens here, on the watcher's thread, off the
//! hot path; the engine only receives a ready [`PluginEvent::Deploy`] and
//! swaps between two batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use super::{Limits, Plugin, PluginEngine, PluginError, PluginInstance};

/// Quiet time before a burst of file events is acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// What the watcher tells the engine.
pub enum PluginEvent {
    /// A validated plugin and a fresh instance of it, ready to serve.
    Deploy {
        path: PathBuf,
        plugin: Arc<Plugin>,
        /// Boxed: an instance (a whole wasmtime store) is large.
        instance: Box<PluginInstance>,
        /// When the file change was noticed (for swap latency).
        noticed: Instant,
        /// Drop the view's state (an `x.reset` marker was present).
        reset: bool,
    },
    /// A file could not be loaded; the running version (if any) stays.
    Refused { path: PathBuf, reason: String },
    /// A plugin file was removed: stop its view.
    Removed { path: PathBuf, view: String },
}

impl PluginEvent {
    /// The same event for another engine core: a deploy gets an instance of
    /// its own (or, if that cannot be made, is refused there).
    fn for_another_core(&self) -> PluginEvent {
        match self {
            PluginEvent::Deploy {
                path,
                plugin,
                noticed,
                reset,
                ..
            } => match plugin.instantiate() {
                Ok(instance) => PluginEvent::Deploy {
                    path: path.clone(),
                    plugin: plugin.clone(),
                    instance: Box::new(instance),
                    noticed: *noticed,
                    reset: *reset,
                },
                Err(e) => PluginEvent::Refused {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            },
            PluginEvent::Refused { path, reason } => PluginEvent::Refused {
                path: path.clone(),
                reason: reason.clone(),
            },
            PluginEvent::Removed { path, view } => PluginEvent::Removed {
                path: path.clone(),
                view: view.clone(),
            },
        }
    }
}

/// One watcher for several engine cores (a group engine's partitions): the
/// directory is scanned once per change and every core gets the same
/// decision, each deploy with an instance of its own. With a watcher per
/// core, each compiled the new file, and only the first to scan saw an
/// `x.reset` marker (it consumes it): the others swapped with the states
/// kept, or refused. It also took an inotify instance and a thread per
/// partition.
#[derive(Clone)]
pub struct WatchHub {
    cores: Arc<Mutex<Vec<Sender<PluginEvent>>>>,
}

impl WatchHub {
    /// Watch `dir` ([`watch`]) for the cores that [`WatchHub::subscribe`].
    pub fn start(
        dir: &Path,
        engine: PluginEngine,
        limits: Limits,
        known: BTreeMap<PathBuf, (String, String)>,
    ) -> Result<Self, PluginError> {
        let events = watch(dir, engine, limits, known)?;
        let cores: Arc<Mutex<Vec<Sender<PluginEvent>>>> = Arc::default();
        let hub = cores.clone();
        std::thread::Builder::new()
            .name("plugin-hub".into())
            .spawn(move || {
                for event in events {
                    // Instantiate for each core with the list unlocked: a
                    // core that subscribes meanwhile (a partition assigned)
                    // does not wait for them, and loads the new file from
                    // the directory itself.
                    let cores = std::mem::take(&mut *hub.lock().unwrap_or_else(|e| e.into_inner()));
                    let n = cores.len();
                    let mut event = Some(event);
                    let mut open = Vec::with_capacity(n);
                    for (i, core) in cores.into_iter().enumerate() {
                        let e = if i + 1 == n {
                            event.take().expect("the last core gets the event itself")
                        } else {
                            event.as_ref().expect("kept for the last core").for_another_core()
                        };
                        // A core that is gone (its partition revoked) is dropped.
                        if core.send(e).is_ok() {
                            open.push(core);
                        }
                    }
                    hub.lock().unwrap_or_else(|e| e.into_inner()).extend(open);
                }
            })
            .map_err(|e| PluginError::Watch {
                dir: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { cores })
    }

    /// The events from now on, for one more core. Subscribe before loading
    /// the directory: a deploy in between then arrives as well (a deploy of
    /// what the core already runs changes nothing).
    pub fn subscribe(&self) -> Receiver<PluginEvent> {
        let (tx, rx) = channel();
        self.cores.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }
}

/// What [`watch`] is told is loaded already: each plugin's file, with its
/// view and content hash.
pub fn known(plugins: &[Arc<Plugin>]) -> BTreeMap<PathBuf, (String, String)> {
    plugins
        .iter()
        .map(|p| (PathBuf::from(&p.source), (p.declaration.view.clone(), p.hash.clone())))
        .collect()
}

/// Start watching `dir`. `known` maps the files already loaded to their
/// (view, content hash), so that an unchanged file is not redeployed.
pub fn watch(
    dir: &Path,
    engine: PluginEngine,
    limits: Limits,
    known: BTreeMap<PathBuf, (String, String)>,
) -> Result<Receiver<PluginEvent>, PluginError> {
    let failed = |reason: String| PluginError::Watch {
        dir: dir.display().to_string(),
        reason,
    };
    let (tx, rx) = channel();
    let (fs_tx, fs_rx) = channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = fs_tx.send(e);
    })
    .map_err(|e| failed(e.to_string()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| failed(e.to_string()))?;
    let dir_owned = dir.to_path_buf();
    let spawned = std::thread::Builder::new().name("plugin-watch".into()).spawn(move || {
        let dir = dir_owned;
        // The watcher lives as long as this thread.
        let _watcher = watcher;
        let mut known = known;
        // Compiled plugins by content hash: a rollback or an A/B flip back
        // to a version seen before skips compilation.
        let mut compiled: std::collections::HashMap<String, Arc<Plugin>> = std::collections::HashMap::new();
        loop {
            // Wait for a first event, then until the directory is quiet.
            let Ok(first) = fs_rx.recv() else { return };
            let noticed = Instant::now();
            let mut events = vec![first];
            while let Ok(e) = fs_rx.recv_timeout(DEBOUNCE) {
                events.push(e);
            }
            drop(events);
            if !scan(&dir, &engine, limits, &mut known, &mut compiled, &tx, noticed) {
                return;
            }
        }
    });
    spawned.map_err(|e| failed(e.to_string()))?;
    Ok(rx)
}

/// Compare the directory with what is known; send what changed. Returns
/// false when the engine is gone.
fn scan(
    dir: &Path,
    engine: &PluginEngine,
    limits: Limits,
    known: &mut BTreeMap<PathBuf, (String, String)>,
    compiled: &mut std::collections::HashMap<String, Arc<Plugin>>,
    tx: &Sender<PluginEvent>,
    noticed: Instant,
) -> bool {
    let mut present: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .collect(),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the plugin directory");
            return true;
        }
    };
    present.sort();
    for path in &present {
        let Ok(bytes) = std::fs::read(path) else { continue };
        let hash = hex::encode(Sha256::digest(&bytes));
        let marker = reset_marker(path);
        let reset = marker.is_file();
        if known.get(path).is_some_and(|(_, h)| *h == hash) && !reset {
            continue;
        }
        if reset {
            // Consumed by this deploy, whatever its outcome.
            let _ = std::fs::remove_file(&marker);
        }
        let loaded = match compiled.get(&hash) {
            Some(p) => Ok(p.clone()),
            None => engine.load(&bytes, &path.display().to_string(), limits).map(Arc::new),
        };
        let event = match loaded {
            Ok(plugin) => match plugin.instantiate() {
                Ok(instance) => {
                    known.insert(path.clone(), (plugin.declaration.view.clone(), hash.clone()));
                    compiled.insert(hash, plugin.clone());
                    PluginEvent::Deploy {
                        path: path.clone(),
                        plugin,
                        instance: Box::new(instance),
                        noticed,
                        reset,
                    }
                }
                Err(e) => PluginEvent::Refused {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            },
            Err(e) => PluginEvent::Refused {
                path: path.clone(),
                reason: e.to_string(),
            },
        };
        if tx.send(event).is_err() {
            return false;
        }
    }
    let gone: Vec<PathBuf> = known.keys().filter(|p| !present.contains(p)).cloned().collect();
    for path in gone {
        let (view, _) = known.remove(&path).expect("known");
        if tx.send(PluginEvent::Removed { path, view }).is_err() {
            return false;
        }
    }
    true
}

/// The file beside `x.wasm` that asks its next deploy to reset the view.
pub fn reset_marker(wasm: &Path) -> PathBuf {
    wasm.with_extension("reset")
}
