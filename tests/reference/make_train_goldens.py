"""Goldens for the training engine (tests/training), from PyTorch autograd.

Uses the independent reference forward of mamba_ref.py (torch + numpy only, no transformers,
no peft). Writes into data/training/:

  mamba_grad/      a tiny random Mamba in the Hugging Face layout (config.json,
                   model.safetensors), a batch (batch.json: ids, targets with -100 ignored),
                   the mean cross-entropy over counted positions (loss in batch.json) and the
                   gradient of every parameter (grads.safetensors, Hugging Face names);
  lora/, lora_rslora/  PEFT-layout adapters for that model (adapter_config.json,
                   adapter_model.safetensors) on in_proj, x_proj, dt_proj, out_proj and
                   embeddings, with the logits of the adapted model (logits.safetensors).
                   The reference computes the adapted model from merged weights
                   (W + s·B·A; embeddings E + s·(B·A)^T with the tied head kept on the base
                   embedding, as PEFT's unmerged model does), an independent route from the
                   C++ unmerged forward.

Then make_train_goldens_arch.py writes the Llama / Mixtral / Jamba cases (llama_grad/, mixtral_grad/,
jamba_grad/: loss with the MoE load-balancing term and every parameter's gradient).

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_train_goldens.py
"""

import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_train_goldens_arch  # noqa: E402
import mamba_ref as ref  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(HERE, "data", "training")
V, D, L, N, K, R = 11, 8, 2, 4, 4, 2
E = 2 * D
B_SEQ, T = 3, 10


def make_model(gen):
    def rnd(*shape, scale=0.3):
        return (torch.randn(*shape, generator=gen) * scale).float()

    w = {"backbone.embeddings.weight": rnd(V, D, scale=0.5)}
    for i in range(L):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        w[p + "norm.weight"] = 1.0 + rnd(D, scale=0.1)
        w[m + "in_proj.weight"] = rnd(2 * E, D)
        w[m + "conv1d.weight"] = rnd(E, 1, K, scale=0.4)
        w[m + "conv1d.bias"] = rnd(E, scale=0.1)
        w[m + "x_proj.weight"] = rnd(R + 2 * N, E)
        w[m + "dt_proj.weight"] = rnd(E, R, scale=0.5)
        w[m + "dt_proj.bias"] = rnd(E, scale=0.5) - 1.0
        w[m + "A_log"] = torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1) + rnd(E, N, scale=0.1)
        w[m + "D"] = 1.0 + rnd(E, scale=0.1)
        w[m + "out_proj.weight"] = rnd(D, E)
    w["backbone.norm_f.weight"] = 1.0 + rnd(D, scale=0.1)
    return w


CONFIG = {
    "architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": D, "num_hidden_layers": L,
    "state_size": N, "expand": 2, "intermediate_size": E, "conv_kernel": K, "time_step_rank": R,
    "use_bias": False, "use_conv_bias": True, "hidden_act": "silu", "layer_norm_epsilon": 1e-5,
    "residual_in_fp32": True, "vocab_size": V, "tie_word_embeddings": True, "torch_dtype": "float32",
}


def write_model(d, w):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.detach() for k, v in w.items()})


def model_dict(w, emb=None, lin=None, head=None):
    """mamba_ref model dict from HF-named tensors; optional replacements (merged LoRA)."""
    lin = lin or {}
    layers = []
    for i in range(L):
        m = f"backbone.layers.{i}.mixer."
        g = lambda n: lin.get(m + n, w[m + n])  # noqa: E731
        layers.append(dict(norm=w[f"backbone.layers.{i}.norm.weight"], in_w=g("in_proj.weight"), in_b=None,
                           conv_w=w[m + "conv1d.weight"], conv_b=w[m + "conv1d.bias"], x_w=g("x_proj.weight"),
                           dt_w=g("dt_proj.weight"), dt_b=w[m + "dt_proj.bias"], A_log=w[m + "A_log"],
                           D=w[m + "D"], out_w=g("out_proj.weight"), out_b=None))
    cfg = ref.parse_config(CONFIG)
    e = w["backbone.embeddings.weight"]
    return {"cfg": cfg, "emb": e if emb is None else emb, "lm_head": e if head is None else head,
            "norm_f": w["backbone.norm_f.weight"], "layers": layers}


def grads_golden(gen, w):
    d = os.path.join(OUT, "mamba_grad")
    write_model(d, w)
    ids = torch.randint(0, V, (B_SEQ, T), generator=gen)
    targets = torch.randint(0, V, (B_SEQ, T), generator=gen)
    mask = torch.rand(B_SEQ, T, generator=gen) < 0.35
    targets[mask] = -100
    params = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    model = model_dict(params)
    logits = torch.stack([ref.forward_full(model, ids[b])[0] for b in range(B_SEQ)])  # [B, T, V]
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params.items()}
    write_safetensors(os.path.join(d, "grads.safetensors"), grads)
    with open(os.path.join(d, "batch.json"), "w") as f:
        json.dump({"ids": ids.tolist(), "targets": targets.tolist(), "loss": loss.item(),
                   "note": "targets of -100 are ignored; loss is the mean over counted positions"}, f, indent=1)


def lora_golden(gen, w, name, r, alpha, rslora):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    s = alpha / math.sqrt(r) if rslora else alpha / r
    ins = {"in_proj": D, "x_proj": E, "dt_proj": R, "out_proj": E}
    outs = {"in_proj": 2 * E, "x_proj": R + 2 * N, "dt_proj": E, "out_proj": D}
    tensors, lin = {}, {}
    for i in range(L):
        for mod in ins:
            path = f"backbone.layers.{i}.mixer.{mod}"
            A = (torch.randn(r, ins[mod], generator=gen) * 0.3).float()
            Bm = (torch.randn(outs[mod], r, generator=gen) * 0.3).float()
            tensors[f"base_model.model.{path}.lora_A.weight"] = A
            tensors[f"base_model.model.{path}.lora_B.weight"] = Bm
            lin[path + ".weight"] = w[path + ".weight"] + s * (Bm @ A)
    Ae = (torch.randn(r, V, generator=gen) * 0.3).float()
    Be = (torch.randn(D, r, generator=gen) * 0.3).float()
    tensors["base_model.model.backbone.embeddings.lora_embedding_A"] = Ae
    tensors["base_model.model.backbone.embeddings.lora_embedding_B"] = Be
    emb = w["backbone.embeddings.weight"] + s * (Be @ Ae).t()
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "../mamba_grad", "r": r,
           "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": ["in_proj", "x_proj", "dt_proj", "out_proj",
                                                                        "embeddings"],
           "bias": "none", "fan_in_fan_out": False, "use_rslora": rslora, "init_lora_weights": True,
           "inference_mode": True, "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
           "use_dora": False}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    ids = torch.randint(0, V, (T,), generator=gen)
    with torch.no_grad():
        logits, _ = ref.forward_full(model_dict(w, emb=emb, lin=lin, head=w["backbone.embeddings.weight"]), ids)
    write_safetensors(os.path.join(d, "logits.safetensors"),
                      {"ids": ids.to(torch.int32), "logits": logits.float()})


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    gen = torch.Generator().manual_seed(20240611)
    w = make_model(gen)
    grads_golden(gen, w)
    lora_golden(gen, w, "lora", r=3, alpha=6.0, rslora=False)
    lora_golden(gen, w, "lora_rslora", r=4, alpha=3.0, rslora=True)
    print("wrote", OUT)
    make_train_goldens_arch.main()


if __name__ == "__main__":
    main()
