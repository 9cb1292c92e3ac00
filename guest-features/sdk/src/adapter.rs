//! [`Plugin<F>`]: the generated `Guest` trait implemented once for every
//! [`Feature`], by unpacking the batch layouts of `wit/feature.wit`, calling
//! `F` per state, event or window, and packing the results.
//!
//! Owns the batch layouts and the error mapping: framing problems are
//! `invalid-batch`, a state `F` cannot decode is `invalid-state`, a `finish`
//! that disagrees with the declaration is `other`. Every message names the
//! index it is about. Nothing here panics on input: all reads go through
//! [`Reader`].

use std::fmt;
use std::marker::PhantomData;

use crate::bindings::featherflow::plugin::types as wit;
use crate::bindings::{Guest, PluginError};
use crate::codec::{DecodeError, Reader, Writer};
use crate::feature::{Declaration, Event, Feature, FieldType, Value, Window, WindowKind};

/// Value tags of `finish`'s output, fixed by the WIT.
const TAG_TEXT: u8 = 0;
const TAG_INTEGER: u8 = 1;
const TAG_FLOAT: u8 = 2;
const TAG_BOOLEAN: u8 = 3;

/// Smallest encodings, used to refuse counts the input cannot hold:
/// `bytes` is at least its `u32` length, a merge group its `u32 k`; an event
/// is `u32 + i64 + f64 + 3 × str`; a window is `str + i64 + i64 + u32`.
const MIN_BYTES: usize = 4;
const MIN_GROUP: usize = 4;
const MIN_EVENT: usize = 4 + 8 + 8 + 3 * 4;
const MIN_WINDOW: usize = 4 + 8 + 8 + 4;

/// The `Guest` implementation for feature `F`; [`crate::export_feature!`]
/// exports it. Never constructed: the component model's exports are static.
pub struct Plugin<F>(PhantomData<F>);

impl<F: Feature> Guest for Plugin<F> {
    fn describe() -> wit::Declaration {
        F::declare().into()
    }

    fn update(states: Vec<u8>, events: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let mut r = Reader::new(&states);
        let mut slots = read_states::<F>(&mut r, &"states")?;
        r.finish().map_err(batch("states"))?;

        let mut r = Reader::new(&events);
        let m = r.count(MIN_EVENT).map_err(batch("events"))?;
        for j in 0..m {
            let (slot, event) =
                read_event(&mut r).map_err(|e| PluginError::InvalidBatch(format!("events: event {j}: {e}")))?;
            let n = slots.len();
            let state = slots.get_mut(slot).ok_or_else(|| {
                PluginError::InvalidBatch(format!("events: event {j}: slot {slot} out of range ({n} states)"))
            })?;
            F::update(state, &event);
        }
        r.finish().map_err(batch("events"))?;

        Ok(write_states::<F>(&slots))
    }

    fn merge(groups: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let mut r = Reader::new(&groups);
        let g = r.count(MIN_GROUP).map_err(batch("groups"))?;
        let mut merged = Vec::with_capacity(g);
        for i in 0..g {
            merged.push(read_merged::<F>(&mut r, &format_args!("groups: group {i}"))?);
        }
        r.finish().map_err(batch("groups"))?;

        Ok(write_states::<F>(&merged))
    }

    fn finish(windows: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        // Declared once per batch: the output of every window is checked
        // against it, so a buggy `finish` fails here, not in a sink.
        let fields = F::declare().fields;

        let mut r = Reader::new(&windows);
        let w = r.count(MIN_WINDOW).map_err(batch("windows"))?;
        // Values are mostly numbers: a tag and eight bytes.
        let mut out = Vec::with_capacity(4 + w * fields.len() * 9);
        let mut writer = Writer::new(&mut out);
        writer.count(w);
        for i in 0..w {
            let at = |e: DecodeError| PluginError::InvalidBatch(format!("windows: window {i}: {e}"));
            let key = r.str().map_err(at)?;
            let start_ms = r.i64().map_err(at)?;
            let end_ms = r.i64().map_err(at)?;
            let state = read_merged::<F>(&mut r, &format_args!("windows: window {i}"))?;

            let window = Window { key, start_ms, end_ms };
            let values = F::finish(&state, &window);
            if values.len() != fields.len() {
                return Err(PluginError::Other(format!(
                    "window {i}: finish returned {} values but {} fields are declared",
                    values.len(),
                    fields.len()
                )));
            }
            for (value, field) in values.iter().zip(&fields) {
                if value.field_type() != field.ty {
                    return Err(PluginError::Other(format!(
                        "window {i}: field `{}` is declared {} but finish returned {}",
                        field.name,
                        field.ty,
                        value.field_type()
                    )));
                }
                write_value(&mut writer, value);
            }
        }
        r.finish().map_err(batch("windows"))?;

        Ok(out)
    }

    fn migrate(from_version: u32, states: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let current = F::declare().state_version;
        if from_version == current {
            // Nothing to convert; decoding and re-encoding still checks that
            // the states really are in the current version.
            let mut r = Reader::new(&states);
            let states = read_states::<F>(&mut r, &"states")?;
            r.finish().map_err(batch("states"))?;
            return Ok(write_states::<F>(&states));
        }
        if !F::migrates_from(from_version) {
            return Err(PluginError::Unsupported(format!(
                "cannot migrate states from version {from_version} to version {current}"
            )));
        }

        let mut r = Reader::new(&states);
        let n = r.count(MIN_BYTES).map_err(batch("states"))?;
        let mut out = Vec::new();
        let mut writer = Writer::new(&mut out);
        writer.count(n);
        let mut scratch = Vec::new();
        for i in 0..n {
            let bytes = r.bytes().map_err(batch(&format!("states: state {i}")))?;
            if bytes.is_empty() {
                // The empty state is empty in every version.
                writer.bytes(&[]);
                continue;
            }
            let state = F::migrate(from_version, bytes).map_err(|e| {
                PluginError::InvalidState(format!("state {i}: cannot migrate from version {from_version}: {e}"))
            })?;
            scratch.clear();
            F::encode(&state, &mut scratch);
            writer.bytes(&scratch);
        }
        r.finish().map_err(batch("states"))?;

        Ok(out)
    }
}

/// Maps a framing error to `invalid-batch`, prefixed with where it happened.
fn batch(context: &str) -> impl Fn(DecodeError) -> PluginError + '_ {
    move |e| PluginError::InvalidBatch(format!("{context}: {e}"))
}

/// Reads `u32 n`, then `n` × `bytes`, decoding each (empty = default).
/// Errors are prefixed with `context`, the place of the list in the batch
/// (formatted only on error: this runs per window).
fn read_states<F: Feature>(r: &mut Reader<'_>, context: &dyn fmt::Display) -> Result<Vec<F::State>, PluginError> {
    let n = r
        .count(MIN_BYTES)
        .map_err(|e| PluginError::InvalidBatch(format!("{context}: {e}")))?;
    let mut states = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = r
            .bytes()
            .map_err(|e| PluginError::InvalidBatch(format!("{context}: state {i}: {e}")))?;
        let state =
            decode_state::<F>(bytes).map_err(|e| PluginError::InvalidState(format!("{context}: state {i}: {e}")))?;
        states.push(state);
    }
    Ok(states)
}

/// State `i` of a list: `bytes`, decoded (empty = default).
#[inline(always)]
fn read_state<F: Feature>(r: &mut Reader<'_>, context: &dyn fmt::Display, i: usize) -> Result<F::State, PluginError> {
    let bytes = r
        .bytes()
        .map_err(|e| PluginError::InvalidBatch(format!("{context}: state {i}: {e}")))?;
    decode_state::<F>(bytes).map_err(|e| PluginError::InvalidState(format!("{context}: state {i}: {e}")))
}

/// Reads `u32 k`, then `k` × `bytes`, and merges them in the order given:
/// the first is the accumulator, the others are merged into it as they are
/// decoded.
fn read_merged<F: Feature>(r: &mut Reader<'_>, context: &dyn fmt::Display) -> Result<F::State, PluginError> {
    let k = r
        .count(MIN_BYTES)
        .map_err(|e| PluginError::InvalidBatch(format!("{context}: {e}")))?;
    if k == 0 {
        return Ok(F::State::default());
    }
    let mut acc = read_state::<F>(r, context, 0)?;
    for i in 1..k {
        F::merge(&mut acc, &read_state::<F>(r, context, i)?);
    }
    Ok(acc)
}

fn decode_state<F: Feature>(bytes: &[u8]) -> Result<F::State, String> {
    if bytes.is_empty() {
        Ok(F::State::default())
    } else {
        F::decode(bytes)
    }
}

/// Writes `u32 n`, then `n` × `bytes`.
fn write_states<F: Feature>(states: &[F::State]) -> Vec<u8> {
    let mut out = Vec::new();
    Writer::new(&mut out).count(states.len());
    let header: [u8; 4] = out[..4].try_into().expect("a count is four bytes");
    for (i, state) in states.iter().enumerate() {
        // `F::encode` appends straight to `out` after a length placeholder:
        // a copy from a scratch buffer would be a `memory.copy`, which the
        // host runs as a call out of the plugin (one per state).
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        F::encode(state, &mut out);
        if out.len() < at + 4 || out[..4] != header {
            // A careless `encode` cleared the buffer: encode each state on
            // its own, so it destroys only its own bytes.
            return write_states_apart::<F>(states);
        }
        let len = u32::try_from(out.len() - at - 4).expect("featherflow states are limited to u32 lengths");
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        if i == 0 {
            // A feature's states are mostly one size: allocate once.
            out.reserve(states.len() * (out.len() - at));
        }
    }
    out
}

/// [`write_states`] through a scratch buffer per state.
#[cold]
fn write_states_apart<F: Feature>(states: &[F::State]) -> Vec<u8> {
    let mut out = Vec::new();
    Writer::new(&mut out).count(states.len());
    let mut scratch = Vec::new();
    for state in states {
        scratch.clear();
        F::encode(state, &mut scratch);
        Writer::new(&mut out).bytes(&scratch);
    }
    out
}

/// An event: `u32 slot`, `i64 time-ms`, `f64 price`, `str event-type`,
/// `str key`, `str extra`.
fn read_event<'a>(r: &mut Reader<'a>) -> Result<(usize, Event<'a>), DecodeError> {
    // The fixed-size head in one bounds check (this runs per event).
    let head: &[u8; 20] = r.take(20)?.try_into().expect("took 20 bytes");
    let le8 = |at: usize| <[u8; 8]>::try_from(&head[at..at + 8]).expect("8 bytes");
    let slot = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let event = Event {
        time_ms: i64::from_le_bytes(le8(4)),
        price: f64::from_le_bytes(le8(12)),
        event_type: r.str()?,
        key: r.str()?,
        extra: r.str()?,
    };
    Ok((slot, event))
}

fn write_value(w: &mut Writer<'_>, value: &Value) {
    match value {
        Value::Text(s) => {
            w.u8(TAG_TEXT);
            w.str(s);
        }
        Value::Integer(i) => {
            w.u8(TAG_INTEGER);
            w.i64(*i);
        }
        Value::Float(f) => {
            w.u8(TAG_FLOAT);
            w.f64(*f);
        }
        Value::Boolean(b) => {
            w.u8(TAG_BOOLEAN);
            w.bool(*b);
        }
    }
}

impl From<Declaration> for wit::Declaration {
    fn from(d: Declaration) -> Self {
        wit::Declaration {
            view: d.view,
            version: d.version,
            description: d.description,
            window: match d.window {
                WindowKind::Tumbling { size_ms } => wit::Window::Tumbling(size_ms),
                WindowKind::Sliding { size_ms, slide_ms } => wit::Window::Sliding(wit::Sliding { size_ms, slide_ms }),
                WindowKind::Session { gap_ms } => wit::Window::Session(wit::Session { gap_ms }),
            },
            key_field: d.key_field,
            fields: d
                .fields
                .into_iter()
                .map(|f| wit::Field {
                    name: f.name,
                    type_: f.ty.into(),
                })
                .collect(),
            ttl_seconds: d.ttl_seconds,
            state_version: d.state_version,
        }
    }
}

impl From<FieldType> for wit::FieldType {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::Text => wit::FieldType::Text,
            FieldType::Integer => wit::FieldType::Integer,
            FieldType::Float => wit::FieldType::Float,
            FieldType::Boolean => wit::FieldType::Boolean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts events and records their types in order, so tests can see
    /// exactly which events reached which state and in what merge order.
    #[derive(Debug, Default, PartialEq)]
    struct Trail {
        n: i64,
        types: String,
    }

    struct TrailFeature;

    impl Feature for TrailFeature {
        type State = Trail;

        fn declare() -> Declaration {
            Declaration::session("trail", 1000)
                .key_field("user_id")
                .text("user_id")
                .integer("n")
                .text("types")
                .state_version(2)
        }

        fn update(state: &mut Trail, event: &Event<'_>) {
            state.n += 1;
            state.types.push_str(event.event_type);
        }

        fn merge(into: &mut Trail, other: &Trail) {
            into.n += other.n;
            into.types.push_str(&other.types);
        }

        fn finish(state: &Trail, window: &Window<'_>) -> Vec<Value> {
            vec![
                Value::Text(window.key.to_owned()),
                Value::Integer(state.n),
                Value::Text(state.types.clone()),
            ]
        }

        fn encode(state: &Trail, out: &mut Vec<u8>) {
            let mut w = Writer::new(out);
            w.i64(state.n);
            w.str(&state.types);
        }

        fn decode(bytes: &[u8]) -> Result<Trail, String> {
            let mut r = Reader::new(bytes);
            let n = r.i64().map_err(|e| e.to_string())?;
            let types = r.str().map_err(|e| e.to_string())?.to_owned();
            r.finish().map_err(|e| e.to_string())?;
            Ok(Trail { n, types })
        }

        fn migrates_from(from_version: u32) -> bool {
            from_version == 1
        }

        /// Version 1 was a bare `i64` count.
        fn migrate(_: u32, bytes: &[u8]) -> Result<Trail, String> {
            let n = i64::from_le_bytes(bytes.try_into().map_err(|_| "expected 8 bytes")?);
            Ok(Trail {
                n,
                types: "?".repeat(n.clamp(0, 16) as usize),
            })
        }
    }

    type P = Plugin<TrailFeature>;

    fn trail(n: i64, types: &str) -> Vec<u8> {
        let mut out = Vec::new();
        TrailFeature::encode(&Trail { n, types: types.into() }, &mut out);
        out
    }

    fn pack_states(states: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.count(states.len());
        for s in states {
            w.bytes(s);
        }
        out
    }

    fn unpack_states(bytes: &[u8]) -> Vec<Trail> {
        let mut r = Reader::new(bytes);
        let states = read_states::<TrailFeature>(&mut r, &"test").unwrap();
        r.finish().unwrap();
        states
    }

    /// `(slot, time, event_type)` events with fixed price, key and extra.
    fn pack_events(events: &[(u32, i64, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.count(events.len());
        for &(slot, time, ty) in events {
            w.u32(slot);
            w.i64(time);
            w.f64(1.5);
            w.str(ty);
            w.str("u1");
            w.str("");
        }
        out
    }

    #[test]
    fn describe_mirrors_the_declaration() {
        let d = P::describe();
        assert_eq!(d.view, "trail");
        assert_eq!(d.version, "0.0.0");
        assert_eq!(d.key_field, "user_id");
        assert_eq!(d.state_version, 2);
        assert!(matches!(d.window, wit::Window::Session(wit::Session { gap_ms: 1000 })));
        let fields: Vec<_> = d.fields.iter().map(|f| (f.name.as_str(), f.type_)).collect();
        assert_eq!(
            fields,
            [
                ("user_id", wit::FieldType::Text),
                ("n", wit::FieldType::Integer),
                ("types", wit::FieldType::Text)
            ]
        );
    }

    #[test]
    fn update_routes_events_to_slots_and_starts_empty_states_from_default() {
        let states = pack_states(&[&[], &trail(2, "ab")]);
        let events = pack_events(&[(1, 10, "c"), (0, 11, "x"), (1, 12, "d")]);
        let out = P::update(states, events).unwrap();
        assert_eq!(
            unpack_states(&out),
            [
                Trail {
                    n: 1,
                    types: "x".into()
                },
                Trail {
                    n: 4,
                    types: "abcd".into()
                }
            ]
        );
    }

    #[test]
    fn an_encode_that_clears_its_buffer_destroys_only_its_own_state() {
        struct Clearer;
        impl Feature for Clearer {
            type State = i64;
            fn declare() -> Declaration {
                Declaration::sliding("clearer", 60_000, 60_000).integer("n")
            }
            fn update(state: &mut i64, _: &Event<'_>) {
                *state += 1;
            }
            fn merge(into: &mut i64, other: &i64) {
                *into += other;
            }
            fn finish(state: &i64, _: &Window<'_>) -> Vec<Value> {
                vec![Value::Integer(*state)]
            }
            fn encode(state: &i64, out: &mut Vec<u8>) {
                out.clear();
                out.extend_from_slice(&state.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Result<i64, String> {
                Ok(i64::from_le_bytes(bytes.try_into().map_err(|_| "expected 8 bytes")?))
            }
        }
        let events = pack_events(&[(0, 1, "a"), (1, 2, "b"), (1, 3, "c")]);
        let out = Plugin::<Clearer>::update(pack_states(&[&[], &5i64.to_le_bytes(), &[]]), events).unwrap();
        assert_eq!(
            out,
            pack_states(&[&1i64.to_le_bytes(), &7i64.to_le_bytes(), &0i64.to_le_bytes()])
        );
    }

    #[test]
    fn update_with_no_events_returns_every_state() {
        let out = P::update(pack_states(&[&trail(1, "a"), &[]]), pack_events(&[])).unwrap();
        assert_eq!(
            unpack_states(&out),
            [
                Trail {
                    n: 1,
                    types: "a".into()
                },
                Trail::default()
            ]
        );
    }

    #[test]
    fn update_errors_name_the_slot_or_event() {
        let err = P::update(pack_states(&[&[]]), pack_events(&[(0, 1, "a"), (3, 2, "b")]));
        assert_eq!(
            err,
            Err(PluginError::InvalidBatch(
                "events: event 1: slot 3 out of range (1 states)".into()
            ))
        );

        let err = P::update(pack_states(&[&[], &[1, 2, 3]]), pack_events(&[])).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidState(m) if m.starts_with("states: state 1: ")),
            "{err:?}"
        );

        let mut events = pack_events(&[(0, 1, "a")]);
        events.truncate(events.len() - 2);
        let err = P::update(pack_states(&[&[]]), events).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidBatch(m) if m.starts_with("events: event 0: ")),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_framing_is_invalid_batch_never_a_panic() {
        let huge_count = u32::MAX.to_le_bytes().to_vec();
        for bad in [vec![], vec![1, 0], huge_count.clone(), {
            let mut v = pack_states(&[&[]]);
            v.push(0); // trailing byte
            v
        }] {
            assert!(
                matches!(
                    P::update(bad.clone(), pack_events(&[])),
                    Err(PluginError::InvalidBatch(_))
                ),
                "update states {bad:?}"
            );
            assert!(
                matches!(
                    P::update(pack_states(&[]), bad.clone()),
                    Err(PluginError::InvalidBatch(_))
                ),
                "update events {bad:?}"
            );
            assert!(
                matches!(P::merge(bad.clone()), Err(PluginError::InvalidBatch(_))),
                "merge {bad:?}"
            );
            assert!(
                matches!(P::finish(bad.clone()), Err(PluginError::InvalidBatch(_))),
                "finish {bad:?}"
            );
            assert!(
                matches!(P::migrate(1, bad.clone()), Err(PluginError::InvalidBatch(_))),
                "migrate {bad:?}"
            );
        }
    }

    #[test]
    fn merge_folds_each_group_in_the_order_given() {
        let mut groups = Vec::new();
        let mut w = Writer::new(&mut groups);
        w.count(3);
        w.count(3); // group 0: three states, one empty
        w.bytes(&trail(1, "a"));
        w.bytes(&[]);
        w.bytes(&trail(2, "bc"));
        w.count(1); // group 1: one state
        w.bytes(&trail(1, "z"));
        w.count(0); // group 2: nothing to merge, so the empty state
        let out = P::merge(groups).unwrap();

        let mut r = Reader::new(&out);
        assert_eq!(r.count(4), Ok(3));
        assert_eq!(r.bytes(), Ok(&trail(3, "abc")[..]));
        assert_eq!(r.bytes(), Ok(&trail(1, "z")[..]));
        assert_eq!(r.bytes(), Ok(&trail(0, "")[..]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn finish_merges_oldest_first_and_packs_tagged_values() {
        let mut windows = Vec::new();
        let mut w = Writer::new(&mut windows);
        w.count(2);
        w.str("u1");
        w.i64(0);
        w.i64(1000);
        w.count(2);
        w.bytes(&trail(1, "a"));
        w.bytes(&trail(1, "b"));
        w.str("u2");
        w.i64(5);
        w.i64(6);
        w.count(0);
        let out = P::finish(windows).unwrap();

        let mut expected = Vec::new();
        let mut w = Writer::new(&mut expected);
        w.count(2);
        for (key, n, types) in [("u1", 2, "ab"), ("u2", 0, "")] {
            w.u8(TAG_TEXT);
            w.str(key);
            w.u8(TAG_INTEGER);
            w.i64(n);
            w.u8(TAG_TEXT);
            w.str(types);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn finish_refuses_values_that_do_not_match_the_declaration() {
        struct Liar;
        impl Feature for Liar {
            type State = ();
            fn declare() -> Declaration {
                Declaration::tumbling("liar", 10).integer("a").boolean("b")
            }
            fn update(_: &mut (), _: &Event<'_>) {}
            fn merge(_: &mut (), _: &()) {}
            fn finish(_: &(), window: &Window<'_>) -> Vec<Value> {
                match window.start_ms {
                    0 => vec![Value::Integer(1)],
                    _ => vec![Value::Integer(1), Value::Float(1.0)],
                }
            }
            fn encode(_: &(), _: &mut Vec<u8>) {}
            fn decode(_: &[u8]) -> Result<(), String> {
                Ok(())
            }
        }

        let window = |start: i64| {
            let mut b = Vec::new();
            let mut w = Writer::new(&mut b);
            w.count(1);
            w.str("k");
            w.i64(start);
            w.i64(start + 10);
            w.count(0);
            b
        };
        assert_eq!(
            Plugin::<Liar>::finish(window(0)),
            Err(PluginError::Other(
                "window 0: finish returned 1 values but 2 fields are declared".into()
            ))
        );
        assert_eq!(
            Plugin::<Liar>::finish(window(10)),
            Err(PluginError::Other(
                "window 0: field `b` is declared boolean but finish returned float".into()
            ))
        );
    }

    #[test]
    fn migrate_converts_known_versions_and_refuses_others() {
        let v1 = 3i64.to_le_bytes();
        let out = P::migrate(1, pack_states(&[&v1, &[]])).unwrap();
        assert_eq!(
            unpack_states(&out),
            [
                Trail {
                    n: 3,
                    types: "???".into()
                },
                Trail::default()
            ]
        );

        let err = P::migrate(1, pack_states(&[&[1, 2]])).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidState(m) if m.starts_with("state 0: ")),
            "{err:?}"
        );

        // Unsupported even with nothing to convert, so the host can ask first.
        assert!(matches!(
            P::migrate(7, pack_states(&[])),
            Err(PluginError::Unsupported(_))
        ));

        // The current version is checked and passed through.
        let same = pack_states(&[&trail(1, "a")]);
        assert_eq!(P::migrate(2, same.clone()), Ok(same));
        assert!(matches!(
            P::migrate(2, pack_states(&[&v1])),
            Err(PluginError::InvalidState(_))
        ));
    }

    #[test]
    fn event_field_reads_extra_json() {
        let event = Event {
            time_ms: 0,
            price: 0.0,
            event_type: "view",
            key: "1",
            extra: r#"{"country":"KR","qty":2}"#,
        };
        assert_eq!(event.field("country"), Some(serde_json::json!("KR")));
        assert_eq!(event.field("qty"), Some(serde_json::json!(2)));
        assert_eq!(event.field("missing"), None);
        assert_eq!(Event { extra: "", ..event }.field("qty"), None);
        assert_eq!(
            Event {
                extra: "not json",
                ..event
            }
            .field("qty"),
            None
        );
    }
}
