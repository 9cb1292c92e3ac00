#!/usr/bin/env bash
# Bring featherflow up with everything around it: a Kafka-protocol broker,
# Redis, the engine and an event generator. Stop it all with ./stop.sh.
#
#   ./start.sh            Docker if an engine answers (docker compose up -d --build), else local
#   ./start.sh --local    local processes under data/run/, even when Docker is there
#   ./start.sh --docker   Docker only; fail when no Docker engine answers
#   ./start.sh --workers N   local: N engines in the consumer group, sharing the
#                         partitions; APIs on 8081..8080+N (default 1; Docker runs two)
#
# Local mode runs redis-server and tansu (a Kafka-API broker, in-memory storage)
# from scripts/deps.sh, builds with `make build`, and keeps pid files and logs
# in data/run/. Ports: FEATHERFLOW_REDIS_PORT (6379) and FEATHERFLOW_KAFKA_PORT
# (9092). FEATHERFLOW_WAIT_SECONDS (60): how long to wait for the first features.
set -euo pipefail
cd "$(dirname "$0")"

mode=auto
WORKERS=1
usage() { echo "usage: $0 [--local|--docker] [--workers N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --local) mode=local ;;
    --docker) mode=docker ;;
    --workers)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "start.sh: --workers takes a number of engines (1 or more)" >&2; usage; }
      WORKERS=$2; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
  shift
done
[ "$WORKERS" -gt 1 ] && [ "$mode" = auto ] && mode=local

REDIS_PORT="${FEATHERFLOW_REDIS_PORT:-6379}"
KAFKA_PORT="${FEATHERFLOW_KAFKA_PORT:-9092}"
WAIT_SECONDS="${FEATHERFLOW_WAIT_SECONDS:-60}"
# These are start.sh's own settings, not engine configuration: the engine
# reads every FEATHERFLOW_<SECTION>_<KEY> variable and rejects unknown keys.
unset FEATHERFLOW_REDIS_PORT FEATHERFLOW_KAFKA_PORT FEATHERFLOW_WAIT_SECONDS

# ---------------------------------------------------------------- Docker ------
docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if [ "$mode" = docker ] || { [ "$mode" = auto ] && docker_ok; }; then
  docker_ok || { echo "start.sh: no Docker engine answers (docker info failed)" >&2; exit 1; }
  docker compose up -d --build
  cat <<'EOF'

featherflow is up (docker compose). Features appear within a minute or two:
  Kafka UI          http://localhost:8080   (topic ecommerce-events)
  dashboard / API   http://localhost:8081   (JSON: /api/overview, /api/partitions, /api/checkpoints)
  Kafka from host   localhost:29092
  features          docker compose exec redis redis-cli hgetall user_features:1
                    docker compose exec redis redis-cli --scan --pattern 'user_features:*'
                    docker compose exec redis redis-cli --scan --pattern 'session_features:*'
  engine log        docker compose logs -f featherflow
  checkpoints       curl -s http://localhost:8081/api/checkpoints
Stop with ./stop.sh (docker compose down; volumes are kept).
EOF
  exit 0
fi

# ---------------------------------------------------------------- local -------
RUN=data/run
BIN=target/release/featherflow
TOPIC=ecommerce-events

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

fail() {
  echo "start.sh: $*" >&2
  for name in redis tansu "${ENGINES[@]}" generator; do
    if [ -s "$RUN/$name.log" ] && ! alive "$name" && [ -f "$RUN/$name.pid" ]; then
      echo "--- last lines of $RUN/$name.log:" >&2
      tail -n 15 "$RUN/$name.log" >&2
    fi
  done
  echo "start.sh: stopping what was started" >&2
  ./stop.sh --local >&2 || true
  exit 1
}
trap 'fail "failed at line $LINENO"' ERR

# The engines: engine, engine-2, ..., engine-N.
ENGINES=(engine)
for ((i = 2; i <= WORKERS; i++)); do ENGINES+=("engine-$i"); done

mkdir -p "$RUN"
for name in redis tansu engine engine-{2..64} generator; do
  if alive "$name"; then
    trap - ERR
    echo "start.sh: already running ($name, pid $(cat "$RUN/$name.pid")); run ./stop.sh first" >&2
    exit 1
  fi
  rm -f "$RUN/$name.pid"
done
for p in "$REDIS_PORT:redis (FEATHERFLOW_REDIS_PORT)" "$KAFKA_PORT:Kafka (FEATHERFLOW_KAFKA_PORT)"; do
  if port_open "${p%%:*}"; then
    trap - ERR
    echo "start.sh: something already answers on 127.0.0.1:${p%%:*}, the ${p#*:} port." >&2
    echo "start.sh: it is left alone; stop it or choose another port, e.g. FEATHERFLOW_REDIS_PORT=16380 FEATHERFLOW_KAFKA_PORT=19093 ./start.sh" >&2
    exit 1
  fi
done

echo "== dependencies and build (scripts/deps.sh, make build)"
scripts/deps.sh
make --no-print-directory build
TOOLS="${FEATHERFLOW_TOOLS:-.tools}"   # where deps.sh put tansu
unset FEATHERFLOW_TOOLS                 # not an engine key either

# The local broker and Redis keep nothing across restarts, so the checkpoints
# of an earlier run point at offsets and outputs that no longer exist.
if [ -d data/checkpoints ]; then
  rm -rf data/checkpoints.previous
  mv data/checkpoints data/checkpoints.previous
  echo "== moved the checkpoints of an earlier run to data/checkpoints.previous (the local broker and Redis start empty)"
fi

# Each service gets its own session (setsid): Ctrl-C or a closed terminal does
# not reach it; only ./stop.sh does. $! is the service's own pid.
launch() { # name log command...
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_for() { # what seconds test...
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "$what did not come up within ${secs}s"
}

echo "== redis-server on 127.0.0.1:$REDIS_PORT"
launch redis "$RUN/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
  --save '' --appendonly no --daemonize no
wait_for "redis-server" 10 bash -c "redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG"

echo "== tansu broker on 127.0.0.1:$KAFKA_PORT (memory storage)"
launch tansu "$RUN/tansu.log" "$TOOLS/tansu" broker \
  --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --storage-engine memory://tansu/ --silent
wait_for "tansu" 10 port_open "$KAFKA_PORT"

echo "== topic $TOPIC (4 partitions)"
"$TOOLS/tansu" topic create "$TOPIC" --partitions 4 --broker "tcp://127.0.0.1:$KAFKA_PORT" >"$RUN/topic.log" 2>&1 \
  || fail "creating topic $TOPIC failed: $(cat "$RUN/topic.log")"

cat >"$RUN/featherflow.toml" <<EOF
# Written by start.sh for the local stack; keys: README.md, "Configuration".
[kafka]
brokers = "127.0.0.1:$KAFKA_PORT"
topic = "$TOPIC"

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"

[checkpoint]
dir = "data/checkpoints"

[plugins]
dir = "plugins"

[output]
dead-letter = "data/dead-letter.jsonl"
EOF
# The engines form one consumer group (kafka.assignment = "group", the
# default); each partition's checkpoints go to data/checkpoints/partition-N.
cat >>"$RUN/featherflow.toml" <<EOF

[kafka.properties]
# The local broker (tansu): a join otherwise waits half the default session timeout.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
EOF
printf 'REDIS_PORT=%s\nKAFKA_PORT=%s\n' "$REDIS_PORT" "$KAFKA_PORT" >"$RUN/ports"

for ((i = 1; i <= WORKERS; i++)); do
  name=${ENGINES[i - 1]}
  echo "== $name: $BIN run --config $RUN/featherflow.toml (API on 127.0.0.1:$((8080 + i)))"
  FEATHERFLOW_API_LISTEN="127.0.0.1:$((8080 + i))" launch "$name" "$RUN/$name.log" "$BIN" run --config "$RUN/featherflow.toml"
done
sleep 2
for name in "${ENGINES[@]}"; do alive "$name" || fail "$name exited"; done

# --rate: events per second of wall time; --event-rate: events per second of
# event time. Event time advances rate/event-rate = 50 s per wall-clock second,
# so a 10-minute slice passes in 12 s and windows fire within a minute; with an
# event every ~100 s of event time per user, some users pause for longer than
# the 10-minute session gap, so sessions close too.
echo "== generator: 500 events/s, event time 50x the wall clock, 1000 users"
launch generator "$RUN/generator.log" "$BIN" produce --brokers "127.0.0.1:$KAFKA_PORT" --topic "$TOPIC" \
  --rate 500 --event-rate 10 --count 100000000 --users 1000

echo "== waiting up to ${WAIT_SECONDS}s for the first features in Redis"
t1=$SECONDS
first=""
while [ $((SECONDS - t1)) -lt "$WAIT_SECONDS" ]; do
  for name in "${ENGINES[@]}"; do alive "$name" || fail "$name exited"; done
  alive generator || fail "the generator exited"
  first=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'user_features:*' 2>/dev/null | head -n 1 || true)
  [ -n "$first" ] && break
  sleep 1
done
trap - ERR

rc="redis-cli"
[ "$REDIS_PORT" = 6379 ] || rc="redis-cli -p $REDIS_PORT"
if [ -n "$first" ]; then
  echo "first features after $((SECONDS - t1))s (${SECONDS}s in all): $first"
  redis-cli -p "$REDIS_PORT" hgetall "$first" | paste - - | sed 's/^/    /'
else
  echo "no features yet after ${WAIT_SECONDS}s; everything still runs (see $RUN/engine.log)"
fi
cat <<EOF

featherflow runs locally (pids and logs in $RUN/):
  features      $rc hgetall user_features:1
                $rc --scan --pattern 'user_features:*' | head
                $rc --scan --pattern 'session_features:*' | head
  logs          $RUN/engine*.log  $RUN/generator.log  $RUN/tansu.log  $RUN/redis.log
  dashboard     http://127.0.0.1:8081/   (JSON: /api/overview, /api/partitions, /api/checkpoints)
  checkpoints   curl -s http://127.0.0.1:8081/api/checkpoints
                $BIN checkpoints list --config $RUN/featherflow.toml   (every partition's, also while the engines run)
  Kafka         127.0.0.1:$KAFKA_PORT (tansu, in memory), topic $TOPIC
Stop with ./stop.sh
EOF
