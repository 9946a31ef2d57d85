#!/usr/bin/env bash
# Regenerates the bundled untrained demo model deterministically:
#   resources/models/make_demo_model.sh [path/to/archlens-cli]
# A random-weight Mamba (d_model 128, 4 layers, d_state 16) in Hugging Face layout with a
# byte-level BPE tokenizer trained by our own trainer on resources/samples/corpus.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cli=${1:-$here/../../build/app/archlens-cli}
out=$here/mamba-demo-untrained
rm -rf "$out"
"$cli" init-model --out "$out" --corpus "$here/../samples/corpus.txt" --vocab-size 1024 \
  --d-model 128 --layers 4 --d-state 16 --expand 2 --seed 20261130 --name "mamba-demo"
