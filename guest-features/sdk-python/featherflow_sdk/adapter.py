"""The batch glue: unpacks the byte layouts of ``wit/feature.wit``, calls a
:class:`~featherflow_sdk.feature.Feature` per state, event or window, and
packs the results (the mirror of ``guest-features/sdk/src/adapter.rs``).

Pure Python with no dependency on the generated bindings, so it runs (and is
tested) natively. Every public method returns ``bytes`` or raises
:class:`PluginError`, whatever the feature does: framing problems are
``invalid-batch``, a state the feature cannot decode is ``invalid-state``, an
exception anywhere else in the feature (or a ``finish`` that disagrees with
the declaration) is ``other`` with the traceback. Messages name the index
they are about, in the Rust SDK's words.

The event loop of ``update`` is the hot path (it runs per event, per view):
it unpacks each event's fixed-size head with one precompiled ``struct`` call,
decodes ``event_type`` through a small cache (event types are few), leaves
``key`` and ``extra`` undecoded until read, and hands the feature one reused
:class:`~featherflow_sdk.feature.Event`. When the fast path meets a framing
error it re-reads the input with the careful :class:`~featherflow_sdk.codec.Reader`
to word the error exactly.
"""

from __future__ import annotations

import struct
import traceback
from typing import Any, Callable, Sequence

from .codec import DecodeError, Reader
from .feature import Declaration, Event, Feature, FieldType, Window

__all__ = ["Adapter", "PluginError"]

# Smallest encodings, to refuse counts the input cannot hold (as in Rust).
MIN_BYTES = 4
MIN_GROUP = 4
MIN_EVENT = 4 + 8 + 8 + 3 * 4
MIN_WINDOW = 4 + 8 + 8 + 4

_U32 = struct.Struct("<I")
# slot, time-ms, price, length of event-type.
_HEAD = struct.Struct("<IqdI")
_TAG_I64 = struct.Struct("<Bq")
_TAG_F64 = struct.Struct("<Bd")
_TAG_STR = struct.Struct("<BI")
_BOOL = (b"\x03\x00", b"\x03\x01")

# A window after its key: i64 start-ms, i64 end-ms, u32 k (states).
_WINDOW_HEAD = struct.Struct("<qqI")

# Distinct event types remembered decoded; past this, new ones are decoded
# per event (a hostile stream of unique types cannot grow the cache).
_TYPE_CACHE_MAX = 256
# Tracebacks are cut to their last this-many characters.
_TRACEBACK_MAX = 8192


class _Careful(Exception):
    """The fast path met something it does not handle; take the careful one."""


class PluginError(Exception):
    """A WIT ``plugin-error``: ``kind`` is ``"invalid-state"``,
    ``"invalid-batch"``, ``"unsupported"`` or ``"other"``."""

    KINDS = ("invalid-state", "invalid-batch", "unsupported", "other")

    def __init__(self, kind: str, message: str) -> None:
        assert kind in self.KINDS, kind
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PluginError) and (self.kind, self.message) == (other.kind, other.message)

    def __hash__(self) -> int:
        return hash((self.kind, self.message))


def _batch(context: str, e: Exception) -> PluginError:
    return PluginError("invalid-batch", f"{context}: {e}")


def _uncaught(function: str) -> PluginError:
    """The exception being handled, as an ``other`` error with its traceback."""
    text = traceback.format_exc()
    if len(text) > _TRACEBACK_MAX:
        text = "...\n" + text[-_TRACEBACK_MAX:]
    return PluginError("other", f"{function}: uncaught exception in the feature\n{text.rstrip()}")


def _guard(function: str, body: Callable[..., bytes]) -> Callable[..., bytes]:
    def guarded(*args: Any) -> bytes:
        try:
            return body(*args)
        except PluginError:
            raise
        except BaseException:  # noqa: BLE001 - user code: anything must become an error value
            raise _uncaught(function) from None

    guarded.__name__ = function
    guarded.__doc__ = body.__doc__
    return guarded


class Adapter:
    """The batch functions of the ``feature`` world for one feature instance."""

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self.declaration: Declaration = feature.declare()
        self._fields = tuple(self.declaration.fields)
        self._pack_values = _values_packer(self._fields)
        self._types: dict[bytes, str] = {}
        # A fixed-size state the adapter decodes and encodes itself.
        ss = getattr(feature, "state_struct", None)
        if ss is not None:
            if not isinstance(ss, struct.Struct) or ss.format[:1] != "<":
                raise TypeError("state_struct must be a struct.Struct with a little-endian ('<') format")
            self._ss: struct.Struct | None = ss
            # The state with its `u32` length in front, packed in one call.
            self._ss_framed = struct.Struct("<I" + ss.format[1:])
            self._empty_state = list(feature.empty())
        else:
            self._ss = None
        # Public entry points: everything the feature raises becomes a PluginError.
        self.update = _guard("update", self._update)
        self.merge = _guard("merge", self._merge)
        self.finish = _guard("finish", self._finish)
        self.migrate = _guard("migrate", self._migrate)

    def describe(self) -> Declaration:
        return self.declaration

    # --- states -----------------------------------------------------------

    def _read_states(self, buf: bytes, context: str) -> tuple[list[Any], int]:
        """``u32 n``, then ``n`` × ``bytes``, decoded (empty = ``empty()``).
        Returns the states and the offset after them."""
        size = len(buf)
        try:
            (n,) = _U32.unpack_from(buf, 0)
        except struct.error:
            self._slow_states(buf, context)
            raise AssertionError("unreachable")
        if n * MIN_BYTES > size - 4:
            self._slow_states(buf, context)
        states: list[Any] = [None] * n
        decode = self.feature.decode
        empty = self.feature.empty
        u32 = _U32.unpack_from
        ss = self._ss
        if ss is not None:
            fixed = ss.size
            unpack = ss.unpack_from
            empty = self._empty_state.copy
        else:
            fixed = -1
        pos = 4
        for i in range(n):
            if pos + 4 > size:
                self._slow_states(buf, context)
            (length,) = u32(buf, pos)
            start = pos + 4
            pos = start + length
            if pos > size:
                self._slow_states(buf, context)
            if length == fixed:
                states[i] = list(unpack(buf, start))
            elif length == 0:
                states[i] = empty()
            else:
                try:
                    states[i] = decode(buf[start:pos])
                except Exception as e:  # noqa: BLE001 - any decode failure is an invalid state
                    raise PluginError("invalid-state", f"{context}: state {i}: {_describe(e)}") from None
        return states, pos

    @staticmethod
    def _slow_states(buf: bytes, context: str) -> None:
        """Re-reads a state list that failed the fast path; raises its error."""
        r = Reader(buf)
        try:
            n = r.count(MIN_BYTES)
        except DecodeError as e:
            raise _batch(context, e) from None
        for i in range(n):
            try:
                r.bytes()
            except DecodeError as e:
                raise _batch(f"{context}: state {i}", e) from None
        raise AssertionError(f"{context}: the fast path refused input the reader accepts")

    def _write_states(self, states: list[Any]) -> bytes:
        """``u32 n``, then ``n`` × ``bytes``: joined once."""
        if self._ss is not None:
            return self._write_fixed_states(states)
        return self._write_states_apart(states)

    def _write_fixed_states(self, states: list[Any]) -> bytes:
        """Fixed-size states: one preallocated buffer, one ``pack_into`` per
        state. A state the struct cannot pack (a value out of range, say) goes
        through the feature's ``encode``; one of another size sends the whole
        batch through :meth:`_write_states_apart`."""
        size = self._ss.size
        record = 4 + size
        n = len(states)
        out = bytearray(4 + n * record)
        _U32.pack_into(out, 0, n)
        pack = self._ss_framed.pack_into
        pos = 4
        for state in states:
            try:
                pack(out, pos, size, *state)
            except (struct.error, TypeError):
                b = self.feature.encode(state)
                if len(b) != size:
                    return self._write_states_apart(states)
                _U32.pack_into(out, pos, size)
                out[pos + 4 : pos + record] = b
            pos += record
        return bytes(out)

    def _write_states_apart(self, states: list[Any]) -> bytes:
        encode = self.feature.encode
        pack = _U32.pack
        parts: list[Any] = [pack(len(states))]
        append = parts.append
        for state in states:
            b = encode(state)
            append(pack(len(b)))
            append(b)
        return b"".join(parts)

    def _read_merged(self, r: Reader, context: str) -> Any:
        """``u32 k``, then ``k`` × ``bytes``, merged in the order given."""
        try:
            k = r.count(MIN_BYTES)
        except DecodeError as e:
            raise _batch(context, e) from None
        if k == 0:
            return self.feature.empty()
        acc = self._read_state(r, context, 0)
        merge = self.feature.merge
        for i in range(1, k):
            merged = merge(acc, self._read_state(r, context, i))
            if merged is not None:
                acc = merged
        return acc

    def _read_state(self, r: Reader, context: str, i: int) -> Any:
        try:
            b = r.bytes()
        except DecodeError as e:
            raise _batch(f"{context}: state {i}", e) from None
        if not b:
            return self.feature.empty()
        ss = self._ss
        if ss is not None and len(b) == ss.size:
            return list(ss.unpack(b))
        try:
            return self.feature.decode(b)
        except Exception as e:  # noqa: BLE001
            raise PluginError("invalid-state", f"{context}: state {i}: {_describe(e)}") from None

    # --- update -------------------------------------------------------------

    def _update(self, states_b: bytes, events_b: bytes) -> bytes:
        """Apply a batch of events to states (see ``wit/feature.wit``)."""
        states, end = self._read_states(states_b, "states")
        if end != len(states_b):
            raise _batch("states", DecodeError(f"{len(states_b) - end} trailing bytes after the end at byte {end}"))
        n = len(states)

        buf = events_b
        size = len(buf)
        try:
            (m,) = _U32.unpack_from(buf, 0)
        except struct.error:
            self._slow_events(buf, n)
        if m * MIN_EVENT > size - 4:
            self._slow_events(buf, n)

        head = _HEAD.unpack_from
        u32 = _U32.unpack_from
        types = self._types
        update = self.feature.update
        ev = Event()
        ev._buf = buf
        pos = 4
        for j in range(m):
            try:
                slot, time_ms, price, tlen = head(buf, pos)
                t0 = pos + 24
                at = t0 + tlen
                (klen,) = u32(buf, at)
                x = at + 8 + klen
                (xlen,) = u32(buf, x - 4)
            except struct.error:
                self._slow_events(buf, n)
            pos = x + xlen
            if pos > size:
                self._slow_events(buf, n)
            raw = buf[t0:at]
            event_type = types.get(raw)
            if event_type is None:
                try:
                    event_type = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _batch(f"events: event {j}", DecodeError(f"invalid UTF-8 in the string at byte {t0 - 4}"))
                if len(types) < _TYPE_CACHE_MAX:
                    types[raw] = event_type
            if slot >= n:
                raise PluginError("invalid-batch", f"events: event {j}: slot {slot} out of range ({n} states)")
            ev.time_ms = time_ms
            ev.price = price
            ev.event_type = event_type
            ev._at = at
            new = update(states[slot], ev)
            if new is not None:
                states[slot] = new
        if pos != size:
            raise _batch("events", DecodeError(f"{size - pos} trailing bytes after the end at byte {pos}"))
        # The event cannot be read after the call.
        ev._buf = None
        return self._write_states(states)

    @staticmethod
    def _slow_events(buf: bytes, n: int) -> None:
        """Re-reads an event list that failed the fast path; raises its error."""
        r = Reader(buf)
        try:
            m = r.count(MIN_EVENT)
        except DecodeError as e:
            raise _batch("events", e) from None
        for j in range(m):
            try:
                r.u32()
                r.i64()
                r.f64()
                r.str()
                r.str()
                r.str()
            except DecodeError as e:
                raise _batch(f"events: event {j}", e) from None
        raise AssertionError("events: the fast path refused input the reader accepts")

    # --- merge, finish, migrate ----------------------------------------------

    def _merge(self, groups: bytes) -> bytes:
        """Merge groups of states into one state each."""
        r = Reader(groups)
        try:
            g = r.count(MIN_GROUP)
        except DecodeError as e:
            raise _batch("groups", e) from None
        merged = [self._read_merged(r, f"groups: group {i}") for i in range(g)]
        try:
            r.finish()
        except DecodeError as e:
            raise _batch("groups", e) from None
        return self._write_states(merged)

    def _finish(self, windows: bytes) -> bytes:
        """Finish windows into output fields, checked against the declaration.

        The fast path reads the batch in place with precompiled structs, hands
        ``finish`` one reused :class:`Window`, and packs a window's values with
        one generated function (:func:`_values_packer`). Anything unusual (a
        framing error, a value of another type than declared) sends the whole
        batch through :meth:`_finish_careful`, which words the error; the
        feature is pure, so finishing a window twice is harmless."""
        try:
            return self._finish_fast(windows)
        except _Careful:
            return self._finish_careful(windows)

    def _finish_fast(self, buf: bytes) -> bytes:
        size = len(buf)
        u32 = _U32.unpack_from
        try:
            (w,) = u32(buf, 0)
        except struct.error:
            raise _Careful from None
        if w * MIN_WINDOW > size - 4:
            raise _Careful
        out = bytearray(_U32.pack(w))
        pack_values = self._pack_values
        finish = self.feature.finish
        merge = self.feature.merge
        ss = self._ss
        fixed = ss.size if ss is not None else -1
        unpack = ss.unpack_from if ss is not None else None
        decode = self._decode_bytes
        window = Window("", 0, 0)
        head = _WINDOW_HEAD.unpack_from
        pos = 4
        for _ in range(w):
            try:
                (klen,) = u32(buf, pos)
                k0 = pos + 4
                start_ms, end_ms, k = head(buf, k0 + klen)
            except struct.error:
                raise _Careful from None
            pos = k0 + klen + 20
            if k * MIN_BYTES > size - pos:
                raise _Careful
            try:
                key = str(buf[k0 : k0 + klen], "utf-8")
            except UnicodeDecodeError:
                raise _Careful from None
            state = None
            for j in range(k):
                if pos + 4 > size:
                    raise _Careful
                (length,) = u32(buf, pos)
                start = pos + 4
                pos = start + length
                if pos > size:
                    raise _Careful
                if j == 0:
                    state = list(unpack(buf, start)) if length == fixed else decode(buf[start:pos])
                else:
                    # `other` is only read: a tuple will do (no list() copy).
                    other = unpack(buf, start) if length == fixed else decode(buf[start:pos])
                    merged = merge(state, other)
                    if merged is not None:
                        state = merged
            if k == 0:
                state = self.feature.empty()
            window.key = key
            window.start_ms = start_ms
            window.end_ms = end_ms
            if not pack_values(out, finish(state, window)):
                raise _Careful
        if pos != size:
            raise _Careful
        return bytes(out)

    def _decode_bytes(self, b: bytes) -> Any:
        """A state's bytes decoded (empty = ``empty()``); ``_Careful`` if the
        feature cannot decode them (the careful path words the error)."""
        if not b:
            return self.feature.empty()
        try:
            return self.feature.decode(b)
        except Exception:  # noqa: BLE001
            raise _Careful from None

    def _finish_careful(self, windows: bytes) -> bytes:
        fields = self._fields
        nfields = len(fields)
        r = Reader(windows)
        try:
            w = r.count(MIN_WINDOW)
        except DecodeError as e:
            raise _batch("windows", e) from None
        out = bytearray(_U32.pack(w))
        finish = self.feature.finish
        for i in range(w):
            context = f"windows: window {i}"
            try:
                key = r.str()
                start_ms = r.i64()
                end_ms = r.i64()
            except DecodeError as e:
                raise _batch(context, e) from None
            state = self._read_merged(r, context)
            values = finish(state, Window(key, start_ms, end_ms))
            if len(values) != nfields:
                raise PluginError(
                    "other", f"window {i}: finish returned {len(values)} values but {nfields} fields are declared"
                )
            for value, field in zip(values, fields):
                _write_value(out, value, field, i)
        try:
            r.finish()
        except DecodeError as e:
            raise _batch("windows", e) from None
        return bytes(out)

    def _migrate(self, from_version: int, states_b: bytes) -> bytes:
        """Convert states written by an older state version."""
        current = self.declaration.state_version
        if from_version == current:
            # Nothing to convert; decoding and re-encoding still checks that
            # the states really are in the current version.
            states, end = self._read_states(states_b, "states")
            if end != len(states_b):
                raise _batch("states", DecodeError(f"{len(states_b) - end} trailing bytes after the end at byte {end}"))
            return self._write_states(states)
        if not self.feature.migrates_from(from_version):
            raise PluginError(
                "unsupported", f"cannot migrate states from version {from_version} to version {current}"
            )
        r = Reader(states_b)
        try:
            n = r.count(MIN_BYTES)
        except DecodeError as e:
            raise _batch("states", e) from None
        pack = _U32.pack
        parts: list[Any] = [pack(n)]
        encode = self.feature.encode
        for i in range(n):
            try:
                b = r.bytes()
            except DecodeError as e:
                raise _batch(f"states: state {i}", e) from None
            if not b:
                # The empty state is empty in every version.
                parts.append(pack(0))
                continue
            try:
                state = self.feature.migrate(from_version, b)
            except Exception as e:  # noqa: BLE001
                raise PluginError(
                    "invalid-state", f"state {i}: cannot migrate from version {from_version}: {_describe(e)}"
                ) from None
            enc = encode(state)
            parts.append(pack(len(enc)))
            parts.append(enc)
        try:
            r.finish()
        except DecodeError as e:
            raise _batch("states", e) from None
        return b"".join(parts)


def _describe(e: BaseException) -> str:
    """An exception as one line: its message, or its type when it has none."""
    text = str(e)
    return text if text else type(e).__name__


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return f"a Python {type(value).__name__}"


def _write_value(out: bytearray, value: Any, field: Any, i: int) -> None:
    """Appends ``value`` with the tag of ``field``'s declared type, or raises
    ``other`` when the value is not of that type."""
    ty = field.type
    cls = type(value)
    try:
        if ty is FieldType.INTEGER and (cls is int or (isinstance(value, int) and cls is not bool)):
            out += _TAG_I64.pack(1, value)
            return
        if ty is FieldType.FLOAT and (cls is float or (isinstance(value, (int, float)) and cls is not bool)):
            out += _TAG_F64.pack(2, value)
            return
    except (struct.error, OverflowError):
        raise PluginError(
            "other", f"window {i}: field `{field.name}` value {value!r} does not fit a 64-bit {ty}"
        ) from None
    if ty is FieldType.TEXT and isinstance(value, str):
        b = value.encode("utf-8")
        out += _TAG_STR.pack(0, len(b))
        out += b
        return
    if ty is FieldType.BOOLEAN and isinstance(value, bool):
        out += _BOOL[value]
        return
    raise PluginError(
        "other", f"window {i}: field `{field.name}` is declared {ty} but finish returned {_type_of(value)}"
    )


_PYTHON_TYPES = {FieldType.TEXT: str, FieldType.INTEGER: int, FieldType.FLOAT: float, FieldType.BOOLEAN: bool}
_FORMATS = {FieldType.INTEGER: "Bq", FieldType.FLOAT: "Bd", FieldType.BOOLEAN: "B?"}


def _values_packer(fields: Sequence[Any]) -> Callable[[bytearray, Any], bool]:
    """A function ``pack(out, values) -> bool`` for one declaration's fields,
    generated once (one call per window instead of one per value): it appends
    the tagged values and returns True when every value has exactly the
    declared Python type (``str``, ``int``, ``float``, ``bool``) and fits,
    else returns False (the careful path then converts, or words the error).
    A run of numeric fields packs with one struct. For user_features it is::

        def pack(out, v):
            try:
                if tuple(map(type, v)) != TYPES:
                    return False
                b0 = v[0].encode()
                out += TAG_STR(0, len(b0))
                out += b0
                out += S1(1, v[1], 1, v[2], 1, v[3], 2, v[4])
            except (STRUCT_ERROR, TypeError, OverflowError, UnicodeEncodeError):
                return False
            return True

    (A failure after a partial append leaves bytes behind, but the careful
    path rebuilds the whole output.)
    """
    env: dict[str, Any] = {
        "TYPES": tuple(_PYTHON_TYPES[f.type] for f in fields),
        "TAG_STR": _TAG_STR.pack,
        "STRUCT_ERROR": struct.error,
    }
    body = ["if tuple(map(type, v)) != TYPES:", "    return False"]
    run_fmt = ""
    run_args: list[str] = []

    def flush() -> None:
        nonlocal run_fmt, run_args
        if run_fmt:
            name = f"S{len(env)}"
            env[name] = struct.Struct("<" + run_fmt).pack
            body.append(f"out += {name}({', '.join(run_args)})")
            run_fmt, run_args = "", []

    for i, f in enumerate(fields):
        if f.type is FieldType.TEXT:
            flush()
            body += [f"b{i} = v[{i}].encode()", f"out += TAG_STR(0, len(b{i}))", f"out += b{i}"]
        else:
            run_fmt += _FORMATS[f.type]
            run_args += [str(f.type.value), f"v[{i}]"]
    flush()
    code = "\n".join(
        ["def pack(out, v):", "    try:"]
        + ["        " + line for line in body]
        + ["    except (STRUCT_ERROR, TypeError, OverflowError, UnicodeEncodeError):", "        return False", "    return True"]
    )
    exec(compile(code, "<featherflow values packer>", "exec"), env)  # noqa: S102 - generated from the declaration
    return env["pack"]
