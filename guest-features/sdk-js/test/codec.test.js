import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DecodeError, Reader, Writer } from '../src/index.js';

test('round trips every primitive', () => {
  const w = new Writer(4); // grows
  w.u8(7);
  w.bool(true);
  w.u32(0xdeadbeef);
  w.u64(2 ** 53 - 1);
  w.i64(-42);
  w.i64(-(2 ** 40) - 5);
  w.u64Big(2n ** 64n - 2n);
  w.i64Big(-(2n ** 63n));
  w.f64(11.75);
  w.str('héllo');
  w.bytes(Uint8Array.of(1, 2, 3));
  const r = new Reader(w.written().slice());
  assert.equal(r.u8(), 7);
  assert.equal(r.bool(), true);
  assert.equal(r.u32(), 0xdeadbeef);
  assert.equal(r.u64(), 2 ** 53 - 1);
  assert.equal(r.i64(), -42);
  assert.equal(r.i64(), -(2 ** 40) - 5);
  assert.equal(r.u64Big(), 2n ** 64n - 2n);
  assert.equal(r.i64Big(), -(2n ** 63n));
  assert.equal(r.f64(), 11.75);
  assert.equal(r.str(), 'héllo');
  assert.deepEqual([...r.bytes()], [1, 2, 3]);
  r.finish();
});

test('layout is little-endian with u32 lengths', () => {
  const w = new Writer();
  w.u32(1);
  w.i64(-2);
  w.str('ab');
  assert.deepEqual([...w.written()], [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 97, 98]);
});

test('truncated input is an error with the Rust message', () => {
  assert.throws(() => new Reader(Uint8Array.of(1, 2, 3)).u32(), {
    name: 'DecodeError',
    message: 'unexpected end of input at byte 0: need 4 bytes, 3 left',
  });
  assert.throws(() => new Reader(Uint8Array.of(10, 0, 0, 0, 120)).bytes(), /at byte 4/);
  assert.throws(() => new Reader(Uint8Array.of(255, 255, 255, 255)).bytes(), DecodeError);
});

test('count refuses what the input cannot hold', () => {
  assert.throws(() => new Reader(Uint8Array.of(255, 255, 255, 255, 0, 0, 0, 0)).count(4), {
    message: 'count 4294967295 at byte 0 is larger than the remaining input can hold',
  });
  assert.equal(new Reader(Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0)).count(4), 1);
});

test('invalid UTF-8, booleans and trailing bytes are reported', () => {
  assert.throws(() => new Reader(Uint8Array.of(1, 0, 0, 0, 0xff)).str(), {
    message: 'invalid UTF-8 in the string at byte 0',
  });
  assert.throws(() => new Reader(Uint8Array.of(2)).bool(), { message: 'invalid boolean 2 at byte 0 (expected 0 or 1)' });
  const r = new Reader(Uint8Array.of(0, 0));
  r.u8();
  assert.throws(() => r.finish(), { message: '1 trailing bytes after the end at byte 1' });
});

test('a reader can be bounded to part of its bytes', () => {
  const r = new Reader(Uint8Array.of(9, 1, 0, 0, 0, 9), 1, 5);
  assert.equal(r.remaining(), 4);
  assert.equal(r.u32(), 1);
  assert.throws(() => r.u8(), /unexpected end of input at byte 5: need 1 bytes, 0 left/);
});
