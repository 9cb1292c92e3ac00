"""``user_features``: per user, over a one-hour window sliding every ten
minutes, the number of views, carts and purchases and the average viewed
price. The Python port of ``guest-features/user-activity`` (see "Seed
features" in docs/semantics.md): the same declaration and the same state
bytes, so either plugin can take over the other's states in a hot swap.

State: ``[views, carts, purchases, view_price_sum]`` (a list, changed in
place). Encoding (state version 1): ``u64 views``, ``u64 carts``,
``u64 purchases``, ``f64 view_price_sum``, little-endian, 32 bytes.
"""

import struct

from featherflow_sdk import Declaration, Feature, Field, Sliding

VERSION = "0.1.0"

_STATE = struct.Struct("<QQQd")
ENCODED_LEN = _STATE.size
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1

DECLARATION = Declaration(
    view="user_features",
    window=Sliding(size_ms=3_600_000, slide_ms=600_000),
    version=VERSION,
    description="Views, carts and purchases per user over the last hour, and the average viewed price",
    key_field="user_id",
    fields=[
        Field.text("user_id"),
        Field.integer("view_count_1h"),
        Field.integer("cart_count_1h"),
        Field.integer("purchase_count_1h"),
        Field.float("avg_viewed_price_1h"),
    ],
    ttl_seconds=7200,
    state_version=1,
)


class UserActivity(Feature):
    state_struct = _STATE

    # Counters are Python ints and may pass u64::MAX only in theory; the Rust
    # plugin saturates every addition, which for sums of non-negative counts
    # is the same as saturating once, when the state is encoded or finished.

    def declare(self):
        return DECLARATION

    def empty(self):
        return [0, 0, 0, 0.0]

    def update(self, s, event):
        # Case-sensitive, as the Flink job compared them; other event types
        # touch no counter.
        t = event.event_type
        if t == "view":
            s[0] += 1
            s[3] += event.price
        elif t == "cart":
            s[1] += 1
        elif t == "purchase":
            s[2] += 1

    def merge(self, into, other):
        into[0] += other[0]
        into[1] += other[1]
        into[2] += other[2]
        into[3] += other[3]

    def finish(self, s, window):
        views = min(s[0], U64_MAX)
        # Sum of view prices / view count (the int converts to a double
        # exactly as Rust's `as f64`), 0.0 without views.
        avg = s[3] / views if views else 0.0
        return [window.key, min(views, I64_MAX), min(s[1], I64_MAX), min(s[2], I64_MAX), avg]

    def encode(self, s):
        try:
            return _STATE.pack(*s)
        except struct.error:
            return _STATE.pack(min(s[0], U64_MAX), min(s[1], U64_MAX), min(s[2], U64_MAX), s[3])

    def decode(self, data):
        if len(data) != ENCODED_LEN:
            raise ValueError(f"user_features state v1 is {ENCODED_LEN} bytes, got {len(data)}")
        return list(_STATE.unpack(data))
