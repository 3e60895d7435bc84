"""Golden data for the MiniCPM-Llama3-V-2.5 processor (lib/models/minicpmv/minicpmv_proc.c).

An independent Python re-implementation of what OpenBMB's finetune/dataset.py (2.5 release,
llm_type "llama3", batch_vision) does to one image and one conversation: slice_image
(find_best_resize / get_refine_size / best grid by log aspect, PIL bicubic resizes, row-major
crops), torchvision's ToTensor + Normalize(0.5, 0.5) written with the same torch ops,
reshape_by_patch with F.unfold, the placeholder layout, the Llama-3 template rendered by
transformers' apply_chat_template and tokenized by a `tokenizers` fast tokenizer built from
../shared/data/llama3/tokenizer.model (gen_tokenizer.build_llama) with the MiniCPM tokens as
added special tokens, the pre-shifted targets and image_bound.

Token ids of the MiniCPM tokens: the hub tokenizer.json was not found in the public corpus.
<unk> = 128002 is what llama.cpp's conversion of the 2.5 checkpoint reports
(tokenizer.ggml.unknown_token_id 128002, ggml-org/llama.cpp PR #7599); the tags <image> ...
</slice> are put on the reserved ids 128010..128021 here (an assumption: the C code never
uses ids, it looks the names up, and the test takes them from this file).

Writes tests/golden/minicpmv_proc/proc.json:
  special_ids   name -> id of the tokenizer above
  geom          [{cfg, W, H, cols, rows, refine, pics: [[w, h], ...]}]  geometry only
  cases         [{image, tile, W, H, cfg, cols, rows, refine, pics: [{w, h, th, tw,
                  sha256 (of the fp32 LE strip [3, ps, n*ps]), samples [[index, value]]}],
                  messages, text, input_ids, labels, image_bound}]
Run: .venv-ref/bin/python tests/ref/gen_minicpmv_proc.py   (needs ../shared/data)
"""
import hashlib
import json
import math
import os
import random
import sys

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerFast
from tokenizers import AddedToken

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("LVD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "golden", "minicpmv_proc")
sys.path.insert(0, HERE)
from gen_tokenizer import build_llama, load_tiktoken  # noqa: E402

QUERY_NUM = 96
RELEASE = {"max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14}
MINICPM_TAGS = ["<image>", "</image>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>",
                "<point>", "</point>", "<slice>", "</slice>"]
# the template of OpenBMB's finetune/dataset.py (llama3): no system block, trimmed content
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}")


# ---------------------------------------------------------------- slicing
def to_multiple(x, p):
    # Python's round(): half to even
    return max(round(x / p) * p, p)


def fit_area(w, h, S, p, upscale):
    if w * h > S * S or upscale:
        aspect = w / h
        h = int(S / math.sqrt(aspect))
        w = int(h * aspect)
    return to_multiple(w, p), to_multiple(h, p)


def geometry(W, H, cfg):
    """-> (source size, grid or None, refine size or None)"""
    S, p, mx = cfg["scale_resolution"], cfg["patch_size"], cfg["max_slice_nums"]
    n = min(math.ceil(W * H / (S * S)), mx)
    if n <= 1:
        return fit_area(W, H, S, p, True), None, None
    src = fit_area(W, H, S, p, False)
    counts = [k for k in (n - 1, n, n + 1) if k != 1 and k <= mx]
    grids = [(c, k // c) for k in counts for c in range(1, k + 1) if k % c == 0]
    target = math.log(W / H)
    best, err = (1, 1), float("inf")
    for g in grids:
        e = abs(target - math.log(g[0] / g[1]))
        if e < err:
            best, err = g, e
    cols, rows = best
    cw = to_multiple(W, cols) / cols
    ch = to_multiple(H, rows) / rows
    cell = fit_area(cw, ch, S, p, True)
    return src, best, (cell[0] * cols, cell[1] * rows)


def pictures(img, cfg):
    W, H = img.size
    src, grid, refine = geometry(W, H, cfg)
    pics = [img.resize(src, Image.Resampling.BICUBIC)]
    if grid:
        big = img.resize(refine, Image.Resampling.BICUBIC)
        cw, ch = refine[0] // grid[0], refine[1] // grid[1]
        for r in range(grid[1]):
            for c in range(grid[0]):
                pics.append(big.crop((c * cw, r * ch, (c + 1) * cw, (r + 1) * ch)))
    return pics, grid, refine


def normalise(pic):
    """torchvision ToTensor then Normalize(mean=0.5, std=0.5), with the same torch ops"""
    t = torch.from_numpy(np.array(pic, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    t = t.to(torch.float32).div(255)
    half = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float32).view(3, 1, 1)
    return t.sub_(half).div_(half)


def strip(t, p):
    """[3, h, w] -> [3, p, n*p], patches row-major (reshape_by_patch)"""
    cols = torch.nn.functional.unfold(t.unsqueeze(0), (p, p), stride=(p, p))[0]  # [3*p*p, n]
    n = cols.shape[-1]
    return cols.reshape(3, p, p, n).permute(0, 1, 3, 2).reshape(3, p, n * p)


# ---------------------------------------------------------------- text
def tokenizer():
    st = json.load(open(os.path.join(SHARED, "llama3", "special_tokens.json"), encoding="utf-8"))
    names = list(st["naming_schemes"]["hf_llama3_1"]["tokens"])[:256]
    names[2] = "<unk>"
    for i, t in enumerate(MINICPM_TAGS):
        names[10 + i] = t
    specials = [(n, 128000 + i) for i, n in enumerate(names)]
    ranks = load_tiktoken(os.path.join(SHARED, "llama3", "tokenizer.model"))
    fast = build_llama(ranks, st["pattern"], specials)
    for n, i in specials:
        assert fast.token_to_id(n) == i, (n, i)
    ft = PreTrainedTokenizerFast(tokenizer_object=fast, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                 unk_token="<unk>")
    return ft, {n: i for n, i in specials if n in MINICPM_TAGS or n == "<unk>"}


def placeholder(grid):
    one = "<image>" + "<unk>" * QUERY_NUM + "</image>"
    if not grid:
        return one
    rows = ["".join([one] * grid[0]) for _ in range(grid[1])]
    return one + "<slice>" + "\n".join(rows) + "</slice>"


def render_ids(ft, conv):
    text = ft.apply_chat_template(conv, tokenize=False, add_generation_prompt=False, chat_template=LLAMA3_TEMPLATE)
    ids = ft.apply_chat_template(conv, tokenize=True, add_generation_prompt=False, chat_template=LLAMA3_TEMPLATE)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    ids = list(ids)
    assert ids == ft.encode(text, add_special_tokens=False)
    return text, np.array(ids, dtype=np.int64)


def openbmb_targets(ft, ids):
    tid = ft.convert_tokens_to_ids
    sh = np.where(ids == tid("<|start_header_id|>"))[0]
    eh = np.where(ids == tid("<|end_header_id|>"))[0]
    eots = np.where(ids == tid("<|eot_id|>"))[0]
    mids = set(((sh + eh) / 2).tolist())
    ctx = np.ones(len(ids), dtype=np.int8)
    for a in np.where(ids == tid("assistant"))[0]:
        if float(a) in mids:
            first = a + 3
            later = eots[eots > first]
            if len(later):
                ctx[first:later[0] + 1] = 0
    tgt = np.full(len(ids), -100, dtype=np.int64)
    for i in range(1, len(ids)):
        if ctx[i] == 0:
            tgt[i - 1] = ids[i]
        if ctx[i] == 1 and ctx[i - 1] == 0:
            tgt[i - 1] = tid("<|eot_id|>")
    return tgt


def bounds(ft, ids):
    starts = np.where(ids == ft.convert_tokens_to_ids("<image>"))[0] + 1
    ends = np.where(ids == ft.convert_tokens_to_ids("</image>"))[0]
    assert len(starts) == len(ends)
    return [[int(a), int(b)] for a, b in zip(starts, ends)]


CONVS = [
    [{"role": "user", "content": "<image>\nWhat is in the image?"},
     {"role": "assistant", "content": "A cat lying on a rug."}],
    [{"role": "user", "content": "Describe the picture in one sentence.  "},
     {"role": "assistant", "content": "  An old page of printed text.\n"}],
    [{"role": "user", "content": "<image>\nHow many animals are there?"},
     {"role": "assistant", "content": "One horse."},
     {"role": "user", "content": "What colour is it?"},
     {"role": "assistant", "content": "Brown, with a white stripe."}],
    [{"role": "user", "content": "Look at this photo: <image> and tell me, naïvely, what's going on \U0001f999"},
     {"role": "assistant", "content": "People are\n\nstanding near a bus."}],
    [{"role": "user", "content": "  <image>\n\u3000Is there a dog? Answer yes or no.\u00a0"},
     {"role": "assistant", "content": "No"}],
    [{"role": "user", "content": "<image>"},
     {"role": "assistant", "content": "A kitchen with a stove and a sink; there is a window."}],
]

# (image, tile, cfg, conversation index): unsliced (wide gray, RGBA, upscaled), 2 slices
# (tall, wide), 6 slices, 9 slices (a 2x2 tiling of a real photo), another config
CASES = [
    ("skimage_chelsea.png", 1, RELEASE, 0),
    ("skimage_page.png", 1, RELEASE, 1),
    ("skimage_horse.png", 1, RELEASE, 2),
    ("COCO_val2014_000000038678.png", 1, RELEASE, 3),
    ("skimage_motorcycle_right.png", 1, RELEASE, 4),
    ("COCO_val2014_000000120234.png", 1, RELEASE, 5),
    ("p2p_gnochi_mirror.png", 1, RELEASE, 0),
    ("p2p_gnochi_mirror.png", 2, RELEASE, 2),
    ("skimage_coffee.png", 1, {"max_slice_nums": 4, "scale_resolution": 224, "patch_size": 16}, 3),
]

GEOM_SIZES = [(1, 1), (14, 14), (13, 2000), (2000, 13), (448, 448), (449, 448), (896, 896), (1000, 100),
              (100, 1000), (3000, 200), (640, 480), (480, 640), (1920, 2560), (4000, 3000), (8000, 600),
              (1344, 448), (450, 1350), (7, 7), (300, 301), (2048, 2048), (32768, 1)]


def tiled(img, k):
    if k == 1:
        return img
    out = Image.new("RGB", (img.width * k, img.height * k))
    for y in range(k):
        for x in range(k):
            out.paste(img, (x * img.width, y * img.height))
    return out


def main():
    if not os.path.isdir(SHARED):
        sys.exit(f"{SHARED} absent")
    os.makedirs(OUT, exist_ok=True)
    ft, special_ids = tokenizer()
    rng = random.Random(18)
    geom = []
    for cfg in (RELEASE, {"max_slice_nums": 4, "scale_resolution": 224, "patch_size": 16}):
        for W, H in GEOM_SIZES:
            src, grid, refine = geometry(W, H, cfg)
            pics = [list(src)] + ([[refine[0] // grid[0], refine[1] // grid[1]]] * (grid[0] * grid[1]) if grid else [])
            geom.append({"cfg": cfg, "W": W, "H": H, "cols": grid[0] if grid else 0, "rows": grid[1] if grid else 0,
                         "refine": list(refine) if refine else [0, 0], "pics": pics})
    cases = []
    for name, tile, cfg, ci in CASES:
        img = tiled(Image.open(os.path.join(SHARED, "images", name)).convert("RGB"), tile)
        pics, grid, refine = pictures(img, cfg)
        p = cfg["patch_size"]
        prow = []
        for pic in pics:
            s = strip(normalise(pic), p).contiguous()
            flat = s.numpy().reshape(-1)
            idx = sorted(rng.sample(range(flat.size), 48)) + [0, flat.size - 1]
            prow.append({"w": pic.width, "h": pic.height, "th": pic.height // p, "tw": pic.width // p,
                         "sha256": hashlib.sha256(flat.astype("<f4").tobytes()).hexdigest(),
                         "samples": [[i, float(flat[i])] for i in idx]})
        conv = [dict(m) for m in CONVS[ci]]
        ph = placeholder(grid)
        if "<image>" in conv[0]["content"]:
            conv[0]["content"] = conv[0]["content"].replace("<image>", ph)
        else:
            conv[0]["content"] = ph + "\n" + conv[0]["content"]
        text, ids = render_ids(ft, conv)
        tgt = openbmb_targets(ft, ids)
        bd = bounds(ft, ids)
        assert len(bd) == len(pics)
        cases.append({"image": name, "tile": tile, "W": img.width, "H": img.height, "cfg": cfg,
                      "cols": grid[0] if grid else 0, "rows": grid[1] if grid else 0,
                      "refine": list(refine) if refine else [0, 0], "pics": prow,
                      "messages": CONVS[ci], "text": text, "input_ids": ids.tolist(), "labels": tgt.tolist(),
                      "image_bound": bd})
        print(f"{name} x{tile}: {img.width}x{img.height} grid {grid} pictures {len(pics)} tokens {len(ids)}")
    doc = {"about": "tests/ref/gen_minicpmv_proc.py: OpenBMB finetune processing re-implemented (see docstring)",
           "query_num": QUERY_NUM, "special_ids": special_ids, "geom": geom, "cases": cases}
    with open(os.path.join(OUT, "proc.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
