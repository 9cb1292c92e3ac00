import pytest

from featherflow_sdk import DecodeError, Reader, Writer


def test_round_trips_every_primitive():
    w = Writer()
    w.u8(7)
    w.bool(True)
    w.u32(0xDEADBEEF)
    w.u64((1 << 64) - 2)
    w.i64(-42)
    w.f64(11.75)
    w.str("héllo")
    w.bytes(b"\x01\x02\x03")
    r = Reader(w.getvalue())
    assert r.u8() == 7
    assert r.bool() is True
    assert r.u32() == 0xDEADBEEF
    assert r.u64() == (1 << 64) - 2
    assert r.i64() == -42
    assert r.f64() == 11.75
    assert r.str() == "héllo"
    assert r.bytes() == b"\x01\x02\x03"
    r.finish()


def test_layout_is_little_endian_with_u32_lengths():
    w = Writer()
    w.u32(1)
    w.i64(-2)
    w.str("ab")
    assert w.getvalue() == bytes([1, 0, 0, 0] + [0xFE] + [0xFF] * 7 + [2, 0, 0, 0, ord("a"), ord("b")])


def test_truncated_input_is_an_error_with_the_rust_message():
    with pytest.raises(DecodeError, match=r"^unexpected end of input at byte 0: need 4 bytes, 3 left$"):
        Reader(b"\x01\x02\x03").u32()
    with pytest.raises(DecodeError, match="at byte 4"):
        Reader(b"\x0a\x00\x00\x00x").bytes()
    with pytest.raises(DecodeError):
        Reader(b"\xff\xff\xff\xff").bytes()


def test_count_refuses_what_the_input_cannot_hold():
    with pytest.raises(DecodeError, match=r"^count 4294967295 at byte 0 is larger than the remaining input can hold$"):
        Reader(b"\xff\xff\xff\xff\x00\x00\x00\x00").count(4)
    assert Reader(b"\x01\x00\x00\x00\x00\x00\x00\x00").count(4) == 1


def test_invalid_utf8_bool_and_trailing_bytes_are_reported():
    with pytest.raises(DecodeError, match=r"^invalid UTF-8 in the string at byte 0$"):
        Reader(b"\x01\x00\x00\x00\xff").str()
    with pytest.raises(DecodeError, match=r"^invalid boolean 2 at byte 0 \(expected 0 or 1\)$"):
        Reader(b"\x02").bool()
    r = Reader(b"\x00\x00")
    r.u8()
    with pytest.raises(DecodeError, match=r"^1 trailing bytes after the end at byte 1$"):
        r.finish()
