#!/usr/bin/env bash
# Soak benchmark of `featherflow run` (not a test): a steady stream for
# DURATION seconds with, along the way, Redis stopped for a while, the broker
# stopped for a while, a plugin hot swap, and the engine SIGKILLed and
# restarted; users churn (most user ids appear in one window only). Prints
# the engine's RSS over time, its restarts, and at the end the records lost
# (must be 0) and the Redis diff against `featherflow replay` of every event
# sent (must be empty).
#   DURATION=3600 RATE=2000 USERS=1000000 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-3600}     # seconds of wall time the producer runs
RATE=${RATE:-2000}             # events per second of wall time
EVENT_RATE=${EVENT_RATE:-200}  # events per second of event time (10x the wall clock at the defaults)
USERS=${USERS:-1000000}
REDIS_OUTAGE=${REDIS_OUTAGE:-$((DURATION / 15))}  # seconds Redis is stopped
# The broker: the prebuilt tansu of scripts/deps.sh keeps its log in memory.
# A tansu built with `cargo install tansu --features dynostore,libsql` keeps it
# in SQLite: TANSU=~/.cargo/bin/tansu STORAGE=sqlite. With a persistent log
# the broker outage is a real restart (SIGTERM, then started again); with
# memory storage it is a SIGSTOP, capped at 40 s by default: the prebuilt
# tansu took produce requests but served no fetch for good after a 200 s
# SIGSTOP, which is the test broker's failure, not the engine's (the engine
# reports it on /health/ready as a stalled source after 60 s).
TANSU=${TANSU:-.tools/tansu}
# kafka.assignment: "group" (the default: a group of one, an engine core per
# partition) or "static".
ASSIGNMENT=${ASSIGNMENT:-group}
STORAGE=${STORAGE:-memory}
if [ "$STORAGE" = memory ]; then
  BROKER_OUTAGE=${BROKER_OUTAGE:-$(( DURATION / 15 < 40 ? DURATION / 15 : 40 ))}
else
  BROKER_OUTAGE=${BROKER_OUTAGE:-$((DURATION / 15))}
fi
scripts/deps.sh >/dev/null
make -s engine plugins >/dev/null
cargo build -q --profile wasm --target wasm32-wasip2 -p v3-user-activity

DIR=$(mktemp -d /tmp/featherflow-soak.XXXXXX)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port); KPORT=$(port); APORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$DIR/redis.log" 2>&1 &
RPID=$!
start_broker() {
  local engine=memory://tansu/
  # (sqlite://PATH is relative to the working directory: four slashes for /tmp/...)
  [ "$STORAGE" = sqlite ] && engine="sqlite:///$DIR/broker.db"
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
    --storage-engine "$engine" --silent >>"$DIR/tansu.log" 2>&1 &
  KPID=$!
}
start_broker
EPID=""; PPID_GEN=""
cleanup() {
  kill -CONT $RPID $KPID 2>/dev/null || true
  kill $EPID $PPID_GEN $RPID $KPID 2>/dev/null || true
  echo "(logs and data in $DIR)"
}
trap cleanup EXIT
sleep 0.5
sleep 1
"$TANSU" topic create ecommerce-events --partitions 4 --broker "tcp://127.0.0.1:$KPORT" >/dev/null
mkdir -p "$DIR/plugins"
cp plugins/user-activity.wasm plugins/session-stats.wasm "$DIR/plugins/"
cat >"$DIR/ff.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$KPORT"
assignment = "$ASSIGNMENT"
[redis]
url = "redis://127.0.0.1:$RPORT/0"
[checkpoint]
dir = "$DIR/checkpoints"
interval = "10s"
[plugins]
dir = "$DIR/plugins"
[output]
dead-letter = "$DIR/dead-letter.jsonl"
[api]
listen = "127.0.0.1:$APORT"
[kafka.properties]
# The test broker: a join otherwise waits half the default session timeout.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
TOML

# A private copy: a rebuild during an hour-long soak must not change it.
cp target/release/featherflow "$DIR/featherflow"
BIN=$DIR/featherflow
start_engine() {
  RUST_LOG=info $BIN run --config "$DIR/ff.toml" >>"$DIR/engine.log" 2>&1 &
  EPID=$!
}
rss_mib() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }

echo "== soak ($ASSIGNMENT, $STORAGE broker): ${DURATION}s at $RATE events/s, $USERS users, event time ${EVENT_RATE} events/s; Redis stopped ${REDIS_OUTAGE}s, the broker ${BROKER_OUTAGE}s"
start_engine
$BIN produce --brokers "127.0.0.1:$KPORT" --rate "$RATE" --event-rate "$EVENT_RATE" --users "$USERS" \
  --events 1000000000000 --duration "${DURATION}s" --to-file "$DIR/sent.jsonl" >"$DIR/producer.log" 2>&1 &
PPID_GEN=$!

restarts=0; t0=$SECONDS; next_sample=0
printf '%8s %10s %12s %10s  %s\n' "t (s)" "RSS (MiB)" "store (MiB)" "sent" "event"
while kill -0 $PPID_GEN 2>/dev/null; do
  t=$((SECONDS - t0)); ev=""
  case $t in
    $((DURATION * 2 / 12))) kill -STOP $RPID; ev="Redis stopped" ;;
    $((DURATION * 2 / 12 + REDIS_OUTAGE))) kill -CONT $RPID; ev="Redis back" ;;
    $((DURATION * 5 / 12)))
      if [ "$STORAGE" = memory ]; then kill -STOP $KPID; ev="broker stopped (SIGSTOP)"
      else kill -TERM $KPID; wait $KPID 2>/dev/null || true; ev="broker stopped (SIGTERM)"; fi ;;
    $((DURATION * 5 / 12 + BROKER_OUTAGE)))
      if [ "$STORAGE" = memory ]; then kill -CONT $KPID; else start_broker; fi; ev="broker back" ;;
    $((DURATION * 7 / 12)))
      cp target/wasm32-wasip2/wasm/v3_user_activity.wasm "$DIR/plugins/user-activity.wasm.tmp"
      mv "$DIR/plugins/user-activity.wasm.tmp" "$DIR/plugins/user-activity.wasm"; ev="hot swap user-activity v1 -> v3 (state migrated)" ;;
    $((DURATION * 9 / 12))) kill -KILL $EPID; wait $EPID 2>/dev/null || true; restarts=$((restarts + 1)); start_engine; ev="engine SIGKILLed and restarted" ;;
  esac
  if [ $t -ge $next_sample ] || [ -n "$ev" ]; then
    printf '%8d %10s %12s %10s  %s\n' "$t" "$(rss_mib $EPID)" "$(du -sm "$DIR/checkpoints" 2>/dev/null | cut -f1)" "$( (wc -l <"$DIR/sent.jsonl") 2>/dev/null || echo 0)" "$ev"
    [ $t -ge $next_sample ] && next_sample=$((next_sample + DURATION / 30 + 1))
  fi
  sleep 1
done
# `produce --to-file` holds the events in the order they were sent; it drops
# the ones the broker did not take when it ends.
sent=$(wc -l <"$DIR/sent.jsonl")
tail -c 300 "$DIR/producer.log" | tr '\r' '\n' | grep -E "not delivered" || true
echo "== producer done: $sent events sent; letting the engine catch up, then stopping it (SIGTERM)"
sleep 15
kill -TERM $EPID; wait $EPID || true
echo "== firing the windows still open: featherflow run --bounded (reads to the end, fires everything)"
RUST_LOG=warn $BIN run --bounded --no-api --config "$DIR/ff.toml" 2>>"$DIR/engine.log" | tail -1 || true
echo "== reference: featherflow replay of every event sent, into Redis db 1"
RUST_LOG=warn $BIN replay --events "$DIR/sent.jsonl" --plugins plugins --redis "redis://127.0.0.1:$RPORT/1" --dead-letter '' 2>"$DIR/replay.log"
grep -m1 "^records read" "$DIR/replay.log" || tail -3 "$DIR/replay.log"
PYTHONPATH=scripts/lib python3 - "$RPORT" "$sent" "$restarts" "$DIR/engine.log" <<'PY'
import sys
from bench import redis_dump
port, sent, restarts, log = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# (Group members also write `_window_end`; the replay does not.)
dump = lambda db: redis_dump(port, db, drop=("_window_end",))
a, b = dump(0), dump(1)
missing = [k for k in b if k not in a]
extra = [k for k in a if k not in b]
differ = [k for k in b if k in a and a[k][0] != b[k][0]]
no_ttl = [k for k in a if not a[k][1]]
text = open(log, errors="replace").read()
print(f"== result: {sent} events sent; engine restarts {restarts}; keys: run {len(a)}, replay {len(b)}")
print(f"   records lost: {len(missing)} keys missing, {len(differ)} keys with other values, {len(extra)} extra keys, {len(no_ttl)} keys without TTL")
import re
plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
print(f"   log lines: {len(re.findall(r' WARN ', plain))} WARN, {len(re.findall(r' ERROR ', plain))} ERROR over the whole run")
for k in (missing + differ + extra)[:5]:
    print("   e.g.", k, a.get(k), b.get(k))
sys.exit(1 if missing or differ or extra or no_ttl else 0)
PY
