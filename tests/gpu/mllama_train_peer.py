#!/usr/bin/env python3
"""PyTorch peer of tests/gpu/bench_mllama_train.c (issue #20 bench; prepared, not run yet).

  mllama_train_peer.py CONFIG_DIR lora|full ITERS [T]

MllamaForConditionalGeneration from CONFIG_DIR/config.json with random weights, bf16,
attn_implementation="sdpa", on cuda:0; lora: PEFT LoRA r 8, alpha 16, q_proj,v_proj (base
frozen); full: every parameter trained. The sample is bench_mllama_train.c's (one 2x2
image of 4 tiles, T text tokens, same formulas). A step: zero grads, forward with labels,
backward, torch.optim.AdamW step; torch.cuda.synchronize around it. One warm-up, then
ITERS timed steps. Prints one JSON line
{"side": "pytorch", "mode", "median_s", "times_s", "tokens_per_s", "loss", "peak_mb"}
(peak_mb: torch.cuda.max_memory_allocated). PEER_DEVICE=cpu runs it on the CPU (a smoke
test of the script on a small config; 0 MB peak)."""
import json
import os
import statistics
import sys
import time

import torch


def main():
    cfg_dir, mode, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    T = int(sys.argv[4]) if len(sys.argv) > 4 else 512
    from transformers import MllamaConfig, MllamaForConditionalGeneration
    cfg = MllamaConfig.from_pretrained(cfg_dir)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    dev = torch.device(os.environ.get("PEER_DEVICE", "cuda:0"))   # cpu: a smoke test of this script
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.device(dev):
        model = MllamaForConditionalGeneration(cfg).to(torch.bfloat16)
    model.train()
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                 lora_dropout=0.0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    vc = cfg.vision_config
    TL, side = vc.max_num_tiles, vc.image_size
    ids = torch.tensor([[(i * 37 + 11) % min(cfg.text_config.vocab_size, 120000) for i in range(T)]], dtype=torch.long)
    ids[0, 1] = cfg.image_token_index
    labels = ids.clone()
    labels[0, :T // 2] = -100
    n = TL * 3 * side * side
    idx = torch.arange(n, dtype=torch.int64)   # i · 2654435761 < 2^63: exact, as the C uint64
    pix = ((idx * 2654435761) % 1000).float().div(500.0).sub(1.0).reshape(1, 1, TL, 3, side, side)
    aspects = [(a, b) for a in range(1, TL + 1) for b in range(1, TL + 1) if a * b <= TL]
    arid = torch.tensor([[aspects.index((2, 2)) + 1]], dtype=torch.long)
    armask = torch.zeros(1, 1, TL, dtype=torch.long)
    armask[0, 0, :4] = 1
    xmask = torch.zeros(1, T, 1, TL, dtype=torch.long)
    xmask[0, 1:, 0, :4] = 1
    batch = dict(input_ids=ids.to(dev), labels=labels.to(dev), pixel_values=pix.to(dev, torch.bfloat16),
                 aspect_ratio_ids=arid.to(dev), aspect_ratio_mask=armask.to(dev), cross_attention_mask=xmask.to(dev))
    times, loss = [], None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for it in range(iters + 1):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(**batch)
        out.loss.backward()
        opt.step()
        sync()
        if it:
            times.append(time.perf_counter() - t0)
        loss = float(out.loss.detach())
    med = statistics.median(times)
    print(json.dumps({"side": "pytorch", "mode": mode, "median_s": round(med, 4),
                      "times_s": [round(t, 4) for t in times], "tokens_per_s": round(T / med, 1), "loss": loss,
                      "peak_mb": round(torch.cuda.max_memory_allocated(dev) / 1048576.0) if dev.type == "cuda" else 0}))


if __name__ == "__main__":
    main()
