#!/usr/bin/env python3
"""Peer benchmark for bench/bench_minicpmv.c: a medium MiniCPM-Llama3-V-2.5-shaped model in
transformers + PyTorch on the CPU, fp32, built as tests/ref/gen_minicpmv.py builds the tiny
golden one (transformers' LlamaForCausalLM as llm, Idefics2VisionTransformer as vpm with
its last layer dropped, the Resampler written there after the hub's resampler.py).

  minicpmv_peer.py make DIR           write the seeded random model (hub key names llm.*,
                                      vpm.*, resampler.*; F32 model.safetensors + config.json)
  minicpmv_peer.py run DIR THREADS N [fwd|llm|lora|full]
                                      time N steps after one warm-up; prints one JSON line
                                      {"side":"pytorch","mode":..,"median_s":..,"cpu_s":..,
                                       "times_s":[..],"peak_rss_mb":..,"loss":..}

Config: LLM 4 layers x 1024 (GQA 8/2 heads of 128, MLP 2048), vocabulary REDUCED to 8192
(the release has 128256); vision 5 layers x 384 (6 heads, MLP 1536, patch 14, image_size
448) of which 4 run (drop_vision_last_layer); resampler query_num 64 (8 heads, kv_proj
384 -> 1024). Input: one sample, two pictures (the source and one slice) of 16x16 patches
each, T = 320 tokens of which 2 x 64 are image tokens; labels aligned with the logits (as
OpenBMB's dataset shifts them), the 188 text rows after the pictures scored.
fwd: forward + CE under no_grad. llm: forward + CE + backward, every llm.* parameter
trainable, vpm and resampler frozen. full: forward + CE + backward, every parameter
trainable. lora: PEFT LoRA r 16 / alpha 32 on the LLM's q/k/v/o_proj (OpenBMB's target
regex: no adapters on vpm), everything else frozen; lora-res: the same with the resampler
trainable (modules_to_save ["resampler"] as OpenBMB; it also saves embed_tokens, left out
as ours has no embedding gradient under LoRA). bench_minicpmv.c runs fwd, llm and lora
until the vision/resampler backward is on its branch (full and lora-res are its peers
then). The input is the one bench_minicpmv.c builds: see make_inputs.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "ref"))
from gen_minicpmv import Resampler, reinit  # noqa: E402

TEXT = dict(vocab_size=8192, hidden_size=1024, intermediate_size=2048, num_hidden_layers=4,
            num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-5,
            max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
ROPE_THETA = 500000.0
VISION = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=5, num_attention_heads=6,
              image_size=448, patch_size=14, num_channels=3, layer_norm_eps=1e-6,
              hidden_act="gelu_pytorch_tanh")
QUERY_NUM = 64
TGT = [(16, 16), (16, 16)]   # source, one slice
STARTS = [2, 68]             # image_bound starts (each QUERY_NUM long)
T = 320
LAB0 = 132                   # first scored row


class MiniCPMV(nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM
        from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig
        from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer
        tcfg = LlamaConfig(**TEXT, rope_parameters=dict(rope_type="default", rope_theta=ROPE_THETA))
        tcfg._attn_implementation = "eager"
        self.llm = LlamaForCausalLM(tcfg)
        vcfg = Idefics2VisionConfig(**VISION)
        vcfg._attn_implementation = "eager"
        self.vpm = Idefics2VisionTransformer(vcfg)
        self.vpm.encoder.layers = self.vpm.encoder.layers[:-1]   # drop_vision_last_layer
        D = TEXT["hidden_size"]
        self.resampler = Resampler(QUERY_NUM, D, D // 128, VISION["hidden_size"])

    def forward(self, ids, labels, pix, mask):
        vis = self.vpm(pix, patch_attention_mask=mask).last_hidden_state
        feats, _ = self.resampler(vis, TGT)
        x = self.llm.model.embed_tokens(ids).clone()
        for k, s in enumerate(STARTS):
            x[0, s:s + QUERY_NUM] = feats[k]
        logits = self.llm(inputs_embeds=x).logits
        return nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def make(path):
    torch.manual_seed(0)
    m = MiniCPMV()
    for mod in (m.llm, m.vpm, m.resampler):
        reinit(mod)
    os.makedirs(path, exist_ok=True)
    from safetensors.torch import save_file
    sd = {k: v.float().contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    ps = VISION["patch_size"]
    cfg = dict(architectures=["MiniCPMV"], model_type="minicpmv", **TEXT,
               hidden_act="silu", rope_theta=ROPE_THETA, rope_scaling=None, torch_dtype="float32",
               query_num=QUERY_NUM, drop_vision_last_layer=True, batch_vision_input=True,
               patch_size=ps, image_size=448, slice_mode=True,
               slice_config=dict(max_slice_nums=9, patch_size=ps, scale_resolution=448, model_type="minicpmv"),
               vision_config=dict(model_type="idefics2", **VISION))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def load(path):
    from safetensors.torch import load_file
    m = MiniCPMV()
    missing, unexpected = m.load_state_dict(load_file(os.path.join(path, "model.safetensors")), strict=False)
    if unexpected or [k for k in missing if "rotary" not in k]:
        raise SystemExit("minicpmv_peer: %s: missing %s unexpected %s" % (path, missing, unexpected))
    return m


def make_inputs():
    # identical formulas in bench_minicpmv.c
    ids = torch.tensor([[(t * 37 + 11) % 8000 + 3 for t in range(T)]], dtype=torch.long)
    for s in STARTS:
        ids[0, s:s + QUERY_NUM] = 0
    labels = torch.full((1, T), -100, dtype=torch.long)
    labels[0, LAB0:T - 1] = ids[0, LAB0 + 1:T]
    ps = VISION["patch_size"]
    lmax = max(h * w for h, w in TGT)
    n = len(TGT) * 3 * ps * lmax * ps
    i = torch.arange(n, dtype=torch.int64)
    pix = ((i * 2654435761) % 1000).float() / 500.0 - 1.0
    pix = pix.reshape(len(TGT), 3, ps, lmax * ps)
    mask = torch.zeros(len(TGT), 1, lmax, dtype=torch.bool)
    for k, (h, w) in enumerate(TGT):
        mask[k, 0, :h * w] = True
    return ids, labels, pix, mask


def add_lora(m, resampler):
    """PEFT LoRA r 16 / alpha 32 on the LLM's q/k/v/o_proj (the resampler in
    modules_to_save when asked), with bench_minicpmv.c's fixed A and non-zero B"""
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                     target_modules=r"llm\..*\.(q_proj|k_proj|v_proj|o_proj)",
                     modules_to_save=["resampler"] if resampler else None)
    m = get_peft_model(m, cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.copy_(0.01 * (torch.arange(p.numel()) % 7 - 3).float().reshape(p.shape))
            elif "lora_A" in n:
                p.copy_(0.01 * (torch.arange(p.numel()) % 5 - 2).float().reshape(p.shape))
    return m


def run(path, threads, iters, mode="full"):
    torch.set_num_threads(threads)
    m = load(path)
    if mode in ("lora", "lora-res"):
        m = add_lora(m, mode == "lora-res")
    elif mode == "llm":
        for p in list(m.vpm.parameters()) + list(m.resampler.parameters()):
            p.requires_grad_(False)
    elif mode not in ("fwd", "full"):
        raise SystemExit("minicpmv_peer: unknown mode %s" % mode)
    m.train()
    ids, labels, pix, mask = make_inputs()
    times, cpu = [], []
    for it in range(iters + 1):
        m.zero_grad(set_to_none=False)
        t0, c0 = time.perf_counter(), time.process_time()
        if mode == "fwd":
            with torch.no_grad():
                loss = m(ids, labels, pix, mask)
        else:
            loss = m(ids, labels, pix, mask)
            loss.backward()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if it:
            times.append(dt)
            cpu.append(dc)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    ntrain = sum(p.numel() for p in m.parameters() if p.requires_grad)
    print(json.dumps({"side": "pytorch", "mode": mode, "threads": threads, "loss": loss.item(),
                      "median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "times_s": times,
                      "peak_rss_mb": rss, "trainable": ntrain}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "full")
