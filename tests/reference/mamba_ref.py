"""Plain-PyTorch reference for Mamba-1 (MambaForCausalLM, transformers slow path).

Written from docs/model-formats.md sections 2-3; shares no code with the C++.
Only torch + numpy are used (no transformers, no safetensors package).

Contents
  load_checkpoint(dir)            config (HF or original flavour) + weights (single file or shards)
  forward_full(model, ids, dtype) full-sequence forward: conv via F.conv1d(padding=K-1), sequential scan;
                                  returns fp32 logits [T, V] and per-layer probes
  init_cache / step(...)          recurrent single-token form (rolling conv_state [E, K], ssm_state [E, N]),
                                  conv as an explicit loop over taps
  cache_after_prefill(...)        cache built from a full forward (last K pre-conv columns, h_{T-1})
  generate_greedy(...)            prefill with the full form, then step form
  scan_closed_form(...)           float64 non-recursive formulation of the scan, for self-checks
"""

import json
import math
import os

import torch
import torch.nn.functional as F

from safetensors_io import read_safetensors

PROBES = ("x", "delta", "B", "C", "state", "state_norm", "y", "gate")


# ----------------------------------------------------------------------------- loading

def parse_config(cfg):
    """Normalises an HF MambaConfig dict or an original mamba_ssm config dict."""
    if "hidden_size" in cfg or cfg.get("model_type") == "mamba":
        D = int(cfg["hidden_size"])
        expand = int(cfg.get("expand", 2))
        R = cfg.get("time_step_rank", "auto")
        out = dict(
            flavour="hf", D=D, L=int(cfg["num_hidden_layers"]), N=int(cfg.get("state_size", 16)),
            K=int(cfg.get("conv_kernel", 4)), E=int(cfg.get("intermediate_size", expand * D)),
            R=math.ceil(D / 16) if R == "auto" else int(R),
            use_bias=bool(cfg.get("use_bias", True)), use_conv_bias=bool(cfg.get("use_conv_bias", True)),
            eps=float(cfg.get("layer_norm_epsilon", 1e-5)), V=int(cfg["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", True)),
            residual_in_fp32=bool(cfg.get("residual_in_fp32", True)))
    else:
        D = int(cfg["d_model"])
        ssm = cfg.get("ssm_cfg", {}) or {}
        expand = int(ssm.get("expand", 2))
        R = ssm.get("dt_rank", "auto")
        V = int(cfg["vocab_size"])
        m = int(cfg.get("pad_vocab_size_multiple", 1))
        if V % m:
            V += m - V % m
        out = dict(
            flavour="original", D=D, L=int(cfg["n_layer"]), N=int(ssm.get("d_state", 16)),
            K=int(ssm.get("d_conv", 4)), E=expand * D, R=math.ceil(D / 16) if R == "auto" else int(R),
            use_bias=bool(ssm.get("bias", False)), use_conv_bias=bool(ssm.get("conv_bias", True)),
            eps=float(cfg.get("norm_epsilon", 1e-5)), V=V, tied=bool(cfg.get("tie_embeddings", True)),
            residual_in_fp32=bool(cfg.get("residual_in_fp32", True)))
        if not cfg.get("rms_norm", True):
            raise NotImplementedError("LayerNorm Mamba variants are not covered")
    return out


def load_checkpoint(path):
    """Returns model dict: {'cfg': normalised config, 'emb', 'lm_head', 'norm_f', 'layers': [...]}
    with tensors in their stored dtype."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = parse_config(json.load(f))
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        w = {}
        for shard in sorted(set(wmap.values())):
            part = read_safetensors(os.path.join(path, shard))
            for k, v in part.items():
                if wmap.get(k) != shard:
                    raise ValueError(f"{k} found in {shard} but index says {wmap.get(k)}")
                w[k] = v
        missing = set(wmap) - set(w)
        if missing:
            raise ValueError(f"tensors missing from shards: {sorted(missing)}")
    else:
        w = read_safetensors(os.path.join(path, "model.safetensors"))

    D, E, N, K, R, V = cfg["D"], cfg["E"], cfg["N"], cfg["K"], cfg["R"], cfg["V"]
    used = set()

    def get(name, shape, optional=False):
        if name not in w:
            if optional:
                return None
            raise KeyError(name)
        t = w[name]
        if list(t.shape) != list(shape):
            raise ValueError(f"{name}: shape {list(t.shape)} != {list(shape)}")
        used.add(name)
        return t

    emb_key = "backbone.embeddings.weight" if "backbone.embeddings.weight" in w else "backbone.embedding.weight"
    model = {"cfg": cfg, "emb": get(emb_key, [V, D]), "norm_f": get("backbone.norm_f.weight", [D])}
    head = get("lm_head.weight", [V, D], optional=True)
    if head is None:
        if not cfg["tied"]:
            raise KeyError("lm_head.weight missing and embeddings not tied")
        head = model["emb"]
    model["lm_head"] = head
    layers = []
    for i in range(cfg["L"]):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        layers.append(dict(
            norm=get(p + "norm.weight", [D]),
            in_w=get(m + "in_proj.weight", [2 * E, D]),
            in_b=get(m + "in_proj.bias", [2 * E]) if cfg["use_bias"] else None,
            conv_w=get(m + "conv1d.weight", [E, 1, K]),
            conv_b=get(m + "conv1d.bias", [E]) if cfg["use_conv_bias"] else None,
            x_w=get(m + "x_proj.weight", [R + 2 * N, E]),
            dt_w=get(m + "dt_proj.weight", [E, R]),
            dt_b=get(m + "dt_proj.bias", [E]),
            A_log=get(m + "A_log", [E, N]),
            D=get(m + "D", [E]),
            out_w=get(m + "out_proj.weight", [D, E]),
            out_b=get(m + "out_proj.bias", [D]) if cfg["use_bias"] else None))
    model["layers"] = layers
    extra = set(w) - used
    if extra:
        raise ValueError(f"unexpected tensors: {sorted(extra)}")
    return model


def cast_model(model, dtype):
    """Copy of the model with every tensor converted to dtype (what from_pretrained(torch_dtype=...) does)."""
    c = lambda t: None if t is None else t.to(dtype)
    out = {"cfg": model["cfg"], "emb": c(model["emb"]), "lm_head": c(model["lm_head"]),
           "norm_f": c(model["norm_f"])}
    out["layers"] = [{k: c(v) for k, v in lw.items()} for lw in model["layers"]]
    return out


# ----------------------------------------------------------------------------- full form

def rmsnorm(v, w, eps):
    """HF MambaRMSNorm: fp32 statistics, cast back to the input dtype, then times weight."""
    in_dtype = v.dtype
    v32 = v.to(torch.float32)
    v32 = v32 * torch.rsqrt(v32.pow(2).mean(-1, keepdim=True) + eps)
    return w * v32.to(in_dtype)


def mixer_full(lw, u, cfg):
    """u: [T, D] in the compute dtype. Returns out [T, D] and probes (compute-dtype / fp32 tensors)."""
    T = u.shape[0]
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    dtype = u.dtype
    xz = F.linear(u, lw["in_w"], lw["in_b"])                      # [T, 2E]
    x_pre, z = xz[:, :E], xz[:, E:]
    conv = F.conv1d(x_pre.t().unsqueeze(0), lw["conv_w"], lw["conv_b"], padding=K - 1, groups=E)
    x = F.silu(conv[0, :, :T].t())                                # [T, E]
    dbc = F.linear(x, lw["x_w"])                                  # [T, R+2N]
    dt_low, B, C = dbc[:, :R], dbc[:, R:R + N], dbc[:, R + N:]
    delta = F.softplus(F.linear(dt_low, lw["dt_w"], lw["dt_b"]))  # [T, E], beta 1 threshold 20
    A = -torch.exp(lw["A_log"].float())                           # [E, N] fp32
    dA = torch.exp(A[None] * delta[:, :, None])                   # [T, E, N] fp32
    dBu = delta[:, :, None] * B[:, None, :].float() * x[:, :, None].float()
    h = torch.zeros(E, N, dtype=dtype)
    states, ys = [], []
    for t in range(T):
        h = dA[t] * h + dBu[t]                                    # fp32 after the first step
        states.append(h)
        ys.append(torch.matmul(h.to(dtype), C[t]))                # HF: state cast to activation dtype
    state = torch.stack(states)                                   # [T, E, N]
    y = torch.stack(ys) + x * lw["D"]
    gate = F.silu(z)
    out = F.linear(y * gate, lw["out_w"], lw["out_b"])
    probes = dict(x=x, delta=delta, B=B, C=C, state=state, state_norm=state.float().norm(dim=-1),
                  y=y, gate=gate, x_pre=x_pre, A=A, D=lw["D"])
    return out, probes


def forward_full(model, ids, dtype=torch.float32):
    """Full-sequence forward as MambaForCausalLM slow path with the whole model in `dtype`.
    Returns (logits fp32 [T, V], [per-layer probe dict]) with probes converted to fp32
    (except 'x_pre', kept in compute dtype for the cache)."""
    cfg = model["cfg"]
    m = cast_model(model, dtype)
    h = m["emb"][ids]                                             # [T, D]
    probes = []
    for lw in m["layers"]:
        residual = h
        hn = rmsnorm(h.to(dtype), lw["norm"], cfg["eps"])
        if cfg["residual_in_fp32"]:
            residual = residual.to(torch.float32)
        out, p = mixer_full(lw, hn, cfg)
        h = residual + out
        probes.append({k: (v if k == "x_pre" else v.float()) for k, v in p.items()})
    hf = rmsnorm(h, m["norm_f"], cfg["eps"])
    logits = F.linear(hf.to(dtype), m["lm_head"]).float()
    return logits, probes


# ----------------------------------------------------------------------------- recurrent form

def init_cache(model, dtype=torch.float32):
    cfg = model["cfg"]
    return [dict(conv=torch.zeros(cfg["E"], cfg["K"], dtype=dtype),
                 ssm=torch.zeros(cfg["E"], cfg["N"], dtype=dtype)) for _ in range(cfg["L"])]


def cache_after_prefill(model, probes):
    """conv_state = last K pre-conv x columns (left zero padded), ssm_state = h_{T-1}."""
    cfg = model["cfg"]
    K = cfg["K"]
    cache = []
    for p in probes:
        xp = p["x_pre"].float().t()                               # [E, T]
        T = xp.shape[1]
        conv = torch.zeros(cfg["E"], K)
        n = min(K, T)
        conv[:, K - n:] = xp[:, T - n:]
        cache.append(dict(conv=conv, ssm=p["state"][-1].clone()))
    return cache


def _rms_step(v, w, eps):
    # Same maths as rmsnorm(), written differently: divide by the root instead of rsqrt.
    return w * (v / torch.sqrt((v * v).sum() / v.numel() + eps))


def step(model, cache, token):
    """One token through the recurrent form (fp32). Updates cache in place; returns logits [V]."""
    cfg = model["cfg"]
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    h = model["emb"][token].float()
    for lw, c in zip(model["layers"], cache):
        u = _rms_step(h, lw["norm"].float(), cfg["eps"])
        xz = lw["in_w"].float() @ u
        if lw["in_b"] is not None:
            xz = xz + lw["in_b"].float()
        x_t, z_t = xz[:E], xz[E:]
        conv = torch.cat([c["conv"][:, 1:], x_t[:, None]], dim=1)  # shift left, newest in column K-1
        c["conv"] = conv
        w = lw["conv_w"].float()
        acc = torch.zeros(E) if lw["conv_b"] is None else lw["conv_b"].float().clone()
        for k in range(K):
            acc = acc + conv[:, k] * w[:, 0, k]
        xs = acc * torch.sigmoid(acc)
        dbc = lw["x_w"].float() @ xs
        d_low, Bt, Ct = dbc[:R], dbc[R:R + N], dbc[R + N:]
        pre = lw["dt_w"].float() @ d_low + lw["dt_b"].float()
        dt = torch.where(pre > 20, pre, torch.log1p(torch.exp(pre)))
        A = -torch.exp(lw["A_log"].float())
        c["ssm"] = c["ssm"] * torch.exp(dt[:, None] * A) + torch.outer(dt * xs, Bt)
        y = c["ssm"] @ Ct + lw["D"].float() * xs
        y = y * (z_t * torch.sigmoid(z_t))
        out = lw["out_w"].float() @ y
        if lw["out_b"] is not None:
            out = out + lw["out_b"].float()
        h = h + out
    hf = _rms_step(h, model["norm_f"].float(), cfg["eps"])
    return model["lm_head"].float() @ hf


def generate_greedy(model, ids, n_new):
    """Greedy continuation: prefill with forward_full, then the step form. argmax over all logits rows."""
    logits, probes = forward_full(model, ids)
    cache = cache_after_prefill(model, probes)
    last = logits[-1]
    out, margins = [], []
    for i in range(n_new):
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        tok = int(torch.argmax(last))
        out.append(tok)
        if i + 1 < n_new:
            last = step(model, cache, tok)
    return out, min(margins)


# ----------------------------------------------------------------------------- independent scan formulation

def scan_closed_form(delta, A, B, C, x, D):
    """float64 non-recursive scan:
    h_t = sum_{s<=t} exp(A * sum_{r=s+1..t} delta_r) * delta_s * B_s * x_s,  y_t = C_t . h_t + D x_t.
    delta, x: [T, E]; A: [E, N]; B, C: [T, N]. Returns state [T, E, N], y [T, E]."""
    d, A, B, C, x, D = (t.double() for t in (delta, A, B, C, x, D))
    cs = torch.cumsum(d, 0)                                       # [T, E]
    T = d.shape[0]
    # decay[t, s] = exp(A * (cs[t] - cs[s])) for s <= t
    diff = cs[:, None, :] - cs[None, :, :]                        # [T, S, E]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    diff = torch.where(mask[:, :, None], diff, torch.zeros_like(diff))
    decay = torch.exp(diff[..., None] * A[None, None])            # [T, S, E, N]
    decay = decay * mask[:, :, None, None]
    inp = (d * x)[:, :, None] * B[:, None, :]                     # [S, E, N]
    state = (decay * inp[None]).sum(1)                            # [T, E, N]
    y = torch.einsum("ten,tn->te", state, C) + D * x
    return state, y
