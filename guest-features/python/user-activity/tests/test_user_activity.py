"""The Python user_features port: its arithmetic, its declaration, and byte
for byte the Rust plugin's batches (testdata/rust-fixtures.json)."""

import json
import pathlib
import struct

import pytest

from featherflow_sdk import Adapter, Event, FieldType, PluginError, Sliding, Window
from user_activity import ENCODED_LEN, U64_MAX, UserActivity

F = UserActivity()
FIXTURES = json.loads((pathlib.Path(__file__).parents[1] / "testdata" / "rust-fixtures.json").read_text())
WINDOW = Window("111", 1_704_067_200_000, 1_704_070_800_000)


def run(events):
    state = F.empty()
    for ty, price in events:
        new = F.update(state, Event(time_ms=1_704_067_200_000, price=price, event_type=ty, key="111"))
        state = state if new is None else new
    return state


def test_counts_each_type_and_averages_view_prices():
    state = run([("view", 10.0), ("cart", 99.0), ("view", 20.0), ("purchase", 7.0), ("view", 5.25), ("cart", 1.0)])
    # (10.0 + 20.0 + 5.25) / 3, exact in binary floating point.
    assert F.finish(state, WINDOW) == ["111", 3, 2, 1, 11.75]


def test_average_is_zero_without_views():
    assert F.finish(run([("cart", 10.0), ("purchase", 20.0)]), WINDOW)[4] == 0.0
    assert F.finish(F.empty(), WINDOW) == ["111", 0, 0, 0, 0.0]


def test_other_and_differently_cased_types_touch_no_counter():
    assert run([("click", 5.0), ("View", 5.0), ("CART", 5.0), ("", 5.0)]) == F.empty()


def test_merging_slices_equals_counting_all_events_at_once():
    everything = run([("view", 10.0), ("cart", 0.0), ("view", 20.0), ("view", 5.25)])
    merged = run([("view", 10.0), ("cart", 0.0)])
    for other in [run([("view", 20.0)]), F.empty(), run([("view", 5.25)])]:
        F.merge(merged, other)
    assert merged == everything
    assert F.finish(merged, WINDOW)[4] == 11.75


def test_state_is_the_rust_plugins_32_bytes():
    state = run([("view", 29.99), ("cart", 0.0), ("purchase", 1.0)])
    data = F.encode(state)
    assert data == struct.pack("<QQQd", 1, 1, 1, 29.99)
    assert len(data) == ENCODED_LEN
    assert F.decode(data) == state
    for bad in (data[:31], data + b"\x00"):
        with pytest.raises(ValueError, match=f"^user_features state v1 is 32 bytes, got {len(bad)}$"):
            F.decode(bad)


def test_counters_saturate_like_rust():
    state = [U64_MAX, 5, 0, 1.0]
    F.update(state, Event(event_type="view", price=1.0))
    assert F.encode(state) == struct.pack("<QQQd", U64_MAX, 5, 0, 2.0)
    assert F.finish(state, WINDOW)[1] == (1 << 63) - 1


def test_declaration_matches_the_seed_feature():
    d = F.declare()
    assert (d.view, d.version, d.key_field, d.ttl_seconds, d.state_version) == (
        "user_features",
        "0.1.0",
        "user_id",
        7200,
        1,
    )
    assert d.window == Sliding(size_ms=3_600_000, slide_ms=600_000)
    assert [(f.name, f.type) for f in d.fields] == [
        ("user_id", FieldType.TEXT),
        ("view_count_1h", FieldType.INTEGER),
        ("cart_count_1h", FieldType.INTEGER),
        ("purchase_count_1h", FieldType.INTEGER),
        ("avg_viewed_price_1h", FieldType.FLOAT),
    ]


# --- the Rust plugin's bytes ------------------------------------------------

A = Adapter(UserActivity())


@pytest.mark.parametrize("case", range(len(FIXTURES["update"])))
def test_update_writes_the_rust_plugins_bytes(case):
    f = FIXTURES["update"][case]
    assert A.update(bytes.fromhex(f["states"]), bytes.fromhex(f["events"])).hex() == f["out"]


def test_merge_finish_and_migrate_write_the_rust_plugins_bytes():
    assert A.merge(bytes.fromhex(FIXTURES["merge"]["groups"])).hex() == FIXTURES["merge"]["out"]
    assert A.finish(bytes.fromhex(FIXTURES["finish"]["windows"])).hex() == FIXTURES["finish"]["out"]
    m = FIXTURES["migrate"]
    assert A.migrate(m["from"], bytes.fromhex(m["states"])).hex() == m["out"]
    with pytest.raises(PluginError) as e:
        A.migrate(2, bytes.fromhex(m["states"]))
    assert e.value == PluginError("unsupported", "cannot migrate states from version 2 to version 1")


def test_a_corrupt_state_is_invalid_state_with_the_rust_message():
    with pytest.raises(PluginError) as e:
        A.update(b"\x01\x00\x00\x00\x03\x00\x00\x00abc", b"\x00\x00\x00\x00")
    assert e.value == PluginError("invalid-state", "states: state 0: user_features state v1 is 32 bytes, got 3")
