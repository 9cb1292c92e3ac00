//! Bench guest `floor_sliding`: the seed `user_features` window (1 h sliding
//! every 10 min, by `user_id`) with no feature logic (see [`floor`]).

mod floor;

use featherflow_sdk::Declaration;
use featherflow_sdk::bindings::featherflow::plugin::types as wit;
use featherflow_sdk::bindings::{Guest, PluginError};

pub struct FloorSliding;

impl Guest for FloorSliding {
    fn describe() -> wit::Declaration {
        Declaration::sliding("floor_sliding", 3_600_000, 600_000)
            .description("bench guest: the user_features window, no feature logic")
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

featherflow_sdk::bindings::export!(FloorSliding with_types_in featherflow_sdk::bindings);
