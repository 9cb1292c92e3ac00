#!/usr/bin/env bash
# Stop what ./start.sh started, and nothing else.
#
#   ./stop.sh            the local processes of data/run/*.pid if there are any,
#                        else `docker compose down` when a Docker engine answers
#   ./stop.sh --local    only the local processes
#   ./stop.sh --docker   only `docker compose down` (volumes are kept)
#
# Local: SIGTERM to each process in turn (generator, engine, broker, Redis),
# waiting up to 15 s for each (the engine takes a final checkpoint on SIGTERM,
# so it stops before the broker and Redis it needs for that); SIGKILL only for
# a process still there after 15 s. A pid is signalled only while it still
# runs the program start.sh started under it.
set -euo pipefail
cd "$(dirname "$0")"

mode=auto
case "${1:-}" in
  "") ;;
  --local) mode=local ;;
  --docker) mode=docker ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--local|--docker]" >&2; exit 2 ;;
esac

RUN=data/run
# The engines of ./start.sh --workers N are engine, engine-2, ..., engine-N.
ENGINES=()
for f in "$RUN"/engine*.pid; do [ -e "$f" ] && ENGINES+=("$(basename "$f" .pid)"); done
ORDER=(generator "${ENGINES[@]}" tansu redis)

expected() { # what start.sh ran under each name
  case $1 in
    generator) echo "featherflow produce" ;;
    engine*) echo "featherflow run" ;;
    tansu) echo "tansu broker" ;;
    redis) echo "redis-server" ;;
  esac
}

ours() { # name pid: the pid still runs what start.sh started under that name
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$(expected "$1")"* ]]
}

stop_local() {
  local name pid i
  for name in "${ORDER[@]}"; do
    [ -f "$RUN/$name.pid" ] || continue
    pid=$(cat "$RUN/$name.pid")
    if [[ $pid =~ ^[0-9]+$ ]] && ours "$name" "$pid"; then
      printf 'stopping %-9s (pid %s) ' "$name" "$pid"
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 150; i++)); do
        ours "$name" "$pid" || break
        sleep 0.1
      done
      if ours "$name" "$pid"; then
        echo "still running after 15s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      else
        echo "stopped in $((i / 10)).$((i % 10))s"
      fi
    else
      echo "$name: not running (stale pid file)"
    fi
    rm -f "$RUN/$name.pid"
  done
}

have_pids() { compgen -G "$RUN/*.pid" >/dev/null; }
docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

case $mode in
  local) stop_local ;;
  docker) docker compose down ;;
  auto)
    if have_pids; then
      stop_local
    elif docker_ok; then
      docker compose down
    else
      echo "nothing to stop (no pid files in $RUN/, no Docker engine)"
    fi
    ;;
esac
