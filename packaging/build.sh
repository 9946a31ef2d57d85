#!/usr/bin/env bash
# Installs the dependencies (idempotent), configures and builds ArchLens.
#   packaging/build.sh [TARGET ...]     (no targets: everything)
# Environment: ARCHLENS_BUILD_DIR (default ./build), ARCHLENS_CMAKE_ARGS (extra configure
# options, e.g. -DARCHLENS_WERROR=ON), ARCHLENS_JOBS (build parallelism, default nproc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ARCHLENS_BUILD_DIR:-$root/build}
jobs=${ARCHLENS_JOBS:-$(nproc)}

"$root/packaging/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${ARCHLENS_CMAKE_ARGS:-}
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build" -j "$jobs" "${targets[@]}"
