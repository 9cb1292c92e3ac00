# Services for the benchmark scripts (sourced): a Redis and a tansu broker on
# free loopback ports, logging into $DIR.
#   bench_setup NAME  deps, the engine and plugins built, DIR a fresh
#                     /tmp/featherflow-NAME.XXXXXX, and start_services
#   start_services    sets RPORT/RPID (redis-server) and KPORT/KPID (tansu)
# TANSU (default .tools/tansu) and TANSU_STORAGE (default memory://tansu/)
# choose the broker.

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

start_redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >>"$DIR/redis.log" 2>&1 &
  RPID=$!
}

start_broker() {
  "${TANSU:-.tools/tansu}" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
    --storage-engine "${TANSU_STORAGE:-memory://tansu/}" --silent >>"$DIR/tansu.log" 2>&1 &
  KPID=$!
}

start_services() {
  RPORT=$(free_port)
  KPORT=$(free_port)
  start_redis
  start_broker
  sleep 0.5
}

create_topic() { # name partitions
  "${TANSU:-.tools/tansu}" topic create "$1" --partitions "$2" --broker "tcp://127.0.0.1:$KPORT" >/dev/null
}

bench_setup() { # name
  scripts/deps.sh >/dev/null
  make -s engine plugins >/dev/null
  DIR=$(mktemp -d "/tmp/featherflow-$1.XXXXXX")
  start_services
}
