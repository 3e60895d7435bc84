#!/usr/bin/env python3
"""Golden data for the lvd-sft training loop (tools/lvd-sft, tests/unit/test_sft_golden.c):
5 optimiser steps of LoRA + the Lavender Aligner in PyTorch (PEFT, torch.optim.AdamW,
clip_grad_norm_, StepLR / transformers' cosine-with-warmup) on a real lvd-pack of real
photos, for two configurations:

  c0: --batch 2 --grad-accum 2 --weight-decay 0.01 --schedule step:0.85 (StepLR, gamma 0.85
      per epoch; 8 records = 2 steps per epoch, so the 5 steps span epochs 0, 0, 1, 1, 2)
      --clip 1.0 --lr 1e-3
  c1: --batch 1 --weight-decay 0 --schedule cosine --warmup 2 --max-steps 5 --clip 0.5
      --lr 2e-3
  c2: the same photos packed with --grid 32 (targets 32x32 over the image extent),
      --batch 2 --schedule constant --clip 1.0 --lr 1e-3, canvas geometry (the image extent
      area-resampled to the grid, as lvd-pack resamples the targets)
  c3: that --grid 32 pack with --geometry official (every tile's 17 tokens, CLS included,
      interpolated to 5x5; the official tile canvas; antialiased bilinear to 32x32),
      --batch 1 --grad-accum 2 --schedule constant --lr 1e-3
  all: --lora r=4,alpha=8,dropout=0,targets=q_proj,v_proj --lambda 10 --seed 42, the default
  Aligner (sim / instance / relu6, hidden 32, mean after the Aligner over both cross layers),
  --loss-norm tokens.

LoRA dropout is 0: our masks come from our Philox streams (a function of seed, step and
micro-batch), PEFT's from torch's global RNG, so the two can never draw the same mask;
dropout itself is tested by the resume and split tests of tests/cli/test_lvd_sft.sh.

Inputs, all made by our tools from real data (the built tools are needed: make first):
  - the model: gen_lavender_mllama's tiny mllama (gates non-zero, weights rounded to bf16)
    with the vocabulary of tests/golden/tokenizer/small (4000 + 256 specials, <|image|> =
    4256), so lvd-pack can tokenize for it; model/tokenizer.json is a link to that file;
  - 8 real photos of ../shared/data/images shrunk to 40..120 px (1, 2, 3 and 4 tiles of 56
    px) with their captions -> manifest.jsonl;
  - sd-attnmap run with the tiny golden SD (tests/golden/sd/diffusers) -> maps (temporary,
    in tests/golden/sft/.gen/ with the photos, removed at the end);
  - lvd-pack run -> pack/ (images embedded, canvas targets, the default recipes labels);
  - lvd-pack inspect --full -> tokens, labels, matched words, targets, masks, tiling;
  - test_sft_golden --dump: the micro-batches exactly as lvd-sft's loader hands them out
    (order, pixel values of our image processor, aspect ratios, cross-attention mask), so
    the comparison tests the trainer, not the image processor (tested elsewhere);
  - PeftModel.from_pretrained loads lvd-sft's exported adapter (checked on the start);
  - the initial LoRA (A from our seed, B = 0 as PEFT) and Aligner (N(0, 0.02) from our
    seed): lvd-sft run --lr 0 --max-steps 1 exports them unchanged (AdamW with lr 0 leaves
    every weight as it was).

Per micro-batch: CE = (sum of the token CEs of the micro-batch) / (label tokens of the
step), L_att = (sum of the word MSEs) / (matched pairs of the step), as lvd-sft's
--loss-norm tokens; loss = CE + 10 L_att, backward accumulates; then clip_grad_norm_ over
LoRA + Aligner, the scheduler's lr, AdamW over both. L_att is gen_lavender_mllama's loss
(canvas geometry, Aligner, min-max, masked MSE) in float64 on the fp32 probabilities.

Writes tests/golden/sft/ (~0.6 MB):
  model/               config.json, model.safetensors (BF16), tokenizer.json (link)
  images/, manifest.jsonl, pack/   the inputs above (pack.json holds generation paths)
  expect.safetensors   c{k}.{loss, ce, att, lr, grad_norm} [5] (F64, per step),
                       c{k}.lora.<PEFT key> / c{k}.aligner.<name> (F32, after step 5),
                       init.lora.* / init.aligner.* (the start, as exported by lvd-sft)
  meta.json            configurations, versions, the ReLU6 kink margin seen
  .venv-ref/bin/python tests/ref/gen_sft.py   (CPU, ~1 minute)
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_lavender_mllama as glm  # noqa: E402
from gen_lavender import Aligner, minmax  # noqa: E402
from gen_mllama import randomize  # noqa: E402
from transformers import MllamaForConditionalGeneration  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "sft")
SHARED = os.environ.get("LVD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
BUILD = os.path.abspath(os.environ.get("BUILD", os.path.join(ROOT, "build")))
TOKENIZER = os.path.join(ROOT, "tests", "golden", "tokenizer", "small", "tokenizer.json")
DT = torch.float64
VOCAB, IMAGE_TOKEN, BOS, EOS, PAD = 4256, 4256, 4000, 4009, 4004
H, D_H, LAM, SEED, STEPS = 4, 8, 10.0, 42, 5
LORA = dict(r=4, alpha=8, targets=["q_proj", "v_proj"])
# (photo, size (w, h) after shrinking); captions come from captions.jsonl
PHOTOS = [
    ("skimage_chelsea.png", (60, 40)),
    ("COCO_val2014_000000038678.png", (48, 64)),
    ("COCO_val2014_000000096638.png", (112, 84)),
    ("skimage_coffee.png", (120, 40)),
    ("COCO_val2014_000000087476.png", (40, 110)),
    ("skimage_rocket.png", (56, 56)),
    ("COCO_val2014_000000152482.png", (100, 75)),
    ("COCO_val2014_000000210230.png", (90, 64)),
]
CONFIGS = [
    dict(batch=2, accum=2, wd=0.01, schedule="step:0.85", warmup=0, clip=1.0, lr=1e-3, pack="pack", grid=0,
         geometry="canvas"),
    dict(batch=1, accum=1, wd=0.0, schedule="cosine", warmup=2, clip=0.5, lr=2e-3, pack="pack", grid=0,
         geometry="canvas"),
    # the same photos packed with --grid 32: the image extent area-resampled to 32x32, and
    # the official geometry (CLS included, tiles interpolated to 5x5 each, antialiased resize)
    dict(batch=2, accum=1, wd=0.0, schedule="constant", warmup=0, clip=1.0, lr=1e-3, pack="pack-grid32", grid=32,
         geometry="canvas"),
    dict(batch=1, accum=2, wd=0.0, schedule="constant", warmup=0, clip=1.0, lr=1e-3, pack="pack-grid32", grid=32,
         geometry="official"),
]


def run(*args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"gen_sft: {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def tool(name):
    p = os.path.join(BUILD, name)
    if not os.access(p, os.X_OK):
        sys.exit(f"gen_sft: {p} not found (build the tools and tests first: make all {BUILD}/tests/test_sft_golden)")
    return p


def sft_args(c, model, pack, out, lr=None, steps=STEPS):
    a = [tool("lvd-sft"), "run", "--model", model, "--pack", pack, "--out", out, "--threads", "1", "-q",
         "--lora", f"r={LORA['r']},alpha={LORA['alpha']},dropout=0,targets={','.join(LORA['targets'])}",
         "--lambda", LAM, "--seed", SEED, "--aligner-hidden", D_H, "--batch", c["batch"], "--grad-accum", c["accum"],
         "--weight-decay", c["wd"], "--schedule", c["schedule"], "--warmup", c["warmup"], "--clip", c["clip"],
         "--lr", c["lr"] if lr is None else lr, "--max-steps", steps, "--geometry", c["geometry"]]
    return [str(x) for x in a]


def make_inputs(tmp):
    """model, photos, manifest, maps, pack; returns the model folder"""
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(glm.config(VOCAB, IMAGE_TOKEN, BOS, EOS, PAD, text_hidden=16)).float()
    randomize(model)
    mdir = os.path.join(OUT, "model")
    if os.path.isdir(mdir):
        shutil.rmtree(mdir)
    model.to(torch.bfloat16).save_pretrained(mdir, safe_serialization=True)
    os.symlink(os.path.relpath(TOKENIZER, mdir), os.path.join(mdir, "tokenizer.json"))
    caps = {}
    with open(os.path.join(SHARED, "images", "captions.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            caps[d["image"]] = d["caption"]
    idir = os.path.join(tmp, "images")
    os.makedirs(idir)
    lines = []
    for i, (f, size) in enumerate(PHOTOS):
        im = Image.open(os.path.join(SHARED, "images", f)).convert("RGB").resize(size, Image.BILINEAR)
        name = f"p{i}.png"
        im.save(os.path.join(idir, name), optimize=True)
        lines.append(json.dumps({"id": f"p{i}", "image": f"images/{name}", "caption": caps[f]}))
    man = os.path.join(OUT, "manifest.jsonl")
    with open(man, "w") as f:
        f.write("\n".join(lines) + "\n")
    # relative paths from OUT (tmp is OUT/.gen), so pack.json's argv is the same on every run
    rel = os.path.relpath(tmp, OUT)
    run(tool("sd-attnmap"), "run", "--sd", os.path.join(ROOT, "tests/golden/sd/diffusers"), "--tokenizer",
        os.path.join(SHARED, "clip"), "--images", rel, "--fold-vocab", "--resolution", "128", "--seed", "3", "-q",
        "--threads", "1", "--manifest", "manifest.jsonl", "--out", os.path.join(rel, "maps"), "--min-side", "16",
        cwd=OUT)
    pack = os.path.join(OUT, "pack")
    if os.path.isdir(pack):
        shutil.rmtree(pack)
    run(tool("lvd-pack"), "run", "--manifest", "manifest.jsonl", "--images", rel, "--maps", os.path.join(rel, "maps"),
        "--model", "model", "--out", "pack", "--stopwords", "../pack/stopwords.txt", "-q", "--threads", "1", cwd=OUT)
    if os.path.isdir(os.path.join(OUT, "pack-grid32")):
        shutil.rmtree(os.path.join(OUT, "pack-grid32"))
    run(tool("lvd-pack"), "run", "--manifest", "manifest.jsonl", "--images", rel, "--maps", os.path.join(rel, "maps"),
        "--model", "model", "--out", "pack-grid32", "--grid", "32", "--stopwords", "../pack/stopwords.txt", "-q",
        "--threads", "1", cwd=OUT)
    return mdir, pack


def records(pack):
    recs = {}
    for line in run(tool("lvd-pack"), "inspect", os.path.join(pack, "train-00000.lvdp"), "--full").splitlines():
        r = json.loads(line)
        recs[r["id"]] = r
    assert len(recs) == len(PHOTOS), "every photo packed"
    return recs


def micro_batches(c, mdir, pack, tmp):
    path = os.path.join(tmp, f"dump-{c['pack']}-{c['batch']}x{c['accum']}.safetensors")
    run(tool("tests/test_sft_golden"), "--dump", pack, mdir, c["batch"], STEPS * c["accum"], SEED, path)
    out = []
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        for k in range(STEPS * c["accum"]):
            g = lambda n: f.get_tensor(f"m{k}.{n}")
            mb = {n: g(n) for n in ["input_ids", "labels", "pixel_values", "aspect_ratio_ids", "aspect_ratio_mask",
                                    "cross_attention_mask", "epoch"]}
            mb["ids"] = meta[f"m{k}.ids"].split(",")
            out.append(mb)
    return out


def pad_tiles(mb):
    """the loader pads to the batch's tiles; transformers wants max_num_tiles (zeros)"""
    pv, am, xm = mb["pixel_values"], mb["aspect_ratio_mask"], mb["cross_attention_mask"]
    extra = glm.MAX_TILES - pv.shape[2]
    if extra > 0:
        pv = torch.cat([pv, pv.new_zeros(pv.shape[:2] + (extra,) + pv.shape[3:])], 2)
        am = torch.cat([am, am.new_zeros(am.shape[:2] + (extra,))], 2)
        xm = torch.cat([xm, xm.new_zeros(xm.shape[:3] + (extra,))], 3)
    return pv, am.long(), xm.long()


def sample_latt(probs, rec, net, grid=0, official=False):
    """sum of the word MSEs of one sample; probs [L] of [H, T, S] (the model's tensors);
    also the smallest distance of a ReLU6 input to a kink. grid: the pack's --grid (0:
    canvas); official: the official geometry (a --grid pack only)"""
    words = rec["words"]
    if not words:
        return 0.0, float("inf")
    ti = rec["tiling"]
    th, tw, nh, nw = ti["tiles_h"], ti["tiles_w"], ti["new_h"], ti["new_w"]
    gh, gw = rec["grid"]
    rows = sorted({q for w in words for q in w["queries"]})
    X = []
    for p in probs:
        m, mask = glm.geometry(p[:, rows, :].to(DT), th, tw, nh, nw, grid)
        X.append(glm.geometry_official(p[:, rows, :].to(DT), th, tw, grid) if official else m)
    want = torch.tensor(rec["mask"], dtype=torch.bool).view(gh, gw)
    assert torch.equal(mask, want), f"{rec['id']}: validity mask differs from the pack's"
    X = torch.stack(X)                                                   # [L, R, H, GH, GW]
    R = len(rows)
    margin = glm.kink_margin(net, [X.detach().reshape(-1, H, gh, gw)])
    Y = net(X.reshape(-1, H, gh, gw)).view(len(probs), R, gh, gw)
    V = minmax(Y.mean(0), mask)
    s = 0.0
    for w in words:
        U = minmax(V[[rows.index(q) for q in w["queries"]]].mean(0), mask)
        tg = torch.tensor(w["target"], dtype=DT).view(gh, gw)
        s = s + ((U - tg)[mask] ** 2).mean()
    return s, margin


def check_peft_loads(mdir, adapter_dir, want):
    """PeftModel.from_pretrained loads lvd-sft's export (adapter_config.json + safetensors)
    onto the transformers model with every tensor in place"""
    from peft import PeftModel
    base = MllamaForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32)
    pm = PeftModel.from_pretrained(base, adapter_dir)
    got = {n.replace(".default", ""): p for n, p in pm.named_parameters() if "lora_" in n}
    assert set(got) == set(want), "PEFT loads every exported LoRA tensor"
    assert all(torch.equal(got[k].float(), want[k].float()) for k in want), "PEFT loads the exported values"


def train(c, mdir, recs, mbs, init_lora, init_al):
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    pm = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                                          target_modules=LORA["targets"]))
    lora = {}
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                key = name.replace(".default", "")
                p.copy_(init_lora[key])
                lora[key] = p
    assert set(lora) == set(init_lora), "the C export names every PEFT LoRA tensor"
    net = Aligner(H, D_H, "sim", "instance", "relu6").to(DT)
    net.load_state_dict({k: v.to(DT) for k, v in init_al.items()})
    params = list(lora.values()) + list(net.parameters())
    opt = torch.optim.AdamW(params, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=c["wd"])
    if c["schedule"] == "cosine":
        sched = get_cosine_schedule_with_warmup(opt, c["warmup"], STEPS)
    elif c["schedule"] == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.85)
    cross = glm.CROSS
    lm = model.model.language_model
    cap = {}
    for k, li in enumerate(cross):
        lm.layers[li].cross_attn.register_forward_hook(lambda mod, i, o, k=k: cap.__setitem__(k, o[1]))
    hist = {n: [] for n in ["loss", "ce", "att", "lr", "grad_norm"]}
    margin = float("inf")
    epoch = 0
    A = c["accum"]
    for step in range(STEPS):
        group = mbs[step * A:(step + 1) * A]
        ntok = sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in group)
        npairs = sum(len(recs[i]["words"]) for mb in group for i in mb["ids"])
        if c["schedule"].startswith("step"):
            while epoch < int(group[0]["epoch"][0]):   # StepLR steps once per epoch
                sched.step()
                epoch += 1
        opt.zero_grad()
        ce_sum = att_sum = 0.0
        for mb in group:
            pv, am, xm = pad_tiles(mb)
            out = pm(input_ids=mb["input_ids"].long(), pixel_values=pv, aspect_ratio_ids=mb["aspect_ratio_ids"].long(),
                     aspect_ratio_mask=am, cross_attention_mask=xm)
            logits = out.logits[:, :-1].double()
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), mb["labels"][:, 1:].reshape(-1).long(),
                                 ignore_index=-100, reduction="sum") / ntok
            att = 0.0
            for b, sid in enumerate(mb["ids"]):
                s, m = sample_latt([cap[k][b] for k in range(len(cross))], recs[sid], net, c["grid"],
                                   c["geometry"] == "official")
                att = att + s
                margin = min(margin, m)
            att = att / npairs
            (ce + LAM * att).backward()
            ce_sum += ce.item()
            att_sum += float(att)
        norm = torch.nn.utils.clip_grad_norm_(params, c["clip"])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        if c["schedule"] == "cosine":
            sched.step()
        for n, v in [("loss", ce_sum + LAM * att_sum), ("ce", ce_sum), ("att", att_sum), ("lr", lr),
                     ("grad_norm", norm.item())]:
            hist[n].append(v)
        print(f"step {step + 1}: loss {ce_sum + LAM * att_sum:.6f} ce {ce_sum:.6f} att {att_sum:.6f} lr {lr:.3g} "
              f"norm {norm.item():.4f}", file=sys.stderr)
    lora_out = {k: p.detach().float().contiguous() for k, p in lora.items()}
    al_out = {k: p.detach().float().contiguous() for k, p in net.named_parameters()}
    return hist, lora_out, al_out, margin


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tmp = os.path.join(OUT, ".gen")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        mdir, pack = make_inputs(tmp)
        packs = {n: os.path.join(OUT, n) for n in ("pack", "pack-grid32")}
        recs_of = {n: records(p) for n, p in packs.items()}
        t = {}
        meta = {"configs": [], "photos": [p for p, _ in PHOTOS], "lora": LORA, "lambda": LAM, "seed": SEED,
                "aligner": f"sim/instance/relu6 d_h {D_H}", "transformers": __import__("transformers").__version__,
                "torch": torch.__version__, "peft": __import__("peft").__version__}
        init = None
        for ci, c in enumerate(CONFIGS):
            # the start: lvd-sft with lr 0 exports its initial LoRA and Aligner unchanged
            o0 = os.path.join(tmp, f"init{ci}")
            pack, recs = packs[c["pack"]], recs_of[c["pack"]]
            run(*sft_args(c, mdir, pack, o0, lr=0, steps=1))
            il = load_file(os.path.join(o0, "final", "adapter_model.safetensors"))
            ia = load_file(os.path.join(o0, "final", "aligner.safetensors"))
            if init is None:
                check_peft_loads(mdir, os.path.join(o0, "final"), il)
                init = (il, ia)
                for k, v in il.items():
                    t["init.lora." + k] = v.float().contiguous()
                for k, v in ia.items():
                    t["init.aligner." + k] = v.float().contiguous()
            else:
                assert all(torch.equal(init[0][k], il[k]) for k in il), "same seed, same start"
            mbs = micro_batches(c, mdir, pack, tmp)
            hist, lo, al, margin = train(c, mdir, recs, mbs, il, ia)
            p = f"c{ci}."
            for n, v in hist.items():
                t[p + n] = torch.tensor(v, dtype=torch.float64)
            for k, v in lo.items():
                t[p + "lora." + k] = v
            for k, v in al.items():
                t[p + "aligner." + k] = v
            meta["configs"].append(dict(c, kink_margin=margin,
                                        order=[mb["ids"] for mb in mbs]))
            print(f"c{ci}: smallest ReLU6 kink distance {margin:.3g}", file=sys.stderr)
        save_file(t, os.path.join(OUT, "expect.safetensors"))
        with open(os.path.join(OUT, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
