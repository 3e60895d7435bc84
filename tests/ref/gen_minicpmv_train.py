#!/usr/bin/env python3
"""Golden data for the minicpmv LLM's training path (tests/unit/test_minicpmv_train.c).

The tiny model of gen_minicpmv.py, loaded back from tests/golden/minicpmv/model (its bf16
weights, exact in fp32), its modules assembled as the hub's MiniCPMV holds them (llm, vpm,
resampler). The LLM runs with eager attention and output_attentions, so the softmax
probabilities are part of the graph.

Objective J = CE(logits, labels) + sum_k <dP_k, P_k>:
  - CE: torch cross_entropy(ignore_index=-100, mean) with labels ALIGNED with the logits
    (OpenBMB's dataset pre-shifts its targets; no shift here).
  - P_k: for capture layer CAP_LAYERS[k], the probabilities of the capture rows of each
    sample over that sample's image-token columns (its image_bound ranges in order),
    sample b's block [H, R_b, NQ_b], samples concatenated; dP_k a fixed random tensor of
    the same layout (the Lavender loss's gradient stand-in).
Gradients are taken w.r.t. every llm.* parameter (full fine-tuning) and the resampler
output scattered into the embeddings (d_resampled). A second pass does the same with PEFT
LoRA (r 4, alpha 8, dropout 0) on q/k/v/o of the LLM, A and B random so that every LoRA
gradient is non-zero, and records the LoRA gradients and the logits with the adapters.

Files (tests/golden/minicpmv/):
  train.safetensors  labels [B,T], cap_layers [K], cap_rows [RC], cap_off [B+1],
                     loss [1] (CE alone), cap_probs.k / dprobs.k (flat, layout above),
                     d_resampled [NI,Q,D] (of J), grad.<hub name> (F16: |value| <= ~1,
                     fp16 keeps 11 bits, far below the test tolerances),
                     lora.<module>.A/B, lora_grad.<module>.A/B, lora_logits [B,T,V],
                     lora_d_resampled [NI,Q,D]
Also prints the key names PEFT 0.21 writes for this model with modules_to_save
(embed_tokens, resampler), the format lvd_minicpmv_lora_save follows
(tests/ref/check_minicpmv_peft.py loads an exported adapter back).
"""
import copy
import json
import os
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv as G  # noqa: E402

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig  # noqa: E402
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer  # noqa: E402

OUT = G.OUT
CAP_LAYERS = [1, 0]
CAP_ROWS = [[23, 11, 21], [14, 22]]
# OpenBMB's regex (finetune.py): only the LLM's attention projections, not vpm's
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=r"llm\..*layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)")


class MiniCPMV(nn.Module):
    """the hub model's module tree (llm, vpm, resampler) with its forward on our inputs"""

    def __init__(self):
        super().__init__()
        tcfg = LlamaConfig(**G.TEXT, rope_parameters=dict(rope_type="default", rope_theta=G.ROPE_THETA))
        tcfg._attn_implementation = "eager"
        self.llm = LlamaForCausalLM(tcfg)
        vcfg = Idefics2VisionConfig(**G.VISION)
        vcfg._attn_implementation = "eager"
        self.vpm = Idefics2VisionTransformer(vcfg)
        self.vpm.encoder.layers = self.vpm.encoder.layers[:-1]
        D = G.TEXT["hidden_size"]
        self.resampler = G.Resampler(G.QUERY_NUM, D, D // 128, G.VISION["hidden_size"])

    def features(self, pix, mask):
        vis = self.vpm(pix, patch_attention_mask=mask).last_hidden_state
        return self.resampler(vis, G.TGT)[0]

    def text(self, ids, bound, rout):
        x = self.llm.model.embed_tokens(ids)
        D = x.shape[-1]
        rows = []
        for b in range(ids.shape[0]):
            idx = torch.cat([torch.arange(int(s), int(e)) for s, e in bound[b] if s >= 0])
            rows.append((b, idx, rout[G.IMGS_OF[b]].reshape(-1, D)))
        xs = [x[b] for b in range(ids.shape[0])]
        for b, idx, f in rows:
            xs[b] = xs[b].index_put((idx,), f)
        out = self.llm(inputs_embeds=torch.stack(xs), output_attentions=True)
        return out.logits, out.attentions


def load_model():
    m = MiniCPMV().eval()
    sd = {}
    for fn in sorted(os.listdir(os.path.join(OUT, "model"))):
        if fn.endswith(".safetensors"):
            sd.update({k: v.float() for k, v in load_file(os.path.join(OUT, "model", fn)).items()})
    m.load_state_dict(sd, strict=True)
    return m


def golden_logits(model):
    """logits [B,T,V] of a MiniCPMV (or a PEFT model's inner one) on the forward golden's
    inputs (io.safetensors), without gradients (the check scripts' shared forward)"""
    gio = load_file(os.path.join(OUT, "io.safetensors"))
    ids, bound, pix = gio["input_ids"].long(), gio["image_bound"].long(), gio["pixel_values"]
    Lmax = pix.shape[3] // pix.shape[2]
    mask = torch.zeros(len(G.TGT), 1, Lmax, dtype=torch.bool)
    for i, (h, w) in enumerate(G.TGT):
        mask[i, 0, :h * w] = True
    with torch.no_grad():
        return model.text(ids, bound, model.features(pix, mask))[0]


def capture(att, bound):
    """flat compact probabilities of the capture rows over the image columns"""
    out = []
    for k, l in enumerate(CAP_LAYERS):
        parts = []
        for b in range(len(CAP_ROWS)):
            cols = torch.cat([torch.arange(int(s), int(e)) for s, e in bound[b] if s >= 0])
            p = att[l][b][:, CAP_ROWS[b]][:, :, cols]        # [H, R_b, NQ_b]
            parts.append(p.reshape(-1))
        out.append(torch.cat(parts))
    return out


def objective(model, io, rout, labels, dprobs):
    logits, att = model.text(io["ids"], io["bound"], rout)
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    caps = capture(att, io["bound"])
    J = ce + sum((p * d).sum() for p, d in zip(caps, dprobs))
    return J, ce, caps, logits


def main():
    torch.manual_seed(1)
    torch.set_num_threads(1)
    gio = load_file(os.path.join(OUT, "io.safetensors"))
    io = dict(pix=gio["pixel_values"], ids=gio["input_ids"].long(), bound=gio["image_bound"].long())
    NI = len(G.TGT)
    Lmax = io["pix"].shape[3] // io["pix"].shape[2]
    mask = torch.zeros(NI, 1, Lmax, dtype=torch.bool)
    for i, (h, w) in enumerate(G.TGT):
        mask[i, 0, :h * w] = True
    model = load_model()
    with torch.no_grad():
        rout0 = model.features(io["pix"], mask)
    B, T = io["ids"].shape
    V = G.TEXT["vocab_size"]
    labels = torch.randint(0, V, (B, T))
    labels[:, :2] = -100
    for b in range(B):
        for s, e in io["bound"][b]:
            if s >= 0:
                labels[b, s - 1:e + 1] = -100
    labels[1, 20] = -100

    # full fine-tuning
    rout = rout0.clone().requires_grad_(True)
    with torch.no_grad():
        _, att = model.text(io["ids"], io["bound"], rout0)
        caps0 = capture(att, io["bound"])
    dprobs = [torch.randn_like(c) * 2.0 for c in caps0]
    model.zero_grad()
    J, ce, caps, _ = objective(model, io, rout, labels, dprobs)
    J.backward()
    rows = [r for rr in CAP_ROWS for r in rr]
    off = [0]
    for rr in CAP_ROWS:
        off.append(off[-1] + len(rr))
    res = {"labels": labels.float(), "cap_layers": torch.tensor(CAP_LAYERS, dtype=torch.float32),
           "cap_rows": torch.tensor(rows, dtype=torch.float32), "cap_off": torch.tensor(off, dtype=torch.float32),
           "loss": ce.detach().reshape(1), "d_resampled": rout.grad}
    for k in range(len(CAP_LAYERS)):
        res["cap_probs.%d" % k] = caps[k].detach()
        res["dprobs.%d" % k] = dprobs[k]
    gmax = 0.0
    for n, p in model.llm.named_parameters():
        res["grad.llm." + n] = p.grad.half()
        gmax = max(gmax, p.grad.abs().max().item())

    # LoRA (PEFT) on the same model, modules_to_save as OpenBMB's recipe
    from peft import LoraConfig, get_peft_model
    pm = get_peft_model(copy.deepcopy(model), LoraConfig(**LORA, modules_to_save=["embed_tokens", "resampler"]))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for n, mod in pm.named_modules():
            if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
                mod.lora_A["default"].weight.copy_(torch.randn(mod.lora_A["default"].weight.shape, generator=g) * 0.1)
                mod.lora_B["default"].weight.copy_(torch.randn(mod.lora_B["default"].weight.shape, generator=g) * 0.1)
    inner = pm.base_model.model
    rout = rout0.clone().requires_grad_(True)
    pm.zero_grad()
    J, ce, caps, logits = objective(inner, io, rout, labels, dprobs)
    J.backward()
    res["lora_logits"] = logits.detach()
    res["lora_d_resampled"] = rout.grad
    nl = 0
    for n, mod in pm.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            name = n.replace("base_model.model.", "", 1)
            res["lora.%s.A" % name] = mod.lora_A["default"].weight.detach().clone()
            res["lora.%s.B" % name] = mod.lora_B["default"].weight.detach().clone()
            res["lora_grad.%s.A" % name] = mod.lora_A["default"].weight.grad
            res["lora_grad.%s.B" % name] = mod.lora_B["default"].weight.grad
            nl += 1
    bad = [k for k, v in res.items() if v is None]
    assert not bad, bad
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "train.safetensors"))
    with tempfile.TemporaryDirectory() as d:
        pm.save_pretrained(d)
        with safe_open(os.path.join(d, "adapter_model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
        cfg = json.load(open(os.path.join(d, "adapter_config.json")))
    print("PEFT keys (%d): %s ... %s" % (len(keys), keys[:3], [k for k in keys if "lora" not in k]))
    print("PEFT config modules_to_save %s target_modules %s" % (cfg["modules_to_save"], cfg["target_modules"]))
    print("minicpmv train: loss %.6f, max |grad| %.3g, %d LoRA modules" % (res["loss"].item(), gmax, nl))


if __name__ == "__main__":
    main()
