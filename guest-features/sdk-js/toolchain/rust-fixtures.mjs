// Writes the byte fixtures that hold the Python and JS ports to the Rust seed
// plugins: batches through the Rust components' update, merge, finish and
// migrate, with the bytes those return. The ports' unit tests feed the same
// batches to their adapters and require the same bytes (so a Rust plugin's
// states are a port's states and back, as a hot swap needs).
//
//   node rust-fixtures.mjs <transpiled-rust-plugin-dir> <user-activity|session-stats> <out.json>
//
// The transpiled directory is `jco transpile plugins/<p>.wasm -o <dir>` (jco
// comes with the toolchain in .tools/js). Run again only if the Rust plugins'
// behaviour changes; the fixtures are committed.
import { readdirSync, writeFileSync } from 'node:fs';

const [dir, plugin, out] = process.argv.slice(2);
const js = readdirSync(dir).find((f) => f.endsWith('.js'));
const p = await import(`file://${dir}/${js}`);

class W {
  constructor() {
    this.b = [];
  }
  u32(v) {
    for (let i = 0; i < 4; i++) this.b.push((v >>> (8 * i)) & 255);
  }
  i64(v) {
    const x = BigInt.asUintN(64, BigInt(v));
    for (let i = 0n; i < 8n; i++) this.b.push(Number((x >> (8n * i)) & 255n));
  }
  f64(v) {
    const d = new DataView(new ArrayBuffer(8));
    d.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.b.push(d.getUint8(i));
  }
  bytes(x) {
    this.u32(x.length);
    this.b.push(...x);
  }
  str(s) {
    this.bytes([...new TextEncoder().encode(s)]);
  }
  get() {
    return Uint8Array.from(this.b);
  }
}
const hex = (u8) => Buffer.from(u8).toString('hex');
const packStates = (states) => {
  const w = new W();
  w.u32(states.length);
  for (const s of states) w.bytes([...s]);
  return w.get();
};
const unpack = (u8) => {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const n = dv.getUint32(0, true);
  const out = [];
  let pos = 4;
  for (let i = 0; i < n; i++) {
    const len = dv.getUint32(pos, true);
    out.push(u8.slice(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return out;
};

const T0 = 1_704_067_200_000;
const types = ['view', 'cart', 'purchase', 'View', 'click', '', 'wishlist', 'view', 'view', 'purchase'];
const keys = ['111', 'u1', 'quote"d\\é', '7', ''];
const prices = [10, 20, 5.25, 29.99, 0.1, 0.2, 1e-7, 123456.789, 3, 0];

// Round 1: from empty states, 200 events over 7 slots (out of order).
let events = new W();
events.u32(200);
for (let j = 0; j < 200; j++) {
  events.u32((j * 5) % 7);
  events.i64(T0 + ((j * 7919) % 3_600_000) - 1_800_000);
  events.f64(prices[j % prices.length] * (1 + (j % 3)));
  events.str(types[(j * 3) % types.length]);
  events.str(keys[j % keys.length]);
  events.str(j % 11 === 0 ? '{"extra":{"x":[1,2]}}' : '');
}
const events1 = events.get();
const states0 = packStates(Array.from({ length: 7 }, () => new Uint8Array(0)));
const states1 = p.update(states0, events1);

// Round 2: the states of round 1 (and two new ones) take more events.
const s1 = unpack(states1);
const states1b = packStates([s1[3], new Uint8Array(0), s1[0], s1[6], new Uint8Array(0)]);
events = new W();
events.u32(60);
for (let j = 0; j < 60; j++) {
  events.u32(j % 5);
  events.i64(T0 + 3_600_000 + j * 1000 - (j % 4) * 250_000);
  events.f64(prices[(j * 3) % prices.length]);
  events.str(types[j % types.length]);
  events.str('k');
  events.u32(0);
}
const events2 = events.get();
const states2 = p.update(states1b, events2);
const s2 = unpack(states2);

// Merge: groups of round-1 and round-2 states, oldest first, with empties.
const groups = new W();
const groupList = [[s1[0], s1[1], s1[2]], [new Uint8Array(0), s2[1]], [], [s2[0], new Uint8Array(0), s2[2], s1[5]], [s1[4]]];
groups.u32(groupList.length);
for (const g of groupList) {
  groups.u32(g.length);
  for (const s of g) groups.bytes([...s]);
}
const groupsBytes = groups.get();
const merged = p.merge(groupsBytes);

// Finish: windows over the same groups.
const windows = new W();
windows.u32(groupList.length);
groupList.forEach((g, i) => {
  windows.str(keys[i % keys.length]);
  windows.i64(T0 + i * 600_000);
  windows.i64(T0 + i * 600_000 + 3_600_000);
  windows.u32(g.length);
  for (const s of g) windows.bytes([...s]);
});
const windowsBytes = windows.get();
const finished = p.finish(windowsBytes);

// Migrate from the current version: a check that re-encodes.
const migrated = p.migrate(1, states2);

writeFileSync(
  out,
  JSON.stringify(
    {
      about: `Batches through the Rust ${plugin} component (plugins/${plugin}.wasm) and the bytes it returned; written by guest-features/sdk-js/toolchain/rust-fixtures.mjs`,
      update: [
        { states: hex(states0), events: hex(events1), out: hex(states1) },
        { states: hex(states1b), events: hex(events2), out: hex(states2) },
      ],
      merge: { groups: hex(groupsBytes), out: hex(merged) },
      finish: { windows: hex(windowsBytes), out: hex(finished) },
      migrate: { from: 1, states: hex(states2), out: hex(migrated) },
    },
    null,
    1,
  ) + '\n',
);
console.log(`wrote ${out}`);
