#!/bin/sh
# Retakes the README's screenshots under Xvfb, on the bundled trained models.
# usage: docs/screenshots/take.sh BUILD_DIR   (Xvfb on :99 started if none runs)
# (finetune.png is taken by the Fine-tune page's own run: see README, "Fine-tune with LoRA".)
set -eu
build=${1:?usage: take.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pgrep -x Xvfb >/dev/null || { Xvfb :99 -screen 0 1400x900x24 & sleep 1; }
export DISPLAY=${DISPLAY:-:99}
# a fresh settings folder: saved layouts of earlier sessions do not leak into the pictures
export XDG_CONFIG_HOME="$tmp/config"
app="$build/app/archlens"
m="$root/resources/models"
c="$root/resources/corpora"
prose="The grep command searches the named input files for lines containing a match to the given pattern."
"$app" "$m/mamba-text" --prompt "$prose" --token 12 --screenshot "$here/main-window.png"
"$app" "$m/mamba-text" --prompt "$prose" --token 12 --raise dock.stepper --screenshot "$here/scan-stepper.png"
"$app" "$m/mamba-text" --prompt "$prose" --generate 200 --raise dock.horizon --screenshot "$here/memory-horizon.png"
"$app" "$m/mamba-text" --prompt "$prose" --token 12 --raise dock.channels --screenshot "$here/channel-charts.png"
"$app" "$m/mamba-selective-copy" --prompt "....a.......b.........c....d.....e........f.......g......h......|" \
    --generate 8 --screenshot "$here/selective-copy.png"
mixed="def count(words): return len(words)  # Die Datei wird gelesen. 2024-05-01, 17.5"
"$app" "$m/mixtral-text-moe" --prompt "$mixed" --view router --layer 1 --token 9 --screenshot "$here/moe-router.png"
"$app" "$m/mixtral-text-moe" --prompt "$mixed" --view expert-load --layer 1 \
    --corpus "$c/code/heldout.txt" --corpus "$c/de/heldout.txt" --screenshot "$here/moe-expert-load.png"
"$app" "$m/mixtral-text-moe" --prompt "$mixed" --view expert-path --screenshot "$here/moe-expert-path.png"
"$app" "$m/jamba-text" --prompt "$prose" --view layer-map --token 12 --screenshot "$here/hybrid-layer-map.png"
"$app" "$m/llama-text" --prompt "$prose" --view attention --layer 1 --token 12 --screenshot "$here/attention.png"
"$app" "$m/mamba-text" --prompt "$prose" --view hidden-attention --layer 2 --token 12 \
    --screenshot "$here/hidden-attention.png"
"$app" "$m/mamba-text" --prompt "$prose" --compare-model "$m/llama-text" --compare-view attention --layer 2 \
    --token 12 --screenshot "$here/hidden-vs-attention.png"
# last: --dark is remembered in the settings for the runs after it
"$app" "$m/mamba-text" --prompt "$prose" --token 12 --dark --screenshot "$here/dark.png"
echo "screenshots in $here"
