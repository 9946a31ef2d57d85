"""Independent reference for Mamba's hidden attention (Ali, Zimerman & Wolf 2024, "The Hidden
Attention of Mamba Models"), computed from the Mamba goldens' recorded delta, B, C and A.

For channel c and s <= t:
    alpha_c[t, s] = sum_n C_t[n] * exp(A[c, n] * sum_{r=s+1..t} delta_r[c]) * delta_s[c] * B_s[n]
the weight of the scan input x_s[c] (after conv + SiLU) in y_t[c], without the D skip and the
gate. Here the decay is the exponential of a *sum* of steps (a cumulative sum difference), in
float64, where the C++ (core/analysis/hidden_attention) multiplies per-step decays: the two
share no code and no formula shape. Self-check: sum_s alpha_c[t, s] x_s[c] == y_t[c] - D[c] x_t[c]
against the golden y, before anything is written.

Writes data/hidden_attention/golden.safetensors with, per case and layer,
  <case>.layers.<i>.alpha  float32 [E, T, T]  (zero above the diagonal)
Run: /usr/bin/python3 tests/reference/hidden_attention_ref.py  (deterministic, < 1 s)
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ["mamba_f32_tied", "mamba_f32_untied_bias"]


def hidden_attention(delta, B, C, A):
    """delta (T, E), B (T, N), C (T, N), A (E, N), all float64 -> alpha (E, T, T)."""
    T, E = delta.shape
    cum = torch.cumsum(delta, dim=0)                        # (T, E): sum_{r<=t} delta_r
    seg = cum[:, None, :] - cum[None, :, :]                 # (t, s, E): sum_{r=s+1..t} delta_r
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    seg = torch.where(causal[:, :, None], seg, torch.zeros_like(seg))
    decay = torch.exp(seg[:, :, :, None] * A[None, None, :, :])   # (t, s, E, N)
    w = torch.einsum("tn,tsen,se,sn->ets", C, decay, delta, B)    # (E, t, s)
    return w * causal[None, :, :]


def main():
    out = {}
    for case in CASES:
        g = read_safetensors(os.path.join(HERE, "data", case, "golden.safetensors"))
        layer = 0
        while f"layers.{layer}.ssm.delta" in g:
            p = lambda name: g[f"layers.{layer}.ssm.{name}"].to(torch.float64)  # noqa: E731
            delta, B, C, A, x, y, D = p("delta"), p("B"), p("C"), p("A"), p("x"), p("y"), p("D")
            alpha = hidden_attention(delta, B, C, A)
            recon = torch.einsum("ets,se->te", alpha, x)
            want = y - D[None, :] * x
            err = (recon - want).abs().max().item() / max(want.abs().max().item(), 1e-30)
            if err > 1e-4:
                raise SystemExit(f"{case} layer {layer}: sum_s alpha x_s misses y - D x by {err:.3g}")
            out[f"{case}.layers.{layer}.alpha"] = alpha.to(torch.float32).contiguous()
            print(f"{case} layer {layer}: alpha {tuple(alpha.shape)}, reconstruction error {err:.2e}")
            layer += 1
    os.makedirs(os.path.join(HERE, "data", "hidden_attention"), exist_ok=True)
    write_safetensors(os.path.join(HERE, "data", "hidden_attention", "golden.safetensors"), out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
