#!/usr/bin/python3
"""Writes every reference checkpoint and golden output under tests/reference/data/: the Mamba-1 cases here,
then the GPT-NeoX / Llama / Mixtral / OLMoE / Qwen2-MoE / Jamba cases (make_goldens_arch.py).

    /usr/bin/python3 tests/reference/make_goldens.py

Deterministic (torch.manual_seed per case, one CPU thread): running it twice gives
byte-identical files. Every case is generated, written in the Hugging Face layout,
read back from disk with an independent loader (mamba_ref.load_checkpoint), run
through the reference, self-checked, and its goldens written.
"""

import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mamba_ref as ref  # noqa: E402
from safetensors_io import tensor_bytes, write_safetensors  # noqa: E402

DATA = os.path.join(HERE, "data")
N_NEW = 8
TOL_F32 = 1e-5      # self-check tolerance (max-abs-error / max-abs-value)
TOL_GOLDEN_F32 = 1e-4
TOL_GOLDEN_BF16 = 2e-2

CASES = [
    dict(name="mamba_f32_tied", seed=1001, D=32, L=2, N=8, K=4, expand=2, R="auto", V=61, T=11,
         use_bias=False, use_conv_bias=True, tied=True, dtype="float32", layout="hf",
         about="HF layout, tied lm_head (omitted on disk), use_bias false, conv bias, time_step_rank \"auto\"."),
    dict(name="mamba_f32_untied_bias", seed=1002, D=24, L=3, N=4, K=3, expand=2, R=5, V=67, T=9,
         use_bias=True, use_conv_bias=True, tied=False, dtype="float32", layout="hf",
         about="HF layout, untied lm_head.weight stored, in/out proj biases, explicit time_step_rank 5, conv_kernel 3."),
    dict(name="mamba_f32_noconvbias", seed=1003, D=16, L=2, N=16, K=2, expand=3, R="auto", V=100, T=13,
         use_bias=False, use_conv_bias=False, tied=True, dtype="float32", layout="hf",
         about="HF layout, use_conv_bias false (no conv1d.bias), expand 3, conv_kernel 2."),
    dict(name="mamba_bf16", seed=1004, D=32, L=2, N=8, K=4, expand=2, R="auto", V=83, T=10,
         use_bias=False, use_conv_bias=True, tied=True, dtype="bfloat16", layout="hf",
         about="HF layout, every tensor stored BF16. Plain goldens: fp32 compute from the bf16 weights. "
               "bf16compute.* goldens: whole model in bf16 as the HF slow path runs it."),
    dict(name="mamba_original_layout", seed=1005, D=32, L=2, N=16, K=4, expand=2, R="auto", V=61, T=12,
         use_bias=False, use_conv_bias=True, tied=True, dtype="float32", layout="original",
         about="Original state-spaces config (d_model/n_layer/ssm_cfg {}, vocab 61 padded to 64), "
               "singular backbone.embedding.weight, lm_head.weight stored (equal to the embedding)."),
    dict(name="mamba_sharded", seed=1006, D=48, L=3, N=8, K=4, expand=2, R="auto", V=71, T=9,
         use_bias=False, use_conv_bias=True, tied=True, dtype="float32", layout="sharded",
         about="HF layout split into model-00001-of-00002 / model-00002-of-00002 with model.safetensors.index.json."),
]


def rel_err(a, b):
    a, b = a.double(), b.double()
    scale = max(float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) / scale


def check(what, a, b, tol, log):
    e = rel_err(a, b)
    log[what] = float("%.3g" % e)
    if not e <= tol:
        raise AssertionError(f"self-check failed: {what}: rel err {e:.3g} > {tol:g}")


# ----------------------------------------------------------------------------- checkpoint synthesis

def dims(c):
    V_rows = c["V"] if c["layout"] != "original" else c["V"] + (-c["V"]) % 8
    R = math.ceil(c["D"] / 16) if c["R"] == "auto" else c["R"]
    return dict(D=c["D"], L=c["L"], N=c["N"], K=c["K"], E=c["expand"] * c["D"], R=R, V_rows=V_rows)


def make_weights(c):
    """Random weights with Mamba-like scales, in fp32 (converted to the storage dtype later)."""
    d = dims(c)
    D, E, N, K, R, V = d["D"], d["E"], d["N"], d["K"], d["R"], d["V_rows"]
    rn = lambda *s: torch.randn(*s, dtype=torch.float32)
    w = {}
    emb_key = "backbone.embedding.weight" if c["layout"] == "original" else "backbone.embeddings.weight"
    w[emb_key] = rn(V, D) * 0.2
    for i in range(c["L"]):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        w[p + "norm.weight"] = 1 + 0.1 * rn(D)
        w[m + "in_proj.weight"] = rn(2 * E, D) / math.sqrt(D)
        if c["use_bias"]:
            w[m + "in_proj.bias"] = 0.1 * rn(2 * E)
        w[m + "conv1d.weight"] = rn(E, 1, K) / math.sqrt(K)
        if c["use_conv_bias"]:
            w[m + "conv1d.bias"] = 0.1 * rn(E)
        w[m + "x_proj.weight"] = rn(R + 2 * N, E) / math.sqrt(E)
        w[m + "dt_proj.weight"] = rn(E, R) / math.sqrt(R)
        # Mamba dt init: dt log-uniform in [1e-3, 1e-1], bias = softplus^-1(dt)
        dt = torch.exp(torch.rand(E) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        w[m + "dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
        # S4D-real init log(1..N) per channel, with a little per-channel jitter so that
        # channel/state index mix-ups change the result
        w[m + "A_log"] = torch.log(torch.arange(1, N + 1, dtype=torch.float32))[None].repeat(E, 1) + 0.05 * rn(E, N)
        w[m + "D"] = 1 + 0.1 * rn(E)
        # 3/sqrt(fan_in): mixer outputs comparable to the residual stream, so that a tied random
        # model does not just echo its input token during greedy generation
        w[m + "out_proj.weight"] = rn(D, E) * 3 / math.sqrt(E)
        if c["use_bias"]:
            w[m + "out_proj.bias"] = 0.1 * rn(D)
    w["backbone.norm_f.weight"] = 1 + 0.1 * rn(D)
    if not c["tied"]:
        w["lm_head.weight"] = rn(V, D) / math.sqrt(D)
    elif c["layout"] == "original":
        w["lm_head.weight"] = w[emb_key].clone()   # the original pickles carry lm_head (shared storage)
    sdt = torch.bfloat16 if c["dtype"] == "bfloat16" else torch.float32
    return {k: v.to(sdt) for k, v in w.items()}


def hf_config(c):
    d = dims(c)
    cfg = {
        "architectures": ["MambaForCausalLM"],
        "bos_token_id": 0,
        "conv_kernel": c["K"],
        "eos_token_id": 0,
        "expand": c["expand"],
        "hidden_act": "silu",
        "hidden_size": c["D"],
        "initializer_range": 0.1,
        "intermediate_size": d["E"],
        "layer_norm_epsilon": 1e-05,
        "model_type": "mamba",
        "num_hidden_layers": c["L"],
        "pad_token_id": 0,
        "rescale_prenorm_residual": False,
        "residual_in_fp32": True,
        "state_size": c["N"],
        "time_step_floor": 0.0001,
        "time_step_init_scheme": "random",
        "time_step_max": 0.1,
        "time_step_min": 0.001,
        "time_step_rank": c["R"],
        "time_step_scale": 1.0,
        "torch_dtype": c["dtype"],
        "transformers_version": "4.46.3",
        "use_bias": c["use_bias"],
        "use_cache": True,
        "use_conv_bias": c["use_conv_bias"],
        "use_mambapy": False,
        "vocab_size": c["V"],
    }
    if not c["tied"]:
        cfg["tie_word_embeddings"] = False
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def original_config(c):
    cfg = {"d_model": c["D"], "n_layer": c["L"], "vocab_size": c["V"], "ssm_cfg": {}, "rms_norm": True,
           "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}
    return json.dumps(cfg)


def write_checkpoint(c, w, out):
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(original_config(c) if c["layout"] == "original" else hf_config(c))
    if c["layout"] != "sharded":
        write_safetensors(os.path.join(out, "model.safetensors"), w)
        return
    # shard 1: embeddings + layers 0..L-2; shard 2: last layer + norm_f (+ lm_head if any)
    last = f"backbone.layers.{c['L'] - 1}."
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [{}, {}]
    for k, v in w.items():
        parts[1 if (k.startswith(last) or k in ("backbone.norm_f.weight", "lm_head.weight")) else 0][k] = v
    wmap, total = {}, 0
    for name, part in zip(names, parts):
        total += write_safetensors(os.path.join(out, name), part)
        for k in part:
            wmap[k] = name
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- one case

def run_case(c):
    torch.manual_seed(c["seed"])
    d = dims(c)
    out = os.path.join(DATA, c["name"])
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    w = make_weights(c)
    ids = torch.randint(0, c["V"], (c["T"],), dtype=torch.int64)   # never a padding row
    write_checkpoint(c, w, out)

    log = {}
    model = ref.load_checkpoint(out)
    cfg = model["cfg"]
    assert (cfg["D"], cfg["L"], cfg["N"], cfg["K"], cfg["E"], cfg["R"], cfg["V"]) == \
        (d["D"], d["L"], d["N"], d["K"], d["E"], d["R"], d["V_rows"]), (cfg, d)
    # round trip: what was loaded is bit-identical to what was generated
    emb_key = "backbone.embedding.weight" if c["layout"] == "original" else "backbone.embeddings.weight"
    assert tensor_bytes(model["emb"]) == tensor_bytes(w[emb_key])
    assert tensor_bytes(model["layers"][-1]["A_log"]) == tensor_bytes(w[f"backbone.layers.{c['L'] - 1}.mixer.A_log"])

    # transformers default torch_dtype=float32: bf16 weights are upcast exactly, compute in fp32
    m32 = ref.cast_model(model, torch.float32)
    logits, probes = ref.forward_full(m32, ids, torch.float32)
    assert logits.shape == (c["T"], d["V_rows"])

    # 1. independent float64 run of the same full path
    logits64, probes64 = ref.forward_full(m32, ids, torch.float64)
    check("full_f32_vs_f64.logits", logits, logits64, TOL_F32, log)
    for i, (p, p64) in enumerate(zip(probes, probes64)):
        for k in ref.PROBES:
            check(f"full_f32_vs_f64.layers.{i}.{k}", p[k], p64[k], TOL_F32, log)

    # 2. closed-form (non-recursive) scan from the recorded Δ, A, B, C, x, D
    for i, p in enumerate(probes):
        st, y = ref.scan_closed_form(p["delta"], p["A"], p["B"], p["C"], p["x"], p["D"])
        check(f"closed_form_scan.layers.{i}.state", p["state"], st, TOL_F32, log)
        check(f"closed_form_scan.layers.{i}.y", p["y"], y, TOL_F32, log)

    # 3. recurrent form from a zero cache reproduces the full-sequence logits, and ends in
    #    the cache that cache_after_prefill derives from the full pass
    cache = ref.init_cache(m32)
    step_logits = torch.stack([ref.step(m32, cache, int(t)) for t in ids])
    check("step_vs_full.logits", step_logits, logits, TOL_F32, log)
    pre = ref.cache_after_prefill(m32, probes)
    for i, (a, b) in enumerate(zip(cache, pre)):
        check(f"step_vs_full.layers.{i}.conv_state", a["conv"], b["conv"], TOL_F32, log)
        check(f"step_vs_full.layers.{i}.ssm_state", a["ssm"], b["ssm"], TOL_F32, log)

    # 4. greedy generation (prefill + step form), cross-checked by a full pass over prompt+generated
    gen, margin = ref.generate_greedy(m32, ids, N_NEW)
    full_ids = torch.cat([ids, torch.tensor(gen[:-1], dtype=torch.int64)])
    lg, _ = ref.forward_full(m32, full_ids, torch.float32)
    assert [int(t) for t in torch.argmax(lg[c["T"] - 1:], dim=-1)] == gen, "generation mismatch vs full pass"
    cache = ref.init_cache(m32)
    st_all = torch.stack([ref.step(m32, cache, int(t)) for t in full_ids])
    check("step_vs_full.generation_logits", st_all, lg, TOL_F32, log)
    assert margin > 1e-3, f"greedy top-1/top-2 margin too small ({margin})"

    golden = {"input_ids": ids.to(torch.int32), "logits": logits.contiguous(),
              "generated_ids": torch.tensor(gen, dtype=torch.int32)}
    for i, p in enumerate(probes):
        for k in ref.PROBES:
            golden[f"layers.{i}.ssm.{k}"] = p[k].contiguous()
        golden[f"layers.{i}.ssm.A"] = p["A"].contiguous()
        golden[f"layers.{i}.ssm.D"] = p["D"].float().contiguous()

    info_extra = {}
    if c["dtype"] == "bfloat16":
        # whole model in bf16 (from_pretrained(torch_dtype=torch.bfloat16)), HF slow-path casts
        lb, pb = ref.forward_full(model, ids, torch.bfloat16)
        golden["bf16compute.logits"] = lb.contiguous()
        for i, p in enumerate(pb):
            for k in ref.PROBES:
                golden[f"bf16compute.layers.{i}.ssm.{k}"] = p[k].contiguous()
        info_extra["bf16compute_vs_f32_logits_rel_err"] = float("%.3g" % rel_err(lb, logits))

    write_safetensors(os.path.join(out, "golden.safetensors"), golden)

    info = {
        "case": c["name"],
        "description": c["about"],
        "layout": c["layout"],
        "dtype": c["dtype"],
        "dims": {"d_model": d["D"], "n_layers": d["L"], "d_state": d["N"], "d_conv": d["K"],
                 "d_inner": d["E"], "dt_rank": d["R"], "vocab_size_config": c["V"], "vocab_rows": d["V_rows"]},
        "T": c["T"],
        "n_generated": N_NEW,
        "tied": c["tied"],
        "use_bias": c["use_bias"],
        "use_conv_bias": c["use_conv_bias"],
        "lm_head_on_disk": (not c["tied"]) or c["layout"] == "original",
        "input_ids": [int(t) for t in ids],
        "generated_ids": gen,
        "greedy_min_top2_margin": float("%.3g" % margin),
        "tolerance": {"f32": TOL_GOLDEN_F32, "bf16compute": TOL_GOLDEN_BF16,
                      "metric": "max|ours - golden| / max|golden| per tensor"},
        "golden_tensors": sorted(golden),
        "self_check_rel_err_max": float("%.3g" % max(log.values())),
    }
    info.update(info_extra)
    with open(os.path.join(out, "golden.json"), "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    return info


def main():
    import make_goldens_arch
    torch.set_num_threads(1)
    os.makedirs(DATA, exist_ok=True)
    for c in CASES:
        info = run_case(c)
        dd = info["dims"]
        print(f"{c['name']:24s} D={dd['d_model']} L={dd['n_layers']} N={dd['d_state']} K={dd['d_conv']} "
              f"E={dd['d_inner']} R={dd['dt_rank']} V={dd['vocab_rows']} T={info['T']} "
              f"gen={info['generated_ids']} selfcheck<= {info['self_check_rel_err_max']:.2g}"
              + (f" bf16vsf32={info['bf16compute_vs_f32_logits_rel_err']}" if "bf16compute_vs_f32_logits_rel_err" in info else ""))
    make_goldens_arch.main()


if __name__ == "__main__":
    main()
