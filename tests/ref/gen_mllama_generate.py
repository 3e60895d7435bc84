#!/usr/bin/env python3
"""Golden data for greedy generation of lib/models/mllama (tests/unit/test_mllama_gen.c).

Uses the tiny model and the processed real photos already written by gen_mllama.py
(tests/golden/mllama/model/, io.safetensors: pixel_values, aspect_ratio_ids/mask of the
two photos; run that first). transformers' generate(do_sample=False) with the KV cache
(eager attention, fp32, one thread) on:
  single   B = 1, photo 0, 11-token prompt, max_new_tokens 8
  batch    B = 2, photos 0 and 1, prompts of 11 and 7 tokens, LEFT padded with pad 202
           (attention_mask), max_new_tokens 8
  eos      the batch with eos_token_id = [201, the 3rd token batch generated for sample 0]:
           sample 0 stops there and is padded with 202 (still fed), sample 1 runs on
  text     B = 1, no image (cross layers skipped), a 9-token prompt without <|image|>
  lora     single with the PEFT adapter of lora.safetensors (r 4, alpha 8, q_proj/v_proj)

Per case <c>: <c>.input_ids [B, T], <c>.attention_mask [B, T], <c>.cross_attention_mask
[B, T, 1, 4], <c>.image [B] (row of io.safetensors' pixel_values), <c>.sequences
[B, T + n], <c>.logits [n, B, V] (raw logits of each step, output_logits), <c>.eos [k].
Written to tests/golden/mllama/generate.safetensors.
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from transformers import MllamaForConditionalGeneration
from transformers.models.mllama.processing_mllama import (
    convert_sparse_cross_attention_mask_to_dense, get_cross_attention_token_mask)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLD = os.path.join(ROOT, "tests", "golden", "mllama")
IMAGE_TOKEN, PAD = 256, 202

torch.manual_seed(0)
torch.set_num_threads(1)


def prompts():
    rng = np.random.RandomState(5)
    a = [200] + list(rng.randint(0, 200, size=10))
    a[2] = IMAGE_TOKEN                         # rows 0, 1 see no image
    b = [200, IMAGE_TOKEN] + list(rng.randint(0, 200, size=5))
    return a, b


def pack(rows, io, images):
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), PAD, dtype=np.int64)
    am = np.zeros((len(rows), T), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, T - len(r):] = r
        am[i, T - len(r):] = 1
    nt = io["num_tiles"].tolist()
    masks = [get_cross_attention_token_mask(list(r), IMAGE_TOKEN) for r in ids]
    xm = convert_sparse_cross_attention_mask_to_dense(masks, [[nt[i]] for i in images], 4, T)
    idx = torch.tensor(images)
    return dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(am),
                cross_attention_mask=torch.tensor(xm, dtype=torch.int64),
                pixel_values=io["pixel_values"][idx].contiguous(),
                aspect_ratio_ids=io["aspect_ratio_ids"][idx].contiguous(),
                aspect_ratio_mask=io["aspect_ratio_mask"][idx].contiguous()), idx


def run(model, name, inp, idx, eos, out):
    gen = dict(inp)
    if "pixel_values" not in gen:
        gen.pop("cross_attention_mask")        # text only: the saved mask is all zero
    with torch.no_grad():
        g = model.generate(**gen, do_sample=False, max_new_tokens=8, eos_token_id=eos, pad_token_id=PAD,
                           return_dict_in_generate=True, output_logits=True)
    logits = torch.stack(g.logits, 0).float()
    top = torch.topk(logits, 2, dim=-1).values
    print(name, "steps", logits.shape[0], "min top1-top2 gap %.4g" % (top[..., 0] - top[..., 1]).min().item(),
          "seq", g.sequences.tolist(), file=sys.stderr)
    for k in ("input_ids", "attention_mask", "cross_attention_mask"):
        out[name + "." + k] = inp[k].clone().contiguous()
    out[name + ".image"] = idx.clone()
    out[name + ".sequences"] = g.sequences.contiguous()
    out[name + ".logits"] = logits.contiguous()
    out[name + ".eos"] = torch.tensor(eos, dtype=torch.int64)
    return g.sequences


def main():
    io = load_file(os.path.join(GOLD, "io.safetensors"))
    model = MllamaForConditionalGeneration.from_pretrained(os.path.join(GOLD, "model"), attn_implementation="eager",
                                                           dtype=torch.float32).eval()
    a, b = prompts()
    out = {}
    single, i1 = pack([a], io, [0])
    run(model, "single", single, i1, [201], out)
    batch, i2 = pack([a, b], io, [0, 1])
    seq = run(model, "batch", batch, i2, [201], out)
    T = batch["input_ids"].shape[1]
    run(model, "eos", batch, i2, [201, int(seq[0, T + 2])], out)
    text, i3 = pack([[200] + [int(v) for v in np.random.RandomState(9).randint(0, 200, size=8)]], io, [0])
    for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"):
        del text[k]
    text["cross_attention_mask"] = torch.zeros(1, text["input_ids"].shape[1], 1, 4, dtype=torch.int64)
    run(model, "text", dict(text), i3, [201], out)
    from peft import LoraConfig, get_peft_model
    lt = load_file(os.path.join(GOLD, "lora.safetensors"))
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        n = 0
        for pname, p in pm.named_parameters():
            if "lora_" in pname:
                p.copy_(lt["w." + pname.replace(".default", "")])
                n += 1
    assert n > 0
    pm.eval()
    run(pm, "lora", single, i1, [201], out)
    save_file(out, os.path.join(GOLD, "generate.safetensors"))


if __name__ == "__main__":
    main()
