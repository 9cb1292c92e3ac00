//! `session_features`: per user session (gap ten minutes), the number of
//! events and the session's duration in whole seconds (see "Seed features"
//! in docs/semantics.md).
//!
//! State: the event count and the earliest and latest event times, encoded
//! as `u64 count`, `i64 min_time_ms`, `i64 max_time_ms`, little-endian, 24
//! bytes (state version 1).

use featherflow_sdk::{Declaration, Event, Feature, Value, Window};

pub struct SessionStats;

/// One session's (or session fragment's) events, summarised.
///
/// `min_ms` and `max_ms` mean nothing while `count` is 0; every method checks
/// `count` first rather than relying on sentinel times.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub count: u64,
    pub min_ms: i64,
    pub max_ms: i64,
}

impl Span {
    pub const ENCODED_LEN: usize = 24;

    /// `(max - min) / 1000`, truncated like the Flink job's integer division;
    /// 0 for an empty session.
    pub fn duration_seconds(&self) -> i64 {
        if self.count == 0 {
            return 0;
        }
        // In i128 so even absurd times cannot overflow; the quotient fits i64.
        ((i128::from(self.max_ms) - i128::from(self.min_ms)) / 1000) as i64
    }
}

impl Feature for SessionStats {
    type State = Span;

    fn declare() -> Declaration {
        Declaration::session("session_features", 600_000)
            .version(env!("CARGO_PKG_VERSION"))
            .description("Events per user session and the session's duration in seconds")
            .key_field("user_id")
            .text("user_id")
            .integer("event_count")
            .integer("duration_seconds")
            .ttl_seconds(3600)
            .state_version(1)
    }

    fn update(state: &mut Span, event: &Event<'_>) {
        let t = event.time_ms;
        Self::merge(
            state,
            &Span {
                count: 1,
                min_ms: t,
                max_ms: t,
            },
        );
    }

    fn merge(into: &mut Span, other: &Span) {
        if other.count == 0 {
            return;
        }
        if into.count == 0 {
            *into = *other;
            return;
        }
        into.count = into.count.saturating_add(other.count);
        into.min_ms = into.min_ms.min(other.min_ms);
        into.max_ms = into.max_ms.max(other.max_ms);
    }

    fn finish(state: &Span, window: &Window<'_>) -> Vec<Value> {
        vec![
            Value::Text(window.key.to_owned()),
            Value::Integer(i64::try_from(state.count).unwrap_or(i64::MAX)),
            Value::Integer(state.duration_seconds()),
        ]
    }

    fn encode(state: &Span, out: &mut Vec<u8>) {
        // Assembled first, appended once: one capacity check per state.
        let mut bytes = [0; Span::ENCODED_LEN];
        bytes[..8].copy_from_slice(&state.count.to_le_bytes());
        bytes[8..16].copy_from_slice(&state.min_ms.to_le_bytes());
        bytes[16..].copy_from_slice(&state.max_ms.to_le_bytes());
        out.extend_from_slice(&bytes);
    }

    fn decode(bytes: &[u8]) -> Result<Span, String> {
        let bytes: &[u8; Span::ENCODED_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "session_features state v1 is {} bytes, got {}",
                Span::ENCODED_LEN,
                bytes.len()
            )
        })?;
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w
        };
        Ok(Span {
            count: u64::from_le_bytes(word(0)),
            min_ms: i64::from_le_bytes(word(1)),
            max_ms: i64::from_le_bytes(word(2)),
        })
    }
}

featherflow_sdk::export_feature!(SessionStats);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(times: &[i64]) -> Span {
        let mut state = Span::default();
        for &time_ms in times {
            let event = Event {
                time_ms,
                price: 1.0,
                event_type: "view",
                key: "111",
                extra: "",
            };
            SessionStats::update(&mut state, &event);
        }
        state
    }

    const WINDOW: Window<'static> = Window {
        key: "111",
        start_ms: 1_704_067_200_000,
        end_ms: 1_704_068_100_000,
    };

    #[test]
    fn counts_events_and_measures_duration() {
        // The example in docs/semantics.md ("The output record"): 4 events over 300 s.
        let t0 = 1_704_067_200_000;
        let state = run(&[t0, t0 + 120_000, t0 + 300_000, t0 + 60_000]);
        assert_eq!(
            SessionStats::finish(&state, &WINDOW),
            [Value::Text("111".into()), Value::Integer(4), Value::Integer(300)]
        );
    }

    #[test]
    fn duration_truncates_to_whole_seconds() {
        assert_eq!(run(&[1_000, 2_999]).duration_seconds(), 1);
        assert_eq!(run(&[0, 999]).duration_seconds(), 0);
        assert_eq!(run(&[5_000]).duration_seconds(), 0);
        assert_eq!(Span::default().duration_seconds(), 0);
    }

    #[test]
    fn merge_adds_counts_and_widens_the_span() {
        let mut a = run(&[10_000, 20_000]);
        SessionStats::merge(&mut a, &run(&[5_000, 7_000, 9_000]));
        assert_eq!(
            a,
            Span {
                count: 5,
                min_ms: 5_000,
                max_ms: 20_000
            }
        );
        assert_eq!(a, run(&[10_000, 5_000, 20_000, 7_000, 9_000]));

        // The empty state is the identity on both sides.
        let mut empty = Span::default();
        SessionStats::merge(&mut empty, &a);
        assert_eq!(empty, a);
        SessionStats::merge(&mut empty, &Span::default());
        assert_eq!(empty, a);
    }

    #[test]
    fn state_round_trips_through_24_bytes() {
        let state = run(&[1_704_067_200_000, 1_704_067_500_000]);
        let mut bytes = Vec::new();
        SessionStats::encode(&state, &mut bytes);
        assert_eq!(bytes.len(), Span::ENCODED_LEN);
        assert_eq!(SessionStats::decode(&bytes), Ok(state));
        assert!(SessionStats::decode(&bytes[..23]).is_err());
    }

    #[test]
    fn declaration_matches_the_seed_feature() {
        let d = SessionStats::declare();
        assert_eq!(d.view, "session_features");
        assert_eq!(d.window, featherflow_sdk::WindowKind::Session { gap_ms: 600_000 });
        assert_eq!(d.key_field, "user_id");
        assert_eq!(d.ttl_seconds, 3600);
        let names: Vec<_> = d.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["user_id", "event_count", "duration_seconds"]);
    }
}
