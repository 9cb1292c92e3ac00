#!/usr/bin/env bash
# Installs the pinned toolchains of Python and JavaScript feature plugins
# into .tools/ (gitignored), idempotently:
#
#   .tools/py   a venv with guest-features/sdk-python/requirements-tools.txt
#               (componentize-py 0.25.1, pytest 8.4.2 and pytest's deps)
#   .tools/js   `npm ci` of guest-features/sdk-js/toolchain/package-lock.json
#               (@bytecodealliance/componentize-js 0.23.0)
#
# Needs python3 (3.11+) with pip, and node (20+) with npm. A step whose pinned
# input has not changed since it last succeeded is skipped (stamp files hold
# the input's hash). Works where `python3 -m venv` lacks ensurepip (Debian
# without python3-venv): the venv is then made without pip and the system's
# pip installs into it.
#
# Prints the paths of the two toolchains. See docs/plugins-python-js.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"
PY_REQS="$ROOT/guest-features/sdk-python/requirements-tools.txt"
JS_LOCK_DIR="$ROOT/guest-features/sdk-js/toolchain"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "plugin-toolchains: $1 not found ($2)" >&2; exit 1; }
}

python_toolchain() {
    need "$PYTHON" "Python 3.11+ with pip is needed for Python plugins"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "plugin-toolchains: $("$PYTHON" --version) is older than 3.11" >&2; exit 1; }
    local venv="$TOOLS/py" stamp="$TOOLS/py/.featherflow-stamp"
    local want
    want="$(hash_of "$PY_REQS") $("$PYTHON" --version 2>&1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/componentize-py" ]]; then
        return
    fi
    echo "plugin-toolchains: installing the Python toolchain into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$TOOLS"
    if [[ -z "${FEATHERFLOW_VENV_WITHOUT_PIP:-}" ]] && "$PYTHON" -m venv "$venv" >/dev/null 2>&1; then
        "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$PY_REQS"
    else
        # No ensurepip: a bare venv, filled by the system pip (pip >= 22.3).
        rm -rf "$venv"
        "$PYTHON" -m venv --without-pip "$venv"
        "$PYTHON" -m pip --python "$venv/bin/python" install --disable-pip-version-check --no-input -q -r "$PY_REQS"
    fi
    "$venv/bin/componentize-py" --version >/dev/null
    echo "$want" > "$stamp"
}

js_toolchain() {
    need node "Node.js 20+ with npm is needed for JavaScript plugins"
    need npm "Node.js 20+ with npm is needed for JavaScript plugins"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' \
        || { echo "plugin-toolchains: node $(node --version) is older than 20" >&2; exit 1; }
    local dir="$TOOLS/js" stamp="$TOOLS/js/.featherflow-stamp"
    local want
    want="$(hash_of "$JS_LOCK_DIR/package.json" "$JS_LOCK_DIR/package-lock.json") $(node --version)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/node_modules/.bin/componentize-js" ]]; then
        return
    fi
    echo "plugin-toolchains: installing the JavaScript toolchain into $dir" >&2
    mkdir -p "$dir"
    rm -rf "$dir/node_modules"
    cp "$JS_LOCK_DIR/package.json" "$JS_LOCK_DIR/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    "$dir/node_modules/.bin/componentize-js" --version >/dev/null
    echo "$want" > "$stamp"
}

python_toolchain
js_toolchain
echo "python: $TOOLS/py ($("$TOOLS/py/bin/componentize-py" --version))"
echo "js:     $TOOLS/js (componentize-js $("$TOOLS/js/node_modules/.bin/componentize-js" --version))"
