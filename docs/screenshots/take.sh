#!/bin/sh
# Retakes the routing and attention screenshots of the README under Xvfb.
# usage: docs/screenshots/take.sh BUILD_DIR   (Xvfb on :99 started if none runs)
set -eu
build=${1:?usage: take.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
models=$(mktemp -d)
trap 'rm -rf "$models"' EXIT
python3 "$here/make_models.py" "$models" >/dev/null
pgrep -x Xvfb >/dev/null || { Xvfb :99 -screen 0 1400x900x24 & sleep 1; }
export DISPLAY=${DISPLAY:-:99}
# a fresh settings folder: saved layouts of earlier sessions do not leak into the pictures
export XDG_CONFIG_HOME="$models/config"
app="$build/app/archlens"
prompt="The river ran past the old mill, and the miller counted the sacks twice."
demo="$root/resources/models/mamba-text"
"$app" "$models/tiny-mixtral" --prompt "$prompt" --generate 8 --view router --layer 1 --token 9 \
    --screenshot "$here/moe-router.png"
"$app" "$models/tiny-mixtral" --prompt "$prompt" --view expert-load --layer 1 \
    --corpus "$root/resources/corpora/prose-en/heldout.txt" --corpus "$root/resources/corpora/code/heldout.txt" \
    --screenshot "$here/moe-expert-load.png"
"$app" "$models/tiny-mixtral" --prompt "$prompt" --view expert-path --screenshot "$here/moe-expert-path.png"
"$app" "$models/tiny-jamba" --prompt "$prompt" --view layer-map --token 12 --screenshot "$here/hybrid-layer-map.png"
"$app" "$models/tiny-jamba" --prompt "$prompt" --view attention --layer 1 --token 12 \
    --screenshot "$here/attention.png"
"$app" "$demo" --prompt "$prompt" --view hidden-attention --layer 2 --token 12 \
    --screenshot "$here/hidden-attention.png"
"$app" "$demo" --prompt "$prompt" --compare-model "$models/tiny-neox" --compare-view attention --layer 2 --token 12 \
    --screenshot "$here/hidden-vs-attention.png"
echo "screenshots in $here"
