#!/usr/bin/env bash
# End-to-end benchmark of `featherflow run`: Kafka (tansu) -> windows -> Wasm
# -> Redis, on this machine (broker and Redis share the cores with the engine).
# Prints events/s, fire-to-Redis latency, checkpoint pause and duration, and
# the engine's own CPU time per million events and peak RSS.
#   EVENTS=3000000 USERS=100000 scripts/bench-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-3000000}
USERS=${USERS:-100000}
INTERVAL=${INTERVAL:-5s}
scripts/deps.sh >/dev/null
make -s engine plugins >/dev/null

DIR=$(mktemp -d /tmp/featherflow-bench.XXXXXX)
RPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
KPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$DIR/redis.log" 2>&1 &
RPID=$!
.tools/tansu broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
  --storage-engine memory://tansu/ --silent >"$DIR/tansu.log" 2>&1 &
KPID=$!
trap 'kill $RPID $KPID 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 0.5
.tools/tansu topic create ecommerce-events --partitions 4 --broker "tcp://127.0.0.1:$KPORT" >/dev/null

echo "== generating and producing $EVENTS events ($USERS users, 2000 ev/s of event time, 0-9 s out of order)"
target/release/featherflow gen --events "$EVENTS" --users "$USERS" --event-rate 2000 --out "$DIR/events.jsonl"
target/release/featherflow produce --brokers "127.0.0.1:$KPORT" --from-file "$DIR/events.jsonl" 2>&1 | tail -1
rm "$DIR/events.jsonl"

cat >"$DIR/ff.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$KPORT"
[redis]
url = "redis://127.0.0.1:$RPORT/0"
[checkpoint]
dir = "$DIR/checkpoints"
interval = "$INTERVAL"
[plugins]
dir = "plugins"
[output]
dead-letter = ""
TOML

echo "== featherflow run --bounded"
python3 - "$DIR/ff.toml" <<'PY'
import resource, subprocess, sys, re
p = subprocess.run(["target/release/featherflow", "run", "--bounded", "--no-api", "--config", sys.argv[1]],
                   stderr=subprocess.PIPE, text=True, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
line = [l for l in p.stderr.splitlines() if l.startswith("run:")]
print(line[-1] if line else p.stderr[-2000:])
events = int(re.search(r"run: (\d+) events", line[-1]).group(1)) if line else 0
cpu = ru.ru_utime + ru.ru_stime
print(f"engine CPU: {cpu:.2f} s ({ru.ru_utime:.2f} user + {ru.ru_stime:.2f} sys) = {cpu / max(events, 1) * 1e6:.2f} s per million events; peak RSS {ru.ru_maxrss / 1024:.0f} MiB")
sys.exit(p.returncode)
PY
echo "== Redis: $(redis-cli -p "$RPORT" dbsize) keys"
