// The little-endian byte codec of the packed batches in wit/feature.wit
// (the mirror of guest-features/sdk/src/codec.rs).
//
// Owns the primitive layouts only: fixed-width little-endian integers and
// floats, `str` (u32 byte length + UTF-8) and `bytes` (u32 length + raw
// bytes). Features use Reader and Writer to decode and encode their state.
//
// Integers of 64 bits are read and written as JS numbers (exact within
// ±2^53, which holds every epoch-millisecond time and every count a stream
// can reach) or, with the `Big` methods, as BigInts (exact always).
//
// The Reader never trusts a length: every read is bounds-checked, and
// count() refuses a count the remaining bytes cannot hold. Its error
// messages are the Rust SDK's, word for word.

const TWO_32 = 4294967296;

/** Why a byte string could not be decoded; offsets are from the start of the buffer. */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DecodeError';
  }
}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** UTF-8 bytes to a string; throws TypeError on invalid UTF-8. */
export function utf8Decode(bytes) {
  return fatalDecoder.decode(bytes);
}

/** A string to UTF-8 bytes. */
export function utf8Encode(s) {
  return encoder.encode(s);
}

/**
 * Reads little-endian values from a Uint8Array, bounds-checking every read.
 *
 * `pos` is the offset of the next byte; `end` is where the readable bytes
 * stop (the end of one state when the SDK hands a Reader to `decode`).
 */
export class Reader {
  constructor(bytes, pos = 0, end = bytes.length) {
    this.reset(bytes, pos, end);
  }

  /** Point this reader at other bytes (the SDK reuses one per batch). */
  reset(bytes, pos = 0, end = bytes.length) {
    if (this.buf !== bytes) {
      this.buf = bytes;
      this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.pos = pos;
    this.end = end;
    return this;
  }

  /** Number of bytes not yet read. */
  remaining() {
    return this.end - this.pos;
  }

  // Every read checks its bounds inline and calls _end() only to fail: in
  // the component a JS function call costs about as much as ten other
  // operations (SpiderMonkey interprets; there is no JIT inside Wasm).
  _end(n) {
    return new DecodeError(`unexpected end of input at byte ${this.pos}: need ${n} bytes, ${this.end - this.pos} left`);
  }

  u8() {
    if (this.pos + 1 > this.end) throw this._end(1);
    return this.buf[this.pos++];
  }

  /** A one-byte boolean; anything but 0 or 1 is an error. */
  bool() {
    const at = this.pos;
    const b = this.u8();
    if (b > 1) throw new DecodeError(`invalid boolean ${b} at byte ${at} (expected 0 or 1)`);
    return b === 1;
  }

  u32() {
    if (this.pos + 4 > this.end) throw this._end(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A u64 as a number (exact up to 2^53). */
  u64() {
    if (this.pos + 8 > this.end) throw this._end(8);
    const p = this.pos;
    this.pos = p + 8;
    return this.dv.getUint32(p + 4, true) * TWO_32 + this.dv.getUint32(p, true);
  }

  /** An i64 as a number (exact within ±2^53). */
  i64() {
    if (this.pos + 8 > this.end) throw this._end(8);
    const p = this.pos;
    this.pos = p + 8;
    return this.dv.getInt32(p + 4, true) * TWO_32 + this.dv.getUint32(p, true);
  }

  u64Big() {
    if (this.pos + 8 > this.end) throw this._end(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  i64Big() {
    if (this.pos + 8 > this.end) throw this._end(8);
    const v = this.dv.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  f64() {
    if (this.pos + 8 > this.end) throw this._end(8);
    const v = this.dv.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u32 item count, refused when the remaining bytes cannot hold that many items of at least `minItemLen` bytes. */
  count(minItemLen) {
    const at = this.pos;
    const n = this.u32();
    if (n * minItemLen > this.end - this.pos) {
      throw new DecodeError(`count ${n} at byte ${at} is larger than the remaining input can hold`);
    }
    return n;
  }

  /** The next `n` bytes, as a view into the input (not a copy). */
  take(n) {
    if (this.pos + n > this.end) throw this._end(n);
    const p = this.pos;
    this.pos = p + n;
    return this.buf.subarray(p, p + n);
  }

  /** `bytes`: u32 length, then that many raw bytes (a view, not a copy). */
  bytes() {
    const n = this.u32();
    return this.take(n);
  }

  /** `str`: u32 byte length, then that many bytes of UTF-8. */
  str() {
    const at = this.pos;
    const b = this.bytes();
    try {
      return fatalDecoder.decode(b);
    } catch {
      throw new DecodeError(`invalid UTF-8 in the string at byte ${at}`);
    }
  }

  /** Succeeds only if every byte was read. */
  finish() {
    const left = this.end - this.pos;
    if (left !== 0) throw new DecodeError(`${left} trailing bytes after the end at byte ${this.pos}`);
  }
}

/**
 * Appends little-endian values to a growable buffer. The SDK keeps one per
 * plugin and reuses its memory from call to call; `encode` appends a state
 * to it.
 */
export class Writer {
  constructor(capacity = 4096) {
    this.buf = new Uint8Array(capacity);
    this.dv = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  /** Make room for `n` more bytes. */
  reserve(n) {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    this._grow(need);
  }

  _grow(need) {
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const bigger = new Uint8Array(cap);
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer);
  }

  /** A Uint32Array over this writer's memory (for aligned writes; valid until it grows). */
  words() {
    if (this._words === undefined || this._words.buffer !== this.buf.buffer) this._words = new Uint32Array(this.buf.buffer);
    return this._words;
  }

  /** Forget what was written (keeps the memory). */
  clear() {
    this.pos = 0;
  }

  /** What was written, as a view of this writer's memory (valid until the next write). */
  written() {
    return this.buf.subarray(0, this.pos);
  }

  u8(v) {
    if (this.pos + 1 > this.buf.length) this._grow(this.pos + 1);
    this.buf[this.pos++] = v;
  }

  bool(v) {
    this.u8(v ? 1 : 0);
  }

  u32(v) {
    if (this.pos + 4 > this.buf.length) this._grow(this.pos + 4);
    this.dv.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  /** A u64 from a number (exact up to 2^53); a BigInt works too. */
  u64(v) {
    if (typeof v === 'bigint') return this.u64Big(v);
    if (this.pos + 8 > this.buf.length) this._grow(this.pos + 8);
    const lo = v >>> 0;
    this.dv.setUint32(this.pos, lo, true);
    this.dv.setUint32(this.pos + 4, (v - lo) / TWO_32, true);
    this.pos += 8;
  }

  /** An i64 from a number (exact within ±2^53); a BigInt works too. */
  i64(v) {
    if (typeof v === 'bigint') return this.i64Big(v);
    if (this.pos + 8 > this.buf.length) this._grow(this.pos + 8);
    const lo = v >>> 0;
    this.dv.setUint32(this.pos, lo, true);
    this.dv.setInt32(this.pos + 4, (v - lo) / TWO_32, true);
    this.pos += 8;
  }

  u64Big(v) {
    this.reserve(8);
    this.dv.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  i64Big(v) {
    this.reserve(8);
    this.dv.setBigInt64(this.pos, v, true);
    this.pos += 8;
  }

  f64(v) {
    if (this.pos + 8 > this.buf.length) this._grow(this.pos + 8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** `bytes`: u32 length, then the raw bytes. */
  bytes(b) {
    this.u32(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** `str`: u32 byte length, then the UTF-8 bytes. */
  str(s) {
    this.bytes(encoder.encode(s));
  }
}
