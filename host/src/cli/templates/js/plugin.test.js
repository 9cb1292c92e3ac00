// The plugin's math, natively: `node --test test/`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Event, Reader, Window, Writer } from '../sdk/index.js';
import { Plugin } from '../plugin.js';

test('counts events and sums purchases', () => {
  const p = new Plugin();
  let s = p.empty();
  for (const [type, price] of [['view', 5], ['purchase', 19.99], ['cart', 1], ['purchase', 0.01]]) {
    s = p.update(s, new Event(0, price, type, 'u1'));
  }
  assert.equal(s[0], 4);
  assert.ok(Math.abs(s[1] - 20) < 1e-9);
  const w = new Writer();
  p.encode(s, w);
  assert.deepEqual(p.decode(new Reader(w.written())), s);
  const merged = p.merge(p.empty(), s);
  assert.deepEqual(p.finish(merged, new Window('u1', 0, 600_000)), ['u1', 4, s[1]]);
});
