"""``session_features``: per user session (gap ten minutes), the number of
events and the session's duration in whole seconds. The Python port of
``guest-features/session-stats`` (see "Seed features" in docs/semantics.md):
the same declaration and the same state bytes, so either plugin can take
over the other's states in a hot swap.

State: ``[count, min_time_ms, max_time_ms]`` (a list, changed in place); the
times mean nothing while ``count`` is 0. Encoding (state version 1):
``u64 count``, ``i64 min_time_ms``, ``i64 max_time_ms``, little-endian, 24
bytes.
"""

import struct

from featherflow_sdk import Declaration, Feature, Field, Session

VERSION = "0.1.0"

_STATE = struct.Struct("<Qqq")
ENCODED_LEN = _STATE.size
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1

DECLARATION = Declaration(
    view="session_features",
    window=Session(gap_ms=600_000),
    version=VERSION,
    description="Events per user session and the session's duration in seconds",
    key_field="user_id",
    fields=[
        Field.text("user_id"),
        Field.integer("event_count"),
        Field.integer("duration_seconds"),
    ],
    ttl_seconds=3600,
    state_version=1,
)


def duration_seconds(s):
    """``(max - min) / 1000`` truncated toward zero like the Flink job's (and
    Rust's) integer division; 0 for an empty session."""
    if s[0] == 0:
        return 0
    d = s[2] - s[1]
    return d // 1000 if d >= 0 else -(-d // 1000)


class SessionStats(Feature):
    state_struct = _STATE

    # The count may pass u64::MAX only in theory; the Rust plugin saturates
    # every addition, which for non-negative counts is the same as saturating
    # once, when the state is encoded or finished.

    def declare(self):
        return DECLARATION

    def empty(self):
        return [0, 0, 0]

    def update(self, s, event):
        t = event.time_ms
        if s[0] == 0:
            s[0] = 1
            s[1] = t
            s[2] = t
            return
        s[0] += 1
        if t < s[1]:
            s[1] = t
        if t > s[2]:
            s[2] = t

    def merge(self, into, other):
        if other[0] == 0:
            return
        if into[0] == 0:
            into[:] = other
            return
        into[0] += other[0]
        if other[1] < into[1]:
            into[1] = other[1]
        if other[2] > into[2]:
            into[2] = other[2]

    def finish(self, s, window):
        return [window.key, min(s[0], I64_MAX), duration_seconds(s)]

    def encode(self, s):
        try:
            return _STATE.pack(*s)
        except struct.error:
            return _STATE.pack(min(s[0], U64_MAX), s[1], s[2])

    def decode(self, data):
        if len(data) != ENCODED_LEN:
            raise ValueError(f"session_features state v1 is {ENCODED_LEN} bytes, got {len(data)}")
        return list(_STATE.unpack(data))
