#!/usr/bin/env bash
# Builds ArchLens and runs the whole test suite (every CTest label but `slow`).
# Installs what it needs first (packaging/install-deps.sh, idempotent).
#   packaging/run-tests.sh                 # build in ./build, run the suite
#   packaging/run-tests.sh -L reference    # extra arguments go to ctest
# Environment: ARCHLENS_BUILD_DIR (default ./build), ARCHLENS_CMAKE_ARGS (extra configure
# options, e.g. -DARCHLENS_WERROR=ON), ARCHLENS_JOBS (build parallelism, default nproc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ARCHLENS_BUILD_DIR:-$root/build}
jobs=${ARCHLENS_JOBS:-$(nproc)}

"$root/packaging/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${ARCHLENS_CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
cd "$build"
# UI tests draw offscreen; no display is needed.
QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j "$jobs" -LE slow "$@"
