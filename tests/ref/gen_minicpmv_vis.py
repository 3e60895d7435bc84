#!/usr/bin/env python3
"""Golden gradients for the minicpmv vision tower + resampler backward
(tests/unit/test_minicpmv_vis.c).

The model is the tiny one of tests/ref/gen_minicpmv.py, built the same way (transformers'
Idefics2VisionTransformer with its last layer dropped, the generator's hub-style
Resampler) and loaded from that generator's checkpoint (tests/golden/minicpmv/model), run
on its pictures (tests/golden/minicpmv/io.safetensors: three pictures of 2x3, 3x3, 1x4
patches, padded to 9). The loss is

    L = sum(resampled * G) + sum(probs * Gp)

with fixed random G [NI, Q, D] and Gp [NI, Hr, Q, Lmax] (per-head resampler probabilities;
Gp is nonzero on padded keys too, whose probabilities are exactly 0, so they must get no
gradient). PyTorch autograd gives every vpm.* and resampler.* parameter gradient.

Size: the three D x D resampler matrices (attn.in_proj_weight [3D, D], attn.out_proj.weight,
proj) would alone be 1.3 MB, so for them we store the two factors of their exact
gradient, dW = sum over rows of dout^T x inp (rows: pictures x queries, or pictures x
patches), taken from a second, explicit forward of the resampler on the same parameters
(nn.MultiheadAttention written out); this generator asserts that the explicit forward's
gradients equal the module's and that the factor products equal autograd's gradients,
and the test rebuilds the matrices in double. Every other gradient is stored whole.

Files written (float32): tests/golden/minicpmv_vis/grads.safetensors
  G, Gp, loss [1]; "g:<hub name>" for every gradient stored whole;
  factors: proj = f:rpost^T · G; out_proj = f:drout^T · f:ratt;
  in_proj rows [0, D) = f:dq^T · f:qn, [D, 2D) = f:dk^T · f:kin, [2D, 3D) = f:dv^T · f:kvn
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv as ref  # noqa: E402  (model construction shared with the forward golden)

from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig  # noqa: E402
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer  # noqa: E402

ROOT = ref.ROOT
SRC = os.path.join(ROOT, "tests", "golden", "minicpmv")
OUT = os.path.join(ROOT, "tests", "golden", "minicpmv_vis")

torch.manual_seed(18)
torch.set_num_threads(1)


def load_models():
    vcfg = Idefics2VisionConfig(**ref.VISION)
    vcfg._attn_implementation = "eager"
    vpm = Idefics2VisionTransformer(vcfg)
    vpm.encoder.layers = vpm.encoder.layers[:-1]      # drop_vision_last_layer
    D = ref.TEXT["hidden_size"]
    res = ref.Resampler(ref.QUERY_NUM, D, D // 128, ref.VISION["hidden_size"])
    sd = {}
    for fn in sorted(os.listdir(os.path.join(SRC, "model"))):
        if fn.endswith(".safetensors"):
            sd.update(load_file(os.path.join(SRC, "model", fn)))
    for pre, mod in (("vpm.", vpm), ("resampler.", res)):
        own = {k[len(pre):]: v.float() for k, v in sd.items() if k.startswith(pre)}
        mod.load_state_dict(own, strict=True)
    return vpm.train(), res.train()   # no dropout in either: train() only for clarity


def explicit_resampler(res, x, tgt):
    """res.forward with nn.MultiheadAttention written out; returns outputs and the
    intermediates whose gradients factor the D x D weight gradients."""
    NI, L = x.shape[0], x.shape[1]
    D, H = res.dim, res.attn.num_heads
    hd = D // H
    pad = torch.zeros(NI, L, dtype=torch.bool)
    pos = torch.zeros(NI, L, D)
    for i, (h, w) in enumerate(tgt):
        pos[i, :h * w] = torch.from_numpy(ref.sincos_2d(D, h, w).reshape(h * w, -1))
        pad[i, h * w:] = True
    kvn = res.ln_kv(res.kv_proj(x))                       # [NI, L, D]
    qn = res.ln_q(res.query)                              # [Q, D]
    Wq, Wk, Wv = res.attn.in_proj_weight.chunk(3)
    bq, bk, bv = res.attn.in_proj_bias.chunk(3)
    kin = kvn + pos
    qp = F.linear(qn, Wq, bq)
    kp = F.linear(kin, Wk, bk)
    vp = F.linear(kvn, Wv, bv)
    for t in (qn, kin, kvn, qp, kp, vp):
        t.retain_grad()
    q = qp.view(1, -1, H, hd).transpose(1, 2) * hd ** -0.5   # [1, H, Q, hd]
    k = kp.view(NI, L, H, hd).transpose(1, 2)
    v = vp.view(NI, L, H, hd).transpose(1, 2)
    s = q @ k.transpose(-1, -2)                               # [NI, H, Q, L]
    s = s.masked_fill(pad[:, None, None, :], float("-inf"))
    probs = s.softmax(-1)
    ratt = (probs @ v).transpose(1, 2).reshape(NI, -1, D)
    rout = F.linear(ratt, res.attn.out_proj.weight, res.attn.out_proj.bias)
    rpost = res.ln_post(rout)
    for t in (ratt, rout, rpost):
        t.retain_grad()
    return rpost @ res.proj, probs, dict(qn=qn, kin=kin, kvn=kvn, qp=qp, kp=kp, vp=vp, ratt=ratt, rout=rout,
                                         rpost=rpost)


def grads(mods):
    return {pre + k: p.grad.detach().clone() for pre, m in mods for k, p in m.named_parameters()}


def main():
    os.makedirs(OUT, exist_ok=True)
    io = load_file(os.path.join(SRC, "io.safetensors"))
    pix = io["pixel_values"]
    tgt = [tuple(int(v) for v in r) for r in io["tgt_sizes"]]
    NI, Lmax = pix.shape[0], pix.shape[3] // pix.shape[2]
    mask = torch.zeros(NI, 1, Lmax, dtype=torch.bool)
    for i, (h, w) in enumerate(tgt):
        mask[i, 0, :h * w] = True
    vpm, res = load_models()
    mods = (("vpm.", vpm), ("resampler.", res))
    D, Q, H = res.dim, ref.QUERY_NUM, res.attn.num_heads
    G = torch.randn(NI, Q, D)
    Gp = torch.randn(NI, H, Q, Lmax)

    # the reference: the module forward, autograd
    vis = vpm(pix, patch_attention_mask=mask).last_hidden_state
    rout, probs = res(vis, tgt)
    assert torch.allclose(rout, io["resampler"], atol=1e-5) and torch.allclose(probs, io["probs"], atol=1e-6)
    loss = (rout * G).sum() + (probs * Gp).sum()
    loss.backward()
    gref = grads(mods)

    # the explicit resampler on the same parameters: same gradients, and the factors
    for _, m in mods:
        m.zero_grad(set_to_none=True)
    vis = vpm(pix, patch_attention_mask=mask).last_hidden_state
    rout2, probs2, it = explicit_resampler(res, vis, tgt)
    ((rout2 * G).sum() + (probs2 * Gp).sum()).backward()
    gexp = grads(mods)
    # scale: the gradient's own largest entry, floored at 1e-4 of the largest anywhere
    # (k_proj.bias's gradient is 0 in exact arithmetic, a softmax shift: only rounding)
    gmax = max(v.abs().max().item() for v in gref.values())
    for k in gref:
        scale = max(gref[k].abs().max().item(), 1e-4 * gmax)
        err = (gexp[k] - gref[k]).abs().max().item() / scale
        assert err < 1e-4, (k, err)

    f = {
        "rpost": it["rpost"].reshape(-1, D), "drout": it["rout"].grad.reshape(-1, D),
        "ratt": it["ratt"].reshape(-1, D), "dq": it["qp"].grad, "qn": it["qn"],
        "dk": it["kp"].grad.reshape(-1, D), "kin": it["kin"].reshape(-1, D),
        "dv": it["vp"].grad.reshape(-1, D), "kvn": it["kvn"].reshape(-1, D),
    }
    G2 = G.reshape(-1, D)
    rebuilt = {
        "resampler.proj": f["rpost"].T @ G2,
        "resampler.attn.out_proj.weight": f["drout"].T @ f["ratt"],
        "resampler.attn.in_proj_weight": torch.cat([f["dq"].T @ f["qn"], f["dk"].T @ f["kin"],
                                                    f["dv"].T @ f["kvn"]]),
    }
    for k, v in rebuilt.items():
        err = (v - gref[k]).abs().max().item() / gref[k].abs().max().item()
        assert err < 1e-4, (k, err)

    out = {"G": G, "Gp": Gp, "loss": loss.detach().reshape(1)}
    for k, v in gref.items():
        if k not in rebuilt:
            out["g:" + k] = v
    for k, v in f.items():
        out["f:" + k] = v.detach()
    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(OUT, "grads.safetensors"))
    with open(os.path.join(OUT, "meta.json"), "w") as fh:
        json.dump(dict(torch=torch.__version__, generator="tests/ref/gen_minicpmv_vis.py"), fh)
    n = sum(v.numel() for v in out.values())
    print("minicpmv_vis: loss %.6f, %d gradients (%d whole), %d floats" % (loss.item(), len(gref),
                                                                            len(gref) - len(rebuilt), n))


if __name__ == "__main__":
    main()
