// The JS session_features port: its arithmetic, its declaration, and byte
// for byte the Rust plugin's batches (testdata/rust-fixtures.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Adapter, Event, PluginError, Reader, Window, Writer } from '../../../sdk-js/src/index.js';
import { ENCODED_LEN, SessionStats, durationSeconds } from '../session-stats.js';

const F = new SessionStats();
const FIXTURES = JSON.parse(readFileSync(new URL('../testdata/rust-fixtures.json', import.meta.url), 'utf8'));
const WINDOW = new Window('111', 1_704_067_200_000, 1_704_068_100_000);
const hex = (x) => Buffer.from(x).toString('hex');
const bytes = (h) => new Uint8Array(Buffer.from(h, 'hex'));

function run(times) {
  const s = F.empty();
  for (const t of times) F.update(s, new Event(t, 1, 'view', '111'));
  return s;
}

test('counts events and measures the duration', () => {
  // The example in docs/semantics.md ("The output record"): 4 events over 300 s.
  const t0 = 1_704_067_200_000;
  assert.deepEqual(F.finish(run([t0, t0 + 120_000, t0 + 300_000, t0 + 60_000]), WINDOW), ['111', 4, 300]);
});

test('the duration truncates to whole seconds toward zero', () => {
  assert.equal(durationSeconds(run([1_000, 2_999])), 1);
  assert.equal(durationSeconds(run([0, 999])), 0);
  assert.equal(durationSeconds(run([5_000])), 0);
  assert.equal(durationSeconds(F.empty()), 0);
  // Only a corrupt state has min > max; Rust's division truncates toward zero.
  assert.equal(durationSeconds([2, 2_999, 1_000]), -1);
  assert.ok(Object.is(durationSeconds([2, 1_000, 1_500]), 0));
  // Exact where a float division would round up.
  assert.equal(durationSeconds([2, 0, 2 ** 53 - 1]), 9007199254740);
});

test('merge adds counts and widens the span', () => {
  const a = run([10_000, 20_000]);
  F.merge(a, run([5_000, 7_000, 9_000]));
  assert.deepEqual(a, [5, 5_000, 20_000]);
  assert.deepEqual(a, run([10_000, 5_000, 20_000, 7_000, 9_000]));
  const empty = F.empty();
  F.merge(empty, a);
  assert.deepEqual(empty, a);
  F.merge(empty, F.empty());
  assert.deepEqual(empty, a);
});

test('the state is the Rust plugin\'s 24 bytes', () => {
  const s = run([1_704_067_200_000, 1_704_067_500_000]);
  const w = new Writer();
  F.encode(s, w);
  const data = w.written().slice();
  const expected = new Uint8Array(24);
  const dv = new DataView(expected.buffer);
  dv.setBigUint64(0, 2n, true);
  dv.setBigInt64(8, 1_704_067_200_000n, true);
  dv.setBigInt64(16, 1_704_067_500_000n, true);
  assert.deepEqual([...data], [...expected]);
  assert.equal(data.length, ENCODED_LEN);
  assert.deepEqual(F.decode(new Reader(data)), s);
  assert.throws(() => F.decode(new Reader(data.subarray(0, 23))), { message: 'session_features state v1 is 24 bytes, got 23' });
});

test('the declaration matches the seed feature', () => {
  const d = F.declare();
  assert.deepEqual(
    [d.view, d.version, d.keyField, d.ttlSeconds, d.stateVersion],
    ['session_features', '0.1.0', 'user_id', 3600, 1],
  );
  assert.deepEqual(d.window, { kind: 'session', gapMs: 600_000 });
  assert.deepEqual(
    d.fields.map((f) => [f.name, f.type]),
    [
      ['user_id', 'text'],
      ['event_count', 'integer'],
      ['duration_seconds', 'integer'],
    ],
  );
});

// --- the Rust plugin's bytes -------------------------------------------------

test('update, merge, finish and migrate write the Rust plugin\'s bytes', () => {
  const a = new Adapter(new SessionStats());
  for (const f of FIXTURES.update) assert.equal(hex(a.update(bytes(f.states), bytes(f.events))), f.out);
  assert.equal(hex(a.merge(bytes(FIXTURES.merge.groups))), FIXTURES.merge.out);
  assert.equal(hex(a.finish(bytes(FIXTURES.finish.windows))), FIXTURES.finish.out);
  assert.equal(hex(a.migrate(FIXTURES.migrate.from, bytes(FIXTURES.migrate.states))), FIXTURES.migrate.out);
});

test('a corrupt state is invalid-state with the Rust message', () => {
  const a = new Adapter(new SessionStats());
  assert.throws(() => a.update(Uint8Array.of(1, 0, 0, 0, 3, 0, 0, 0, 97, 98, 99), Uint8Array.of(0, 0, 0, 0)), (e) => {
    assert.ok(e instanceof PluginError);
    assert.deepEqual(e.payload, { tag: 'invalid-state', val: 'states: state 0: session_features state v1 is 24 bytes, got 3' });
    return true;
  });
});
