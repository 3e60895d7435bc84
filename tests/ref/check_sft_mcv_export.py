#!/usr/bin/env python3
"""Loads a PEFT adapter folder that `lvd-sft run` / `lvd-sft export` wrote for the tiny
golden MiniCPM-V (tests/cli/test_lvd_sft_mcv.sh) into the reference model of
gen_minicpmv_train.py with PEFT and checks: no missing or unexpected keys, adapters on
exactly the LLM's q/k/v/o_proj of every layer (none on the vision tower), every LoRA
weight equal to the file's, the modules_to_save copies (the resampler with
--train resampler) equal to the file's, and the adapter changes the logits (its B is
trained).
Usage: check_sft_mcv_export.py ADAPTER_DIR...   (each checked; exit 0: all OK, 1: a mismatch)"""
import os
import re
import sys
import warnings

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_minicpmv as G  # noqa: E402
import gen_minicpmv_train as GT  # noqa: E402


def check(adir):
    from peft import PeftModel
    saved = load_file(os.path.join(adir, "adapter_model.safetensors"))
    gio = load_file(os.path.join(G.OUT, "io.safetensors"))
    model = GT.load_model()
    ids, bound, pix = gio["input_ids"].long(), gio["image_bound"].long(), gio["pixel_values"]
    NI = len(G.TGT)
    Lmax = pix.shape[3] // pix.shape[2]
    mask = torch.zeros(NI, 1, Lmax, dtype=torch.bool)
    for i, (h, w) in enumerate(G.TGT):
        mask[i, 0, :h * w] = True
    with torch.no_grad():
        base, _ = model.text(ids, bound, model.features(pix, mask))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, adir).eval()
    bad = [str(w.message) for w in caught if "missing" in str(w.message).lower() or
           "unexpected" in str(w.message).lower()]
    if bad:
        print("PEFT load warnings:", bad)
        return 1
    names, worst = set(), 0.0
    for n, p in pm.named_parameters():
        if ".lora_A." not in n and ".lora_B." not in n:
            continue
        names.add(re.sub(r"\.lora_[AB]\..*", "", n))
        key = n.replace(".default", "")
        if key not in saved:
            print("not in the file:", key)
            return 1
        worst = max(worst, (p.detach() - saved[key]).abs().max().item())
    params = dict(pm.named_parameters())
    saves = 0
    for key, v in saved.items():
        if ".lora_" in key:
            continue
        mod, rest = key[len("base_model.model."):].split(".", 1)
        name = "base_model.model.%s.modules_to_save.default.%s" % (mod, rest)
        if name not in params:
            print("modules_to_save tensor not loaded:", key)
            return 1
        worst = max(worst, (params[name].detach() - v).abs().max().item())
        saves += 1
    layers = len(model.llm.model.layers)
    want = {"base_model.model.llm.model.layers.%d.self_attn.%s" % (l, s)
            for l in range(layers) for s in ("q_proj", "k_proj", "v_proj", "o_proj")}
    if names != want:
        print("adapted modules differ:", sorted(names ^ want)[:6])
        return 1
    inner = pm.base_model.model
    with torch.no_grad():
        logits, _ = inner.text(ids, bound, inner.features(pix, mask))
    moved = (logits - base).abs().max().item()
    print("check_sft_mcv_export: %s: %d adapters, %d modules_to_save tensors, max |loaded - file| %.3g, "
          "max |logit change| %.3g" % (adir, len(names), saves, worst, moved))
    return 0 if worst == 0.0 and moved > 1e-6 else 1


def main():
    torch.set_num_threads(1)
    return max(check(d) for d in sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
