#!/usr/bin/env python3
"""Peer benchmark for bench/bench_mllama.c: the same medium mllama config in
transformers + PyTorch on the CPU, fp32, full fine-tuning step (forward + backward).

  mllama_peer.py make DIR            write the seeded random model (HF folder) to DIR
  mllama_peer.py run DIR THREADS N [full|lora]
                                     time N steps after one warm-up; prints one JSON line
                                     {"side":"pytorch","median_s":..,"cpu_s":..,"times_s":[..],"peak_rss_mb":..}
lora: PEFT LoRA r = 16, alpha = 32 on q_proj,v_proj (base frozen), as bench_mllama lora.
The input (ids, labels, pixels, masks) is the one bench_mllama.c builds: see make_inputs.
"""
import json
import resource
import statistics
import sys
import time

import torch

T = 128
IMG = 224


def config():
    from transformers import MllamaConfig
    vision = dict(hidden_size=512, attention_heads=8, intermediate_size=2048, num_hidden_layers=4,
                  num_global_layers=1, image_size=IMG, patch_size=14, max_num_tiles=4,
                  intermediate_layers_indices=[1, 3], vision_output_dim=512 * 3)
    text = dict(vocab_size=8192, hidden_size=1024, num_attention_heads=16, num_key_value_heads=4,
                intermediate_size=2048, num_hidden_layers=4, cross_attention_layers=[1],
                max_position_embeddings=131072, tie_word_embeddings=False, pad_token_id=8000,
                rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=8192))
    return MllamaConfig(vision_config=vision, text_config=text, image_token_index=8192)


def make(path):
    from transformers import MllamaForConditionalGeneration
    torch.manual_seed(0)
    m = MllamaForConditionalGeneration(config()).float()
    m.save_pretrained(path, safe_serialization=True)


def make_inputs():
    # identical formulas in bench_mllama.c
    ids = torch.tensor([[(i * 37 + 11) % 8000 for i in range(T)]], dtype=torch.long)
    ids[0, 1] = 8192
    labels = ids.clone()
    labels[0, :T // 2] = -100
    n = 3 * IMG * IMG
    pix = torch.tensor([((i * 2654435761) % 1000) / 500.0 - 1.0 for i in range(n)], dtype=torch.float32)
    pix = torch.cat([pix.reshape(1, 1, 1, 3, IMG, IMG), torch.zeros(1, 1, 3, 3, IMG, IMG)], dim=2)
    xmask = torch.zeros(1, T, 1, 4, dtype=torch.long)
    xmask[0, 1:, 0, 0] = 1
    return dict(input_ids=ids, labels=labels, pixel_values=pix, aspect_ratio_ids=torch.tensor([[1]]),
                aspect_ratio_mask=torch.tensor([[[1, 0, 0, 0]]]), cross_attention_mask=xmask)


def add_lora(m):
    """PEFT LoRA r 16 / alpha 32 on q_proj,v_proj with bench_mllama.c's non-zero B"""
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.copy_(0.01 * (torch.arange(p.numel()) % 7 - 3).float().reshape(p.shape))
    return m


def run(path, threads, iters, mode="full"):
    from transformers import MllamaForConditionalGeneration
    torch.set_num_threads(threads)
    m = MllamaForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    if mode == "lora":
        m = add_lora(m)
    m.train()
    inp = make_inputs()
    times, cpu = [], []
    for it in range(iters + 1):
        m.zero_grad(set_to_none=False)
        t0, c0 = time.perf_counter(), time.process_time()
        out = m(**inp)
        out.loss.backward()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if it:
            times.append(dt)
            cpu.append(dc)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"side": "pytorch", "mode": mode, "threads": threads, "loss": out.loss.item(),
                      "median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "times_s": times,
                      "peak_rss_mb": rss}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "full")
