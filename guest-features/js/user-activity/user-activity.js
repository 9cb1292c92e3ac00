// `user_features`: per user, over a one-hour window sliding every ten
// minutes, the number of views, carts and purchases and the average viewed
// price. The JS port of guest-features/user-activity (see "Seed features"
// in docs/semantics.md): the same declaration and the same state bytes, so
// either plugin can take over the other's states in a hot swap.
//
// Encoding (state version 1): u64 views, u64 carts, u64 purchases,
// f64 view_price_sum, little-endian, 32 bytes.
//
// Counts are JS numbers: exact up to 2^53 events per window, past which the
// Rust plugin's saturating u64 arithmetic and this one's would differ (no
// stream reaches that).

import { declaration, float, integer, sliding, text } from '../../sdk-js/src/index.js';

export const VERSION = '0.1.0';
export const ENCODED_LEN = 32;
const I64_LIMIT = 2 ** 63;

export const DECLARATION = declaration({
  view: 'user_features',
  window: sliding(3_600_000, 600_000),
  version: VERSION,
  description: 'Views, carts and purchases per user over the last hour, and the average viewed price',
  keyField: 'user_id',
  fields: [
    text('user_id'),
    integer('view_count_1h'),
    integer('cart_count_1h'),
    integer('purchase_count_1h'),
    float('avg_viewed_price_1h'),
  ],
  ttlSeconds: 7200,
  stateVersion: 1,
});

// State: [views, carts, purchases, viewPriceSum] (the sum, not the
// average: sums merge exactly, averages do not). With `stateLayout` the SDK
// decodes and encodes it itself, one call per state instead of one per field.
export const STATE_LAYOUT = Object.freeze(['u64', 'u64', 'u64', 'f64']);
const VIEWS = 0;
const CARTS = 1;
const PURCHASES = 2;
const VIEW_PRICE_SUM = 3;

/** Sum of view prices / view count, 0.0 when there were no views. */
export function avgViewedPrice(s) {
  return s[VIEWS] === 0 ? 0 : s[VIEW_PRICE_SUM] / s[VIEWS];
}

/** Counts past i64::MAX saturate, as in the Rust plugin. */
function toI64(n) {
  return n >= I64_LIMIT ? 9223372036854775807n : n;
}

export class UserActivity {
  constructor() {
    this.stateLayout = STATE_LAYOUT;
  }

  declare() {
    return DECLARATION;
  }

  empty() {
    return [0, 0, 0, 0];
  }

  // Case-sensitive, as the Flink job compared them; other event types touch
  // no counter.
  update(s, event) {
    const t = event.eventType;
    if (t === 'view') {
      s[VIEWS] += 1;
      s[VIEW_PRICE_SUM] += event.price;
    } else if (t === 'cart') {
      s[CARTS] += 1;
    } else if (t === 'purchase') {
      s[PURCHASES] += 1;
    }
  }

  merge(into, other) {
    into[VIEWS] += other[VIEWS];
    into[CARTS] += other[CARTS];
    into[PURCHASES] += other[PURCHASES];
    into[VIEW_PRICE_SUM] += other[VIEW_PRICE_SUM];
  }

  finish(s, window) {
    return [window.key, toI64(s[VIEWS]), toI64(s[CARTS]), toI64(s[PURCHASES]), avgViewedPrice(s)];
  }

  // The SDK encodes and decodes through STATE_LAYOUT; these say the same in
  // code (the tests hold them to it), and decode() words the error for a
  // state of the wrong length.
  encode(s, w) {
    w.u64(s[VIEWS]);
    w.u64(s[CARTS]);
    w.u64(s[PURCHASES]);
    w.f64(s[VIEW_PRICE_SUM]);
  }

  decode(r) {
    const len = r.remaining();
    if (len !== ENCODED_LEN) throw new Error(`user_features state v1 is ${ENCODED_LEN} bytes, got ${len}`);
    return [r.u64(), r.u64(), r.u64(), r.f64()];
  }
}
