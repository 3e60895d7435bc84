#!/usr/bin/env python3
"""PyTorch side of bench/sd.sh: diffusers UNet2DConditionModel / AutoencoderKL built from
the SD 1.5 configs with random init (fp32, CPU), the same shapes as bench_sd.c.

usage: sd_peer.py unet|vae CONFIGS RUNS THREADS   -> one JSON line on stdout
"""
import json
import resource
import sys
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel


def main():
    what, configs, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if what == "unet":
        cfg = json.load(open(f"{configs}/unet_config.json"))
        model = UNet2DConditionModel.from_config(cfg).eval()
        x = torch.rand(1, 4, 32, 32) * 2 - 1
        ctx = torch.rand(1, 77, 768) * 2 - 1
        t = torch.tensor([500])
        fn = lambda: model(x, t, encoder_hidden_states=ctx).sample
    else:
        cfg = json.load(open(f"{configs}/vae_config.json"))
        model = AutoencoderKL.from_config(cfg).eval()
        x = torch.rand(1, 3, 256, 256) * 2 - 1
        fn = lambda: model.encode(x).latent_dist.mean
    load_s = time.perf_counter() - t0
    times, cpus = [], []
    with torch.inference_mode():
        for _ in range(runs):
            a, c = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - a)
            cpus.append(time.process_time() - c)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "pytorch", "what": what, "runs": runs, "threads": threads,
                      "median_s": round(times[len(times) // 2], 4), "min_s": round(times[0], 4), "cpu_min_s": round(min(cpus), 4),
                      "load_s": round(load_s, 3), "peak_rss_mb": round(rss, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
