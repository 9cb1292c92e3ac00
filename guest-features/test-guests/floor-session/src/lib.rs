//! Bench guest `floor_session`: the seed `session_features` window (sessions
//! with a 10 min gap, by `user_id`) with no feature logic (see [`floor`]).

#[path = "../../floor-sliding/src/floor.rs"]
mod floor;

use featherflow_sdk::Declaration;
use featherflow_sdk::bindings::featherflow::plugin::types as wit;
use featherflow_sdk::bindings::{Guest, PluginError};

pub struct FloorSession;

impl Guest for FloorSession {
    fn describe() -> wit::Declaration {
        Declaration::session("floor_session", 600_000)
            .description("bench guest: the session_features window, no feature logic")
            .key_field("user_id")
            .text("user_id")
            .integer("parts")
            .into()
    }

    fn update(states: Vec<u8>, _events: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        floor::update(states)
    }

    fn merge(groups: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        floor::merge(groups)
    }

    fn finish(windows: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        floor::finish(windows)
    }

    fn migrate(_from_version: u32, states: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        Ok(states)
    }
}

featherflow_sdk::bindings::export!(FloorSession with_types_in featherflow_sdk::bindings);
