"""The little-endian byte codec of the packed batches in ``wit/feature.wit``
(the mirror of ``guest-features/sdk/src/codec.rs``).

Owns the primitive layouts only: fixed-width little-endian integers and
floats, ``str`` (``u32`` byte length + UTF-8) and ``bytes`` (``u32`` length +
raw bytes). Features may use :class:`Reader` and :class:`Writer` for their
own state, though a fixed-size state is cheapest as one ``struct.Struct``
(see the seed ports).

The :class:`Reader` never trusts a length: every read is bounds-checked and
:meth:`Reader.count` refuses a count the remaining bytes cannot hold. Its
error messages are the Rust SDK's, word for word.
"""

from __future__ import annotations

import struct

__all__ = ["DecodeError", "Reader", "Writer"]

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")


class DecodeError(ValueError):
    """Why a byte string could not be decoded; offsets are from the start of
    the buffer given to :class:`Reader`."""


class Reader:
    """Reads little-endian values from ``bytes`` (or anything supporting the
    buffer protocol), bounds-checking every read."""

    __slots__ = ("buf", "pos", "_len")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self._len = len(buf)

    def remaining(self) -> int:
        return self._len - self.pos

    def _end(self, needed: int) -> DecodeError:
        return DecodeError(
            f"unexpected end of input at byte {self.pos}: need {needed} bytes, {self.remaining()} left"
        )

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes, raw (a copy)."""
        end = self.pos + n
        if end > self._len:
            raise self._end(n)
        out = bytes(self.buf[self.pos : end])
        self.pos = end
        return out

    def _fixed(self, s: struct.Struct):
        at = self.pos
        if at + s.size > self._len:
            raise self._end(s.size)
        self.pos = at + s.size
        return s.unpack_from(self.buf, at)[0]

    def u8(self) -> int:
        return self._fixed(_U8)

    def bool(self) -> bool:
        at = self.pos
        b = self.u8()
        if b > 1:
            raise DecodeError(f"invalid boolean {b} at byte {at} (expected 0 or 1)")
        return b == 1

    def u32(self) -> int:
        return self._fixed(_U32)

    def u64(self) -> int:
        return self._fixed(_U64)

    def i64(self) -> int:
        return self._fixed(_I64)

    def f64(self) -> float:
        return self._fixed(_F64)

    def count(self, min_item_len: int) -> int:
        """A ``u32`` item count, refused when the remaining bytes cannot hold
        that many items of at least ``min_item_len`` bytes."""
        at = self.pos
        n = self.u32()
        if n * min_item_len > self.remaining():
            raise DecodeError(f"count {n} at byte {at} is larger than the remaining input can hold")
        return n

    def bytes(self) -> bytes:
        """``bytes``: ``u32`` length, then that many raw bytes (a copy)."""
        n = self.u32()
        return self.take(n)

    def str(self) -> str:
        """``str``: ``u32`` byte length, then that many bytes of UTF-8."""
        at = self.pos
        raw = self.bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"invalid UTF-8 in the string at byte {at}") from None

    def finish(self) -> None:
        """Succeeds only if every byte was read."""
        left = self.remaining()
        if left:
            raise DecodeError(f"{left} trailing bytes after the end at byte {self.pos}")


class Writer:
    """Appends little-endian values to a ``bytearray``."""

    __slots__ = ("out",)

    def __init__(self, out: bytearray | None = None) -> None:
        self.out = bytearray() if out is None else out

    def u8(self, v: int) -> None:
        self.out.append(v)

    def bool(self, v: bool) -> None:
        self.out.append(1 if v else 0)

    def u32(self, v: int) -> None:
        self.out += _U32.pack(v)

    def u64(self, v: int) -> None:
        self.out += _U64.pack(v)

    def i64(self, v: int) -> None:
        self.out += _I64.pack(v)

    def f64(self, v: float) -> None:
        self.out += _F64.pack(v)

    def count(self, n: int) -> None:
        self.u32(n)

    def bytes(self, b: bytes) -> None:
        self.out += _U32.pack(len(b))
        self.out += b

    def str(self, s: str) -> None:
        self.bytes(s.encode("utf-8"))

    def getvalue(self) -> bytes:
        return bytes(self.out)
