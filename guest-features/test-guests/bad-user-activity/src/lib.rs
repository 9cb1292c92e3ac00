//! Test guest: a broken version "2.0.0-bad" of `user_features`, for the
//! host's rollback tests. Compatible with `user-activity` (same view, state
//! version and encoding, so it passes validation and swaps in), but its
//! `update` traps on events of type `poison`; after repeated failures the
//! host must roll the view back to the previous version.

#[path = "../../../user-activity/src/counts.rs"]
mod counts;

use counts::Counts;
use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

/// Added to the true average: far outside any real average in the tests.
const MARKER: f64 = 1000.0;

pub struct UserActivityV2;

impl Feature for UserActivityV2 {
    type State = Counts;

    fn declare() -> Declaration {
        counts::declaration()
            .version("2.0.0-bad")
            .description("test guest: user_features with avg_viewed_price_1h + 1000")
    }

    fn update(state: &mut Counts, event: &Event<'_>) {
        if event.event_type == "poison" {
            panic!("bad-user-activity traps on purpose");
        }
        state.add_event(event);
    }

    fn merge(into: &mut Counts, other: &Counts) {
        into.add(other);
    }

    fn finish(state: &Counts, window: &Window<'_>) -> Vec<Value> {
        let mut values = state.values(window);
        if let Some(avg) = values.last_mut() {
            *avg = Value::Float(state.avg_viewed_price() + MARKER);
        }
        values
    }

    fn encode(state: &Counts, out: &mut Vec<u8>) {
        state.encode(out);
    }

    fn decode(bytes: &[u8]) -> Result<Counts, String> {
        Counts::decode(bytes)
    }
}

featherflow_sdk::export_feature!(UserActivityV2);
