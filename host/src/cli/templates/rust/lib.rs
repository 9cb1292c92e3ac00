//! `{{VIEW}}`: per user and 10-minute window, the number of events and the
//! revenue (the sum of purchase prices). Replace it with your feature.

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct Plugin;

/// The state of one window part: kept by the engine as bytes (`encode`),
/// checkpointed, and merged when a window covers several parts.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    pub events: u64,
    pub revenue: f64,
}

impl Feature for Plugin {
    type State = Totals;

    fn declare() -> Declaration {
        Declaration::tumbling("{{VIEW}}", 600_000)
            .version("0.1.0")
            .description("Events and revenue per user per 10 minutes")
            .key_field("user_id")
            .text("user_id")
            .integer("events")
            .float("revenue")
            .ttl_seconds(3600)
    }

    fn update(state: &mut Totals, event: &Event<'_>) {
        state.events += 1;
        if event.event_type == "purchase" {
            state.revenue += event.price;
        }
    }

    fn merge(into: &mut Totals, other: &Totals) {
        into.events += other.events;
        into.revenue += other.revenue;
    }

    fn finish(state: &Totals, window: &Window<'_>) -> Vec<Value> {
        vec![
            Value::Text(window.key.into()),
            Value::Integer(state.events as i64),
            Value::Float(state.revenue),
        ]
    }

    /// 16 bytes: `u64 events`, `f64 revenue`, little-endian.
    fn encode(state: &Totals, out: &mut Vec<u8>) {
        out.extend_from_slice(&state.events.to_le_bytes());
        out.extend_from_slice(&state.revenue.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Totals, String> {
        let b: [u8; 16] = bytes.try_into().map_err(|_| format!("a state is 16 bytes, not {}", bytes.len()))?;
        Ok(Totals {
            events: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            revenue: f64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        })
    }
}

featherflow_sdk::export_feature!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, price: f64) -> Event<'_> {
        Event {
            time_ms: 0,
            price,
            event_type,
            key: "u1",
            extra: "",
        }
    }

    #[test]
    fn counts_events_and_sums_purchases() {
        let mut s = Totals::default();
        for (t, p) in [("view", 5.0), ("purchase", 19.99), ("cart", 1.0), ("purchase", 0.01)] {
            Plugin::update(&mut s, &event(t, p));
        }
        assert_eq!(s.events, 4);
        assert!((s.revenue - 20.0).abs() < 1e-9);
        let mut other = Totals::default();
        Plugin::merge(&mut other, &s);
        let mut bytes = Vec::new();
        Plugin::encode(&other, &mut bytes);
        assert_eq!(Plugin::decode(&bytes), Ok(s));
    }
}
