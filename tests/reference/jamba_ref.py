"""Plain-PyTorch reference for Jamba (JambaForCausalLM, transformers slow path, use_mamba_kernels false).

Written from docs/model-formats.md sections 3 and 9; shares no code with the C++. Attention, SwiGLU and the
sparse MoE block come from transformer_ref (attention here has no positional encoding at all); the Mamba
mixer is Mamba-1 (as mamba_ref) with RMSNorms on dt, B and C after the x_proj split.

Contents
  parse_config / load_checkpoint        layer schedule from attn_layer_period/offset and expert_layer_period/offset
  forward_full(model, ids, dtype)       full sequence with probes (attention weights, SSM probes, router statistics)
  init_cache / step(...)                incremental form: KV cache for attention layers, conv/ssm state for Mamba
  cache_after_prefill / generate_greedy prefill with the full form, then step
  check_ssm_probes / ssm_goldens        fp64 and closed-form-scan self-checks, golden tensors of the Mamba layers
"""

import json
import math
import os

import torch
import torch.nn.functional as F

import mamba_ref
import transformer_ref as tr

SSM_PROBES = ("x", "delta", "B", "C", "state", "state_norm", "y", "gate")


# ----------------------------------------------------------------------------- config / loading

def parse_config(cfg):
    if cfg.get("model_type") != "jamba":
        raise ValueError("not a Jamba config")
    D = int(cfg["hidden_size"])
    H = int(cfg["num_attention_heads"])
    L = int(cfg["num_hidden_layers"])
    R = cfg.get("mamba_dt_rank", "auto")
    ap, ao = int(cfg.get("attn_layer_period", 8)), int(cfg.get("attn_layer_offset", 4))
    ep, eo = int(cfg.get("expert_layer_period", 2)), int(cfg.get("expert_layer_offset", 1))
    X = int(cfg.get("num_experts", 16))
    I = int(cfg["intermediate_size"])
    if cfg.get("hidden_act", "silu") != "silu":
        raise NotImplementedError(cfg.get("hidden_act"))
    if cfg.get("sliding_window") is not None:
        raise NotImplementedError("Jamba sliding_window (flash-attention only in transformers)")
    out = dict(arch="jamba", D=D, H=H, L=L, Hkv=int(cfg.get("num_key_value_heads") or H), hd=D // H,
               V=int(cfg["vocab_size"]), eps=float(cfg.get("rms_norm_eps", 1e-6)),
               max_pos=int(cfg.get("max_position_embeddings", 262144)),
               tied=bool(cfg.get("tie_word_embeddings", False)), norm="rms", parallel=False,
               qkv_bias=False, o_bias=False, qk_norm=False, clip_qkv=None, sliding_window=None,
               E=int(cfg.get("mamba_expand", 2)) * D, N=int(cfg.get("mamba_d_state", 16)),
               K=int(cfg.get("mamba_d_conv", 4)), R=math.ceil(D / 16) if R == "auto" else int(R),
               conv_bias=bool(cfg.get("mamba_conv_bias", True)), proj_bias=bool(cfg.get("mamba_proj_bias", False)))
    out["mixer"] = ["attention" if i % ap == ao else "mamba" for i in range(L)]
    out["ffn"] = [dict(kind="moe", X=X, k=int(cfg.get("num_experts_per_tok", 2)), I=I, norm_topk=False,
                       shared=None, names="jamba") if (X > 1 and i % ep == eo) else dict(kind="swiglu", I=I)
                  for i in range(L)]
    return out


def extra_dims(cfg):
    return {"mamba_d_inner": cfg["E"], "mamba_d_state": cfg["N"], "mamba_d_conv": cfg["K"], "mamba_dt_rank": cfg["R"],
            "layers_block_type": cfg["mixer"]}


def load_checkpoint(path):
    with open(os.path.join(path, "config.json")) as f:
        cfg = parse_config(json.load(f))
    get = tr._Getter(tr._read_weights(path))
    D, H, Hkv, hd, V = cfg["D"], cfg["H"], cfg["Hkv"], cfg["hd"], cfg["V"]
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    model = {"cfg": cfg, "legacy": {}, "emb": get("model.embed_tokens.weight", [V, D]),
             "norm_f": (get("model.final_layernorm.weight", [D]), None)}
    head = get("lm_head.weight", [V, D], optional=True)
    if head is None:
        if not cfg["tied"]:
            raise KeyError("lm_head.weight missing and embeddings not tied")
        head = model["emb"]
    model["lm_head"] = head
    layers = []
    for i in range(cfg["L"]):
        p = f"model.layers.{i}."
        lw = dict(n1=(get(p + "input_layernorm.weight", [D]), None), n2=(get(p + "pre_ff_layernorm.weight", [D]), None))
        if cfg["mixer"][i] == "attention":
            a = p + "self_attn."
            lw.update(wq=get(a + "q_proj.weight", [H * hd, D]), wk=get(a + "k_proj.weight", [Hkv * hd, D]),
                      wv=get(a + "v_proj.weight", [Hkv * hd, D]), wo=get(a + "o_proj.weight", [D, H * hd]),
                      bq=None, bk=None, bv=None, bo=None, q_norm=None, k_norm=None)
        else:
            m = p + "mamba."
            pb = cfg["proj_bias"]
            lw["mamba"] = dict(
                in_w=get(m + "in_proj.weight", [2 * E, D]), in_b=get(m + "in_proj.bias", [2 * E]) if pb else None,
                conv_w=get(m + "conv1d.weight", [E, 1, K]),
                conv_b=get(m + "conv1d.bias", [E]) if cfg["conv_bias"] else None,
                x_w=get(m + "x_proj.weight", [R + 2 * N, E]),
                dt_w=get(m + "dt_proj.weight", [E, R]), dt_b=get(m + "dt_proj.bias", [E]),
                A_log=get(m + "A_log", [E, N]), D=get(m + "D", [E]),
                out_w=get(m + "out_proj.weight", [D, E]), out_b=get(m + "out_proj.bias", [D]) if pb else None,
                dt_norm=get(m + "dt_layernorm.weight", [R]), b_norm=get(m + "b_layernorm.weight", [N]),
                c_norm=get(m + "c_layernorm.weight", [N]))
        f = cfg["ffn"][i]
        ff = p + "feed_forward."
        if f["kind"] == "moe":
            X, I = f["X"], f["I"]
            lw["ffn"] = dict(router=get(ff + "router.weight", [X, D]), shared=None, shared_gate=None,
                             experts=[dict(wg=get(ff + f"experts.{j}.gate_proj.weight", [I, D]),
                                           wu=get(ff + f"experts.{j}.up_proj.weight", [I, D]),
                                           wd=get(ff + f"experts.{j}.down_proj.weight", [D, I])) for j in range(X)])
        else:
            I = f["I"]
            lw["ffn"] = dict(wg=get(ff + "gate_proj.weight", [I, D]), wu=get(ff + "up_proj.weight", [I, D]),
                             wd=get(ff + "down_proj.weight", [D, I]))
        layers.append(lw)
    model["layers"] = layers
    get.finish()
    return model


cast_model = tr.cast_model


# ----------------------------------------------------------------------------- full form

def mixer_full(cfg, mw, u):
    """Jamba Mamba mixer, slow path. u [T, D] in the compute dtype. Returns (out [T, D], probes)."""
    T = u.shape[0]
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    dtype = u.dtype
    sd = tr._stat_dtype(dtype)
    xz = F.linear(u, mw["in_w"], mw["in_b"])
    x_pre, z = xz[:, :E], xz[:, E:]
    conv = F.conv1d(x_pre.t().unsqueeze(0), mw["conv_w"], mw["conv_b"], padding=K - 1, groups=E)
    x = F.silu(conv[0, :, :T].t())
    dbc = F.linear(x, mw["x_w"])
    dt_low = tr.rmsnorm(dbc[:, :R], mw["dt_norm"], cfg["eps"])
    B = tr.rmsnorm(dbc[:, R:R + N], mw["b_norm"], cfg["eps"])
    C = tr.rmsnorm(dbc[:, R + N:], mw["c_norm"], cfg["eps"])
    delta = F.softplus(F.linear(dt_low, mw["dt_w"], mw["dt_b"]))
    A = -torch.exp(mw["A_log"].to(sd))
    dA = torch.exp(A[None] * delta[:, :, None])
    dBu = delta[:, :, None] * B[:, None, :].to(sd) * x[:, :, None].to(sd)
    h = torch.zeros(E, N, dtype=dtype)
    states, ys = [], []
    for t in range(T):
        h = dA[t] * h + dBu[t]
        states.append(h)
        ys.append(torch.matmul(h.to(dtype), C[t]))
    state = torch.stack(states)
    y = torch.stack(ys) + x * mw["D"]
    gate = F.silu(z)
    out = F.linear(y * gate, mw["out_w"], mw["out_b"])
    return out, dict(x=x, delta=delta, B=B, C=C, state=state, state_norm=state.norm(dim=-1), y=y, gate=gate,
                     x_pre=x_pre, A=A, D=mw["D"])


def forward_full(model, ids, dtype=torch.float32, seq_lens=None):
    """Returns (logits fp32 [T, V], per-layer probes: attn_weights/k/v (attention), ssm (Mamba), moe)."""
    cfg = model["cfg"]
    m = cast_model(model, dtype)
    h = m["emb"][ids]
    probes = []
    for i, (lw, spec) in enumerate(zip(m["layers"], cfg["ffn"])):
        p = dict(attn_weights=None, k=None, v=None, ssm=None, moe=None)
        hn = tr.rmsnorm(h, lw["n1"][0], cfg["eps"])
        if cfg["mixer"][i] == "attention":
            out, p["attn_weights"], p["k"], p["v"] = tr.attention_full(cfg, lw, hn, use_rope=False)
        else:
            out, p["ssm"] = mixer_full(cfg, lw["mamba"], hn)
        h = h + out
        f_out, p["moe"] = tr.ffn_full(cfg, spec, lw["ffn"], tr.rmsnorm(h, lw["n2"][0], cfg["eps"]))
        h = h + f_out
        probes.append(p)
    hf = tr.rmsnorm(h, m["norm_f"][0], cfg["eps"])
    return F.linear(hf, m["lm_head"]).float(), probes


# ----------------------------------------------------------------------------- incremental form

def init_cache(model):
    cfg = model["cfg"]
    layers = []
    for kind in cfg["mixer"]:
        if kind == "attention":
            layers.append(dict(k=[], v=[]))
        else:
            layers.append(dict(conv=torch.zeros(cfg["E"], cfg["K"]), ssm=torch.zeros(cfg["E"], cfg["N"])))
    return dict(layers=layers, pos=0)


def _mamba_step(cfg, mw, u, c):
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    xz = mw["in_w"].float() @ u
    if mw["in_b"] is not None:
        xz = xz + mw["in_b"].float()
    x_t, z_t = xz[:E], xz[E:]
    conv = torch.cat([c["conv"][:, 1:], x_t[:, None]], dim=1)
    c["conv"] = conv
    w = mw["conv_w"].float()
    acc = torch.zeros(E) if mw["conv_b"] is None else mw["conv_b"].float().clone()
    for k in range(K):
        acc = acc + conv[:, k] * w[:, 0, k]
    xs = acc * torch.sigmoid(acc)
    dbc = mw["x_w"].float() @ xs
    d_low = tr._rms_step(dbc[:R], mw["dt_norm"].float(), cfg["eps"])
    Bt = tr._rms_step(dbc[R:R + N], mw["b_norm"].float(), cfg["eps"])
    Ct = tr._rms_step(dbc[R + N:], mw["c_norm"].float(), cfg["eps"])
    pre = mw["dt_w"].float() @ d_low + mw["dt_b"].float()
    dt = torch.where(pre > 20, pre, torch.log1p(torch.exp(pre)))
    A = -torch.exp(mw["A_log"].float())
    c["ssm"] = c["ssm"] * torch.exp(dt[:, None] * A) + torch.outer(dt * xs, Bt)
    y = c["ssm"] @ Ct + mw["D"].float() * xs
    y = y * (z_t * torch.sigmoid(z_t))
    out = mw["out_w"].float() @ y
    if mw["out_b"] is not None:
        out = out + mw["out_b"].float()
    return out


def step(model, cache, token):
    """One token through the incremental form (fp32). Updates cache; returns logits [V]."""
    cfg = model["cfg"]
    pos = cache["pos"]
    h = model["emb"][token].float()
    for i, (lw, spec, lc) in enumerate(zip(model["layers"], cfg["ffn"], cache["layers"])):
        u = tr._rms_step(h, lw["n1"][0].float(), cfg["eps"])
        if cfg["mixer"][i] == "attention":
            h = h + tr.attention_step(cfg, lw, u, lc, pos, rope=None)
        else:
            h = h + _mamba_step(cfg, lw["mamba"], u, lc)
        h = h + tr._ffn_step(cfg, spec, lw["ffn"], tr._rms_step(h, lw["n2"][0].float(), cfg["eps"]))
    cache["pos"] = pos + 1
    return model["lm_head"].float() @ tr._rms_step(h, model["norm_f"][0].float(), cfg["eps"])


def cache_after_prefill(model, probes, T):
    cfg = model["cfg"]
    K = cfg["K"]
    layers = []
    for p in probes:
        if p["ssm"] is None:
            k, v = p["k"].float(), p["v"].float()
            layers.append(dict(k=[k[:, t, :] for t in range(T)], v=[v[:, t, :] for t in range(T)]))
        else:
            xp = p["ssm"]["x_pre"].float().t()
            conv = torch.zeros(cfg["E"], K)
            n = min(K, T)
            conv[:, K - n:] = xp[:, T - n:]
            layers.append(dict(conv=conv, ssm=p["ssm"]["state"][-1].float().clone()))
    return dict(layers=layers, pos=T)


def check_cache(model, cache, pre, log, check, tol):
    for i, (a, b) in enumerate(zip(cache["layers"], pre["layers"])):
        if "k" in a:
            check(f"step_vs_full.layers.{i}.k_cache", torch.stack(a["k"]), torch.stack(b["k"]), tol, log)
            check(f"step_vs_full.layers.{i}.v_cache", torch.stack(a["v"]), torch.stack(b["v"]), tol, log)
        else:
            check(f"step_vs_full.layers.{i}.conv_state", a["conv"], b["conv"], tol, log)
            check(f"step_vs_full.layers.{i}.ssm_state", a["ssm"], b["ssm"], tol, log)


def generate_greedy(model, ids, n_new):
    return tr.generate_greedy(model, ids, n_new, forward=forward_full, prefill_cache=cache_after_prefill,
                              stepper=step)


# ----------------------------------------------------------------------------- self-checks and goldens

def check_ssm_probes(probes, probes64, log, check, tol):
    for i, (p, p64) in enumerate(zip(probes, probes64)):
        if p["ssm"] is None:
            continue
        s, s64 = p["ssm"], p64["ssm"]
        for k in SSM_PROBES:
            check(f"full_f32_vs_f64.layers.{i}.ssm.{k}", s[k], s64[k], tol, log)
        st, y = mamba_ref.scan_closed_form(s["delta"], s["A"], s["B"], s["C"], s["x"], s["D"])
        check(f"closed_form_scan.layers.{i}.state", s["state"], st, tol, log)
        check(f"closed_form_scan.layers.{i}.y", s["y"], y, tol, log)


def ssm_goldens(probes):
    g = {}
    for i, p in enumerate(probes):
        if p["ssm"] is None:
            continue
        for k in SSM_PROBES + ("A", "D"):
            g[f"layers.{i}.ssm.{k}"] = p["ssm"][k].float().contiguous()
    return g


# ----------------------------------------------------------------------------- synthesis (used by make_goldens_arch)

def hf_config_dict(c, common):
    D = c["D"]
    return dict(common, architectures=["JambaForCausalLM"], model_type="jamba", attention_dropout=0.0,
                attn_layer_offset=1, attn_layer_period=3, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                expert_layer_offset=0, expert_layer_period=2, hidden_act="silu", intermediate_size=c["I"],
                mamba_conv_bias=True, mamba_d_conv=c["K"], mamba_d_state=c["N"], mamba_dt_rank=math.ceil(D / 16),
                mamba_expand=c["expand"], mamba_proj_bias=False, max_position_embeddings=262144,
                num_experts=c["X"], num_experts_per_tok=c["k"], num_key_value_heads=c["Hkv"], num_logits_to_keep=1,
                output_router_logits=False, rms_norm_eps=1e-06, router_aux_loss_coef=0.001, sliding_window=None,
                use_mamba_kernels=False)


def make_weights(c):
    D, H, Hkv, L, V, I = c["D"], c["H"], c["Hkv"], c["L"], c["V"], c["I"]
    hd = D // H
    E, N, K, R = c["expand"] * D, c["N"], c["K"], math.ceil(D / 16)
    rn = lambda *s: torch.randn(*s, dtype=torch.float32)  # noqa: E731
    lin = lambda o, i, g=1.0: rn(o, i) * g / math.sqrt(i)  # noqa: E731
    w = {"model.embed_tokens.weight": rn(V, D)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rn(D)
        w[p + "pre_ff_layernorm.weight"] = 1 + 0.1 * rn(D)
        if i % 3 == 1:
            a = p + "self_attn."
            w[a + "q_proj.weight"] = lin(H * hd, D, 1.5)
            w[a + "k_proj.weight"] = lin(Hkv * hd, D, 1.5)
            w[a + "v_proj.weight"] = lin(Hkv * hd, D)
            w[a + "o_proj.weight"] = lin(D, H * hd, 1.5)
        else:
            m = p + "mamba."
            w[m + "in_proj.weight"] = lin(2 * E, D)
            w[m + "conv1d.weight"] = rn(E, 1, K) / math.sqrt(K)
            w[m + "conv1d.bias"] = 0.1 * rn(E)
            w[m + "x_proj.weight"] = lin(R + 2 * N, E)
            w[m + "dt_proj.weight"] = lin(E, R)
            dt = torch.exp(torch.rand(E) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            w[m + "dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
            w[m + "A_log"] = torch.log(torch.arange(1, N + 1, dtype=torch.float32))[None].repeat(E, 1) + 0.05 * rn(E, N)
            w[m + "D"] = 1 + 0.1 * rn(E)
            w[m + "out_proj.weight"] = lin(D, E, 3.0)
            w[m + "dt_layernorm.weight"] = 1 + 0.1 * rn(R)
            w[m + "b_layernorm.weight"] = 1 + 0.1 * rn(N)
            w[m + "c_layernorm.weight"] = 1 + 0.1 * rn(N)
        ff = p + "feed_forward."
        if i % 2 == 0:
            w[ff + "router.weight"] = lin(c["X"], D, 2.5)
            for j in range(c["X"]):
                w[ff + f"experts.{j}.gate_proj.weight"] = lin(I, D)
                w[ff + f"experts.{j}.up_proj.weight"] = lin(I, D)
                w[ff + f"experts.{j}.down_proj.weight"] = lin(D, I, 1.5)
        else:
            w[ff + "gate_proj.weight"] = lin(I, D)
            w[ff + "up_proj.weight"] = lin(I, D)
            w[ff + "down_proj.weight"] = lin(D, I, 1.5)
    w["model.final_layernorm.weight"] = 1 + 0.1 * rn(D)
    w["lm_head.weight"] = lin(V, D, 2.0)
    return w
