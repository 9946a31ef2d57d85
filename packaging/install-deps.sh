#!/usr/bin/env bash
# Installs what ArchLens needs on Debian 12. Idempotent: packages already present
# are left alone and apt-get is skipped entirely when nothing is missing.
#
#   packaging/install-deps.sh            runtime + build + test packages (README commands, CI)
#   packaging/install-deps.sh --dev      also developer tools: Debian's python3-torch for
#                                        regenerating the reference goldens (tests/reference)
set -euo pipefail

level=base
for arg in "$@"; do
  case "$arg" in
    --dev) level=dev ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --dev)" >&2; exit 2 ;;
  esac
done

base_pkgs=(
  # build
  build-essential cmake ninja-build pkg-config git
  # libraries (core)
  libeigen3-dev libhdf5-dev nlohmann-json3-dev libfmt-dev libonig-dev libutf8proc-dev libcli11-dev
  # libraries (GUI)
  qt6-base-dev qt6-charts-dev qt6-svg-dev libqt6opengl6-dev qt6-qpa-plugins libgl-dev
  # headless figures need a font; screenshots and the GUI launch under Xvfb
  fonts-dejavu-core xvfb xauth
  # tests: h5py opens our traces as an independent reader
  python3 python3-h5py python3-numpy libgtest-dev
)
dev_pkgs=( python3-torch imagemagick clang-format clang-tidy )

pkgs=("${base_pkgs[@]}")
[ "$level" = dev ] && pkgs+=("${dev_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
