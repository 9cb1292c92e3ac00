//! The `feature` world with no feature logic, written by hand (not through
//! the SDK's adapter): `make bench-floor` runs the replay benchmark through
//! two of these, to measure what the engine and the plugin boundary cost
//! before any plugin does any work.
//!
//! `update` ignores the events and keeps every state at [`STATE_LEN`]
//! bytes, so the host copies states in and out as it does for the seed
//! plugins; `finish` returns the key and the number of states merged.
//! [`floor_plugin!`] exports a plugin with these functions for a window.

use featherflow_sdk::bindings::PluginError;
use featherflow_sdk::codec::{DecodeError, Reader, Writer};

/// The seed `user-activity` plugin's state size.
pub const STATE_LEN: usize = 32;

/// A value's tags in `finish`'s output (see `wit/feature.wit`).
const TAG_TEXT: u8 = 0;
const TAG_INTEGER: u8 = 1;

fn invalid(e: DecodeError) -> PluginError {
    PluginError::InvalidBatch(e.to_string())
}

/// Every state, each as [`STATE_LEN`] bytes: the batch itself when they
/// all are already (no copy), else zeros for the new ones.
pub fn update(states: Vec<u8>) -> Result<Vec<u8>, PluginError> {
    let mut r = Reader::new(&states);
    let n = r.count(4).map_err(invalid)?;
    let mut all_full = true;
    for _ in 0..n {
        all_full &= r.bytes().map_err(invalid)?.len() == STATE_LEN;
    }
    r.finish().map_err(invalid)?;
    if all_full {
        return Ok(states);
    }
    let mut out = Vec::with_capacity(4 + n * (4 + STATE_LEN));
    let mut w = Writer::new(&mut out);
    w.count(n);
    let mut r = Reader::new(&states);
    r.count(4).map_err(invalid)?;
    for _ in 0..n {
        let state = r.bytes().map_err(invalid)?;
        w.bytes(if state.len() == STATE_LEN {
            state
        } else {
            &[0; STATE_LEN]
        });
    }
    Ok(out)
}

/// The first state of each group.
pub fn merge(groups: Vec<u8>) -> Result<Vec<u8>, PluginError> {
    let mut r = Reader::new(&groups);
    let g = r.count(4).map_err(invalid)?;
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    w.count(g);
    for _ in 0..g {
        let k = r.count(4).map_err(invalid)?;
        let mut first: &[u8] = &[];
        for i in 0..k {
            let state = r.bytes().map_err(invalid)?;
            if i == 0 {
                first = state;
            }
        }
        w.bytes(first);
    }
    r.finish().map_err(invalid)?;
    Ok(out)
}

/// Per window: the key (text) and the number of states merged (integer).
pub fn finish(windows: Vec<u8>) -> Result<Vec<u8>, PluginError> {
    let mut r = Reader::new(&windows);
    let n = r.count(4).map_err(invalid)?;
    let mut out = Vec::with_capacity(4 + n * 24);
    let mut w = Writer::new(&mut out);
    w.count(n);
    for _ in 0..n {
        let key = r.str().map_err(invalid)?;
        r.i64().map_err(invalid)?;
        r.i64().map_err(invalid)?;
        let k = r.count(4).map_err(invalid)?;
        for _ in 0..k {
            r.bytes().map_err(invalid)?;
        }
        w.u8(TAG_TEXT);
        w.str(key);
        w.u8(TAG_INTEGER);
        w.i64(k as i64);
    }
    r.finish().map_err(invalid)?;
    Ok(out)
}

/// Export the plugin `$name` with the declaration `$declaration` (which
/// must declare the fields `user_id`, text, and `parts`, integer).
macro_rules! floor_plugin {
    ($name:ident, $declaration:expr) => {
        pub struct $name;

        impl featherflow_sdk::bindings::Guest for $name {
            fn describe() -> featherflow_sdk::bindings::featherflow::plugin::types::Declaration {
                $declaration.into()
            }

            fn update(states: Vec<u8>, _events: Vec<u8>) -> Result<Vec<u8>, featherflow_sdk::bindings::PluginError> {
                floor::update(states)
            }

            fn merge(groups: Vec<u8>) -> Result<Vec<u8>, featherflow_sdk::bindings::PluginError> {
                floor::merge(groups)
            }

            fn finish(windows: Vec<u8>) -> Result<Vec<u8>, featherflow_sdk::bindings::PluginError> {
                floor::finish(windows)
            }

            fn migrate(_from_version: u32, states: Vec<u8>) -> Result<Vec<u8>, featherflow_sdk::bindings::PluginError> {
                Ok(states)
            }
        }

        featherflow_sdk::bindings::export!($name with_types_in featherflow_sdk::bindings);
    };
}
pub(crate) use floor_plugin;
