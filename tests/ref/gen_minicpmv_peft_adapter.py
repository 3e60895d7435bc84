#!/usr/bin/env python3
"""A PEFT-written MiniCPM adapter for tests/unit/test_minicpmv_save.c (run at test time,
only with .venv-ref): the tiny golden model of gen_minicpmv_train.py wrapped by PEFT 0.21's
get_peft_model as OpenBMB's finetune.py does it — LoRA r 4, alpha 8 (use_rslora when
asked) on OpenBMB's regex target (the LLM's q/k/v/o_proj), modules_to_save embed_tokens
and resampler — with random LoRA A and B and the modules_to_save copies perturbed (so the
logits only match when the loader replaces them), saved by save_pretrained into OUTDIR,
plus OUTDIR/peft_logits.safetensors: "logits" [B,T,V] of the PEFT model on the golden
inputs (tests/golden/minicpmv/io.safetensors).
Usage: gen_minicpmv_peft_adapter.py OUTDIR [rslora]   (check_minicpmv_save.py --peft-adapter
calls write() in the same process, saving a second interpreter start in the test)"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv_train as GT  # noqa: E402


def write(out, rslora=False):
    from peft import LoraConfig, get_peft_model
    model = GT.load_model()
    pm = get_peft_model(model, LoraConfig(**GT.LORA, use_rslora=rslora,
                                          modules_to_save=["embed_tokens", "resampler"]))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "modules_to_save" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    pm.eval()
    pm.save_pretrained(out)
    logits = GT.golden_logits(pm.base_model.model)
    save_file({"logits": logits.float().contiguous()}, os.path.join(out, "peft_logits.safetensors"))
    print("gen_minicpmv_peft_adapter: %s (rslora %d), max |logit| %.3g" % (out, rslora, logits.abs().max().item()))


def main():
    torch.set_num_threads(1)
    write(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "rslora")
    return 0


if __name__ == "__main__":
    sys.exit(main())
