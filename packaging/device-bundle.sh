#!/usr/bin/env bash
# Gathers, from this Debian machine, what a GUI-less, HDF5-less build of ArchLens needs and a
# bare GPU machine lacks (it has nvcc, CMake and a compiler, but not Debian's -dev packages),
# into .device-deps/ (git-ignored; about 20 MiB), for packaging/device-check.sh:
#   usr/include, usr/share, usr/lib/...  headers and CMake configs of Eigen, nlohmann-json,
#                                        CLI11, fmt, oniguruma, utf8proc (dpkg -L of their
#                                        -dev packages), with the two C libraries' .so files
#   fmt/                                 a CMake config that makes fmt::fmt header-only
#                                        (FMT_HEADER_ONLY), so no libfmt.so built by this
#                                        machine's GCC meets an older libstdc++ there
#   googletest/                          GoogleTest's sources, built there by its compiler
# Usage: packaging/device-bundle.sh [OUT_DIR]   (default: <repo>/.device-deps)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/.device-deps}
rm -rf "$out"
mkdir -p "$out"

copy_pkg() { # copy every regular file a Debian package installed, keeping its path under $out
  local pkg=$1
  dpkg -L "$pkg" >/dev/null 2>&1 || { echo "device-bundle: package $pkg is not installed" >&2; exit 1; }
  dpkg -L "$pkg" | while read -r f; do
    case "$f" in /usr/share/doc/*|/usr/share/man/*|/usr/share/lintian/*) continue ;; esac
    if [ -f "$f" ] || [ -L "$f" ]; then
      mkdir -p "$out$(dirname "$f")"
      cp -a "$f" "$out$f"
    fi
  done
}

for p in libeigen3-dev nlohmann-json3-dev libcli11-dev libonig-dev libutf8proc-dev libonig5 libutf8proc2; do
  copy_pkg "$p"
done
# fmt: headers only, used header-only through our own config
mkdir -p "$out/usr/include"
cp -a /usr/include/fmt "$out/usr/include/"
fmt_version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")/\1/p' /usr/lib/x86_64-linux-gnu/cmake/fmt/fmt-config-version.cmake)
mkdir -p "$out/fmt"
cat > "$out/fmt/fmt-config.cmake" <<CFG
# written by packaging/device-bundle.sh: fmt ${fmt_version} as a header-only library
if(NOT TARGET fmt::fmt)
  add_library(fmt::fmt INTERFACE IMPORTED)
  set_target_properties(fmt::fmt PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_LIST_DIR}/../usr/include"
    INTERFACE_COMPILE_DEFINITIONS "FMT_HEADER_ONLY=1")
endif()
set(fmt_FOUND TRUE)
CFG
cat > "$out/fmt/fmt-config-version.cmake" <<CFG
set(PACKAGE_VERSION "${fmt_version}")
set(PACKAGE_VERSION_COMPATIBLE TRUE)
if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
CFG
# GoogleTest as sources (the googletest package), built on the device
cp -a /usr/src/googletest "$out/googletest"
# the .pc files say prefix=/usr; device-check.sh points them at the bundle
printf '%s\n' "$(cd "$repo" && git rev-parse HEAD 2>/dev/null || echo unknown)" > "$out/BUNDLED_AT_COMMIT"
size=$(du -sm "$out" | cut -f1)
echo "device-bundle: $out holds ${size} MiB"
if [ "$size" -gt 50 ]; then
  echo "device-bundle: more than 50 MiB, too much to carry" >&2
  exit 1
fi
echo "device-bundle: glibc versions the bundled .so files need (the device must have them):"
objdump -T "$out"/usr/lib/x86_64-linux-gnu/lib{onig,utf8proc}.so.* 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1
