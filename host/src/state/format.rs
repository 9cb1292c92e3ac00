//! The checkpoint's byte format, in one place.
//!
//! A checkpoint is a [`CheckpointMeta`] (JSON, the commit record) and named
//! chunks of about [`CHUNK_BYTES`]. Chunk `i` of view `v` is named
//! `view/{v}/{i:05}` ([`chunk_name`]). A chunk is a sequence of window
//! parts, each, little-endian:
//!
//! ```text
//! u32 partition | u32 len, key bytes | i64 start | i64 end | u32 k | k × (u32 len, state bytes)
//! ```
//!
//! `start..end` is the part's time span (a slice of a sliding window, or a
//! session); the `k` states are the plugin's opaque bytes for it. The engine
//! writes parts with [`write_part`] and reads them back with [`PartReader`];
//! this module knows nothing of windows or plugins beyond that.

use super::{CheckpointMeta, CheckpointStore, ChunkInfo, PluginRecord, StateError};
use crate::plugin::codec::Reader;

/// Chunks of a checkpoint are about this size.
pub const CHUNK_BYTES: usize = 4 << 20;

/// The name of chunk `i` of `view`'s states.
pub fn chunk_name(view: &str, i: usize) -> String {
    format!("view/{view}/{i:05}")
}

/// The view a chunk named by [`chunk_name`] belongs to.
pub fn view_of_chunk(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("view/")?;
    let (view, _) = rest.rsplit_once('/')?;
    Some(view)
}

/// Append one window part with its states.
#[inline]
pub fn write_part<'s>(
    out: &mut Vec<u8>,
    partition: u32,
    key: &[u8],
    start: i64,
    end: i64,
    states: impl ExactSizeIterator<Item = &'s [u8]>,
) {
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&end.to_le_bytes());
    out.extend_from_slice(&(states.len() as u32).to_le_bytes());
    for st in states {
        out.extend_from_slice(&(st.len() as u32).to_le_bytes());
        out.extend_from_slice(st);
    }
}

/// One part's header, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeader<'a> {
    pub partition: u32,
    pub key: &'a str,
    pub start: i64,
    pub end: i64,
    /// States that follow ([`PartReader::state`] this many times).
    pub states: usize,
}

/// Reads the parts of one chunk (with the plugin contract's byte reader:
/// the same little-endian, length-prefixed encoding).
pub struct PartReader<'a> {
    r: Reader<'a>,
}

impl<'a> PartReader<'a> {
    pub fn new(chunk: &'a [u8]) -> Self {
        Self { r: Reader::new(chunk) }
    }

    /// The next part's header, `None` at the end of the chunk.
    pub fn next_part(&mut self) -> Result<Option<PartHeader<'a>>, String> {
        if self.r.at_end() {
            return Ok(None);
        }
        Ok(Some(PartHeader {
            partition: self.r.u32()?,
            key: self.r.str()?,
            start: self.r.i64()?,
            end: self.r.i64()?,
            states: self.r.u32()? as usize,
        }))
    }

    /// The next state of the current part.
    #[inline]
    pub fn state(&mut self) -> Result<&'a [u8], String> {
        self.r.bytes()
    }
}

/// The state of one view in a checkpoint: encoded chunks.
#[derive(Debug, Clone)]
pub struct ViewSnapshot {
    pub plugin: PluginRecord,
    pub chunks: Vec<Vec<u8>>,
    /// Open window parts.
    pub parts: u64,
}

/// Everything an engine needs to continue where it was.
#[derive(Debug, Clone)]
pub struct EngineSnapshot {
    pub watermark: i64,
    pub partition_watermarks: Vec<(u32, i64)>,
    pub views: Vec<ViewSnapshot>,
}

/// Read checkpoint `id` into its metadata and a snapshot (chunks verified).
pub fn load_checkpoint(store: &dyn CheckpointStore, id: u64) -> Result<(CheckpointMeta, EngineSnapshot), StateError> {
    let (meta, chunks) = store.read(id)?;
    let mut views: Vec<ViewSnapshot> = meta
        .plugins
        .iter()
        .map(|p| ViewSnapshot {
            plugin: p.clone(),
            chunks: Vec::new(),
            parts: 0,
        })
        .collect();
    // The chunks move into their views (a checkpoint can be large).
    for (name, bytes) in chunks {
        let view = view_of_chunk(&name);
        if let Some(v) = views.iter_mut().find(|v| Some(v.plugin.view.as_str()) == view) {
            v.chunks.push(bytes);
        }
    }
    let snap = EngineSnapshot {
        watermark: meta.watermark,
        partition_watermarks: meta.partition_watermarks.clone(),
        views,
    };
    Ok((meta, snap))
}

/// Put the chunks that `encode` hands over into checkpoint `meta.id`, each
/// as soon as it is made (one chunk in memory at a time), and describe them
/// in `meta`. The checkpoint exists once `store.commit(meta)` returns; if a
/// put fails, the chunks already put are deleted.
pub fn put_chunks(
    store: &dyn CheckpointStore,
    meta: &mut CheckpointMeta,
    encode: impl FnOnce(&mut dyn FnMut(String, &[u8]) -> Result<(), StateError>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let id = meta.id;
    let (mut chunks, mut size) = (Vec::new(), 0);
    let put = encode(&mut |name, bytes| {
        store.put_chunk(id, &name, bytes)?;
        size += bytes.len() as u64;
        chunks.push(ChunkInfo::of(&name, bytes));
        Ok(())
    });
    if let Err(e) = put {
        let _ = store.discard(id);
        return Err(e);
    }
    meta.chunks = chunks;
    meta.size_bytes = size;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let mut buf = Vec::new();
        write_part(&mut buf, 3, b"user-1", 10, 20, [b"ab".as_slice(), b""].into_iter());
        write_part(&mut buf, 0, "é".as_bytes(), -5, i64::MAX, std::iter::empty());
        let mut r = PartReader::new(&buf);
        let h = r.next_part().unwrap().unwrap();
        assert_eq!((h.partition, h.key, h.start, h.end, h.states), (3, "user-1", 10, 20, 2));
        assert_eq!(r.state().unwrap(), b"ab");
        assert_eq!(r.state().unwrap(), b"");
        let h = r.next_part().unwrap().unwrap();
        assert_eq!(
            (h.partition, h.key, h.start, h.end, h.states),
            (0, "é", -5, i64::MAX, 0)
        );
        assert_eq!(r.next_part().unwrap(), None);
    }

    #[test]
    fn truncated_chunks_are_errors() {
        let mut buf = Vec::new();
        write_part(&mut buf, 1, b"k", 1, 2, [b"state".as_slice()].into_iter());
        for cut in 1..buf.len() {
            let mut r = PartReader::new(&buf[..cut]);
            let failed = match r.next_part() {
                Err(_) => true,
                Ok(Some(h)) => (0..h.states).any(|_| r.state().is_err()),
                Ok(None) => false,
            };
            assert!(failed, "a chunk cut at {cut} of {} was read as whole", buf.len());
        }
    }

    #[test]
    fn chunk_names_name_their_view() {
        assert_eq!(view_of_chunk(&chunk_name("user_features", 7)), Some("user_features"));
        assert_eq!(view_of_chunk(&chunk_name("a/b", 0)), Some("a/b"));
        assert_eq!(view_of_chunk("meta"), None);
    }
}
