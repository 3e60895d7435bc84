#!/bin/sh
# MiniCPM-Llama3-V-2.5 step (fp32, CPU): bench_minicpmv (ours) vs the PyTorch reference
# model (bench/minicpmv_peer.py: transformers' LlamaForCausalLM + Idefics2VisionTransformer
# + the hub-style resampler) on the same medium folder (LLM 4 layers x 1024, GQA 8/2 heads,
# MLP 2048, vocabulary reduced to 8192; vision 4 (+1 dropped) layers x 384; resampler
# query_num 64; two pictures of 16x16 patches, the source and one slice; T = 320 tokens,
# 128 of them image tokens), the same thread count (BENCH_THREADS, default 1), median of
# BENCH_ITERS (default 3) steps after a warm-up. BENCH_MODE: full (default) forward + CE +
# backward with every parameter trainable (LLM, resampler, vision tower); llm: every
# llm.* parameter trainable, the vision tower + resampler frozen; lora: r = 16 / alpha 32
# adapters on the LLM's q/k/v/o_proj (PEFT on the peer side), everything else frozen;
# lora-res: lora with the resampler trainable too (OpenBMB's modules_to_save); fwd: the
# forward + CE alone.
# The rollout map's extra cost (not in llm/lora's ratio, the peer has no Lavender loss):
# with BENCH_CAPTURE rows (default 8; 0 skips it) ours runs the step again capturing the
# text->image probabilities of those rows at every LLM layer, with the rollout maps
# (lib/lavender/mcv_maps.h, 32x32, source + slice view) forward and backward feeding the
# probability gradient; the third JSON line, and "extra" = its median minus the plain one.
# Prints the JSON lines and the ratio ours/pytorch (goal <= 0.8) of the wall-clock medians
# and of cpu_s (each side's process CPU time per step, steadier on a shared machine).
# BENCH_ROUNDS (default 1) runs ours and the peer alternately that many times (a burst of
# load on a shared machine then hits both sides) and takes each side's median over all
# its steps; the summary line adds the per-round ratios.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
ITERS=${BENCH_ITERS:-3}
MODE=${BENCH_MODE:-full}
CAPTURE=${BENCH_CAPTURE:-8}
ROUNDS=${BENCH_ROUNDS:-1}
if [ -z "$PY" ]; then
	echo "minicpmv: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/minicpmv_peer.py make "$dir/model" 2>/dev/null
: >"$dir/ours.jsonl"
: >"$dir/peer.jsonl"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
	OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_minicpmv" "$dir/model" "$THREADS" "$ITERS" "$MODE" >>"$dir/ours.jsonl"
	OMP_NUM_THREADS=$THREADS "$PY" bench/minicpmv_peer.py run "$dir/model" "$THREADS" "$ITERS" "$MODE" 2>/dev/null |
		tail -n 1 >>"$dir/peer.jsonl"
	r=$((r + 1))
done
# one line per side: the rounds' steps pooled (median_s, cpu_s over all of them)
pool='
import json, statistics, sys
rs = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
a = dict(rs[-1])
a["times_s"] = [t for r in rs for t in r["times_s"]]
a["median_s"] = statistics.median(a["times_s"])
a["cpu_s"] = statistics.median(r["cpu_s"] for r in rs)
a["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
a["rounds"] = [r["median_s"] for r in rs]
print(json.dumps(a))'
ours=$("$PY" -c "$pool" "$dir/ours.jsonl")
peer=$("$PY" -c "$pool" "$dir/peer.jsonl")
cap='{}'
if [ "$MODE" != fwd ] && [ "$CAPTURE" -gt 0 ]; then
	cap=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_minicpmv" "$dir/model" "$THREADS" "$ITERS" "$MODE" "$CAPTURE")
fi
echo "$ours"
echo "$peer"
[ "$cap" = '{}' ] || echo "$cap"
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/minicpmv.jsonl
[ "$cap" = '{}' ] || echo "$cap" >> bench/out/minicpmv.jsonl
"$PY" -c '
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
print("minicpmv %s: ours %.3fs (cpu %.3fs, %.0f MB)  pytorch %.3fs (cpu %.3fs, %.0f MB)  ratio %.2f (cpu %.2f)  loss %.6f vs %.6f"
      % (a["mode"], a["median_s"], a["cpu_s"], a["peak_rss_mb"], b["median_s"], b["cpu_s"], b["peak_rss_mb"],
         a["median_s"] / b["median_s"], a["cpu_s"] / b["cpu_s"], a["loss"], b["loss"]))
if len(a["rounds"]) > 1:
    print("minicpmv %s: %d rounds, per-round ratios %s" % (a["mode"], len(a["rounds"]),
          " ".join("%.2f" % (x / y) for x, y in zip(a["rounds"], b["rounds"]))))
if c:
    print("minicpmv %s + rollout maps (%d rows x every layer): %.3fs (cpu %.3fs), maps %.3fs; extra %+.3fs (cpu %+.3fs)"
          % (c["mode"], c["capture_rows"], c["median_s"], c["cpu_s"], c["map_s"], c["median_s"] - a["median_s"],
             c["cpu_s"] - a["cpu_s"]))
' "$ours" "$peer" "$cap"
