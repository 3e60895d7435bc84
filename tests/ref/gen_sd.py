#!/usr/bin/env python3
"""Golden data for lib/models/sd (tests/unit/test_sd.c).

Builds tiny random-weight models of the real SD 1.x architectures with diffusers and
transformers (CLIPTextModel 2 layers; AutoencoderKL with 4 levels, its quant_conv mean rows scaled by
a power of two so the photo's latent has std ~1; UNet2DConditionModel
with all four levels, cross-attention at levels 0-2 as in SD 1.x), saves them

  tests/golden/sd/diffusers/   a diffusers folder (model_index.json, text_encoder/, vae/,
                               unet/, scheduler/; text encoder + VAE in F32, UNet in F16;
                               the VAE decoder is left out to save space)
  tests/golden/sd/ldm.safetensors   the same weights in the original ldm single-file naming
                               (conversion by name mapping below; UNet + CLIP in BF16,
                               VAE in F16; VAE attention weights as 1x1 convs)
  tests/golden/sd/golden.safetensors   inputs and reference outputs

Every weight is rounded to a value representable exactly in F16 and BF16 before the
reference run, so both layouts hold bit-identical weights and fp32 compute is comparable.
The CLIP vocabulary is shrunk to 1000 entries (it dominates the size otherwise): the real
caption's CLIP ids (from the SD tokenizer in ../shared/data/clip) are stored as
`ids_real`, the ids fed to the tiny model are `ids_real % 1000`.

Run: .venv-ref/bin/python tests/ref/gen_sd.py   (CPU, a few seconds)
"""
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("LVD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "golden", "sd")

VOCAB = 1000
IMG_W, IMG_H = 128, 64          # non-square; latent 16 x 8
T_STEP = 400
PHOTO = "skimage_chelsea.png"

torch.manual_seed(1234)
torch.set_num_threads(1)


def round_weights(model):
    """Round every parameter to a value exact in both F16 and BF16; randomise norm affines."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("norm" in name or "layer_norm" in name) and p.ndim == 1:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.1 * torch.randn_like(p))
            if name.endswith("to_q.weight"):
                p.mul_(6.0)   # sharper attention maps than the near-uniform default init
            q = p.to(torch.bfloat16).to(torch.float32)
            back = q.to(torch.float16).to(torch.float32)
            q = torch.where(back == q, q, torch.zeros_like(q))   # tiny values -> 0
            p.copy_(q)


def build():
    tcfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=256,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                          hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)
    clip = CLIPTextModel(tcfg).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(8, 16, 16, 16),
                        down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=4, sample_size=64,
                        scaling_factor=0.18215).eval()
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                block_out_channels=(8, 16, 32, 32), layers_per_block=2,
                                down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                                up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                                norm_num_groups=4, norm_eps=1e-5, cross_attention_dim=64,
                                attention_head_dim=2, flip_sin_to_cos=True, freq_shift=0,
                                use_linear_projection=False, upcast_attention=False).eval()
    for m in (clip, vae, unet):
        round_weights(m)
    return clip, vae, unet


def scale_latent(vae, x):
    """Scales quant_conv's posterior-mean rows by a power of two (exact in F16/BF16) so the
    scaled latent of the photo has std in [0.7, 1.4]: with the default init it is ~0.03 and
    the noise swamps the image (the issue's rough edge). Returns (std, factor)."""
    with torch.no_grad():
        z = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
        s = 2.0 ** round(math.log2(1.0 / float(z.std())))
        C = vae.config.latent_channels
        vae.quant_conv.weight[:C] *= s
        vae.quant_conv.bias[:C] *= s
        z = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
    return float(z.std()), s


# ---- ldm naming (reference sd-attention.md section 2) ----------------------------------
RES_MAP = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]


def unet_to_ldm(name, unet):
    L = unet.config.layers_per_block
    parts = name.split(".")
    simple = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for k, v in simple.items():
        if name.startswith(k + "."):
            return "model.diffusion_model." + v + name[len(k):]

    def res(rest):
        for a, b in RES_MAP:
            if rest.startswith(a + "."):
                return b + rest[len(a):]
        raise KeyError(name)

    if parts[0] == "down_blocks":
        i = int(parts[1])
        kind = parts[2]
        if kind == "resnets":
            j = int(parts[3])
            new = f"input_blocks.{i * (L + 1) + j + 1}.0." + res(".".join(parts[4:]))
        elif kind == "attentions":
            j = int(parts[3])
            new = f"input_blocks.{i * (L + 1) + j + 1}.1." + ".".join(parts[4:])
        else:  # downsamplers.0.conv.X
            new = f"input_blocks.{(i + 1) * (L + 1)}.0.op." + ".".join(parts[5:])
    elif parts[0] == "up_blocks":
        i = int(parts[1])
        kind = parts[2]
        has_attn = hasattr(unet.up_blocks[i], "attentions")
        if kind == "resnets":
            j = int(parts[3])
            new = f"output_blocks.{i * (L + 1) + j}.0." + res(".".join(parts[4:]))
        elif kind == "attentions":
            j = int(parts[3])
            new = f"output_blocks.{i * (L + 1) + j}.1." + ".".join(parts[4:])
        else:  # upsamplers.0.conv.X
            new = f"output_blocks.{i * (L + 1) + L}.{2 if has_attn else 1}.conv." + ".".join(parts[5:])
    elif parts[0] == "mid_block":
        kind, j = parts[1], int(parts[2])
        idx = {("resnets", 0): 0, ("attentions", 0): 1, ("resnets", 1): 2}[(kind, j)]
        rest = ".".join(parts[3:])
        new = f"middle_block.{idx}." + (res(rest) if kind == "resnets" else rest)
    else:
        raise KeyError(name)
    return "model.diffusion_model." + new


def vae_to_ldm(name, t):
    """Returns (ldm name, tensor) for encoder-side VAE weights; None for the decoder."""
    if name.startswith("decoder.") or name.startswith("post_quant_conv."):
        return None  # the tiny single file keeps only what the encoder path needs
    n = name
    p = n.split(".")
    if n.startswith("encoder.down_blocks."):
        i = p[2]
        if p[3] == "resnets":
            rest = ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut")
            n = f"encoder.down.{i}.block.{p[4]}.{rest}"
        else:
            n = f"encoder.down.{i}.downsample.conv." + ".".join(p[6:])
    elif n.startswith("encoder.mid_block.resnets."):
        rest = ".".join(p[4:]).replace("conv_shortcut", "nin_shortcut")
        n = f"encoder.mid.block_{int(p[3]) + 1}.{rest}"
    elif n.startswith("encoder.mid_block.attentions.0."):
        rest = ".".join(p[4:])
        for a, b in [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                     ("to_out.0", "proj_out")]:
            if rest.startswith(a + "."):
                rest = b + rest[len(a):]
                break
        n = "encoder.mid.attn_1." + rest
        if t.ndim == 2:
            t = t.reshape(t.shape[0], t.shape[1], 1, 1)
    elif n.startswith("encoder.conv_norm_out."):
        n = "encoder.norm_out." + p[-1]
    return "first_stage_model." + n, t


def main():
    os.makedirs(OUT, exist_ok=True)
    clip, vae, unet = build()

    # ---- inputs: a real photo and its caption ------------------------------------------
    caps = [json.loads(l) for l in open(os.path.join(SHARED, "images", "captions.jsonl"))]
    caption = next(c["caption"] for c in caps if c["image"] == PHOTO)
    tok = CLIPTokenizer.from_pretrained(os.path.join(SHARED, "clip"))
    ids_real = tok(caption, padding="max_length", max_length=77, truncation=True,
                   return_tensors="pt").input_ids[0]
    ids = ids_real % VOCAB
    img = Image.open(os.path.join(SHARED, "images", PHOTO)).convert("RGB")
    img = img.resize((IMG_W, IMG_H), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img).astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()
    lat_std, qscale = scale_latent(vae, x)
    assert 0.5 < lat_std < 2.0, lat_std

    G = {"ids": ids.to(torch.int64), "ids_real": ids_real.to(torch.int64), "image": x}
    with torch.no_grad():
        # ---- CLIP -------------------------------------------------------------------------
        out = clip(ids[None], output_hidden_states=True)
        G["text_states"] = out.last_hidden_state[0]
        # ---- VAE ----------------------------------------------------------------------------
        h = vae.encoder(x[None])
        moments = vae.quant_conv(h)[0]
        G["vae_moments"] = moments
        mean = vae.encode(x[None]).latent_dist.mean[0]
        z0 = mean * vae.config.scaling_factor
        G["vae_latent"] = z0
        # ---- schedule + noising -------------------------------------------------------------
        sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear")
        G["betas"] = sched.betas.to(torch.float32)
        G["alphas_cumprod"] = sched.alphas_cumprod.to(torch.float32)
        noise = torch.randn(z0.shape)
        t = torch.tensor([T_STEP])
        xt = sched.add_noise(z0[None], noise[None], t)[0]
        G["noise"], G["t"], G["x_t"] = noise, t.to(torch.int64), xt
        # ---- UNet with attn2 capture ----------------------------------------------------------
        unet.set_attn_processor(AttnProcessor())
        order = []
        for name, mod in unet.named_modules():
            if name.endswith("attn2"):
                orig = mod.get_attention_scores

                def wrap(q, k, mask=None, _orig=orig, _name=name, _heads=mod.heads):
                    p = _orig(q, k, mask)
                    G["attn." + _name] = p.reshape(-1, _heads, p.shape[1], p.shape[2]).mean(1)[0]
                    order.append(_name)
                    return p
                mod.get_attention_scores = wrap
        hooks = []
        for i, blk in enumerate(unet.down_blocks):
            hooks.append(blk.register_forward_hook(
                lambda m, a, o, i=i: G.__setitem__(f"unet.down.{i}", o[0][0])))
        hooks.append(unet.mid_block.register_forward_hook(
            lambda m, a, o: G.__setitem__("unet.mid", o[0])))
        hooks.append(unet.conv_in.register_forward_hook(
            lambda m, a, o: G.__setitem__("unet.conv_in", o[0])))
        hooks.append(unet.time_embedding.register_forward_hook(
            lambda m, a, o: G.__setitem__("unet.temb", o[0])))
        for i, blk in enumerate(unet.up_blocks):
            hooks.append(blk.register_forward_hook(
                lambda m, a, o, i=i: G.__setitem__(f"unet.up.{i}", o[0])))
        eps = unet(xt[None], t, encoder_hidden_states=G["text_states"][None]).sample[0]
        G["unet_out"] = eps
        for h_ in hooks:
            h_.remove()

    G = {k: v.detach().contiguous() for k, v in G.items()}
    meta = {"caption": caption, "photo": PHOTO, "attn_order": ",".join(order),
            "generator": "tests/ref/gen_sd.py", "t": str(T_STEP), "latent_std": f"{lat_std:.4f}",
            "quant_mean_scale": str(qscale)}
    save_file(G, os.path.join(OUT, "golden.safetensors"), metadata=meta)

    # ---- diffusers folder ----------------------------------------------------------------
    D = os.path.join(OUT, "diffusers")
    for sub in ("text_encoder", "vae", "unet", "scheduler"):
        os.makedirs(os.path.join(D, sub), exist_ok=True)
    clip.config.save_pretrained(os.path.join(D, "text_encoder"))
    # transformers 5 names the keys without "text_model." (older files have it; both load)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()
               if not k.endswith("position_ids")},
              os.path.join(D, "text_encoder", "model.safetensors"), metadata={"format": "pt"})
    vae.save_config(os.path.join(D, "vae"))
    # the decoder is left out (our loader never reads it; it would add 250 KB)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()
               if not k.startswith(("decoder.", "post_quant_conv."))},
              os.path.join(D, "vae", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    unet.save_config(os.path.join(D, "unet"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in unet.state_dict().items()},
              os.path.join(D, "unet", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    sched.save_config(os.path.join(D, "scheduler"))
    with open(os.path.join(D, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
                   "text_encoder": ["transformers", "CLIPTextModel"],
                   "tokenizer": ["transformers", "CLIPTokenizer"],
                   "unet": ["diffusers", "UNet2DConditionModel"],
                   "vae": ["diffusers", "AutoencoderKL"]}, f, indent=2)

    # ---- ldm single file -----------------------------------------------------------------
    S = {}
    for k, v in unet.state_dict().items():
        S[unet_to_ldm(k, unet)] = v.to(torch.bfloat16).contiguous()
    for k, v in vae.state_dict().items():
        r = vae_to_ldm(k, v)
        if r:
            S[r[0]] = r[1].to(torch.float16).contiguous()
    for k, v in clip.state_dict().items():
        if k.endswith("position_ids"):
            continue
        k = k if k.startswith("text_model.") else "text_model." + k   # real ldm naming
        S["cond_stage_model.transformer." + k] = v.to(torch.bfloat16).contiguous()
    save_file(S, os.path.join(OUT, "ldm.safetensors"))
    total = 0
    for dp, _, fs in os.walk(OUT):
        for f in fs:
            total += os.path.getsize(os.path.join(dp, f))
    print(f"gen_sd: wrote {OUT} ({total / 1e6:.2f} MB), {len(order)} attn2 maps, latent std {lat_std:.3f} "
          f"(quant_conv mean x{qscale:g})", file=sys.stderr)


if __name__ == "__main__":
    main()
