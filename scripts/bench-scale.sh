#!/usr/bin/env bash
# Scale-out benchmark (not a test): 1, 2 and 3 engines in one consumer group
# (kafka.assignment = "group", checkpoints in a file:// store) read the same
# EVENTS events from a topic of PARTITIONS partitions; the engines start
# STAGGER seconds apart, so partitions move while they work. For each round:
# events/s in total and engine CPU-s per million events (all engines), the
# pause of each partition that moved (from its release by the old owner to
# its resumption by the new one: p50/p99/max), restore time per MB of state,
# fire-to-Redis p99, and Redis operations per second. On 2 cores the point is
# the cost of a move and that nothing is lost, not a linear speed-up: the
# round ends by comparing Redis with `featherflow replay` of the same events.
#   EVENTS=1000000 USERS=100000 PARTITIONS=6 WORKERS="1 2 3" scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
USERS=${USERS:-100000}
PARTITIONS=${PARTITIONS:-6}
WORKERS=${WORKERS:-1 2 3}
STAGGER=${STAGGER:-3}
scripts/deps.sh >/dev/null
make -s engine plugins >/dev/null

DIR=$(mktemp -d /tmp/featherflow-scale.XXXXXX)
. scripts/lib/services.sh
start_services
trap 'kill $RPID $KPID 2>/dev/null; pkill -f "featherflow run --config $DIR" 2>/dev/null || true; rm -rf "$DIR"' EXIT

echo "== generating $EVENTS events ($USERS users, 2000 ev/s of event time, 0-9 s out of order); reference: featherflow replay into Redis db 15"
target/release/featherflow gen --events "$EVENTS" --users "$USERS" --event-rate 2000 --out "$DIR/events.jsonl"
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
  echo "== $W engine(s), $PARTITIONS partitions, started ${STAGGER}s apart"
  PYTHONPATH=scripts/lib python3 - "$DIR" "$W" "$STAGGER" "$EVENTS" "$RPID" "$RPORT" "$PARTITIONS" <<'PY'
import json, os, re, signal, subprocess, sys, time, urllib.request
from datetime import datetime
from bench import cpu
d, workers, stagger, events, rpid, rport, partitions = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
config = f"{d}/scale-{workers}.toml"
def port():
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
def redis_ops():
    out = subprocess.run(["redis-cli", "-p", rport, "info", "stats"], capture_output=True, text=True).stdout
    return int(re.search(r"total_commands_processed:(\d+)", out).group(1))
def get(p, path):
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}{path}", timeout=2))
    except Exception:
        return None
procs, ports, logs = [], [], []
t0, ops0, redis0 = time.time(), redis_ops(), cpu(rpid)
for i in range(workers):
    if i:
        time.sleep(stagger)
    p = port()
    log = f"{d}/worker-{workers}-{i + 1}.log"
    procs.append(subprocess.Popen(["target/release/featherflow", "run", "--config", config],
                                  env={"RUST_LOG": "info", "PATH": "/usr/bin:/bin", "FEATHERFLOW_API_LISTEN": f"127.0.0.1:{p}"},
                                  stderr=open(log, "w"), stdout=subprocess.DEVNULL))
    ports.append(p); logs.append(log)
# Done when every partition is owned and every event read (the positions:
# the test broker reports end offsets short after a batched produce).
while True:
    time.sleep(0.5)
    seen = {}
    for p in ports:
        for part in get(p, "/api/partitions") or []:
            seen[part["partition"]] = part["position"]
    if len(seen) == partitions and sum(seen.values()) >= events:
        break
    if time.time() - t0 > 1800:
        sys.exit(f"not done after 30 minutes: {seen}")
wall = time.time() - t0
ops, redis_cpu = redis_ops() - ops0, cpu(rpid) - redis0
engine_cpu = sum(cpu(p.pid) for p in procs)
for p in procs:
    p.send_signal(signal.SIGTERM)
for p in procs:
    p.wait(timeout=60)
# From the logs: each move's pause, each restore's time and size.
ts = lambda line: datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
revoked, resumed, sizes, restores, p99s = {}, [], {}, [], []
for log in logs:
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
        elif "partition started" in line and "restore_ms=" in line:
            m = re.search(r"partition=(\d+) checkpoint=Some\((\d+)\) restore_ms=Some\((\d+)\)", line)
            if m:
                restores.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
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
per_mb = [ms / (sizes[(p, c)] / 1e6) for p, c, ms in restores if sizes.get((p, c))]
print(f"   {events / wall:,.0f} events/s in total ({wall:.1f} s); engine CPU {engine_cpu:.1f} s = {engine_cpu / events * 1e6:.2f} CPU-s per million events")
print(f"   partition moves: {len(pauses)}, pause p50 {q(pauses, .5):.0f} ms, p99 {q(pauses, .99):.0f} ms, max {max(pauses, default=float('nan')):.0f} ms")
print(f"   restores: {len(restores)}, {sum(per_mb) / max(len(per_mb), 1):.1f} ms per MB of state (mean)")
print(f"   fire-to-Redis p99 per engine: {', '.join(f'{x:.0f} ms' for x in p99s) or 'n/a'}")
print(f"   Redis (one node): {ops / wall:,.0f} commands/s, {redis_cpu:.1f} CPU-s")
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
