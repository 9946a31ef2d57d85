#!/usr/bin/env python3
"""An independent reader's view of a CLI trace: h5py opens what `archlens-cli trace` wrote
for a reference checkpoint, and every dataset is compared with the PyTorch reference's
goldens (read with a few lines of numpy here, no code shared with the C++).

usage: check_cli_trace_h5py.py ARCHLENS_CLI CASE_DIR OUT.h5     (exit 77 = skipped)
"""
import os
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # Debian: apt install python3-h5py
    print(f"SKIP: h5py/numpy not importable ({e})")
    sys.exit(77)



def read_safetensors(path):
    """Minimal numpy reader for the goldens (F32/I32 only); torch is not needed."""
    import json
    import struct
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    kinds = {"F32": "<f4", "I32": "<i4", "I64": "<i8"}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype=kinds[e["dtype"]]).reshape(e["shape"])
    return out


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)


def main():
    cli, case, out = sys.argv[1:4]
    golden = read_safetensors(os.path.join(case, "golden.safetensors"))
    ids = np.asarray(golden["input_ids"]).astype(np.int64).ravel()
    subprocess.run([cli, "trace", "--model", case, "--tokens", ",".join(map(str, ids)), "--out", out,
                    "--backend", "cpu"], check=True)
    failures = []
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert int(a["schema_version"]) == 1
        assert a["backend"] == "cpu" and a["prompt"] == "" and int(a["seed"]) == -1
        assert int(a["prompt_length"]) == len(ids)
        assert f["tokens"].dtype == np.int32 and list(f["tokens"][...]) == list(ids)
        assert f["logits"].dtype == np.float32
        e = rel_err(f["logits"][...], golden["logits"])
        if e > 1e-4:
            failures.append(f"logits {e:.3g}")
        layers = sorted(int(k) for k in f["layers"].keys())
        compared = 0
        for name, want in golden.items():
            if not name.startswith("layers."):
                continue
            path = name.replace(".", "/")
            if path.endswith("attn/weights"):
                continue  # quadratic: not part of --probes all
            if path not in f:
                failures.append(f"{path} missing")
                continue
            got = f[path][...]
            if want.dtype.kind == "i":
                if got.dtype != want.dtype or not np.array_equal(got.reshape(want.shape), want):
                    failures.append(f"{path} differs")
            else:
                e = rel_err(got.reshape(want.shape), want)
                if e > 1e-4:
                    failures.append(f"{path} {e:.3g}")
            compared += 1
        if "load_balancing_loss" in golden:
            want = float(golden["load_balancing_loss"])
            got = float(a["load_balancing_loss"])
            if abs(got - want) > 1e-4 * abs(want):
                failures.append(f"load_balancing_loss {got} vs {want}")
        if compared == 0:
            failures.append("no layer dataset compared")
    if failures:
        print("FAIL:", "; ".join(failures))
        sys.exit(1)
    print(f"h5py: {os.path.basename(case)} trace matches the reference ({len(layers)} layers)")


if __name__ == "__main__":
    main()
