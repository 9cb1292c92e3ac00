//! Bench guest `floor_sliding`: the seed `user_features` window (1 h sliding
//! every 10 min, by `user_id`) with no feature logic (see [`floor`]).

mod floor;

use featherflow_sdk::Declaration;

floor::floor_plugin!(
    FloorSliding,
    Declaration::sliding("floor_sliding", 3_600_000, 600_000)
        .description("bench guest: the user_features window, no feature logic")
        .key_field("user_id")
        .text("user_id")
        .integer("parts")
);
