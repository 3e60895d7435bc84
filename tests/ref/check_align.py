"""Recomputes lvd-eval align's metrics with NumPy from the maps it dumped.

    lvd-eval align ... --out EVAL --dump-maps MAPS.safetensors
    .venv-ref/bin/python tests/ref/check_align.py EVAL/align.jsonl MAPS.safetensors

For every line n of align.jsonl, the dump holds n.target, n.mask, n.raw [L, GH, GW],
n.raw_mean, n.aligner (when an Aligner was used) and the same under baseline.* for a
baseline. The definitions below are written from docs/eval.md ("align"), independently
of lib/eval/align.c; every metric of every map must agree within 1e-9 (pointing exactly).
Not part of `make test` (CI has no NumPy); run by hand, result quoted in the commit.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file

EPS = 1e-6
NAMES = ["mse", "pearson", "kl", "iou10", "iou20", "pointing"]


def topk_set(x, frac):
    """Smallest prefix of the value-descending order (ties: lower index first) holding
    >= frac of the mass of max(x, 0); returns the set of positions into x."""
    order = np.lexsort((np.arange(x.size), -x.astype(np.float64)))
    pos = np.maximum(x[order].astype(np.float64), 0.0)
    need = frac * pos.sum()
    run = 0.0
    k = 0
    while k < x.size and not run >= need:
        run += pos[k]
        k += 1
    return set(order[:k].tolist())


def metrics(m, t, mask):
    v = mask.reshape(-1) != 0
    m = m.reshape(-1)[v].astype(np.float64)
    t = t.reshape(-1)[v].astype(np.float64)
    out = {"mse": float(np.mean((m - t) ** 2))}
    dm, dt = m - m.mean(), t - t.mean()
    sxx, syy = float((dm * dm).sum()), float((dt * dt).sum())
    out["pearson"] = float((dm * dt).sum() / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else 0.0
    p = np.maximum(t, 0) + EPS
    q = np.maximum(m, 0) + EPS
    p, q = p / p.sum(), q / q.sum()
    out["kl"] = float((p * np.log(p / q)).sum())
    mf, tf = m.astype(np.float32), t.astype(np.float32)
    for k in (10, 20):
        a, b = topk_set(mf, k / 100), topk_set(tf, k / 100)
        u = a | b
        out["iou%d" % k] = len(a & b) / len(u) if u else 0.0
    out["pointing"] = 1 if int(np.argmax(mf)) in topk_set(tf, 0.20) else 0
    return out


def compare(got, want, where):
    bad = 0
    for k in NAMES:
        tol = 0 if k == "pointing" else 1e-9 * max(1.0, abs(want[k]))
        if not abs(got[k] - want[k]) <= tol:
            print("%s %s: lvd-eval %r, numpy %r" % (where, k, got[k], want[k]))
            bad += 1
    return bad


def main():
    lines = [json.loads(s) for s in open(sys.argv[1]) if s.strip()]
    maps = load_file(sys.argv[2])
    bad = checked = 0
    for n, ln in enumerate(lines):
        t, mask = maps["%d.target" % n], maps["%d.mask" % n]
        for pre, blk in (("", ln), ("baseline.", ln.get("baseline"))):
            if blk is None:
                continue
            raw = maps["%s%d.raw" % (pre, n)]
            for l, e in enumerate(blk["raw"]):
                bad += compare(e, metrics(raw[l], t, mask), "%s%d raw[%d]" % (pre, n, l))
                checked += 1
            bad += compare(blk["raw_mean"], metrics(maps["%s%d.raw_mean" % (pre, n)], t, mask), "%s%d raw_mean" % (pre, n))
            checked += 1
            if blk.get("aligner") is not None:
                bad += compare(blk["aligner"], metrics(maps["%s%d.aligner" % (pre, n)], t, mask), "%s%d aligner" % (pre, n))
                checked += 1
    print("check_align: %d words, %d maps x %d metrics checked, %d mismatches" % (len(lines), checked, len(NAMES), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
