#!/usr/bin/env python3
"""Golden data for the optimiser (tests/unit/test_optim.c; lib/nn/ops/adamw.h,
lib/train/optim.h, lib/train/sched.h).

PyTorch itself is the reference: torch.optim.AdamW (CPU fp32, the default single-tensor
path: decoupled weight decay, fp32 moments, amsgrad and maximize off),
torch.nn.utils.clip_grad_norm_ / get_total_norm (per-tensor norms, then the norm of
the norms), torch.optim.lr_scheduler.StepLR stepped once per epoch (the official
recipe) and transformers' get_{constant,linear,cosine}_schedule_with_warmup (LambdaLR
stepped once per optimiser step).

Two training cases on three parameter tensors of odd sizes, T steps each, random
gradients per step (scaled by a per-step factor so that clipping is active on some
steps and not on others). Parameter groups: group 0 = (t0, t1), group 1 = (t2); the C
side holds group 0 as one flat block (t0 then t1, tensor offsets kept for the norm)
and group 1 as a second block.
  a: cosine with warmup 3 over T steps, betas (0.9, 0.999), eps 1e-8, wd 0.1 on
     group 0 only, clip 1.0;
  b: StepLR gamma 0.5 per epoch of 3 steps, betas (0.3, 0.95) (lerp's other branch),
     eps 1e-3 with gradients of 1e-3 on some steps (where eps's place matters), wd 0.02 on
     group 1 only, clip off (the norm is still recorded, as
     get_total_norm returns it).
Then learning-rate sequences alone for every schedule the C side implements.

Writes tests/golden/optim/golden.safetensors (< 200 KB):
  {c}.cfg   F64 [lr, beta1, beta2, eps, wd0, wd1, max_norm, kind, warmup, total,
                 steps_per_epoch, gamma]   (kind: 0 constant 1 step 2 cosine 3 linear)
  {c}.init.{i}       F32 initial parameters (shape of tensor i)
  {c}.s{k}.grad.{i}  F32 gradients handed to step k (before clipping)
  {c}.s{k}.param.{i} F32 parameters after step k
  {c}.m.{i}, {c}.v.{i} F32 the moments (exp_avg, exp_avg_sq) after the last step
  {c}.lr    F64 [T]  learning rate used by each step
  {c}.norm  F32 [T]  total gradient norm of each step (before clipping)
  lr.{name}     F64 [S] lr of optimiser step s = 0..S-1 (0-based, the step about to run)
  lr.{name}.cfg F64 [lr, kind, warmup, total, steps_per_epoch, gamma]
  .venv-ref/bin/python tests/ref/gen_optim.py   (CPU, a second)
"""
import os

import torch
from safetensors.torch import save_file
from torch.optim.lr_scheduler import StepLR
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "optim")

torch.manual_seed(12)
torch.set_num_threads(1)

SHAPES = [(37,), (5, 13), (3, 7, 11)]
T = 10
KIND = {"constant": 0, "step": 1, "cosine": 2, "linear": 3}


def make_sched(opt, kind, warmup, total, gamma):
    if kind == "constant":
        return get_constant_schedule_with_warmup(opt, warmup)
    if kind == "cosine":
        return get_cosine_schedule_with_warmup(opt, warmup, total)
    if kind == "linear":
        return get_linear_schedule_with_warmup(opt, warmup, total)
    assert warmup == 0
    return StepLR(opt, step_size=1, gamma=gamma)


def run_case(out, c, lr, betas, eps, wd0, wd1, max_norm, kind, warmup, spe, gamma, scales):
    params = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    for i, p in enumerate(params):
        out[f"{c}.init.{i}"] = p.detach().clone()
    groups = [{"params": params[:2], "weight_decay": wd0}, {"params": params[2:], "weight_decay": wd1}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    sched = make_sched(opt, kind, warmup, T, gamma)
    lrs, norms = [], []
    for k in range(T):
        for i, p in enumerate(params):
            g = torch.randn(p.shape) * scales[k]
            out[f"{c}.s{k}.grad.{i}"] = g.clone()
            p.grad = g
        if max_norm > 0:
            n = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            n = torch.nn.utils.get_total_norm([p.grad for p in params])
        norms.append(float(n))
        lrs.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[1]["lr"] == lrs[-1]
        opt.step()
        for i, p in enumerate(params):
            out[f"{c}.s{k}.param.{i}"] = p.detach().clone()
        if kind == "step":
            if (k + 1) % spe == 0:
                sched.step()
        else:
            sched.step()
    for i, p in enumerate(params):
        out[f"{c}.m.{i}"] = opt.state[p]["exp_avg"].clone()
        out[f"{c}.v.{i}"] = opt.state[p]["exp_avg_sq"].clone()
    out[f"{c}.lr"] = torch.tensor(lrs, dtype=torch.float64)
    out[f"{c}.norm"] = torch.tensor(norms, dtype=torch.float32)
    out[f"{c}.cfg"] = torch.tensor([lr, betas[0], betas[1], eps, wd0, wd1, max_norm, KIND[kind],
                                    warmup, T, spe, gamma], dtype=torch.float64)
    return norms


def lr_seq(out, name, lr, kind, warmup, total, spe, gamma, S):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt, kind, warmup, total, gamma)
    lrs = []
    for s in range(S):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if kind == "step":
            if (s + 1) % spe == 0:
                sched.step()
        else:
            sched.step()
    out[f"lr.{name}"] = torch.tensor(lrs, dtype=torch.float64)
    out[f"lr.{name}.cfg"] = torch.tensor([lr, KIND[kind], warmup, total, spe, gamma], dtype=torch.float64)


def main():
    os.makedirs(OUT, exist_ok=True)
    out = {}
    # total norm of three N(0, s^2) tensors of 333 values is about 18·s
    na = run_case(out, "a", 1e-2, (0.9, 0.999), 1e-8, 0.1, 0.0, 1.0, "cosine", 3, 1, 0.0,
                  [0.2, 0.03, 0.01, 0.5, 0.04, 0.02, 0.3, 0.05, 0.01, 0.1])
    clipped = sum(1 for n in na if n > 1.0)
    assert 0 < clipped < T, na
    run_case(out, "b", 3e-3, (0.3, 0.95), 1e-3, 0.0, 0.02, 0.0, "step", 0, 3, 0.5,
             [2e-3, 0.5, 1e-3, 1.5, 1e-3, 1.0, 3.0, 5e-3, 1.2, 2e-3])
    lr_seq(out, "constant_w5", 1e-4, "constant", 5, 0, 1, 0.0, 12)
    lr_seq(out, "step_g085", 1e-4, "step", 0, 0, 7, 0.85, 40)
    lr_seq(out, "cosine_w0", 2e-4, "cosine", 0, 17, 1, 0.0, 22)
    lr_seq(out, "cosine_w4", 1e-4, "cosine", 4, 20, 1, 0.0, 25)
    lr_seq(out, "linear_w4", 3e-4, "linear", 4, 20, 1, 0.0, 25)
    lr_seq(out, "linear_w0", 1e-3, "linear", 0, 9, 1, 0.0, 12)
    out = {k: v.contiguous() for k, v in out.items()}
    path = os.path.join(OUT, "golden.safetensors")
    save_file(out, path, metadata={"generator": "tests/ref/gen_optim.py", "torch": torch.__version__})
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} tensors, "
          f"case a clipped on {clipped}/{T} steps)")


if __name__ == "__main__":
    main()
