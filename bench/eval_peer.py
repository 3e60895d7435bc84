#!/usr/bin/env python3
"""Peer benchmark for bench/bench_gen.c: transformers generate(do_sample=False) with its
KV cache on the medium mllama of bench/mllama_peer.py (make writes it), CPU, fp32.

  eval_peer.py run DIR THREADS ITERS NEW
prints one JSON line {"side":"pytorch","ttft_s":..,"decode_s_per_token":..,"tokens_per_s":..,
"tokens":[..],"peak_rss_mb":..}: medians over ITERS after a warm-up. Time to first token
is generate(max_new_tokens=1); the decode time per token is (generate(NEW) − that) / (NEW − 1),
both timed in the same iteration. The prompt is the one bench_gen.c builds (64 tokens,
<|image|> at 1, one 224² tile); eos is left at the config's 128001, outside the vocabulary.
"""
import json
import resource
import statistics
import sys
import time

import torch

P = 64
IMG = 224


def inputs():
    ids = torch.tensor([[(i * 37 + 11) % 8000 for i in range(P)]], dtype=torch.long)
    ids[0, 1] = 8192
    n = 3 * IMG * IMG
    pix = torch.tensor([((i * 2654435761) % 1000) / 500.0 - 1.0 for i in range(n)], dtype=torch.float32)
    pix = torch.cat([pix.reshape(1, 1, 1, 3, IMG, IMG), torch.zeros(1, 1, 3, 3, IMG, IMG)], dim=2)
    xmask = torch.zeros(1, P, 1, 4, dtype=torch.long)
    xmask[0, 1:, 0, 0] = 1
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pix,
                aspect_ratio_ids=torch.tensor([[1]]), aspect_ratio_mask=torch.tensor([[[1, 0, 0, 0]]]),
                cross_attention_mask=xmask)


def run(path, threads, iters, new):
    from transformers import MllamaForConditionalGeneration
    torch.set_num_threads(threads)
    m = MllamaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    inp = inputs()
    kw = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=8000)
    ttft, dec = [], []
    with torch.inference_mode():
        for it in range(iters + 1):
            t0 = time.perf_counter()
            m.generate(**inp, max_new_tokens=1, min_new_tokens=1, **kw)
            t1 = time.perf_counter()
            out = m.generate(**inp, max_new_tokens=new, min_new_tokens=new, **kw)
            t2 = time.perf_counter()
            if it:
                ttft.append(t1 - t0)
                dec.append(((t2 - t1) - (t1 - t0)) / (new - 1))
    toks = out[0, P:].tolist()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    d = statistics.median(dec)
    print(json.dumps({"side": "pytorch", "threads": threads, "new_tokens": new, "ttft_s": statistics.median(ttft),
                      "decode_s_per_token": d, "tokens_per_s": 1.0 / d, "tokens": toks, "peak_rss_mb": rss}))


if __name__ == "__main__":
    run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
