#!/usr/bin/env bash
# The one prepared script for a session on a GPU machine (issue #4): build the CUDA plugin,
# archlens-cli and the backend tests without Qt and HDF5 against packaging/device-bundle.sh's
# .device-deps/, then run, in this order, the cross-backend table, bench scan at the
# mamba-130m shape (T = 8192), mamba-130m decode (F32 and BF16 GEMM weights) and the
# Mixtral-shaped synthetic model when this build has one, then the reference oracle
# (tests/reference/device_oracle.py: our goldens and adapters against the real transformers and
# peft, under $OUT/oracle/). Every step has its own timeout and
# writes its log (and JSON) under $OUT, so a step that fails or runs out of time leaves the
# others' results. Total budget: about 8 minutes on 16 cores, plus about 2 for the oracle.
#
# Usage (repository root): OUT=/some/dir packaging/device-check.sh
#   needs .device-deps/ (run packaging/device-bundle.sh on the Debian machine first and carry it)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
OUT=${OUT:-$repo/device-out}
mkdir -p "$OUT"
deps=$repo/.device-deps
build=${BUILD_DIR:-$repo/build-device}
jobs=$(nproc)
summary=$OUT/summary.txt
: > "$summary"

step() { # step NAME SECONDS command...: runs with a timeout, log in $OUT/NAME.log, result in summary
  local name=$1 secs=$2
  shift 2
  local t0=$(date +%s)
  timeout --kill-after=10 "$secs" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - t0 ))
  local what=ok
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && what="TIMED OUT after ${secs}s"
  [ $rc -ne 0 ] && [ "$what" = ok ] && what="FAILED (exit $rc)"
  printf '%-28s %-22s %4ss\n' "$name" "$what" "$took" | tee -a "$summary"
  return $rc
}

# The reference oracle: tests/reference/device_oracle.py checks every case under
# tests/reference/data, the LoRA goldens, an adapter written by peft (peft_written/) and, with a
# built archlens-cli, an adapter written by our finetune (the in_proj/x_proj/dt_proj/embeddings
# targets PEFT accepts for Mamba) against transformers + peft on the CPU, under $OUT/oracle/.
# Then, with a built tst_peft_written, our loader on peft's adapter. Needs only python3 with
# torch, transformers and peft, so it runs even when the C++ build failed.
run_oracle() {
  mkdir -p "$OUT/oracle"
  local cli_bin=${cli:-} test_bin=${build:-}/tests/reference/tst_peft_written
  local args=()
  if [ -n "$cli_bin" ] && [ -x "$cli_bin" ] && step our-adapter 60 "$cli_bin" finetune \
      --model "$repo/resources/models/mamba-text" --data "$repo/README.md" \
      --targets in_proj,x_proj,dt_proj,embeddings --rank 4 --alpha 8 --rslora --steps 6 --batch 4 --context 32 \
      --lr 1e-2 --threads "$jobs" --out "$OUT/oracle/our_adapter"; then
    args=(--our-adapter "$OUT/oracle/our_adapter" --base "$repo/resources/models/mamba-text")
  fi
  step oracle 120 python3 "$repo/tests/reference/device_oracle.py" --out "$OUT/oracle" ${args[@]+"${args[@]}"}
  tail -1 "$OUT/oracle/oracle.txt" 2>/dev/null | tee -a "$summary"
  if [ -f "$OUT/oracle/peft_written/expected.json" ] && [ -x "$test_bin" ]; then
    step peft-written 60 env ARCHLENS_PEFT_WRITTEN="$OUT/oracle/peft_written" "$test_bin" \
      --gtest_output="xml:$OUT/tst_peft_written.xml"
  else
    echo "peft-written                 SKIPPED: no peft_written/expected.json or no tst_peft_written build" \
      | tee -a "$summary"
  fi
}

# ---- the machine --------------------------------------------------------------------------
{
  date -u
  uname -a
  nvidia-smi 2>&1 || echo "nvidia-smi: not found"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  command -v nvcc && nvcc --version
  cmake --version | head -1
  ${CXX:-c++} --version | head -1
  nproc
  free -g
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  git -C "$repo" log -1 --oneline 2>&1
} > "$OUT/machine.txt" 2>&1

if [ ! -d "$deps" ]; then
  echo "device-check: $deps is missing: run packaging/device-bundle.sh on the build machine and carry .device-deps" | tee -a "$summary"
  jobs=$(nproc) build="" cli=""
  run_oracle
  exit 1
fi
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# the bundled .pc files say prefix=/usr
for pc in "$deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
  sed -i "s|^prefix=.*|prefix=$deps/usr|" "$pc"
done
export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# ---- build ----------------------------------------------------------------------------------
step gtest-build 150 bash -c "cmake -S '$deps/googletest' -B '$deps/gtest-build' ${generator[*]} -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX='$deps/gtest' -DCMAKE_POSITION_INDEPENDENT_CODE=ON && cmake --build '$deps/gtest-build' -j $jobs \
  && cmake --install '$deps/gtest-build'"

step configure 120 cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DARCHLENS_GUI=OFF -DARCHLENS_HDF5=OFF -DARCHLENS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
  "-DCMAKE_PREFIX_PATH=$deps/fmt;$deps/usr;$deps/gtest" || { cli=""; run_oracle; cat "$summary"; exit 1; }

step build 330 cmake --build "$build" -j "$jobs" --target archlens-cli archlens_cuda tst_backend_ops tst_plugin_loader \
  tst_peft_written \
  || { tail -40 "$OUT/build.log"; cli=""; run_oracle; cat "$summary"; exit 1; }

cli=$build/app/archlens-cli
export ARCHLENS_CUDA_PLUGIN=$build/app/libarchlens_cuda.so

# ---- checks, in the issue's order -----------------------------------------------------------
step plugin-loader 60 "$build/tests/core/tst_plugin_loader" --gtest_output="xml:$OUT/tst_plugin_loader.xml"
step backend-ops 150 "$build/tests/core/tst_backend_ops" --gtest_filter='*cuda*' \
  --gtest_output="xml:$OUT/tst_backend_ops.xml"
step info 30 "$cli" info --help
step bench-scan 150 bash -c "'$cli' bench scan --backend cuda --d-inner 1536 --d-state 16 --length 8192 --json \
  > '$OUT/bench-scan.json'"
step bench-scan-cpu 90 bash -c "'$cli' bench scan --backend cpu --d-inner 1536 --d-state 16 --length 2048 --no-reference --json \
  > '$OUT/bench-scan-cpu.json'"
step mamba130m-decode 120 bash -c "'$cli' bench model --synthetic mamba-130m --backend cuda --prompt-length 512 \
  --gen-length 256 --json > '$OUT/bench-mamba130m.json'"
step mamba130m-decode-bf16 120 bash -c "ARCHLENS_CUDA_WEIGHTS=bf16 '$cli' bench model --synthetic mamba-130m \
  --backend cuda --prompt-length 512 --gen-length 256 --json > '$OUT/bench-mamba130m-bf16.json'"
if "$cli" bench model --help 2>&1 | grep -q mixtral; then
  step mixtral-decode 150 bash -c "ARCHLENS_CUDA_WEIGHTS=bf16 '$cli' bench model --synthetic mixtral-8x7b \
    --backend cuda --prompt-length 128 --gen-length 32 --repeats 1 --json > '$OUT/bench-mixtral.json'"
else
  echo "mixtral-decode               SKIPPED: this build has no synthetic mixtral-8x7b" | tee -a "$summary"
fi

run_oracle
echo "device-check: done; logs and JSON in $OUT" | tee -a "$summary"
