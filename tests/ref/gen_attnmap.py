#!/usr/bin/env python3
"""Golden data for sd-attnmap (tests/unit/test_attnmap_golden.c).

Implements the sd-attnmap procedure (docs/attnmap.md) independently with diffusers and
transformers on the tiny SD checkpoint of tests/golden/sd/diffusers (written by
tests/ref/gen_sd.py) for two real photos with their captions (one square, one
portrait) from ../shared/data/images:

  image -> PIL bicubic resize (longer side RES, sides multiples of 64) -> [-1, 1]
  -> VAE posterior mean x 0.18215 -> for each timestep and draw: x_t = DDPM q(x_t|x_0)
  with Philox noise (reimplemented below, bit-exact with lib/core/rng.h) -> one
  conditional UNet pass with a classic AttnProcessor whose attn2 probabilities are
  recorded and averaged over heads -> maps of the selected levels resized with
  F.interpolate(bilinear, align_corners=False) to the grid -> mean over layers x
  timesteps x draws -> tokens 1..T.
And --method inversion (inv.* tensors): DDIM inversion of the latent with the caption
(prompt-to-prompt's next_step), regeneration with diffusers' DDIMScheduler and
classifier-free guidance 7.5 against the empty prompt, the conditional pass's maps
averaged over the 4 steps.

The tiny text encoder has a 1000-entry vocabulary, so ids are folded (id % 1000) as the
tool does with --fold-vocab; the records keep the real CLIP ids.

Writes tests/golden/attnmap/golden.safetensors (maps, ids, latents, first noise) and
tests/golden/attnmap/manifest.jsonl (the samples, as the C test feeds them to the tool).
Run after gen_sd.py (it reads its checkpoint):
  .venv-ref/bin/python tests/ref/gen_attnmap.py   (CPU, a few seconds)
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("LVD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
SD = os.path.join(ROOT, "tests", "golden", "sd", "diffusers")
OUT = os.path.join(ROOT, "tests", "golden", "attnmap")

RES = 256                        # --resolution
TIMESTEPS = [100, 300, 500, 700]  # the tool's default
DRAWS = 2                        # --noise-draws
SEED = 7                         # --seed
LEVELS = (1, 2)                  # default --layers: latent/2 and latent/4 maps
INV_STEPS, GUIDANCE = 4, 7.5      # --method inversion --steps 4 (default guidance)
PHOTOS = [("astronaut", "skimage_astronaut.png"),
          ("coco38678", "COCO_val2014_000000038678.png")]   # 512x512 and 480x640

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- Philox4x32-10 + Box-Muller exactly as lib/core/rng.h documents --------------------
M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox(c0, c1, c2, c3, k0, k1):
    """Vectorised over numpy uint64 arrays holding 32-bit values."""
    k0 = np.full_like(c0, k0)
    k1 = np.full_like(c0, k1)
    for r in range(10):
        if r:
            k0 = (k0 + W0) & MASK
            k1 = (k1 + W1) & MASK
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> 32, p0 & MASK
        hi1, lo1 = p1 >> 32, p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


assert [hex(int(v[0])) for v in philox(*[np.zeros(1, np.uint64)] * 4, 0, 0)] == \
    ["0x6627e8d5", "0xe169c58d", "0xbc57ac4c", "0x9b00dbd8"], "Philox known-answer test"


def rng_normal(n, seed, stream):
    idx = np.arange(n, dtype=np.uint64)
    blk = idx // 4
    c0, c1 = blk & MASK, blk >> 32
    c2 = np.full_like(blk, stream & MASK)
    c3 = np.full_like(blk, stream >> 32)
    w = np.stack(philox(c0, c1, c2, c3, seed & MASK, seed >> 32), 1)   # [n, 4]
    p = (idx % 4) // 2
    wa = w[np.arange(n), 2 * p]
    wb = w[np.arange(n), 2 * p + 1]
    u1 = ((wa >> 8).astype(np.float64) + 1.0) * 2.0 ** -24
    u2 = (wb >> 8).astype(np.float64) * 2.0 ** -24
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * math.pi * u2
    return np.where(idx % 2 == 0, r * np.cos(t), r * np.sin(t)).astype(np.float32)


def noise_stream(sid, t, d):
    h = 0xcbf29ce484222325
    for b in sid.encode() + b"\0" + t.to_bytes(4, "little") + d.to_bytes(4, "little"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def geometry(w, h):
    lng, sht = max(w, h), min(w, h)
    s = (2 * sht * RES + lng * 64) // (2 * lng * 64) * 64
    s = min(max(s, 64), RES)
    sw, sh = (RES, s) if w >= h else (s, RES)
    return sw, sh, sw // 8, sh // 8, sw // 16, sh // 16


SD_FILES = ["text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors"]


def sd_fingerprint():
    """sha256 of the comma-joined sha256 hex digests of the checkpoint files (the C test
    recomputes it to detect a golden made from another tests/golden/sd checkpoint)."""
    hexes = [hashlib.sha256(open(os.path.join(SD, f), "rb").read()).hexdigest() for f in SD_FILES]
    return hashlib.sha256(",".join(hexes).encode()).hexdigest()


def load_photo(photo):
    """the photo resized as the tool does, in [-1, 1]; its SD/latent/grid sizes"""
    img = Image.open(os.path.join(SHARED, "images", photo)).convert("RGB")
    sw, sh, lw, lh, gw, gh = geometry(*img.size)
    if (sw, sh) != img.size:
        img = img.resize((sw, sh), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img).astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()
    return img, x, (lw, lh, gw, gh)


def add_maps(acc, maps, T, lw, lh, gw, gh):
    """adds every recorded map of the LEVELS layers, tokens 1..T, bilinear to the grid;
    returns how many"""
    n = 0
    for m in maps:
        q = m.shape[0]
        level = next((k for k in range(4) if (lh >> k) * (lw >> k) == q), None)
        if level not in LEVELS:
            continue
        hm = m.reshape(lh >> level, lw >> level, m.shape[1]).permute(2, 0, 1)[1:T + 1]
        acc += F.interpolate(hm[None], size=(gh, gw), mode="bilinear", align_corners=False)[0]
        n += 1
    return n


def main():
    os.makedirs(OUT, exist_ok=True)
    clip = CLIPTextModel.from_pretrained(os.path.join(SD, "text_encoder")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(SD, "vae")).eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(SD, "unet"), torch_dtype=torch.float32).eval()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear")
    tok = CLIPTokenizer.from_pretrained(os.path.join(SHARED, "clip"))
    vocab = clip.config.vocab_size
    caps = {json.loads(l)["image"]: json.loads(l) for l in open(os.path.join(SHARED, "images", "captions.jsonl"))}

    rec = {}
    unet.set_attn_processor(AttnProcessor())
    for name, mod in unet.named_modules():
        if name.endswith("attn2"):
            orig = mod.get_attention_scores

            def wrap(q, k, mask=None, _orig=orig, _heads=mod.heads):
                p = _orig(q, k, mask)
                rec["maps"].append(p.reshape(-1, _heads, p.shape[1], p.shape[2]).mean(1)[0])
                return p
            mod.get_attention_scores = wrap

    G, manifest = {}, []
    for sid, photo in PHOTOS:
        caption = caps[photo]["caption"]
        img, x, (lw, lh, gw, gh) = load_photo(photo)
        ids = tok(caption, padding="max_length", max_length=77, truncation=True,
                  return_tensors="pt").input_ids[0]
        T = int((ids[1:] != 49407).sum())
        with torch.no_grad():
            ctx = clip((ids % vocab)[None]).last_hidden_state
            z0 = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
            acc = torch.zeros(T, gh, gw)
            n = 0
            for t in TIMESTEPS:
                for d in range(DRAWS):
                    eps = torch.from_numpy(rng_normal(z0.numel(), SEED, noise_stream(sid, t, d))).reshape(z0.shape)
                    if t == TIMESTEPS[0] and d == 0:
                        G[f"{sid}.noise0"] = eps
                    xt = sched.add_noise(z0[None], eps[None], torch.tensor([t]))
                    rec["maps"] = []
                    unet(xt, torch.tensor([t]), encoder_hidden_states=ctx)
                    n += add_maps(acc, rec["maps"], T, lw, lh, gw, gh)
            maps = acc / n
        G[f"{sid}.maps"] = maps.contiguous()
        G[f"{sid}.ids"] = ids[1:T + 1].to(torch.int64)
        G[f"{sid}.latent"] = z0.contiguous()
        manifest.append({"id": sid, "image": photo, "caption": caption})
        print(f"gen_attnmap: {sid}: {img.size} -> grid {gw}x{gh}, {T} tokens, {n} maps averaged",
              file=sys.stderr)
    # ---- --method inversion (docs/attnmap.md): prompt-to-prompt's DDIM inversion loop with
    # the caption (its `next_step`), then regeneration with diffusers' DDIMScheduler and
    # classifier-free guidance (uncond = the empty prompt), the attn2 maps of the
    # conditional pass averaged over the INV_STEPS steps; every sample ----
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1)
    ddim.set_timesteps(INV_STEPS)
    ac = ddim.alphas_cumprod
    ratio = 1000 // INV_STEPS
    for sid, photo in PHOTOS:
        caption = caps[photo]["caption"]
        _, x, (lw, lh, gw, gh) = load_photo(photo)
        ids = tok(caption, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids[0]
        uids = tok("", padding="max_length", max_length=77, return_tensors="pt").input_ids[0]
        T = int((ids[1:] != 49407).sum())
        with torch.no_grad():
            ctx = clip((ids % vocab)[None]).last_hidden_state
            uctx = clip((uids % vocab)[None]).last_hidden_state
            lat = vae.encode(x[None]).latent_dist.mean * vae.config.scaling_factor
            for t in reversed(ddim.timesteps):                    # 1, 1 + r, ...
                eps = unet(lat, t, encoder_hidden_states=ctx).sample
                t_from, t_to = int(t) - ratio, int(t)
                a_from = ac[t_from] if t_from >= 0 else ddim.final_alpha_cumprod
                a_to = ac[t_to]
                x0 = (lat - (1 - a_from) ** 0.5 * eps) / a_from ** 0.5
                lat = a_to ** 0.5 * x0 + (1 - a_to) ** 0.5 * eps
            acc = torch.zeros(T, gh, gw)
            n = 0
            for t in ddim.timesteps:                              # ..., 1
                rec["maps"] = []
                e_c = unet(lat, t, encoder_hidden_states=ctx).sample
                n += add_maps(acc, rec["maps"], T, lw, lh, gw, gh)
                e_u = unet(lat, t, encoder_hidden_states=uctx).sample
                lat = ddim.step(e_u + GUIDANCE * (e_c - e_u), t, lat).prev_sample
        G[f"inv.{sid}.maps"] = (acc / n).contiguous()
        G[f"inv.{sid}.latent"] = lat[0].contiguous()
        print(f"gen_attnmap: inversion {sid}: {INV_STEPS} steps, guidance {GUIDANCE}, {n} maps averaged",
              file=sys.stderr)
    save_file(G, os.path.join(OUT, "golden.safetensors"),
              metadata={"resolution": str(RES), "timesteps": ",".join(map(str, TIMESTEPS)),
                        "inversion_steps": str(INV_STEPS), "guidance": str(GUIDANCE),
                        "draws": str(DRAWS), "seed": str(SEED), "sd_fingerprint": sd_fingerprint()})
    with open(os.path.join(OUT, "manifest.jsonl"), "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")


if __name__ == "__main__":
    main()
