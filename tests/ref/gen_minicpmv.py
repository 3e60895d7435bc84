#!/usr/bin/env python3
"""Golden data for lib/models/minicpmv (tests/unit/test_minicpmv.c).

A tiny random MiniCPM-Llama3-V-2.5-shaped model, built the way the hub's
modeling_minicpmv.py builds it: transformers' LlamaForCausalLM as `llm`, transformers'
Idefics2VisionTransformer as `vpm` (its last encoder layer dropped when
drop_vision_last_layer), and a resampler written here after the hub's resampler.py
(query_num learned queries, kv_proj, LayerNorms eps 1e-6, nn.MultiheadAttention with
heads = hidden // 128 whose keys get a 2-D sin-cos position table (column half, then row
half), ln_post, x @ proj). Sizes: text width 256 (2 resampler heads), 2 Llama layers (GQA
4/2 heads), vocab 128; vision width 32, 3 layers of which 2 are used, image_size 70 with
patch 14 (a 5x5 bucketed position table); query_num 8.

Every parameter is rounded to bf16 before the reference runs, and the checkpoint is written
in bf16 with the hub's key names (llm.*, vpm.*, resampler.*) in two shards plus
model.safetensors.index.json and a hub-style config.json.

Input layout (the slicing processor is a later step): each picture is an already
normalised [3, 14, n*14] strip of its n = tgt_h*tgt_w patches in row-major patch order
(the hub processor's reshape_by_patch), pictures zero-padded to the longest and batched as
[NI, 3, 14, Lmax*14] with tgt_sizes [NI, 2] = (patch rows, patch cols). As in the hub code
the vision tower sees a 1-patch-high strip, so the position id of patch j of an n-patch
picture is bucketize(j/n) on the first row of the table (written as pos_ids).

Files written (float32 unless noted):
  model/   config.json, model-0000{1,2}-of-00002.safetensors (BF16), index
  io.safetensors  pixel_values [NI,3,14,Lmax*14], tgt_sizes [NI,2], input_ids [B,T],
                  image_bound [B,2,2] (start,end per range; -1 rows unused),
                  n_images [B], pos_ids [NI,Lmax], vision [NI,Lmax,Dv] (vpm
                  last_hidden_state), resampler [NI,Q,D], probs [NI,Hr,Q,Lmax] (per head,
                  padded keys 0), logits [B,T,V]
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "minicpmv")

torch.manual_seed(0)
np.random.seed(0)
torch.set_num_threads(1)

TEXT = dict(vocab_size=128, hidden_size=256, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
            max_position_embeddings=512, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
ROPE_THETA = 500000.0
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
              image_size=70, patch_size=14, num_channels=3, layer_norm_eps=1e-6,
              hidden_act="gelu_pytorch_tanh")
QUERY_NUM = 8
TGT = [(2, 3), (3, 3), (1, 4)]          # picture patch grids
IMGS_OF = [[0, 1], [2]]                 # pictures of each sample
T = 24


def sincos_1d(dim, pos):
    omega = np.arange(dim // 2, dtype=np.float32) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("hw,d->hwd", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=-1)


def sincos_2d(dim, h, w):
    gw, gh = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.concatenate([sincos_1d(dim // 2, gw), sincos_1d(dim // 2, gh)], axis=-1)  # [h, w, dim]


class Resampler(nn.Module):
    def __init__(self, q, dim, heads, kv_dim):
        super().__init__()
        self.query = nn.Parameter(torch.randn(q, dim))
        self.kv_proj = nn.Linear(kv_dim, dim, bias=False)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.ln_q = nn.LayerNorm(dim, eps=1e-6)
        self.ln_kv = nn.LayerNorm(dim, eps=1e-6)
        self.ln_post = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Parameter(dim ** -0.5 * torch.randn(dim, dim))
        self.dim = dim

    def forward(self, x, tgt):
        bs, L = x.shape[0], x.shape[1]
        pad = torch.zeros(bs, L, dtype=torch.bool)
        pos = torch.zeros(bs, L, self.dim)
        for i, (h, w) in enumerate(tgt):
            pos[i, :h * w] = torch.from_numpy(sincos_2d(self.dim, h, w).reshape(h * w, -1))
            pad[i, h * w:] = True
        x = self.ln_kv(self.kv_proj(x)).permute(1, 0, 2)
        q = self.ln_q(self.query).unsqueeze(1).repeat(1, bs, 1)
        out, probs = self.attn(q, x + pos.permute(1, 0, 2), x, key_padding_mask=pad,
                               need_weights=True, average_attn_weights=False)
        return self.ln_post(out.permute(1, 0, 2)) @ self.proj, probs


def reinit(mod):
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if "norm" in name or name.startswith("ln_") or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed" in name or name == "query":
                p.copy_(torch.randn_like(p) * 0.5)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in))
            p.copy_(p.to(torch.bfloat16).float())


def main():
    os.makedirs(os.path.join(OUT, "model"), exist_ok=True)
    tcfg = LlamaConfig(**TEXT, rope_parameters=dict(rope_type="default", rope_theta=ROPE_THETA))
    tcfg._attn_implementation = "eager"
    llm = LlamaForCausalLM(tcfg).eval()
    vcfg = Idefics2VisionConfig(**VISION)
    vcfg._attn_implementation = "eager"
    vpm = Idefics2VisionTransformer(vcfg).eval()
    vpm.encoder.layers = vpm.encoder.layers[:-1]      # drop_vision_last_layer
    D = TEXT["hidden_size"]
    res = Resampler(QUERY_NUM, D, D // 128, VISION["hidden_size"]).eval()
    for mod in (llm, vpm, res):
        reinit(mod)

    # inputs
    ps = VISION["patch_size"]
    NI = len(TGT)
    Lmax = max(h * w for h, w in TGT)
    pix = torch.zeros(NI, 3, ps, Lmax * ps)
    mask = torch.zeros(NI, 1, Lmax, dtype=torch.bool)
    for i, (h, w) in enumerate(TGT):
        pix[i, :, :, :h * w * ps] = torch.rand(3, ps, h * w * ps) * 2 - 1
        mask[i, 0, :h * w] = True
    B = len(IMGS_OF)
    ids = torch.randint(3, TEXT["vocab_size"], (B, T))
    bound = -torch.ones(B, 2, 2, dtype=torch.long)
    starts = [[2, 12], [5]]
    for b in range(B):
        for k, s in enumerate(starts[b]):
            bound[b, k] = torch.tensor([s, s + QUERY_NUM])
            ids[b, s - 1] = 3            # stand-ins for <image> ... </image>
            ids[b, s + QUERY_NUM] = 4
            ids[b, s:s + QUERY_NUM] = 0  # <unk>

    # position ids exactly as the embeddings compute them
    emb = vpm.embeddings
    with torch.no_grad():
        P = emb.num_patches_per_side
        boundaries = torch.arange(1 / P, 1.0, 1 / P)
        nb_w = mask[:, 0, :].sum(dim=1)
        fw = torch.arange(Lmax, dtype=torch.float32)[None, :] * (1.0 / nb_w)[:, None]
        fw = torch.clamp(fw, max=1.0 - 1e-6)
        pos_ids = torch.bucketize(fw, boundaries, right=True)
        pos_ids = torch.where(mask.view(NI, -1), pos_ids, torch.zeros_like(pos_ids))

        vis = vpm(pix, patch_attention_mask=mask).last_hidden_state
        rout, probs = res(vis, TGT)
        x = llm.model.embed_tokens(ids)
        for b in range(B):
            idx = torch.cat([torch.arange(int(s), int(e)) for s, e in bound[b] if s >= 0])
            feats = rout[IMGS_OF[b]].reshape(-1, D)
            x[b, idx] = feats
        logits = llm(inputs_embeds=x).logits

    # checkpoint (hub layout)
    sd = {}
    for pre, mod in (("llm.", llm), ("vpm.", vpm), ("resampler.", res)):
        for k, v in mod.state_dict().items():
            sd[pre + k] = v.to(torch.bfloat16).contiguous()
    keys = sorted(sd)
    half = len(keys) // 2
    shards = [keys[:half], keys[half:]]
    wmap = {}
    total = 0
    for si, ks in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (si + 1, len(shards))
        save_file({k: sd[k] for k in ks}, os.path.join(OUT, "model", fn), metadata={"format": "pt"})
        for k in ks:
            wmap[k] = fn
            total += sd[k].numel() * 2
    with open(os.path.join(OUT, "model", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    cfg = dict(architectures=["MiniCPMV"], model_type="minicpmv", **TEXT,
               hidden_act="silu", rope_theta=ROPE_THETA, rope_scaling=None, torch_dtype="bfloat16",
               query_num=QUERY_NUM, drop_vision_last_layer=True, batch_vision_input=True,
               patch_size=ps, image_size=448, slice_mode=True,
               slice_config=dict(max_slice_nums=9, patch_size=ps, scale_resolution=448,
                                 model_type="minicpmv"),
               vision_config=dict(model_type="idefics2", **VISION))
    with open(os.path.join(OUT, "model", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    io = {
        "pixel_values": pix, "tgt_sizes": torch.tensor(TGT, dtype=torch.float32),
        "input_ids": ids.float(), "image_bound": bound.float(),
        "n_images": torch.tensor([len(v) for v in IMGS_OF], dtype=torch.float32),
        "pos_ids": pos_ids.float(), "vision": vis, "resampler": rout, "probs": probs,
        "logits": logits,
    }
    save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(OUT, "io.safetensors"))
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, generator="tests/ref/gen_minicpmv.py"), f)
    print("minicpmv: vision %s resampler %s probs %s logits %s" %
          (tuple(vis.shape), tuple(rout.shape), tuple(probs.shape), tuple(logits.shape)))


if __name__ == "__main__":
    main()
