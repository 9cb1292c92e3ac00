#!/usr/bin/env bash
# Scale-out benchmark (not a test): 1, 2 and 3 engines in one consumer group
# (kafka.assignment = "group", checkpoints every 5 s in a file:// store).
# For each engine count W, a fresh topic of PARTITIONS partitions holds the
# same EVENTS events (event time EVENT_RATE events/s, so windows fire as the
# backlog is read):
#   1. W engines start together and read the backlog: events/s in total and
#      engine CPU-s per million events (all engines), fire-to-Redis p99, Redis
#      commands per second;
#   2. one more engine joins, then leaves (SIGTERM): partitions move twice.
#      Each move's pause, from the old owner's revocation to the new owner's
#      resumption (p50/p99/max), and restore time per MB of checkpoint;
#   3. the engines stop, `run --bounded` fires what is still open, and Redis
#      (without `_window_end`) must equal `featherflow replay` of the events.
# Broker, Redis and every engine share the machine's cores: on 2 cores the
# point is the cost of a move and that nothing is lost, not a speed-up.
#   EVENTS=1000000 USERS=100000 PARTITIONS=6 WORKERS="1 2 3" scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
USERS=${USERS:-100000}
PARTITIONS=${PARTITIONS:-6}
WORKERS=${WORKERS:-1 2 3}
EVENT_RATE=${EVENT_RATE:-200}

. scripts/lib/services.sh
bench_setup scale
trap 'kill $RPID $KPID 2>/dev/null; pkill -f "featherflow run --config $DIR" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT

echo "== generating $EVENTS events ($USERS users, $EVENT_RATE ev/s of event time); reference: featherflow replay into Redis db 15"
target/release/featherflow gen --events "$EVENTS" --users "$USERS" --event-rate "$EVENT_RATE" --out "$DIR/events.jsonl"
RUST_LOG=warn target/release/featherflow replay --events "$DIR/events.jsonl" --plugins plugins \
  --redis "redis://127.0.0.1:$RPORT/15" --dead-letter '' 2>/dev/null

for W in $WORKERS; do
  TOPIC=scale-$W
  create_topic "$TOPIC" "$PARTITIONS"
  target/release/featherflow produce --brokers "127.0.0.1:$KPORT" --topic "$TOPIC" --from-file "$DIR/events.jsonl" 2>&1 | tail -1 >/dev/null
  redis-cli -p "$RPORT" -n "$W" flushdb >/dev/null
  cat >"$DIR/scale-$W.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$KPORT"
topic = "$TOPIC"
group = "scale-$W"
assignment = "group"
[redis]
url = "redis://127.0.0.1:$RPORT/$W"
[checkpoint]
url = "file://$DIR/checkpoints-$W"
dir = "$DIR/local-$W"
interval = "5s"
[plugins]
dir = "plugins"
[output]
dead-letter = ""
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
TOML
  echo "== $W engine(s), $PARTITIONS partitions"
  PYTHONPATH=scripts/lib python3 - "$DIR" "$W" "$EVENTS" "$RPID" "$RPORT" "$PARTITIONS" <<'PY'
import json, re, signal, socket, subprocess, sys, time, urllib.request
from datetime import datetime
from bench import cpu
d, workers, events, rpid, rport, partitions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
config = f"{d}/scale-{workers}.toml"
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
def redis_ops():
    out = subprocess.run(["redis-cli", "-p", rport, "info", "stats"], capture_output=True, text=True).stdout
    return int(re.search(r"total_commands_processed:(\d+)", out).group(1))
def get(p, path):
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}{path}", timeout=2))
    except Exception:
        return None
engines = []  # (process, api port, log)
def start(name):
    p = free_port()
    log = f"{d}/{name}.log"
    proc = subprocess.Popen(["target/release/featherflow", "run", "--config", config],
                            env={"RUST_LOG": "info", "PATH": "/usr/bin:/bin", "FEATHERFLOW_API_LISTEN": f"127.0.0.1:{p}"},
                            stderr=open(log, "w"), stdout=subprocess.DEVNULL)
    engines.append((proc, p, log))
    return proc, p
def owned():
    seen = {}
    for proc, p, _ in engines:
        if proc.poll() is None:
            for part in get(p, "/api/partitions") or []:
                seen[part["partition"]] = part["position"]
    return seen
def wait(what, cond, limit=1800):
    t = time.time()
    while not cond():
        if time.time() - t > limit:
            sys.exit(f"{what}: not after {limit} s: {owned()}")
        time.sleep(0.2)
# 1. W engines read the backlog. The clock starts when the first partition is
#    assigned (joining the group takes a few seconds, and is not reading).
for i in range(workers):
    start(f"engine-{workers}-{i + 1}")
wait("a first assignment", lambda: len(owned()) > 0, 120)
t0, ops0, redis0 = time.time(), redis_ops(), cpu(rpid)
cpu0 = sum(cpu(proc.pid) for proc, _, _ in engines)
wait("the backlog read", lambda: len(owned()) == partitions and sum(owned().values()) >= events)
wall = time.time() - t0
ops, redis_cpu = redis_ops() - ops0, cpu(rpid) - redis0
engine_cpu = sum(cpu(proc.pid) for proc, _, _ in engines) - cpu0
print(f"   backlog: {events / wall:,.0f} events/s in total ({wall:.1f} s); engine CPU {engine_cpu:.1f} s = {engine_cpu / events * 1e6:.2f} CPU-s per million events")
print(f"   Redis (one node): {ops / wall:,.0f} commands/s, {redis_cpu:.1f} CPU-s")
# 2. One more engine joins (partitions move to it), then leaves (they move back).
time.sleep(6)  # a checkpoint of the caught-up state (every 5 s)
extra, port = start(f"engine-{workers}-extra")
wait("the extra engine's share", lambda: len(get(port, "/api/partitions") or []) > 0, 120)
time.sleep(6)
extra.send_signal(signal.SIGTERM)
extra.wait(timeout=60)
wait("every partition owned again", lambda: len(owned()) == partitions, 120)
time.sleep(1)
for proc, _, _ in engines:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
for proc, _, _ in engines:
    proc.wait(timeout=60)
# From the logs: each move's pause, each restore's time and size, p99s.
ts = lambda line: datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
revoked, resumed, sizes, restores, p99s = {}, [], {}, [], []
for _, _, log in engines:
    for line in open(log, errors="replace"):
        if "partitions revoked by the group" in line and "lost=false" in line:
            for p in re.search(r"partitions=\[([\d, ]*)\]", line).group(1).split(","):
                if p.strip():
                    revoked.setdefault(int(p), []).append(ts(line))
        elif "partition resumed" in line:
            resumed.append((int(re.search(r"partition=(\d+)", line).group(1)), ts(line)))
        elif "checkpoint complete" in line:
            m = re.search(r"partition-(\d+)/chk-(\d+) size=(\d+)", line)
            if m:
                sizes[(int(m.group(1)), int(m.group(2)))] = int(m.group(3))
        elif "partition started" in line:
            m = re.search(r"partition=(\d+) checkpoint=Some\((\d+)\) restore_ms=([\d.]+)", line)
            if m:
                restores.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
        elif line.startswith("run:"):
            m = re.search(r"p99 ([\d.]+) ms", line)
            if m:
                p99s.append(float(m.group(1)))
pauses = []
for p, t in resumed:
    before = [r for r in revoked.get(p, []) if r <= t]
    if before:
        pauses.append((t - max(before)) * 1000)
pauses.sort()
q = lambda xs, f: xs[min(len(xs) - 1, int(len(xs) * f))] if xs else float("nan")
per_mb = [(ms, sizes[(p, c)]) for p, c, ms in restores if sizes.get((p, c))]
mb = sum(b for _, b in per_mb) / 1e6
print(f"   moves (one engine joining, then leaving): {len(pauses)} partition moves, pause p50 {q(pauses, .5):.0f} ms, p99 {q(pauses, .99):.0f} ms, max {max(pauses, default=float('nan')):.0f} ms")
print(f"   restores: {len(per_mb)} of {mb:.1f} MB in all, {sum(ms for ms, _ in per_mb) / max(mb, 1e-9):.1f} ms per MB")
print(f"   fire-to-Redis p99 per engine: {', '.join(f'{x:.0f} ms' for x in p99s) or 'n/a'}")
PY
  echo "   firing what is still open (run --bounded), then comparing with the replay"
  RUST_LOG=warn target/release/featherflow run --bounded --no-api --config "$DIR/scale-$W.toml" 2>/dev/null
  PYTHONPATH=scripts/lib python3 - "$RPORT" "$W" <<'PY'
import sys
from bench import redis_dump
port, db = int(sys.argv[1]), int(sys.argv[2])
a, b = redis_dump(port, db, drop=("_window_end",)), redis_dump(port, 15)
diff = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]
print(f"   Redis against the replay: {len(b)} keys, {len(diff)} differ" + (f" (e.g. {diff[:3]})" if diff else ""))
sys.exit(1 if diff else 0)
PY
done
