#!/usr/bin/env python3
"""Peer benchmark for bench/bench_lavender.c: the PyTorch reference of the same Lavender
loss (tests/ref/gen_lavender.py's semantics, in fp32 here, as a training run would) on
the inputs bench_lavender wrote: forward + backward of L_att w.r.t. the captured
probabilities and the Aligner parameters.

  lavender_peer.py DUMP THREADS ITERS
prints one JSON line {"side":"pytorch","threads":..,"latt":..,"loss_s":..,"times_s":[..]}
(median of ITERS after one warm-up).
"""
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from gen_lavender import Aligner, minmax  # noqa: E402

LAM = 10.0


def main():
    path, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    t = load_file(path)
    probs0 = t["probs"]                    # [Lc, H, R, S]
    Lc, H, R, S = probs0.shape
    tg = t["targets"]                      # [W, G, G]
    W, G = tg.shape[0], tg.shape[1]
    rows, off = t["rows"].tolist(), t["rows_off"].tolist()
    d_h = t["diffag_expand_1.weight"].shape[0]
    net = Aligner(H, d_h, "sim", "instance", "relu6")
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(t[n])
    mask = torch.ones(G, G, dtype=torch.bool)   # one full tile: every patch valid
    times = []
    latt = None
    for it in range(iters + 1):
        net.zero_grad(set_to_none=False)
        probs = probs0.clone().requires_grad_(True)
        t0 = time.perf_counter()
        # 1 tile canvas: drop the CLS, the P x P patches of tile 0
        X = probs[:, :, :, 1:1 + G * G].reshape(Lc, H, R, G, G).permute(0, 2, 1, 3, 4)   # [Lc, R, H, G, G]
        Y = net(X.reshape(-1, H, G, G)).view(Lc, R, G, G)
        V = minmax(Y.mean(0), mask)
        loss = 0
        for w in range(W):
            U = minmax(V[rows[off[w]:off[w + 1]]].mean(0), mask)
            loss = loss + ((U - tg[w])[mask] ** 2).mean()
        loss = loss / W
        (LAM * loss).backward()
        dt = time.perf_counter() - t0
        if it:
            times.append(dt)
        latt = loss.item()
    print(json.dumps({"side": "pytorch", "threads": threads, "latt": latt, "loss_s": statistics.median(times),
                      "times_s": [round(x, 4) for x in times]}))


if __name__ == "__main__":
    main()
