// The featherflow guest SDK for JavaScript: write a feature plugin as plain
// JS, build it into a component with componentize-js.
//
// A plugin implements the `feature` world of wit/feature.wit, whose
// functions take whole batches packed into byte lists. This module hides
// that: a feature is an object over plain JS values (see feature.js), and
// the plugin's entry module ends with its exports:
//
//   import { declaration, exportFeature, integer, sliding, text } from '../../sdk-js/src/index.js';
//
//   class Count {
//     declare() {
//       return declaration({ view: 'counts', window: sliding(3_600_000, 600_000),
//                            keyField: 'user_id', fields: [text('user_id'), integer('event_count')] });
//     }
//     empty() { return 0; }
//     update(n, event) { return n + 1; }
//     merge(into, other) { return into + other; }
//     finish(n, window) { return [window.key, n]; }
//     encode(n, w) { w.u64(n); }
//     decode(r) { if (r.remaining() !== 8) throw new Error('expected 8 bytes'); return r.u64(); }
//   }
//
//   export const { describe, update, merge, finish, migrate } = exportFeature(new Count());
//
// Layout (the Rust SDK's, guest-features/sdk):
// - feature.js: the plain types a feature author sees;
// - adapter.js: Adapter, which unpacks batches, calls the feature and packs
//   the results; plain JS, tested natively;
// - codec.js: the little-endian primitives (Reader, Writer);
// - this file: exportFeature, the componentize-js glue.

import { Adapter, PluginError, uncaught } from './adapter.js';

export { Adapter, PluginError, compileLayout, valuesWriter } from './adapter.js';
export { DecodeError, Reader, Writer } from './codec.js';
export {
  Event,
  FieldType,
  Window,
  boolean,
  declaration,
  float,
  integer,
  session,
  sliding,
  text,
  tumbling,
} from './feature.js';

/** A declaration in the shape componentize-js lowers into WIT `declaration`. */
export function witDeclaration(d) {
  const w = d.window;
  let window;
  if (w.kind === 'sliding') {
    window = { tag: 'sliding', val: { sizeMs: BigInt(w.sizeMs), slideMs: BigInt(w.slideMs) } };
  } else if (w.kind === 'session') {
    window = { tag: 'session', val: { gapMs: BigInt(w.gapMs) } };
  } else if (w.kind === 'tumbling') {
    window = { tag: 'tumbling', val: BigInt(w.sizeMs) };
  } else {
    throw new TypeError(`declaration window must be sliding, session or tumbling, not ${JSON.stringify(w)}`);
  }
  return {
    view: d.view,
    version: d.version,
    description: d.description,
    window,
    keyField: d.keyField,
    fields: d.fields.map((f) => ({ name: f.name, type: f.type })),
    ttlSeconds: BigInt(d.ttlSeconds),
    stateVersion: d.stateVersion,
  };
}

/**
 * Frees the memory of an argument the engine will not read again.
 *
 * The bindings hand each `list<u8>` argument over as a fresh ArrayBuffer
 * whose bytes live in the component's linear memory until the garbage
 * collector finalises it, and SpiderMonkey collects late: without this the
 * memory of a plugin grows by its inputs' size on every call, to well over
 * the host's default 64 MiB limit, before the first collection.
 * Detaching (a zero-length `transfer`) releases the bytes at once.
 */
function release(bytes) {
  const b = bytes.buffer;
  if (typeof b.transfer === 'function' && b.byteLength === bytes.byteLength && !b.detached) b.transfer(0);
}

function guardRelease(fn, call, a, b) {
  try {
    return call();
  } catch (e) {
    throw e instanceof PluginError ? e : uncaught(fn, e);
  } finally {
    try {
      release(a);
      if (b !== undefined) release(b);
    } catch {
      // Releasing early is an optimisation; the collector frees it anyway.
    }
  }
}

/**
 * The world's exports for `feature`: `export const { describe, update,
 * merge, finish, migrate } = exportFeature(new MyFeature());`.
 *
 * Runs when componentize-js pre-initialises the module, so the declaration
 * is computed (and checked) at build time and baked into the component.
 */
export function exportFeature(feature) {
  const adapter = new Adapter(feature);
  const decl = witDeclaration(adapter.describe());
  return {
    describe: () => decl,
    update: (states, events) => guardRelease('update', () => adapter.update(states, events), states, events),
    merge: (groups) => guardRelease('merge', () => adapter.merge(groups), groups),
    finish: (windows) => guardRelease('finish', () => adapter.finish(windows), windows),
    migrate: (fromVersion, states) => guardRelease('migrate', () => adapter.migrate(fromVersion, states), states),
  };
}
