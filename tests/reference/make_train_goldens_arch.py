"""Autograd goldens for the Llama / Mixtral / Jamba training models (tests/training/tst_decoder_train.cpp).

Uses the independent reference forwards of transformer_ref.py and jamba_ref.py (torch + numpy only, no
transformers, no code of ours): the checkpoint's tensors are made leaf tensors with requires_grad and handed
to the reference loaders, so the reference builds its model from exactly those tensors and autograd gives the
gradient of every parameter (a tied head accumulates into the embedding, as in transformers). The objective is
transformers' with output_router_logits: mean cross-entropy over counted positions (-100 ignored) plus
router_aux_loss_coef times load_balancing_loss_func over the router logits of every MoE layer of every sequence
of the batch (concatenated; no attention mask). Writes into data/training/<arch>_grad/:

  config.json, model.safetensors   the tiny random checkpoint (Hugging Face names and config keys)
  batch.json                       ids, targets, ce_loss, aux_loss, aux_coef, loss (= ce + coef * aux)
  grads.safetensors                d loss / d parameter for every parameter

Called by make_train_goldens.py (the documented command); alone:
  /usr/bin/python3 tests/reference/make_train_goldens_arch.py
"""

import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jamba_ref as jr  # noqa: E402
import transformer_ref as tr  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(HERE, "data", "training")
V, D, H, HKV, I, X, K_TOP = 13, 16, 4, 2, 24, 4, 2
B_SEQ, T = 3, 10
AUX_COEF = 0.02


def llama_like(arch, gen):
    L = 2
    hd = D // H
    cfg = {"architectures": ["LlamaForCausalLM" if arch == "llama" else "MixtralForCausalLM"], "model_type": arch,
           "vocab_size": V, "hidden_size": D, "intermediate_size": I, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": HKV, "head_dim": hd, "hidden_act": "silu",
           "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "attention_bias": False,
           "tie_word_embeddings": arch == "llama", "torch_dtype": "float32",
           "rope_theta": 10000.0 if arch == "llama" else 1e6}
    if arch == "llama":
        cfg["mlp_bias"] = False
    else:
        cfg.update(num_local_experts=X, num_experts_per_tok=K_TOP, router_aux_loss_coef=AUX_COEF,
                   output_router_logits=True)

    def rnd(*shape, scale):
        return (torch.randn(*shape, generator=gen) * scale).float()

    w = {"model.embed_tokens.weight": rnd(V, D, scale=0.5)}
    for i in range(L):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        w[p + "input_layernorm.weight"] = 1.0 + rnd(D, scale=0.1)
        w[a + "q_proj.weight"] = rnd(H * hd, D, scale=0.4)
        w[a + "k_proj.weight"] = rnd(HKV * hd, D, scale=0.4)
        w[a + "v_proj.weight"] = rnd(HKV * hd, D, scale=0.3)
        w[a + "o_proj.weight"] = rnd(D, H * hd, scale=0.3)
        w[p + "post_attention_layernorm.weight"] = 1.0 + rnd(D, scale=0.1)
        if arch == "llama":
            w[p + "mlp.gate_proj.weight"] = rnd(I, D, scale=0.3)
            w[p + "mlp.up_proj.weight"] = rnd(I, D, scale=0.3)
            w[p + "mlp.down_proj.weight"] = rnd(D, I, scale=0.3)
        else:
            m = p + "block_sparse_moe."
            w[m + "gate.weight"] = rnd(X, D, scale=0.6)
            for e in range(X):
                w[m + f"experts.{e}.w1.weight"] = rnd(I, D, scale=0.3)
                w[m + f"experts.{e}.w2.weight"] = rnd(D, I, scale=0.3)
                w[m + f"experts.{e}.w3.weight"] = rnd(I, D, scale=0.3)
    w["model.norm.weight"] = 1.0 + rnd(D, scale=0.1)
    if arch != "llama":
        w["lm_head.weight"] = rnd(V, D, scale=0.4)
    return cfg, w, tr


def jamba(gen):
    # 4 layers: attention at i % 3 == 1, MoE at i % 2 == 0 (jamba_ref.make_weights' pattern)
    c = dict(D=D, H=H, Hkv=HKV, L=4, V=V, I=I, expand=2, N=4, K=4, X=X, k=K_TOP)
    cfg = jr.hf_config_dict(c, {"vocab_size": V, "hidden_size": D, "num_hidden_layers": 4,
                                "num_attention_heads": H, "tie_word_embeddings": False,
                                "torch_dtype": "float32"})
    cfg.update(router_aux_loss_coef=AUX_COEF, output_router_logits=True, rms_norm_eps=1e-5)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    return cfg, jr.make_weights(c), jr


def golden(name, cfg, w, ref, gen):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.detach() for k, v in w.items()})
    ids = torch.randint(0, V, (B_SEQ, T), generator=gen)
    targets = torch.randint(0, V, (B_SEQ, T), generator=gen)
    targets[torch.rand(B_SEQ, T, generator=gen) < 0.35] = -100
    params = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    saved = tr._read_weights
    tr._read_weights = lambda path: params  # the reference loader builds its model from the leaf tensors
    try:
        model = ref.load_checkpoint(d)
    finally:
        tr._read_weights = saved
    # the whole computation in float64 (the reference casts the float32 leaves, so gradients flow back to
    # them): the goldens are the exact values our float32 engine approximates
    outs = [ref.forward_full(model, ids[b], dtype=torch.float64) for b in range(B_SEQ)]
    logits = torch.stack([o[0] for o in outs])
    ce = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
    router_logits = [p["moe"]["router_logits"].double() for o in outs for p in o[1] if p.get("moe") is not None]
    if router_logits:
        aux = tr.load_balancing_loss(router_logits, X, K_TOP)
        coef = float(cfg["router_aux_loss_coef"])
    else:
        aux, coef = torch.zeros(()), 0.0
    loss = ce + coef * aux
    loss.backward()
    write_safetensors(os.path.join(d, "grads.safetensors"), {k: p.grad.detach().clone() for k, p in params.items()})
    with open(os.path.join(d, "batch.json"), "w") as f:
        json.dump({"ids": ids.tolist(), "targets": targets.tolist(), "ce_loss": ce.item(), "aux_loss": aux.item(),
                   "aux_coef": coef, "loss": loss.item(),
                   "note": "targets of -100 are ignored; ce_loss is the mean over counted positions; "
                           "loss = ce_loss + aux_coef * aux_loss (load_balancing_loss_func over all router rows)"},
                  f, indent=1)


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240712)
    for arch in ("llama", "mixtral"):
        shutil.rmtree(os.path.join(OUT, arch + "_grad"), ignore_errors=True)
        cfg, w, ref = llama_like(arch, gen)
        golden(arch + "_grad", cfg, w, ref, gen)
    shutil.rmtree(os.path.join(OUT, "jamba_grad"), ignore_errors=True)
    cfg, w, ref = jamba(gen)
    golden("jamba_grad", cfg, w, ref, gen)
    print("wrote", ", ".join(os.path.join(OUT, a + "_grad") for a in ("llama", "mixtral", "jamba")))


if __name__ == "__main__":
    main()
