#!/usr/bin/env python3
"""Checks our reference goldens against the real libraries: transformers and peft.

The goldens under data/ come from our own PyTorch re-implementations (mamba_ref.py,
transformer_ref.py, jamba_ref.py), which never import transformers or peft. This script loads
the same checkpoints with transformers and the same adapters with peft and compares, with the
tolerances the C++ tests use (golden.json's "tolerance", else 1e-4 / 2e-2; metric
max|lib - golden| / max|golden| per tensor, integer tensors exactly):

  forward cases (data/<case>/ with config.json + golden.safetensors)
    load        AutoModelForCausalLM.from_pretrained(case, float32, eager attention), CPU, eval();
                missing / mismatched tensors make the load a failure (transformers would
                otherwise initialise them randomly); the original mamba_ssm layout gets the
                status not_loadable when transformers refuses it, and is then also checked
                through an explicit conversion (config from golden.json's dims, tensors renamed)
    logits      the golden's input_ids, full sequence
    ssm.A/ssm.D -exp(A_log) and D read back from the loaded Mamba / Jamba mixers (1e-6)
    attn        output_attentions=True: layers.{i}.attn.weights
    router      output_router_logits=True: layers.{i}.moe.router_logits, and aux_loss against
                the model-level load_balancing_loss
    generate    model.generate(greedy, 8 new tokens, no EOS stop) against generated_ids
    bf16        the model loaded in bfloat16 against bf16compute.logits (2e-2)
  gradient cases (data/training/*_grad: config.json + batch.json + grads.safetensors)
    loss        mean cross-entropy over counted targets (+ router_aux_loss_coef x aux_loss for
                MoE models), and every parameter's gradient (1e-4); parameters transformers
                stores under other names (fused experts) are compared as sorted value multisets
  peft cases (data/training/lora, lora_rslora: our PEFT-layout adapters on mamba_grad)
    PeftModel.from_pretrained; PEFT >= 0.1x refuses LoRA on Mamba's out_proj, which these
    adapters use: that is reported as the status "refused" and the adapter is then loaded with
    PEFT's compatibility check switched off, so its arithmetic is still compared. The tensors
    PEFT loaded must equal the file's, and the logits the golden logits.safetensors.
  peft_written  a fresh adapter written BY peft on mamba_grad (in_proj, x_proj, dt_proj,
                embeddings; rsLoRA; B non-zero from a fixed seed) to OUT/peft_written/ with
                expected.json (ids, logits) for tests/reference/tst_peft_written.cpp
                (ARCHLENS_PEFT_WRITTEN=OUT/peft_written)
  our_adapter   with --our-adapter DIR --base DIR: an adapter written by archlens-cli finetune,
                loaded by peft, against the base with the adapter merged by hand

Every case is independent (its own try/except, traceback kept). Results: OUT/oracle.json and
OUT/oracle.txt, rewritten after each case. Exit 0 whatever the comparisons found; 2 when torch
cannot be imported, 3 when transformers cannot (nothing could be checked).

--dry-run walks the same cases and plans with headers read by struct + json only (no torch,
transformers or peft needed), validates the golden files, and reports what would be compared;
with torch importable it also reads every golden through safetensors_io and self-tests the
metric. It exits 1 when a case's files are inconsistent.

Usage: python3 tests/reference/device_oracle.py --out DIR [--dry-run] [--cases a,b]
                                               [--our-adapter DIR --base DIR]
"""

import argparse
import copy
import json
import math
import os
import platform
import re
import struct
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)

TOL_F32 = 1e-4
TOL_BF16 = 2e-2
TOL_CONST = 1e-6
TOL_LOSS = 1e-5
N_GENERATE = 8
# our adapters' ids for the fresh PEFT adapter (training/mamba_grad has vocab 11)
PEFT_WRITTEN_IDS = [1, 5, 7, 10, 0, 3, 3, 9, 2, 4, 6, 8]
PEFT_WRITTEN_SEED = 20240901
# legacy GPT-NeoX buffers transformers ignores on load (not parameters)
LEGACY_UNEXPECTED = re.compile(r"(attention\.bias|attention\.masked_bias|rotary_emb\.inv_freq)$")
# status precedence for a case: the worst of its checks
RANK = {"error": 5, "mismatch": 4, "not_loadable": 3, "refused": 2, "ok": 1, "planned": 1, "skipped": 0}


# ---------------------------------------------------------------------------------------------
# files (header reading needs no torch)

def st_header(path):
    """name -> {"dtype", "shape"} of a safetensors file, from its JSON header; validates sizes."""
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: shorter than 8 bytes")
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(f.read(n).decode("utf-8"))
        f.seek(0, os.SEEK_END)
        data_len = f.tell() - 8 - n
    header.pop("__metadata__", None)
    for name, e in header.items():
        count = 1
        for d in e["shape"]:
            count *= d
        b, end = e["data_offsets"]
        if e["dtype"] not in sizes or end - b != count * sizes[e["dtype"]] or end > data_len:
            raise ValueError(f"{path}: tensor {name} has inconsistent dtype/shape/offsets")
    return {k: {"dtype": v["dtype"], "shape": list(v["shape"])} for k, v in header.items()}


def read_json(path):
    with open(path) as f:
        return json.load(f)


def checkpoint_files(case_dir):
    """The weight files of a checkpoint folder (single file or index + shards)."""
    single = os.path.join(case_dir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    index = os.path.join(case_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        shards = sorted(set(read_json(index)["weight_map"].values()))
        return [os.path.join(case_dir, s) for s in shards]
    raise FileNotFoundError(f"{case_dir}: neither model.safetensors nor model.safetensors.index.json")


def checkpoint_header(case_dir):
    out = {}
    for path in checkpoint_files(case_dir):
        out.update(st_header(path))
    return out


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# discovery and plans (shared by --dry-run and the real run)

def discover(only=None):
    """Every case under data/: (name, kind, dir). Kinds: forward, grad, peft, skipped."""
    cases = []
    for root, dirs, files in os.walk(DATA):
        dirs.sort()
        if root == DATA:
            continue
        name = os.path.relpath(root, DATA)
        if "config.json" in files and "golden.safetensors" in files:
            kind = "forward"
        elif "config.json" in files and "batch.json" in files and "grads.safetensors" in files:
            kind = "grad"
        elif "adapter_config.json" in files and "logits.safetensors" in files:
            kind = "peft"
        elif "config.json" in files:
            kind = "skipped"
        elif os.path.dirname(name) == "" and files:
            kind = "skipped"  # e.g. hidden_attention: a golden without a checkpoint
        else:
            continue
        if only and name not in only and os.path.basename(name) not in only:
            continue
        cases.append((name, kind, root))
    cases.sort()
    return cases


def golden_tolerances(gjson):
    tol = gjson.get("tolerance", {}) if gjson else {}
    return float(tol.get("f32", TOL_F32)), float(tol.get("bf16compute", TOL_BF16))


def plan_forward(case_dir):
    """The checks a forward case gets, from its golden header and golden.json; raises on files
    that do not fit together."""
    cfg = read_json(os.path.join(case_dir, "config.json"))
    gh = st_header(os.path.join(case_dir, "golden.safetensors"))
    gpath = os.path.join(case_dir, "golden.json")
    gj = read_json(gpath) if os.path.exists(gpath) else {}
    tol, tol_bf16 = golden_tolerances(gj)
    ck = checkpoint_header(case_dir)
    problems = []
    if "input_ids" not in gh or gh["input_ids"]["dtype"] != "I32" or len(gh["input_ids"]["shape"]) != 1:
        raise ValueError(f"{case_dir}: golden input_ids missing or not I32 [T]")
    T = gh["input_ids"]["shape"][0]
    if gj and gj.get("T", T) != T:
        problems.append(f"golden.json T={gj.get('T')} but input_ids has {T}")
    if "logits" not in gh:
        raise ValueError(f"{case_dir}: golden has no logits")
    lshape = gh["logits"]["shape"]
    if len(lshape) != 2 or lshape[0] != T:
        problems.append(f"logits shape {lshape} is not [T={T}, V]")
    V = lshape[1]
    emb = [k for k in ck if re.search(r"(embeddings?|embed_tokens|embed_in)\.weight$", k)]
    if not emb:
        problems.append("no embedding tensor in the checkpoint")
    elif ck[emb[0]]["shape"][0] != V:
        problems.append(f"logits have {V} columns but {emb[0]} has {ck[emb[0]]['shape'][0]} rows")
    original = "model_type" not in cfg
    checks = [{"name": "load", "what": "from_pretrained, float32, eager; no missing or mismatched tensors"
               + ("; the original mamba_ssm layout: 'not_loadable' expected, then the converted checks"
                  if original else "")}]
    checks.append({"name": "logits", "golden": "logits", "tol": tol, "shape": lshape})
    for k in sorted(gh):
        m = re.match(r"layers\.(\d+)\.ssm\.(A|D)$", k)
        if m:
            checks.append({"name": k, "golden": k, "tol": TOL_CONST, "layer": int(m.group(1)), "const": m.group(2),
                           "shape": gh[k]["shape"]})
    attn = sorted(int(m.group(1)) for k in gh for m in [re.match(r"layers\.(\d+)\.attn\.weights$", k)] if m)
    for i in attn:
        s = gh[f"layers.{i}.attn.weights"]["shape"]
        if len(s) != 3 or s[1] != T or s[2] != T:
            problems.append(f"layers.{i}.attn.weights shape {s} is not [H, T, T]")
    if attn:
        checks.append({"name": "attentions", "layers": attn, "tol": tol,
                       "what": "output_attentions=True (eager): " + ", ".join(f"layers.{i}.attn.weights" for i in attn)})
    moe = sorted(int(m.group(1)) for k in gh for m in [re.match(r"layers\.(\d+)\.moe\.router_logits$", k)] if m)
    for i in moe:
        s = gh[f"layers.{i}.moe.router_logits"]["shape"]
        if len(s) != 2 or s[0] != T:
            problems.append(f"layers.{i}.moe.router_logits shape {s} is not [T, X]")
    if moe:
        checks.append({"name": "router_logits", "layers": moe, "tol": tol,
                       "what": "output_router_logits=True: " + ", ".join(f"layers.{i}.moe.router_logits" for i in moe)})
    if "load_balancing_loss" in gh:
        checks.append({"name": "load_balancing_loss", "golden": "load_balancing_loss", "tol": tol,
                       "what": "outputs.aux_loss (not x router_aux_loss_coef)"})
    for key in ("attention_layers", "moe_layers"):
        if key in gj and sorted(gj[key]) != (attn if key == "attention_layers" else moe) and \
                (attn if key == "attention_layers" else moe):
            problems.append(f"golden.json {key} {gj[key]} differs from the golden tensors")
    if "generated_ids" in gh:
        n = gh["generated_ids"]["shape"][0]
        checks.append({"name": "generate", "golden": "generated_ids", "n": n, "exact": True,
                       "what": f"greedy generate(), {n} new tokens, no EOS stop"})
    if "bf16compute.logits" in gh:
        checks.append({"name": "bf16compute.logits", "golden": "bf16compute.logits", "tol": tol_bf16,
                       "what": "the model loaded in bfloat16"})
    not_exposed = sorted(k for k in gh if k not in ("input_ids", "logits", "generated_ids", "load_balancing_loss",
                                                    "bf16compute.logits")
                         and not re.match(r"layers\.\d+\.(attn\.weights|moe\.router_logits|ssm\.A|ssm\.D)$", k))
    if original:
        checks.append({"name": "converted", "what": "config from golden.json dims, backbone.embedding -> "
                       "backbone.embeddings; logits and generate as above"})
    return {"kind": "forward", "T": T, "V": V, "checks": checks, "problems": problems,
            "not_exposed": not_exposed, "model_type": cfg.get("model_type"), "original_layout": original}


def plan_grad(case_dir):
    cfg = read_json(os.path.join(case_dir, "config.json"))
    batch = read_json(os.path.join(case_dir, "batch.json"))
    gh = st_header(os.path.join(case_dir, "grads.safetensors"))
    ck = checkpoint_header(case_dir)
    problems = []
    ids, targets = batch.get("ids"), batch.get("targets")
    if not ids or not targets or [len(r) for r in ids] != [len(r) for r in targets]:
        problems.append("batch.json ids / targets missing or of different shapes")
    if "loss" not in batch:
        problems.append("batch.json has no loss")
    if set(gh) != set(ck):
        problems.append(f"grads and model tensors differ: {sorted(set(gh) ^ set(ck))[:6]}")
    for k in gh:
        if k in ck and gh[k]["shape"] != ck[k]["shape"]:
            problems.append(f"{k}: grad shape {gh[k]['shape']} != weight shape {ck[k]['shape']}")
    coef = float(batch.get("aux_coef", 0.0))
    checks = [{"name": "load", "what": "from_pretrained, float32"},
              {"name": "loss", "tol": TOL_LOSS, "what": "mean CE over targets != -100"
               + (f" + {coef} x aux_loss" if coef else "")},
              {"name": "grads", "tol": TOL_F32, "what": f"{len(gh)} parameter gradients"}]
    if "ce_loss" in batch:
        checks.insert(1, {"name": "ce_loss", "tol": TOL_LOSS})
    if coef:
        checks.insert(2, {"name": "aux_loss", "tol": TOL_LOSS})
    return {"kind": "grad", "B": len(ids or []), "T": len((ids or [[]])[0]), "aux_coef": coef, "checks": checks,
            "problems": problems, "model_type": cfg.get("model_type")}


def adapter_modules(keys):
    """PEFT adapter file keys -> {module path: {"A": key, "B": key}}; raises on other tensors."""
    mods = {}
    for k in keys:
        m = re.match(r"base_model\.model\.(.+)\.(lora_A|lora_B)\.weight$", k) or \
            re.match(r"base_model\.model\.(.+)\.(lora_embedding_A|lora_embedding_B)$", k)
        if not m:
            raise ValueError(f"tensor {k} is not a LoRA A/B matrix in PEFT's layout")
        mods.setdefault(m.group(1), {})["A" if m.group(2).endswith("A") else "B"] = k
    for mod, ab in mods.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"module {mod} lacks its lora A or B")
    return mods


def peft_param_to_file_key(param_name, adapter_name="default"):
    """A PEFT model parameter name (get_base_model().named_parameters()) -> the adapter file key
    PEFT saves it under (adapter name removed, base_model.model. prefix), or None for base weights."""
    m = re.match(rf"(.+)\.(lora_A|lora_B)\.{adapter_name}\.weight$", param_name)
    if m:
        return f"base_model.model.{m.group(1)}.{m.group(2)}.weight"
    m = re.match(rf"(.+)\.(lora_embedding_A|lora_embedding_B)\.{adapter_name}$", param_name)
    if m:
        return f"base_model.model.{m.group(1)}.{m.group(2)}"
    return None


def plan_adapter(adapter_dir, base_dir):
    acfg = read_json(os.path.join(adapter_dir, "adapter_config.json"))
    ah = st_header(os.path.join(adapter_dir, "adapter_model.safetensors"))
    bh = checkpoint_header(base_dir)
    problems = []
    for k in ("peft_type", "r", "lora_alpha", "target_modules"):
        if k not in acfg:
            problems.append(f"adapter_config.json lacks {k}")
    if acfg.get("peft_type") != "LORA":
        problems.append(f"peft_type {acfg.get('peft_type')!r} is not LORA")
    mods = adapter_modules(ah)
    r = acfg.get("r")
    for mod, ab in mods.items():
        a, b = ah[ab["A"]]["shape"], ah[ab["B"]]["shape"]
        if mod.endswith("embeddings"):
            w = bh.get(mod + ".weight")
            ok = w is not None and a == [r, w["shape"][0]] and b == [w["shape"][1], r]
        else:
            w = bh.get(mod + ".weight")
            ok = w is not None and a == [r, w["shape"][1]] and b == [w["shape"][0], r]
        if not ok:
            problems.append(f"{mod}: A {a} / B {b} do not fit r={r} and the base weight "
                            f"{w['shape'] if w else 'missing'}")
        # the inverse of the name mapping the run uses on PEFT's parameters
        for ab_key in ab.values():
            leaf = ab_key[len("base_model.model."):]
            pname = re.sub(r"\.(lora_A|lora_B)\.weight$", r".\1.default.weight", leaf)
            pname = re.sub(r"\.(lora_embedding_A|lora_embedding_B)$", r".\1.default", pname)
            if peft_param_to_file_key(pname) != ab_key:
                problems.append(f"name mapping does not round-trip for {ab_key}")
    refused = sorted({m.rsplit(".", 1)[-1] for m in mods} & {"out_proj", "conv1d"})
    return {"r": r, "alpha": acfg.get("lora_alpha"), "use_rslora": bool(acfg.get("use_rslora", False)),
            "modules": sorted(mods), "peft_refuses": refused, "problems": problems}


def plan_peft(case_dir):
    base = os.path.normpath(os.path.join(case_dir, "..", "mamba_grad"))
    p = plan_adapter(case_dir, base)
    lh = st_header(os.path.join(case_dir, "logits.safetensors"))
    if set(lh) != {"ids", "logits"} or lh["ids"]["dtype"] != "I32" or \
            lh["logits"]["shape"][0] != lh["ids"]["shape"][0]:
        p["problems"].append(f"logits.safetensors holds {lh}, expected ids I32 [T] and logits [T, V]")
    checks = [{"name": "load", "what": "PeftModel.from_pretrained(mamba_grad, adapter)"
               + (f"; PEFT refuses {p['peft_refuses']} on Mamba: expect 'refused', then a load with its "
                  "compatibility check off" if p["peft_refuses"] else "")},
              {"name": "tensors", "what": f"the {2 * len(p['modules'])} tensors PEFT loaded == the file's"},
              {"name": "scaling", "what": "PEFT's scaling == alpha/sqrt(r) if use_rslora else alpha/r"},
              {"name": "logits", "golden": "logits.safetensors", "tol": TOL_F32}]
    p.update(kind="peft", base=base, checks=checks)
    return p


def plan_case(kind, case_dir):
    if kind == "forward":
        return plan_forward(case_dir)
    if kind == "grad":
        return plan_grad(case_dir)
    if kind == "peft":
        return plan_peft(case_dir)
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# metric and results

def rel_err(got, want):
    """max|got - want| / max|want| (max|got - want| when want is all zero), in float64; inf on
    shape mismatch or NaN. The C++ tests' relError."""
    import torch
    g = got.detach().to(torch.float64).reshape(-1)
    w = want.detach().to(torch.float64).reshape(-1)
    if g.numel() != w.numel():
        return math.inf
    if g.numel() == 0:
        return 0.0
    d = (g - w).abs()
    if torch.isnan(d).any():
        return math.inf
    ref = w.abs().max().item()
    return d.max().item() / ref if ref > 0 else d.max().item()


class Case:
    def __init__(self, name, kind):
        self.name, self.kind = name, kind
        self.checks = []
        self.notes = []
        self.traceback = None
        self.extra = {}
        self.t0 = time.time()

    def add(self, name, status, err=None, tol=None, note=None, **extra):
        c = {"name": name, "status": status}
        if err is not None:
            c["rel_err"] = float(err) if math.isfinite(err) else "inf"
        if tol is not None:
            c["tol"] = tol
        if note:
            c["note"] = note
        c.update(extra)
        self.checks.append(c)
        return c

    def compare(self, name, got, want, tol, note=None):
        e = rel_err(got, want)
        return self.add(name, "ok" if e <= tol else "mismatch", e, tol, note)

    def guarded(self, name, fn):
        """Runs one check; an exception becomes an 'error' entry with its traceback."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every check is independent
            self.add(name, "error", note=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            return None

    def result(self, versions):
        status = "skipped"
        for c in self.checks:
            if RANK[c["status"]] > RANK[status]:
                status = c["status"]
        errs = [c["rel_err"] for c in self.checks if isinstance(c.get("rel_err"), float)]
        out = {"case": self.name, "kind": self.kind, "status": status,
               "max_rel_err": max(errs) if errs else None,
               "inf_errors": sum(1 for c in self.checks if c.get("rel_err") == "inf"),
               "seconds": round(time.time() - self.t0, 3), "versions": versions, "checks": self.checks}
        if self.notes:
            out["notes"] = self.notes
        out.update(self.extra)
        if self.traceback:
            out["traceback"] = self.traceback
        return out


def write_report(out_dir, header, results):
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    doc = dict(header, cases=results, summary=counts)
    write_atomic(os.path.join(out_dir, "oracle.json"), json.dumps(doc, indent=1, default=str) + "\n")
    lines = [f"device_oracle ({header['mode']}) {header['started']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()), ""]
    for r in results:
        e = r.get("max_rel_err")
        lines.append(f"{r['case']:<28} {r['kind']:<12} {r['status']:<13} "
                     f"{'max rel err %.3g' % e if e is not None else ''}"
                     f"{' (+%d inf)' % r['inf_errors'] if r.get('inf_errors') else ''}  {r['seconds']}s")
        for c in r["checks"]:
            if c["status"] not in ("ok", "planned") or header["mode"] == "dry-run":
                err = c.get("rel_err")
                lines.append(f"    {c['name']:<34} {c['status']:<12}"
                             f"{(' rel err %s' % (('%.3g' % err) if isinstance(err, float) else err)) if err is not None else ''}"
                             f"{(' tol %g' % c['tol']) if 'tol' in c else ''}"
                             f"{('  ' + c['note']) if c.get('note') else ''}"
                             f"{('  ' + c['what']) if c.get('what') and header['mode'] == 'dry-run' else ''}")
        for n in r.get("notes", []):
            lines.append(f"    note: {n}")
        if r.get("traceback"):
            lines.append("    " + r["traceback"].strip().replace("\n", "\n    "))
    lines.append("")
    bad = counts.get("mismatch", 0) + counts.get("error", 0)
    lines.append("summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                 + (f" -- {bad} case(s) need a look" if bad else " -- nothing disagrees"))
    write_atomic(os.path.join(out_dir, "oracle.txt"), "\n".join(lines) + "\n")
    return counts


# ---------------------------------------------------------------------------------------------
# transformers / peft helpers (imported lazily: the dry run never needs them)

class NotLoadable(Exception):
    pass


def versions():
    v = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "peft", "safetensors", "tokenizers", "numpy"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            v[mod] = f"unavailable ({type(exc).__name__})"
    return v


def _dtype_kw():
    import transformers
    nums = [int(x) for x in re.findall(r"\d+", transformers.__version__)[:2]]
    return "dtype" if (nums[0], nums[1]) >= (4, 56) else "torch_dtype"


def load_model(path, dtype, eager=True, cls=None):
    """from_pretrained on CPU; raises NotLoadable when transformers refuses the folder or would
    leave tensors missing (randomly initialised) or mismatched. Returns (model, info dict)."""
    import transformers
    cls = cls or transformers.AutoModelForCausalLM
    kw = {_dtype_kw(): dtype, "output_loading_info": True}
    if eager:
        kw["attn_implementation"] = "eager"
    try:
        try:
            res = cls.from_pretrained(path, **kw)
        except TypeError as exc:
            if "output_loading_info" not in str(exc):
                raise
            kw.pop("output_loading_info")
            res = cls.from_pretrained(path, **kw)
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises, the folder is not loadable
        raise NotLoadable(f"{cls.__name__}.from_pretrained: {type(exc).__name__}: {str(exc)[:400]}") from exc
    if isinstance(res, tuple):
        model, info = res[0], (res[1] if len(res) > 1 and isinstance(res[1], dict) else {})
    else:
        model, info = res, {}
    info = {k: sorted(map(str, v)) for k, v in (info or {}).items() if isinstance(v, (list, set, tuple))}
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    missing = [k for k in info.get("missing_keys", []) if not (tied and k.endswith("lm_head.weight"))]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise NotLoadable(f"{cls.__name__}.from_pretrained left tensors missing {missing[:8]} / mismatched "
                          f"{mismatched[:8]} (transformers would initialise them randomly); unexpected: "
                          f"{info.get('unexpected_keys', [])[:8]}")
    model.eval()
    model.to("cpu")
    wrong = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != dtype})
    if wrong:
        model.to(dtype)
        info["note"] = f"parameters came as {wrong}, cast to {dtype}"
    return model, info


def forward(model, ids, **kw):
    """model(input_ids) with every logit row; retries the logits_to_keep spellings if the model
    returned fewer rows (Jamba's config carries num_logits_to_keep: 1)."""
    import torch
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=False, **kw)
    T = ids.shape[1]
    for extra in ({"logits_to_keep": 0}, {"num_logits_to_keep": 0}, {"num_logits_to_keep": None}):
        if out.logits.shape[1] == T:
            break
        try:
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=False, **kw, **extra)
        except TypeError:
            continue
    if out.logits.shape[1] != T:
        raise RuntimeError(f"the model returned logits for {out.logits.shape[1]} of {T} positions")
    return out


def greedy(model, ids, n):
    """model.generate(): greedy, n new tokens, EOS never stops it (the goldens have no EOS stop),
    an explicit all-ones attention mask (so pad-id tokens in the prompt are not masked)."""
    import torch
    gc = copy.deepcopy(model.generation_config)
    for obj in (gc, model.generation_config, model.config):
        try:
            obj.eos_token_id = None
        except Exception:  # noqa: BLE001
            pass
    gc.do_sample = False
    gc.num_beams = 1
    gc.max_new_tokens = n
    gc.min_new_tokens = None
    for k in ("temperature", "top_p", "top_k"):
        if hasattr(gc, k):
            setattr(gc, k, None)
    if getattr(gc, "pad_token_id", None) is None:
        gc.pad_token_id = 0
    with torch.no_grad():
        seq = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gc)
    return seq[0, ids.shape[1]:].tolist()


def greedy_nocache(model, ids, n):
    import torch
    seq = ids
    for _ in range(n):
        nxt = forward(model, seq).logits[0, -1].argmax().view(1, 1)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[0, ids.shape[1]:].tolist()


def check_generate(case, model, ids, want, name="generate"):
    note = None
    try:
        got = greedy(model, ids, len(want))
    except Exception as exc:  # noqa: BLE001
        got = greedy_nocache(model, ids, len(want))
        note = (f"generate() raised {type(exc).__name__}: {str(exc)[:200]}; compared a no-cache greedy loop "
                "instead (differs by design for dynamic RoPE)")
    if len(got) < len(want):
        note = (note or "") + f" generation stopped after {len(got)} tokens"
    case.add(name, "ok" if got == want else "mismatch", note=note, got=got, want=want)


def layer_index(name):
    m = re.search(r"layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def per_layer(outputs, layers, n_layers):
    """A transformers per-layer tuple (attentions / router_logits) -> {layer: tensor}: either one
    entry per listed layer (None entries dropped) or one per model layer."""
    items = [o[0] if isinstance(o, (tuple, list)) else o for o in (outputs or ())]
    present = [o for o in items if o is not None]
    if len(present) == len(layers):
        return dict(zip(layers, present))
    if len(items) == n_layers:
        return {i: items[i] for i in layers if items[i] is not None}
    raise RuntimeError(f"transformers returned {len(present)} entries ({len(items)} with None) for layers {layers} "
                       f"of a {n_layers}-layer model")


# ---------------------------------------------------------------------------------------------
# the real checks

def run_forward(case, case_dir, plan):
    import torch
    from safetensors_io import read_safetensors
    golden = read_safetensors(os.path.join(case_dir, "golden.safetensors"))
    ids = golden["input_ids"].long().view(1, -1)
    if plan["not_exposed"]:
        case.extra["not_compared"] = plan["not_exposed"]
        case.notes.append(f"{len(plan['not_exposed'])} golden probes transformers does not expose were not compared "
                          "(listed in oracle.json, not_compared)")
    try:
        model, info = load_model(case_dir, torch.float32)
    except NotLoadable as exc:
        if plan["original_layout"]:
            import transformers
            try:  # the Mamba class itself, in case only the Auto lookup (no model_type) fails
                model, info = load_model(case_dir, torch.float32, eager=False, cls=transformers.MambaForCausalLM)
            except NotLoadable as exc2:
                case.add("load", "not_loadable", note=f"not loadable by transformers: {exc}; {exc2}")
                case.guarded("converted", lambda: run_converted(case, case_dir, golden, ids, plan))
                return
            case.notes.append(f"AutoModelForCausalLM refused it ({exc}); MambaForCausalLM loaded it")
        else:
            case.add("load", "error", note=str(exc))
            return
    unexpected = [k for k in info.get("unexpected_keys", []) if not LEGACY_UNEXPECTED.search(k)]
    case.add("load", "mismatch" if unexpected else "ok",
             note=(f"tensors transformers ignored: {unexpected[:8]}" if unexpected else None)
             or info.get("note") or (f"legacy buffers ignored: {len(info.get('unexpected_keys', []))}"
                                     if info.get("unexpected_keys") else None),
             model_class=type(model).__name__)
    model_checks(case, model, golden, ids, plan, case_dir)


def model_checks(case, model, golden, ids, plan, case_dir, prefix=""):
    """logits, ssm constants, attentions, router logits + aux loss, generate, bf16 on a loaded model."""
    import torch
    checks = {c["name"]: c for c in plan["checks"]}
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    P = prefix

    case.guarded(P + "logits", lambda: case.compare(P + "logits", forward(model, ids).logits[0], golden["logits"],
                                                    checks["logits"]["tol"]))

    def consts():
        params = dict(model.named_parameters())
        for c in plan["checks"]:
            if "const" not in c:
                continue
            i, which = c["layer"], c["const"]
            cands = [k for k in params if layer_index(k) == i and k.endswith(".A_log" if which == "A" else ".D")]
            if len(cands) != 1:
                case.add(P + c["name"], "error", note=f"found {cands} for layer {i}")
                continue
            v = params[cands[0]].detach().float()
            got = -torch.exp(v) if which == "A" else v
            case.compare(P + c["name"], got, golden[c["golden"]], c["tol"], note=cands[0])
    if any("const" in c for c in plan["checks"]):
        case.guarded(P + "ssm constants", consts)

    if "attentions" in checks:
        def attn():
            c = checks["attentions"]
            out = forward(model, ids, output_attentions=True)
            got = per_layer(out.attentions, c["layers"], n_layers)
            for i in c["layers"]:
                name = f"layers.{i}.attn.weights"
                if i not in got:
                    case.add(P + name, "error", note="transformers returned no attention weights for this layer")
                else:
                    case.compare(P + name, got[i][0], golden[name], c["tol"])
        case.guarded(P + "attentions", attn)

    if "router_logits" in checks or "load_balancing_loss" in checks:
        def router():
            out = forward(model, ids, output_router_logits=True)
            if "router_logits" in checks:
                c = checks["router_logits"]
                got = per_layer(out.router_logits, c["layers"], n_layers)
                for i in c["layers"]:
                    name = f"layers.{i}.moe.router_logits"
                    want = golden[name]
                    if i not in got:
                        case.add(P + name, "error", note="transformers returned no router logits for this layer")
                        continue
                    g = got[i].reshape(-1, want.shape[-1])
                    r = case.compare(P + name, g, want, c["tol"])
                    probs = f"layers.{i}.moe.router_probs"
                    if r["status"] != "ok" and probs in golden and rel_err(g, golden[probs]) <= c["tol"]:
                        r["note"] = "transformers returned router probabilities here, which match router_probs"
            if "load_balancing_loss" in checks:
                aux = getattr(out, "aux_loss", None)
                if aux is None:
                    case.add(P + "load_balancing_loss", "error", note="outputs.aux_loss is None")
                else:
                    case.compare(P + "load_balancing_loss", aux.reshape(1), golden["load_balancing_loss"].reshape(1),
                                 checks["load_balancing_loss"]["tol"])
        case.guarded(P + "router_logits", router)

    if "generate" in checks:
        case.guarded(P + "generate", lambda: check_generate(case, model, ids, golden["generated_ids"].tolist(),
                                                            P + "generate"))

    if "bf16compute.logits" in checks and not prefix:
        def bf16():
            m16, _ = load_model(case_dir, torch.bfloat16)
            got = forward(m16, ids).logits[0].float()
            case.compare("bf16compute.logits", got, golden["bf16compute.logits"], checks["bf16compute.logits"]["tol"])
        case.guarded("bf16compute.logits", bf16)


def run_converted(case, case_dir, golden, ids, plan):
    """The original mamba_ssm layout through an explicit conversion (what transformers' conversion
    script does): MambaConfig from golden.json's dims, backbone.embedding -> backbone.embeddings."""
    import torch
    import transformers
    from safetensors_io import read_safetensors
    gj = read_json(os.path.join(case_dir, "golden.json"))
    d = gj["dims"]
    cfg = transformers.MambaConfig(
        vocab_size=d["vocab_rows"], hidden_size=d["d_model"], state_size=d["d_state"],
        num_hidden_layers=d["n_layers"], conv_kernel=d["d_conv"], expand=d["d_inner"] // d["d_model"],
        time_step_rank=d["dt_rank"], use_bias=gj.get("use_bias", False), use_conv_bias=gj.get("use_conv_bias", True),
        residual_in_fp32=True, layer_norm_epsilon=1e-5, tie_word_embeddings=gj.get("tied", True))
    model = transformers.MambaForCausalLM(cfg).float().eval()
    sd = {}
    for path in checkpoint_files(case_dir):
        for k, v in read_safetensors(path).items():
            sd[k.replace("backbone.embedding.", "backbone.embeddings.")] = v.float()
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not (cfg.tie_word_embeddings and k == "lm_head.weight")]
    if missing or res.unexpected_keys:
        case.add("converted.load", "error", note=f"missing {missing}, unexpected {res.unexpected_keys}")
        return
    if "lm_head.weight" in sd and cfg.tie_word_embeddings:
        same = torch.equal(sd["lm_head.weight"], sd["backbone.embeddings.weight"])
        case.add("converted.lm_head_equals_embedding", "ok" if same else "mismatch",
                 note="the stored lm_head.weight is the embedding (tied)")
    case.add("converted.load", "ok", note="config from golden.json dims; backbone.embedding renamed")
    model_checks(case, model, golden, ids, plan, case_dir, prefix="converted.")


def run_grad(case, case_dir, plan):
    import torch
    import torch.nn.functional as F
    from safetensors_io import read_safetensors
    batch = read_json(os.path.join(case_dir, "batch.json"))
    want = read_safetensors(os.path.join(case_dir, "grads.safetensors"))
    try:
        model, info = load_model(case_dir, torch.float32)
    except NotLoadable as exc:
        case.add("load", "error", note=str(exc))
        return
    case.add("load", "ok", note=info.get("note"))
    ids = torch.tensor(batch["ids"], dtype=torch.long)
    targets = torch.tensor(batch["targets"], dtype=torch.long)
    coef = plan["aux_coef"]
    kw = {"output_router_logits": True} if coef else {}
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, use_cache=False, **kw)
    if out.logits.shape[1] != ids.shape[1]:
        for extra in ({"logits_to_keep": 0}, {"num_logits_to_keep": 0}):
            try:
                out = model(input_ids=ids, use_cache=False, **kw, **extra)
            except TypeError:
                continue
            if out.logits.shape[1] == ids.shape[1]:
                break
    logits = out.logits
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=-100)
    loss = ce
    if coef:
        aux = out.aux_loss
        loss = ce + coef * aux
        e = abs(aux.item() - batch["aux_loss"]) / max(1.0, abs(batch["aux_loss"]))
        case.add("aux_loss", "ok" if e <= TOL_LOSS else "mismatch", e, TOL_LOSS,
                 got=aux.item(), want=batch["aux_loss"])
    if "ce_loss" in batch:
        e = abs(ce.item() - batch["ce_loss"]) / max(1.0, abs(batch["ce_loss"]))
        case.add("ce_loss", "ok" if e <= TOL_LOSS else "mismatch", e, TOL_LOSS, got=ce.item(), want=batch["ce_loss"])
    e = abs(loss.item() - batch["loss"]) / max(1.0, abs(batch["loss"]))
    case.add("loss", "ok" if e <= TOL_LOSS else "mismatch", e, TOL_LOSS, got=loss.item(), want=batch["loss"])
    loss.backward()
    got = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    none = sorted(n for n, g in got.items() if g is None)
    worst, matched = 0.0, 0
    for n in sorted(want):
        if n in got and got[n] is not None:
            e = rel_err(got[n], want[n])
            matched += 1
            if e > TOL_F32:
                case.add(f"grad {n}", "mismatch", e, TOL_F32)
            worst = max(worst, e)
    case.add("grads", "ok" if worst <= TOL_F32 else "mismatch", worst, TOL_F32,
             note=f"{matched} of {len(want)} gradients compared by name"
             + (f"; no gradient for {none[:6]}" if none else ""))
    ours_left = sorted(set(want) - set(got))
    lib_left = sorted(set(got) - set(want))
    if ours_left or lib_left:
        # transformers stores these under other names (e.g. fused experts): compare the multisets
        a = torch.cat([got[n].reshape(-1).double() for n in lib_left if got[n] is not None] or [torch.zeros(0)])
        b = torch.cat([want[n].reshape(-1).double() for n in ours_left] or [torch.zeros(0)])
        if a.numel() != b.numel():
            case.add("grads (renamed)", "mismatch", note=f"{a.numel()} vs {b.numel()} values; library names "
                     f"{lib_left[:6]}, golden names {ours_left[:6]}")
        else:
            case.compare("grads (renamed)", a.sort().values, b.sort().values, TOL_F32,
                         note=f"sorted values of {lib_left[:4]}... vs {ours_left[:4]}...")


class _PeftCompatOff:
    """Switches off PEFT's refusal of LoRA on Mamba's out_proj / conv1d (PEFT >= 0.14 or so)."""

    def __enter__(self):
        import peft.tuners.tuners_utils as tu
        targets = [(tu, "_check_lora_target_modules_mamba")]
        for cls in (tu.BaseTuner, getattr(__import__("peft").tuners.lora, "LoraModel", None)):
            if cls is not None:
                targets.append((cls, "_check_target_module_compatiblity"))
        try:
            import peft.tuners.lora.model as lm
            targets.append((lm, "_check_lora_target_modules_mamba"))
        except Exception:  # noqa: BLE001
            pass
        self.saved = []
        for obj, attr in targets:
            if attr in vars(obj):
                self.saved.append((obj, attr, vars(obj)[attr]))
                setattr(obj, attr, (lambda *a, **k: None) if isinstance(obj, type(tu)) else
                        (lambda self, *a, **k: None))
        return self

    def __exit__(self, *exc):
        for obj, attr, fn in self.saved:
            setattr(obj, attr, fn)
        return False


def peft_load(case, base_dir, adapter_dir, name="load"):
    """PeftModel.from_pretrained on a fresh base; when PEFT refuses a Mamba target, records
    'refused' and loads with the check off. Returns the PeftModel."""
    import torch
    from peft import PeftModel
    base, _ = load_model(base_dir, torch.float32, eager=False)
    try:
        pm = PeftModel.from_pretrained(base, adapter_dir)
        case.add(name, "ok")
        return pm
    except ValueError as exc:
        if "incompatible" not in str(exc).lower():
            raise
        case.add(name, "refused", note=f"PEFT refuses this adapter: {str(exc)[:300]}")
    base, _ = load_model(base_dir, torch.float32, eager=False)  # the refused attempt may have modified it
    with _PeftCompatOff():
        pm = PeftModel.from_pretrained(base, adapter_dir)
    case.add(name + " (compat check off)", "ok", note="loaded with PEFT's Mamba compatibility check switched off")
    return pm


def check_peft_tensors(case, pm, adapter_dir):
    import torch
    from safetensors_io import read_safetensors
    file = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    loaded = {}
    for n, p in pm.get_base_model().named_parameters():
        k = peft_param_to_file_key(n)
        if k is not None:
            loaded[k] = p.detach()
    missing = sorted(set(file) - set(loaded))
    extra = sorted(set(loaded) - set(file))
    diff = sorted(k for k in set(file) & set(loaded) if not torch.equal(file[k].float(), loaded[k].float()))
    ok = not missing and not extra and not diff
    case.add("tensors", "ok" if ok else "mismatch",
             note=None if ok else f"in the file but not loaded {missing[:6]}; loaded but not in the file {extra[:6]}; "
                                  f"different values {diff[:6]}",
             count=len(file))


def check_peft_scaling(case, pm, acfg):
    r, alpha = acfg["r"], acfg.get("lora_alpha", acfg["r"])
    want = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
    seen = set()
    for m in pm.get_base_model().modules():
        sc = getattr(m, "scaling", None)
        if isinstance(sc, dict) and "default" in sc:
            seen.add(round(float(sc["default"]), 12))
    ok = seen == {round(want, 12)}
    case.add("scaling", "ok" if ok else "mismatch", note=f"PEFT {sorted(seen)}, expected {want}")


def run_peft(case, case_dir, plan):
    from safetensors_io import read_safetensors
    golden = read_safetensors(os.path.join(case_dir, "logits.safetensors"))
    pm = peft_load(case, plan["base"], case_dir)
    case.guarded("tensors", lambda: check_peft_tensors(case, pm, case_dir))
    case.guarded("scaling", lambda: check_peft_scaling(case, pm, read_json(os.path.join(case_dir,
                                                                                         "adapter_config.json"))))
    ids = golden["ids"].long().view(1, -1)
    case.guarded("logits", lambda: case.compare("logits", forward(pm.get_base_model(), ids).logits[0],
                                                golden["logits"], TOL_F32))


def run_peft_written(case, out_dir):
    """An adapter written by peft itself, for tst_peft_written.cpp."""
    import torch
    import peft
    from peft import LoraConfig, PeftModel, get_peft_model
    base_dir = os.path.join(DATA, "training", "mamba_grad")
    base, _ = load_model(base_dir, torch.float32, eager=False)
    ids = torch.tensor([PEFT_WRITTEN_IDS], dtype=torch.long)
    base_logits = forward(base, ids).logits[0].clone()
    r, alpha = 4, 8.0
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none", use_rslora=True, task_type="CAUSAL_LM",
                     target_modules=["in_proj", "x_proj", "dt_proj", "embeddings"])
    pm = get_peft_model(base, cfg)
    gen = torch.Generator().manual_seed(PEFT_WRITTEN_SEED)
    with torch.no_grad():
        for n, p in sorted(pm.named_parameters()):
            if ".lora_" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    pm.eval()
    logits = forward(pm.get_base_model(), ids).logits[0].clone()
    delta = rel_err(logits, base_logits)
    dst = os.path.join(out_dir, "peft_written")
    os.makedirs(dst, exist_ok=True)
    try:
        pm.save_pretrained(dst, save_embedding_layers=False)
    except TypeError:
        pm.save_pretrained(dst)
    keys = sorted(st_header(os.path.join(dst, "adapter_model.safetensors")))
    scaling = alpha / math.sqrt(r)
    expected = {
        "what": "logits of training/mamba_grad + this adapter, computed by transformers + peft "
                "(tests/reference/device_oracle.py); read by tests/reference/tst_peft_written.cpp",
        "base": "training/mamba_grad", "ids": PEFT_WRITTEN_IDS, "shape": list(logits.shape),
        "logits": [[float(x) for x in row] for row in logits.tolist()],
        "scaling": scaling, "r": r, "lora_alpha": alpha, "use_rslora": True, "seed": PEFT_WRITTEN_SEED,
        "tolerance": TOL_F32, "metric": "max|ours - expected| / max|expected|",
        "adapter_effect_rel": delta, "tensors": keys,
        "versions": {"peft": peft.__version__, "transformers": __import__("transformers").__version__,
                     "torch": torch.__version__},
    }
    write_atomic(os.path.join(dst, "expected.json"), json.dumps(expected, indent=1) + "\n")
    case.add("written", "ok" if delta > 1e-3 else "mismatch", note=f"{len(keys)} tensors; the adapter moves the "
             f"logits by {delta:.3g} (relative)", path=dst)
    case.guarded("layout", lambda: case.add("layout", "ok", note=f"{len(adapter_modules(keys))} modules, every "
                                            "tensor a LoRA A/B in the layout our loader reads"))
    # PEFT reads back what it wrote
    pm2 = PeftModel.from_pretrained(load_model(base_dir, torch.float32, eager=False)[0], dst)
    case.compare("reload", forward(pm2.get_base_model(), ids).logits[0], logits, 1e-6,
                 note="PEFT loading its own adapter")


def run_our_adapter(case, adapter_dir, base_dir):
    """An adapter archlens-cli finetune wrote: PEFT loads it, and its logits equal the base with
    the adapter merged by hand (W + s·B·A; embeddings E + s·(B·A)^T with a tied head kept on the
    base embedding, as PEFT's unmerged model computes)."""
    import torch
    from safetensors_io import read_safetensors
    acfg = read_json(os.path.join(adapter_dir, "adapter_config.json"))
    plan = plan_adapter(adapter_dir, base_dir)
    if plan["problems"]:
        case.add("files", "mismatch", note="; ".join(plan["problems"]))
    vocab = int(read_json(os.path.join(base_dir, "config.json")).get("vocab_size", 2))
    ids = torch.tensor([[(7 * i + 3) % vocab for i in range(16)]], dtype=torch.long)
    pm = peft_load(case, base_dir, adapter_dir)
    case.guarded("tensors", lambda: check_peft_tensors(case, pm, adapter_dir))
    case.guarded("scaling", lambda: check_peft_scaling(case, pm, acfg))
    got = forward(pm.get_base_model(), ids).logits[0]

    merged, _ = load_model(base_dir, torch.float32, eager=False)
    base_logits = forward(merged, ids).logits[0].clone()
    r, alpha = acfg["r"], acfg.get("lora_alpha", acfg["r"])
    s = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
    tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    params = dict(merged.named_parameters())
    with torch.no_grad():
        emb = merged.get_input_embeddings()
        head = merged.get_output_embeddings()
        if head is not None and head.weight is emb.weight:
            head.weight = torch.nn.Parameter(emb.weight.detach().clone())  # untie: the head stays on the base
        for mod, ab in adapter_modules(tensors).items():
            A, B = tensors[ab["A"]].float(), tensors[ab["B"]].float()
            w = params[mod + ".weight"]
            w += s * ((B @ A).t() if mod.endswith("embeddings") else B @ A)
    want = forward(merged, ids).logits[0]
    case.compare("logits", got, want, TOL_F32, note=f"PEFT vs the hand-merged base (scaling {s:g})")
    effect = rel_err(want, base_logits)
    case.add("adapter_effect", "ok" if effect > 1e-4 else "mismatch",
             note=f"the adapter moves the logits by {effect:.3g} (relative): "
                  + ("the comparison means something" if effect > 1e-4 else "too small to tell adapters apart"))


# ---------------------------------------------------------------------------------------------
# dry run

def dry_run(args, header):
    results, failed = [], 0
    have_torch = False
    try:
        import torch  # noqa: F401
        have_torch = True
    except Exception:  # noqa: BLE001
        pass
    for name, kind, case_dir in discover(args.cases):
        case = Case(name, kind)
        if kind == "skipped":
            case.add("case", "skipped", note="no checkpoint with goldens here (no config.json + golden.safetensors,"
                     " batch.json or adapter)")
            results.append(case.result(header["versions"]))
            continue
        try:
            plan = plan_case(kind, case_dir)
            for c in plan["checks"]:
                case.add(c["name"], "planned", tol=c.get("tol"), what=c.get("what") or
                         (f"golden {c['golden']} {c.get('shape', '')}" if c.get("golden") else None))
            for p in plan["problems"]:
                case.add("files", "mismatch", note=p)
            if kind == "forward" and plan["not_exposed"]:
                case.notes.append(f"{len(plan['not_exposed'])} golden probes transformers does not expose "
                                  f"(not compared): {', '.join(plan['not_exposed'][:6])}"
                                  + (" ..." if len(plan["not_exposed"]) > 6 else ""))
            if kind == "peft" and plan["peft_refuses"]:
                case.notes.append(f"targets {plan['peft_refuses']}: recent PEFT refuses them on Mamba")
            if have_torch:
                self_test(case, kind, case_dir, plan)
        except Exception as exc:  # noqa: BLE001
            case.add("plan", "error", note=f"{type(exc).__name__}: {exc}")
            case.traceback = traceback.format_exc()
        r = case.result(header["versions"])
        failed += r["status"] in ("error", "mismatch")
        results.append(r)
    if args.our_adapter:
        case = Case("our_adapter", "our_adapter")
        try:
            p = plan_adapter(args.our_adapter, args.base)
            case.add("files", "mismatch" if p["problems"] else "planned", note="; ".join(p["problems"]) or
                     f"r={p['r']} alpha={p['alpha']} rslora={p['use_rslora']} on {len(p['modules'])} modules")
        except Exception as exc:  # noqa: BLE001
            case.add("plan", "error", note=f"{type(exc).__name__}: {exc}")
        r = case.result(header["versions"])
        failed += r["status"] in ("error", "mismatch")
        results.append(r)
    pw = Case("peft_written", "peft_written")
    pw.add("written", "planned", what=f"LoraConfig(r=4, alpha=8, rslora, in_proj/x_proj/dt_proj/embeddings) on "
           f"training/mamba_grad, seed {PEFT_WRITTEN_SEED}, ids {PEFT_WRITTEN_IDS} -> {args.out}/peft_written/")
    results.append(pw.result(header["versions"]))
    counts = write_report(args.out, header, results)
    planned = sum(1 for r in results for c in r["checks"] if c["status"] == "planned")
    print(f"dry run: {len(results)} cases, {planned} planned checks, " +
          ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
          ("" if have_torch else " (torch not importable: goldens not read, metric not self-tested)"))
    print(f"report: {os.path.join(args.out, 'oracle.txt')}")
    return 1 if failed else 0


def self_test(case, kind, case_dir, plan):
    """With torch: read the goldens the run would read, check dims, and the metric on them."""
    from safetensors_io import read_safetensors
    if kind == "forward":
        g = read_safetensors(os.path.join(case_dir, "golden.safetensors"))
        gj_path = os.path.join(case_dir, "golden.json")
        if os.path.exists(gj_path):
            gj = read_json(gj_path)
            if "input_ids" in gj and g["input_ids"].tolist() != gj["input_ids"]:
                case.add("files", "mismatch", note="golden.json input_ids differ from golden.safetensors")
            if "generated_ids" in gj and "generated_ids" in g and g["generated_ids"].tolist() != gj["generated_ids"]:
                case.add("files", "mismatch", note="golden.json generated_ids differ from golden.safetensors")
        if int(g["input_ids"].max()) >= plan["V"] or int(g["input_ids"].min()) < 0:
            case.add("files", "mismatch", note="input_ids outside the vocabulary")
        ref = g["logits"]
    elif kind == "grad":
        g = read_safetensors(os.path.join(case_dir, "grads.safetensors"))
        ref = next(iter(g.values()))
    else:
        g = read_safetensors(os.path.join(case_dir, "logits.safetensors"))
        ref = g["logits"]
        read_safetensors(os.path.join(case_dir, "adapter_model.safetensors"))
    bumped = ref.clone().double()
    bumped.view(-1)[0] += 10 * TOL_F32 * float(ref.abs().max())
    ok = rel_err(ref, ref) == 0.0 and rel_err(bumped, ref) > TOL_F32 and rel_err(ref[:1], ref) == math.inf
    case.add("metric self-test", "planned" if ok else "error", what="rel_err(g, g) = 0, a 10x tol bump is caught, "
             "shape mismatch = inf")


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for oracle.json, oracle.txt, peft_written/")
    ap.add_argument("--dry-run", action="store_true", help="plan and validate files; import no transformers/peft")
    ap.add_argument("--cases", type=lambda s: [c for c in s.split(",") if c], default=None,
                    help="comma-separated case names (default: all)")
    ap.add_argument("--our-adapter", help="an adapter archlens-cli finetune wrote")
    ap.add_argument("--base", help="the base model folder of --our-adapter")
    ap.add_argument("--threads", type=int, default=4, help="torch CPU threads")
    args = ap.parse_args()
    if bool(args.our_adapter) != bool(args.base):
        ap.error("--our-adapter and --base go together")
    os.makedirs(args.out, exist_ok=True)
    header = {"tool": "tests/reference/device_oracle.py", "mode": "dry-run" if args.dry_run else "run",
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "data": DATA,
              "tolerances": {"f32": TOL_F32, "bf16compute": TOL_BF16, "constants": TOL_CONST, "loss": TOL_LOSS,
                             "metric": "max|lib - golden| / max|golden| per tensor; integer tensors exact"}}
    if args.dry_run:
        header["versions"] = {"python": platform.python_version()}
        return dry_run(args, header)

    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        print(f"device_oracle: torch cannot be imported ({exc}); nothing can be checked", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(0)
    header["versions"] = versions()
    results = []
    try:
        import transformers  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        c = Case("transformers", "setup")
        c.add("import", "error", note=f"transformers cannot be imported: {exc}")
        results.append(c.result(header["versions"]))
        write_report(args.out, header, results)
        print(f"device_oracle: transformers cannot be imported ({exc})", file=sys.stderr)
        return 3
    try:
        import peft  # noqa: F401
        have_peft = True
    except Exception as exc:  # noqa: BLE001
        have_peft = f"{type(exc).__name__}: {exc}"

    jobs = []
    for name, kind, case_dir in discover(args.cases):
        jobs.append((name, kind, case_dir))
    if not args.cases or "peft_written" in args.cases:
        jobs.append(("peft_written", "peft_written", None))
    if args.our_adapter:
        jobs.append(("our_adapter", "our_adapter", None))
    for name, kind, case_dir in jobs:
        case = Case(name, kind)
        print(f"[oracle] {name} ({kind})", flush=True)
        try:
            if kind == "skipped":
                case.add("case", "skipped", note="no checkpoint with goldens here")
            elif kind in ("peft", "peft_written", "our_adapter") and have_peft is not True:
                case.add("peft", "skipped", note=f"peft cannot be imported: {have_peft}")
            elif kind == "peft_written":
                run_peft_written(case, args.out)
            elif kind == "our_adapter":
                run_our_adapter(case, args.our_adapter, args.base)
            else:
                plan = plan_case(kind, case_dir)
                for p in plan["problems"]:
                    case.add("files", "mismatch", note=p)
                {"forward": run_forward, "grad": run_grad, "peft": run_peft}[kind](case, case_dir, plan)
        except Exception as exc:  # noqa: BLE001 - one case never stops the others
            case.add("case", "error", note=f"{type(exc).__name__}: {str(exc)[:500]}")
            case.traceback = traceback.format_exc()
        results.append(case.result(header["versions"]))
        r = results[-1]
        print(f"[oracle] {name}: {r['status']}"
              + (f", max rel err {r['max_rel_err']:.3g}" if r["max_rel_err"] is not None else "")
              + f" ({r['seconds']}s)", flush=True)
        write_report(args.out, header, results)
    counts = write_report(args.out, header, results)
    print("device_oracle: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f"; report in {os.path.join(args.out, 'oracle.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
