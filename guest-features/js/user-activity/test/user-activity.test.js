// The JS user_features port: its arithmetic, its declaration, and byte for
// byte the Rust plugin's batches (testdata/rust-fixtures.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Adapter, Event, PluginError, Reader, Window, Writer } from '../../../sdk-js/src/index.js';
import { ENCODED_LEN, UserActivity, avgViewedPrice } from '../user-activity.js';

const F = new UserActivity();
const FIXTURES = JSON.parse(readFileSync(new URL('../testdata/rust-fixtures.json', import.meta.url), 'utf8'));
const WINDOW = new Window('111', 1_704_067_200_000, 1_704_070_800_000);
const hex = (x) => Buffer.from(x).toString('hex');
const bytes = (h) => new Uint8Array(Buffer.from(h, 'hex'));

function run(events) {
  let s = F.empty();
  for (const [ty, price] of events) {
    const next = F.update(s, new Event(1_704_067_200_000, price, ty, '111'));
    if (next !== undefined) s = next;
  }
  return s;
}

test('counts each type and averages view prices', () => {
  const s = run([['view', 10], ['cart', 99], ['view', 20], ['purchase', 7], ['view', 5.25], ['cart', 1]]);
  // (10.0 + 20.0 + 5.25) / 3, exact in binary floating point.
  assert.deepEqual(F.finish(s, WINDOW), ['111', 3, 2, 1, 11.75]);
});

test('the average is zero without views', () => {
  assert.equal(F.finish(run([['cart', 10], ['purchase', 20]]), WINDOW)[4], 0);
  assert.equal(avgViewedPrice(F.empty()), 0);
});

test('other and differently cased types touch no counter', () => {
  assert.deepEqual(run([['click', 5], ['View', 5], ['CART', 5], ['', 5]]), F.empty());
});

test('merging slices equals counting all events at once', () => {
  const all = run([['view', 10], ['cart', 0], ['view', 20], ['view', 5.25]]);
  const merged = run([['view', 10], ['cart', 0]]);
  for (const other of [run([['view', 20]]), F.empty(), run([['view', 5.25]])]) F.merge(merged, other);
  assert.deepEqual(merged, all);
  assert.equal(avgViewedPrice(merged), 11.75);
});

test('the state is the Rust plugin\'s 32 bytes, and the layout agrees with encode()', () => {
  const s = run([['view', 29.99], ['cart', 0], ['purchase', 1]]);
  const w = new Writer();
  F.encode(s, w);
  const data = w.written().slice();
  const expected = new Uint8Array(32);
  const dv = new DataView(expected.buffer);
  dv.setBigUint64(0, 1n, true);
  dv.setBigUint64(8, 1n, true);
  dv.setBigUint64(16, 1n, true);
  dv.setFloat64(24, 29.99, true);
  assert.deepEqual([...data], [...expected]);
  assert.equal(data.length, ENCODED_LEN);
  assert.deepEqual(F.decode(new Reader(data)), s);
  assert.throws(() => F.decode(new Reader(data.subarray(0, 31))), { message: 'user_features state v1 is 32 bytes, got 31' });
  // The adapter's own encoding (stateLayout) is the same bytes.
  const a = new Adapter(F);
  const states = new Writer();
  states.u32(1);
  states.bytes(data);
  assert.equal(hex(a.migrate(1, states.written().slice())), hex(states.written()));
});

test('the declaration matches the seed feature', () => {
  const d = F.declare();
  assert.deepEqual(
    [d.view, d.version, d.keyField, d.ttlSeconds, d.stateVersion],
    ['user_features', '0.1.0', 'user_id', 7200, 1],
  );
  assert.deepEqual(d.window, { kind: 'sliding', sizeMs: 3_600_000, slideMs: 600_000 });
  assert.deepEqual(
    d.fields.map((f) => [f.name, f.type]),
    [
      ['user_id', 'text'],
      ['view_count_1h', 'integer'],
      ['cart_count_1h', 'integer'],
      ['purchase_count_1h', 'integer'],
      ['avg_viewed_price_1h', 'float'],
    ],
  );
});

// --- the Rust plugin's bytes -------------------------------------------------

test('update, merge, finish and migrate write the Rust plugin\'s bytes', () => {
  const a = new Adapter(new UserActivity());
  for (const f of FIXTURES.update) assert.equal(hex(a.update(bytes(f.states), bytes(f.events))), f.out);
  assert.equal(hex(a.merge(bytes(FIXTURES.merge.groups))), FIXTURES.merge.out);
  assert.equal(hex(a.finish(bytes(FIXTURES.finish.windows))), FIXTURES.finish.out);
  assert.equal(hex(a.migrate(FIXTURES.migrate.from, bytes(FIXTURES.migrate.states))), FIXTURES.migrate.out);
  assert.throws(() => a.migrate(2, bytes(FIXTURES.migrate.states)), {
    name: 'PluginError',
    message: 'cannot migrate states from version 2 to version 1',
  });
});

test('a corrupt state is invalid-state with the Rust message', () => {
  const a = new Adapter(new UserActivity());
  assert.throws(() => a.update(Uint8Array.of(1, 0, 0, 0, 3, 0, 0, 0, 97, 98, 99), Uint8Array.of(0, 0, 0, 0)), (e) => {
    assert.ok(e instanceof PluginError);
    assert.deepEqual(e.payload, { tag: 'invalid-state', val: 'states: state 0: user_features state v1 is 32 bytes, got 3' });
    return true;
  });
});
