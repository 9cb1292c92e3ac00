//! Checkpoints, engine side: a frozen capture of every view's open window
//! parts (copy-on-write, so the event loop pauses for microseconds), its
//! encoding into chunks (on any thread), and restoring a snapshot into an
//! engine. The byte format itself is [`crate::state::format`].

use super::{Engine, EngineError, ViewCapture};
use crate::state::format::{self, EngineSnapshot, ViewSnapshot};
use crate::state::{CheckpointMeta, PluginRecord, StateError};

impl Engine {
    /// Flush (so every event read so far is in the states and every fired
    /// window is with the sink), then take a frozen copy of the state of
    /// every view: microseconds, whatever the state's size (see
    /// [`CowVec`]). Encode it with [`EngineCapture::encode`], on any thread.
    pub fn capture(&mut self) -> Result<EngineCapture, EngineError> {
        self.flush()?;
        self.sweep_keys();
        Ok(EngineCapture {
            watermark: self.watermarks.current(),
            partition_watermarks: self.watermarks.partitions().map(|(p, wm, _)| (p as u32, wm)).collect(),
            views: self.views.iter().map(|v| v.capture(&self.keys[v.key_table])).collect(),
        })
    }

    /// [`Engine::capture`] and encode, in one go.
    pub fn snapshot(&mut self) -> Result<EngineSnapshot, EngineError> {
        Ok(self.capture()?.encode())
    }

    /// Restore a snapshot into an engine whose views are already added.
    /// A view's state is taken only by a plugin with the same window; a
    /// different state version is migrated by the new plugin or refused.
    pub fn restore(&mut self, snap: &EngineSnapshot, now_ms: i64) -> Result<(), EngineError> {
        let parts: Vec<(usize, i64)> = snap
            .partition_watermarks
            .iter()
            .map(|&(p, wm)| (p as usize, wm))
            .collect();
        self.watermarks.restore(snap.watermark, &parts, now_ms);
        for vs in &snap.views {
            let Some(view) = self.views.iter_mut().find(|v| v.name() == vs.plugin.view) else {
                tracing::warn!(view = %vs.plugin.view, parts = vs.parts, "the checkpoint holds state for a view no loaded plugin serves; that state is dropped");
                continue;
            };
            let refuse = |reason: String| EngineError::View {
                view: vs.plugin.view.clone(),
                reason,
            };
            let d = &view.plugin().declaration;
            if d.window != vs.plugin.window {
                return Err(refuse(format!(
                    "the checkpoint's states are for a {} window (plugin {}), the loaded plugin declares {}: a new window is a new view",
                    vs.plugin.window, vs.plugin.version, d.window
                )));
            }
            let migrate_from = (d.state_version != vs.plugin.state_version).then_some(vs.plugin.state_version);
            let table = &mut self.keys[view.key_table];
            let mut parts = 0;
            for chunk in &vs.chunks {
                parts += view
                    .restore_chunk(table, chunk, snap.watermark)
                    .map_err(|e| refuse(format!("damaged state chunk: {e}")))?;
            }
            if let Some(from) = migrate_from {
                view.migrate_states(from).map_err(|e| {
                    refuse(format!(
                        "the checkpoint's states have state version {from}, the loaded plugin ({}) has {} and cannot migrate them: {e}",
                        view.plugin().label(),
                        view.plugin().declaration.state_version
                    ))
                })?;
            }
            tracing::info!(view = %vs.plugin.view, parts, from_plugin = %vs.plugin.version, "view state restored");
        }
        Ok(())
    }
}

/// The engine's state at one moment, not yet encoded.
pub struct EngineCapture {
    pub watermark: i64,
    pub partition_watermarks: Vec<(u32, i64)>,
    pub views: Vec<ViewCapture>,
}

impl EngineCapture {
    /// The plugin behind every view's states.
    pub fn plugins(&self) -> Vec<PluginRecord> {
        self.views.iter().map(|v| v.plugin.clone()).collect()
    }

    /// The metadata of a checkpoint of this capture, before its chunks are
    /// written. `offsets`: the next offset to read per partition.
    pub fn meta(
        &self,
        id: u64,
        created_ms: i64,
        topic: &str,
        offsets: Vec<(u32, i64)>,
        open_states: u64,
    ) -> CheckpointMeta {
        CheckpointMeta {
            format: crate::state::FORMAT_VERSION,
            id,
            created_ms,
            topic: topic.to_string(),
            offsets,
            watermark: self.watermark,
            partition_watermarks: self.partition_watermarks.clone(),
            plugins: self.plugins(),
            chunks: vec![],
            size_bytes: 0,
            open_states,
            duration_ms: 0,
        }
    }

    /// Encode every view's states into chunks of about 4 MiB.
    pub fn encode(self) -> EngineSnapshot {
        EngineSnapshot {
            watermark: self.watermark,
            partition_watermarks: self.partition_watermarks,
            views: self
                .views
                .into_iter()
                .map(|v| {
                    let (chunks, parts) = v.encode(format::CHUNK_BYTES);
                    ViewSnapshot {
                        plugin: v.plugin,
                        chunks,
                        parts,
                    }
                })
                .collect(),
        }
    }

    /// [`EngineCapture::encode`], handing each chunk to `put(name, bytes)`
    /// as soon as it is made, so that one chunk is in memory at a time.
    /// Stops at the first error of `put`.
    pub fn encode_each<E>(&self, mut put: impl FnMut(String, &[u8]) -> Result<(), E>) -> Result<(), E> {
        for v in &self.views {
            let mut i = 0;
            v.encode_each(format::CHUNK_BYTES, &mut |bytes| {
                let name = format::chunk_name(&v.plugin.view, i);
                i += 1;
                put(name, bytes)
            })?;
        }
        Ok(())
    }

    /// Put this capture into checkpoint `meta.id` of `store`, a chunk at a
    /// time (see [`format::put_chunks`]); commit is the caller's.
    pub fn put_into(
        &self,
        store: &dyn crate::state::CheckpointStore,
        meta: &mut CheckpointMeta,
    ) -> Result<(), StateError> {
        format::put_chunks(store, meta, |put| self.encode_each(put))
    }
}
