// `session_features`: per user session (gap ten minutes), the number of
// events and the session's duration in whole seconds. The JS port of
// guest-features/session-stats (see "Seed features" in docs/semantics.md):
// the same declaration and the same state bytes, so either plugin can take
// over the other's states in a hot swap.
//
// Encoding (state version 1): u64 count, i64 min_time_ms, i64 max_time_ms,
// little-endian, 24 bytes. The times mean nothing while count is 0.
//
// Numbers are JS numbers: exact for every epoch-millisecond time and any
// count below 2^53.

import { declaration, integer, session, text } from '../../sdk-js/src/index.js';

export const VERSION = '0.1.0';
export const ENCODED_LEN = 24;
const I64_LIMIT = 2 ** 63;

export const DECLARATION = declaration({
  view: 'session_features',
  window: session(600_000),
  version: VERSION,
  description: "Events per user session and the session's duration in seconds",
  keyField: 'user_id',
  fields: [text('user_id'), integer('event_count'), integer('duration_seconds')],
  ttlSeconds: 3600,
  stateVersion: 1,
});

// State: [count, minMs, maxMs]; the times mean nothing while count is 0.
// With `stateLayout` the SDK decodes and encodes it itself, one call per
// state instead of one per field.
export const STATE_LAYOUT = Object.freeze(['u64', 'i64', 'i64']);
const COUNT = 0;
const MIN = 1;
const MAX = 2;

/**
 * (max - min) / 1000 truncated toward zero like the Flink job's (and
 * Rust's) integer division; 0 for an empty session. Exact: `%` and the
 * division of a multiple of 1000 are exact in doubles.
 */
export function durationSeconds(s) {
  if (s[COUNT] === 0) return 0;
  const d = s[MAX] - s[MIN];
  return (d - (d % 1000)) / 1000 + 0;
}

export class SessionStats {
  constructor() {
    this.stateLayout = STATE_LAYOUT;
  }

  declare() {
    return DECLARATION;
  }

  empty() {
    return [0, 0, 0];
  }

  update(s, event) {
    const t = event.timeMs;
    if (s[COUNT] === 0) {
      s[COUNT] = 1;
      s[MIN] = t;
      s[MAX] = t;
      return;
    }
    s[COUNT] += 1;
    if (t < s[MIN]) s[MIN] = t;
    if (t > s[MAX]) s[MAX] = t;
  }

  merge(into, other) {
    if (other[COUNT] === 0) return;
    if (into[COUNT] === 0) {
      into[COUNT] = other[COUNT];
      into[MIN] = other[MIN];
      into[MAX] = other[MAX];
      return;
    }
    into[COUNT] += other[COUNT];
    if (other[MIN] < into[MIN]) into[MIN] = other[MIN];
    if (other[MAX] > into[MAX]) into[MAX] = other[MAX];
  }

  finish(s, window) {
    const count = s[COUNT] >= I64_LIMIT ? 9223372036854775807n : s[COUNT];
    return [window.key, count, durationSeconds(s)];
  }

  // The SDK encodes and decodes through STATE_LAYOUT; these say the same in
  // code (the tests hold them to it), and decode() words the error for a
  // state of the wrong length.
  encode(s, w) {
    w.u64(s[COUNT]);
    w.i64(s[MIN]);
    w.i64(s[MAX]);
  }

  decode(r) {
    const len = r.remaining();
    if (len !== ENCODED_LEN) throw new Error(`session_features state v1 is ${ENCODED_LEN} bytes, got ${len}`);
    return [r.u64(), r.i64(), r.i64()];
  }
}
