"""``{{VIEW}}``: per user and 10-minute window, the number of events and the
revenue (the sum of purchase prices). Replace it with your feature."""

import struct

from featherflow_sdk import Declaration, Feature, Field, Tumbling

# The state of one window part, kept by the engine as the bytes ``encode``
# writes (checkpointed, and merged when a window covers several parts):
# u64 events, f64 revenue, little-endian, 16 bytes.
_STATE = struct.Struct("<Qd")


class Plugin(Feature):
    def declare(self):
        return Declaration(
            view="{{VIEW}}",
            window=Tumbling(size_ms=600_000),
            version="0.1.0",
            description="Events and revenue per user per 10 minutes",
            key_field="user_id",
            fields=[Field.text("user_id"), Field.integer("events"), Field.float("revenue")],
            ttl_seconds=3600,
        )

    def empty(self):
        return [0, 0.0]

    def update(self, s, event):
        s[0] += 1
        if event.event_type == "purchase":
            s[1] += event.price
        return s

    def merge(self, into, other):
        into[0] += other[0]
        into[1] += other[1]
        return into

    def finish(self, s, window):
        return [window.key, s[0], s[1]]

    def encode(self, s):
        return _STATE.pack(s[0], s[1])

    def decode(self, data):
        if len(data) != _STATE.size:
            raise ValueError(f"a state is {_STATE.size} bytes, not {len(data)}")
        return list(_STATE.unpack(data))
