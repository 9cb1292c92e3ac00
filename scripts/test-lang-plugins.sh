#!/usr/bin/env bash
# Tests the Python and JavaScript plugin SDKs and the ports of the seed
# plugins:
#
#  1. native unit tests: pytest (guest-features/sdk-python, guest-features/python/*)
#     and `node --test` (guest-features/sdk-js, guest-features/js/*);
#  2. builds the four components (scripts/build-lang-plugins.sh; SKIP_BUILD=1
#     tests what target/lang-plugins already holds);
#  3. each component against the Rust seed plugin it replaces, through
#     `featherflow plugin test --expect` (any difference fails):
#     - host/tests/golden/{semantics,flink_edge_cases}.jsonl against the
#       expected files in the port's testdata/ (written by the Rust plugin;
#       when the Rust plugin is at hand they are checked against it first);
#     - a generated log (`featherflow gen`, 200 000 events, 1 % malformed,
#       1 % late) against the Rust plugin's output, made here;
#     and `featherflow plugin inspect` must print the Rust plugin's declaration.
#
# Needs target/release/featherflow (`make engine`; or FEATHERFLOW=path) and the
# Rust seed components (plugins/*.wasm from `make plugins`, or
# target/wasm32-wasip2/wasm/*.wasm; or RUST_PLUGINS=dir). Ends with
# "lang-plugins: N passed, N failed" and exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
FEATHERFLOW="${FEATHERFLOW:-$ROOT/target/release/featherflow}"
GEN_EVENTS="${GEN_EVENTS:-200000}"
PLUGINS=(user-activity session-stats)
LANGS=(python js)

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL $*" >&2; }

"$ROOT/scripts/plugin-toolchains.sh"

echo "== native unit tests"
if env -u VIRTUAL_ENV PYTHONDONTWRITEBYTECODE=1 "$ROOT/.tools/py/bin/python" -m pytest -q -p no:cacheprovider --import-mode=importlib \
    guest-features/sdk-python/tests guest-features/python/user-activity/tests guest-features/python/session-stats/tests; then
    pass "pytest"
else
    fail "pytest"
fi
if node --test guest-features/sdk-js/test/ guest-features/js/user-activity/test/ guest-features/js/session-stats/test/; then
    pass "node --test"
else
    fail "node --test"
fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building the components"
    "$ROOT/scripts/build-lang-plugins.sh"
fi

echo "== components against the Rust seed plugins"
[[ -x "$FEATHERFLOW" ]] || { echo "test-lang-plugins: no $FEATHERFLOW (run \`make engine\`, or set FEATHERFLOW)" >&2; exit 1; }
rust_plugin() {
    local p=$1 dir
    for dir in ${RUST_PLUGINS:+"$RUST_PLUGINS"} "$ROOT/plugins"; do
        [[ -f "$dir/$p.wasm" ]] && { echo "$dir/$p.wasm"; return; }
    done
    local built="$ROOT/target/wasm32-wasip2/wasm/${p//-/_}.wasm"
    [[ -f "$built" ]] && { echo "$built"; return; }
    echo "test-lang-plugins: no Rust $p component (run \`make plugins\`, or set RUST_PLUGINS)" >&2
    exit 1
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# run LOG COMMAND...: run it with its output in LOG; on failure show LOG and stop.
run() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "test-lang-plugins: failed: $*" >&2; exit 1; }
}
run "$WORK/gen.log" "$FEATHERFLOW" gen --events "$GEN_EVENTS" --users 2000 --malformed 0.01 --late 0.01 --out "$WORK/gen.jsonl"

# `plugin inspect` without the lines that name the file or time the load.
declaration() { "$FEATHERFLOW" plugin inspect "$1" 2>&1 | grep -v -e '^plugin:' -e '^sha256:' -e '^validated:'; }

# plugin_test NAME WASM EVENTS EXPECTED
plugin_test() {
    local name=$1 wasm=$2 events=$3 expected=$4 log="$WORK/log"
    if "$FEATHERFLOW" plugin test "$wasm" --events "$events" --expect "$expected" >"$log" 2>&1; then
        pass "$name: $(grep '^OK: ' "$log" | sed 's/^OK: output matches .* (\(.*\))$/\1 equal/')"
    else
        cat "$log" >&2
        fail "$name"
    fi
}

for p in "${PLUGINS[@]}"; do
    rust="$(rust_plugin "$p")"
    run "$WORK/rust.log" "$FEATHERFLOW" plugin test "$rust" --events "$WORK/gen.jsonl" --out "$WORK/$p.gen.expected.jsonl"
    for golden in semantics flink_edge_cases; do
        run "$WORK/rust.log" "$FEATHERFLOW" plugin test "$rust" --events "host/tests/golden/$golden.jsonl" --out "$WORK/$p.$golden.rust.jsonl"
    done
    rust_decl="$(declaration "$rust")"
    for lang in "${LANGS[@]}"; do
        wasm="target/lang-plugins/$lang/$p.wasm"
        if [[ ! -f "$wasm" ]]; then
            fail "$lang/$p: $wasm not built"
            continue
        fi
        if [[ "$(declaration "$wasm")" == "$rust_decl" ]]; then
            pass "$lang/$p: plugin inspect shows the Rust plugin's declaration"
        else
            diff <(echo "$rust_decl") <(declaration "$wasm") >&2 || true
            fail "$lang/$p: declaration differs from the Rust plugin's"
        fi
        for golden in semantics flink_edge_cases; do
            expected="guest-features/$lang/$p/testdata/$golden.expected.jsonl"
            if ! cmp -s "$expected" "$WORK/$p.$golden.rust.jsonl"; then
                diff "$expected" "$WORK/$p.$golden.rust.jsonl" >&2 || true
                fail "$lang/$p: $expected is not what the Rust plugin writes now (regenerate it)"
            fi
            plugin_test "$lang/$p: $golden.jsonl" "$wasm" "host/tests/golden/$golden.jsonl" "$expected"
        done
        plugin_test "$lang/$p: generated log ($GEN_EVENTS events)" "$wasm" "$WORK/gen.jsonl" "$WORK/$p.gen.expected.jsonl"
    done
done

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "lang-plugins: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
