"""What a feature author writes against: :class:`Feature` and the plain
Python types it speaks (:class:`Event`, :class:`Window`, :class:`Declaration`).

Nothing here knows about WebAssembly, the generated bindings or byte layouts;
:mod:`featherflow_sdk.adapter` translates. That is what lets a feature be
unit-tested natively with pytest. The mirror of ``guest-features/sdk/src/feature.rs``.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, Sequence, Union

_U32 = struct.Struct("<I")

__all__ = [
    "Declaration",
    "Event",
    "Feature",
    "Field",
    "FieldType",
    "Session",
    "Sliding",
    "Tumbling",
    "Window",
    "WindowKind",
]


class FieldType(Enum):
    """The type of an output field (WIT ``field-type``); the values are the
    WIT enum's and ``finish``'s output tags."""

    TEXT = 0
    INTEGER = 1
    FLOAT = 2
    BOOLEAN = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Sliding:
    """``size_ms`` long windows, a new one every ``slide_ms``, aligned to the
    epoch; ``size_ms`` must be a multiple of ``slide_ms``."""

    size_ms: int
    slide_ms: int


@dataclass(frozen=True)
class Session:
    """Sessions: an event at ``t`` opens ``[t, t + gap_ms)``; windows that
    intersect or touch merge."""

    gap_ms: int


@dataclass(frozen=True)
class Tumbling:
    """Fixed windows of ``size_ms`` aligned to the epoch."""

    size_ms: int


WindowKind = Union[Sliding, Session, Tumbling]


@dataclass(frozen=True)
class Field:
    """One output field: ``Field.text("user_id")``, ``Field.integer("n")``,
    ``Field.float("avg")``, ``Field.boolean("seen")``."""

    name: str
    type: FieldType

    @classmethod
    def text(cls, name: str) -> "Field":
        return cls(name, FieldType.TEXT)

    @classmethod
    def integer(cls, name: str) -> "Field":
        return cls(name, FieldType.INTEGER)

    @classmethod
    def float(cls, name: str) -> "Field":
        return cls(name, FieldType.FLOAT)

    @classmethod
    def boolean(cls, name: str) -> "Field":
        return cls(name, FieldType.BOOLEAN)


@dataclass(frozen=True)
class Declaration:
    """What a plugin is (WIT ``declaration``)::

        Declaration(
            view="user_features",
            window=Sliding(size_ms=3_600_000, slide_ms=600_000),
            key_field="user_id",
            fields=[Field.text("user_id"), Field.integer("view_count_1h")],
            ttl_seconds=7200,
        )

    Defaults as in the Rust SDK: version ``"0.0.0"``, no description, no key
    field (the host refuses an empty one, so set it), no fields,
    ``ttl_seconds`` 0 (no expiry), ``state_version`` 1. ``fields`` are in the
    order ``finish`` returns their values.
    """

    view: str
    window: WindowKind
    version: str = "0.0.0"
    description: str = ""
    key_field: str = ""
    fields: Sequence[Field] = ()
    ttl_seconds: int = 0
    state_version: int = 1

    def replace(self, **changes: Any) -> "Declaration":
        """A copy with some attributes changed (``d.replace(version="2.0.0")``)."""
        return dataclasses.replace(self, **changes)


class Event:
    """One event of an ``update`` batch.

    ``time_ms`` (int, epoch milliseconds), ``price`` (float) and
    ``event_type`` (str, compared as given: ``"view"`` and ``"View"`` differ)
    are plain attributes. ``key`` (the key field's value as text) and
    ``extra`` (the event's other top-level fields as one JSON object, or
    ``""``) are decoded from the batch only when read.

    Like the Rust SDK's borrowed ``Event<'a>``, an event is valid only during
    the ``update`` call that receives it: the adapter reuses one object for a
    whole batch. Copy the values you keep, not the event.
    """

    __slots__ = ("time_ms", "price", "event_type", "_buf", "_at", "_key", "_extra")

    def __init__(
        self,
        time_ms: int = 0,
        price: float = 0.0,
        event_type: str = "",
        key: str = "",
        extra: str = "",
    ) -> None:
        self.time_ms = time_ms
        self.price = price
        self.event_type = event_type
        # Set by the adapter: the batch, and the offset of this event's
        # `str key` in it (`str extra` follows). None for a hand-built event.
        self._buf: Any = None
        self._at = 0
        self._key = key
        self._extra = extra

    @property
    def key(self) -> str:
        buf = self._buf
        if buf is None:
            return self._key
        at = self._at
        (n,) = _U32.unpack_from(buf, at)
        return str(buf[at + 4 : at + 4 + n], "utf-8")

    @property
    def extra(self) -> str:
        buf = self._buf
        if buf is None:
            return self._extra
        at = self._at
        (n,) = _U32.unpack_from(buf, at)
        at += 4 + n
        (n,) = _U32.unpack_from(buf, at)
        return str(buf[at + 4 : at + 4 + n], "utf-8")

    def field(self, name: str) -> Any:
        """The top-level field ``name`` of the event's extra fields, or
        ``None`` when there is none (or ``extra`` is empty or not a JSON
        object). Parses ``extra`` on every call."""
        extra = self.extra
        if not extra:
            return None
        try:
            obj = json.loads(extra)
        except ValueError:
            return None
        return obj.get(name) if isinstance(obj, dict) else None

    def __repr__(self) -> str:
        return (
            f"Event(time_ms={self.time_ms!r}, price={self.price!r}, event_type={self.event_type!r}, "
            f"key={self.key!r}, extra={self.extra!r})"
        )


class Window:
    """The window being finished: ``key`` (text), ``start_ms`` (inclusive)
    and ``end_ms`` (exclusive), epoch milliseconds."""

    __slots__ = ("key", "start_ms", "end_ms")

    def __init__(self, key: str, start_ms: int, end_ms: int) -> None:
        self.key = key
        self.start_ms = start_ms
        self.end_ms = end_ms

    def __repr__(self) -> str:
        return f"Window(key={self.key!r}, start_ms={self.start_ms!r}, end_ms={self.end_ms!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Window) and (self.key, self.start_ms, self.end_ms) == (
            other.key,
            other.start_ms,
            other.end_ms,
        )


class Feature:
    """A feature's logic: a state, how events change it, how states combine
    and what a window's state outputs. Subclass it and override the methods.

    Every method is a pure function of its arguments (the component has no
    clock, files or network). An exception escaping a method becomes a
    ``plugin-error`` (``invalid-state`` from ``decode``/``migrate``, ``other``
    with the traceback from the rest), never a trap.

    States may be any Python object. ``update`` and ``merge`` either return
    the new state or return ``None`` after changing the state they were given
    in place (so a mutable state needs no ``return``, and an immutable one,
    such as a tuple or an int, is simply returned).

    A fixed-size state can set ``state_struct`` to a little-endian
    ``struct.Struct`` (``struct.Struct("<QQQd")``): the state is then the
    *list* of that struct's fields, and the adapter decodes and encodes
    states of exactly ``state_struct.size`` bytes itself, one C call each,
    instead of calling :meth:`decode` and :meth:`encode` (which still handle
    a state of another length, to word the error, and one the struct cannot
    pack, such as a counter past ``u64::MAX``). :meth:`empty` is then called
    once and its list copied. In the component this halves the cost of a
    state.
    """

    state_struct: Any = None

    def declare(self) -> Declaration:
        """Called once when the component starts (and cached); must be
        deterministic."""
        raise NotImplementedError

    def empty(self) -> Any:
        """A new empty state: what a new window starts from (the Rust SDK's
        ``State::default()``). Called once per new window: return a fresh
        object if the state is mutable."""
        raise NotImplementedError

    def update(self, state: Any, event: Event) -> Any:
        """Apply one event; return the new state, or ``None`` if ``state``
        was changed in place."""
        raise NotImplementedError

    def merge(self, into: Any, other: Any) -> Any:
        """Fold ``other`` into ``into``; return the result, or ``None`` if
        ``into`` was changed in place. States are merged oldest first, so a
        non-commutative merge is still deterministic. ``other`` must not be
        kept or changed (with ``state_struct`` it may be a tuple)."""
        raise NotImplementedError

    def finish(self, state: Any, window: Window) -> Sequence[Any]:
        """The window's output values, one per declared field, in declaration
        order: ``str`` for text, ``int`` for integer (within i64), ``float``
        (or ``int``) for float, ``bool`` for boolean."""
        raise NotImplementedError

    def encode(self, state: Any) -> bytes:
        """The state's bytes in the current ``state_version`` (``bytes``,
        ``bytearray`` or ``memoryview``). An empty encoding means the empty
        state to the host, so a non-empty state should not encode to ``b""``."""
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        """Decode a state written by :meth:`encode`; raise (any exception)
        if the bytes are not a valid state. Never called with ``b""``: an
        empty blob is :meth:`empty`."""
        raise NotImplementedError

    def migrates_from(self, from_version: int) -> bool:
        """Whether :meth:`migrate` can read states of ``from_version``."""
        return False

    def migrate(self, from_version: int, data: bytes) -> Any:
        """Decode a state written by an older ``state_version`` (one for which
        :meth:`migrates_from` is true). Never called with ``b""``."""
        raise ValueError(f"no migration from state version {from_version}")
