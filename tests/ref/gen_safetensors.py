"""Golden files for lib/io/safetensors (tests/unit/test_safetensors.c).

Writes, with the reference `safetensors` package, into tests/golden/safetensors/:
  dtypes.safetensors      one tensor per dtype with edge values (f16/bf16 subnormals, inf,
                          nan, -0, integer extremes), an empty tensor, a scalar, a 4-D
                          tensor; one metadata pair so the bytes are deterministic.
  dtypes.expected.json    per tensor: dtype, shape and the f32 bit patterns of
                          tensor.float() (what lvd_tensor_to_f32 must produce).
  convert.safetensors     f32 -> f16/bf16 rounding cases (`src`, `src_f16`, `src_bf16`
                          from torch's .half()/.bfloat16()) and all 65536 f16 bit patterns
                          (`f16_all`) with their torch f32 values (`f16_all_f32`).
  empty.safetensors       no tensors, no metadata.
  sharded/                model.safetensors.index.json + two shards, as transformers'
                          save_pretrained lays them out.
Run: .venv-ref/bin/python tests/ref/gen_safetensors.py
"""
import json
import os
import struct

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "safetensors")


def f32_bits(t):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in t.float().reshape(-1).tolist()]


def main():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    torch.manual_seed(0)
    inf, nan = float("inf"), float("nan")

    f16_vals = [0.0, -0.0, 1.0, -2.5, 2.0 ** -24, -(2.0 ** -24), 3 * 2.0 ** -24, 2.0 ** -14,
                1023 * 2.0 ** -24, 65504.0, -65504.0, inf, -inf, nan, 1.0 / 3, 0.1]
    bf16_vals = [0.0, -0.0, 1.0, -2.5, 2.0 ** -133, 2.0 ** -126, 3.3895313892515355e38, inf, -inf,
                 nan, 1.0 / 3, 0.1, 1e-40]
    t = {
        "f32": torch.tensor([0.0, -0.0, 1.0, -1.0, 1e-45, 3.4028234663852886e38, inf, -inf, nan,
                             3.14159274, -1.17549435e-38], dtype=torch.float32),
        "f16": torch.tensor(f16_vals, dtype=torch.float16),
        "bf16": torch.tensor(bf16_vals, dtype=torch.bfloat16),
        "f64": torch.tensor([1e300, -1e300, 0.1, -2.5, 1e-320, 2.0 ** -149, 16777217.0], dtype=torch.float64),
        "i64": torch.tensor([-(2 ** 62), -1, 0, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63)], dtype=torch.int64),
        "i32": torch.tensor([-(2 ** 31), -1, 0, 16777217, 2 ** 31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, -1, 0, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True], dtype=torch.bool),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "scalar": torch.tensor(42.5, dtype=torch.float32),
        "unet.down_blocks.0.conv.weight": torch.randn(2, 3, 4, 5, dtype=torch.float32),
        "model.layers.0.q_proj.weight": torch.randn(3, 5, dtype=torch.float32).to(torch.bfloat16),
    }
    save_file(t, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt"})
    expected = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "f32_bits": f32_bits(v)}
                for k, v in t.items()}
    with open(os.path.join(OUT, "dtypes.expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")

    # f32 -> f16 / bf16 rounding: random values over many binades, exact ties, edges.
    g = torch.Generator().manual_seed(1)
    rnd = torch.randn(1500, generator=g) * torch.exp2(torch.randint(-30, 20, (1500,), generator=g).float())
    bits = torch.randint(0, 2 ** 31 - 1, (500,), generator=g, dtype=torch.int64)
    rbits = (bits | ((bits & 1) << 31)).to(torch.int64)  # random f32 bit patterns, both signs
    rbits = torch.tensor([struct.unpack("<f", struct.pack("<I", int(b) & 0xFFFFFFFF))[0] for b in rbits.tolist()],
                         dtype=torch.float32)
    edges = []
    for m in [1.0, 1.5, 1.25, 1.75]:
        for e in [-26, -25, -24, -23, -15, -14, -13, 0, 1, 15]:
            v = m * 2.0 ** e
            edges += [v, -v]
    ulp16 = 2.0 ** -10
    ulpbf = 2.0 ** -7
    for k in range(8):  # exact ties and near-ties for both half formats
        edges += [1 + (k + 0.5) * ulp16, 1 + (k + 0.5) * ulp16 + 2.0 ** -23, 1 + (k + 0.5) * ulp16 - 2.0 ** -23,
                  1 + (k + 0.5) * ulpbf, 1 + (k + 0.5) * ulpbf + 2.0 ** -23, 1 + (k + 0.5) * ulpbf - 2.0 ** -23]
    for k in range(1, 8):  # subnormal half ties: (k + 0.5) * 2^-24
        edges += [(k + 0.5) * 2.0 ** -24, -(k + 0.5) * 2.0 ** -24]
    edges += [65504.0, 65519.0, 65519.99609375, 65520.0, 65536.0, 1e10, -1e10, inf, -inf, nan, -nan,
              3.4028234663852886e38, 3.3961775292304e38, 3.39e38, 1e-45, -0.0, 0.0]
    src = torch.cat([rnd, rbits, torch.tensor(edges, dtype=torch.float32)])
    f16_all = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16).view(torch.float16)
    conv = {
        "src": src,
        "src_f16": src.half(),
        "src_bf16": src.bfloat16(),
        "f16_all": f16_all,
        "f16_all_f32": f16_all.float(),
    }
    save_file(conv, os.path.join(OUT, "convert.safetensors"))

    save_file({}, os.path.join(OUT, "empty.safetensors"))

    # Sharded checkpoint laid out like transformers' save_pretrained.
    shards = {
        "model-00001-of-00002.safetensors": {
            "a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
            "b.bias": torch.tensor([0.5, -0.5], dtype=torch.bfloat16),
        },
        "model-00002-of-00002.safetensors": {
            "c.weight": torch.arange(4, dtype=torch.float16).reshape(2, 2) / 4,
            "z.ids": torch.tensor([7, 8, 9], dtype=torch.int64),
        },
    }
    weight_map, total = {}, 0
    for fname, tensors in shards.items():
        save_file(tensors, os.path.join(OUT, "sharded", fname), metadata={"format": "pt"})
        for k, v in tensors.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
