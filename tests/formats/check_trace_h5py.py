#!/usr/bin/python3
"""Independent check of the trace schema with h5py, the reader students use.

Usage: check_trace_h5py.py TRACE_FIXTURE_WRITER OUT.h5
Runs the C++ helper to write the fixture trace (tests/formats/trace_fixture.h), then checks
attribute types and values and dataset dtypes, shapes, storage and values. The value formulas
repeat trace_fixture.h. Exit 77 (CTest skip) when h5py or numpy cannot be imported.
"""
import os
import re
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: h5py/numpy not importable ({e}); apt install python3-h5py python3-numpy")
    sys.exit(77)

T, V, E, N, X, K, H = 7, 11, 6, 4, 3, 2, 2
LAYERS = [0, 2]
PREFILL = 5
# Probe enum order in core/probes/probes.h (the fixture's values depend on it).
PROBES = [
    ("ssm", "x"), ("ssm", "delta"), ("ssm", "B"), ("ssm", "C"), ("ssm", "state"),
    ("ssm", "state_norm"), ("ssm", "y"), ("ssm", "gate"),
    ("moe", "router_logits"), ("moe", "router_probs"), ("moe", "topk_experts"),
    ("moe", "topk_weights"), ("moe", "expert_load"), ("moe", "router_entropy"),
    ("moe", "shared_gate"), ("attn", "weights"),
]
ROW_SHAPES = {
    "x": (E,), "delta": (E,), "B": (N,), "C": (N,), "state": (E, N), "state_norm": (E,),
    "y": (E,), "gate": (E,), "router_logits": (X,), "router_probs": (X,),
    "topk_weights": (K,), "router_entropy": (), "shared_gate": (),
}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def probe_values(layer, index, row_shape):
    row = int(np.prod(row_shape)) if row_shape else 1
    t = np.arange(T, dtype=np.float64)[:, None]
    j = np.arange(row, dtype=np.float64)[None, :]
    v = (layer * 1000 + index * 100) + t + j / 64.0
    return v.astype(np.float32).reshape((T,) + row_shape)


def main():
    helper, out = sys.argv[1], sys.argv[2]
    if os.path.exists(out):
        os.remove(out)
    subprocess.run([helper, out], check=True)

    with h5py.File(out, "r") as f:
        a = f.attrs
        expected_str = {
            "model_type": "mamba", "architecture": "MambaForCausalLM", "backend": "cpu",
            "weight_dtype": "F32", "compute_dtype": "F32", "prompt": "Once upon a time, café",
            "model_path": "/models/mamba-tiny", "revision": "0123abcd",
            "created": "2024-05-01T12:00:00Z",
        }
        for name, value in expected_str.items():
            check(isinstance(a.get(name), str), f"attr {name} is {type(a.get(name)).__name__}, want str")
            check(a.get(name) == value, f"attr {name} = {a.get(name)!r}, want {value!r}")
        for name, value in {"schema_version": 1, "prompt_length": PREFILL, "seed": 1234,
                            "kv_cache_bytes_per_token": 0}.items():
            v = a.get(name)
            check(isinstance(v, (int, np.integer)), f"attr {name} is {type(v).__name__}, want int")
            check(v == value, f"attr {name} = {v!r}, want {value}")
        check(isinstance(a.get("temperature"), (float, np.floating)) and a["temperature"] == 0.5,
              f"attr temperature = {a.get('temperature')!r}")
        mixer = [str(s) for s in a.get("layer_mixer", [])]
        check(mixer == ["mamba"] * 3, f"attr layer_mixer = {mixer!r}")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["created"]) is not None, "created not ISO 8601")

        tokens = f["tokens"]
        check(tokens.dtype == np.int32 and tokens.shape == (T,), f"/tokens {tokens.dtype} {tokens.shape}")
        check(list(tokens[()]) == [100 + 3 * t for t in range(T)], f"/tokens values {tokens[()]}")
        check(tokens.maxshape == (None,), f"/tokens maxshape {tokens.maxshape}")

        text = f["token_text"].asstr()[()]
        want_text = ["tok0", "café", "\ufffd"] + [f"tok{t}" for t in range(3, T)]
        check(list(text) == want_text, f"/token_text {list(text)!r}")

        logits = f["logits"]
        check(logits.dtype == np.float32 and logits.shape == (T, V), f"/logits {logits.dtype} {logits.shape}")
        want = (np.arange(T)[:, None] + np.arange(V)[None, :] / 16.0).astype(np.float32)
        check(np.array_equal(logits[()], want), "/logits values")
        check(logits.compression == "gzip" and logits.chunks is not None, "/logits not chunked gzip")
        check(logits.maxshape[0] is None, f"/logits maxshape {logits.maxshape}")

        check(sorted(f["layers"].keys(), key=int) == [str(i) for i in LAYERS], f"layers {list(f['layers'])}")
        for layer in LAYERS:
            base = f"layers/{layer}"
            for index, (group, leaf) in enumerate(PROBES):
                path = f"{base}/{group}/{leaf}"
                if path not in f:
                    check(False, f"{path} missing")
                    continue
                ds = f[path]
                got = ds[()]
                if leaf == "topk_experts":
                    want = ((np.arange(T)[:, None] + np.arange(K)[None, :]) % X).astype(np.int32)
                elif leaf == "expert_load":
                    want = np.array([10_000_000_000 + layer * 10 + x for x in range(X)], dtype=np.int64)
                elif leaf == "weights":
                    h = np.arange(H)[:, None, None]
                    i = np.arange(T)[None, :, None]
                    j = np.arange(T)[None, None, :]
                    want = (layer * 1000 + h * 100 + i + j / 16.0).astype(np.float32)
                else:
                    want = probe_values(layer, index, ROW_SHAPES[leaf])
                check(ds.dtype == want.dtype, f"{path} dtype {ds.dtype}, want {want.dtype}")
                check(ds.shape == want.shape, f"{path} shape {ds.shape}, want {want.shape}")
                check(ds.shape == want.shape and np.array_equal(got, want), f"{path} values")
                check(ds.compression == "gzip", f"{path} compression {ds.compression}")
                if leaf not in ("expert_load", "weights"):
                    check(ds.maxshape[0] is None, f"{path} maxshape {ds.maxshape}")
            A = f[f"{base}/ssm/A"]
            D = f[f"{base}/ssm/D"]
            want_a = (-(np.arange(E * N) + 1) / 8.0).astype(np.float32).reshape(E, N)
            check(A.dtype == np.float32 and np.array_equal(A[()], want_a), f"{base}/ssm/A")
            check(D.dtype == np.float32 and np.array_equal(D[()], (1 + np.arange(E) / 4.0).astype(np.float32)),
                  f"{base}/ssm/D")

    if failures:
        for msg in failures:
            print("FAIL:", msg)
        return 1
    print(f"OK: {out} read by h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
