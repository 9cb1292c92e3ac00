#!/usr/bin/env bash
# End-to-end benchmark of `featherflow run`: Kafka (tansu) -> windows -> Wasm
# -> Redis, on this machine (broker and Redis share the cores with the engine).
# Prints events/s, fire-to-Redis latency (p50, p99, max), checkpoint pause and
# duration, the engine's own CPU time per million events and peak RSS, the
# same for `featherflow replay` of the same events (and the run/replay CPU
# ratio), the replay again writing to Redis (to split run's extra cost into
# the Kafka source's and the Redis sink's), and Redis's CPU time; for each
# of them the engine's CPU time per thread (featherflow = the event loop,
# redis-writer = the Redis sink, sink-writer = replay's JSON lines,
# rdk:broker = librdkafka fetching from the broker).
#   EVENTS=3000000 USERS=100000 scripts/bench-run.sh
#   PERF=/tmp/run.perf scripts/bench-run.sh   # also records a perf profile of `run`
#   PERF_LIVE=/tmp/live.perf scripts/bench-run.sh   # ... of `run` in the live phase
#   KEEP_NEWEST=true scripts/bench-run.sh   # redis.keep-newest (the write script)
#   REDIS_WRITE=restore scripts/bench-run.sh   # redis.write (one RESTORE per key)
#   BIN=/tmp/featherflow-old scripts/bench-run.sh   # another build of the engine (paired runs)
# Then a live phase (LIVE_SECONDS=0 skips it): `run` keeps up with a producer
# sending LIVE_RATE events/s whose event time goes 30x the wall clock, so a
# 10-minute slide comes every 20 s and fires a window for every user at once;
# it prints the fire-to-Redis latency of that steady state.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-3000000}
USERS=${USERS:-100000}
INTERVAL=${INTERVAL:-5s}
LIVE_SECONDS=${LIVE_SECONDS:-70}
LIVE_RATE=${LIVE_RATE:-20000}
LIVE_EVENT_RATE=$((LIVE_RATE / 30))
# The engine binary (another build, for paired runs; default: this tree's).
export BIN=${BIN:-target/release/featherflow}

. scripts/lib/services.sh
bench_setup bench
trap 'kill $RPID $KPID 2>/dev/null; rm -rf "$DIR"' EXIT
create_topic ecommerce-events 4

echo "== generating and producing $EVENTS events ($USERS users, 2000 ev/s of event time, 0-9 s out of order)"
"$BIN" gen --events "$EVENTS" --users "$USERS" --event-rate 2000 --out "$DIR/events.jsonl"
"$BIN" produce --brokers "127.0.0.1:$KPORT" --from-file "$DIR/events.jsonl" 2>&1 | tail -1

cat >"$DIR/ff.toml" <<TOML
[kafka]
# One engine core over every partition (scripts/bench-scale.sh measures groups).
assignment = "static"
brokers = "127.0.0.1:$KPORT"
[redis]
url = "redis://127.0.0.1:$RPORT/0"
batch = ${REDIS_BATCH:-512}
keep-newest = ${KEEP_NEWEST:-false}
write = "${REDIS_WRITE:-hset}"
[checkpoint]
dir = "$DIR/checkpoints"
interval = "$INTERVAL"
[plugins]
dir = "plugins"
[output]
dead-letter = ""
TOML

echo "== featherflow run --bounded, then featherflow replay of the same events"
PYTHONPATH=scripts/lib python3 - "$DIR/ff.toml" "$DIR/events.jsonl" "$RPID" "$RPORT" <<'PY'
import os, resource, subprocess, sys, re
config, events_file, rpid, rport = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
from bench import redis_info, per_key, cpu, run_sampling_threads, threads_line
redis_cpu = lambda: cpu(rpid)
def measure(args):
    """(completed process, CPU seconds, peak RSS KiB, CPU seconds per thread name)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, err, seen = run_sampling_threads(args, {"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return subprocess.CompletedProcess(args, code, None, err), cpu, after.ru_maxrss, seen
r0, i0 = redis_cpu(), redis_info(rport)
perf = ["perf", "record", "-F", "499", "-g", "-o", os.environ["PERF"], "--"] if os.environ.get("PERF") else []
p, run_cpu, rss, run_threads = measure(perf + [os.environ["BIN"], "run", "--bounded", "--no-api", "--config", config])
redis, i1 = redis_cpu() - r0, redis_info(rport)
line = [l for l in p.stderr.splitlines() if l.startswith("run:")]
print(line[-1] if line else p.stderr[-2000:])
if p.returncode != 0:
    sys.exit(p.returncode)
events = int(re.search(r"run: (\d+) events", line[-1]).group(1))
print(f"run:    engine CPU {run_cpu:.2f} s = {run_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events; peak RSS {rss / 1024:.0f} MiB; Redis CPU {redis:.2f} s ({redis / max(events, 1) * 1e6:.2f} s per million events)")
print(f"        Redis: {per_key(redis, i0, i1)}")
if not perf:
    # featherflow: the event loop; redis-writer: the Redis sink; rdk:*: librdkafka (rdk:broker fetches)
    print(f"        engine threads: {threads_line(run_threads)}")
p, replay_cpu, _, replay_threads = measure([os.environ["BIN"], "replay", "--events", events_file, "--plugins", "plugins",
                            "--out", "/dev/null", "--dead-letter", ""])
print(f"replay: engine CPU {replay_cpu:.2f} s = {replay_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events (same events, JSON lines to /dev/null)")
print(f"        engine threads: {threads_line(replay_threads)}")
print(f"run / replay CPU per event: {run_cpu / max(replay_cpu, 1e-9):.2f}x")
# The same replay writing to Redis (database 2) as run does: what run costs
# beyond it is the Kafka source's; what it costs beyond the replay above is
# the Redis sink's.
subprocess.run(["redis-cli", "-p", rport, "-n", "2", "flushdb"], stdout=subprocess.DEVNULL, check=True)
p, to_redis_cpu, _, to_redis_threads = measure([os.environ["BIN"], "replay", "--events", events_file, "--plugins", "plugins",
                              "--redis", f"redis://127.0.0.1:{rport}/2", "--dead-letter", ""])
print(f"replay --redis: engine CPU {to_redis_cpu:.2f} s = {to_redis_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events"
      f" (run / this {run_cpu / max(to_redis_cpu, 1e-9):.2f}x: the Kafka source's share; this / replay"
      f" {to_redis_cpu / max(replay_cpu, 1e-9):.2f}x: the Redis sink's)")
print(f"        engine threads: {threads_line(to_redis_threads)}")
sys.exit(p.returncode)
PY
echo "== Redis: $(redis-cli -p "$RPORT" dbsize) keys"

if [ "$LIVE_SECONDS" -gt 0 ]; then
  echo "== live: $LIVE_RATE events/s for ${LIVE_SECONDS}s, $USERS users, event time 30x the wall clock (a slide every 20 s)"
  create_topic live-events 4
  "$BIN" gen --events $((LIVE_RATE * LIVE_SECONDS)) --users "$USERS" --event-rate "$LIVE_EVENT_RATE" \
    --out "$DIR/live.jsonl" >/dev/null
  sed -e 's/^brokers = .*/&\ntopic = "live-events"/' -e "s#^url = .*#url = \"redis://127.0.0.1:$RPORT/1\"#" \
    -e "s#^dir = \"$DIR/checkpoints\"#dir = \"$DIR/live-checkpoints\"#" "$DIR/ff.toml" >"$DIR/live.toml"
  PYTHONPATH=scripts/lib python3 - "$DIR/live.toml" "$DIR/live.jsonl" "$KPORT" "$LIVE_RATE" "$RPID" "$RPORT" "$KPID" <<'PY'
import os, re, resource, signal, subprocess, sys, time
config, events, kport, rate, rpid, rport, kpid = sys.argv[1:]
from bench import redis_info, per_key, cpu, threads, threads_line
redis_cpu = lambda: cpu(rpid)
env = {"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"}
engine = subprocess.Popen([os.environ["BIN"], "run", "--no-api", "--config", config],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
time.sleep(2)
perf = None
if os.environ.get("PERF_LIVE"):
    perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", os.environ["PERF_LIVE"], "-p", str(engine.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r0, i0, k0, t0 = redis_cpu(), redis_info(rport), cpu(kpid), time.time()
subprocess.run([os.environ["BIN"], "produce", "--brokers", f"127.0.0.1:{kport}", "--topic", "live-events",
                "--from-file", events, "--rate", rate], stderr=subprocess.DEVNULL, env=env, check=True)
time.sleep(3)
redis, i1, broker, wall = redis_cpu() - r0, redis_info(rport), cpu(kpid) - k0, time.time() - t0
engine_cpu, engine_threads = cpu(engine.pid), threads(engine.pid)
if perf:
    perf.send_signal(signal.SIGINT)
    perf.wait()
engine.send_signal(signal.SIGTERM)
_, err = engine.communicate(timeout=60)
line = [l for l in err.splitlines() if l.startswith("run:")]
print(line[-1] if line else err[-2000:])
events = int(re.search(r"run: (\d+) events", line[-1]).group(1)) if line else 0
print(f"live:   engine CPU {engine_cpu:.2f} s = {engine_cpu / max(events, 1) * 1e6:.2f} CPU-s per million events; Redis CPU {redis:.2f} s ({redis / max(events, 1) * 1e6:.2f} s per million events)")
print(f"        engine threads: {threads_line(engine_threads, engine_cpu)}")
print(f"        Redis: {per_key(redis, i0, i1)}")
print(f"        the broker (tansu) used {broker / wall * 100:.0f} % of a core meanwhile")
PY
fi
