//! Test guest: version "3.0.0" of `user_features` with a new state encoding,
//! for the host's migration tests.
//!
//! State version 2 = the 32 bytes of version 1 (`user-activity`'s
//! `counts.rs`, included by path) followed by `u64 others`, the number of
//! events of other types: 40 bytes. A v1 state is therefore *not* a valid v2
//! state; `migrate` from version 1 converts it (with `others` = 0, which v1
//! never counted). The output fields and values are exactly version 1's, so a
//! window that spans a migration finishes as if no swap had happened.

#[path = "../../../user-activity/src/counts.rs"]
mod counts;

use counts::Counts;
use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct UserActivityV3;

#[derive(Debug, Default)]
pub struct State {
    counts: Counts,
    others: u64,
}

const ENCODED_LEN: usize = Counts::ENCODED_LEN + 8;

impl Feature for UserActivityV3 {
    type State = State;

    fn declare() -> Declaration {
        counts::declaration()
            .version("3.0.0")
            .description("test guest: user_features with state version 2 (adds a count of other events)")
            .state_version(2)
    }

    fn update(state: &mut State, event: &Event<'_>) {
        state.counts.add_event(event);
        if !matches!(event.event_type, "view" | "cart" | "purchase") {
            state.others = state.others.saturating_add(1);
        }
    }

    fn merge(into: &mut State, other: &State) {
        into.counts.add(&other.counts);
        into.others = into.others.saturating_add(other.others);
    }

    fn finish(state: &State, window: &Window<'_>) -> Vec<Value> {
        state.counts.values(window)
    }

    fn encode(state: &State, out: &mut Vec<u8>) {
        state.counts.encode(out);
        out.extend_from_slice(&state.others.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<State, String> {
        if bytes.len() != ENCODED_LEN {
            return Err(format!(
                "user_features state v2 is {ENCODED_LEN} bytes, got {}",
                bytes.len()
            ));
        }
        let (v1, others) = bytes.split_at(Counts::ENCODED_LEN);
        Ok(State {
            counts: Counts::decode(v1)?,
            others: u64::from_le_bytes(others.try_into().map_err(|_| "bad length")?),
        })
    }

    fn migrates_from(from_version: u32) -> bool {
        from_version == 1
    }

    fn migrate(_from_version: u32, bytes: &[u8]) -> Result<State, String> {
        Ok(State {
            counts: Counts::decode(bytes)?,
            others: 0,
        })
    }
}

featherflow_sdk::export_feature!(UserActivityV3);
