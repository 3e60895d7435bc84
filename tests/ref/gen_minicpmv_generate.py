#!/usr/bin/env python3
"""Golden data for greedy generation of lib/models/minicpmv (tests/unit/test_minicpmv_gen.c).

The tiny model of gen_minicpmv.py (tests/golden/minicpmv/model, loaded back as
gen_minicpmv_train.py does: the hub's module tree llm / vpm / resampler) on two real
photos of ../shared/data/images, each sliced by the model's slice_config (448, max 9) with
the processor re-implementation of gen_minicpmv_proc.py (which test_minicpmv_proc checks
bit for bit against lvd_minicpmv_preprocess):
  A  COCO_val2014_000000203438.png 640x640: the source picture + a 2x2 grid of slices
  B  COCO_val2014_000000038678.png 480x640: the source picture + 2 slices

What the hub's MiniCPMV.generate does (modeling_minicpmv.py of MiniCPM-Llama3-V-2_5):
get_vllm_embedding (vision tower, resampler, features scattered into the embeddings at
image_bound), then llm.generate(inputs_embeds=..., pad_token_id=0, eos_token_id=
terminators), here with do_sample=False (greedy) and an attention_mask for the left padded
batch (the hub passes none; its batched path is not used by chat()). The vocabulary has
128 ids and no tokenizer, so the chat layout uses stand-in ids: <|begin_of_text|> 1,
<unk> 0, <image> 3, </image> 4, <slice> 5, </slice> 6, "\\n" 7, "\\n\\n" 8,
<|start_header_id|> 120, <|end_header_id|> 121, <|eot_id|> 122, "assistant" 123,
"user" 124: <bos> <sh> user <eh> \\n\\n placeholder \\n question <eot> <sh> assistant <eh> \\n\\n
(the rendering of chat() with the open assistant turn), the placeholder as
lvd_minicpmv_chat_build lays it out.

Cases (eos_token_id [2, 122] unless noted, max_new_tokens 8):
  single  B = 1, photo A
  batch   B = 2, photos A and B, prompts of different lengths LEFT padded with 0
          (attention_mask)
  eos     the batch with eos = [2, 122, the 3rd token batch generated for sample 0]

Per case <c>: <c>.input_ids [B, T], <c>.attention_mask [B, T], <c>.image_bound [NI, 2]
(within the padded rows), <c>.n_images [B], <c>.tgt_sizes [NI, 2], <c>.sequences [B, n]
(new tokens only, as generate returns them from inputs_embeds), <c>.logits [n, B, V],
<c>.eos [k]. Written to tests/golden/minicpmv_gen/generate.safetensors (ints as int64).
Run: .venv-ref/bin/python tests/ref/gen_minicpmv_generate.py   (needs ../shared/data)
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_minicpmv as G  # noqa: E402
import gen_minicpmv_proc as P  # noqa: E402
from gen_minicpmv_train import load_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "golden", "minicpmv_gen")
PHOTOS = ["COCO_val2014_000000203438.png", "COCO_val2014_000000038678.png"]
CFG = {"max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14}
UNK, IM0, IM1, SL0, SL1, NL, NL2 = 0, 3, 4, 5, 6, 7, 8
BOS, SH, EH, EOT, ASSISTANT, USER = 1, 120, 121, 122, 123, 124
EOS = [2, EOT]
MAXNEW = 8

torch.set_num_threads(1)


def placeholder(grid):
    one = [IM0] + [UNK] * G.QUERY_NUM + [IM1]
    if not grid:
        return one
    out = one + [SL0]
    for r in range(grid[1]):
        if r:
            out.append(NL)
        out += one * grid[0]
    return out + [SL1]


def prompt(grid, question):
    return [BOS, SH, USER, EH, NL2] + placeholder(grid) + [NL] + question + [EOT, SH, ASSISTANT, EH, NL2]


def photo(name):
    img = Image.open(os.path.join(P.SHARED, "images", name)).convert("RGB")
    pics, grid, _ = P.pictures(img, CFG)
    strips = [P.strip(P.normalise(p), CFG["patch_size"]).contiguous() for p in pics]
    tgt = [(p.height // CFG["patch_size"], p.width // CFG["patch_size"]) for p in pics]
    return strips, tgt, grid


def features(model, strips, tgt):
    ps = CFG["patch_size"]
    L = max(h * w for h, w in tgt)
    pix = torch.zeros(len(strips), 3, ps, L * ps)
    mask = torch.zeros(len(strips), 1, L, dtype=torch.bool)
    for i, (s, (h, w)) in enumerate(zip(strips, tgt)):
        pix[i, :, :, :h * w * ps] = s
        mask[i, 0, :h * w] = True
    vis = model.vpm(pix, patch_attention_mask=mask).last_hidden_state
    return model.resampler(vis, tgt)[0]


def run(model, name, photos, questions, eos, out):
    rows, tgts, feats, nimg = [], [], [], []
    for ph, q in zip(photos, questions):
        strips, tgt, grid = photo(ph)
        rows.append(prompt(grid, q))
        tgts += tgt
        nimg.append(len(tgt))
        with torch.no_grad():
            feats.append(features(model, strips, tgt))
    B, T = len(rows), max(len(r) for r in rows)
    ids = torch.zeros(B, T, dtype=torch.long)
    am = torch.zeros(B, T, dtype=torch.long)
    bounds = []
    for b, r in enumerate(rows):
        off = T - len(r)
        ids[b, off:] = torch.tensor(r)
        am[b, off:] = 1
        st = [i + 1 for i, t in enumerate(ids[b].tolist()) if t == IM0]
        en = [i for i, t in enumerate(ids[b].tolist()) if t == IM1]
        bounds += [[s, e] for s, e in zip(st, en)]
    with torch.no_grad():
        x = model.llm.model.embed_tokens(ids)
        k = 0
        for b in range(B):
            f = feats[b]
            for i in range(f.shape[0]):
                s, e = bounds[k]
                x[b, s:e] = f[i]
                k += 1
        g = model.llm.generate(inputs_embeds=x, attention_mask=am, do_sample=False, max_new_tokens=MAXNEW,
                               eos_token_id=eos, pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    logits = torch.stack(g.logits, 0).float()
    top = torch.topk(logits, 2, dim=-1).values
    print(name, "T", T, "pictures", nimg, "steps", logits.shape[0],
          "min top1-top2 gap %.4g" % (top[..., 0] - top[..., 1]).min().item(), "seq", g.sequences.tolist(),
          file=sys.stderr)
    out[name + ".input_ids"] = ids
    out[name + ".attention_mask"] = am
    out[name + ".image_bound"] = torch.tensor(bounds, dtype=torch.long)
    out[name + ".n_images"] = torch.tensor(nimg, dtype=torch.long)
    out[name + ".tgt_sizes"] = torch.tensor(tgts, dtype=torch.long)
    out[name + ".sequences"] = g.sequences.contiguous()
    out[name + ".logits"] = logits.contiguous()
    out[name + ".eos"] = torch.tensor(eos, dtype=torch.long)
    return g.sequences


def main():
    if not os.path.isdir(P.SHARED):
        sys.exit(f"{P.SHARED} absent")
    os.makedirs(OUT, exist_ok=True)
    model = load_model()
    model.llm.generation_config.pad_token_id = 0
    rng = np.random.RandomState(18)
    qa = [int(v) for v in rng.randint(9, 120, size=7)]
    qb = [int(v) for v in rng.randint(9, 120, size=3)]
    out = {}
    run(model, "single", PHOTOS[:1], [qa], EOS, out)
    seq = run(model, "batch", PHOTOS, [qa, qb], EOS, out)
    run(model, "eos", PHOTOS, [qa, qb], EOS + [int(seq[0, 2])], out)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "generate.safetensors"))


if __name__ == "__main__":
    main()
