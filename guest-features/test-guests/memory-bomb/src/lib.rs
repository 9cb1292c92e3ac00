//! Test guest `test_memory_bomb`: a valid `feature` plugin whose `update`
//! allocates without bound, on events of type
//! `poison` (so it passes the host's dry run and fails in service).
//!
//! For the host's memory-limit tests: `memory.grow` must be refused at the
//! limit, which makes the allocator fail and the guest trap (abort), not the
//! host run out of memory.
//!
//! On events of type `grow` it leaks 1 MiB each instead, the way an
//! interpreter's heap creeps up call after call: the host must replace the
//! instance at its high-water mark, before any call fails.

use std::hint::black_box;

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct MemoryBomb;

/// Bytes per allocation: large, so the limit is reached in few iterations.
const CHUNK: usize = 1 << 20;

impl Feature for MemoryBomb {
    type State = ();

    fn declare() -> Declaration {
        Declaration::sliding("test_memory_bomb", 60_000, 60_000)
            .description("test guest: update allocates until memory runs out")
            .key_field("user_id")
            .text("user_id")
    }

    fn update(_: &mut (), event: &Event<'_>) {
        if event.event_type == "grow" {
            black_box(Box::leak(vec![0xcd_u8; CHUNK].into_boxed_slice()));
            return;
        }
        if event.event_type != "poison" {
            return;
        }
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill, and `black_box`, so neither the allocation nor
            // the writes can be optimised away.
            hoard.push(vec![0xab; CHUNK]);
            black_box(&hoard);
        }
    }

    fn merge(_: &mut (), _: &()) {}

    fn finish(_: &(), window: &Window<'_>) -> Vec<Value> {
        vec![Value::Text(window.key.to_owned())]
    }

    fn encode(_: &(), _: &mut Vec<u8>) {}

    fn decode(_: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

featherflow_sdk::export_feature!(MemoryBomb);
