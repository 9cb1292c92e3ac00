//! Test guest `test_trap`: a valid `feature` plugin whose `update` panics,
//! on events of type `poison`
//! (so it passes the host's dry run and fails in service). The `wasm` profile aborts on panic, so the call traps.
//!
//! For the host's containment tests: the trap must dead-letter the batch
//! with its reason and replace the instance, without touching other views.

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct Trap;

impl Feature for Trap {
    type State = ();

    fn declare() -> Declaration {
        Declaration::sliding("test_trap", 60_000, 60_000)
            .description("test guest: update traps")
            .key_field("user_id")
            .text("user_id")
    }

    fn update(_: &mut (), event: &Event<'_>) {
        if event.event_type != "poison" {
            return;
        }
        panic!("test_trap traps on purpose (event at {} ms)", event.time_ms);
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

featherflow_sdk::export_feature!(Trap);
