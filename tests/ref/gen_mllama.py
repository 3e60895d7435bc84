#!/usr/bin/env python3
"""Golden data for lib/models/mllama (tests/unit/test_mllama.c).

A tiny random MllamaForConditionalGeneration (vision: 2 local + 1 global layer, width 32,
tile 56 with patch 14, max 4 tiles; text: 4 layers with a cross-attention layer at 1, width
64, GQA 4/2 heads, llama3 rope scaling, vocab 256 + 8) is saved as an HF folder in
tests/golden/mllama/model/. Two real photos from ../shared/data/images go through the real
MllamaImageProcessor (a portrait 2x2 canvas and a wide page on a 1x3 canvas, so padded tiles
and padding images occur). Token ids are built directly in the tiny vocab (<|image|> = 256).

Files written (all float32 unless noted):
  model/                 config.json + model.safetensors (save_pretrained)
  io.safetensors         processor outputs, ids, labels, cross-attention mask, vision
                         features, projector output, logits, loss,
                         captured cross-attention probabilities, the random weights R of
                         the extra loss term sum(P*R), and grad.<param> for every parameter
                         of loss_total = CE + sum(P*R)
  lora.safetensors       PEFT LoRA (r=4, alpha=8, q_proj,v_proj) with non-zero B: lora
                         weights (PEFT key names), logits, loss and LoRA grads of CE
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from transformers import MllamaConfig, MllamaForConditionalGeneration
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil as ImgProc
from transformers.models.mllama.processing_mllama import (
    convert_sparse_cross_attention_mask_to_dense, get_cross_attention_token_mask)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "mllama")
IMGDIR = os.path.join(ROOT, "..", "shared", "data", "images")
IMAGES = ["COCO_val2014_000000038678.png", "skimage_page.png"]
IMAGE_TOKEN = 256

torch.manual_seed(0)
np.random.seed(0)
torch.set_num_threads(1)


def config():
    vision = dict(hidden_size=32, attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                  num_global_layers=1, image_size=56, patch_size=14, max_num_tiles=4,
                  intermediate_layers_indices=[0, 1], vision_output_dim=32 * 3, norm_eps=1e-5,
                  hidden_act="gelu", num_channels=3)
    text = dict(vocab_size=256, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=96, num_hidden_layers=4, cross_attention_layers=[1],
                rms_norm_eps=1e-5, max_position_embeddings=131072, tie_word_embeddings=False,
                rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                     low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=8192),
                bos_token_id=200, eos_token_id=201, pad_token_id=202)
    return MllamaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN)


def randomize(model):
    # HF init leaves gates at 0 / pi/4 and some tables at zero; randomise everything so each
    # path (gates, tile embeddings, norms) carries signal into the golden numbers.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gate") or "gate_attn" in name or "gate_ffn" in name or name.endswith("_gate"):
                p.copy_(torch.rand(p.shape, generator=g) * 1.2 - 0.6 + 0.3)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan = p.shape[-1] if p.dim() > 1 else p.numel()
                std = 1.0 / np.sqrt(fan) if p.dim() > 1 else 0.3
                if "patch_embedding" in name:
                    std = 1.0 / np.sqrt(3 * 14 * 14)
                if "embedding" in name and "patch" not in name:
                    std = 0.3
                p.copy_(std * torch.randn(p.shape, generator=g))


def token_ids():
    rng = np.random.RandomState(3)
    T = 20
    ids = rng.randint(0, 200, size=(2, T))
    ids[:, 0] = 200                    # bos
    ids[0, 5] = IMAGE_TOKEN            # rows 0..4 of sample 0 see no image
    ids[1, 1] = IMAGE_TOKEN
    labels = ids.copy()
    labels[0, :12] = -100              # prompt part
    labels[1, :9] = -100
    labels[1, 17:] = -100              # right padding
    ids[1, 17:] = 202
    return ids, labels


def main():
    os.makedirs(OUT, exist_ok=True)
    cfg = config()
    model = MllamaForConditionalGeneration(cfg).float().eval()
    randomize(model)
    model.config._attn_implementation = "eager"
    for m in model.modules():
        if hasattr(m, "config") and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = "eager"
    model.save_pretrained(os.path.join(OUT, "model"), safe_serialization=True)

    # --- processor on real photos ---
    proc = ImgProc(size={"height": 56, "width": 56}, max_image_tiles=4, resample=2,
                   do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                   image_mean=[0.48145466, 0.4578275, 0.40821073],
                   image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
    pil = [Image.open(os.path.join(IMGDIR, f)) for f in IMAGES]
    pil = [im.convert("RGB") for im in pil]
    feats = proc([[pil[0]], [pil[1]]], return_tensors="np")
    pixel_values = torch.tensor(feats["pixel_values"], dtype=torch.float32)
    ar_ids = torch.tensor(feats["aspect_ratio_ids"], dtype=torch.int64)
    ar_mask = torch.tensor(feats["aspect_ratio_mask"], dtype=torch.int64)
    num_tiles = feats["num_tiles"]

    ids_np, labels_np = token_ids()
    masks = [get_cross_attention_token_mask(list(r), IMAGE_TOKEN) for r in ids_np]
    xmask = convert_sparse_cross_attention_mask_to_dense(masks, num_tiles, 4, ids_np.shape[1])
    input_ids = torch.tensor(ids_np, dtype=torch.int64)
    labels = torch.tensor(labels_np, dtype=torch.int64)
    xmask = torch.tensor(xmask, dtype=torch.int64)

    # --- capture cross-attention probabilities and vision features via hooks ---
    cap = {}

    def xattn_hook(mod, inp, out):
        cap["probs"] = out[1]

    def vis_hook(mod, inp, out):
        cap["vision"] = out.last_hidden_state

    def proj_hook(mod, inp, out):
        cap["proj"] = out

    lm = model.model.language_model
    xl = lm.layers[1]
    h1 = xl.cross_attn.register_forward_hook(xattn_hook)
    h2 = model.model.vision_model.register_forward_hook(vis_hook)
    h3 = model.model.multi_modal_projector.register_forward_hook(proj_hook)

    out = model(input_ids=input_ids, pixel_values=pixel_values, aspect_ratio_ids=ar_ids,
                aspect_ratio_mask=ar_mask, cross_attention_mask=xmask, labels=labels)
    probs = cap["probs"]
    R = torch.randn(probs.shape, generator=torch.Generator().manual_seed(7))
    total = out.loss + (probs * R).sum()
    total.backward()
    h1.remove(); h2.remove(); h3.remove()

    t = {
        "pixel_values": pixel_values.contiguous(),
        "aspect_ratio_ids": ar_ids,
        "aspect_ratio_mask": ar_mask,
        "num_tiles": torch.tensor([n[0] for n in num_tiles], dtype=torch.int64),
        "input_ids": input_ids,
        "labels": labels,
        "cross_attention_mask": xmask,
        "vision_features": cap["vision"].detach().contiguous(),
        "projector_out": cap["proj"].detach().contiguous(),
        "logits": out.logits.detach().contiguous(),
        "loss": out.loss.detach().reshape(1),
        "loss_total": total.detach().reshape(1),
        "xattn_probs": probs.detach().contiguous(),
        "xattn_R": R.contiguous(),
    }
    for name, p in model.named_parameters():
        t["grad." + name] = p.grad.detach().clone().contiguous()
    save_file(t, os.path.join(OUT, "io.safetensors"))

    # --- LoRA (PEFT) with non-zero B, CE loss only ---
    from peft import LoraConfig, get_peft_model
    model.zero_grad(set_to_none=True)
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    pm = get_peft_model(model, lcfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    out2 = pm(input_ids=input_ids, pixel_values=pixel_values, aspect_ratio_ids=ar_ids,
              aspect_ratio_mask=ar_mask, cross_attention_mask=xmask, labels=labels)
    out2.loss.backward()
    lt = {"logits": out2.logits.detach().contiguous(), "loss": out2.loss.detach().reshape(1)}
    for name, p in pm.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            lt["w." + key] = p.detach().clone().contiguous()
            lt["grad." + key] = p.grad.detach().clone().contiguous()
    save_file(lt, os.path.join(OUT, "lora.safetensors"))
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump({"images": IMAGES, "lora": {"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]},
                   "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__}, f, indent=1)
    print("loss", out.loss.item(), "total", total.item(), "lora loss", out2.loss.item(), file=sys.stderr)


if __name__ == "__main__":
    main()
