#!/usr/bin/env python3
"""Tiny checkpoints with real text for the README screenshots.

The reference cases in tests/reference/data (random Mixtral, Jamba, GPT-NeoX weights) have no
tokenizer. This writes copies whose embedding and LM head are widened to the bundled demo
model's tokenizer (rows past the original vocabulary drawn from a fixed-seed generator), with
that tokenizer.json, so they read a text prompt and share a tokenizer with the Mamba demo model
(the compare dock puts their attention next to its hidden attention). The weights are random:
the screenshots show the machinery, not learned behaviour.

usage: make_models.py OUT_DIR   (writes OUT_DIR/{tiny-mixtral,tiny-jamba,tiny-neox})
"""
import json
import random
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources/models/mamba-text"
CASES = {"tiny-mixtral": "mixtral", "tiny-jamba": "jamba", "tiny-neox": "neox_sequential"}
SIZES = {"F32": ("f", 4), "F16": ("e", 2)}


def read_safetensors(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], body[b:e])
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def widen(dtype, shape, raw, vocab, rng):
    fmt, size = SIZES[dtype]
    rows, cols = shape
    extra = [(rng.random() - 0.5) * 0.2 for _ in range((vocab - rows) * cols)]
    return [vocab, cols], raw + struct.pack("<%d%s" % (len(extra), fmt), *extra)


def main():
    out = Path(sys.argv[1])
    vocab = json.loads((DEMO / "config.json").read_text())["vocab_size"]
    for name, case in CASES.items():
        src = ROOT / "tests/reference/data" / case
        dst = out / name
        dst.mkdir(parents=True, exist_ok=True)
        cfg = json.loads((src / "config.json").read_text())
        old = cfg["vocab_size"]
        cfg["vocab_size"] = vocab
        (dst / "config.json").write_text(json.dumps(cfg, indent=2))
        rng = random.Random(12345)
        tensors = read_safetensors(src / "model.safetensors")
        for t, (dtype, shape, raw) in list(tensors.items()):
            if len(shape) == 2 and shape[0] == old:
                shape, raw = widen(dtype, shape, raw, vocab, rng)
                tensors[t] = (dtype, shape, raw)
        write_safetensors(dst / "model.safetensors", tensors)
        shutil.copy(DEMO / "tokenizer.json", dst / "tokenizer.json")
        print(dst)


if __name__ == "__main__":
    main()
