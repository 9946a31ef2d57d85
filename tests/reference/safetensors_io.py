"""Minimal safetensors reader/writer for the reference scripts (struct + json only).

Independent of the C++ code base and of the `safetensors` Python package.
Writer layout (matches the reference Rust writer for single-alignment files):
  - tensors sorted by element size, largest first (I64/F64, then F32/I32, then
    F16/BF16, then BOOL), then by name; so every tensor starts at a multiple of its
    element size. Files with one element size (all Mamba files) are simply sorted by name,
  - header JSON compact, "__metadata__" first, {"format": "pt"},
  - header right-padded with spaces to a multiple of 8 bytes.
"""

import json
import struct

import numpy as np
import torch

_NP_DTYPE = {"F32": "<f4", "I32": "<i4", "I64": "<i8", "F64": "<f8", "BF16": "<i2", "F16": "<f2", "BOOL": "|b1"}
_TORCH_TO_ST = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64",
                torch.float64: "F64", torch.bfloat16: "BF16", torch.float16: "F16", torch.bool: "BOOL"}
_BYTES = {"F32": 4, "I32": 4, "I64": 8, "F64": 8, "BF16": 2, "F16": 2, "BOOL": 1}


def tensor_bytes(t):
    """Raw little-endian row-major bytes of a tensor."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    st = _TORCH_TO_ST[t.dtype]
    return t.numpy().astype(_NP_DTYPE[st]).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor. Returns total data bytes."""
    if metadata is None:
        metadata = {"format": "pt"}
    names = sorted(tensors, key=lambda n: (-_BYTES[_TORCH_TO_ST[tensors[n].dtype]], n))
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in names:
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (8 - len(hjson) % 8) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return offset


def read_safetensors(path):
    """Returns dict name -> torch.Tensor (BF16 kept as torch.bfloat16). Validates
    the layout rules (contiguous, fully covered, sizes consistent)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("header too small")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("invalid header length")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    buf = data[8 + n:]
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    expect = 0
    out = {}
    for name, e in entries:
        b, end = e["data_offsets"]
        if b != expect or end < b:
            raise ValueError("invalid offset for " + name)
        count = 1
        for d in e["shape"]:
            count *= d
        if (end - b) != count * _BYTES[e["dtype"]]:
            raise ValueError("invalid shape, data type, or offset for " + name)
        arr = np.frombuffer(buf[b:end], dtype=_NP_DTYPE[e["dtype"]]).copy()
        t = torch.from_numpy(arr)
        if e["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t.reshape(e["shape"])
        expect = end
    if expect != len(buf):
        raise ValueError("incomplete metadata, file not fully covered")
    return out
