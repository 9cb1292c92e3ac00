// The adapter against a test feature that records what reached which state
// (the JS twin of the Rust SDK's adapter tests).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Adapter,
  Event,
  PluginError,
  Reader,
  Writer,
  boolean,
  compileLayout,
  declaration,
  exportFeature,
  float,
  integer,
  session,
  text,
  tumbling,
  valuesWriter,
  witDeclaration,
} from '../src/index.js';

/** Counts events and records their types in order. State: {n, types}. */
class Trail {
  declare() {
    return declaration({
      view: 'trail',
      window: session(1000),
      keyField: 'user_id',
      fields: [text('user_id'), integer('n'), text('types')],
      stateVersion: 2,
    });
  }
  empty() {
    return { n: 0, types: '' };
  }
  update(s, e) {
    s.n += 1;
    s.types += e.eventType;
  }
  merge(into, other) {
    into.n += other.n;
    into.types += other.types;
  }
  finish(s, w) {
    return [w.key, s.n, s.types];
  }
  encode(s, w) {
    w.i64(s.n);
    w.str(s.types);
  }
  decode(r) {
    const n = r.i64();
    const types = r.str();
    r.finish();
    return { n, types };
  }
  migratesFrom(v) {
    return v === 1;
  }
  // Version 1 was a bare i64 count.
  migrate(v, r) {
    if (r.remaining() !== 8) throw new Error('expected 8 bytes');
    const n = r.i64();
    return { n, types: '?'.repeat(Math.max(0, Math.min(n, 16))) };
  }
}

const trail = (n, types) => {
  const w = new Writer();
  new Trail().encode({ n, types }, w);
  return w.written().slice();
};
const packStates = (states) => {
  const w = new Writer();
  w.u32(states.length);
  for (const s of states) w.bytes(s);
  return w.written().slice();
};
const unpackStates = (bytes) => {
  const r = new Reader(bytes);
  const n = r.count(4);
  const out = [];
  for (let i = 0; i < n; i++) out.push([...r.bytes()]);
  r.finish();
  return out;
};
/** (slot, time, eventType) events with fixed price, key and extra. */
const packEvents = (events, key = 'u1', extra = '') => {
  const w = new Writer();
  w.u32(events.length);
  for (const [slot, time, ty] of events) {
    w.u32(slot);
    w.i64(time);
    w.f64(1.5);
    w.str(ty);
    w.str(key);
    w.str(extra);
  }
  return w.written().slice();
};
const windows = (...specs) => {
  const w = new Writer();
  w.u32(specs.length);
  for (const [key, start, end, states] of specs) {
    w.str(key);
    w.i64(start);
    w.i64(end);
    w.u32(states.length);
    for (const s of states) w.bytes(s);
  }
  return w.written().slice();
};
const expectError = (fn, kind, message) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PluginError, `not a PluginError: ${e}`);
    assert.equal(e.kind, kind, e.message);
    if (message instanceof RegExp) assert.match(e.message, message);
    else if (message !== undefined) assert.equal(e.message, message);
    assert.deepEqual(e.payload, { tag: kind, val: e.message });
    return e;
  }
  assert.fail('no error');
};

const P = new Adapter(new Trail());
const u8 = (x) => [...x];

test('describe mirrors the declaration, in the WIT shape', () => {
  const d = P.describe();
  assert.equal(d.view, 'trail');
  assert.equal(d.version, '0.0.0');
  assert.equal(d.keyField, 'user_id');
  assert.equal(d.stateVersion, 2);
  assert.deepEqual(witDeclaration(d), {
    view: 'trail',
    version: '0.0.0',
    description: '',
    window: { tag: 'session', val: { gapMs: 1000n } },
    keyField: 'user_id',
    fields: [
      { name: 'user_id', type: 'text' },
      { name: 'n', type: 'integer' },
      { name: 'types', type: 'text' },
    ],
    ttlSeconds: 0n,
    stateVersion: 2,
  });
});

test('update routes events to slots and starts empty states from empty()', () => {
  const out = P.update(packStates([new Uint8Array(0), trail(2, 'ab')]), packEvents([[1, 10, 'c'], [0, 11, 'x'], [1, 12, 'd']]));
  assert.deepEqual(unpackStates(out), [u8(trail(1, 'x')), u8(trail(4, 'abcd'))]);
});

test('update with no events returns every state', () => {
  const out = P.update(packStates([trail(1, 'a'), new Uint8Array(0)]), packEvents([]));
  assert.deepEqual(unpackStates(out), [u8(trail(1, 'a')), u8(trail(0, ''))]);
});

test('events carry time, price, type, key and extra', () => {
  const seen = [];
  class Spy extends Trail {
    update(s, e) {
      seen.push([e.timeMs, e.price, e.eventType, e.key, e.extra, e.field('x')]);
    }
  }
  const w = new Writer();
  const evs = [
    [0, -5, 2.25, 'view', 'k1', '{"x":[1,2]}'],
    [0, 1_704_067_200_000, 0.1, 'é', 'quote"d\\é', ''],
    [0, 7, 1, 'purchase', '', ''],
    [0, 8, 1, 'a-long-event-type', '', ''],
    [0, 9, 1, '', '', ''],
    [0, 10, 1, 'purchasf', '', ''],
  ];
  w.u32(evs.length);
  for (const [slot, t, price, ty, key, extra] of evs) {
    w.u32(slot);
    w.i64(t);
    w.f64(price);
    w.str(ty);
    w.str(key);
    w.str(extra);
  }
  const a = new Adapter(new Spy());
  for (let round = 0; round < 2; round++) {
    seen.length = 0;
    a.update(packStates([new Uint8Array(0)]), w.written().slice());
    assert.deepEqual(seen, [
      [-5, 2.25, 'view', 'k1', '{"x":[1,2]}', [1, 2]],
      [1_704_067_200_000, 0.1, 'é', 'quote"d\\é', '', undefined],
      [7, 1, 'purchase', '', '', undefined],
      [8, 1, 'a-long-event-type', '', '', undefined],
      [9, 1, '', '', '', undefined],
      [10, 1, 'purchasf', '', '', undefined],
    ]);
  }
});

test('update errors name the slot or event', () => {
  expectError(
    () => P.update(packStates([new Uint8Array(0)]), packEvents([[0, 1, 'a'], [3, 2, 'b']])),
    'invalid-batch',
    'events: event 1: slot 3 out of range (1 states)',
  );
  expectError(() => P.update(packStates([new Uint8Array(0), Uint8Array.of(1, 2, 3)]), packEvents([])), 'invalid-state', /^states: state 1: /);
  const events = packEvents([[0, 1, 'a']]);
  expectError(() => P.update(packStates([new Uint8Array(0)]), events.subarray(0, events.length - 2)), 'invalid-batch', /^events: event 0: /);
});

test('malformed framing is invalid-batch, never a crash', () => {
  const trailing = new Uint8Array([...packStates([new Uint8Array(0)]), 0]);
  for (const bad of [new Uint8Array(0), Uint8Array.of(1, 0), Uint8Array.of(255, 255, 255, 255), trailing]) {
    expectError(() => P.update(bad, packEvents([])), 'invalid-batch');
    expectError(() => P.update(packStates([]), bad), 'invalid-batch');
    expectError(() => P.merge(bad), 'invalid-batch');
    expectError(() => P.finish(bad), 'invalid-batch');
    expectError(() => P.migrate(1, bad), 'invalid-batch');
  }
});

test('an invalid UTF-8 event type is invalid-batch', () => {
  const events = packEvents([[0, 1, 'ab']]);
  events[28] = 0xff; // the 'b'
  expectError(() => P.update(packStates([new Uint8Array(0)]), events), 'invalid-batch', 'events: event 0: invalid UTF-8 in the string at byte 24');
});

test('merge folds each group in the order given', () => {
  const w = new Writer();
  w.u32(3);
  w.u32(3);
  w.bytes(trail(1, 'a'));
  w.bytes(new Uint8Array(0));
  w.bytes(trail(2, 'bc'));
  w.u32(1);
  w.bytes(trail(1, 'z'));
  w.u32(0);
  assert.deepEqual(unpackStates(P.merge(w.written().slice())), [u8(trail(3, 'abc')), u8(trail(1, 'z')), u8(trail(0, ''))]);
});

test('finish merges oldest first and packs tagged values', () => {
  const out = P.finish(windows(['u1', 0, 1000, [trail(1, 'a'), trail(1, 'b')]], ['u2', 5, 6, []]));
  const w = new Writer();
  w.u32(2);
  for (const [key, n, types] of [['u1', 2, 'ab'], ['u2', 0, '']]) {
    w.u8(0);
    w.str(key);
    w.u8(1);
    w.i64(n);
    w.u8(0);
    w.str(types);
  }
  assert.deepEqual(u8(out), u8(w.written()));
});

class Typed extends Trail {
  declare() {
    return declaration({ view: 'typed', window: tumbling(10), fields: [integer('i'), float('f'), boolean('b'), text('t')] });
  }
  finish(s, w) {
    return {
      ok: [-3, 2.5, true, 'x'],
      big: [2n ** 62n, 1, false, ''],
      short: [1],
      'bool-as-int': [true, 1, true, ''],
      'float-as-int': [1.5, 1, true, ''],
      huge: [2 ** 63, 1, true, ''],
      'null-float': [1, null, true, ''],
      'not-array': 5,
    }[w.key];
  }
}
const finishOne = (key) => new Adapter(new Typed()).finish(windows([key, 0, 10, []])).slice();

test('finish packs every type, bigints too', () => {
  const w = new Writer();
  w.u32(1);
  w.u8(1);
  w.i64(-3);
  w.u8(2);
  w.f64(2.5);
  w.u8(3);
  w.u8(1);
  w.u8(0);
  w.str('x');
  assert.deepEqual(u8(finishOne('ok')), u8(w.written()));
  const b = new Reader(finishOne('big'), 5);
  assert.equal(b.i64Big(), 2n ** 62n);
});

test('finish refuses values that do not match the declaration', () => {
  for (const [key, message] of [
    ['short', 'window 0: finish returned 1 values but 4 fields are declared'],
    ['bool-as-int', 'window 0: field `i` is declared integer but finish returned boolean'],
    ['float-as-int', 'window 0: field `i` is declared integer but finish returned float'],
    ['huge', 'window 0: field `i` value 9223372036854776000 does not fit a 64-bit integer'],
    ['null-float', 'window 0: field `f` is declared float but finish returned a JS null'],
    ['not-array', 'window 0: finish returned undefined values but 4 fields are declared'],
  ]) {
    expectError(() => finishOne(key), 'other', message);
  }
});

test('migrate converts known versions and refuses others', () => {
  const w = new Writer();
  w.i64(3);
  const v1 = w.written().slice();
  assert.deepEqual(unpackStates(P.migrate(1, packStates([v1, new Uint8Array(0)]))), [u8(trail(3, '???')), []]);
  expectError(() => P.migrate(7, packStates([])), 'unsupported', 'cannot migrate states from version 7 to version 2');
  expectError(() => P.migrate(1, packStates([Uint8Array.of(1)])), 'invalid-state', 'state 0: cannot migrate from version 1: expected 8 bytes');
  assert.deepEqual(unpackStates(P.migrate(2, packStates([trail(1, 'a')]))), [u8(trail(1, 'a'))]);
  expectError(() => P.migrate(2, packStates([Uint8Array.of(1)])), 'invalid-state');
});

class Raiser extends Trail {
  update(s, e) {
    if (e.eventType === 'boom') throw new RangeError('kaboom');
  }
  finish() {
    return null.x;
  }
}

test('exceptions in feature code are other errors with the stack, and nothing breaks', () => {
  const a = new Adapter(new Raiser());
  const e = expectError(() => a.update(packStates([new Uint8Array(0)]), packEvents([[0, 1, 'a'], [0, 2, 'boom']])), 'other');
  assert.match(e.message, /^update: uncaught exception in the feature\nRangeError: kaboom\n/);
  assert.match(e.message, /adapter\.test\.js/);
  expectError(() => a.finish(windows(['k', 0, 1, []])), 'other', /^finish: uncaught exception in the feature\nTypeError/);
  assert.deepEqual(unpackStates(a.update(packStates([new Uint8Array(0)]), packEvents([[0, 1, 'a']]))), [u8(trail(0, ''))]);
  // Thrown non-errors too.
  class Thrower extends Trail {
    update() {
      throw 'a string';
    }
  }
  expectError(() => new Adapter(new Thrower()).update(packStates([new Uint8Array(0)]), packEvents([[0, 1, 'a']])), 'other', /uncaught value: a string$/);
});

test('the event type cache is bounded', () => {
  const a = new Adapter(new Trail());
  const events = packEvents(Array.from({ length: 1000 }, (_, i) => [0, i, `t${i}`]));
  const out = a.update(packStates([new Uint8Array(0)]), events);
  assert.equal(new Trail().decode(new Reader(out, 8)).n, 1000);
  assert.equal(a.typeCount, 256);
});

/** A fixed state layout: the adapter decodes and encodes states itself. */
class Fixed {
  constructor() {
    this.stateLayout = ['u64', 'i64', 'f64', 'u32', 'i32', 'u8'];
  }
  declare() {
    return declaration({ view: 'fixed', window: tumbling(10), fields: [integer('n'), float('sum')] });
  }
  update(s, e) {
    s[0] += 1;
    s[1] = e.timeMs;
    s[2] += e.price;
    s[3] = 7;
    s[4] = -7;
    s[5] = 255;
  }
  merge(into, other) {
    into[0] += other[0];
    into[2] += other[2];
  }
  finish(s) {
    return [s[0], s[2]];
  }
}

test('a state layout decodes and encodes states without the feature', () => {
  const a = new Adapter(new Fixed());
  const out = a.update(packStates([new Uint8Array(0)]), packEvents([[0, -(2 ** 40), 'a'], [0, -5, 'b']])).slice();
  const r = new Reader(out);
  assert.equal(r.u32(), 1);
  assert.equal(r.u32(), 33);
  assert.deepEqual([r.u64(), r.i64(), r.f64(), r.u32(), r.dv.getInt32(r.pos, true), r.buf[r.pos + 4]], [2, -5, 3, 7, -7, 255]);
  // Round trip through another update.
  const again = a.update(out, packEvents([[0, 1, 'c']])).slice();
  assert.equal(new Reader(again, 8).u64(), 3);
  // A state of another length is invalid (the feature has no decode() to word it).
  expectError(() => a.update(packStates([Uint8Array.of(1, 2)]), packEvents([])), 'invalid-state', 'states: state 0: state is 2 bytes, the state layout 33');
  assert.deepEqual(u8(a.finish(windows(['k', 0, 10, [out.slice(8), out.slice(8)]]))).length, 4 + 18);
  assert.throws(() => new Adapter({ ...new Fixed(), stateLayout: ['u128'], declare: Fixed.prototype.declare }), /unknown field type "u128"/);
});

test('the values writer refuses what the careful path must handle', () => {
  const write = valuesWriter([text('t'), integer('i'), float('f'), boolean('b')]);
  const w = new Writer();
  assert.equal(write(w, ['x', 1, 2.5, true]), true);
  assert.equal(w.pos, 5 + 1 + 9 + 9 + 2);
  for (const bad of [['x', 1n, 2.5, true], ['x', 1.5, 2.5, true], ['x', 1, '2', true], [1, 1, 1, true], ['x', 1, 1], null, 'abcd']) {
    assert.equal(write(new Writer(), bad), false, JSON.stringify(String(bad)));
  }
});

test('exportFeature: the world exports, errors as payloads, inputs released', () => {
  const exports = exportFeature(new Trail());
  assert.equal(exports.describe().view, 'trail');
  const states = packStates([new Uint8Array(0)]);
  const events = packEvents([[0, 1, 'a']]);
  const out = exports.update(states, events);
  assert.deepEqual(unpackStates(out.slice()), [u8(trail(1, 'a'))]);
  if (typeof ArrayBuffer.prototype.transfer === 'function') {
    // Node 20 has no transfer(); SpiderMonkey (the component's engine) does.
    assert.equal(states.byteLength, 0);
    assert.equal(events.byteLength, 0);
  }
  try {
    exports.update(packStates([]), packEvents([[0, 1, 'a']]));
    assert.fail('no error');
  } catch (e) {
    assert.deepEqual(e.payload, { tag: 'invalid-batch', val: 'events: event 0: slot 0 out of range (0 states)' });
  }
});

test('hand-built events read like the adapter\'s', () => {
  const e = new Event(1, 2, 'view', '111', '{"a": 1}');
  assert.deepEqual([e.key, e.extra, e.field('a'), e.field('b')], ['111', '{"a": 1}', 1, undefined]);
  assert.equal(new Event().field('a'), undefined);
});

test('aligned layouts read and write integers as words, negative ones too', () => {
  const { decode, encode, aligned, size } = compileLayout(['i64', 'u64', 'u32', 'i32', 'f64']);
  assert.equal(aligned, true);
  const buf = new Uint8Array(4 + size);
  const dv = new DataView(buf.buffer);
  const u32 = new Uint32Array(buf.buffer);
  const state = [-(2 ** 40) - 3, 2 ** 53 - 1, 4294967295, -2, -0.5];
  encode(dv, u32, 4, state);
  assert.deepEqual(decode(dv, u32, 4), state);
  assert.deepEqual(decode(dv, null, 4), state); // the DataView form reads the same bytes
  const viaDataView = new Uint8Array(4 + size);
  encode(new DataView(viaDataView.buffer), null, 4, state);
  assert.deepEqual([...viaDataView], [...buf]);
  // An unaligned offset takes the DataView form.
  const odd = new Uint8Array(5 + size);
  encode(new DataView(odd.buffer), new Uint32Array(odd.buffer, 0, 1), 5, state);
  assert.deepEqual(decode(new DataView(odd.buffer), new Uint32Array(odd.buffer, 0, 1), 5), state);
});
