"""The adapter against a test feature that records what reached which state
(the Python twin of the Rust SDK's adapter tests)."""

import struct

import pytest

from featherflow_sdk import (
    Adapter,
    Declaration,
    Event,
    Feature,
    Field,
    FieldType,
    PluginError,
    Reader,
    Session,
    Tumbling,
    Window,
    Writer,
)


class Trail(Feature):
    """Counts events and records their types in order. State: [n, types]."""

    def declare(self):
        return Declaration(
            view="trail",
            window=Session(gap_ms=1000),
            key_field="user_id",
            fields=[Field.text("user_id"), Field.integer("n"), Field.text("types")],
            state_version=2,
        )

    def empty(self):
        return [0, ""]

    def update(self, state, event):
        state[0] += 1
        state[1] += event.event_type

    def merge(self, into, other):
        into[0] += other[0]
        into[1] += other[1]

    def finish(self, state, window):
        return [window.key, state[0], state[1]]

    def encode(self, state):
        w = Writer()
        w.i64(state[0])
        w.str(state[1])
        return w.getvalue()

    def decode(self, data):
        r = Reader(data)
        n = r.i64()
        types = r.str()
        r.finish()
        return [n, types]

    def migrates_from(self, from_version):
        return from_version == 1

    def migrate(self, from_version, data):
        # Version 1 was a bare i64 count.
        if len(data) != 8:
            raise ValueError("expected 8 bytes")
        (n,) = struct.unpack("<q", data)
        return [n, "?" * max(0, min(n, 16))]


def trail(n, types):
    return Trail().encode([n, types])


def pack_states(states):
    w = Writer()
    w.count(len(states))
    for s in states:
        w.bytes(s)
    return w.getvalue()


def unpack_states(data):
    r = Reader(data)
    out = [r.bytes() for _ in range(r.count(4))]
    r.finish()
    return out


def pack_events(events, key="u1", extra=""):
    """(slot, time, event_type) events with fixed price, key and extra."""
    w = Writer()
    w.count(len(events))
    for slot, time, ty in events:
        w.u32(slot)
        w.i64(time)
        w.f64(1.5)
        w.str(ty)
        w.str(key)
        w.str(extra)
    return w.getvalue()


P = Adapter(Trail())


def test_describe_mirrors_the_declaration():
    d = P.describe()
    assert d.view == "trail"
    assert d.version == "0.0.0"
    assert d.key_field == "user_id"
    assert d.state_version == 2
    assert d.window == Session(gap_ms=1000)
    assert [(f.name, f.type) for f in d.fields] == [
        ("user_id", FieldType.TEXT),
        ("n", FieldType.INTEGER),
        ("types", FieldType.TEXT),
    ]


def test_update_routes_events_to_slots_and_starts_empty_states_from_empty():
    out = P.update(pack_states([b"", trail(2, "ab")]), pack_events([(1, 10, "c"), (0, 11, "x"), (1, 12, "d")]))
    assert unpack_states(out) == [trail(1, "x"), trail(4, "abcd")]


def test_update_with_no_events_returns_every_state():
    out = P.update(pack_states([trail(1, "a"), b""]), pack_events([]))
    assert unpack_states(out) == [trail(1, "a"), trail(0, "")]


def test_events_carry_time_price_type_key_and_extra():
    seen = []

    class Spy(Trail):
        def update(self, state, event):
            seen.append((event.time_ms, event.price, event.event_type, event.key, event.extra, event.field("x")))

    w = Writer()
    w.count(2)
    for slot, t, price, ty, key, extra in [
        (0, -5, 2.25, "view", "k1", '{"x":[1,2]}'),
        (0, 1_704_067_200_000, 0.1, "é", "quote\"d\\é", ""),
    ]:
        w.u32(slot)
        w.i64(t)
        w.f64(price)
        w.str(ty)
        w.str(key)
        w.str(extra)
    Adapter(Spy()).update(pack_states([b""]), w.getvalue())
    assert seen == [
        (-5, 2.25, "view", "k1", '{"x":[1,2]}', [1, 2]),
        (1_704_067_200_000, 0.1, "é", "quote\"d\\é", "", None),
    ]


def test_update_errors_name_the_slot_or_event():
    with pytest.raises(PluginError) as e:
        P.update(pack_states([b""]), pack_events([(0, 1, "a"), (3, 2, "b")]))
    assert e.value == PluginError("invalid-batch", "events: event 1: slot 3 out of range (1 states)")

    with pytest.raises(PluginError) as e:
        P.update(pack_states([b"", b"\x01\x02\x03"]), pack_events([]))
    assert e.value.kind == "invalid-state"
    assert e.value.message.startswith("states: state 1: ")

    events = pack_events([(0, 1, "a")])[:-2]
    with pytest.raises(PluginError) as e:
        P.update(pack_states([b""]), events)
    assert e.value.kind == "invalid-batch"
    assert e.value.message.startswith("events: event 0: "), e.value.message


@pytest.mark.parametrize(
    "bad", [b"", b"\x01\x00", b"\xff\xff\xff\xff", pack_states([b""]) + b"\x00"], ids=["empty", "short", "huge", "trailing"]
)
def test_malformed_framing_is_invalid_batch_never_a_crash(bad):
    for call in [
        lambda: P.update(bad, pack_events([])),
        lambda: P.update(pack_states([]), bad),
        lambda: P.merge(bad),
        lambda: P.finish(bad),
        lambda: P.migrate(1, bad),
    ]:
        with pytest.raises(PluginError) as e:
            call()
        assert e.value.kind == "invalid-batch", e.value


def test_invalid_utf8_event_type_is_invalid_batch():
    events = pack_events([(0, 1, "ab")]).replace(b"ab", b"a\xff")
    with pytest.raises(PluginError) as e:
        P.update(pack_states([b""]), events)
    assert e.value == PluginError("invalid-batch", "events: event 0: invalid UTF-8 in the string at byte 24")


def test_merge_folds_each_group_in_the_order_given():
    w = Writer()
    w.count(3)
    w.count(3)  # group 0: three states, one empty
    w.bytes(trail(1, "a"))
    w.bytes(b"")
    w.bytes(trail(2, "bc"))
    w.count(1)  # group 1: one state
    w.bytes(trail(1, "z"))
    w.count(0)  # group 2: nothing to merge, so the empty state
    assert unpack_states(P.merge(w.getvalue())) == [trail(3, "abc"), trail(1, "z"), trail(0, "")]


def windows(*specs):
    w = Writer()
    w.count(len(specs))
    for key, start, end, states in specs:
        w.str(key)
        w.i64(start)
        w.i64(end)
        w.count(len(states))
        for s in states:
            w.bytes(s)
    return w.getvalue()


def test_finish_merges_oldest_first_and_packs_tagged_values():
    out = P.finish(windows(("u1", 0, 1000, [trail(1, "a"), trail(1, "b")]), ("u2", 5, 6, [])))
    w = Writer()
    w.count(2)
    for key, n, types in [("u1", 2, "ab"), ("u2", 0, "")]:
        w.u8(0)
        w.str(key)
        w.u8(1)
        w.i64(n)
        w.u8(0)
        w.str(types)
    assert out == w.getvalue()


class Typed(Trail):
    """Returns whatever the window's key names."""

    def declare(self):
        return Declaration(
            view="typed",
            window=Tumbling(size_ms=10),
            fields=[Field.integer("i"), Field.float("f"), Field.boolean("b"), Field.text("t")],
        )

    def finish(self, state, window):
        return {
            "ok": [-3, 2.5, True, "x"],
            "int-as-float": [1, 2, False, ""],
            "short": [1],
            "bool-as-int": [True, 1.0, True, ""],
            "float-as-int": [1.5, 1.0, True, ""],
            "big": [1 << 63, 1.0, True, ""],
            "none": [1, None, True, ""],
        }[window.key]


def finish_one(key):
    return Adapter(Typed()).finish(windows((key, 0, 10, [])))


def test_finish_packs_every_type_and_accepts_an_int_for_a_float():
    assert finish_one("ok") == struct.pack("<IBqBdBBBI", 1, 1, -3, 2, 2.5, 3, 1, 0, 1) + b"x"
    assert finish_one("int-as-float") == struct.pack("<IBqBdBBBI", 1, 1, 1, 2, 2.0, 3, 0, 0, 0)


@pytest.mark.parametrize(
    "key,message",
    [
        ("short", "window 0: finish returned 1 values but 4 fields are declared"),
        ("bool-as-int", "window 0: field `i` is declared integer but finish returned boolean"),
        ("float-as-int", "window 0: field `i` is declared integer but finish returned float"),
        ("big", "window 0: field `i` value 9223372036854775808 does not fit a 64-bit integer"),
        ("none", "window 0: field `f` is declared float but finish returned a Python NoneType"),
    ],
)
def test_finish_refuses_values_that_do_not_match_the_declaration(key, message):
    with pytest.raises(PluginError) as e:
        finish_one(key)
    assert e.value == PluginError("other", message)


def test_migrate_converts_known_versions_and_refuses_others():
    out = P.migrate(1, pack_states([struct.pack("<q", 3), b""]))
    assert unpack_states(out) == [trail(3, "???"), b""]

    with pytest.raises(PluginError) as e:
        P.migrate(7, pack_states([]))
    assert e.value == PluginError("unsupported", "cannot migrate states from version 7 to version 2")

    with pytest.raises(PluginError) as e:
        P.migrate(1, pack_states([b"\x01"]))
    assert e.value == PluginError("invalid-state", "state 0: cannot migrate from version 1: expected 8 bytes")

    # The current version: decoded and re-encoded, so checked.
    assert unpack_states(P.migrate(2, pack_states([trail(1, "a")]))) == [trail(1, "a")]
    with pytest.raises(PluginError) as e:
        P.migrate(2, pack_states([b"\x01"]))
    assert e.value.kind == "invalid-state"


class Raiser(Trail):
    def update(self, state, event):
        if event.event_type == "boom":
            raise RuntimeError("kaboom")

    def finish(self, state, window):
        return [window.key, 1 // 0, ""]

    def encode(self, state):
        if state[0] < 0:
            return None
        return super().encode(state)


def test_exceptions_in_feature_code_are_other_errors_with_the_traceback():
    a = Adapter(Raiser())
    with pytest.raises(PluginError) as e:
        a.update(pack_states([b""]), pack_events([(0, 1, "a"), (0, 2, "boom")]))
    assert e.value.kind == "other"
    assert e.value.message.startswith("update: uncaught exception in the feature\nTraceback")
    assert e.value.message.endswith("RuntimeError: kaboom")
    assert "in update" in e.value.message

    with pytest.raises(PluginError) as e:
        a.finish(windows(("k", 0, 1, [])))
    assert e.value.kind == "other"
    assert e.value.message.endswith("ZeroDivisionError: integer division or modulo by zero")

    with pytest.raises(PluginError) as e:
        a.update(pack_states([trail(-1, "")]), pack_events([]))
    assert e.value.kind == "other"
    assert "TypeError" in e.value.message

    # The adapter is still usable after an error.
    assert unpack_states(a.update(pack_states([b""]), pack_events([(0, 1, "a")]))) == [trail(0, "")]


def test_event_type_cache_is_bounded():
    a = Adapter(Trail())
    events = pack_events([(0, i, f"t{i}") for i in range(1000)])
    out = a.update(pack_states([b""]), events)
    assert Trail().decode(unpack_states(out)[0])[0] == 1000
    assert len(a._types) == 256


def test_hand_built_events_and_windows_read_like_the_adapters():
    e = Event(time_ms=1, price=2.0, event_type="view", key="111", extra='{"a": 1}')
    assert (e.key, e.extra, e.field("a"), e.field("b")) == ("111", '{"a": 1}', 1, None)
    assert Event().field("a") is None
    assert Window("k", 0, 10) == Window("k", 0, 10)
