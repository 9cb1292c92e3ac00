//! Bench guest `floor_session`: the seed `session_features` window (sessions
//! with a 10 min gap, by `user_id`) with no feature logic (see [`floor`]).

#[path = "../../floor-sliding/src/floor.rs"]
mod floor;

use featherflow_sdk::Declaration;

floor::floor_plugin!(
    FloorSession,
    Declaration::session("floor_session", 600_000)
        .description("bench guest: the session_features window, no feature logic")
        .key_field("user_id")
        .text("user_id")
        .integer("parts")
);
