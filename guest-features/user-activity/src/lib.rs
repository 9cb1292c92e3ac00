//! `user_features`: per user, over a one-hour window sliding every ten
//! minutes, the number of views, carts and purchases and the average viewed
//! price (see "Seed features" in docs/semantics.md).
//!
//! The view's declaration, state and arithmetic live in [`counts`]; this file
//! only wires them into the SDK's [`Feature`] trait and exports the plugin.

pub mod counts;

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub use counts::Counts;

pub struct UserActivity;

impl Feature for UserActivity {
    type State = Counts;

    fn declare() -> Declaration {
        counts::declaration().version(env!("CARGO_PKG_VERSION"))
    }

    fn update(state: &mut Counts, event: &Event<'_>) {
        state.add_event(event);
    }

    fn merge(into: &mut Counts, other: &Counts) {
        into.add(other);
    }

    fn finish(state: &Counts, window: &Window<'_>) -> Vec<Value> {
        state.values(window)
    }

    fn encode(state: &Counts, out: &mut Vec<u8>) {
        state.encode(out);
    }

    fn decode(bytes: &[u8]) -> Result<Counts, String> {
        Counts::decode(bytes)
    }
}

featherflow_sdk::export_feature!(UserActivity);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, price: f64) -> Event<'_> {
        Event {
            time_ms: 1_704_067_200_000,
            price,
            event_type,
            key: "111",
            extra: "",
        }
    }

    fn run(events: &[(&str, f64)]) -> Counts {
        let mut state = Counts::default();
        for &(ty, price) in events {
            UserActivity::update(&mut state, &event(ty, price));
        }
        state
    }

    const WINDOW: Window<'static> = Window {
        key: "111",
        start_ms: 1_704_067_200_000,
        end_ms: 1_704_070_800_000,
    };

    #[test]
    fn counts_each_type_and_averages_view_prices() {
        let state = run(&[
            ("view", 10.0),
            ("cart", 99.0),
            ("view", 20.0),
            ("purchase", 7.0),
            ("view", 5.25),
            ("cart", 1.0),
        ]);
        assert_eq!(
            UserActivity::finish(&state, &WINDOW),
            [
                Value::Text("111".into()),
                Value::Integer(3),
                Value::Integer(2),
                Value::Integer(1),
                // (10.0 + 20.0 + 5.25) / 3, exact in binary floating point.
                Value::Float(11.75),
            ]
        );
    }

    #[test]
    fn average_is_zero_without_views() {
        let state = run(&[("cart", 10.0), ("purchase", 20.0)]);
        assert_eq!(state.avg_viewed_price(), 0.0);
        assert_eq!(UserActivity::finish(&state, &WINDOW)[4], Value::Float(0.0));
        assert_eq!(Counts::default().avg_viewed_price(), 0.0);
    }

    #[test]
    fn other_and_differently_cased_types_touch_no_counter() {
        let state = run(&[("click", 5.0), ("View", 5.0), ("CART", 5.0), ("", 5.0)]);
        assert_eq!(state, Counts::default());
    }

    #[test]
    fn merging_slices_equals_counting_all_events_at_once() {
        let all = run(&[("view", 10.0), ("cart", 0.0), ("view", 20.0), ("view", 5.25)]);
        let mut merged = run(&[("view", 10.0), ("cart", 0.0)]);
        UserActivity::merge(&mut merged, &run(&[("view", 20.0)]));
        UserActivity::merge(&mut merged, &Counts::default());
        UserActivity::merge(&mut merged, &run(&[("view", 5.25)]));
        assert_eq!(merged, all);
        assert_eq!(merged.avg_viewed_price(), 11.75);
    }

    #[test]
    fn state_round_trips_through_32_bytes() {
        let state = run(&[("view", 29.99), ("cart", 0.0), ("purchase", 1.0)]);
        let mut bytes = Vec::new();
        UserActivity::encode(&state, &mut bytes);
        assert_eq!(bytes.len(), Counts::ENCODED_LEN);
        assert_eq!(UserActivity::decode(&bytes), Ok(state));
        assert!(UserActivity::decode(&bytes[..31]).is_err());
        assert!(UserActivity::decode(&[bytes.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn declaration_matches_the_seed_feature() {
        let d = UserActivity::declare();
        assert_eq!(d.view, "user_features");
        assert_eq!(d.key_field, "user_id");
        assert_eq!(d.ttl_seconds, 7200);
        assert_eq!(d.state_version, 1);
        let names: Vec<_> = d.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "user_id",
                "view_count_1h",
                "cart_count_1h",
                "purchase_count_1h",
                "avg_viewed_price_1h"
            ]
        );
    }
}
