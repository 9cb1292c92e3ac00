#!/usr/bin/env bash
# End-to-end benchmark of `featherflow run`: Kafka (tansu) -> windows -> Wasm
# -> Redis, on this machine (broker and Redis share the cores with the engine).
# Prints events/s, fire-to-Redis latency (p50, p99, max), checkpoint pause and
# duration, the engine's own CPU time per million events and peak RSS, the
# same for `featherflow replay` of the same events (and the run/replay CPU
# ratio), and Redis's CPU time.
#   EVENTS=3000000 USERS=100000 scripts/bench-run.sh
#   PERF=/tmp/run.perf scripts/bench-run.sh   # also records a perf profile of `run`
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

echo "== featherflow run --bounded, then featherflow replay of the same events"
python3 - "$DIR/ff.toml" "$DIR/events.jsonl" "$RPID" <<'PY'
import os, resource, subprocess, sys, re
config, events_file, rpid = sys.argv[1], sys.argv[2], sys.argv[3]
def redis_cpu():
    f = open(f"/proc/{rpid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def measure(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                       env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p, cpu, after.ru_maxrss
r0 = redis_cpu()
perf = ["perf", "record", "-F", "499", "-g", "-o", os.environ["PERF"], "--"] if os.environ.get("PERF") else []
p, run_cpu, rss = measure(perf + ["target/release/featherflow", "run", "--bounded", "--no-api", "--config", config])
redis = redis_cpu() - r0
line = [l for l in p.stderr.splitlines() if l.startswith("run:")]
print(line[-1] if line else p.stderr[-2000:])
if p.returncode != 0:
    sys.exit(p.returncode)
events = int(re.search(r"run: (\d+) events", line[-1]).group(1))
print(f"run:    engine CPU {run_cpu:.2f} s = {run_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events; peak RSS {rss / 1024:.0f} MiB; Redis CPU {redis:.2f} s ({redis / max(events, 1) * 1e6:.2f} s per million events)")
p, replay_cpu, _ = measure(["target/release/featherflow", "replay", "--events", events_file, "--plugins", "plugins",
                            "--out", "/dev/null", "--dead-letter", ""])
print(f"replay: engine CPU {replay_cpu:.2f} s = {replay_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events (same events, JSON lines to /dev/null)")
print(f"run / replay CPU per event: {run_cpu / max(replay_cpu, 1e-9):.2f}x")
sys.exit(p.returncode)
PY
echo "== Redis: $(redis-cli -p "$RPORT" dbsize) keys"
