#!/usr/bin/env python3
"""Loads a PEFT adapter folder written by lvd_minicpmv_lora_save (tests/unit/
test_minicpmv_train.c writes one from the golden LoRA weights) into the tiny reference
model of gen_minicpmv_train.py with PEFT 0.21 and checks that it gives the golden LoRA
logits. Before loading, the base model's embed_tokens and resampler are overwritten with
noise, so the logits only match when the adapter's modules_to_save copies are read under
the names PEFT expects; PEFT must also report no unexpected or missing LoRA keys.
Usage: check_minicpmv_peft.py ADAPTER_DIR   (exit 0: OK, 1: mismatch)"""
import os
import sys
import warnings

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv as G  # noqa: E402
import gen_minicpmv_train as GT  # noqa: E402


def main():
    from peft import PeftModel
    torch.set_num_threads(1)
    adir = sys.argv[1]
    gold = load_file(os.path.join(G.OUT, "train.safetensors"))
    model = GT.load_model()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in list(model.llm.model.embed_tokens.parameters()) + list(model.resampler.parameters()):
            p.copy_(torch.randn_like(p))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, adir).eval()
    bad = [str(w.message) for w in caught if "missing" in str(w.message).lower() or
           "unexpected" in str(w.message).lower()]
    if bad:
        print("PEFT load warnings:", bad)
        return 1
    logits = GT.golden_logits(pm.base_model.model)
    diff = (logits - gold["lora_logits"]).abs().max().item()
    print("check_minicpmv_peft: max |logit diff| %.3g (max |logit| %.3g)" %
          (diff, gold["lora_logits"].abs().max().item()))
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
