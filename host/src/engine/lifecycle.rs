//! Key lifecycle: a key the engine holds nothing for any more is forgotten,
//! so that memory follows the keys with open windows, not every key ever
//! seen (a shop's users come and go over months).
//!
//! A key is idle in a view when the view's operator has no open window part
//! for it. Operators note keys as they go idle — a firing that closed their
//! last part ([`crate::window::Fired::idle`]), or a late event for a key
//! with nothing open — and the views pass those on once the fired windows
//! are finished. The engine then reclaims each one that is idle in every
//! view of its key table and named by no fired window still waiting to be
//! finished: the views drop their entries and the key table frees the name
//! and hands the id to the next new key.
//!
//! Reclaiming runs between blocks of events (never while a block's
//! look-ahead holds interned ids; see [`Engine::process_lines`]), once
//! enough keys have gone idle, and at every flush; a checkpoint first
//! sweeps every key ([`Engine::sweep_keys`]), which also finds keys that
//! went idle without a firing (a view reset or removed).
//!
//! Nothing in the output depends on key ids except the order of windows
//! that fire at the same moment, which is unspecified (a restore renumbers
//! keys too).

use rustc_hash::FxHashSet;

use super::Engine;
use crate::window::KeyId;

/// Idle keys a view collects before the engine reclaims them: reclaiming
/// looks at every view's unfinished fired windows, so not once per block.
pub(super) const RECLAIM_BATCH: usize = 4096;

impl Engine {
    /// Reclaim idle keys if enough are waiting.
    #[inline]
    pub(super) fn maybe_reclaim_keys(&mut self) {
        if self.views.iter().any(|v| v.idle_keys.len() >= self.reclaim_batch) {
            self.reclaim_keys();
        }
        self.stats.keys = self.live_keys();
    }

    /// Reclaim every key the views have reported idle that is idle in every
    /// view of its key table.
    pub(super) fn reclaim_keys(&mut self) {
        let mut candidates = Vec::new();
        for table in 0..self.keys.len() {
            for v in self.views.iter_mut().filter(|v| v.key_table == table) {
                candidates.append(&mut v.idle_keys);
            }
            if candidates.is_empty() {
                continue;
            }
            let pinned: FxHashSet<KeyId> = self
                .views
                .iter()
                .filter(|v| v.key_table == table)
                .flat_map(|v| v.unfinished_keys())
                .collect();
            for key in candidates.drain(..) {
                if !pinned.contains(&key) {
                    self.reclaim_key(table, key);
                }
            }
        }
        self.stats.keys = self.live_keys();
        self.stats.keys_reclaimed = self.reclaimed_keys();
    }

    /// Reclaim `key` of table `table` if no view holds anything for it.
    fn reclaim_key(&mut self, table: usize, key: KeyId) -> bool {
        if !self.keys[table].contains(key)
            || !self
                .views
                .iter()
                .filter(|v| v.key_table == table)
                .all(|v| v.key_is_idle(key))
        {
            return false;
        }
        for v in self.views.iter_mut().filter(|v| v.key_table == table) {
            v.forget_key(key);
        }
        self.keys[table].remove(key);
        true
    }

    /// Reclaim every idle key, reported or not. After a flush (no fired
    /// window is waiting); costs a look at every key, so once per
    /// checkpoint.
    pub(super) fn sweep_keys(&mut self) {
        self.reclaim_keys();
        for table in 0..self.keys.len() {
            for key in 0..self.keys[table].id_bound() as KeyId {
                self.reclaim_key(table, key);
            }
        }
        self.stats.keys = self.live_keys();
        self.stats.keys_reclaimed = self.reclaimed_keys();
    }

    /// Keys held now, over every key table.
    pub fn live_keys(&self) -> u64 {
        self.keys.iter().map(|t| t.len() as u64).sum()
    }

    /// Keys reclaimed so far.
    pub fn reclaimed_keys(&self) -> u64 {
        self.keys.iter().map(|t| t.removed()).sum()
    }
}
