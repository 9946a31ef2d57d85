"""Plain-PyTorch reference for the attention decoders: GPT-NeoX (Pythia), Llama, Mixtral, OLMoE, Qwen2-MoE.

Written from docs/model-formats.md sections 1, 5-8 (behaviour of transformers' modeling_gpt_neox.py,
modeling_llama.py + modeling_rope_utils.py, modeling_mixtral.py, modeling_olmoe.py, modeling_qwen2_moe.py,
eager attention); shares no code with the C++. Only torch + numpy (no transformers, no safetensors package).

Contents
  load_checkpoint(dir)                  config.json -> normalised cfg, model.safetensors -> per-layer weights
                                        (NeoX fused per-head QKV split here; legacy NeoX buffers checked, then dropped)
  inv_freq(cfg, seq_len, dtype)         RoPE inverse frequencies for default / linear / dynamic / yarn / llama3,
                                        plus the cos/sin scale (yarn attention factor)
  forward_full(model, ids, dtype, ...)  full-sequence forward with probes (attention weights, router statistics,
                                        post-RoPE K and V for the cache); the whole model runs in `dtype`
  init_cache / step(...)                incremental form: one token, KV cache of per-position vectors, attention,
                                        RoPE, norms and routing written with other primitives (explicit loops)
  cache_after_prefill / generate_greedy prefill with the full form, then step
  load_balancing_loss(...)              transformers' load_balancing_loss_func (no attention mask)
  moe_stats(...)                        router probes (probs, top-k, load, entropy, per-layer aux loss)

Shared with jamba_ref.py: rmsnorm, attention_full/attention_step, moe_full/moe_step, load_balancing_loss.
"""

import json
import math
import os

import torch
import torch.nn.functional as F

from safetensors_io import read_safetensors

NEOX_ARCHS = ("gpt_neox",)
LLAMA_ARCHS = ("llama", "mixtral", "olmoe", "qwen2_moe")


# ----------------------------------------------------------------------------- config

def _stat_dtype(dtype):
    """Dtype of norm statistics / softmax / rope tables: fp32, or fp64 for the float64 self-check run."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def parse_config(cfg):
    mt = cfg["model_type"]
    D = int(cfg["hidden_size"])
    H = int(cfg["num_attention_heads"])
    L = int(cfg["num_hidden_layers"])
    out = dict(arch=mt, D=D, H=H, L=L, V=int(cfg["vocab_size"]),
               max_pos=int(cfg.get("max_position_embeddings", 2048)))
    if mt == "gpt_neox":
        hd = D // H
        pct = float(cfg.get("rotary_pct", cfg.get("partial_rotary_factor", 0.25)))
        out.update(Hkv=H, hd=hd, norm="layer", eps=float(cfg.get("layer_norm_eps", 1e-5)),
                   rope=dict(theta=float(cfg.get("rotary_emb_base", cfg.get("rope_theta", 10000))),
                             rd=int(hd * pct), scaling=cfg.get("rope_scaling")),
                   parallel=bool(cfg.get("use_parallel_residual", True)),
                   qkv_bias=bool(cfg.get("attention_bias", True)), o_bias=bool(cfg.get("attention_bias", True)),
                   qk_norm=False, clip_qkv=None, sliding_window=None,
                   tied=bool(cfg.get("tie_word_embeddings", False)), act=cfg.get("hidden_act", "gelu"))
        out["ffn"] = [dict(kind="mlp_gelu", I=int(cfg["intermediate_size"]))] * L
        return out
    if mt not in LLAMA_ARCHS:
        raise NotImplementedError(mt)
    hd = int(cfg.get("head_dim") or D // H)
    Hkv = int(cfg.get("num_key_value_heads") or H)
    attn_bias = bool(cfg.get("attention_bias", False))
    if cfg.get("mlp_bias", False):
        raise NotImplementedError("mlp_bias")
    if cfg.get("hidden_act", "silu") != "silu":
        raise NotImplementedError(cfg.get("hidden_act"))
    out.update(Hkv=Hkv, hd=hd, norm="rms", eps=float(cfg.get("rms_norm_eps", 1e-6)),
               rope=dict(theta=float(cfg.get("rope_theta", 10000.0)), rd=hd, scaling=cfg.get("rope_scaling")),
               parallel=False, qkv_bias=attn_bias, o_bias=attn_bias, qk_norm=False,
               clip_qkv=cfg.get("clip_qkv"), sliding_window=None,
               tied=bool(cfg.get("tie_word_embeddings", False)), act="silu")
    I = int(cfg.get("intermediate_size", 0))
    if mt == "llama":
        out["ffn"] = [dict(kind="swiglu", I=I)] * L
    elif mt == "mixtral":
        out["sliding_window"] = cfg.get("sliding_window")
        out["ffn"] = [dict(kind="moe", X=int(cfg["num_local_experts"]), k=int(cfg["num_experts_per_tok"]),
                           I=I, norm_topk=True, shared=None, names="mixtral")] * L
    elif mt == "olmoe":
        out["qk_norm"] = True
        out["ffn"] = [dict(kind="moe", X=int(cfg["num_experts"]), k=int(cfg["num_experts_per_tok"]), I=I,
                           norm_topk=bool(cfg.get("norm_topk_prob", False)), shared=None, names="mlp")] * L
    elif mt == "qwen2_moe":
        out["qkv_bias"] = bool(cfg.get("qkv_bias", True))     # Qwen2 attention: q/k/v bias, o_proj none
        out["o_bias"] = False
        if cfg.get("use_sliding_window", False):
            raise NotImplementedError("use_sliding_window")
        X = int(cfg["num_experts"])
        only = set(cfg.get("mlp_only_layers", []) or [])
        step = int(cfg.get("decoder_sparse_step", 1))
        ffn = []
        for i in range(L):
            if i not in only and X > 0 and (i + 1) % step == 0:
                ffn.append(dict(kind="moe", X=X, k=int(cfg["num_experts_per_tok"]),
                                I=int(cfg["moe_intermediate_size"]),
                                norm_topk=bool(cfg.get("norm_topk_prob", False)),
                                shared=int(cfg["shared_expert_intermediate_size"]), names="mlp"))
            else:
                ffn.append(dict(kind="swiglu", I=I))
        out["ffn"] = ffn
    return out


# ----------------------------------------------------------------------------- loading

def _read_weights(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        w = {}
        for shard in sorted(set(wmap.values())):
            w.update(read_safetensors(os.path.join(path, shard)))
        return w
    return read_safetensors(os.path.join(path, "model.safetensors"))


class _Getter:
    def __init__(self, w):
        self.w, self.used = w, set()

    def __call__(self, name, shape, optional=False):
        if name not in self.w:
            if optional:
                return None
            raise KeyError(name)
        t = self.w[name]
        if list(t.shape) != list(shape):
            raise ValueError(f"{name}: shape {list(t.shape)} != {list(shape)}")
        self.used.add(name)
        return t

    def finish(self):
        extra = set(self.w) - self.used
        if extra:
            raise ValueError(f"unexpected tensors: {sorted(extra)}")


def _load_moe(get, p, f, D):
    X, I = f["X"], f["I"]
    if f["names"] == "mixtral":
        m = p + "block_sparse_moe."
        router = get(m + "gate.weight", [X, D])
        experts = [dict(wg=get(m + f"experts.{j}.w1.weight", [I, D]), wu=get(m + f"experts.{j}.w3.weight", [I, D]),
                        wd=get(m + f"experts.{j}.w2.weight", [D, I])) for j in range(X)]
    else:
        m = p + "mlp."
        router = get(m + "gate.weight", [X, D])
        experts = [dict(wg=get(m + f"experts.{j}.gate_proj.weight", [I, D]),
                        wu=get(m + f"experts.{j}.up_proj.weight", [I, D]),
                        wd=get(m + f"experts.{j}.down_proj.weight", [D, I])) for j in range(X)]
    out = dict(router=router, experts=experts, shared=None, shared_gate=None)
    if f.get("shared"):
        S = f["shared"]
        out["shared"] = dict(wg=get(m + "shared_expert.gate_proj.weight", [S, D]),
                             wu=get(m + "shared_expert.up_proj.weight", [S, D]),
                             wd=get(m + "shared_expert.down_proj.weight", [D, S]))
        out["shared_gate"] = get(m + "shared_expert_gate.weight", [1, D])
    return out


def load_checkpoint(path):
    """Returns {'cfg', 'emb', 'lm_head', 'norm_f': (w, b|None), 'layers': [...], 'legacy': {...}} in stored dtypes."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = parse_config(json.load(f))
    w = _read_weights(path)
    get = _Getter(w)
    D, H, Hkv, hd, V, L = cfg["D"], cfg["H"], cfg["Hkv"], cfg["hd"], cfg["V"], cfg["L"]
    model = {"cfg": cfg, "legacy": {}}
    layers = []
    if cfg["arch"] == "gpt_neox":
        model["emb"] = get("gpt_neox.embed_in.weight", [V, D])
        model["norm_f"] = (get("gpt_neox.final_layer_norm.weight", [D]), get("gpt_neox.final_layer_norm.bias", [D]))
        head = get("embed_out.weight", [V, D], optional=True)
        for i in range(L):
            p = f"gpt_neox.layers.{i}."
            I = cfg["ffn"][i]["I"]
            qkv_w = get(p + "attention.query_key_value.weight", [3 * D, D])
            qkv_b = get(p + "attention.query_key_value.bias", [3 * D], optional=not cfg["qkv_bias"])
            # fused layout is per head: rows [j*3hd, j*3hd+hd) = q of head j, then k, then v
            wv = qkv_w.reshape(H, 3, hd, D)
            lw = dict(wq=wv[:, 0].reshape(H * hd, D), wk=wv[:, 1].reshape(H * hd, D), wv=wv[:, 2].reshape(H * hd, D),
                      bq=None, bk=None, bv=None,
                      wo=get(p + "attention.dense.weight", [D, D]),
                      bo=get(p + "attention.dense.bias", [D], optional=not cfg["o_bias"]),
                      q_norm=None, k_norm=None,
                      n1=(get(p + "input_layernorm.weight", [D]), get(p + "input_layernorm.bias", [D])),
                      n2=(get(p + "post_attention_layernorm.weight", [D]), get(p + "post_attention_layernorm.bias", [D])),
                      ffn=dict(w_in=get(p + "mlp.dense_h_to_4h.weight", [I, D]), b_in=get(p + "mlp.dense_h_to_4h.bias", [I]),
                               w_out=get(p + "mlp.dense_4h_to_h.weight", [D, I]), b_out=get(p + "mlp.dense_4h_to_h.bias", [D])))
            if qkv_b is not None:
                bv_ = qkv_b.reshape(H, 3, hd)
                lw["bq"], lw["bk"], lw["bv"] = (bv_[:, 0].reshape(-1), bv_[:, 1].reshape(-1), bv_[:, 2].reshape(-1))
            # legacy, non-parameter buffers written by old transformers: tolerated, checked, ignored
            for nm in ("attention.bias", "attention.masked_bias", "attention.rotary_emb.inv_freq"):
                if p + nm in w:
                    get.used.add(p + nm)
                    model["legacy"][p + nm] = w[p + nm]
            layers.append(lw)
    else:
        model["emb"] = get("model.embed_tokens.weight", [V, D])
        model["norm_f"] = (get("model.norm.weight", [D]), None)
        head = get("lm_head.weight", [V, D], optional=True)
        for i in range(L):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            lw = dict(wq=get(a + "q_proj.weight", [H * hd, D]), wk=get(a + "k_proj.weight", [Hkv * hd, D]),
                      wv=get(a + "v_proj.weight", [Hkv * hd, D]), wo=get(a + "o_proj.weight", [D, H * hd]),
                      bq=get(a + "q_proj.bias", [H * hd], optional=not cfg["qkv_bias"]),
                      bk=get(a + "k_proj.bias", [Hkv * hd], optional=not cfg["qkv_bias"]),
                      bv=get(a + "v_proj.bias", [Hkv * hd], optional=not cfg["qkv_bias"]),
                      bo=get(a + "o_proj.bias", [D], optional=not cfg["o_bias"]),
                      q_norm=get(a + "q_norm.weight", [H * hd]) if cfg["qk_norm"] else None,
                      k_norm=get(a + "k_norm.weight", [Hkv * hd]) if cfg["qk_norm"] else None,
                      n1=(get(p + "input_layernorm.weight", [D]), None),
                      n2=(get(p + "post_attention_layernorm.weight", [D]), None))
            f = cfg["ffn"][i]
            if f["kind"] == "swiglu":
                lw["ffn"] = dict(wg=get(p + "mlp.gate_proj.weight", [f["I"], D]), wu=get(p + "mlp.up_proj.weight", [f["I"], D]),
                                 wd=get(p + "mlp.down_proj.weight", [D, f["I"]]))
            else:
                lw["ffn"] = _load_moe(get, p, f, D)
            layers.append(lw)
    if head is None:
        if not cfg["tied"]:
            raise KeyError("lm_head.weight / embed_out.weight missing and embeddings not tied")
        head = model["emb"]
    model["lm_head"] = head
    model["layers"] = layers
    get.finish()
    return model


def cast_model(model, dtype):
    """Copy with every floating tensor converted to dtype (from_pretrained(torch_dtype=...))."""
    def c(x):
        if x is None:
            return None
        if isinstance(x, torch.Tensor):
            return x.to(dtype) if x.is_floating_point() else x
        if isinstance(x, (tuple, list)):
            return type(x)(c(v) for v in x)
        if isinstance(x, dict):
            return {k: c(v) for k, v in x.items()}
        return x
    out = {k: (v if k in ("cfg", "legacy") else c(v)) for k, v in model.items()}
    return out


# ----------------------------------------------------------------------------- RoPE

def inv_freq(cfg, seq_len=None, dtype=torch.float32):
    """(inv_freq [rd/2], attention_factor) as modeling_rope_utils computes them. seq_len only matters for
    'dynamic' (NTK): the base is rescaled when seq_len > max_position_embeddings."""
    r = cfg["rope"]
    rd, base = r["rd"], r["theta"]
    sc = r["scaling"] or {}
    kind = sc.get("rope_type", sc.get("type", "default"))
    ar = torch.arange(0, rd, 2, dtype=torch.int64).to(dtype) / rd
    if kind == "default":
        return 1.0 / (base ** ar), 1.0
    if kind == "linear":
        return 1.0 / (base ** ar) / sc["factor"], 1.0
    if kind == "dynamic":
        M = cfg["max_pos"]
        s = seq_len if (seq_len is not None and seq_len > M) else M
        b = base * ((sc["factor"] * s / M) - (sc["factor"] - 1)) ** (rd / (rd - 2))
        return 1.0 / (b ** ar), 1.0
    if kind == "yarn":
        if "original_max_position_embeddings" in sc:
            raise NotImplementedError("yarn with original_max_position_embeddings (version-dependent in transformers)")
        f = sc["factor"]
        att = sc.get("attention_factor")
        if att is None:
            att = 0.1 * math.log(f) + 1.0
        bf, bs = sc.get("beta_fast") or 32, sc.get("beta_slow") or 1
        M = cfg["max_pos"]

        def corr_dim(n_rot):
            return (rd * math.log(M / (n_rot * 2 * math.pi))) / (2 * math.log(base))
        low = max(math.floor(corr_dim(bf)), 0)
        high = min(math.ceil(corr_dim(bs)), rd - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(rd // 2, dtype=dtype) - low) / (high - low), 0, 1)
        extra = 1 - ramp                                             # 1 = keep the original frequency
        pos_freqs = base ** ar
        return (1.0 / (f * pos_freqs)) * (1 - extra) + (1.0 / pos_freqs) * extra, att
    if kind == "llama3":
        f, lf, hf = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
        M0 = sc["original_max_position_embeddings"]
        inv = 1.0 / (base ** ar)
        wl = 2 * math.pi / inv
        low_wl, high_wl = M0 / lf, M0 / hf
        out = torch.where(wl > low_wl, inv / f, inv)
        s = (M0 / wl - lf) / (hf - lf)
        smooth = (1 - s) * out / f + s * out
        medium = (wl >= high_wl) & (wl <= low_wl)
        return torch.where(medium, smooth, out), 1.0
    raise NotImplementedError(kind)


def rope_tables(cfg, positions, seq_lens, dtype):
    """cos, sin [T, rd] (cat(freqs, freqs), times the attention factor) in the statistics dtype.
    seq_lens[t] is the sequence length transformers had when position t was embedded (dynamic RoPE only)."""
    sd = _stat_dtype(dtype)
    rows_c, rows_s = [], []
    cache = {}
    for p, s in zip(positions, seq_lens):
        if s not in cache:
            cache[s] = inv_freq(cfg, s, sd)
        inv, att = cache[s]
        fr = p * inv
        emb = torch.cat([fr, fr])
        rows_c.append(emb.cos() * att)
        rows_s.append(emb.sin() * att)
    return torch.stack(rows_c), torch.stack(rows_s)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin, rd):
    """x [heads, T, hd]; rotary on the first rd dims (rotate_half convention); cos/sin cast to x.dtype as HF does."""
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    xr, xp = x[..., :rd], x[..., rd:]
    xr = xr * c + _rotate_half(xr) * s
    return torch.cat([xr, xp], dim=-1)


# ----------------------------------------------------------------------------- full form pieces

def rmsnorm(v, w, eps):
    """HF LlamaRMSNorm: statistics in fp32 (fp64 for the fp64 run), cast back, times weight."""
    in_dtype = v.dtype
    v32 = v.to(_stat_dtype(in_dtype))
    v32 = v32 * torch.rsqrt(v32.pow(2).mean(-1, keepdim=True) + eps)
    return w * v32.to(in_dtype)


def norm(cfg, v, wb):
    w, b = wb
    if cfg["norm"] == "layer":
        return F.layer_norm(v, (v.shape[-1],), w, b, cfg["eps"])
    return rmsnorm(v, w, cfg["eps"])


def attention_full(cfg, lw, x, positions=None, seq_lens=None, use_rope=True):
    """x [T, D] in the compute dtype. Returns (out [T, D], weights [H, T, T] (softmax output, compute dtype),
    k [Hkv, T, hd] (post-RoPE), v [Hkv, T, hd])."""
    T = x.shape[0]
    H, Hkv, hd = cfg["H"], cfg["Hkv"], cfg["hd"]
    q = F.linear(x, lw["wq"], lw["bq"])
    k = F.linear(x, lw["wk"], lw["bk"])
    v = F.linear(x, lw["wv"], lw["bv"])
    if lw.get("q_norm") is not None:                   # OLMoE: RMSNorm over the whole projection, before RoPE
        q = rmsnorm(q, lw["q_norm"], cfg["eps"])
        k = rmsnorm(k, lw["k_norm"], cfg["eps"])
    if cfg.get("clip_qkv") is not None:
        c = cfg["clip_qkv"]
        q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
    q = q.reshape(T, H, hd).transpose(0, 1)
    k = k.reshape(T, Hkv, hd).transpose(0, 1)
    v = v.reshape(T, Hkv, hd).transpose(0, 1)
    if use_rope:
        if positions is None:
            positions = list(range(T))
        if seq_lens is None:
            seq_lens = [T] * T
        cos, sin = rope_tables(cfg, positions, seq_lens, x.dtype)
        q = apply_rope(q, cos, sin, cfg["rope"]["rd"])
        k = apply_rope(k, cos, sin, cfg["rope"]["rd"])
    rep = H // Hkv
    kr = k.repeat_interleave(rep, dim=0)
    vr = v.repeat_interleave(rep, dim=0)
    scores = torch.matmul(q, kr.transpose(1, 2)) * (hd ** -0.5)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if cfg.get("sliding_window") is not None:
        allowed = allowed & (j > i - cfg["sliding_window"])
    scores = scores.masked_fill(~allowed, float("-inf"))
    wts = F.softmax(scores, dim=-1, dtype=_stat_dtype(x.dtype)).to(x.dtype)
    o = torch.matmul(wts, vr).transpose(0, 1).reshape(T, H * hd)
    return F.linear(o, lw["wo"], lw["bo"]), wts, k, v


def swiglu(fw, x):
    return F.linear(F.silu(F.linear(x, fw["wg"])) * F.linear(x, fw["wu"]), fw["wd"])


def mlp_gelu(fw, x, act):
    hdn = F.linear(x, fw["w_in"], fw["b_in"])
    if act == "gelu":
        hdn = F.gelu(hdn)
    elif act in ("gelu_new", "gelu_pytorch_tanh"):
        hdn = F.gelu(hdn, approximate="tanh")
    else:
        raise NotImplementedError(act)
    return F.linear(hdn, fw["w_out"], fw["b_out"])


def moe_full(spec, fw, x):
    """Sparse MoE block, full form. Every expert runs on every token; the top-k outputs are gathered.
    Returns (out [T, D], probe dict)."""
    T = x.shape[0]
    X, k = spec["X"], spec["k"]
    logits = F.linear(x, fw["router"])                          # [T, X], compute dtype
    probs = F.softmax(logits, dim=-1, dtype=_stat_dtype(x.dtype))
    topv, topi = torch.topk(probs, k, dim=-1)
    wts = topv / topv.sum(-1, keepdim=True) if spec["norm_topk"] else topv
    wts_c = wts.to(x.dtype)
    all_out = torch.stack([swiglu(e, x) for e in fw["experts"]])  # [X, T, D]
    rows = torch.arange(T)
    out = torch.zeros_like(x)
    for s in range(k):
        out = out + wts_c[:, s:s + 1] * all_out[topi[:, s], rows]
    probe = dict(router_logits=logits, router_probs=probs, topk_experts=topi, topk_weights=wts_c)
    if fw.get("shared") is not None:
        g = torch.sigmoid(F.linear(x, fw["shared_gate"]))          # [T, 1]
        out = out + g * swiglu(fw["shared"], x)
        probe["shared_gate"] = g[:, 0]
    return out, probe


def ffn_full(cfg, spec, fw, x):
    if spec["kind"] == "mlp_gelu":
        return mlp_gelu(fw, x, cfg["act"]), None
    if spec["kind"] == "swiglu":
        return swiglu(fw, x), None
    return moe_full(spec, fw, x)


def forward_full(model, ids, dtype=torch.float32, seq_lens=None):
    """Full-sequence forward with the whole model in `dtype`. seq_lens: per-position sequence length used for
    dynamic RoPE (default: T everywhere, i.e. one transformers forward over the whole sequence).
    Returns (logits fp32 [T, V], probes: list per layer of dict with 'attn_weights', 'k', 'v', 'moe')."""
    cfg = model["cfg"]
    m = cast_model(model, dtype)
    T = len(ids)
    h = m["emb"][ids]
    probes = []
    for lw, spec in zip(m["layers"], cfg["ffn"]):
        a_out, wts, k, v = attention_full(cfg, lw, norm(cfg, h, lw["n1"]), list(range(T)), seq_lens)
        if cfg["parallel"]:
            f_out, mp = ffn_full(cfg, spec, lw["ffn"], norm(cfg, h, lw["n2"]))
            h = f_out + a_out + h
        else:
            h = h + a_out
            f_out, mp = ffn_full(cfg, spec, lw["ffn"], norm(cfg, h, lw["n2"]))
            h = h + f_out
        probes.append(dict(attn_weights=wts, k=k, v=v, moe=mp))
    hf = norm(cfg, h, m["norm_f"])
    logits = F.linear(hf, m["lm_head"]).float()
    return logits, probes


# ----------------------------------------------------------------------------- router statistics

def load_balancing_loss(router_logits_list, num_experts, top_k):
    """transformers load_balancing_loss_func without attention mask: concatenate, full softmax, top-k,
    one-hot [rows, k, X] mean over rows times mean probability, summed, times X."""
    cat = torch.cat(list(router_logits_list), dim=0)
    rw = F.softmax(cat, dim=-1)
    _, sel = torch.topk(rw, top_k, dim=-1)
    mask = F.one_hot(sel, num_experts)
    tokens_per_expert = torch.mean(mask.float(), dim=0)
    prob_per_expert = torch.mean(rw, dim=0)
    return torch.sum(tokens_per_expert * prob_per_expert.unsqueeze(0)) * num_experts


def load_balancing_loss_counts(router_logits_list, num_experts, top_k):
    """Same quantity in float64 via X * sum_e (count_e / rows) * mean_p_e, for the self-check."""
    cat = torch.cat(list(router_logits_list), dim=0).double()
    p = torch.softmax(cat, dim=-1)
    order = torch.argsort(p, dim=-1, descending=True)[:, :top_k]
    counts = torch.zeros(num_experts, dtype=torch.float64)
    for e in order.reshape(-1).tolist():
        counts[e] += 1
    return num_experts * float((counts / cat.shape[0] * p.mean(0)).sum())


def moe_stats(spec, mp):
    """Golden router probes for one MoE layer (fp32/ints)."""
    probs = mp["router_probs"].float()
    topi = mp["topk_experts"]
    load = torch.bincount(topi.reshape(-1), minlength=spec["X"]).to(torch.int64)
    ent = -torch.xlogy(probs, probs).sum(-1)
    out = dict(router_logits=mp["router_logits"].float(), router_probs=probs,
               topk_experts=topi.to(torch.int32), topk_weights=mp["topk_weights"].float(), expert_load=load,
               router_entropy=ent,
               load_balancing_loss=load_balancing_loss([mp["router_logits"].float()], spec["X"], spec["k"]).reshape(()))
    if "shared_gate" in mp:
        out["shared_gate"] = mp["shared_gate"].float()
    return out


def routing_gap(mp, k):
    """Smallest gap between consecutive sorted router probabilities among the first k+1 (covers the order
    inside the top-k and the k-th / (k+1)-th boundary)."""
    p = torch.sort(mp["router_probs"].double(), dim=-1, descending=True).values
    kk = min(k + 1, p.shape[-1])
    return float((p[:, :kk - 1] - p[:, 1:kk]).min())


# ----------------------------------------------------------------------------- incremental form

def init_cache(model):
    """Per layer: lists of per-position key / value tensors [Hkv, hd] (post-RoPE), plus the dynamic-RoPE state
    (max_seq_len_cached, starting at max_position_embeddings as in transformers)."""
    cfg = model["cfg"]
    return dict(layers=[dict(k=[], v=[]) for _ in range(cfg["L"])], pos=0, rope_cached=cfg["max_pos"])


def _rms_step(v, w, eps):
    # same maths as rmsnorm(), written differently
    return w * (v / torch.sqrt((v * v).sum() / v.numel() + eps))


def _norm_step(cfg, v, wb):
    w, b = wb
    if cfg["norm"] == "layer":
        mu = v.sum() / v.numel()
        d = v - mu
        return d / torch.sqrt((d * d).sum() / v.numel() + cfg["eps"]) * w + b
    return _rms_step(v, w, cfg["eps"])


def _rope_step(vec, pos, inv, att, rd):
    """vec [heads, hd]: rotate pairs (i, i + rd/2) by pos*inv[i], explicit per-pair formula."""
    out = vec.clone()
    half = rd // 2
    for i in range(half):
        ang = pos * float(inv[i])
        c, s = math.cos(ang) * att, math.sin(ang) * att
        a, b = vec[:, i], vec[:, i + half]
        out[:, i] = a * c - b * s
        out[:, i + half] = b * c + a * s
    return out                                                   # dims rd..hd pass through (clone)


def attention_step(cfg, lw, x, lc, pos, rope=None):
    """One token. x [D] fp32; lc: this layer's cache (appended to). rope: (inv, att) or None (no RoPE)."""
    H, Hkv, hd = cfg["H"], cfg["Hkv"], cfg["hd"]

    def lin(w, b):
        y = w.float() @ x
        return y if b is None else y + b.float()
    q, k, v = lin(lw["wq"], lw["bq"]), lin(lw["wk"], lw["bk"]), lin(lw["wv"], lw["bv"])
    if lw.get("q_norm") is not None:
        q = _rms_step(q, lw["q_norm"].float(), cfg["eps"])
        k = _rms_step(k, lw["k_norm"].float(), cfg["eps"])
    if cfg.get("clip_qkv") is not None:
        c = cfg["clip_qkv"]
        q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
    q, k, v = q.reshape(H, hd), k.reshape(Hkv, hd), v.reshape(Hkv, hd)
    if rope is not None:
        inv, att = rope
        q = _rope_step(q, pos, inv, att, cfg["rope"]["rd"])
        k = _rope_step(k, pos, inv, att, cfg["rope"]["rd"])
    lc["k"].append(k)
    lc["v"].append(v)
    n = len(lc["k"])
    lo = 0
    if cfg.get("sliding_window") is not None:
        lo = max(0, n - cfg["sliding_window"])
    Ks = torch.stack(lc["k"][lo:])                                # [n', Hkv, hd]
    Vs = torch.stack(lc["v"][lo:])
    o = torch.zeros(H, hd)
    group = H // Hkv
    scale = 1.0 / math.sqrt(hd)
    for h in range(H):
        g = h // group
        s = (Ks[:, g, :] * q[h]).sum(-1) * scale
        e = torch.exp(s - s.max())
        wgt = e / e.sum()
        o[h] = (wgt[:, None] * Vs[:, g, :]).sum(0)
    out = lw["wo"].float() @ o.reshape(-1)
    if lw["bo"] is not None:
        out = out + lw["bo"].float()
    return out


def _swiglu_step(e, x):
    g = e["wg"].float() @ x
    return e["wd"].float() @ (g * torch.sigmoid(g) * (e["wu"].float() @ x))


def moe_step(spec, fw, x):
    """One token: softmax written out, selection by a full descending sort, experts run one by one."""
    lg = fw["router"].float() @ x
    e = torch.exp(lg - lg.max())
    p = e / e.sum()
    order = torch.sort(p, descending=True).indices[:spec["k"]]
    sel = p[order]
    if spec["norm_topk"]:
        sel = sel / sel.sum()
    out = torch.zeros_like(x)
    for j, wgt in zip(order.tolist(), sel):
        out = out + wgt * _swiglu_step(fw["experts"][j], x)
    if fw.get("shared") is not None:
        g = 1.0 / (1.0 + torch.exp(-(fw["shared_gate"].float() @ x)))
        out = out + g * _swiglu_step(fw["shared"], x)
    return out


def _ffn_step(cfg, spec, fw, x):
    if spec["kind"] == "mlp_gelu":
        hdn = fw["w_in"].float() @ x + fw["b_in"].float()
        if cfg["act"] == "gelu":
            hdn = 0.5 * hdn * (1 + torch.erf(hdn / math.sqrt(2)))
        else:
            hdn = 0.5 * hdn * (1 + torch.tanh(math.sqrt(2 / math.pi) * (hdn + 0.044715 * hdn ** 3)))
        return fw["w_out"].float() @ hdn + fw["b_out"].float()
    if spec["kind"] == "swiglu":
        return _swiglu_step(fw, x)
    return moe_step(spec, fw, x)


def step_rope(cfg, cache):
    """RoPE parameters for the token at cache['pos'], updating the dynamic-RoPE state like transformers'
    dynamic_rope_update (grow when seq_len exceeds the cached length)."""
    seq_len = cache["pos"] + 1
    if seq_len > cache["rope_cached"]:
        cache["rope_cached"] = seq_len
    inv, att = inv_freq(cfg, cache["rope_cached"], torch.float32)
    return inv, att


def step(model, cache, token):
    """One token through the incremental form (fp32). Updates cache; returns logits [V]."""
    cfg = model["cfg"]
    pos = cache["pos"]
    rope = step_rope(cfg, cache)
    h = model["emb"][token].float()
    for lw, spec, lc in zip(model["layers"], cfg["ffn"], cache["layers"]):
        n1 = tuple(None if t is None else t.float() for t in lw["n1"])
        n2 = tuple(None if t is None else t.float() for t in lw["n2"])
        a = attention_step(cfg, lw, _norm_step(cfg, h, n1), lc, pos, rope)
        if cfg["parallel"]:
            h = h + a + _ffn_step(cfg, spec, lw["ffn"], _norm_step(cfg, h, n2))
        else:
            h = h + a
            h = h + _ffn_step(cfg, spec, lw["ffn"], _norm_step(cfg, h, n2))
    nf = tuple(None if t is None else t.float() for t in model["norm_f"])
    cache["pos"] = pos + 1
    return model["lm_head"].float() @ _norm_step(cfg, h, nf)


def cache_after_prefill(model, probes, T):
    """KV cache derived from a full pass over T tokens (post-RoPE K, V), dynamic-RoPE state after it."""
    cfg = model["cfg"]
    layers = []
    for p in probes:
        k, v = p["k"].float(), p["v"].float()
        layers.append(dict(k=[k[:, t, :] for t in range(T)], v=[v[:, t, :] for t in range(T)]))
    return dict(layers=layers, pos=T, rope_cached=max(cfg["max_pos"], T))


def generation_seq_lens(cfg, T, n_total):
    """Sequence length transformers used for each position during generate(): the prompt is embedded in one
    forward of length T, then each new token at position p in a forward whose max position is p."""
    return [max(T, cfg["max_pos"]) if p < T else max(p + 1, cfg["max_pos"]) for p in range(n_total)]


def generate_greedy(model, ids, n_new, forward=None, prefill_cache=None, stepper=None):
    """Greedy continuation: prefill with the full form, then the incremental form. Returns (tokens, min top-2
    margin, logits used [n_new, V])."""
    forward = forward or forward_full
    prefill_cache = prefill_cache or cache_after_prefill
    stepper = stepper or step
    logits, probes = forward(model, ids)
    cache = prefill_cache(model, probes, len(ids))
    last = logits[-1]
    out, margins, used = [], [], []
    for i in range(n_new):
        used.append(last)
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        tok = int(torch.argmax(last))
        out.append(tok)
        if i + 1 < n_new:
            last = stepper(model, cache, tok)
    return out, min(margins), torch.stack(used)


def check_cache(model, cache, pre, log, check, tol):
    """Incremental-form cache == the cache derived from the full pass."""
    for i, (a, b) in enumerate(zip(cache["layers"], pre["layers"])):
        check(f"step_vs_full.layers.{i}.k_cache", torch.stack(a["k"]), torch.stack(b["k"]), tol, log)
        check(f"step_vs_full.layers.{i}.v_cache", torch.stack(a["v"]), torch.stack(b["v"]), tol, log)
