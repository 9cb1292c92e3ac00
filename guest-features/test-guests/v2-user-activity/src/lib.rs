//! Test guest: version "2.0.0" of `user_features`, for the host's hot-swap
//! tests. Same view, same state version (1) and the very same state encoding
//! as `user-activity` (it includes that crate's `counts.rs`), so a swap keeps
//! every open window; but its `avg_viewed_price_1h` is the true average
//! **plus 1000.0**, so a test can tell which version finished a window.

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
            .version("2.0.0")
            .description("test guest: user_features with avg_viewed_price_1h + 1000")
    }

    fn update(state: &mut Counts, event: &Event<'_>) {
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
