#!/usr/bin/env python3
"""PyTorch peer of the GPU bench step of tests/gpu/run.sh: the sd-attnmap noise procedure
(docs/attnmap.md) with diffusers + transformers on one CUDA GPU in bf16, random-init SD
1.5 networks from the configs (as bench/attnmap_peer.py), images of one size at a time:
B images per step, each resized to R x R (the bench feeds square photos' sizes: one
latent shape), VAE posterior mean x scaling_factor, CLIP text states, the B x 4 noised
latents as ONE UNet pass (timesteps 100, 300, 500, 700). attn1 keeps diffusers' default
processor (SDPA, flash / memory-efficient kernels); every attn2 layer uses a processor
that computes the probabilities explicitly (it needs them), averages them over heads
and adds the selected layers (R/32, R/16) bilinearly resized to the latent/2 grid
(F.interpolate, align_corners=False) into per-image sums on the GPU; the mean per kept
token goes to the host once per image, as fp16. Warm-up: one step not timed.

usage: attnmap_peer_gpu.py CONFIGS CLIP_TOKENIZER MANIFEST IMAGES R BATCH STEPS
       -> one JSON line: images, seconds, images_per_s, peak_mem_gib, device
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TIMESTEPS = [100, 300, 500, 700]


class Capture:
    """attn2 with explicit probabilities; the head mean of the selected levels is added to
    store.sum[image] (items are image-major: B images x len(TIMESTEPS))."""

    def __init__(self, store):
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        b, n, _ = hidden_states.shape
        h = attn.heads
        q = attn.to_q(hidden_states).view(b, n, h, -1).transpose(1, 2)
        k = attn.to_k(encoder_hidden_states).view(b, -1, h, q.shape[-1]).transpose(1, 2)
        v = attn.to_v(encoder_hidden_states).view(b, -1, h, q.shape[-1]).transpose(1, 2)
        probs = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)
        out = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(b, n, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        s = self.store
        if n in s.sizes:  # selected level
            lh, lw = s.sizes[n]
            m = probs.mean(1)[:, :, 1:1 + s.T]  # [b, n, T] (fp32)
            m = m.permute(0, 2, 1).reshape(b, s.T, lh, lw)
            r = F.interpolate(m, size=(s.gh, s.gw), mode="bilinear", align_corners=False)
            s.sum += r.view(-1, len(TIMESTEPS), s.T, s.gh, s.gw).sum(1)
            s.count += len(TIMESTEPS)
        return out


class Store:
    pass


def main():
    configs, clip, manifest, images, R, B, steps = sys.argv[1:8]
    R, B, steps = int(R), int(B), int(steps)
    dev = torch.device("cuda")
    dt = torch.bfloat16
    torch.manual_seed(0)
    ucfg = json.load(open(f"{configs}/unet_config.json"))
    vcfg = json.load(open(f"{configs}/vae_config.json"))
    tcfg = json.load(open(f"{configs}/text_encoder_config.json"))
    unet = UNet2DConditionModel.from_config(ucfg).to(dev, dt).eval()
    vae = AutoencoderKL.from_config(vcfg).to(dev, dt).eval()
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in tcfg.items() if not k.startswith("_")})).to(dev, dt).eval()
    tok = CLIPTokenizer.from_pretrained(clip)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    acp = torch.cumprod(1 - betas, 0).to(dev)
    store = Store()
    procs = {}
    for name, p in unet.attn_processors.items():
        procs[name] = Capture(store) if name.endswith("attn2.processor") else p
    unet.set_attn_processor(procs)
    samples = [json.loads(l) for l in open(manifest) if l.strip()]
    lat = R // 8
    store.gh = store.gw = lat // 2
    store.sizes = {(lat >> k) * (lat >> k): (lat >> k, lat >> k) for k in (1, 2)}
    ts = torch.tensor(TIMESTEPS, device=dev)

    def step(batch):
        imgs = [Image.open(f"{images}/{s['image']}").convert("RGB").resize((R, R), Image.BICUBIC) for s in batch]
        x = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in imgs]) / 127.5 - 1)
        x = x.permute(0, 3, 1, 2).to(dev, dt)
        ids = tok([s["caption"] for s in batch], padding="max_length", max_length=77, truncation=True,
                  return_tensors="pt")
        store.T = T = max(1, int(ids.attention_mask.sum(1).max()) - 2)
        ctx = text(ids.input_ids.to(dev)).last_hidden_state
        z0 = vae.encode(x).latent_dist.mean * vcfg.get("scaling_factor", 0.18215)
        n = len(batch)
        store.sum = torch.zeros(n, T, store.gh, store.gw, device=dev)
        store.count = 0
        z = z0.repeat_interleave(len(TIMESTEPS), 0)
        eps = torch.randn_like(z)
        a = acp[ts].repeat(n).view(-1, 1, 1, 1).to(dt)
        xt = a.sqrt() * z + (1 - a).sqrt() * eps
        unet(xt, ts.repeat(n), encoder_hidden_states=ctx.repeat_interleave(len(TIMESTEPS), 0))
        maps = (store.sum / store.count).half().cpu()
        return maps.shape[0]

    with torch.inference_mode():
        step(samples[:B])  # warm-up (kernels, cuDNN autotune)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        done = 0
        t0 = time.perf_counter()
        for i in range(steps):
            k = (i * B) % max(1, len(samples) - B + 1)
            done += step(samples[k:k + B])
        torch.cuda.synchronize()
        sec = time.perf_counter() - t0
    print(json.dumps({"impl": "diffusers", "dtype": "bf16", "resolution": R, "batch": B, "images": done,
                      "seconds": round(sec, 3), "images_per_s": round(done / sec, 3),
                      "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2),
                      "device": torch.cuda.get_device_name(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
