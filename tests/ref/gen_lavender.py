#!/usr/bin/env python3
"""Golden data for the Lavender loss (tests/unit/test_lavender.c, lib/lavender/latt.h).

A PyTorch reference of the official Lavender loss semantics (AstraZeneca/vlm,
DiffagFovProjection and the loss in MllamaForConditionalGeneration.forward, as
../shared/reference/lavender.md §1.2-1.5 records them), written independently, with the
geometry fixes of §6 that lib/lavender/latt.h implements (CLS dropped, tiles placed by
their aspect ratio, lvd-pack's validity mask and area-weighted --grid resampling):

  probs [H, R, S] per captured layer  (S = max_tiles x tokens per tile, CLS first)
  -> maps [R, H, GH, GW] on the pack's grid (canvas: patches, 0 off the image;
     --grid N: the valid patches area-resampled onto N x N over the image extent)
  -> Aligner (sim / light / deep; instance / group / none; relu6 / leaky) per layer and row
  -> mean or max over layers after the Aligner, or before it (diffag_mean_layer)
  -> per-row min-max over valid cells (eps 1e-6) -> per-word mean of its rows, min-max
  -> MSE over valid cells vs the target; L_att = sum over matched words / matched count.
One case uses the official geometry instead (geometry_official below) on a --grid 5 pack
(the official grid is 32; 5 keeps the file small and still shrinks every canvas).

Random inputs of realistic geometry: P = 5 patches per tile side (1 + 25 tokens per tile,
one case with a padding token per tile), 4 tile slots, 1, 2 (both orientations) and
4 tiles, 4 heads, 3 captured layers, 4 rows and 3-4 words per sample (one unmatched),
targets min-max normalised and rounded to fp16 as lvd-pack stores them. Computed in
float64 and stored as float32 (so the C fp32 error is measured against the exact value).

Writes tests/golden/lavender/golden.safetensors (< 1 MB):
  s{b}.probs [Lc, H, R, S]; s{b}.geom i32 [tok0, tile_tok, tok_skip, P, tiles_h, tiles_w,
  patch_px, new_h, new_w, aspect_id]; s{b}.rows i32 (flattened) and s{b}.rows_off
  i32 [W+1]; s{b}.matched i32 [W]; s{b}.g{G}.mask u8 / .targets [W, GH, GW] for G in GRIDS
  c{c}.cfg i32 [grid, official, depth, norm, act, d_h, agg, n_layers, layers...]; c{c}.p.<name>
  (Aligner parameters, official names); c{c}.loss [1]; c{c}.dp.<name>;
  c{c}.s{b}.{maps, aligned, agg, rows, words, word_loss, dprobs}.
  .venv-ref/bin/python tests/ref/gen_lavender.py   (CPU, a second)
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "lavender")

torch.manual_seed(11)
torch.set_num_threads(1)
DT = torch.float64

H = 4            # heads = Aligner d_in
LC = 3           # captured layers
P = 5            # patches per tile side
PX = 14          # patch px
TILE_PX = P * PX
MAX_TILES = 4
R = 4            # rows per sample
GRIDS = (0, 8, 5)
ASPECTS = [(a, b) for a in range(1, MAX_TILES + 1) for b in range(1, MAX_TILES + 1) if a * b <= MAX_TILES]

# samples: (tiles_h, tiles_w, new_h, new_w, tokens per tile, word rows, matched)
SAMPLES = [
    (1, 1, 70, 52, 26, [[0], [1, 2], [3, 2, 0]], [1, 1, 0]),
    (1, 2, 60, 140, 27, [[3, 1], [2], [0, 3], [1]], [1, 0, 1, 1]),
    (2, 2, 140, 125, 26, [[0, 1, 2], [3], [1, 2]], [1, 1, 1]),
    (2, 1, 131, 64, 26, [[2], [0, 3]], [1, 1]),
]
DEPTH = {"sim": 0, "light": 1, "deep": 2}
NORM = {"instance": 0, "group": 1, "none": 2}
ACT = {"relu6": 0, "leaky": 1}
AGG = {"mean_after": 0, "max_after": 1, "mean_before": 2, "max_before": 3}
# cases: (grid, depth, norm, act, d_h, agg, layers (None = all), official geometry)
CASES = [
    (0, "sim", "instance", "relu6", 6, "mean_after", None, 0),
    (8, "sim", "instance", "relu6", 6, "mean_after", None, 0),
    (0, "deep", "group", "leaky", 5, "max_after", [0, 2], 0),
    (0, "light", "none", "relu6", 6, "mean_before", None, 0),
    (8, "sim", "group", "leaky", 4, "max_before", [2, 1], 0),
    (5, "sim", "instance", "relu6", 6, "mean_after", None, 1),
]


class Aligner(nn.Module):
    """The official module's structure and parameter names (written from the spec)."""

    def __init__(self, d_in, d_h, depth, norm, act):
        super().__init__()
        self.depth, self.norm_kind, self.act_kind = depth, norm, act
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1, bias=False)
        self.diffag_expand_1 = conv(d_in, d_h)
        self.diffag_expand_2 = conv(d_h, d_h)
        self.diffag_squeeze_1 = conv(d_h, d_in)
        self.diffag_expand_3 = conv(d_h, d_h)
        self.diffag_expand_4 = conv(d_h, d_h)
        if norm == "group":
            self.diffag_norm1 = nn.GroupNorm(d_h, d_h)
            self.diffag_norm2 = nn.GroupNorm(d_h, d_h)
            self.diffag_norm3 = nn.GroupNorm(d_in, d_in)
            for m in (self.diffag_norm1, self.diffag_norm2, self.diffag_norm3):
                with torch.no_grad():   # away from the default 1/0 so the gradients mean something
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
        elif norm == "instance":
            self.diffag_norm1 = nn.InstanceNorm2d(d_h)
            self.diffag_norm2 = nn.InstanceNorm2d(d_h)
            self.diffag_norm3 = nn.InstanceNorm2d(d_in)
        else:
            self.diffag_norm1 = self.diffag_norm2 = self.diffag_norm3 = nn.Identity()
        self.diffag_conv_last = nn.Conv2d(d_in, 1, 1)
        with torch.no_grad():
            self.diffag_conv_last.bias.fill_(0.25)

    def act(self, x):
        return torch.clamp(x, 0, 6) if self.act_kind == "relu6" else F.leaky_relu(x, 0.1)

    def forward(self, x):
        a = self.act(self.diffag_norm1(self.diffag_expand_1(x)))
        if self.depth != "light":
            a = self.act(self.diffag_norm2(self.diffag_expand_2(a)))
        if self.depth == "deep":
            a = self.act(self.diffag_expand_3(a))
            a = self.act(self.diffag_expand_4(a))
        a = self.diffag_norm3(self.diffag_squeeze_1(a))
        return self.diffag_conv_last(self.act(a))


def overlap_matrix(n_src, n_dst, ext, step):
    """lvd-pack's area weights: source cell i covers [i*ext/n_src, (i+1)*ext/n_src),
    target t covers [t*step, (t+1)*step) clipped to [0, ext); rows normalised."""
    A = np.zeros((n_dst, n_src))
    for t in range(n_dst):
        a, b = t * step, min((t + 1) * step, ext)
        for i in range(n_src):
            c0, c1 = ext * i / n_src, ext * (i + 1) / n_src
            A[t, i] = max(0.0, min(b, c1) - max(a, c0))
        if A[t].sum() > 0:
            A[t] /= A[t].sum()
    return torch.tensor(A, dtype=DT)


def geometry(probs, smp, grid):
    """probs [H, R, S] -> maps [R, H, GH, GW], mask [GH, GW]"""
    th, tw, nh, nw, ttok = smp[:5]
    vh, vw = -(-nh // PX), -(-nw // PX)
    canvas = torch.zeros(H, R, th * P, tw * P, dtype=DT)
    for ty in range(th):
        for tx in range(tw):
            t = ty * tw + tx
            tile = probs[:, :, t * ttok + 1: t * ttok + 1 + P * P].reshape(H, R, P, P)
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


def geometry_official(probs, smp, grid):
    """The official path (extend_mllama_xattn, bugs included): every tile's tokens (CLS and
    padding too) linearly interpolated to r*r, r = ceil(sqrt(tokens per tile)); canvas
    r x r (1 tile), r x 2r (2 tiles, always side by side) or 2r x 2r (3-4 tiles, tile t at
    (t // 2, t % 2)); torchvision Resize((N, N)) on a tensor, which is
    F.interpolate(bilinear, align_corners=False, antialias=True). -> [R, H, N, N], mask."""
    th, tw, nh, nw, ttok = smp[:5]
    nt = th * tw
    res = math.ceil(math.sqrt(ttok))
    tiles = probs[:, :, :MAX_TILES * ttok].reshape(H, R, MAX_TILES, ttok)
    x = tiles.permute(1, 2, 0, 3).reshape(R * MAX_TILES, H, ttok)          # (n1 n_t) h n_p
    x = F.interpolate(x, size=res * res, mode="linear", align_corners=False)
    x = x.reshape(R, MAX_TILES, H, res, res).permute(0, 2, 1, 3, 4)       # n1 h n_t r r
    if nt == 1:
        canvas = x[:, :, 0]
    else:
        shape = (res, 2 * res) if nt == 2 else (2 * res, 2 * res)
        canvas = torch.zeros(R, H, *shape, dtype=DT)
        for t in range(nt):
            row, col = t // 2, t % 2
            canvas[:, :, row * res:(row + 1) * res, col * res:(col + 1) * res] = x[:, :, t]
    out = F.interpolate(canvas, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    return out, torch.ones(grid, grid, dtype=torch.bool)


def minmax(x, valid):
    """min-max over the valid cells of the last two dims; 0 elsewhere"""
    flat = x.flatten(-2)
    idx = valid.flatten().nonzero().flatten()
    v = flat[..., idx]
    lo = v.min(dim=-1, keepdim=True)[0]
    hi = v.max(dim=-1, keepdim=True)[0]
    out = torch.zeros_like(flat)
    out[..., idx] = (v - lo) / (hi - lo + 1e-6)
    return out.view_as(x)


def make_sample(b, smp):
    th, tw, nh, nw, ttok, rows, matched = smp
    S = MAX_TILES * ttok
    logits = torch.randn(LC, H, R, S, dtype=DT) * 2.0
    logits[..., th * tw * ttok:] = -math.inf          # empty tile slots are masked
    probs = torch.softmax(logits, dim=-1).float().to(DT)   # fp32 values, as captured
    out = {"probs": probs}
    for g in GRIDS:
        _, mask = geometry(probs[0], smp, g)
        T = torch.rand(len(rows), *mask.shape, dtype=DT) ** 2
        T = minmax(T, mask).half().to(DT)                # lvd-pack stores fp16 targets
        out[g] = (mask, T)
    return out


def align_layers(net, X, before, use_max):
    """X [L, R, H, GH, GW] -> Aligner outputs Y [La, R, GH, GW] and the layer aggregate
    Z [R, GH, GW]: mean or max over layers after the Aligner, or before it (La = 1)"""
    L, R, H, GH, GW = X.shape
    if before:
        Xb = X.max(0)[0] if use_max else X.mean(0)
        Y = net(Xb).view(1, R, GH, GW)
        return Y, Y[0]
    Y = net(X.reshape(-1, H, GH, GW)).view(L, R, GH, GW)
    return Y, (Y.max(0)[0] if use_max else Y.mean(0))


def run_case(c, case, data, tensors):
    grid, depth, norm, act, d_h, agg, layers, official = case
    geo = (lambda p, smp, g: geometry_official(p, smp, g)) if official else geometry
    layers = list(range(LC)) if layers is None else layers
    torch.manual_seed(100 + c)
    net = Aligner(H, d_h, depth, norm, act).to(DT)
    before = agg.endswith("before")
    use_max = agg.startswith("max")
    total = 0
    npairs = sum(sum(smp[6]) for smp in SAMPLES)
    per = []
    for b, smp in enumerate(SAMPLES):
        probs = data[b]["probs"].clone().requires_grad_(True)
        mask, T = data[b][grid]
        X = torch.stack([geo(probs[l], smp, grid)[0] for l in layers])   # [L, R, H, GH, GW]
        X.retain_grad()
        Y, Z = align_layers(net, X, before, use_max)
        V = minmax(Z, mask)
        words, wl = [], []
        for w, rws in enumerate(smp[5]):
            U = minmax(V[rws].mean(0), mask)
            words.append(U)
            mse = ((U - T[w])[mask] ** 2).mean()
            if smp[6][w]:
                total = total + mse
            else:
                mse = mse * 0       # the C trace reports 0 for unmatched words
            wl.append(mse)
        per.append((probs, X, Y, Z, V, torch.stack(words), torch.stack(wl)))
    loss = total / npairs
    loss.backward()
    cfg = [grid, official, DEPTH[depth], NORM[norm], ACT[act], d_h, AGG[agg], len(layers)] + layers
    tensors[f"c{c}.cfg"] = torch.tensor(cfg, dtype=torch.int32)
    tensors[f"c{c}.loss"] = loss.detach().reshape(1).float()
    for name, p in net.named_parameters():
        tensors[f"c{c}.p.{name}"] = p.detach().float().contiguous()
        tensors[f"c{c}.dp.{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous()
    for b, (probs, X, Y, Z, V, U, wl) in enumerate(per):
        k = f"c{c}.s{b}."
        tensors[k + "maps"] = X.detach().float().contiguous()
        tensors[k + "aligned"] = Y.detach().float().contiguous()
        tensors[k + "agg"] = Z.detach().float().contiguous()
        tensors[k + "rows"] = V.detach().float().contiguous()
        tensors[k + "words"] = U.detach().float().contiguous()
        tensors[k + "word_loss"] = wl.detach().float().contiguous()
        tensors[k + "dprobs"] = probs.grad.float().contiguous()
    return loss.item()


def main():
    os.makedirs(OUT, exist_ok=True)
    data = [make_sample(b, s) for b, s in enumerate(SAMPLES)]
    tensors = {}
    for b, smp in enumerate(SAMPLES):
        th, tw, nh, nw, ttok, rows, matched = smp
        k = f"s{b}."
        tensors[k + "probs"] = data[b]["probs"].float().contiguous()
        tensors[k + "geom"] = torch.tensor([0, ttok, 1, P, th, tw, PX, nh, nw, ASPECTS.index((th, tw)) + 1],
                                           dtype=torch.int32)
        tensors[k + "rows"] = torch.tensor([r for rw in rows for r in rw], dtype=torch.int32)
        tensors[k + "rows_off"] = torch.tensor(np.cumsum([0] + [len(rw) for rw in rows]), dtype=torch.int32)
        tensors[k + "matched"] = torch.tensor(matched, dtype=torch.int32)
        for g in GRIDS:
            mask, T = data[b][g]
            tensors[k + f"g{g}.mask"] = mask.to(torch.uint8).contiguous()
            tensors[k + f"g{g}.targets"] = T.float().contiguous()
    for c, case in enumerate(CASES):
        l = run_case(c, case, data, tensors)
        print(f"case {c} {case}: L_att = {l:.6f}")
    path = os.path.join(OUT, "golden.safetensors")
    save_file(tensors, path, metadata={"generator": "tests/ref/gen_lavender.py"})
    os.chmod(path, 0o644)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
