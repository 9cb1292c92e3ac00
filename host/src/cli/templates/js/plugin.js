// `{{VIEW}}`: per user and 10-minute window, the number of events and the
// revenue (the sum of purchase prices). Replace it with your feature.
//
// The state of one window part is kept by the engine as the bytes `encode`
// writes (checkpointed, and merged when a window covers several parts):
// u64 events, f64 revenue, little-endian, 16 bytes.

import { declaration, float, integer, text, tumbling } from './sdk/index.js';

export class Plugin {
  declare() {
    return declaration({
      view: '{{VIEW}}',
      window: tumbling(600_000),
      version: '0.1.0',
      description: 'Events and revenue per user per 10 minutes',
      keyField: 'user_id',
      fields: [text('user_id'), integer('events'), float('revenue')],
      ttlSeconds: 3600,
    });
  }

  empty() {
    return [0, 0];
  }

  update(s, event) {
    s[0] += 1;
    if (event.eventType === 'purchase') s[1] += event.price;
    return s;
  }

  merge(into, other) {
    into[0] += other[0];
    into[1] += other[1];
    return into;
  }

  finish(s, window) {
    return [window.key, s[0], s[1]];
  }

  encode(s, w) {
    w.u64(s[0]);
    w.f64(s[1]);
  }

  decode(r) {
    if (r.remaining() !== 16) throw new Error(`a state is 16 bytes, not ${r.remaining()}`);
    return [r.u64(), r.f64()];
  }
}
