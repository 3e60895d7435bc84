#!/usr/bin/env python3
"""Golden data for lib/io/image.c (decode, alpha, resize): tests/golden/images/.

What PIL (and torch, for the antialias=0 variant) produce is stored as raw arrays:
  index.json         list of cases: {"name", "op", ..., "file", "dtype", "shape"}
  *.u8 / *.f32       expected outputs, C-order, little-endian
  src_*.png|jpg      small source files this script makes (16-bit, palette, tRNS,
                     2-bit gray, an alpha grid, JPEG crops incl. grayscale and CMYK)
The real photos are read from ../shared/data/images at test time; only outputs live
here. Ops (how the C test reproduces each case):
  decode   decode `src` with background `bg` (black|white|drop) -> [H,W,3] u8
  resize   decode `src` (drop), optionally crop `box` [x0,y0,x1,y1], optionally keep
           only channel 0 (`gray`), resize to [h,w] with `method`, `antialias`
           antialias=1: PIL Image.resize (u8); antialias=0: torch interpolate on the
           float32 image, align_corners=False, antialias=False (f32 output)
  fresize  lvd_resize_f32 on the random planes in `planes.f32` ([C,H,W]);
           antialias=1: PIL mode "F" resize per plane; antialias=0: torch interpolate
Run: .venv-ref/bin/python tests/ref/gen_images.py (from anywhere).
"""
import json
import os
import struct
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "golden", "images")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "images")

torch.manual_seed(0)
warnings.filterwarnings("ignore", message="Palette images with Transparency")
rng = np.random.default_rng(0)
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))

cases = []
METHODS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC}


def store(name, arr, **meta):
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint8:
        ext = "u8"
    else:
        arr = arr.astype("<f4")
        ext = "f32"
    fn = f"{name}.{ext}"
    arr.tofile(os.path.join(OUT, fn))
    cases.append(dict(name=name, file=fn, dtype=ext, shape=list(arr.shape), **meta))


# ---- a minimal PNG writer, for the layouts PIL cannot write (16-bit RGB/LA, 2-bit, tRNS keys)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def write_png(fn, arr, color_type, bit_depth, plte=None, trns=None):
    h, w = arr.shape[:2]
    if bit_depth == 16:
        rows = arr.astype(">u2").reshape(h, -1).view(np.uint8)
    elif bit_depth < 8:
        per = 8 // bit_depth
        a = arr.reshape(h, w).astype(np.uint8)
        a = np.pad(a, ((0, 0), (0, (-w) % per))).reshape(h, -1, per)
        rows = np.zeros(a.shape[:2], np.uint8)
        for i in range(per):
            rows |= a[:, :, i] << (8 - bit_depth * (i + 1))
    else:
        rows = arr.astype(np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)
    d = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if plte is not None:
        d += chunk(b"PLTE", bytes(plte))
    if trns is not None:
        d += chunk(b"tRNS", trns)
    d += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(os.path.join(OUT, fn), "wb") as f:
        f.write(d)


def pil_rgb(im, bg):
    """PIL semantics the C decoder reproduces: drop = convert("RGB"); black/white =
    alpha_composite over an opaque background, then convert("RGB")."""
    if bg == "drop":
        return np.asarray(im.convert("RGB"))
    base = Image.new("RGBA", im.size, (0, 0, 0, 255) if bg == "black" else (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(base, im.convert("RGBA")).convert("RGB"))


def fnv1a64(arr):
    """FNV-1a 64 over the bytes, as the C test computes it."""
    h = 0xcbf29ce484222325
    for b in np.ascontiguousarray(arr).tobytes():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


def decode_case(src, bgs, path=None, band=None):
    """Stores the whole expected image, or for big ones rows [y0, y0+n) plus an FNV-1a
    hash of the whole image (checked exactly)."""
    p = path or os.path.join(OUT, src)
    for bg in bgs:
        with Image.open(p) as im:
            out = pil_rgb(im, bg)
        meta = dict(op="decode", src=src, shared=path is not None, bg=bg, full_h=out.shape[0],
                    full_w=out.shape[1], band_y0=0)
        if band:
            meta["band_y0"] = band[0]
            meta["fnv1a64"] = fnv1a64(out)
            out = out[band[0]:band[0] + band[1]]
        store(f"dec_{os.path.splitext(src)[0]}_{bg}", out, **meta)


photo = np.asarray(Image.open(os.path.join(SHARED, "COCO_val2014_000000096638.png")).convert("RGB"))

# ---- decode: synthetic PNG layouts
crop = photo[200:248, 300:364].astype(np.uint16)               # 48x64 real pixels
noise = rng.integers(0, 256, crop.shape, dtype=np.uint16)
write_png("src_rgb16.png", (crop << 8) | noise, 2, 16)
write_png("src_gray16.png", (crop[:, :, 0] * 3 + noise[:, :, 0]).astype(np.uint16), 0, 16)  # values 0..1020: PIL clips
a16 = (rng.integers(0, 65536, crop.shape[:2], dtype=np.uint32)).astype(np.uint16)
write_png("src_rgba16.png", np.concatenate([(crop << 8) | noise, a16[:, :, None]], -1), 6, 16)
write_png("src_la16.png", np.stack([(crop[:, :, 1] << 8) | noise[:, :, 1], a16], -1), 4, 16)
write_png("src_la8.png", np.stack([crop[:, :, 2], (a16 >> 8)], -1).astype(np.uint8), 4, 8)
write_png("src_gray2.png", (crop[:, :, 0] >> 6).astype(np.uint8), 0, 2)
write_png("src_gray_trns.png", crop[:, :, 0].astype(np.uint8), 0, 8,
          trns=struct.pack(">H", int(crop[0, 0, 0])))
write_png("src_rgb_trns.png", crop.astype(np.uint8), 2, 8,
          trns=struct.pack(">HHH", *[int(v) for v in crop[5, 5]]))
pal = rng.integers(0, 256, (16, 3), dtype=np.uint8)
idx = (crop[:, :, 0] >> 4).astype(np.uint8)
write_png("src_pal4_trns.png", idx, 3, 4, plte=pal.tobytes(), trns=bytes(rng.integers(0, 256, 12, dtype=np.uint8)))
q = Image.fromarray(crop.astype(np.uint8)).quantize(64)
q.info["transparency"] = bytes([255] * 10 + [0] * 10 + [128] * 44)
q.save(os.path.join(OUT, "src_pal8_trns.png"), transparency=q.info["transparency"])
# every (value, alpha) pair: R = x, G = 255 - x, B = (x * 7 + y) & 255, A = y
x, y = np.meshgrid(np.arange(256), np.arange(256))
grid = np.stack([x, 255 - x, (x * 7 + y) & 255, y], -1).astype(np.uint8)
Image.fromarray(grid, "RGBA").save(os.path.join(OUT, "src_alpha_grid.png"))

for s in ["src_rgb16.png", "src_gray16.png", "src_gray2.png"]:
    decode_case(s, ["drop"])
for s in ["src_rgba16.png", "src_la16.png", "src_la8.png", "src_pal4_trns.png", "src_pal8_trns.png",
          "src_gray_trns.png", "src_rgb_trns.png"]:
    decode_case(s, ["drop", "black", "white"])
decode_case("src_alpha_grid.png", ["black", "white"], band=(120, 16))
decode_case("skimage_camera.png", ["drop"], os.path.join(SHARED, "skimage_camera.png"), band=(200, 16))
decode_case("skimage_horse.png", ["drop", "black", "white"], os.path.join(SHARED, "skimage_horse.png"),
            band=(150, 16))

# ---- decode: JPEG (PIL's libjpeg-turbo vs ours; both ISLOW IDCT with fancy upsampling)
jc = Image.fromarray(photo[100:220, 200:360])                  # 160x120 crop
jc.save(os.path.join(OUT, "src_q90.jpg"), quality=90)
jc.save(os.path.join(OUT, "src_q90_444_prog.jpg"), quality=90, subsampling=0, progressive=True)
jc.convert("L").save(os.path.join(OUT, "src_gray.jpg"), quality=90)
jc.convert("CMYK").save(os.path.join(OUT, "src_cmyk.jpg"), quality=90)
for s in ["src_q90.jpg", "src_q90_444_prog.jpg", "src_gray.jpg", "src_cmyk.jpg"]:
    decode_case(s, ["drop"])


# ---- resize: PIL (antialias=1) and torch (antialias=0) on real photos
def load(name):
    return Image.open(os.path.join(SHARED, name)).convert("RGB")


def resize_case(tag, src, w, h, method, aa, box=None, gray=False):
    im = load(src)
    if box:
        im = im.crop(tuple(box))
    if gray:
        im = im.getchannel(0)
    meta = dict(op="resize", src=src, w=w, h=h, method=method, antialias=aa, gray=gray,
                box=box or [])
    if aa:
        store(f"rs_{tag}_{method}_aa", np.asarray(im.resize((w, h), METHODS[method])), **meta)
    else:
        t = torch.from_numpy(np.asarray(im).astype(np.float32))
        t = t[None, None] if gray else t.permute(2, 0, 1)[None]
        o = F.interpolate(t, size=(h, w), mode=method, align_corners=False, antialias=False)[0]
        store(f"rs_{tag}_{method}_noaa", (o[0] if gray else o.permute(1, 2, 0)).numpy(), **meta)


P = "COCO_val2014_000000096638.png"
for m in ["nearest", "bilinear", "bicubic"]:
    resize_case("coco_64x48", P, 64, 48, m, 1)
    resize_case("up_80x61", P, 80, 61, m, 1, box=[300, 200, 332, 224])
for m in ["bilinear", "bicubic"]:
    resize_case("astro_224", "skimage_astronaut.png", 224, 224, m, 1)
    resize_case("chelsea_37x53", "skimage_chelsea.png", 37, 53, m, 1)
    resize_case("camera_100x75", "skimage_camera.png", 100, 75, m, 1, gray=True)
    resize_case("up_rocket_70x50", "skimage_rocket.png", 70, 50, m, 1, box=[10, 20, 40, 44])
    resize_case("coco_64x48", P, 64, 48, m, 0)
    resize_case("chelsea_37x53", "skimage_chelsea.png", 37, 53, m, 0)
    resize_case("up_80x61", P, 80, 61, m, 0, box=[300, 200, 332, 224])
resize_case("camera_100x75", "skimage_camera.png", 100, 75, "nearest", 1, gray=True)
resize_case("chelsea_37x53", "skimage_chelsea.png", 37, 53, "nearest", 1)
# every real photo: one small bilinear and one bicubic target
for fn in sorted(os.listdir(SHARED)):
    if fn.endswith(".png"):
        base = os.path.splitext(fn)[0]
        resize_case(f"all_{base}_33x29", fn, 33, 29, "bilinear", 1)
        resize_case(f"all_{base}_57x43", fn, 57, 43, "bicubic", 1)

# ---- float planes: PIL mode "F" (antialias=1) and torch (antialias=0)
planes = (torch.randn(2, 23, 31) * 3.0).numpy().astype(np.float32)    # [C,H,W]
planes.astype("<f4").tofile(os.path.join(OUT, "planes.f32"))
for (w, h) in [(64, 48), (10, 7), (31, 9), (13, 23)]:
    for m in ["bilinear", "bicubic"]:
        pil = np.stack([np.asarray(Image.fromarray(p, "F").resize((w, h), METHODS[m])) for p in planes])
        store(f"f_{w}x{h}_{m}_aa", pil, op="fresize", w=w, h=h, method=m, antialias=1)
        t = F.interpolate(torch.from_numpy(planes)[None], size=(h, w), mode=m, align_corners=False,
                          antialias=False)[0]
        store(f"f_{w}x{h}_{m}_noaa", t.numpy(), op="fresize", w=w, h=h, method=m, antialias=0)
    pil = np.stack([np.asarray(Image.fromarray(p, "F").resize((w, h), Image.Resampling.NEAREST))
                    for p in planes])
    store(f"f_{w}x{h}_nearest_aa", pil, op="fresize", w=w, h=h, method="nearest", antialias=1)

with open(os.path.join(OUT, "index.json"), "w") as f:
    json.dump({"planes": {"file": "planes.f32", "shape": list(planes.shape)}, "cases": cases}, f, indent=0)
total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
print(f"gen_images: {len(cases)} cases, {total / 1e6:.2f} MB in {OUT}")
