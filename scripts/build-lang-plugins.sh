#!/usr/bin/env bash
# Builds the Python and JavaScript ports of the seed plugins into
#
#   target/lang-plugins/python/{user-activity,session-stats}.wasm   (componentize-py)
#   target/lang-plugins/js/{user-activity,session-stats}.wasm       (componentize-js)
#
# with the pinned toolchains of scripts/plugin-toolchains.sh (run first).
# Needs only python3 (3.11+) with pip and node (20+) with npm; no cargo.
# Usage: scripts/build-lang-plugins.sh [python|js]...   (default: both)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/plugin-toolchains.sh" >/dev/null

OUT="$ROOT/target/lang-plugins"
PLUGINS=(user-activity session-stats)
LANGS=("$@")
[[ ${#LANGS[@]} -gt 0 ]] || LANGS=(python js)

build_python() {
    local p=$1 out="$OUT/python/$1.wasm"
    # The app module is `app`; the plugin's directory and the SDK are its path.
    # VIRTUAL_ENV would add the toolchain's site-packages to that path.
    env -u VIRTUAL_ENV PYTHONDONTWRITEBYTECODE=1 "$ROOT/.tools/py/bin/componentize-py" -q -d wit -w feature componentize \
        -p "guest-features/python/$p" -p guest-features/sdk-python app -o "$out.tmp"
    mv "$out.tmp" "$out"
    # componentize-py's CPython leaves .pyc files beside the sources.
    find "guest-features/python/$p" guest-features/sdk-python -name __pycache__ -type d -prune -exec rm -rf {} +
}

build_js() {
    local p=$1 out="$OUT/js/$1.wasm"
    # Run from the repository root: componentize-js maps the working directory
    # into the build, so the entry module can import ../../sdk-js/src. The host
    # links no wasi:http, so the http and fetch-event features are left out.
    "$ROOT/.tools/js/node_modules/.bin/componentize-js" -w wit -n feature -d http -d fetch-event \
        -o "$out.tmp" "guest-features/js/$p/app.js" >/dev/null
    mv "$out.tmp" "$out"
}

for lang in "${LANGS[@]}"; do
    case "$lang" in
        python | js) ;;
        *) echo "build-lang-plugins: unknown language $lang (python or js)" >&2; exit 2 ;;
    esac
    mkdir -p "$OUT/$lang"
    for p in "${PLUGINS[@]}"; do
        start=$(date +%s.%N)
        "build_$lang" "$p"
        awk -v f="target/lang-plugins/$lang/$p.wasm" -v b="$(stat -c %s "$OUT/$lang/$p.wasm")" -v s="$start" -v e="$(date +%s.%N)" \
            'BEGIN { printf "built %-40s %6.1f MB in %4.1f s\n", f, b / 1e6, e - s }'
    done
done
