#!/usr/bin/env python3
"""Loads a full-model folder written by lvd_minicpmv_save_hf (tests/unit/
test_minicpmv_save.c writes one from the tiny golden model with LoRA merged) with the
reference modules the goldens use (gen_minicpmv_train.MiniCPMV: transformers'
LlamaForCausalLM and Idefics2VisionTransformer, the hub-style resampler), strictly: the
index must name every key and only existing shard files, every tensor of the model must
be there and no other. Then compares its logits on the golden inputs with REF's "logits"
(those of our model before the export, LoRA unmerged), and checks config.json's dtype.
With --peft-adapter ADIR [rslora] it also writes gen_minicpmv_peft_adapter.py's PEFT adapter
into ADIR (one interpreter start for both of the test's Python steps).
Usage: check_minicpmv_save.py DIR REF.safetensors DTYPE [--peft-adapter ADIR [rslora]]
(exit 0: OK, 1: mismatch)"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv_train as GT  # noqa: E402
import gen_minicpmv_peft_adapter as GP  # noqa: E402


def main():
    torch.set_num_threads(1)
    d, ref, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 5 and sys.argv[4] == "--peft-adapter":
        GP.write(sys.argv[5], len(sys.argv) > 6 and sys.argv[6] == "rslora")
    cfg = json.load(open(os.path.join(d, "config.json")))
    if cfg.get("torch_dtype") != dtype or cfg.get("model_type") != "minicpmv":
        print("config.json: torch_dtype %s model_type %s" % (cfg.get("torch_dtype"), cfg.get("model_type")))
        return 1
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    sd, total = {}, 0
    for fn in sorted(set(idx["weight_map"].values())):
        part = load_file(os.path.join(d, fn))
        for k, v in part.items():
            if idx["weight_map"].get(k) != fn:
                print("index: %s not mapped to %s" % (k, fn))
                return 1
            total += v.numel() * v.element_size()
            sd[k] = v.float()
    if set(sd) != set(idx["weight_map"]) or total != idx["metadata"]["total_size"]:
        print("index: keys or total_size differ from the shards")
        return 1
    model = GT.MiniCPMV().eval()
    model.load_state_dict(sd, strict=True)
    logits = GT.golden_logits(model)
    want = load_file(ref)["logits"].reshape(logits.shape)
    diff = (logits - want).abs().max().item()
    print("check_minicpmv_save: %s (%s, %d tensors in %d shards): max |logit diff| %.3g (max |logit| %.3g)" %
          (d, dtype, len(sd), len(set(idx["weight_map"].values())), diff, want.abs().max().item()))
    return 0 if diff < 1e-4 * (1 + want.abs().max().item()) else 1


if __name__ == "__main__":
    sys.exit(main())
