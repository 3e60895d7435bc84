#!/bin/sh
# The lvd-sft training step (CPU, fp32) on the medium mllama config of bench/mllama.sh:
# LoRA r 16 on q_proj,v_proj, CE + 10·L_att through the Aligner (sim, d_h 32) on one
# 224² tile, T = 128, 10 capture rows / 8 words. Ours: bench_lavender's step_s
# (lvd_lstep_run: forward with capture, CE, L_att, injected gradient, backward; the AdamW
# update of the LoRA + Aligner block adds < 1 ms); the peer: bench/sft_peer.py, the same
# step in PyTorch + PEFT with clip_grad_norm_ and torch.optim.AdamW. Same threads
# (BENCH_THREADS, default 2), median of BENCH_ITERS (default 3) after a warm-up; peak RSS
# of each process (getrusage). Then the loader alone (bench/loader.sh: samples/s with
# images at 2 producer threads, RSS of a 1k vs a 10k pack) against our step rate.
# Goals (issue #12): step <= 0.8x PyTorch's; loader >= 10x the step rate; RSS 1k vs 10k
# within 5%.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-2}}
ITERS=${BENCH_ITERS:-3}
if [ -z "$PY" ]; then
	echo "sft: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" 2>/dev/null
ours=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_lavender" "$dir/model" "$THREADS" "$ITERS" "$dir/in.safetensors")
peer=$(OMP_NUM_THREADS=$THREADS "$PY" bench/sft_peer.py "$dir/model" "$dir/in.safetensors" "$THREADS" "$ITERS" 2>/dev/null |
	tail -n 1)
echo "$ours"
echo "$peer"
loader=$(BUILD=$BUILD LOADER_BENCH_SAMPLES=${LOADER_BENCH_SAMPLES:-100} sh bench/loader.sh)
echo "$loader"
rate=$(echo "$loader" | sed -n 's/^loader: 1000 records, threads 2, batch [0-9]*, images 1: .* = \([0-9.]*\) samples\/s.*/\1/p' |
	head -n 1)
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/sft.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); r=sys.argv[3]
print("sft: step ours %.3fs (peak RSS %.0f MB) pytorch+peft %.3fs (peak RSS %.0f MB) ratio %.2f" % (a["step_s"], a.get("peak_rss_mb", 0), b["step_s"], b["peak_rss_mb"], a["step_s"]/b["step_s"]))
if r: print("sft: loader %s samples/s vs %.2f steps/s (batch 1): %.0fx" % (r, 1/a["step_s"], float(r)*a["step_s"]))' "$ours" "$peer" "$rate"
