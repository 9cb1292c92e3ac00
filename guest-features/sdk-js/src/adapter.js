// The batch glue: unpacks the byte layouts of wit/feature.wit, calls a
// feature per state, event or window, and packs the results (the mirror of
// guest-features/sdk/src/adapter.rs).
//
// Plain JS with no dependency on the component bindings, so it runs (and is
// tested) natively. Every public method returns a Uint8Array or throws a
// PluginError, whatever the feature does: framing problems are
// `invalid-batch`, a state the feature cannot decode is `invalid-state`, an
// exception anywhere else in the feature (or a finish() that disagrees with
// the declaration) is `other` with the stack. Messages name the index they
// are about, in the Rust SDK's words.
//
// Lean on purpose (the engine calls it per batch, the event loop runs per
// event and per view):
// - one DataView per input; fixed-size fields read in place, no copies;
// - one Event object per batch, updated in place; `key` and `extra` are
//   decoded only when the feature reads them; `eventType` comes from a
//   small cache keyed by the type's bytes (event types are few), so the
//   common event allocates nothing;
// - output goes into one growable buffer that lives as long as the plugin
//   (the returned Uint8Array is a view of it, valid until the next call:
//   the component bindings copy it out at once).
// When the fast path meets a framing error, the input is re-read with the
// careful Reader to word the error exactly.

import { DecodeError, Reader, Writer, utf8Decode } from './codec.js';
import { Event, FieldType, Window } from './feature.js';

// Smallest encodings, to refuse counts the input cannot hold (as in Rust).
const MIN_BYTES = 4;
const MIN_GROUP = 4;
const MIN_EVENT = 4 + 8 + 8 + 3 * 4;
const MIN_WINDOW = 4 + 8 + 8 + 4;

const TWO_32 = 4294967296;
// Distinct event types remembered decoded; past this, new ones are decoded
// per event (a hostile stream of unique types cannot grow the cache).
const TYPE_CACHE_MAX = 256;
// Stacks are cut to their last this-many characters.
const STACK_MAX = 8192;
// Masks of the first 0-4 bytes of a little-endian u32.
const MASK = [0, 0xff, 0xffff, 0xffffff];

const I64_MIN = -(2 ** 63);
const I64_LIMIT = 2 ** 63;
const I64_MIN_BIG = -(2n ** 63n);
const I64_MAX_BIG = 2n ** 63n - 1n;

const EMPTY = new Uint8Array(0);

const LAYOUT_SIZES = { u8: 1, u32: 4, i32: 4, u64: 8, i64: 8, f64: 8 };

/**
 * Straight-line decode and encode functions for a fixed state layout
 * (`feature.stateLayout`, e.g. ['u64', 'u64', 'u64', 'f64']): the state is
 * an array of numbers in that order, little-endian, `size` bytes.
 *
 * Generated once, when the component is built, so that a state costs one
 * call each way instead of one per field (a call is the dearest thing in
 * SpiderMonkey's interpreter). 64-bit integers are exact within ±2^53.
 */
export function compileLayout(layout) {
  if (!Array.isArray(layout) || layout.length === 0) {
    throw new TypeError(`stateLayout must be a non-empty array of ${Object.keys(LAYOUT_SIZES).join(', ')}`);
  }
  let size = 0;
  const reads = [];
  const writes = [];
  const reads32 = [];
  const writes32 = [];
  let aligned = true; // every field at a multiple of 4 bytes: the u32 forms apply
  layout.forEach((t, k) => {
    const at = `p + ${size}`;
    const w = `i + ${size / 4}`;
    switch (t) {
      case 'u8':
        reads.push(`dv.getUint8(${at})`);
        writes.push(`dv.setUint8(${at}, s[${k}]);`);
        aligned = false;
        break;
      case 'u32':
        reads.push(`dv.getUint32(${at}, true)`);
        writes.push(`dv.setUint32(${at}, s[${k}], true);`);
        reads32.push(`u32[${w}]`);
        writes32.push(`u32[${w}] = s[${k}];`);
        break;
      case 'i32':
        reads.push(`dv.getInt32(${at}, true)`);
        writes.push(`dv.setInt32(${at}, s[${k}], true);`);
        reads32.push(`u32[${w}] | 0`);
        writes32.push(`u32[${w}] = s[${k}];`);
        break;
      case 'u64':
      case 'i64': {
        const signed = t === 'i64';
        reads.push(`dv.get${signed ? 'Int32' : 'Uint32'}(${at} + 4, true) * 4294967296 + dv.getUint32(${at}, true)`);
        writes.push(
          `v = s[${k}]; lo = v >>> 0; dv.setUint32(${at}, lo, true); dv.set${signed ? 'Int32' : 'Uint32'}(${at} + 4, (v - lo) / 4294967296, true);`,
        );
        reads32.push(`(u32[${w} + 1]${signed ? ' | 0' : ''}) * 4294967296 + u32[${w}]`);
        writes32.push(`v = s[${k}]; lo = v >>> 0; u32[${w}] = lo; u32[${w} + 1] = (v - lo) / 4294967296;`);
        break;
      }
      case 'f64':
        reads.push(`dv.getFloat64(${at}, true)`);
        writes.push(`dv.setFloat64(${at}, s[${k}], true);`);
        reads32.push(`dv.getFloat64(${at}, true)`);
        writes32.push(`dv.setFloat64(${at}, s[${k}], true);`);
        break;
      default:
        throw new TypeError(`stateLayout: unknown field type ${JSON.stringify(t)} (expected one of ${Object.keys(LAYOUT_SIZES).join(', ')})`);
    }
    size += LAYOUT_SIZES[t];
  });
  aligned = aligned && size % 4 === 0;
  // With `u32` (a Uint32Array over the same bytes, or null) and a 4-aligned
  // state, integers are typed-array elements instead of DataView calls: an
  // element costs about half a call in the interpreter.
  const fast32 = aligned ? `if (u32 !== null && (p & 3) === 0) { const i = p >> 2; ` : '';
  // eslint-disable-next-line no-new-func
  const decode = new Function(
    'dv',
    'u32',
    'p',
    `${fast32 ? `${fast32}return [${reads32.join(', ')}]; }\n` : ''}return [${reads.join(', ')}];`,
  );
  // eslint-disable-next-line no-new-func
  const encode = new Function(
    'dv',
    'u32',
    'p',
    's',
    `let v, lo;\n${fast32 ? `${fast32}${writes32.join('\n')}\nreturn; }\n` : ''}${writes.join('\n')}`,
  );
  return { size, decode, encode, aligned, zeros: layout.map(() => 0) };
}

/** A Uint32Array over `bytes` when they start 4-aligned, else null. */
function words(bytes) {
  return (bytes.byteOffset & 3) === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2) : null;
}

/**
 * A WIT plugin-error: `kind` is 'invalid-state', 'invalid-batch',
 * 'unsupported' or 'other'. `payload` is the shape componentize-js lowers
 * into the export's `err` case.
 */
export class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'PluginError';
    this.kind = kind;
    this.payload = { tag: kind, val: message };
  }
}

function batch(context, e) {
  return new PluginError('invalid-batch', `${context}: ${e.message}`);
}

function describeError(e) {
  try {
    if (e instanceof Error) return e.message || e.name;
    return String(e);
  } catch {
    return 'an exception that cannot be shown';
  }
}

/** `e` as an `other` error with its stack (for exceptions from feature code). */
export function uncaught(fn, e) {
  if (e instanceof PluginError) return e;
  let text;
  try {
    text = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack || ''}` : `uncaught value: ${String(e)}`;
  } catch {
    text = 'an exception that cannot be shown';
  }
  text = text.trimEnd();
  if (text.length > STACK_MAX) text = '...\n' + text.slice(text.length - STACK_MAX);
  return new PluginError('other', `${fn}: uncaught exception in the feature\n${text}`);
}

function typeOf(v) {
  if (typeof v === 'string') return 'text';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  return `a JS ${v === null ? 'null' : typeof v}`;
}

/** The batch functions of the `feature` world for one feature object. */
export class Adapter {
  constructor(feature) {
    this.feature = feature;
    this.declaration = feature.declare();
    this.fields = this.declaration.fields;
    // A fixed state layout lets the adapter decode and encode states itself.
    this.fixed = feature.stateLayout === undefined ? null : compileLayout(feature.stateLayout);
    this.writeValues = valuesWriter(this.fields);
    // Without empty(), a fixed layout's empty state is all zeros.
    this.zeros = typeof feature.empty === 'function' || this.fixed === null ? null : this.fixed.zeros;
    if (this.zeros === null && typeof feature.empty !== 'function') {
      throw new TypeError('a feature needs empty() or a stateLayout');
    }
    this.out = new Writer(1 << 16);
    // Hands each state's bytes to decode(); reused.
    this.stateReader = new Reader(EMPTY);
    // Event types by length (0-8 bytes): Map(first four bytes -> type) for
    // up to 4 bytes, Map(first four -> Map(next four -> type)) for 5-8.
    this.types = Array.from({ length: 9 }, () => new Map());
    this.typeCount = 0;
  }

  describe() {
    return this.declaration;
  }

  update(states, events) {
    try {
      return this._update(states, events);
    } catch (e) {
      throw uncaught('update', e);
    }
  }

  merge(groups) {
    try {
      return this._merge(groups);
    } catch (e) {
      throw uncaught('merge', e);
    }
  }

  finish(windows) {
    try {
      return this._finish(windows);
    } catch (e) {
      throw uncaught('finish', e);
    }
  }

  migrate(fromVersion, states) {
    try {
      return this._migrate(fromVersion, states);
    } catch (e) {
      throw uncaught('migrate', e);
    }
  }

  // --- states ---------------------------------------------------------------

  /** A new empty state. */
  empty() {
    return this.zeros !== null ? this.zeros.slice() : this.feature.empty();
  }

  _decode(bytes, start, end, context, i) {
    if (start === end) return this.empty();
    const fx = this.fixed;
    const r = this.stateReader.reset(bytes, start, end);
    if (fx !== null && end - start === fx.size) return fx.decode(r.dv, null, start);
    try {
      if (fx !== null && typeof this.feature.decode !== 'function') {
        throw new Error(`state is ${end - start} bytes, the state layout ${fx.size}`);
      }
      return this.feature.decode(r);
    } catch (e) {
      throw new PluginError('invalid-state', `${context}: state ${i}: ${describeError(e)}`);
    }
  }

  /** `u32 n`, then n × bytes, decoded (empty = empty()); returns [states, offset after them]. */
  _readStates(bytes, context) {
    const r = new Reader(bytes);
    let n;
    try {
      n = r.count(MIN_BYTES);
    } catch (e) {
      throw batch(context, e);
    }
    const dv = r.dv;
    const size = bytes.length;
    const states = new Array(n);
    const fx = this.fixed;
    const fixedSize = fx === null ? -1 : fx.size;
    const decode = fx === null ? null : fx.decode;
    const u32 = fx !== null && fx.aligned ? words(bytes) : null;
    const zeros = this.zeros;
    let pos = 4;
    for (let i = 0; i < n; i++) {
      if (pos + 4 > size) this._slowStates(bytes, context);
      const len = dv.getUint32(pos, true);
      const start = pos + 4;
      pos = start + len;
      if (pos > size) this._slowStates(bytes, context);
      states[i] =
        len === fixedSize
          ? decode(dv, u32, start)
          : len === 0 && zeros !== null
            ? zeros.slice()
            : this._decode(bytes, start, pos, context, i);
    }
    return [states, pos];
  }

  _slowStates(bytes, context) {
    const r = new Reader(bytes);
    let n;
    try {
      n = r.count(MIN_BYTES);
    } catch (e) {
      throw batch(context, e);
    }
    for (let i = 0; i < n; i++) {
      try {
        r.bytes();
      } catch (e) {
        throw batch(`${context}: state ${i}`, e);
      }
    }
    throw new Error(`${context}: the fast path refused input the reader accepts`);
  }

  /** Encodes one state into `w` as `bytes` (a length, then what encode() appends). */
  _writeState(w, state) {
    const fx = this.fixed;
    if (fx !== null) {
      w.reserve(4 + fx.size);
      w.dv.setUint32(w.pos, fx.size, true);
      fx.encode(w.dv, null, w.pos + 4, state);
      w.pos += 4 + fx.size;
      return;
    }
    w.reserve(4);
    const at = w.pos;
    w.pos = at + 4;
    this.feature.encode(state, w);
    if (w.pos < at + 4) throw new Error('encode() moved the writer back over bytes it did not write');
    w.dv.setUint32(at, w.pos - at - 4, true);
  }

  /** `u32 n`, then n × bytes, into the reused output buffer. */
  _writeStates(states) {
    const w = this.out;
    w.clear();
    const n = states.length;
    const fx = this.fixed;
    if (fx !== null) {
      // Every state is `size` bytes: one bounds check, then straight writes.
      const size = fx.size;
      const encode = fx.encode;
      w.reserve(4 + n * (4 + size));
      const dv = w.dv;
      const u32 = fx.aligned ? w.words() : null;
      dv.setUint32(0, n, true);
      let p = 4;
      if (u32 !== null) {
        for (let i = 0; i < n; i++) {
          u32[p >> 2] = size;
          encode(dv, u32, p + 4, states[i]);
          p += 4 + size;
        }
      } else {
        for (let i = 0; i < n; i++) {
          dv.setUint32(p, size, true);
          encode(dv, null, p + 4, states[i]);
          p += 4 + size;
        }
      }
      w.pos = p;
      return w.written();
    }
    w.u32(n);
    for (let i = 0; i < n; i++) this._writeState(w, states[i]);
    return w.written();
  }

  _readState(r, context, i) {
    let start, end;
    try {
      const len = r.u32();
      start = r.pos;
      r.take(len);
      end = r.pos;
    } catch (e) {
      throw batch(`${context}: state ${i}`, e);
    }
    return this._decode(r.buf, start, end, context, i);
  }

  /** `u32 k`, then k × bytes, merged in the order given. */
  _readMerged(r, context) {
    let k;
    try {
      k = r.count(MIN_BYTES);
    } catch (e) {
      throw batch(context, e);
    }
    const f = this.feature;
    if (k === 0) return this.empty();
    let acc = this._readState(r, context, 0);
    for (let i = 1; i < k; i++) {
      const merged = f.merge(acc, this._readState(r, context, i));
      if (merged !== undefined) acc = merged;
    }
    return acc;
  }

  // --- update -----------------------------------------------------------------

  _update(statesBytes, events) {
    const [states, end] = this._readStates(statesBytes, 'states');
    if (end !== statesBytes.length) {
      throw batch('states', new DecodeError(`${statesBytes.length - end} trailing bytes after the end at byte ${end}`));
    }
    const n = states.length;
    const size = events.length;
    const dv = new DataView(events.buffer, events.byteOffset, events.byteLength);
    if (size < 4) this._slowEvents(events);
    const m = dv.getUint32(0, true);
    if (m * MIN_EVENT > size - 4) this._slowEvents(events);

    const f = this.feature;
    const types = this.types;
    const ev = new Event();
    ev._buf = events;
    ev._dv = dv;
    let pos = 4;
    for (let j = 0; j < m; j++) {
      // u32 slot, i64 time, f64 price, u32 type length.
      if (pos + 24 > size) this._slowEvents(events);
      const slot = dv.getUint32(pos, true);
      const timeMs = dv.getInt32(pos + 8, true) * TWO_32 + dv.getUint32(pos + 4, true);
      const price = dv.getFloat64(pos + 12, true);
      const tlen = dv.getUint32(pos + 20, true);
      const t0 = pos + 24;
      const at = t0 + tlen;
      if (at + 4 > size) this._slowEvents(events);
      const x = at + 8 + dv.getUint32(at, true);
      if (x > size) this._slowEvents(events);
      pos = x + dv.getUint32(x - 4, true);
      if (pos > size) this._slowEvents(events);

      // The type's first eight bytes are readable: the key's and extra's
      // lengths follow it.
      let type;
      if (tlen <= 4) {
        const lo = tlen === 4 ? dv.getUint32(t0, true) : dv.getUint32(t0, true) & MASK[tlen];
        type = types[tlen].get(lo);
      } else if (tlen <= 8) {
        const hi = tlen === 8 ? dv.getUint32(t0 + 4, true) : dv.getUint32(t0 + 4, true) & MASK[tlen - 4];
        const byLo = types[tlen].get(dv.getUint32(t0, true));
        type = byLo === undefined ? undefined : byLo.get(hi);
      }
      if (type === undefined) type = this._eventType(events, dv, t0, tlen, j);

      if (slot >= n) {
        throw new PluginError('invalid-batch', `events: event ${j}: slot ${slot} out of range (${n} states)`);
      }
      ev.timeMs = timeMs;
      ev.price = price;
      ev.eventType = type;
      ev._at = at;
      const next = f.update(states[slot], ev);
      if (next !== undefined) states[slot] = next;
    }
    if (pos !== size) {
      throw batch('events', new DecodeError(`${size - pos} trailing bytes after the end at byte ${pos}`));
    }
    ev._buf = null;
    return this._writeStates(states);
  }

  /** Decodes (and, while there is room, caches) an event type. */
  _eventType(events, dv, t0, tlen, j) {
    let type;
    try {
      type = utf8Decode(events.subarray(t0, t0 + tlen));
    } catch {
      throw batch(`events: event ${j}`, new DecodeError(`invalid UTF-8 in the string at byte ${t0 - 4}`));
    }
    if (tlen <= 8 && this.typeCount < TYPE_CACHE_MAX) {
      this.typeCount++;
      if (tlen <= 4) {
        const lo = tlen === 4 ? dv.getUint32(t0, true) : dv.getUint32(t0, true) & MASK[tlen];
        this.types[tlen].set(lo, type);
      } else {
        const lo = dv.getUint32(t0, true);
        const hi = tlen === 8 ? dv.getUint32(t0 + 4, true) : dv.getUint32(t0 + 4, true) & MASK[tlen - 4];
        let byLo = this.types[tlen].get(lo);
        if (byLo === undefined) {
          byLo = new Map();
          this.types[tlen].set(lo, byLo);
        }
        byLo.set(hi, type);
      }
    }
    return type;
  }

  _slowEvents(events) {
    const r = new Reader(events);
    let m;
    try {
      m = r.count(MIN_EVENT);
    } catch (e) {
      throw batch('events', e);
    }
    for (let j = 0; j < m; j++) {
      try {
        r.u32();
        r.i64();
        r.f64();
        r.str();
        r.str();
        r.str();
      } catch (e) {
        throw batch(`events: event ${j}`, e);
      }
    }
    throw new Error('events: the fast path refused input the reader accepts');
  }

  // --- merge, finish, migrate ------------------------------------------------

  _merge(groups) {
    const r = new Reader(groups);
    let g;
    try {
      g = r.count(MIN_GROUP);
    } catch (e) {
      throw batch('groups', e);
    }
    const merged = new Array(g);
    for (let i = 0; i < g; i++) merged[i] = this._readMerged(r, `groups: group ${i}`);
    try {
      r.finish();
    } catch (e) {
      throw batch('groups', e);
    }
    return this._writeStates(merged);
  }

  /**
   * Finish windows into output fields, checked against the declaration.
   *
   * The fast path reads the batch in place, hands finish() one reused
   * Window, and writes a window's values with one generated function
   * (valuesWriter). Anything unusual (a framing error, a value of another
   * type than declared, a bigint) sends the whole batch through
   * _finishCareful, which words the error; the feature is pure, so
   * finishing a window twice is harmless.
   */
  _finish(windows) {
    const out = this._finishFast(windows);
    return out !== null ? out : this._finishCareful(windows);
  }

  _finishFast(buf) {
    const size = buf.length;
    if (size < 4) return null;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const w = dv.getUint32(0, true);
    if (w * MIN_WINDOW > size - 4) return null;
    const out = this.out;
    out.clear();
    out.u32(w);
    const f = this.feature;
    const write = this.writeValues;
    const fx = this.fixed;
    const fixedSize = fx === null ? -1 : fx.size;
    const decode = fx === null ? null : fx.decode;
    const u32 = fx !== null && fx.aligned ? words(buf) : null;
    const window = new Window('', 0, 0);
    let pos = 4;
    for (let i = 0; i < w; i++) {
      if (pos + 4 > size) return null;
      const k0 = pos + 4;
      const k1 = k0 + dv.getUint32(pos, true);
      pos = k1 + 20;
      if (pos > size) return null;
      const startMs = dv.getInt32(k1 + 4, true) * TWO_32 + dv.getUint32(k1, true);
      const endMs = dv.getInt32(k1 + 12, true) * TWO_32 + dv.getUint32(k1 + 8, true);
      const k = dv.getUint32(k1 + 16, true);
      if (k * MIN_BYTES > size - pos) return null;
      let key;
      try {
        key = utf8Decode(buf.subarray(k0, k1));
      } catch {
        return null;
      }
      let state;
      for (let j = 0; j < k; j++) {
        if (pos + 4 > size) return null;
        const len = dv.getUint32(pos, true);
        const start = pos + 4;
        pos = start + len;
        if (pos > size) return null;
        let other;
        if (len === fixedSize) {
          other = decode(dv, u32, start);
        } else {
          try {
            other = this._decode(buf, start, pos, '', j);
          } catch {
            return null;
          }
        }
        if (j === 0) {
          state = other;
        } else {
          const merged = f.merge(state, other);
          if (merged !== undefined) state = merged;
        }
      }
      if (k === 0) state = this.empty();
      window.key = key;
      window.startMs = startMs;
      window.endMs = endMs;
      if (!write(out, f.finish(state, window))) return null;
    }
    if (pos !== size) return null;
    return out.written();
  }

  _finishCareful(windows) {
    const fields = this.fields;
    const r = new Reader(windows);
    let w;
    try {
      w = r.count(MIN_WINDOW);
    } catch (e) {
      throw batch('windows', e);
    }
    const out = this.out;
    out.clear();
    out.u32(w);
    const f = this.feature;
    for (let i = 0; i < w; i++) {
      const context = `windows: window ${i}`;
      let key, startMs, endMs;
      try {
        key = r.str();
        startMs = r.i64();
        endMs = r.i64();
      } catch (e) {
        throw batch(context, e);
      }
      const state = this._readMerged(r, context);
      const values = f.finish(state, new Window(key, startMs, endMs));
      if (!values || values.length !== fields.length) {
        throw new PluginError(
          'other',
          `window ${i}: finish returned ${values ? values.length : String(values)} values but ${fields.length} fields are declared`,
        );
      }
      for (let k = 0; k < fields.length; k++) writeValue(out, values[k], fields[k], i);
    }
    try {
      r.finish();
    } catch (e) {
      throw batch('windows', e);
    }
    return out.written();
  }

  _migrate(fromVersion, statesBytes) {
    const current = this.declaration.stateVersion;
    const f = this.feature;
    if (fromVersion === current) {
      // Nothing to convert; decoding and re-encoding still checks that the
      // states really are in the current version.
      const [states, end] = this._readStates(statesBytes, 'states');
      if (end !== statesBytes.length) {
        throw batch('states', new DecodeError(`${statesBytes.length - end} trailing bytes after the end at byte ${end}`));
      }
      return this._writeStates(states);
    }
    if (typeof f.migratesFrom !== 'function' || !f.migratesFrom(fromVersion)) {
      throw new PluginError('unsupported', `cannot migrate states from version ${fromVersion} to version ${current}`);
    }
    const r = new Reader(statesBytes);
    let n;
    try {
      n = r.count(MIN_BYTES);
    } catch (e) {
      throw batch('states', e);
    }
    const w = this.out;
    w.clear();
    w.u32(n);
    for (let i = 0; i < n; i++) {
      let start, end;
      try {
        const len = r.u32();
        start = r.pos;
        r.take(len);
        end = r.pos;
      } catch (e) {
        throw batch(`states: state ${i}`, e);
      }
      if (start === end) {
        // The empty state is empty in every version.
        w.u32(0);
        continue;
      }
      let state;
      try {
        state = f.migrate(fromVersion, this.stateReader.reset(statesBytes, start, end));
      } catch (e) {
        throw new PluginError(
          'invalid-state',
          `state ${i}: cannot migrate from version ${fromVersion}: ${describeError(e)}`,
        );
      }
      this._writeState(w, state);
    }
    try {
      r.finish();
    } catch (e) {
      throw batch('states', e);
    }
    return w.written();
  }
}

const SAFE = Number.MAX_SAFE_INTEGER;

/**
 * A function `write(out, values) -> boolean` for one declaration's fields,
 * generated once (one call per window instead of several per value): it
 * appends the tagged values to the Writer `out` and returns true when every
 * value has the declared type (a string; a safe integer number; a number; a
 * boolean), else returns false and the careful path takes over (a bigint,
 * or an error to word). For user_features the body is, in effect:
 *
 *   if (!Array.isArray-like v || v.length !== 5) return false;
 *   const v0 = v[0]; if (typeof v0 !== 'string') return false;
 *   const v1 = v[1]; if (typeof v1 !== 'number' || v1 % 1 !== 0 || v1 > SAFE || v1 < -SAFE) return false;
 *   ... then the tag and bytes of each value, straight into out's buffer.
 */
export function valuesWriter(fields) {
  const checks = [];
  const writes = [];
  let fixedBytes = 0;
  fields.forEach((f, k) => {
    checks.push(`const v${k} = v[${k}];`);
    switch (f.type) {
      case FieldType.TEXT:
        checks.push(`if (typeof v${k} !== 'string') return false;`);
        checks.push(`const b${k} = ENC.encode(v${k});`);
        writes.push(`buf[p] = 0; dv.setUint32(p + 1, b${k}.length, true); buf.set(b${k}, p + 5); p += 5 + b${k}.length;`);
        fixedBytes += 5;
        break;
      case FieldType.INTEGER:
        checks.push(`if (typeof v${k} !== 'number' || v${k} % 1 !== 0 || v${k} > SAFE || v${k} < -SAFE) return false;`);
        writes.push(`buf[p] = 1; lo = v${k} >>> 0; dv.setUint32(p + 1, lo, true); dv.setInt32(p + 5, (v${k} - lo) / 4294967296, true); p += 9;`);
        fixedBytes += 9;
        break;
      case FieldType.FLOAT:
        checks.push(`if (typeof v${k} !== 'number') return false;`);
        writes.push(`buf[p] = 2; dv.setFloat64(p + 1, v${k}, true); p += 9;`);
        fixedBytes += 9;
        break;
      case FieldType.BOOLEAN:
        checks.push(`if (typeof v${k} !== 'boolean') return false;`);
        writes.push(`buf[p] = 3; buf[p + 1] = v${k} ? 1 : 0; p += 2;`);
        fixedBytes += 2;
        break;
      default:
        throw new TypeError(`unknown field type ${JSON.stringify(f.type)} of field ${JSON.stringify(f.name)}`);
    }
  });
  const textLengths = fields
    .map((f, k) => (f.type === FieldType.TEXT ? ` + b${k}.length` : ''))
    .join('');
  const body = `
    if (v === null || typeof v !== 'object' || v.length !== ${fields.length}) return false;
    ${checks.join('\n    ')}
    out.reserve(${fixedBytes}${textLengths});
    const buf = out.buf;
    const dv = out.dv;
    let p = out.pos;
    let lo;
    ${writes.join('\n    ')}
    out.pos = p;
    return true;`;
  // eslint-disable-next-line no-new-func
  const make = new Function('ENC', 'SAFE', `return function writeValues(out, v) {${body}\n  };`);
  return make(new TextEncoder(), SAFE);
}

/** Appends `value` with the tag of `field`'s declared type, or throws `other`. */
function writeValue(out, value, field, i) {
  const ty = field.type;
  const t = typeof value;
  if (ty === FieldType.TEXT && t === 'string') {
    out.u8(0);
    out.str(value);
    return;
  }
  if (ty === FieldType.INTEGER) {
    if (t === 'number' && Number.isInteger(value)) {
      if (value < I64_MIN || value >= I64_LIMIT) throw outOfRange(field, value, i);
      out.u8(1);
      if (Number.isSafeInteger(value)) out.i64(value);
      else out.i64Big(BigInt(value));
      return;
    }
    if (t === 'bigint') {
      if (value < I64_MIN_BIG || value > I64_MAX_BIG) throw outOfRange(field, value, i);
      out.u8(1);
      out.i64Big(value);
      return;
    }
  }
  if (ty === FieldType.FLOAT && t === 'number') {
    out.u8(2);
    out.f64(value);
    return;
  }
  if (ty === FieldType.BOOLEAN && t === 'boolean') {
    out.u8(3);
    out.u8(value ? 1 : 0);
    return;
  }
  throw new PluginError(
    'other',
    `window ${i}: field \`${field.name}\` is declared ${ty} but finish returned ${typeOf(value)}`,
  );
}

function outOfRange(field, value, i) {
  return new PluginError('other', `window ${i}: field \`${field.name}\` value ${value} does not fit a 64-bit integer`);
}
