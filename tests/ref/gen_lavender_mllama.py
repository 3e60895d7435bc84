#!/usr/bin/env python3
"""Golden data for the Lavender training step on the real model path
(lib/lavender/lstep.h, tests/unit/test_lavender.c: test_lstep_*).

A tiny random MllamaForConditionalGeneration in gen_mllama.py's style (vision: 2 local +
1 global layer, width 32, tile 56 = 4x4 patches of 14 px, 17 tokens per tile, max 4
tiles; text: 4 layers with cross-attention layers at 1 and 3, width 32, 4 query / 2 kv
heads, vocab 128 + 8; every parameter randomised, gates non-zero) with weights rounded to
bf16 (saved as BF16: half the bytes; the C loader widens them exactly) and PEFT LoRA
(r = 4, alpha = 8, q_proj + v_proj, dropout 0, non-zero B) runs on three real photos of
../shared/data/images through the real MllamaImageProcessor (PIL): chelsea shrunk to
45x40 (1 tile), the COCO portrait 038678 shrunk to 50x100 (2x1 tiles), the COCO
landscape 096638 at full size (2x2 tiles, 84 of 112 rows valid). Pixel values are
rounded to bf16 (stored as BF16 for the valid tiles only).

Each sample has an lvd-pack record built here in the pack's byte layout
(lib/lavender/packrec.h, version 1; image by path): tokens, labels, 2-3 matched words
with token and query positions (one query row shared by two words), fp16 targets
min-max normalised over the validity mask; sample 1's record is a --grid 6 record, the
others canvas records. The rows to capture are the sorted distinct query positions
(as lvd_latt_plan_from_packrec).

The loss: total = ce_scale*CE + lam*L_att with the PyTorch reference of the official
semantics and the geometry fixes of gen_lavender.py (its Aligner, area weights and
min-max are reused), computed in float64 on the fp32 probabilities captured by hooks on
both cross-attention layers; Aligner sim / instance / relu6, d_h 6, mean over the two
layers after the Aligner. Gradients: total.backward() through the fp32 model for LoRA;
lam*dL_att/dP separately (autograd.grad) for the injected probability gradients.

Writes tests/golden/lavender/mllama/ (~0.4 MB):
  model/                  config.json + model.safetensors (BF16)
  step.safetensors        pixel_values (BF16, valid tiles [7, 3, 56, 56] in sample order),
                          num_tiles, aspect_ratio_ids/_mask, input_ids, labels,
                          cross_attention_mask, rec{b} (u8: the packed record), scal
                          [ce_scale, lam, ce, l_att, total], p.<aligner> / dp.<aligner>,
                          w.<peft lora key> / grad.<peft lora key>,
                          s{b}.{rows, maps, aligned, agg, vrows, words, word_loss},
                          s{b}.dprobs [Lc, H, R_b, S] (lam*dL_att/dP on the captured rows,
                          the direct derivative: the probabilities as leaves);
                          o.*: sample 1 in the official geometry (its own Aligner o.p.*):
                          o.latt, o.s1.maps, o.s1.dprobs, o.dp.* (L_att only);
                          k.*: the official word keys (lstep key_str): k.keys (the key
                          table KEYS joined by newlines), k.rec{b} (the records with keys
                          chosen from the model's predictions), k.p.* (its own Aligner),
                          k.scal [l_att, total, pairs], k.dp.*, k.grad.<lora>,
                          k.s{b}.dprobs [Lc, H, T, S] (every row), k.s{b}.words
  .venv-ref/bin/python tests/ref/gen_lavender_mllama.py   (CPU, a few seconds)
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_lavender import Aligner, minmax, overlap_matrix  # noqa: E402
from gen_mllama import randomize  # noqa: E402
from transformers import MllamaConfig, MllamaForConditionalGeneration  # noqa: E402
from transformers.models.mllama.image_processing_pil_mllama import (  # noqa: E402
    MllamaImageProcessorPil as ImgProc, get_image_size_fit_to_canvas)
from transformers.models.mllama.processing_mllama import (  # noqa: E402
    convert_sparse_cross_attention_mask_to_dense, get_cross_attention_token_mask)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "lavender", "mllama")
IMGDIR = os.path.join(ROOT, "..", "shared", "data", "images")
DT = torch.float64
IMAGE_TOKEN = 128
TILE, PX, P, MAX_TILES = 56, 14, 4, 4
TTOK = 1 + P * P
CROSS = [1, 3]
H = 4
T = 14
CE_SCALE, LAM = 0.5, 2.5
D_H = 6
# (file, resize to (w, h) or None, grid, words [(key, pos, query)])
SAMPLES = [
    ("skimage_chelsea.png", (45, 40), 0, [("cat", [7], [6]), ("tabby", [9, 10], [8, 9])]),
    ("COCO_val2014_000000038678.png", (50, 100), 6,
     [("woman", [6], [5]), ("plate", [8], [7]), ("bagel", [10, 11], [5, 10])]),
    ("COCO_val2014_000000096638.png", None, 0, [("man", [4], [3]), ("snow", [11], [10])]),
]


def config(vocab=128, image_token=IMAGE_TOKEN, bos=100, eos=101, pad=102, text_hidden=32):
    """the tiny mllama; gen_sft.py passes the ids of tests/golden/tokenizer/small"""
    vision = dict(hidden_size=32, attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                  num_global_layers=1, image_size=TILE, patch_size=PX, max_num_tiles=MAX_TILES,
                  intermediate_layers_indices=[0, 1], vision_output_dim=32 * 3, norm_eps=1e-5,
                  hidden_act="gelu", num_channels=3)
    text = dict(vocab_size=vocab, hidden_size=text_hidden, num_attention_heads=H, num_key_value_heads=2,
                intermediate_size=64, num_hidden_layers=4, cross_attention_layers=CROSS,
                rms_norm_eps=1e-5, max_position_embeddings=131072, tie_word_embeddings=False,
                rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                     low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=8192),
                bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    return MllamaConfig(vision_config=vision, text_config=text, image_token_index=image_token)


def tokens():
    rng = np.random.RandomState(5)
    ids = rng.randint(0, 100, size=(len(SAMPLES), T))
    ids[:, 0] = 100
    ids[:, 1] = IMAGE_TOKEN
    labels = ids.copy()
    labels[:, :5] = -100
    ids[2, 12:] = 102          # right padding
    labels[2, 12:] = -100
    return ids, labels


def f16_bits(x):
    return np.asarray(x, dtype=np.float16).view(np.uint16)


def pack_record(rid, ids, labels, words, targets, mask, grid, img_wh, new_hw, tiles, aspect, path):
    """lib/lavender/packrec.h version 1, image by path"""
    gh, gw = mask.shape
    flags = 4 if grid else 0
    b = bytearray()
    b += b"LVDP" + struct.pack("<HH", 1, flags)
    b += struct.pack("<IIIIII", T, len(words), gh, gw, 0, 0)
    idb, pb = rid.encode(), path.encode()
    b += struct.pack("<IIII", len(idb), len(pb), img_wh[0], img_wh[1])
    b += struct.pack("<II", new_hw[1], new_hw[0])
    b += struct.pack("<HHHHHH", tiles[0], tiles[1], aspect, TILE, PX, 0)
    b += struct.pack("<I", 1)                        # image_pos
    b += idb
    b += np.asarray(ids, dtype="<i4").tobytes() + np.asarray(labels, dtype="<i4").tobytes()
    for w, (key, pos, query) in enumerate(words):
        kb = key.encode()
        b += struct.pack("<HHIIiff", len(kb), 0, len(pos), len(query), 1000 + w, 0.0, 1.0)
        b += kb + np.asarray(pos, dtype="<u4").tobytes() + np.asarray(query, dtype="<u4").tobytes()
    b += f16_bits(targets).astype("<u2").tobytes()
    b += mask.astype(np.uint8).tobytes()
    b += pb
    return bytes(b)


KINK_MARGIN = 1e-3
# the official key table of the tiny vocabulary (lstep key_str): five strings shared by
# many ids (as " dog" and "dog" both strip to "dog"), "" for the specials >= 100
KEYS = ["" if i >= 100 else "k%d" % (i % 5) for i in range(128)]
ALIGNER_SEED0_KEYS = 7840   # where a search from 1 ended
ALIGNER_SEED0 = 4560
ALIGNER_SEED0_OFF = 1917


def geometry_official(probs, th, tw, grid):
    """gen_lavender.geometry_official with this model's sizes: every tile's TTOK tokens (CLS
    included) linearly interpolated to r*r (r = ceil(sqrt(TTOK)) = 5), canvas r x r /
    r x 2r (2 tiles, always side by side) / 2r x 2r, antialiased bilinear to grid x grid"""
    Hh, R = probs.shape[:2]
    nt = th * tw
    res = math.ceil(math.sqrt(TTOK))
    x = probs[:, :, :MAX_TILES * TTOK].reshape(Hh, R, MAX_TILES, TTOK).permute(1, 2, 0, 3).reshape(-1, Hh, TTOK)
    x = F.interpolate(x, size=res * res, mode="linear", align_corners=False)
    x = x.reshape(R, MAX_TILES, Hh, res, res).permute(0, 2, 1, 3, 4)
    if nt == 1:
        canvas = x[:, :, 0]
    else:
        canvas = torch.zeros(R, Hh, *((res, 2 * res) if nt == 2 else (2 * res, 2 * res)), dtype=DT)
        for t in range(nt):
            canvas[:, :, (t // 2) * res:(t // 2 + 1) * res, (t % 2) * res:(t % 2 + 1) * res] = x[:, :, t]
    return F.interpolate(canvas, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)


def kink_margin(net, Xs):
    """min distance of every ReLU6 input of the sim Aligner to 0 or 6 over the maps Xs"""
    m = float("inf")
    with torch.no_grad():
        for x in Xs:
            z = net.diffag_norm1(net.diffag_expand_1(x))
            m = min(m, z.abs().min().item(), (z - 6).abs().min().item())
            z = net.diffag_norm2(net.diffag_expand_2(torch.clamp(z, 0, 6)))
            m = min(m, z.abs().min().item(), (z - 6).abs().min().item())
            z = net.diffag_norm3(net.diffag_squeeze_1(torch.clamp(z, 0, 6)))
            m = min(m, z.abs().min().item(), (z - 6).abs().min().item())
    return m


def tgen_(b):
    return torch.Generator().manual_seed(31 + b)


def geometry(probs, th, tw, nh, nw, grid):
    """probs [H, R, S] -> maps [R, H, GH, GW] (gen_lavender.geometry with this model's sizes)"""
    Hh, R = probs.shape[:2]
    vh, vw = -(-nh // PX), -(-nw // PX)
    canvas = torch.zeros(Hh, R, th * P, tw * P, dtype=DT)
    for ty in range(th):
        for tx in range(tw):
            t = ty * tw + tx
            tile = probs[:, :, t * TTOK + 1: t * TTOK + 1 + P * P].reshape(Hh, R, P, P)
            canvas[:, :, ty * P:(ty + 1) * P, tx * P:(tx + 1) * P] = tile
    if grid == 0:
        mask = torch.zeros(th * P, tw * P, dtype=torch.bool)
        mask[:vh, :vw] = True
        maps = canvas * mask
    else:
        crop = canvas[:, :, :vh, :vw]
        Ay = overlap_matrix(vh, grid, vh * PX, nh / grid)
        Ax = overlap_matrix(vw, grid, vw * PX, nw / grid)
        maps = torch.einsum("yi,hrij,xj->hryx", Ay, crop, Ax)
        mask = torch.ones(grid, grid, dtype=torch.bool)
    return maps.permute(1, 0, 2, 3), mask


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = MllamaForConditionalGeneration(config()).float().eval()
    randomize(model)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    model.config._attn_implementation = "eager"
    for m in model.modules():
        if hasattr(m, "config") and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = "eager"
    model.to(torch.bfloat16).save_pretrained(os.path.join(OUT, "model"), safe_serialization=True)
    model.float()

    # --- photos through the processor ---
    proc = ImgProc(size={"height": TILE, "width": TILE}, max_image_tiles=MAX_TILES, resample=2,
                   do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                   image_mean=[0.48145466, 0.4578275, 0.40821073],
                   image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
    pil = []
    for f, size, _, _ in SAMPLES:
        im = Image.open(os.path.join(IMGDIR, f)).convert("RGB")
        if size:
            im = im.resize(size, Image.BILINEAR)
        pil.append(im)
    feats = proc([[im] for im in pil], return_tensors="np")
    pix = torch.tensor(feats["pixel_values"], dtype=torch.float32).to(torch.bfloat16).float()
    ar_ids = torch.tensor(feats["aspect_ratio_ids"], dtype=torch.int64)
    ar_mask = torch.tensor(feats["aspect_ratio_mask"], dtype=torch.int64)
    num_tiles = [n[0] for n in feats["num_tiles"]]
    aspects = [(a, b) for a in range(1, MAX_TILES + 1) for b in range(1, MAX_TILES + 1) if a * b <= MAX_TILES]
    aspects.sort(key=lambda x: (x[0], x[1]))
    ids_np, labels_np = tokens()
    xmask = convert_sparse_cross_attention_mask_to_dense(
        [get_cross_attention_token_mask(list(r), IMAGE_TOKEN) for r in ids_np], [[n] for n in num_tiles],
        MAX_TILES, T)
    input_ids = torch.tensor(ids_np, dtype=torch.int64)
    labels = torch.tensor(labels_np, dtype=torch.int64)
    xmask = torch.tensor(xmask, dtype=torch.int64)

    # --- LoRA ---
    from peft import LoraConfig, get_peft_model
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))

    cap = {}
    lm = model.model.language_model
    hooks = []
    for k, li in enumerate(CROSS):
        def hook(mod, inp, out, k=k):
            out[1].retain_grad()
            cap[k] = out[1]
        hooks.append(lm.layers[li].cross_attn.register_forward_hook(hook))
    out = pm(input_ids=input_ids, pixel_values=pix, aspect_ratio_ids=ar_ids, aspect_ratio_mask=ar_mask,
             cross_attention_mask=xmask, labels=labels)
    for h in hooks:
        h.remove()
    S = cap[0].shape[-1]
    assert S == MAX_TILES * TTOK and cap[0].shape[1] == H

    # --- records, geometry, loss ---
    # The loss is computed twice on the same values: on the model's graph tensors (for
    # total.backward: LoRA and Aligner gradients) and on detached leaf copies of the
    # captured probabilities, whose gradient is the direct (partial) dL_att/dP that the C
    # step injects; the total derivative would also hold the path from cross layer 1's
    # probabilities through the hidden states into layer 3's, which the model's
    # backward adds itself.
    t = {}
    leaves = [cap[k].detach().clone().requires_grad_(True) for k in range(len(CROSS))]
    npairs = sum(len(s[3]) for s in SAMPLES)
    tgts, geo = [], []
    for b, (f, size, grid, words) in enumerate(SAMPLES):
        th, tw = aspects[int(ar_ids[b, 0]) - 1]
        assert th * tw == num_tiles[b]
        iw, ih = pil[b].size
        nh, nw = get_image_size_fit_to_canvas(ih, iw, th * TILE, tw * TILE, TILE)
        rows = sorted({q for _, _, qs in words for q in qs})
        mask = geometry(cap[0][b][:, rows, :].detach().to(DT), th, tw, nh, nw, grid)[1]
        GH, GW = mask.shape
        tg = torch.rand(len(words), GH, GW, generator=tgen_(b), dtype=DT) ** 2
        tg = minmax(tg, mask).half().to(DT)
        tgts.append(tg)
        geo.append((th, tw, nh, nw, grid, rows, mask))
        rec = pack_record(f"s{b}", ids_np[b], labels_np[b], words, tg.numpy(), mask.numpy(), grid, (iw, ih),
                          (nh, nw), (th, tw), int(ar_ids[b, 0]), f)
        t[f"rec{b}"] = torch.tensor(np.frombuffer(rec, dtype=np.uint8).copy())

    def maps_of(b, pl, off):
        th, tw, nh, nw, grid, rows, mask = geo[b]
        return geometry_official(pl, th, tw, grid) if b in off else geometry(pl, th, tw, nh, nw, grid)[0]

    def loss_of(src, net, off=()):
        latt = 0
        per = []
        for b, (f, size, grid_, words) in enumerate(SAMPLES):
            th, tw, nh, nw, grid, rows, mask = geo[b]
            GH, GW = mask.shape
            R = len(rows)
            probs = [src[k][b][:, rows, :].to(DT) for k in range(len(CROSS))]   # [H, R, S] each
            X = torch.stack([maps_of(b, pl, off) for pl in probs])   # [L, R, H, GH, GW]
            Y = net(X.reshape(-1, H, GH, GW)).view(len(CROSS), R, GH, GW)
            Z = Y.mean(0)
            V = minmax(Z, mask)
            Us, wl = [], []
            for w, (_, _, qs) in enumerate(words):
                U = minmax(V[[rows.index(q) for q in qs]].mean(0), mask)
                mse = ((U - tgts[b][w])[mask] ** 2).mean()
                latt = latt + mse
                Us.append(U)
                wl.append(mse)
            per.append((rows, X, Y, Z, V, torch.stack(Us), torch.stack(wl)))
        return latt / npairs, per

    # The Aligner's seed: the first from ALIGNER_SEED0 whose ReLU6 inputs all lie >= KINK_MARGIN away
    # from the kinks 0 and 6 on these maps. The C forward carries the fp32 model's error
    # (~1e-4 of the scale after the convs and instance norms); a pre-activation closer
    # to a kink than that can fall on the other side and flip its gradient (seen: 7e-6
    # with seed 21, a 2% difference in the first convs' gradients). ALIGNER_SEED0 is
    # where a search from 21 ended (4560), so a rerun checks it instead of searching;
    # ALIGNER_SEED0_OFF (1917) the same from 1 for the official-geometry case.
    def pick_net(seed0, off):
        Xs = [torch.cat([maps_of(b, c[b][:, geo[b][5], :].detach().to(DT), off) for c in leaves])
              for b in range(len(SAMPLES))]
        for seed in range(seed0, seed0 + 100000):
            torch.manual_seed(seed)
            net = Aligner(H, D_H, "sim", "instance", "relu6").to(DT)
            if kink_margin(net, Xs) >= KINK_MARGIN:
                print("aligner seed", seed, file=sys.stderr)
                return net

    net = pick_net(ALIGNER_SEED0, ())
    latt_leaf, _ = loss_of(leaves, net)
    dP = torch.autograd.grad(LAM * latt_leaf, leaves)
    # the official geometry for sample 1 (the --grid 6 record; 2x1 tiles laid side by side),
    # its own Aligner (seed picked the same way); loss and gradients only
    net_o = pick_net(ALIGNER_SEED0_OFF, (1,))
    latt_o, per_o = loss_of(leaves, net_o, (1,))
    pnames = [n for n, _ in net_o.named_parameters()]
    g_o = torch.autograd.grad(LAM * latt_o, leaves + [p for _, p in net_o.named_parameters()], allow_unused=True)
    t["o.latt"] = torch.tensor([latt_o.item()], dtype=torch.float64)
    rows1 = geo[1][5]
    t["o.s1.maps"] = per_o[1][1].detach().float().contiguous()
    t["o.s1.dprobs"] = torch.stack([g[1][:, rows1, :] for g in g_o[:len(CROSS)]]).float().contiguous()
    for n, p, g in zip(pnames, net_o.parameters(), g_o[len(CROSS):]):
        t["o.p." + n] = p.detach().float().contiguous()
        t["o.dp." + n] = (g if g is not None else torch.zeros_like(p)).float().contiguous()
    # --- official word keys (lstep key_str): every row of a sample is a candidate; row t
    # belongs to the word whose key equals KEYS[argmax logits[b, t]] ---
    pred = out.logits.detach().argmax(-1)                     # [B, T], first maximum on ties
    pstr = [[KEYS[int(i)] for i in pred[b]] for b in range(len(SAMPLES))]
    kwords = []
    for b, (f, size, grid, words) in enumerate(SAMPLES):
        ks = []
        for w, (key, pos, query) in enumerate(words):
            if w == 1:
                k = "zz"                                      # predicted nowhere: dropped
            else:
                cand = [pstr[b][t] for t in ([query[0]] if w == 0 else range(T - 1, -1, -1))]
                k = next(c for c in cand if c and c not in ks)
            ks.append(k)
        kwords.append(ks)
        rec = pack_record(f"s{b}", ids_np[b], labels_np[b], [(k, pos, q) for k, (_, pos, q) in zip(ks, words)],
                          tgts[b].numpy(), geo[b][6].numpy(), geo[b][4], pil[b].size, geo[b][2:4],
                          geo[b][:2], int(ar_ids[b, 0]), f)
        t[f"k.rec{b}"] = torch.tensor(np.frombuffer(rec, dtype=np.uint8).copy())

    def loss_keys(src, net):
        latt, n, per = 0, 0, []
        for b in range(len(SAMPLES)):
            th, tw, nh, nw, grid, _, mask = geo[b]
            GH, GW = mask.shape
            probs = [src[k][b].to(DT) for k in range(len(CROSS))]   # [H, T, S]: every row
            X = torch.stack([maps_of(b, pl, ()) for pl in probs])
            Y = net(X.reshape(-1, H, GH, GW)).view(len(CROSS), T, GH, GW)
            V = minmax(Y.mean(0), mask)
            rows_w = []
            for w, key in enumerate(kwords[b]):
                rs = [r for r in range(T) if pstr[b][r] == key]
                if not rs:
                    continue
                U = minmax(V[rs].mean(0), mask)
                latt = latt + ((U - tgts[b][w])[mask] ** 2).mean()
                n += 1
                rows_w.append((w, rs))
            per.append((X, rows_w))
        return latt / n, n, per

    # the matched rows depend on the keys alone; the Aligner (its own, k.p.*) is picked as
    # pick_net does, with the kink margin over those rows
    _, _, per_k = loss_keys(leaves, net)
    used = [sorted({r for _, rs in per_k[b][1] for r in rs}) for b in range(len(SAMPLES))]
    Xk = [torch.cat([maps_of(b, c[b][:, used[b], :].detach().to(DT), ()) for c in leaves])
          for b in range(len(SAMPLES))]
    for seed in range(ALIGNER_SEED0_KEYS, ALIGNER_SEED0_KEYS + 100000):
        torch.manual_seed(seed)
        net_k = Aligner(H, D_H, "sim", "instance", "relu6").to(DT)
        if kink_margin(net_k, Xk) >= KINK_MARGIN:
            print("official keys: aligner seed", seed, file=sys.stderr)
            break
    latt_k, n_k, per_k = loss_keys(leaves, net_k)
    dPk = torch.autograd.grad(LAM * latt_k, leaves)
    latt_kg, _, _ = loss_keys([cap[k] for k in range(len(CROSS))], net_k)
    total_k = CE_SCALE * out.loss.double() + LAM * latt_kg
    lora_named = [(n, p) for n, p in pm.named_parameters() if "lora_" in n]
    gk = torch.autograd.grad(total_k, [p for _, p in lora_named] + list(net_k.parameters()), retain_graph=True,
                             allow_unused=True)
    t["k.scal"] = torch.tensor([latt_k.item(), total_k.item(), n_k], dtype=torch.float64)
    t["k.keys"] = torch.tensor(np.frombuffer("\n".join(KEYS).encode(), dtype=np.uint8).copy())
    for (n, _), g in zip(lora_named, gk[:len(lora_named)]):
        t["k.grad." + n.replace(".default", "")] = g.detach().clone().contiguous()
    for (n, p), g in zip(net_k.named_parameters(), gk[len(lora_named):]):
        t["k.p." + n] = p.detach().float().contiguous()
        t["k.dp." + n] = (g if g is not None else torch.zeros_like(p)).detach().float().contiguous()
    for b in range(len(SAMPLES)):
        t[f"k.s{b}.dprobs"] = torch.stack([d[b] for d in dPk]).float().contiguous()   # [Lc, H, T, S]
        t[f"k.s{b}.words"] = torch.tensor([w for w, _ in per_k[b][1]] or [-1], dtype=torch.int32)
    print("official keys: words", [[(kwords[b][w], rs) for w, rs in per_k[b][1]] for b in range(len(SAMPLES))],
          "l_att", latt_k.item(), file=sys.stderr)

    latt, per = loss_of([cap[k] for k in range(len(CROSS))], net)
    total = CE_SCALE * out.loss.double() + LAM * latt
    total.backward()

    t["scal"] = torch.tensor([CE_SCALE, LAM, out.loss.item(), latt.item(), total.item()], dtype=torch.float64)
    valid = torch.cat([pix[b, 0, :num_tiles[b]] for b in range(len(SAMPLES))])
    t["pixel_values"] = valid.to(torch.bfloat16).contiguous()
    t["num_tiles"] = torch.tensor(num_tiles, dtype=torch.int32)
    t["aspect_ratio_ids"] = ar_ids.int()
    t["aspect_ratio_mask"] = ar_mask.int()
    t["input_ids"] = input_ids.int()
    t["labels"] = labels.int()
    t["cross_attention_mask"] = xmask.int()
    for name, p in net.named_parameters():
        t["p." + name] = p.detach().float().contiguous()
        t["dp." + name] = (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous()
    for name, p in pm.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            t["w." + key] = p.detach().clone().contiguous()
            t["grad." + key] = p.grad.detach().clone().contiguous()
    for b, (rows, X, Y, Z, V, U, wl) in enumerate(per):
        k = f"s{b}."
        t[k + "rows"] = torch.tensor(rows, dtype=torch.int32)
        t[k + "maps"] = X.detach().float().contiguous()
        t[k + "aligned"] = Y.detach().float().contiguous()
        t[k + "agg"] = Z.detach().float().contiguous()
        t[k + "vrows"] = V.detach().float().contiguous()
        t[k + "words"] = U.detach().float().contiguous()
        t[k + "word_loss"] = wl.detach().float().contiguous()
        t[k + "dprobs"] = torch.stack([d[b][:, rows, :] for d in dP]).float().contiguous()
    save_file(t, os.path.join(OUT, "step.safetensors"))
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump({"images": [s[0] for s in SAMPLES], "cross_layers": CROSS, "aligner": "sim/instance/relu6 d_h 6",
                   "lora": {"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]},
                   "transformers": __import__("transformers").__version__, "torch": torch.__version__}, f, indent=1)
    print("ce", out.loss.item(), "l_att", latt.item(), "total", total.item(), file=sys.stderr)


if __name__ == "__main__":
    main()
