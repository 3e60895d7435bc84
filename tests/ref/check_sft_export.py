#!/usr/bin/env python3
"""Checks an `lvd-sft export --merge` (or --full) folder with transformers (not part of make test).

    check_sft_export.py MERGED_DIR BASE_DIR [ADAPTER_DIR]

Loads MERGED_DIR with MllamaForConditionalGeneration.from_pretrained (every weight must be
found: no missing or unexpected keys), runs the golden batch of tests/golden/mllama/io.safetensors
(the tiny model's inputs) through it and, when ADAPTER_DIR (the PEFT adapter of the same
checkpoint, e.g. RUN_DIR/final/ or a plain `lvd-sft export`) is given, through BASE_DIR + the
adapter loaded with peft.PeftModel; prints the largest logit difference and exits 1 when it
exceeds 1e-4 (F32 folder) or 5e-2 (BF16 folder, compared after casting to float32).

Example (tiny model):
    build/tests/test_sft --pack /tmp/p tests/golden/mllama/model 6
    build/lvd-sft run --model tests/golden/mllama/model --pack /tmp/p --out /tmp/r --max-steps 2 --lr 1e-2
    build/lvd-sft export /tmp/r/ckpt-000002 --model tests/golden/mllama/model --out /tmp/m --merge
    .venv-ref/bin/python tests/ref/check_sft_export.py /tmp/m tests/golden/mllama/model /tmp/r/final
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import MllamaForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IO = os.path.join(ROOT, "tests", "golden", "mllama", "io.safetensors")


def logits(model, io):
    with torch.no_grad():
        out = model(input_ids=io["input_ids"].long(), pixel_values=io["pixel_values"].float(),
                    aspect_ratio_ids=io["aspect_ratio_ids"].long(), aspect_ratio_mask=io["aspect_ratio_mask"].long(),
                    cross_attention_mask=io["cross_attention_mask"].long())
    return out.logits.float()


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    merged, base = sys.argv[1], sys.argv[2]
    with open(os.path.join(merged, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    model, info = MllamaForConditionalGeneration.from_pretrained(merged, attn_implementation="eager",
                                                                 output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    print(f"from_pretrained({merged}): {len(index['weight_map'])} tensors in {len(shards)} shard(s), "
          f"dtype {next(model.parameters()).dtype}, loading info problems: {bad or 'none'}")
    if bad:
        return 1
    model = model.float().eval()
    io = load_file(IO)
    got = logits(model, io)
    print(f"merged logits {tuple(got.shape)}, finite: {bool(torch.isfinite(got).all())}")
    if len(sys.argv) == 4:
        from peft import PeftModel
        ref_model = MllamaForConditionalGeneration.from_pretrained(base, attn_implementation="eager",
                                                                   dtype=torch.float32)
        ref_model = PeftModel.from_pretrained(ref_model, sys.argv[3]).eval()
        ref = logits(ref_model, io)
        bf16 = index["weight_map"] and "bfloat16" in open(os.path.join(merged, "config.json")).read()
        tol = 5e-2 if bf16 else 1e-4
        d = (got - ref).abs().max().item()
        print(f"max |merged - (base + PEFT adapter)| = {d:.3g} (max |logit| {ref.abs().max().item():.3g}, "
              f"tolerance {tol})")
        if not d <= tol * (1 + ref.abs().max().item()):
            return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
