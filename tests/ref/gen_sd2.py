#!/usr/bin/env python3
"""Golden data for SD 2.x in lib/models/sd (tests/unit/test_sd2.c).

Tiny random-weight models shaped like SD 2.x:
  text encoder  CLIPTextModel with hidden_act "gelu" (exact), width 32 (SD 1 tiny: 64),
                2 heads; the full tower has 3 layers and SD 2 uses the penultimate one then
                final_layer_norm, so the diffusers folder stores 2 layers (as the real SD 2
                folders store 23 of 24) and the ldm file all 3 OpenCLIP resblocks
  VAE           AutoencoderKL (SD 2 = SD 1 VAE), 4 levels; the posterior-mean rows of
                quant_conv are scaled by a power of two so the scaled latent has std ~1
                (not ~0.04: the image must matter in the UNet input)
  UNet          UNet2DConditionModel with use_linear_projection, upcast_attention,
                cross_attention_dim 32, attention_head_dim = [2, 4, 8] (diffusers means
                the HEAD COUNT per level; head dim 4 everywhere, as SD 2 has 64)
Written as
  tests/golden/sd2/diffusers/         diffusers folder (VAE F32, text/UNet F16; no decoder)
  tests/golden/sd2/ldm.safetensors    ldm single file, converted by the key mapping below
                                      (OpenCLIP text tower cond_stage_model.model.*, fused
                                      in_proj, text_projection kept and unused; UNet/CLIP
                                      BF16, VAE F16)
  tests/golden/sd2/golden.safetensors inputs, text states, VAE latent, UNet output and
                                      every attn2 map (head-averaged, attention processor)
Weights are rounded to values exact in F16 and BF16 (so both layouts hold the same numbers).
Text ids: the caption through the SD tokenizer with SD 2's padding (pad token "!" = id 0),
`ids_real`; fed to the tiny model as ids_real % 1000.

Run: .venv-ref/bin/python tests/ref/gen_sd2.py   (CPU, a few seconds)
"""
import copy
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_sd  # noqa: E402  (ldm key mapping and weight rounding shared with SD 1)

ROOT = gen_sd.ROOT
SHARED = gen_sd.SHARED
OUT = os.path.join(ROOT, "tests", "golden", "sd2")

VOCAB = 1000
IMG_W, IMG_H = 128, 64          # latent 16 x 8
T_STEP = 600
PHOTO = "skimage_chelsea.png"

torch.manual_seed(2024)
torch.set_num_threads(1)


def build():
    tcfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=128,
                          num_hidden_layers=3, num_attention_heads=2, max_position_embeddings=77,
                          hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=32,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)
    full = CLIPTextModel(tcfg).eval()            # the whole OpenCLIP tower (3 resblocks)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(8, 16, 16, 16),
                        down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=4, sample_size=64,
                        scaling_factor=0.18215).eval()
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                block_out_channels=(8, 16, 32), layers_per_block=1,
                                down_block_types=["CrossAttnDownBlock2D"] * 2 + ["DownBlock2D"],
                                up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 2,
                                norm_num_groups=4, norm_eps=1e-5, cross_attention_dim=32,
                                attention_head_dim=[2, 4, 8], flip_sin_to_cos=True, freq_shift=0,
                                use_linear_projection=True, upcast_attention=True).eval()
    for m in (full, vae, unet):
        gen_sd.round_weights(m)
    # the 2-layer model diffusers stores: the full tower minus its last layer
    tcfg2 = copy.deepcopy(tcfg)
    tcfg2.num_hidden_layers = 2
    clip = CLIPTextModel(tcfg2).eval()
    sd_full = full.state_dict()
    clip.load_state_dict({k: v for k, v in sd_full.items() if ".layers.2." not in k})
    return full, clip, vae, unet


def scale_latent(vae, x):
    """Scales quant_conv's mean rows by a power of two so std(latent) is in [0.7, 1.4]."""
    with torch.no_grad():
        z = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
        s = 2.0 ** round(math.log2(1.0 / float(z.std())))
        C = vae.config.latent_channels
        vae.quant_conv.weight[:C] *= s
        vae.quant_conv.bias[:C] *= s
        z = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
    return float(z.std()), s


def clip_to_openclip(full, proj_dim=32):
    """transformers CLIPTextModel state -> ldm FrozenOpenCLIPEmbedder names (SD 2)."""
    P = "cond_stage_model.model."
    sd = {k[len("text_model."):] if k.startswith("text_model.") else k: v
          for k, v in full.state_dict().items() if not k.endswith("position_ids")}
    S = {P + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
         P + "positional_embedding": sd["embeddings.position_embedding.weight"],
         P + "ln_final.weight": sd["final_layer_norm.weight"],
         P + "ln_final.bias": sd["final_layer_norm.bias"]}
    D = sd["embeddings.token_embedding.weight"].shape[1]
    gen = torch.Generator().manual_seed(7)
    S[P + "text_projection"] = gen_sd_round(torch.randn(D, proj_dim, generator=gen) * 0.1)
    S[P + "logit_scale"] = torch.tensor(4.605)
    i = 0
    while f"encoder.layers.{i}.layer_norm1.weight" in sd:
        L, R = f"encoder.layers.{i}.", f"{P}transformer.resblocks.{i}."
        S[R + "attn.in_proj_weight"] = torch.cat([sd[L + f"self_attn.{q}_proj.weight"] for q in "qkv"], 0)
        S[R + "attn.in_proj_bias"] = torch.cat([sd[L + f"self_attn.{q}_proj.bias"] for q in "qkv"], 0)
        for a, b in [("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                     ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]:
            for s in ("weight", "bias"):
                S[R + b + "." + s] = sd[L + a + "." + s]
        i += 1
    return S


def gen_sd_round(t):
    q = t.to(torch.bfloat16).to(torch.float32)
    back = q.to(torch.float16).to(torch.float32)
    return torch.where(back == q, q, torch.zeros_like(q))


def main():
    os.makedirs(OUT, exist_ok=True)
    full, clip, vae, unet = build()

    caps = [json.loads(l) for l in open(os.path.join(SHARED, "images", "captions.jsonl"))]
    caption = next(c["caption"] for c in caps if c["image"] == PHOTO)
    # SD 2's tokenizer folder pads with "!" (id 0); the SD 1 vocabulary is the same
    tok = CLIPTokenizer.from_pretrained(os.path.join(SHARED, "clip"), pad_token="!")
    assert tok.pad_token_id == 0
    ids_real = tok(caption, padding="max_length", max_length=77, truncation=True,
                   return_tensors="pt").input_ids[0]
    assert int(ids_real[-1]) == 0
    ids = ids_real % VOCAB
    img = Image.open(os.path.join(SHARED, "images", PHOTO)).convert("RGB")
    img = img.resize((IMG_W, IMG_H), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img).astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).contiguous()
    lat_std, qscale = scale_latent(vae, x)
    assert 0.5 < lat_std < 2.0, lat_std

    G = {"ids": ids.to(torch.int64), "ids_real": ids_real.to(torch.int64), "image": x}
    with torch.no_grad():
        # ---- text: SD 2 = penultimate layer of the full tower, then final_layer_norm ------
        out = clip(ids[None])
        G["text_states"] = out.last_hidden_state[0]
        hs = full(ids[None], output_hidden_states=True).hidden_states[-2]
        tm = getattr(full, "text_model", full)
        pen = tm.final_layer_norm(hs)[0]
        assert torch.allclose(pen, G["text_states"], atol=1e-6), "penultimate rule"
        G["text_states_last_layer"] = full(ids[None]).last_hidden_state[0]   # the wrong choice
        # ---- VAE ------------------------------------------------------------------------
        h = vae.encoder(x[None])
        G["vae_moments"] = vae.quant_conv(h)[0]
        z0 = vae.encode(x[None]).latent_dist.mean[0] * vae.config.scaling_factor
        G["vae_latent"] = z0
        # ---- noising (v-prediction changes nothing in a single UNet pass) ------------------
        sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", prediction_type="v_prediction")
        noise = torch.randn(z0.shape)
        t = torch.tensor([T_STEP])
        xt = sched.add_noise(z0[None], noise[None], t)[0]
        G["noise"], G["t"], G["x_t"] = noise, t.to(torch.int64), xt
        # ---- UNet with attn2 capture -----------------------------------------------------
        unet.set_attn_processor(AttnProcessor())
        # the UNet output must depend on the image: a zero latent gives something else
        eps0 = unet(torch.zeros_like(xt)[None], t, encoder_hidden_states=G["text_states"][None]).sample[0]
        order, heads = [], {}
        for name, mod in unet.named_modules():
            if name.endswith("attn2"):
                orig = mod.get_attention_scores
                heads[name] = mod.heads

                def wrap(q, k, mask=None, _orig=orig, _name=name, _heads=mod.heads):
                    p = _orig(q, k, mask)
                    G["attn." + _name] = p.reshape(-1, _heads, p.shape[1], p.shape[2]).mean(1)[0]
                    order.append(_name)
                    return p
                mod.get_attention_scores = wrap
        eps = unet(xt[None], t, encoder_hidden_states=G["text_states"][None]).sample[0]
        G["unet_out"] = eps
        dep = float((eps - eps0).abs().max() / eps.abs().max())
        assert dep > 0.1, dep

    G = {k: v.detach().contiguous() for k, v in G.items()}
    meta = {"caption": caption, "photo": PHOTO, "attn_order": ",".join(order),
            "attn_heads": ",".join(str(heads[n]) for n in order),
            "generator": "tests/ref/gen_sd2.py", "t": str(T_STEP),
            "prediction_type": "v_prediction", "latent_std": f"{lat_std:.4f}",
            "quant_mean_scale": str(qscale)}
    save_file(G, os.path.join(OUT, "golden.safetensors"), metadata=meta)

    # ---- diffusers folder ----------------------------------------------------------------
    D = os.path.join(OUT, "diffusers")
    for sub in ("text_encoder", "vae", "unet", "scheduler"):
        os.makedirs(os.path.join(D, sub), exist_ok=True)
    clip.config.save_pretrained(os.path.join(D, "text_encoder"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in clip.state_dict().items()
               if not k.endswith("position_ids")},
              os.path.join(D, "text_encoder", "model.safetensors"), metadata={"format": "pt"})
    vae.save_config(os.path.join(D, "vae"))
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
        S[gen_sd.unet_to_ldm(k, unet)] = v.to(torch.bfloat16).contiguous()
    for k, v in vae.state_dict().items():
        r = gen_sd.vae_to_ldm(k, v)
        if r:
            S[r[0]] = r[1].to(torch.float16).contiguous()
    for k, v in clip_to_openclip(full).items():
        S[k] = v.to(torch.bfloat16).contiguous()
    save_file(S, os.path.join(OUT, "ldm.safetensors"))
    total = 0
    for dp, _, fs in os.walk(OUT):
        for f in fs:
            total += os.path.getsize(os.path.join(dp, f))
    print(f"gen_sd2: wrote {OUT} ({total / 1e6:.2f} MB), {len(order)} attn2 maps, latent std "
          f"{lat_std:.3f} (quant_conv mean x{qscale:g}), image dependence {dep:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
