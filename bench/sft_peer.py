#!/usr/bin/env python3
"""Peer benchmark for bench/sft.sh: one lvd-sft training step in PyTorch + PEFT on the
medium mllama config and batch of bench/mllama_peer.py (T = 128, one 224² tile, LoRA
r = 16 / alpha 32 on q_proj,v_proj, non-zero B as there): forward with a hook on the
cross-attention layer, CE + 10·L_att through the Aligner (sim / instance / relu6, the
parameters, rows and targets bench_lavender wrote to DUMP; the loss of lavender_peer.py),
backward, clip_grad_norm_(1.0) and torch.optim.AdamW over LoRA + Aligner.

  sft_peer.py MODEL DUMP THREADS ITERS
prints one JSON line {"side":"pytorch","threads":..,"step_s":..,"times_s":[..],
"peak_rss_mb":..,"loss":..} (median of ITERS after one warm-up).
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
from gen_lavender import Aligner, minmax  # noqa: E402
from mllama_peer import add_lora, make_inputs  # noqa: E402

LAM = 10.0


def main():
    path, dump, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    from transformers import MllamaForConditionalGeneration
    m = MllamaForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    cross = m.config.text_config.cross_attention_layers
    pm = add_lora(m)
    pm.train()
    t = load_file(dump)
    tg = t["targets"]                                   # [W, G, G]
    W, G = tg.shape[0], tg.shape[1]
    rows, off, pos = t["rows"].tolist(), t["rows_off"].tolist(), t["rows_pos"].tolist()
    H = m.config.text_config.num_attention_heads
    net = Aligner(H, t["diffag_expand_1.weight"].shape[0], "sim", "instance", "relu6")
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(t[n])
    mask = torch.ones(G, G, dtype=torch.bool)
    cap = {}
    lm = m.model.language_model
    for k, li in enumerate(cross):
        lm.layers[li].cross_attn.register_forward_hook(lambda mod, i, o, k=k: cap.__setitem__(k, o[1]))
    params = [p for n, p in pm.named_parameters() if p.requires_grad] + list(net.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    inp = make_inputs()
    times = []
    loss = None
    for it in range(iters + 1):
        opt.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        out = pm(**inp)
        X = torch.stack([cap[k][0][:, pos, 1:1 + G * G] for k in range(len(cross))])   # [Lc, H, R, G*G]
        X = X.reshape(len(cross), H, len(pos), G, G).permute(0, 2, 1, 3, 4)           # [Lc, R, H, G, G]
        Y = net(X.reshape(-1, H, G, G)).view(len(cross), len(pos), G, G)
        V = minmax(Y.mean(0), mask)
        latt = 0
        for w in range(W):
            U = minmax(V[rows[off[w]:off[w + 1]]].mean(0), mask)
            latt = latt + ((U - tg[w])[mask] ** 2).mean()
        loss = out.loss + LAM * latt / W
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if it:
            times.append(dt)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"side": "pytorch", "threads": threads, "step_s": statistics.median(times),
                      "times_s": [round(x, 4) for x in times], "peak_rss_mb": rss, "loss": loss.item()}))


if __name__ == "__main__":
    main()
