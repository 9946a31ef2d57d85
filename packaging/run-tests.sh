#!/usr/bin/env bash
# Builds ArchLens and runs the whole test suite (every CTest label but `slow`).
# Installs what it needs first (packaging/install-deps.sh, idempotent).
#   packaging/run-tests.sh                 # build in ./build, run the suite
#   packaging/run-tests.sh -L reference    # extra arguments go to ctest
# Environment: as packaging/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/packaging/build.sh"
cd "${ARCHLENS_BUILD_DIR:-$root/build}"
# UI tests draw offscreen; no display is needed.
QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j "${ARCHLENS_JOBS:-$(nproc)}" -LE slow "$@"
