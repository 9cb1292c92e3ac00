//! Test guest `test_loop_forever`: a valid `feature` plugin whose `update`
//! never returns, on events of type
//! `poison` (so it passes the host's dry run and fails in service).
//!
//! For the host's deadline (epoch interruption) tests: the call must be
//! interrupted, the batch dead-lettered and the instance replaced.

use std::hint::black_box;

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct LoopForever;

impl Feature for LoopForever {
    type State = u64;

    fn declare() -> Declaration {
        Declaration::sliding("test_loop_forever", 60_000, 60_000)
            .description("test guest: update loops forever")
            .key_field("user_id")
            .text("user_id")
    }

    fn update(spins: &mut u64, event: &Event<'_>) {
        if event.event_type != "poison" {
            return;
        }
        // `black_box` keeps the optimiser from proving anything about the
        // loop: it must really spin until the host interrupts it.
        loop {
            *spins = black_box(spins.wrapping_add(1));
        }
    }

    fn merge(_: &mut u64, _: &u64) {}

    fn finish(_: &u64, window: &Window<'_>) -> Vec<Value> {
        vec![Value::Text(window.key.to_owned())]
    }

    fn encode(_: &u64, _: &mut Vec<u8>) {}

    fn decode(_: &[u8]) -> Result<u64, String> {
        Ok(0)
    }
}

featherflow_sdk::export_feature!(LoopForever);
