#!/usr/bin/python3
"""Writes the GPT-NeoX / Llama / Mixtral / OLMoE / Qwen2-MoE / Jamba reference checkpoints and goldens
under tests/reference/data/. Called by make_goldens.py (the one regeneration command); can also be run
alone, optionally with case names:

    /usr/bin/python3 tests/reference/make_goldens_arch.py [case ...]

Deterministic (torch.manual_seed per case, one CPU thread). Each case is synthesised in the Hugging Face
layout, read back from disk with transformer_ref.load_checkpoint / jamba_ref.load_checkpoint, run through
the reference, self-checked, and its goldens written.
"""

import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import transformer_ref as tr  # noqa: E402
from safetensors_io import read_safetensors, tensor_bytes, write_safetensors  # noqa: E402

DATA = os.path.join(HERE, "data")
N_NEW = 8
TOL_F32 = 1e-5          # self-check tolerance (max-abs-error / max-abs-value)
TOL_GOLDEN_F32 = 1e-4
TOL_GOLDEN_BF16 = 2e-2
MIN_ROUTING_GAP = 1e-3  # between consecutive sorted router probabilities, first k+1
MIN_GREEDY_MARGIN = 1e-2
TF_VERSION = "4.46.3"

# Common case keys: name, seed, arch, D, L, H, Hkv, V, T, I, dtype, tied; arch-specific extras below.
CASES = [
    dict(name="llama_gqa", seed=2001, arch="llama", D=32, L=2, H=4, Hkv=2, V=97, T=12, I=64, dtype="float32",
         tied=False, about="Llama, GQA (4 query heads, 2 kv heads), untied lm_head, rope_theta 10000, no rope_scaling."),
    dict(name="llama_bf16", seed=2003, arch="llama", D=32, L=2, H=4, Hkv=4, V=83, T=10, I=64, dtype="bfloat16",
         tied=False, about="Llama, every tensor BF16 on disk. Plain goldens: fp32 compute from the bf16 weights; "
                           "bf16compute.logits: whole model in bf16 (HF eager numerics)."),
    dict(name="llama_tied", seed=2007, arch="llama", D=32, L=2, H=4, Hkv=1, V=61, T=9, I=48, dtype="float32",
         tied=True, emb_std=0.3, about="Llama, tie_word_embeddings true (no lm_head.weight on disk), multi-query (1 kv head)."),
    dict(name="llama_rope_linear", seed=2005, arch="llama", D=32, L=2, H=2, Hkv=2, V=71, T=12, I=64, dtype="float32",
         tied=False, max_pos=8, rope_scaling={"factor": 2.0, "rope_type": "linear", "type": "linear"},
         about="Llama, rope_scaling linear (factor 2), head_dim 16, max_position_embeddings 8 < T."),
    dict(name="llama_rope_dynamic", seed=2015, arch="llama", D=32, L=2, H=2, Hkv=2, V=73, T=13, I=64, dtype="float32",
         tied=False, max_pos=8, rope_scaling={"factor": 2.0, "rope_type": "dynamic", "type": "dynamic"},
         about="Llama, rope_scaling dynamic NTK (factor 2), max_position_embeddings 8 < T = 13: the full-sequence "
               "goldens use the base rescaled for seq_len 13; generation follows transformers (each new token "
               "at position p is rotated with the base for seq_len p+1, cached keys keep their rotation)."),
    dict(name="llama_rope_llama3", seed=2006, arch="llama", D=32, L=2, H=2, Hkv=2, V=79, T=14, I=64, dtype="float32",
         tied=False, max_pos=48, rope_theta=10000.0,
         rope_scaling={"factor": 4.0, "high_freq_factor": 1.5, "low_freq_factor": 0.5,
                       "original_max_position_embeddings": 12, "rope_type": "llama3"},
         about="Llama, rope_scaling llama3 (factor 4, low 0.5, high 1.5, original_max_position_embeddings 12 < T): "
               "head_dim 16 gives one kept, one smoothed and six divided frequencies."),
    dict(name="llama_rope_yarn", seed=2007, arch="llama", D=32, L=2, H=2, Hkv=2, V=89, T=12, I=64, dtype="float32",
         tied=False, max_pos=8, rope_scaling={"beta_fast": 32.0, "beta_slow": 0.25, "factor": 4.0, "rope_type": "yarn"},
         about="Llama, rope_scaling yarn (factor 4, beta_fast 32, beta_slow 0.25, no original_max_position_embeddings "
               "key so max_position_embeddings 8 is the original length): ramp low 0 / high 2, so frequency 0 is "
               "kept, 1 is half/half, the rest divided by 4; cos/sin times 0.1 ln 4 + 1."),
    dict(name="neox_parallel", seed=2103, arch="gpt_neox", D=32, L=3, H=2, Hkv=2, V=101, T=12, I=128, dtype="float32",
         tied=False, max_pos=32, rotary_pct=0.25, parallel=True, act="gelu", legacy=True,
         about="GPT-NeoX / Pythia style: use_parallel_residual true, rotary_pct 0.25 (4 of 16 head dims rotated), "
               "q/k/v/dense biases, untied embed_out, legacy buffers attention.bias (BOOL [1,1,32,32]), "
               "attention.masked_bias (F32 scalar), attention.rotary_emb.inv_freq."),
    dict(name="neox_sequential", seed=2105, arch="gpt_neox", D=48, L=2, H=3, Hkv=3, V=87, T=11, I=96, dtype="float16",
         tied=False, max_pos=64, rotary_pct=0.5, parallel=False, act="gelu", legacy=False,
         about="GPT-NeoX with use_parallel_residual false, rotary_pct 0.5 (8 of 16 dims), every tensor F16 on disk "
               "(goldens computed in fp32 from the f16 weights), hidden_act gelu (erf)."),
    dict(name="mixtral", seed=2227, arch="mixtral", D=32, L=2, H=4, Hkv=2, V=91, T=12, I=32, dtype="float32",
         tied=False, X=3, k=2, sliding_window=5,
         about="Mixtral: 3 experts (not a power of two), top-2 renormalised, GQA, sliding_window 5 < T, "
               "rope_theta 1e6, per-expert block_sparse_moe.experts.{j}.w1/w2/w3."),
    dict(name="olmoe", seed=2305, arch="olmoe", D=32, L=2, H=4, Hkv=4, V=93, T=11, I=24, dtype="float32",
         tied=False, X=5, k=2, norm_topk=False,
         about="OLMoE: q_norm/k_norm RMSNorms over the whole q / k projections (before RoPE), 5 experts top-2, "
               "norm_topk_prob false (raw softmax probabilities as weights)."),
    dict(name="olmoe_norm", seed=2302, arch="olmoe", D=32, L=2, H=4, Hkv=2, V=77, T=10, I=24, dtype="float32",
         tied=False, X=5, k=2, norm_topk=True,
         about="OLMoE with norm_topk_prob true (top-k weights renormalised), GQA so k_norm has Hkv*hd = 16 weights."),
    dict(name="qwen2_moe", seed=2412, arch="qwen2_moe", D=32, L=3, H=4, Hkv=2, V=85, T=12, I=64, dtype="float32",
         tied=False, X=4, k=2, norm_topk=False, moe_I=16, shared_I=32, mlp_only_layers=[1],
         about="Qwen2-MoE: q/k/v biases, 4 experts top-2 (norm_topk_prob false), shared expert scaled by "
               "sigmoid(shared_expert_gate), layer 1 dense via mlp_only_layers [1] (decoder_sparse_step 1)."),
    dict(name="jamba", seed=2512, arch="jamba", D=48, L=6, H=4, Hkv=2, V=67, T=12, I=32, dtype="float32",
         tied=False, X=3, k=2, N=8, K=4, expand=2,
         about="Jamba: 6 layers, attn_layer_period 3 / offset 1 (attention at 1, 4), expert_layer_period 2 / "
               "offset 0 (MoE at 0, 2, 4): mamba+moe, attn+mlp, mamba+moe, mamba+mlp, attn+moe, mamba+mlp. "
               "Mamba with dt/B/C RMSNorms, dt rank auto = 3; attention without positional encoding; "
               "3 experts top-2, raw router probabilities as weights."),
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

def rn(*s):
    return torch.randn(*s, dtype=torch.float32)


def _lin(o, i, gain=1.0):
    return rn(o, i) * gain / math.sqrt(i)


def _swiglu_w(I, D):
    return {"gate_proj": _lin(I, D), "up_proj": _lin(I, D), "down_proj": _lin(D, I, 1.5)}


def neox_weights(c):
    D, H, L, V, I = c["D"], c["H"], c["L"], c["V"], c["I"]
    hd = D // H
    w = {"gpt_neox.embed_in.weight": rn(V, D)}
    rd = int(hd * c["rotary_pct"])
    inv = 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.int64).float() / rd))
    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rn(D)
        w[p + "input_layernorm.bias"] = 0.1 * rn(D)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rn(D)
        w[p + "post_attention_layernorm.bias"] = 0.1 * rn(D)
        qkv = _lin(3 * D, D, 1.5)
        w[p + "attention.query_key_value.weight"] = qkv
        w[p + "attention.query_key_value.bias"] = 0.1 * rn(3 * D)
        w[p + "attention.dense.weight"] = _lin(D, D)
        w[p + "attention.dense.bias"] = 0.1 * rn(D)
        w[p + "mlp.dense_h_to_4h.weight"] = _lin(I, D)
        w[p + "mlp.dense_h_to_4h.bias"] = 0.1 * rn(I)
        w[p + "mlp.dense_4h_to_h.weight"] = _lin(D, I, 1.5)
        w[p + "mlp.dense_4h_to_h.bias"] = 0.1 * rn(D)
        if c.get("legacy"):
            M = c["max_pos"]
            w[p + "attention.bias"] = torch.tril(torch.ones(M, M, dtype=torch.bool)).reshape(1, 1, M, M)
            w[p + "attention.masked_bias"] = torch.tensor(-1e9, dtype=torch.float32)
            w[p + "attention.rotary_emb.inv_freq"] = inv.clone()
    w["gpt_neox.final_layer_norm.weight"] = 1 + 0.1 * rn(D)
    w["gpt_neox.final_layer_norm.bias"] = 0.1 * rn(D)
    w["embed_out.weight"] = _lin(V, D, 2.0)
    return w


def llama_like_weights(c):
    D, H, Hkv, L, V = c["D"], c["H"], c["Hkv"], c["L"], c["V"]
    hd = D // H
    arch = c["arch"]
    w = {"model.embed_tokens.weight": rn(V, D) * c.get("emb_std", 1.0)}
    for i in range(L):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rn(D)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rn(D)
        w[a + "q_proj.weight"] = _lin(H * hd, D, 1.5)
        w[a + "k_proj.weight"] = _lin(Hkv * hd, D, 1.5)
        w[a + "v_proj.weight"] = _lin(Hkv * hd, D)
        w[a + "o_proj.weight"] = _lin(D, H * hd, 1.5)
        if arch == "qwen2_moe":
            w[a + "q_proj.bias"] = 0.2 * rn(H * hd)
            w[a + "k_proj.bias"] = 0.2 * rn(Hkv * hd)
            w[a + "v_proj.bias"] = 0.2 * rn(Hkv * hd)
        if arch == "olmoe":
            w[a + "q_norm.weight"] = 1 + 0.1 * rn(H * hd)
            w[a + "k_norm.weight"] = 1 + 0.1 * rn(Hkv * hd)
        if arch == "llama" or (arch == "qwen2_moe" and i in c["mlp_only_layers"]):
            for k, v in _swiglu_w(c["I"], D).items():
                w[p + "mlp." + k + ".weight"] = v
        elif arch == "mixtral":
            m = p + "block_sparse_moe."
            w[m + "gate.weight"] = _lin(c["X"], D, 2.5)
            for j in range(c["X"]):
                e = _swiglu_w(c["I"], D)
                w[m + f"experts.{j}.w1.weight"] = e["gate_proj"]
                w[m + f"experts.{j}.w3.weight"] = e["up_proj"]
                w[m + f"experts.{j}.w2.weight"] = e["down_proj"]
        else:
            m = p + "mlp."
            I = c["moe_I"] if arch == "qwen2_moe" else c["I"]
            w[m + "gate.weight"] = _lin(c["X"], D, 2.5)
            for j in range(c["X"]):
                for k, v in _swiglu_w(I, D).items():
                    w[m + f"experts.{j}.{k}.weight"] = v
            if arch == "qwen2_moe":
                for k, v in _swiglu_w(c["shared_I"], D).items():
                    w[m + f"shared_expert.{k}.weight"] = v
                w[m + "shared_expert_gate.weight"] = _lin(1, D, 1.5)
    w["model.norm.weight"] = 1 + 0.1 * rn(D)
    if not c["tied"]:
        w["lm_head.weight"] = _lin(V, D, 2.0)
    return w


def _jamba():
    import jamba_ref
    return jamba_ref


def hf_config(c):
    D, H, L, V = c["D"], c["H"], c["L"], c["V"]
    arch = c["arch"]
    common = {"hidden_size": D, "num_attention_heads": H, "num_hidden_layers": L, "vocab_size": V,
              "torch_dtype": c["dtype"], "transformers_version": TF_VERSION, "use_cache": True,
              "tie_word_embeddings": c["tied"], "initializer_range": 0.02}
    if arch == "gpt_neox":
        cfg = dict(common, architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox", attention_bias=True,
                   attention_dropout=0.0, bos_token_id=0, eos_token_id=0, classifier_dropout=0.1,
                   hidden_act=c["act"], hidden_dropout=0.0, intermediate_size=c["I"], layer_norm_eps=1e-05,
                   max_position_embeddings=c["max_pos"], partial_rotary_factor=c["rotary_pct"], rope_scaling=None,
                   rope_theta=10000, rotary_emb_base=10000, rotary_pct=c["rotary_pct"],
                   use_parallel_residual=c["parallel"])
    elif arch == "llama":
        cfg = dict(common, architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=False,
                   attention_dropout=0.0, bos_token_id=1, eos_token_id=2, head_dim=D // H, hidden_act="silu",
                   intermediate_size=c["I"], max_position_embeddings=c.get("max_pos", 2048), mlp_bias=False,
                   num_key_value_heads=c["Hkv"], pretraining_tp=1, rms_norm_eps=1e-06,
                   rope_scaling=c.get("rope_scaling"), rope_theta=c.get("rope_theta", 10000.0))
    elif arch == "mixtral":
        cfg = dict(common, architectures=["MixtralForCausalLM"], model_type="mixtral", attention_dropout=0.0,
                   bos_token_id=1, eos_token_id=2, head_dim=D // H, hidden_act="silu", intermediate_size=c["I"],
                   max_position_embeddings=32768, num_experts_per_tok=c["k"], num_key_value_heads=c["Hkv"],
                   num_local_experts=c["X"], output_router_logits=False, rms_norm_eps=1e-05, rope_theta=1000000.0,
                   router_aux_loss_coef=0.02, router_jitter_noise=0.0, sliding_window=c["sliding_window"])
    elif arch == "olmoe":
        cfg = dict(common, architectures=["OlmoeForCausalLM"], model_type="olmoe", attention_bias=False,
                   attention_dropout=0.0, bos_token_id=None, clip_qkv=None, eos_token_id=50279 % V,
                   hidden_act="silu", intermediate_size=c["I"], max_position_embeddings=4096,
                   norm_topk_prob=c["norm_topk"], num_experts=c["X"], num_experts_per_tok=c["k"],
                   num_key_value_heads=c["Hkv"], output_router_logits=False, pad_token_id=1, rms_norm_eps=1e-05,
                   rope_scaling=None, rope_theta=10000.0, router_aux_loss_coef=0.01)
    elif arch == "qwen2_moe":
        cfg = dict(common, architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", attention_dropout=0.0,
                   bos_token_id=V - 2, decoder_sparse_step=1, eos_token_id=V - 2, hidden_act="silu",
                   intermediate_size=c["I"], max_position_embeddings=8192, max_window_layers=L,
                   mlp_only_layers=c["mlp_only_layers"], moe_intermediate_size=c["moe_I"],
                   norm_topk_prob=c["norm_topk"], num_experts=c["X"], num_experts_per_tok=c["k"],
                   num_key_value_heads=c["Hkv"], output_router_logits=False, rms_norm_eps=1e-06, rope_scaling=None,
                   rope_theta=1000000.0, router_aux_loss_coef=0.001, shared_expert_intermediate_size=c["shared_I"],
                   sliding_window=4096, use_sliding_window=False)
    elif arch == "jamba":
        cfg = _jamba().hf_config_dict(c, common)
    else:
        raise ValueError(arch)
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def make_weights(c):
    if c["arch"] == "gpt_neox":
        w = neox_weights(c)
    elif c["arch"] == "jamba":
        w = _jamba().make_weights(c)
    else:
        w = llama_like_weights(c)
    sdt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[c["dtype"]]
    return {k: (v.to(sdt) if v.is_floating_point() and v.dim() > 0 else v) for k, v in w.items()}


# ----------------------------------------------------------------------------- checks shared by the cases

def rope_kind(cfg):
    sc = cfg.get("rope", {}).get("scaling") or {}
    return sc.get("rope_type", sc.get("type", "default"))


def check_attention_weights(name, wts, cfg, log):
    """rows sum to one, zero outside the causal (and sliding) window."""
    H, T, _ = wts.shape
    check(name + ".row_sums", wts.double().sum(-1), torch.ones(H, T, dtype=torch.float64), TOL_F32, log)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if cfg.get("sliding_window") is not None:
        allowed = allowed & (j > i - cfg["sliding_window"])
    assert float(wts[:, ~allowed].abs().max() if (~allowed).any() else 0.0) == 0.0, name + ": weight outside mask"


def run_case(c):
    torch.manual_seed(c["seed"])
    out = os.path.join(DATA, c["name"])
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    jr = _jamba() if c["arch"] == "jamba" else None
    ref = jr if c["arch"] == "jamba" else tr

    w = make_weights(c)
    ids = torch.randint(0, c["V"], (c["T"],), dtype=torch.int64)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(hf_config(c))
    write_safetensors(os.path.join(out, "model.safetensors"), w)

    log = {}
    # 0. round trip: the file holds exactly what was generated
    back = read_safetensors(os.path.join(out, "model.safetensors"))
    assert sorted(back) == sorted(w)
    for k in w:
        assert back[k].dtype == w[k].dtype and tensor_bytes(back[k]) == tensor_bytes(w[k]), k
    model = ref.load_checkpoint(out)
    cfg = model["cfg"]
    assert (cfg["D"], cfg["L"], cfg["H"], cfg["Hkv"], cfg["V"]) == (c["D"], c["L"], c["H"], c["Hkv"], c["V"])
    if c["arch"] == "gpt_neox" and c.get("legacy"):
        inv, _ = tr.inv_freq(cfg, None, torch.float32)
        for k, v in model["legacy"].items():
            if k.endswith("attention.bias"):
                M = cfg["max_pos"]
                assert torch.equal(v, torch.tril(torch.ones(M, M, dtype=torch.bool)).reshape(1, 1, M, M))
            elif k.endswith("inv_freq"):
                assert torch.equal(v, inv), "legacy inv_freq differs from ours"
        assert len(model["legacy"]) == 3 * cfg["L"]

    m32 = ref.cast_model(model, torch.float32)
    T = c["T"]
    logits, probes = ref.forward_full(m32, ids, torch.float32)
    assert logits.shape == (T, c["V"])
    moe_layers = [i for i, s in enumerate(cfg["ffn"]) if s["kind"] == "moe"]
    attn_layers = [i for i in range(cfg["L"]) if probes[i].get("attn_weights") is not None]

    # 1. the same full pass in float64
    logits64, probes64 = ref.forward_full(m32, ids, torch.float64)
    check("full_f32_vs_f64.logits", logits, logits64, TOL_F32, log)
    for i in attn_layers:
        check(f"full_f32_vs_f64.layers.{i}.attn.weights", probes[i]["attn_weights"], probes64[i]["attn_weights"],
              TOL_F32, log)
        check_attention_weights(f"attn_weights.layers.{i}", probes[i]["attn_weights"], cfg, log)
    min_gap = None
    for i in moe_layers:
        a, b = probes[i]["moe"], probes64[i]["moe"]
        assert torch.equal(a["topk_experts"], b["topk_experts"]), f"layer {i}: f32/f64 expert choice differs"
        for k in ("router_logits", "router_probs", "topk_weights") + (("shared_gate",) if "shared_gate" in a else ()):
            check(f"full_f32_vs_f64.layers.{i}.moe.{k}", a[k], b[k], TOL_F32, log)
        g = tr.routing_gap(a, cfg["ffn"][i]["k"])
        min_gap = g if min_gap is None else min(min_gap, g)
    if c["arch"] == "jamba":
        jr.check_ssm_probes(probes, probes64, log, check, TOL_F32)

    # 2. incremental form from an empty cache reproduces the full pass (dynamic RoPE: only within the
    #    original max_position_embeddings, where transformers' incremental and full forms agree)
    n_inc = T
    if rope_kind(cfg) == "dynamic":
        n_inc = min(T, cfg["max_pos"])
    cache = ref.init_cache(m32)
    inc = torch.stack([ref.step(m32, cache, int(t)) for t in ids[:n_inc]])
    full_n = logits if n_inc == T else ref.forward_full(m32, ids[:n_inc], torch.float32)[0]
    check("step_vs_full.logits", inc, full_n, TOL_F32, log)
    if n_inc == T:
        ref.check_cache(m32, cache, ref.cache_after_prefill(m32, probes, T), log, check, TOL_F32)

    # 3. greedy generation: prefill with the full form, then the incremental form; cross-checked by a full pass
    #    over prompt + generated tokens that embeds each position the way generate() did
    gen, margin, used = ref.generate_greedy(m32, ids, N_NEW)
    full_ids = torch.cat([ids, torch.tensor(gen[:-1], dtype=torch.int64)])
    seq_lens = tr.generation_seq_lens(cfg, T, len(full_ids)) if c["arch"] != "jamba" else None
    lg, pg = ref.forward_full(m32, full_ids, torch.float32, seq_lens=seq_lens)
    assert [int(t) for t in torch.argmax(lg[T - 1:], dim=-1)] == gen, "generation mismatch vs full pass"
    check("generation.step_vs_full.logits", used, lg[T - 1:], TOL_F32, log)
    assert margin >= MIN_GREEDY_MARGIN, f"greedy top-1/top-2 margin too small ({margin})"
    for i in moe_layers:
        min_gap = min(min_gap, tr.routing_gap(pg[i]["moe"], cfg["ffn"][i]["k"]))
    if moe_layers:
        assert min_gap >= MIN_ROUTING_GAP, f"router probability gap too small ({min_gap})"

    # 4. RoPE scaling must change the result (otherwise the case tests nothing)
    extra = {}
    if c["arch"] != "jamba" and rope_kind(cfg) != "default":
        plain = dict(m32, cfg=dict(cfg, rope=dict(cfg["rope"], scaling=None)))
        lp, _ = tr.forward_full(plain, ids, torch.float32)
        eff = rel_err(logits, lp)
        extra["rope_scaling_effect_on_logits_rel"] = float("%.3g" % eff)
        assert eff > 1e-2, f"rope scaling has no visible effect ({eff})"
        inv, att = tr.inv_freq(cfg, T, torch.float32)
        extra["rope_inv_freq_at_T"] = [float("%.9g" % v) for v in inv.tolist()]
        extra["rope_attention_factor"] = float("%.9g" % att)

    golden = {"input_ids": ids.to(torch.int32), "logits": logits.contiguous(),
              "generated_ids": torch.tensor(gen, dtype=torch.int32)}
    for i in attn_layers:
        golden[f"layers.{i}.attn.weights"] = probes[i]["attn_weights"].float().contiguous()
    lbl = {}
    for i in moe_layers:
        spec = cfg["ffn"][i]
        st = tr.moe_stats(spec, probes[i]["moe"])
        assert int(st["expert_load"].sum()) == T * spec["k"]
        check(f"router_probs.layers.{i}.row_sums", st["router_probs"].double().sum(-1),
              torch.ones(T, dtype=torch.float64), TOL_F32, log)
        alt = tr.load_balancing_loss_counts([st["router_logits"]], spec["X"], spec["k"])
        check(f"load_balancing_loss.layers.{i}", st["load_balancing_loss"], torch.tensor(alt), TOL_F32, log)
        lbl[i] = float(st["load_balancing_loss"])
        for k, v in st.items():
            golden[f"layers.{i}.moe.{k}"] = v.contiguous()
    if moe_layers:
        X, k = cfg["ffn"][moe_layers[0]]["X"], cfg["ffn"][moe_layers[0]]["k"]
        rl = [probes[i]["moe"]["router_logits"].float() for i in moe_layers]
        tot = tr.load_balancing_loss(rl, X, k).reshape(())
        check("load_balancing_loss.model", tot, torch.tensor(tr.load_balancing_loss_counts(rl, X, k)), TOL_F32, log)
        golden["load_balancing_loss"] = tot.contiguous()
    if c["arch"] == "jamba":
        golden.update(jr.ssm_goldens(probes))

    if c["dtype"] == "bfloat16":
        lb, _ = ref.forward_full(model, ids, torch.bfloat16)
        golden["bf16compute.logits"] = lb.contiguous()
        extra["bf16compute_vs_f32_logits_rel_err"] = float("%.3g" % rel_err(lb, logits))
        assert extra["bf16compute_vs_f32_logits_rel_err"] < TOL_GOLDEN_BF16 * 5

    write_safetensors(os.path.join(out, "golden.safetensors"), golden)

    schedule = []
    for i in range(cfg["L"]):
        mixer = "attention" if i in attn_layers else "mamba"
        fk = cfg["ffn"][i]["kind"]
        schedule.append(f"{mixer}+{'moe' if fk == 'moe' else 'mlp'}")
    dims = {"hidden_size": cfg["D"], "num_hidden_layers": cfg["L"], "num_attention_heads": cfg["H"],
            "num_key_value_heads": cfg["Hkv"], "head_dim": cfg["hd"], "vocab_size": cfg["V"]}
    if c["arch"] != "jamba":
        dims["rotary_dims"] = cfg["rope"]["rd"]
    if moe_layers:
        s0 = cfg["ffn"][moe_layers[0]]
        dims.update(num_experts=s0["X"], top_k=s0["k"], norm_topk_prob=s0["norm_topk"])
    dims.update(ref.extra_dims(cfg) if hasattr(ref, "extra_dims") else {})
    info = {
        "case": c["name"],
        "description": c["about"],
        "model_type": c["arch"],
        "dtype": c["dtype"],
        "dims": dims,
        "layer_schedule": schedule,
        "attention_layers": attn_layers,
        "moe_layers": moe_layers,
        "T": T,
        "n_generated": N_NEW,
        "tied": c["tied"],
        "input_ids": [int(t) for t in ids],
        "generated_ids": gen,
        "greedy_min_top2_margin": float("%.3g" % margin),
        "tolerance": {"f32": TOL_GOLDEN_F32, "bf16compute": TOL_GOLDEN_BF16,
                      "metric": "max|ours - golden| / max|golden| per tensor; integer tensors exact"},
        "golden_tensors": sorted(golden),
        "self_check_rel_err_max": float("%.3g" % max(log.values())),
    }
    if moe_layers:
        info["router_min_prob_gap"] = float("%.3g" % min_gap)
        info["load_balancing_loss_per_layer"] = {str(i): float("%.6g" % v) for i, v in lbl.items()}
        info["load_balancing_loss"] = float("%.6g" % float(golden["load_balancing_loss"]))
    if rope_kind(cfg) == "dynamic":
        info["incremental_self_check_tokens"] = n_inc
    info.update(extra)
    with open(os.path.join(out, "golden.json"), "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    return info


def main(names=None):
    torch.set_num_threads(1)
    os.makedirs(DATA, exist_ok=True)
    for c in CASES:
        if names and c["name"] not in names:
            continue
        info = run_case(c)
        print(f"{c['name']:24s} T={info['T']} gen={info['generated_ids']} margin={info['greedy_min_top2_margin']}"
              + (f" gap={info['router_min_prob_gap']}" if "router_min_prob_gap" in info else "")
              + f" selfcheck<= {info['self_check_rel_err_max']:.2g}"
              + (f" bf16vsf32={info['bf16compute_vs_f32_logits_rel_err']}"
                 if "bf16compute_vs_f32_logits_rel_err" in info else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
