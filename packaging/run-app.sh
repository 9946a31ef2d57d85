#!/usr/bin/env bash
# Builds ArchLens and launches the GUI on the bundled default model.
# Installs what it needs first (packaging/install-deps.sh, idempotent).
#   packaging/run-app.sh                  # the bundled mamba-text model
#   packaging/run-app.sh /path/to/model   # any Hugging Face model folder
# Without a display (no $DISPLAY or $WAYLAND_DISPLAY) it runs under Xvfb and saves a
# screenshot to ./archlens-screenshot.png instead. Environment: as packaging/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/packaging/build.sh" archlens archlens-cli
app=${ARCHLENS_BUILD_DIR:-$root/build}/app/archlens

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "run-app: no display; running under Xvfb and saving archlens-screenshot.png" >&2
  exec xvfb-run -a -s "-screen 0 1400x900x24" "$app" \
    --prompt "The state h evolves token by token." --screenshot "$PWD/archlens-screenshot.png" "$@"
fi
exec "$app" "$@"
