#!/bin/sh
# MiniCPM-Llama3-V-2.5 step (fp32, CPU): bench_minicpmv (ours) vs the PyTorch reference
# model (bench/minicpmv_peer.py: transformers' LlamaForCausalLM + Idefics2VisionTransformer
# + the hub-style resampler) on the same medium folder (LLM 4 layers x 1024, GQA 8/2 heads,
# MLP 2048, vocabulary reduced to 8192; vision 4 (+1 dropped) layers x 384; resampler
# query_num 64; two pictures of 16x16 patches, the source and one slice; T = 320 tokens,
# 128 of them image tokens), the same thread count (BENCH_THREADS, default 1), median of
# BENCH_ITERS (default 3) steps after a warm-up. BENCH_MODE: llm (default) forward + CE +
# backward with every llm.* parameter trainable and the vision tower + resampler frozen;
# lora: r = 16 / alpha 32 adapters on the LLM's q/k/v/o_proj (PEFT on the peer side),
# everything else frozen; fwd: the forward + CE alone.
# NOT YET: the full step (vision tower + resampler backward too, and LoRA with the
# resampler trainable as OpenBMB's modules_to_save): the vision backward (branch mvis) is
# not merged with the LLM backward here; the peer already has those modes (full,
# lora-res). Nor the rollout map's extra cost per step (lib/lavender/mcv_maps.h).
# Prints both JSON lines and the ratio ours/pytorch (goal <= 0.8); cpu_s is each side's
# process CPU time per step.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
ITERS=${BENCH_ITERS:-3}
MODE=${BENCH_MODE:-llm}
if [ -z "$PY" ]; then
	echo "minicpmv: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/minicpmv_peer.py make "$dir/model" 2>/dev/null
ours=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_minicpmv" "$dir/model" "$THREADS" "$ITERS" "$MODE")
peer=$(OMP_NUM_THREADS=$THREADS "$PY" bench/minicpmv_peer.py run "$dir/model" "$THREADS" "$ITERS" "$MODE" 2>/dev/null | tail -n 1)
echo "$ours"
echo "$peer"
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/minicpmv.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("minicpmv " + a["mode"] + ": ours %.3fs (%.0f MB)  pytorch %.3fs (%.0f MB)  ratio %.2f  loss %.6f vs %.6f" % (a["median_s"], a["peak_rss_mb"], b["median_s"], b["peak_rss_mb"], a["median_s"]/b["median_s"], a["loss"], b["loss"]))' "$ours" "$peer"
