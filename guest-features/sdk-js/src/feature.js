// What a feature author writes against: the plain JS types a feature speaks
// (Event, Window, declarations) and the shape of a feature object.
//
// Nothing here knows about WebAssembly or byte layouts; adapter.js
// translates. That is what lets a feature be unit-tested natively with
// `node --test`. The mirror of guest-features/sdk/src/feature.rs.
//
// A feature is any object with these methods (a class instance or a
// literal):
//
//   declare()              -> a declaration (see `declaration` below); called once
//   empty()                -> a new empty state (what a new window starts from)
//   update(state, event)   -> the new state, or undefined after changing `state` in place
//   merge(into, other)     -> the merged state, or undefined after changing `into` in place
//   finish(state, window)  -> an array of values, one per declared field
//   encode(state, writer)  -> append the state's bytes to `writer` (a Writer)
//   decode(reader)         -> the state whose bytes `reader` holds (a Reader over exactly them)
//   migratesFrom(version)  -> optional: whether migrate() reads that state version
//   migrate(version, reader) -> optional: decode a state of an older state version
//
// Every method is a pure function of its arguments (the component has no
// clock, files or network). An exception escaping a method becomes a
// plugin-error (`invalid-state` from decode and migrate, `other` with the
// stack from the rest), never a trap.

import { utf8Decode } from './codec.js';

const TWO_32 = 4294967296;

/** The type of an output field (WIT `field-type`). */
export const FieldType = Object.freeze({
  TEXT: 'text',
  INTEGER: 'integer',
  FLOAT: 'float',
  BOOLEAN: 'boolean',
});

/** A sliding window: `sizeMs` long, a new one every `slideMs` (a divisor of `sizeMs`), aligned to the epoch. */
export function sliding(sizeMs, slideMs) {
  return { kind: 'sliding', sizeMs, slideMs };
}

/** Sessions: an event at t opens [t, t + gapMs); windows that intersect or touch merge. */
export function session(gapMs) {
  return { kind: 'session', gapMs };
}

/** Fixed windows of `sizeMs`, aligned to the epoch. */
export function tumbling(sizeMs) {
  return { kind: 'tumbling', sizeMs };
}

export function text(name) {
  return { name, type: FieldType.TEXT };
}
export function integer(name) {
  return { name, type: FieldType.INTEGER };
}
export function float(name) {
  return { name, type: FieldType.FLOAT };
}
export function boolean(name) {
  return { name, type: FieldType.BOOLEAN };
}

/**
 * A declaration (WIT `declaration`) with the Rust SDK's defaults filled in:
 * version "0.0.0", no description, no key field (the host refuses an empty
 * one, so set it), no fields, ttlSeconds 0 (no expiry), stateVersion 1.
 *
 *   declaration({ view: 'counts', window: sliding(3_600_000, 600_000),
 *                 keyField: 'user_id', fields: [text('user_id'), integer('n')] })
 */
export function declaration({
  view,
  window,
  version = '0.0.0',
  description = '',
  keyField = '',
  fields = [],
  ttlSeconds = 0,
  stateVersion = 1,
}) {
  return Object.freeze({
    view,
    window: Object.freeze({ ...window }),
    version,
    description,
    keyField,
    fields: Object.freeze(fields.map((f) => Object.freeze({ name: f.name, type: f.type }))),
    ttlSeconds,
    stateVersion,
  });
}

/**
 * One event of an update batch.
 *
 * `timeMs` (epoch milliseconds), `price` and `eventType` (compared as given:
 * "view" and "View" differ) are plain properties. `key` (the key field's
 * value as text) and `extra` (the event's other top-level fields as one
 * JSON object, or "") are decoded from the batch only when read.
 *
 * Like the Rust SDK's borrowed Event<'a>, an event is valid only during the
 * update call that receives it: the adapter reuses one object for a whole
 * batch. Copy the values you keep, not the event.
 */
export class Event {
  constructor(timeMs = 0, price = 0, eventType = '', key = '', extra = '') {
    this.timeMs = timeMs;
    this.price = price;
    this.eventType = eventType;
    // Set by the adapter: the batch (and a DataView of it), and the offset
    // of this event's `str key` (`str extra` follows). null for a
    // hand-built event.
    this._buf = null;
    this._dv = null;
    this._at = 0;
    this._key = key;
    this._extra = extra;
  }

  get key() {
    if (this._buf === null) return this._key;
    const at = this._at;
    const n = this._dv.getUint32(at, true);
    return utf8Decode(this._buf.subarray(at + 4, at + 4 + n));
  }

  get extra() {
    if (this._buf === null) return this._extra;
    let at = this._at;
    at += 4 + this._dv.getUint32(at, true);
    const n = this._dv.getUint32(at, true);
    return utf8Decode(this._buf.subarray(at + 4, at + 4 + n));
  }

  /**
   * The top-level field `name` of the event's extra fields, or undefined
   * when there is none (or `extra` is empty or not a JSON object). Parses
   * `extra` on every call.
   */
  field(name) {
    const extra = this.extra;
    if (extra === '') return undefined;
    let obj;
    try {
      obj = JSON.parse(extra);
    } catch {
      return undefined;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
    return Object.hasOwn(obj, name) ? obj[name] : undefined;
  }
}

/** The window being finished: `key` (text), `startMs` (inclusive), `endMs` (exclusive). */
export class Window {
  constructor(key, startMs, endMs) {
    this.key = key;
    this.startMs = startMs;
    this.endMs = endMs;
  }
}

export { TWO_32 };
