#!/usr/bin/env bash
# Compare two builds of the engine on the replay benchmark, in the two ways
# that see through a noisy machine (on the 2-core VM this was built on, the
# same binary's events/s varies by up to ±25 % over minutes):
#   paired runs  both builds at the same time, one per core, then the cores
#                swapped; compares user CPU seconds (same load on both)
#   cachegrind   instructions and simulated last-level misses of a shorter
#                replay: deterministic, so a 2 % change shows (needs valgrind;
#                prefetches are not simulated, so misses land on the loads)
# Copy the old binary before rebuilding, then compare:
#   cp target/release/featherflow /tmp/ff-old && <change> && make engine
#   scripts/bench-compare.sh /tmp/ff-old target/release/featherflow [ROUNDS]
# EVENTS, USERS (paired runs, default 10 M / 100 k), CG_EVENTS (cachegrind,
# default 2 M; 0 skips it), PLUGINS (default plugins/).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: scripts/bench-compare.sh OLD_BINARY NEW_BINARY [ROUNDS]}
NEW=${2:?usage: scripts/bench-compare.sh OLD_BINARY NEW_BINARY [ROUNDS]}
ROUNDS=${3:-3}
EVENTS=${EVENTS:-10000000}
USERS=${USERS:-100000}
CG_EVENTS=${CG_EVENTS:-2000000}
PLUGINS=${PLUGINS:-plugins}
[ -x /usr/bin/time ] || { echo "bench-compare: needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/featherflow-compare.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
# Private copies: a rebuild during the comparison must not change them.
cp "$OLD" "$DIR/old" && cp "$NEW" "$DIR/new"

# One run: prints "<user seconds> <checksum>".
run() {
  local bin=$1 core=$2 events=$3
  /usr/bin/time -f "user %U" taskset -c "$core" "$DIR/$bin" bench --events "$events" --users "$USERS" \
    --plugins "$PLUGINS" 2>&1 | awk '/^user /{u=$2} /checksum:/{c=$2} END{print u, c}'
}

# Generate (or reuse) the cached log first: no timed run includes
# generation, and two runs never write it at once.
"$DIR/old" bench --events "$EVENTS" --users "$USERS" --plugins "$PLUGINS" >/dev/null 2>&1
echo "== paired runs: $ROUNDS x 2 pairs, $EVENTS events, $USERS users (user CPU seconds)"
for i in $(seq "$ROUNDS"); do
  for order in "old new" "new old"; do
    set -- $order
    run "$1" 0 "$EVENTS" >"$DIR/c0" &
    run "$2" 1 "$EVENTS" >"$DIR/c1" &
    wait
    printf '%s %s\n%s %s\n' "$1" "$(cat "$DIR/c0")" "$2" "$(cat "$DIR/c1")"
  done
done | awk '
  { t[$1] = t[$1] " " $2; s[$1] += $2; n[$1]++; sum[$1] = $3
    if (NR % 2 == 0) { if (($1 == "new") == ($2 < prev)) faster++; pairs++ } prev = $2 }
  END {
    printf "old: mean %.2f s (%s) checksum %s\n", s["old"] / n["old"], substr(t["old"], 2), sum["old"]
    printf "new: mean %.2f s (%s) checksum %s\n", s["new"] / n["new"], substr(t["new"], 2), sum["new"]
    printf "new faster in %d of %d pairs; change %+.1f %%\n", faster, pairs, 100 * (s["new"] / n["new"] / (s["old"] / n["old"]) - 1)
    if (sum["old"] != sum["new"]) print "CHECKSUMS DIFFER: the builds do not compute the same features"
  }'

if [ "$CG_EVENTS" = 0 ]; then exit 0; fi
if ! command -v valgrind >/dev/null; then
  echo "== cachegrind skipped: install valgrind (apt-get install -y valgrind)"
  exit 0
fi
echo "== cachegrind: $CG_EVENTS events, $USERS users, 4 MiB last level (both at once, ~2 min)"
"$DIR/old" bench --events "$CG_EVENTS" --users "$USERS" --plugins "$PLUGINS" >/dev/null 2>&1
for b in old new; do
  valgrind --tool=cachegrind --cache-sim=yes --LL=4194304,16,64 --cachegrind-out-file=/dev/null \
    "$DIR/$b" bench --events "$CG_EVENTS" --users "$USERS" --plugins "$PLUGINS" >"$DIR/cg-$b" 2>&1 &
done
wait
for b in old new; do
  awk -v b="$b" '/I +refs:/{gsub(",","",$4); i=$4} /LL misses:/{gsub(",","",$4); m=$4} /checksum:/{c=$2}
    END {printf "%s: %.3f G instructions, %.2f M last-level misses, checksum %s\n", b, i / 1e9, m / 1e6, c}' "$DIR/cg-$b"
done
