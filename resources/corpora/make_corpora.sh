#!/bin/sh
# Assembles the multi-domain sample corpus from texts that Debian 12 packages ship and whose
# licences allow redistribution (provenance and licence of every part: README.md here). Each
# domain is split by lines into train.txt (the first 90 %) and heldout.txt (the last 10 %), so
# the held-out text is a contiguous stretch the training part never contains.
# Usage: resources/corpora/make_corpora.sh   (deterministic for the same package versions)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# man page -> plain UTF-8 text, 80 columns, the 7-space body indent removed
render_man() { zcat "$1" | groff -k -man -Tutf8 -P-c -rLL=80n 2>/dev/null | col -bx | sed 's/^       //'; }
# info manual -> text without the node separators
render_info() { for f in "$@"; do zcat "$f"; done | tr -d '\037\010'; }

# prose (English): GNU manuals, GFDL 1.3, no invariant sections
render_info /usr/share/info/coreutils.info.gz /usr/share/info/grep.info.gz /usr/share/info/diffutils.info.gz \
    /usr/share/info/find.info.gz /usr/share/info/find.info-1.gz /usr/share/info/find.info-2.gz \
    /usr/share/info/sed.info.gz > "$tmp/prose-en"

# source code: Python standard library modules (PSF-2.0) and zlib.h (Zlib)
: > "$tmp/code"
printf '/* ---- zlib.h ---- */\n' >> "$tmp/code"
cat /usr/include/zlib.h >> "$tmp/code"
for m in textwrap heapq bisect fractions statistics difflib argparse calendar csv shlex string \
         json/decoder json/encoder json/scanner json/__init__ graphlib ipaddress colorsys dataclasses \
         functools enum pprint gettext getopt tokenize ast base64 uuid random typing inspect pathlib \
         subprocess logging/__init__ tarfile zipfile; do
    printf '# ---- Lib/%s.py ----\n' "$m" >> "$tmp/code"
    cat "/usr/lib/python3.11/$m.py" >> "$tmp/code"
done

# numbers and tables: the tz database (public domain), distro-info data (ISC), X11 rgb.txt (MIT/X11)
: > "$tmp/numbers"
for f in /usr/share/zoneinfo/tzdata.zi /usr/share/zoneinfo/zone1970.tab /usr/share/zoneinfo/zone.tab \
         /usr/share/zoneinfo/iso3166.tab /usr/share/zoneinfo/leap-seconds.list /usr/share/distro-info/debian.csv \
         /usr/share/distro-info/ubuntu.csv /usr/share/X11/rgb.txt; do
    printf '# ---- %s ----\n' "$(basename "$f")" >> "$tmp/numbers"
    cat "$f" >> "$tmp/numbers"
done

# German, French and Spanish: the dpkg, apt, man-db, procps and psmisc manual pages
# (translations under GPL-2+; procps: GPL-2+)
for lang in de fr es; do
    : > "$tmp/$lang"
    for pkg in dpkg apt man-db procps psmisc; do
        dpkg -L "$pkg" | grep -E "^/usr/share/man/$lang/man[1-8]/.*\.gz$" | LC_ALL=C sort | while read -r page; do
            render_man "$page" >> "$tmp/$lang"
        done
    done
done

mkdir -p "$here/licenses"
cp /usr/share/common-licenses/GPL-2 /usr/share/common-licenses/GFDL-1.3 "$here/licenses/"
cp /usr/lib/python3.11/LICENSE.txt "$here/licenses/PSF-2.0-python3.11.txt"
# each source package's Debian copyright file, as shipped
for pkg in coreutils grep diffutils findutils sed python3.11 zlib1g-dev tzdata distro-info-data x11-common \
           dpkg apt man-db procps psmisc; do
    cp "/usr/share/doc/$pkg/copyright" "$here/licenses/copyright-$pkg"
done
sed -n '/Copyright (C) 1995/,/madler@alumni.caltech.edu/p' /usr/include/zlib.h > "$here/licenses/Zlib.txt"

for domain in prose-en code numbers de fr es; do
    mkdir -p "$here/$domain"
    n=$(wc -l < "$tmp/$domain")
    cut=$((n * 9 / 10))
    head -n "$cut" "$tmp/$domain" > "$here/$domain/train.txt"
    tail -n +"$((cut + 1))" "$tmp/$domain" > "$here/$domain/heldout.txt"
    printf '%-9s %8d lines  train %8d bytes  held-out %7d bytes\n' "$domain" "$n" \
        "$(wc -c < "$here/$domain/train.txt")" "$(wc -c < "$here/$domain/heldout.txt")"
done
