#!/usr/bin/env bash
# Builds ArchLens and launches the GUI on the bundled default model.
# Installs what it needs first (packaging/install-deps.sh, idempotent).
#   packaging/run-app.sh                  # the bundled demo model
#   packaging/run-app.sh /path/to/model   # any Hugging Face model folder
# Without a display (no $DISPLAY or $WAYLAND_DISPLAY) it runs under Xvfb and saves a
# screenshot to ./archlens-screenshot.png instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ARCHLENS_BUILD_DIR:-$root/build}
jobs=${ARCHLENS_JOBS:-$(nproc)}

"$root/packaging/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${ARCHLENS_CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs" --target archlens archlens-cli

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "run-app: no display; running under Xvfb and saving archlens-screenshot.png" >&2
  exec xvfb-run -a -s "-screen 0 1400x900x24" "$build/app/archlens" \
    --prompt "The state h evolves token by token." --screenshot "$PWD/archlens-screenshot.png" "$@"
fi
exec "$build/app/archlens" "$@"
