#!/usr/bin/env python3
"""Golden data for lvd_mllama_lora_load (tests/unit/test_eval_run.c, test_peft_folder):
the PEFT adapter of tests/golden/mllama/lora.safetensors (r 4, alpha 8, q_proj/v_proj on
the tiny mllama of gen_mllama.py; run that first) saved by PEFT itself,
PeftModel.save_pretrained, into tests/golden/mllama/peft_adapter/ (adapter_config.json,
adapter_model.safetensors): the folder a user brings, with PEFT's own key names and
config fields (PEFT's README.md model card is removed). The unit test loads it and compares every A and B with lora.safetensors.
"""
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import MllamaForConditionalGeneration

GOLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "mllama")


def main():
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration.from_pretrained(os.path.join(GOLD, "model"), dtype=torch.float32)
    lt = load_file(os.path.join(GOLD, "lora.safetensors"))
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    n = 0
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if "lora_" in pname:
                p.copy_(lt["w." + pname.replace(".default", "")])
                n += 1
    assert n > 0
    pm.peft_config["default"].base_model_name_or_path = "tests/golden/mllama/model"
    out = os.path.join(GOLD, "peft_adapter")
    pm.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model card template


if __name__ == "__main__":
    main()
