//! Test guest `test_garbage`: the `feature` world implemented by hand (not
//! through the SDK's adapter) so that every function returns `Ok` with bytes
//! that break the layouts of `wit/feature.wit`:
//!
//! - `update` returns one state more than it was given;
//! - `merge` returns three bytes, too short even for the group count;
//! - `finish` returns, per window, a single integer where the declaration
//!   promises a text and an integer;
//! - `migrate` returns two bytes.
//!
//! `describe` is valid, so the plugin loads. For the host's tests that it
//! validates every result instead of trusting the plugin.

use featherflow_sdk::Declaration;
use featherflow_sdk::bindings::featherflow::plugin::types as wit;
use featherflow_sdk::bindings::{Guest, PluginError};

pub struct Garbage;

/// The leading `u32` count of a packed list, or 0 if there is none.
fn count(list: &[u8]) -> u32 {
    list.get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

impl Guest for Garbage {
    fn describe() -> wit::Declaration {
        Declaration::sliding("test_garbage", 60_000, 60_000)
            .description("test guest: returns malformed batches")
            .key_field("user_id")
            .text("user_id")
            .integer("n")
            .into()
    }

    fn update(states: Vec<u8>, _events: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let n = count(&states).saturating_add(1);
        let mut out = n.to_le_bytes().to_vec();
        for _ in 0..n {
            out.extend_from_slice(&0u32.to_le_bytes()); // an empty state
        }
        Ok(out)
    }

    fn merge(_groups: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        Ok(vec![1, 0, 0])
    }

    fn finish(windows: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let w = count(&windows);
        let mut out = w.to_le_bytes().to_vec();
        for _ in 0..w {
            out.push(1); // integer tag where `user_id` (text) is declared
            out.extend_from_slice(&42i64.to_le_bytes());
            // ...and no second value.
        }
        Ok(out)
    }

    fn migrate(_from_version: u32, _states: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        Ok(vec![0xde, 0xad])
    }
}

featherflow_sdk::bindings::export!(Garbage with_types_in featherflow_sdk::bindings);
