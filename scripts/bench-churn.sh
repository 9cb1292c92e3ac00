#!/usr/bin/env bash
# Memory under key churn: peak RSS and checkpoint size follow the keys with
# open windows, not every key ever seen.
#
# Two logs with the same number of events over the same ~8 h of event time:
#   churn   3 M distinct users; at any point users are drawn from a window
#           of ACTIVE consecutive ids that slides over all of them, so each
#           user stays a few minutes and never returns (~400 k users in any
#           hour)
#   steady  360 k users, every one of them active all along
# Each is replayed (one core, counting sink) for peak RSS and the keys held
# at the end, then replayed to 90 % and checkpointed for the checkpoint's
# size. The target: churn within 1.3x of steady on both.
#
#   scripts/bench-churn.sh            (EVENTS, RATE, CHURN_USERS, ACTIVE,
#                                      STEADY_USERS, PLUGINS override)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-14400000}
RATE=${RATE:-500}
CHURN_USERS=${CHURN_USERS:-3000000}
ACTIVE=${ACTIVE:-20000}
STEADY_USERS=${STEADY_USERS:-360000}
PLUGINS=${PLUGINS:-plugins}
BIN=${BIN:-target/release/featherflow}
[ -x "$BIN" ] || { echo "bench-churn: $BIN is missing: run make build" >&2; exit 1; }
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"

run() { # name, generator flags...
  local name=$1; shift
  local replay ckpt
  replay=$($PIN "$BIN" bench --events "$EVENTS" --event-rate "$RATE" --plugins "$PLUGINS" "$@" 2>&1) ||
    { echo "$replay" >&2; exit 1; }
  ckpt=$($PIN "$BIN" bench --checkpoints --events "$EVENTS" --event-rate "$RATE" --plugins "$PLUGINS" "$@" 2>&1) ||
    { echo "$ckpt" >&2; exit 1; }
  local rss keys rate size state
  rss=$(echo "$replay" | awk '/peak RSS:/ {print $3; exit}')
  rate=$(echo "$replay" | awk '/throughput:/ {print $2; exit}')
  keys=$(echo "$replay" | sed -n 's/^  keys: *//p' | head -1)
  size=$(echo "$ckpt" | sed -n 's/.*sled commit:.*(\([0-9.]*\) MiB.*/\1/p')
  state=$(echo "$ckpt" | sed -n 's/^  state: *//p')
  printf '%-7s %9s MiB peak RSS  %8s events/s  checkpoint at 90 %%: %7s MiB (%s)\n' "$name" "$rss" "$rate" "$size" "$state"
  printf '        keys: %s\n' "$keys"
  eval "${name}_rss=$rss ${name}_size=$size"
}

echo "featherflow churn benchmark: $EVENTS events at $RATE/s of event time ($((EVENTS / RATE / 3600)) h)"
run churn --users "$CHURN_USERS" --active-users "$ACTIVE"
run steady --users "$STEADY_USERS"
awk -v a="$churn_rss" -v b="$steady_rss" -v c="$churn_size" -v d="$steady_size" 'BEGIN {
  printf "churn / steady: peak RSS %.2fx, checkpoint size %.2fx (target: at most 1.3x each)\n", a / b, c / d
  exit !(a / b <= 1.3 && c / d <= 1.3)
}'
