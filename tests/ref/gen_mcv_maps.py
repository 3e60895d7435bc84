#!/usr/bin/env python3
"""Golden data for the MiniCPM map modes of the Lavender loss (tests/unit/test_mcv_maps.c,
lib/lavender/mcv_maps.h, the LVD_LATT_GEOM_MINICPM kind of lib/lavender/latt.h).

Written from ../shared/reference/lavender.md §1.3(b) and vlm-training.md B.2/B.6, in
float64 PyTorch autograd, stored as float32:

  A  [H, R, n2] per captured layer: the text->image-token block of the self-attention,
     n2 = NI x Q (the sample's pictures in image_bound order: source, then slices row-major)
  Rr [NI, Hr, Q, Lmax]: the resampler probabilities (padding columns p >= th*tw hold junk
     that must be ignored)
  official: F.interpolate(A rows, size=r*r, mode='linear') (default align_corners=False),
            r = ceil(sqrt(n2)), view r x r, torchvision Resize((N, N)) on a tensor
            = F.interpolate(bilinear, align_corners=False, antialias=True)    -> 1 view
  rollout:  Rbar_k = mean over resampler heads of Rr[k, :, :, :th*tw];
            M_k = einsum(A[:, :, kQ:(k+1)Q], Rbar_k) reshaped (th, tw); view 0 = source
            map, view 1 = the slices pasted row-major on the rows x cols canvas; each view
            area-resampled onto N x N over the whole image (lvd-pack's --grid weights)
  -> maps [V*R, H, N, N] per layer -> the Lavender loss of gen_lavender.py (Aligner,
     layer aggregation, per-row min-max, per-word mean + min-max, MSE) with each word
     compared on every view against the same target; a sample adds
     sum_{v, w matched} mse / (V * matched pairs of the batch).

Samples: 1 source + 2x2 slices (rollout V = 2); the source alone (V = 1); a source
with 3x1 slices of another shape (uneven th x tw, every picture with padding columns).
Cases: rollout with two Aligner/aggregation settings, official on a shrinking (5) and a
growing (8) grid. Writes tests/golden/mcv_maps/golden.safetensors (< 1 MB):
  s{b}.A [LC, H, R, n2]; s{b}.Rr [NI, Hr, Q, Lmax]; s{b}.geom i32 [NI, cols, rows, Lmax,
  th0, tw0, th1, tw1, ...]; s{b}.rows / rows_off / matched as gen_lavender.py;
  s{b}.g{N}.targets [W, N, N]; c{c}.cfg i32 [mode (0 rollout, 1 official), grid, depth,
  norm, act, d_h, agg, n_layers, layers...]; c{c}.p.<name>, c{c}.dp.<name>, c{c}.loss;
  c{c}.s{b}.{maps, aligned, agg, rows, words, word_loss, dA, dRr}.
  .venv-ref/bin/python tests/ref/gen_mcv_maps.py   (CPU, a second)
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_lavender import ACT, AGG, DEPTH, NORM, Aligner, align_layers, minmax, overlap_matrix  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "mcv_maps")

DT = torch.float64
H = 4      # LLM heads = Aligner d_in
HR = 2     # resampler heads
Q = 6      # image tokens per picture (96 in the release)
LC = 2     # captured layers
R = 3      # rows per sample

# samples: (cols, rows, [(th, tw) per picture], Lmax, word rows, matched)
SAMPLES = [
    (2, 2, [(4, 5)] + [(3, 3)] * 4, 20, [[0], [1, 2], [2, 0]], [1, 1, 0]),
    (0, 0, [(3, 4)], 14, [[2], [0, 1]], [1, 1]),
    (3, 1, [(5, 3)] + [(2, 3)] * 3, 16, [[1], [0, 2], [2]], [0, 1, 1]),
]
GRIDS = (8, 5)
# cases: (mode, grid, depth, norm, act, d_h, agg, layers (None = all))
CASES = [
    ("rollout", 8, "sim", "instance", "relu6", 6, "mean_after", None),
    ("rollout", 8, "deep", "group", "leaky", 5, "max_before", [1]),
    ("official", 5, "sim", "instance", "relu6", 6, "mean_after", None),
    ("official", 8, "light", "none", "relu6", 4, "max_after", [1, 0]),
]


def views(smp):
    return 2 if smp[0] * smp[1] else 1


def rollout(A, Rr, smp, N):
    """A [H, R, n2], Rr [NI, Hr, Q, Lmax] -> [V*R, H, N, N]"""
    cols, rows, ts = smp[0], smp[1], smp[2]
    Ms = []
    for k, (th, tw) in enumerate(ts):
        rbar = Rr[k, :, :, :th * tw].mean(0)                               # [Q, n_k]
        m = torch.einsum("hrq,qp->rhp", A[:, :, k * Q:(k + 1) * Q], rbar)
        Ms.append(m.reshape(R, H, th, tw))
    out = [Ms[0]]
    if cols * rows:
        sh, sw = ts[1]
        canvas = torch.zeros(R, H, rows * sh, cols * sw, dtype=DT)
        for k in range(1, len(ts)):
            y, x = (k - 1) // cols, (k - 1) % cols
            canvas[:, :, y * sh:(y + 1) * sh, x * sw:(x + 1) * sw] = Ms[k]
        out.append(canvas)
    res = []
    for v in out:
        vh, vw = v.shape[-2:]
        Ay = overlap_matrix(vh, N, vh, vh / N)
        Ax = overlap_matrix(vw, N, vw, vw / N)
        res.append(torch.einsum("yi,rhij,xj->rhyx", Ay, v, Ax))
    return torch.cat(res, 0)


def official(A, smp, N):
    """the official hook: [H, R, n2] -> [R, H, N, N]"""
    n2 = A.shape[-1]
    r = math.ceil(math.sqrt(n2))
    x = A.permute(1, 0, 2)                                                 # n1 h n2
    x = F.interpolate(x, size=r * r, mode="linear").reshape(R, H, r, r)
    return F.interpolate(x, size=(N, N), mode="bilinear", align_corners=False, antialias=True)


def make_sample(b, smp):
    cols, rows, ts, lmax, wrows, matched = smp
    NI = len(ts)
    g = torch.Generator().manual_seed(7 + b)
    A = torch.softmax(torch.randn(LC, H, R, NI * Q, generator=g, dtype=DT) * 2.0, -1)
    A = (A * 0.7).float().to(DT)                 # text rows also attend to text: mass < 1
    logits = torch.randn(NI, HR, Q, lmax, generator=g, dtype=DT) * 2.0
    Rr = torch.zeros(NI, HR, Q, lmax, dtype=DT)
    for k, (th, tw) in enumerate(ts):
        Rr[k, :, :, :th * tw] = torch.softmax(logits[k, :, :, :th * tw], -1)
        Rr[k, :, :, th * tw:] = 0.5              # junk in the padding columns: ignored
    Rr = Rr.float().to(DT)
    T = {}
    for N in GRIDS:
        t = torch.rand(len(wrows), N, N, generator=g, dtype=DT) ** 2
        T[N] = minmax(t, torch.ones(N, N, dtype=torch.bool)).half().to(DT)
    return A, Rr, T


def run_case(c, case, data, tensors):
    mode, N, depth, norm, act, d_h, agg, layers = case
    layers = list(range(LC)) if layers is None else layers
    torch.manual_seed(200 + c)
    net = Aligner(H, d_h, depth, norm, act).to(DT)
    before, use_max = agg.endswith("before"), agg.startswith("max")
    npairs = sum(sum(s[5]) for s in SAMPLES)
    mask = torch.ones(N, N, dtype=torch.bool)
    total = 0
    per = []
    for b, smp in enumerate(SAMPLES):
        A0, Rr0, T = data[b]
        A = A0.clone().requires_grad_(True)
        Rr = Rr0.clone().requires_grad_(True)
        V = views(smp) if mode == "rollout" else 1
        geo = (lambda a: rollout(a, Rr, smp, N)) if mode == "rollout" else (lambda a: official(a, smp, N))
        X = torch.stack([geo(A[l]) for l in layers])                        # [L, V*R, H, N, N]
        Y, Z = align_layers(net, X, before, use_max)
        Vr = minmax(Z, mask)
        words, wl = [], []
        for v in range(V):
            for w, rws in enumerate(smp[4]):
                U = minmax(Vr[[v * R + r for r in rws]].mean(0), mask)
                words.append(U)
                mse = ((U - T[N][w]) ** 2).mean()
                if smp[5][w]:
                    total = total + mse / V
                else:
                    mse = mse * 0
                wl.append(mse)
        per.append((A, Rr, X, Y, Z, Vr, torch.stack(words), torch.stack(wl)))
    loss = total / npairs
    loss.backward()
    cfg = [0 if mode == "rollout" else 1, N, DEPTH[depth], NORM[norm], ACT[act], d_h, AGG[agg], len(layers)] + layers
    tensors[f"c{c}.cfg"] = torch.tensor(cfg, dtype=torch.int32)
    tensors[f"c{c}.loss"] = loss.detach().reshape(1).float()
    for name, p in net.named_parameters():
        tensors[f"c{c}.p.{name}"] = p.detach().float().contiguous()
        tensors[f"c{c}.dp.{name}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous()
    for b, (A, Rr, X, Y, Z, Vr, U, wl) in enumerate(per):
        k = f"c{c}.s{b}."
        tensors[k + "maps"] = X.detach().float().contiguous()
        tensors[k + "aligned"] = Y.detach().float().contiguous()
        tensors[k + "agg"] = Z.detach().float().contiguous()
        tensors[k + "rows"] = Vr.detach().float().contiguous()
        tensors[k + "words"] = U.detach().float().contiguous()
        tensors[k + "word_loss"] = wl.detach().float().contiguous()
        tensors[k + "dA"] = A.grad.float().contiguous()
        g = Rr.grad if Rr.grad is not None else torch.zeros_like(Rr)
        tensors[k + "dRr"] = g.float().contiguous()
    return loss.item()


def main():
    os.makedirs(OUT, exist_ok=True)
    data = [make_sample(b, s) for b, s in enumerate(SAMPLES)]
    tensors = {}
    for b, smp in enumerate(SAMPLES):
        cols, rows, ts, lmax, wrows, matched = smp
        A, Rr, T = data[b]
        k = f"s{b}."
        tensors[k + "A"] = A.float().contiguous()
        tensors[k + "Rr"] = Rr.float().contiguous()
        tensors[k + "geom"] = torch.tensor([len(ts), cols, rows, lmax] + [d for t in ts for d in t],
                                           dtype=torch.int32)
        tensors[k + "rows"] = torch.tensor([r for rw in wrows for r in rw], dtype=torch.int32)
        tensors[k + "rows_off"] = torch.tensor(np.cumsum([0] + [len(rw) for rw in wrows]), dtype=torch.int32)
        tensors[k + "matched"] = torch.tensor(matched, dtype=torch.int32)
        for N in GRIDS:
            tensors[k + f"g{N}.targets"] = T[N].float().contiguous()
    for c, case in enumerate(CASES):
        print(f"case {c} {case}: L_att = {run_case(c, case, data, tensors):.6f}")
    path = os.path.join(OUT, "golden.safetensors")
    save_file(tensors, path, metadata={"generator": "tests/ref/gen_mcv_maps.py"})
    os.chmod(path, 0o644)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
