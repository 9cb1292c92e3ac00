#!/usr/bin/env bash
# Hot-swap benchmark: replay the benchmark log through both seed plugins,
# once without swaps and once swapping user-activity v1 <-> v2 every second
# (write beside, rename over), pinned to one core. Prints throughput of both
# runs and, per swap, the event-loop pause and the time from rename to the
# new version serving.
#   EVENTS=10000000 USERS=100000 scripts/bench-swap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-10000000}
USERS=${USERS:-100000}
make -s build guests >/dev/null
LOG=data/bench/events-$EVENTS-${USERS}u-2000r-9d-s42.jsonl
[ -f "$LOG" ] || target/release/featherflow gen --events "$EVENTS" --users "$USERS" --event-rate 2000 --disorder-seconds 9 --seed 42 --out "$LOG"
DIR=$(mktemp -d /tmp/featherflow-swap.XXXXXX)
trap 'kill $SWAPPER 2>/dev/null || true; rm -rf "$DIR"' EXIT
SWAPPER=
cp plugins/session-stats.wasm plugins/user-activity.wasm "$DIR/"
W=target/wasm32-wasip2/wasm

echo "== no swaps"
taskset -c 0 target/release/featherflow replay --watch --dead-letter '' --events "$LOG" --plugins "$DIR" --out /dev/null 2>&1 | grep -E "^records read"

echo "== swapping user-activity every second"
(
  i=0
  while true; do
    sleep 1
    if [ $((i % 2)) = 0 ]; then src=$W/v2_user_activity.wasm; else src=$W/user_activity.wasm; fi
    cp "$src" "$DIR/user-activity.wasm.tmp" && mv "$DIR/user-activity.wasm.tmp" "$DIR/user-activity.wasm"
    i=$((i + 1))
  done
) &
SWAPPER=$!
taskset -c 0 target/release/featherflow replay --watch --dead-letter '' --events "$LOG" --plugins "$DIR" --out /dev/null 2>"$DIR/err" || true
grep -E "^records read" "$DIR/err"
grep -E "plugin user_features" "$DIR/err" | head -50
