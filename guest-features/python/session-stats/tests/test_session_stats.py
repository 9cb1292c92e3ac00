"""The Python session_features port: its arithmetic, its declaration, and
byte for byte the Rust plugin's batches (testdata/rust-fixtures.json)."""

import json
import pathlib
import struct

import pytest

from featherflow_sdk import Adapter, Event, FieldType, PluginError, Session, Window
from session_stats import ENCODED_LEN, U64_MAX, SessionStats, duration_seconds

F = SessionStats()
FIXTURES = json.loads((pathlib.Path(__file__).parents[1] / "testdata" / "rust-fixtures.json").read_text())
WINDOW = Window("111", 1_704_067_200_000, 1_704_068_100_000)


def run(times):
    state = F.empty()
    for t in times:
        F.update(state, Event(time_ms=t, price=1.0, event_type="view", key="111"))
    return state


def test_counts_events_and_measures_duration():
    # The example in docs/semantics.md ("The output record"): 4 events over 300 s.
    t0 = 1_704_067_200_000
    assert F.finish(run([t0, t0 + 120_000, t0 + 300_000, t0 + 60_000]), WINDOW) == ["111", 4, 300]


def test_duration_truncates_to_whole_seconds_toward_zero():
    assert duration_seconds(run([1_000, 2_999])) == 1
    assert duration_seconds(run([0, 999])) == 0
    assert duration_seconds(run([5_000])) == 0
    assert duration_seconds(F.empty()) == 0
    # Only a corrupt state has min > max; Rust's division truncates toward zero.
    assert duration_seconds([2, 2_999, 1_000]) == -1


def test_merge_adds_counts_and_widens_the_span():
    a = run([10_000, 20_000])
    F.merge(a, run([5_000, 7_000, 9_000]))
    assert a == [5, 5_000, 20_000]
    assert a == run([10_000, 5_000, 20_000, 7_000, 9_000])
    # The empty state is the identity on both sides.
    empty = F.empty()
    F.merge(empty, a)
    assert empty == a and empty is not a
    F.merge(empty, F.empty())
    assert empty == a


def test_state_is_the_rust_plugins_24_bytes():
    state = run([1_704_067_200_000, 1_704_067_500_000])
    data = F.encode(state)
    assert data == struct.pack("<Qqq", 2, 1_704_067_200_000, 1_704_067_500_000)
    assert len(data) == ENCODED_LEN
    assert F.decode(data) == state
    with pytest.raises(ValueError, match="^session_features state v1 is 24 bytes, got 23$"):
        F.decode(data[:23])


def test_count_saturates_like_rust():
    state = [U64_MAX, 1, 2]
    F.update(state, Event(time_ms=3))
    assert F.encode(state) == struct.pack("<Qqq", U64_MAX, 1, 3)
    assert F.finish(state, WINDOW)[1] == (1 << 63) - 1


def test_declaration_matches_the_seed_feature():
    d = F.declare()
    assert (d.view, d.version, d.key_field, d.ttl_seconds, d.state_version) == (
        "session_features",
        "0.1.0",
        "user_id",
        3600,
        1,
    )
    assert d.window == Session(gap_ms=600_000)
    assert [(f.name, f.type) for f in d.fields] == [
        ("user_id", FieldType.TEXT),
        ("event_count", FieldType.INTEGER),
        ("duration_seconds", FieldType.INTEGER),
    ]


# --- the Rust plugin's bytes ------------------------------------------------

A = Adapter(SessionStats())


@pytest.mark.parametrize("case", range(len(FIXTURES["update"])))
def test_update_writes_the_rust_plugins_bytes(case):
    f = FIXTURES["update"][case]
    assert A.update(bytes.fromhex(f["states"]), bytes.fromhex(f["events"])).hex() == f["out"]


def test_merge_finish_and_migrate_write_the_rust_plugins_bytes():
    assert A.merge(bytes.fromhex(FIXTURES["merge"]["groups"])).hex() == FIXTURES["merge"]["out"]
    assert A.finish(bytes.fromhex(FIXTURES["finish"]["windows"])).hex() == FIXTURES["finish"]["out"]
    m = FIXTURES["migrate"]
    assert A.migrate(m["from"], bytes.fromhex(m["states"])).hex() == m["out"]


def test_a_corrupt_state_is_invalid_state_with_the_rust_message():
    with pytest.raises(PluginError) as e:
        A.update(b"\x01\x00\x00\x00\x03\x00\x00\x00abc", b"\x00\x00\x00\x00")
    assert e.value == PluginError("invalid-state", "states: state 0: session_features state v1 is 24 bytes, got 3")
