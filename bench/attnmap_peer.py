#!/usr/bin/env python3
"""PyTorch peer of bench/attnmap_batch.sh: the sd-attnmap noise procedure (docs/attnmap.md)
with diffusers + transformers on the CPU, fp32, random-init SD networks from the configs
(as bench/sd_peer.py; SD 1.5's, or the SD 2.1 ones bench/attnmap_batch.sh derives): per
image PIL bicubic resize (longer side R, sides multiples of 64), VAE posterior mean x
scaling_factor, CLIP text states, the 4 noised latents as ONE batch-4 UNet pass, an
attention processor on every attn2 layer that computes the probabilities, averages them
over heads and accumulates the selected layers (R/32, R/16) bilinearly resized to the
latent/2 grid (F.interpolate, align_corners=False); the mean per kept token. attn1 keeps
diffusers' default (SDPA) processor.

usage: attnmap_peer.py CONFIGS CLIP_TOKENIZER MANIFEST IMAGES R THREADS
       -> one JSON line: images, maps, seconds, images_per_s, maps_per_s
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TIMESTEPS = [100, 300, 500, 700]


class Capture(AttnProcessor):
    """Classic attention (explicit probabilities) that also adds the head-averaged map of
    the selected levels to `store.sum`."""

    def __init__(self, store):
        super().__init__()
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        b, n, _ = hidden_states.shape
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, None)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        out = attn.to_out[1](attn.to_out[0](out))
        s = self.store
        if n in s.sizes:  # selected level
            lh, lw = s.sizes[n]
            m = probs.view(b, attn.heads, n, -1).mean(1)[:, :, 1:1 + s.T]  # [b, n, T]
            m = m.permute(0, 2, 1).reshape(b, s.T, lh, lw)
            s.sum += F.interpolate(m, size=(s.gh, s.gw), mode="bilinear", align_corners=False).sum(0)
            s.count += b
        return out


class Store:
    pass


def resize(img, R):
    w, h = img.size
    if w >= h:
        nw, nh = R, max(64, int(np.floor(h * R / w / 64 + 0.5)) * 64)
    else:
        nh, nw = R, max(64, int(np.floor(w * R / h / 64 + 0.5)) * 64)
    return img.resize((nw, nh), Image.BICUBIC)


def main():
    configs, clip, manifest, images, R, threads = sys.argv[1:7]
    R, threads = int(R), int(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ucfg = json.load(open(f"{configs}/unet_config.json"))
    vcfg = json.load(open(f"{configs}/vae_config.json"))
    tcfg = json.load(open(f"{configs}/text_encoder_config.json"))
    unet = UNet2DConditionModel.from_config(ucfg).eval()
    vae = AutoencoderKL.from_config(vcfg).eval()
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in tcfg.items() if not k.startswith("_")})).eval()
    tok = CLIPTokenizer.from_pretrained(clip)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    acp = torch.cumprod(1 - betas, 0)
    store = Store()
    procs = {}
    for name in unet.attn_processors:
        procs[name] = Capture(store) if name.endswith("attn2.processor") else unet.attn_processors[name]
    unet.set_attn_processor(procs)
    samples = [json.loads(l) for l in open(manifest) if l.strip()]
    n_maps = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in samples:
            img = resize(Image.open(f"{images}/{s['image']}").convert("RGB"), R)
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
            ids = tok(s["caption"], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            T = int(ids.attention_mask.sum()) - 2
            ctx = text(ids.input_ids).last_hidden_state
            z0 = vae.encode(x).latent_dist.mean * vcfg.get("scaling_factor", 0.18215)
            lat_h, lat_w = z0.shape[2], z0.shape[3]
            store.T, store.lat_h, store.lat_w = T, lat_h, lat_w
            store.gh, store.gw = (lat_h + 1) // 2, (lat_w + 1) // 2
            store.sizes = {(lat_h >> k) * (lat_w >> k): (lat_h >> k, lat_w >> k) for k in (1, 2)}
            store.sum = torch.zeros(T, store.gh, store.gw)
            store.count = 0
            ts = torch.tensor(TIMESTEPS)
            eps = torch.randn(len(TIMESTEPS), *z0.shape[1:])
            a = acp[ts].view(-1, 1, 1, 1)
            xt = a.sqrt() * z0 + (1 - a).sqrt() * eps
            unet(xt, ts, encoder_hidden_states=ctx.expand(len(TIMESTEPS), -1, -1))
            maps = (store.sum / store.count).to(torch.float16)
            n_maps += maps.shape[0]
    sec = time.perf_counter() - t0
    sd = "2.1" if ucfg.get("cross_attention_dim") == 1024 else "1.5"
    print(json.dumps({"impl": "diffusers", "sd": sd, "resolution": R, "threads": threads, "images": len(samples),
                      "maps": n_maps, "seconds": round(sec, 3), "images_per_s": round(len(samples) / sec, 4),
                      "maps_per_s": round(n_maps / sec, 2), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
