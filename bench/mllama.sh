#!/bin/sh
# mllama forward+backward (full fine-tuning step, fp32, CPU): bench_mllama (ours) vs
# transformers + PyTorch on the same medium config (text 4 layers x 1024 with one
# cross-attention layer, vision 4+1 layers x 512, one 224² tile (of 4 tile slots, as HF always runs), T = 128), the same
# thread count (BENCH_THREADS, default 1), median of BENCH_ITERS (default 3) steps after
# a warm-up. BENCH_MODE=lora (default full) benches a LoRA step instead: frozen, mapped base
# weights, r = 16 adapters on q_proj,v_proj (PEFT on the peer side). Prints both JSON lines
# and the ratio ours/pytorch (goal <= 0.8); cpu_s is each side's process CPU time per step.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
ITERS=${BENCH_ITERS:-3}
MODE=${BENCH_MODE:-full}
# rows per sample whose cross-attention probabilities are captured with an injected
# gradient (a Lavender step: 8); 0 (default) = the plain CE step the peer runs
CAPTURE=${BENCH_CAPTURE:-0}
if [ -z "$PY" ]; then
	echo "mllama: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" 2>/dev/null
ours=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_mllama" "$dir/model" "$THREADS" "$ITERS" "$MODE" "$CAPTURE")
peer=$(OMP_NUM_THREADS=$THREADS "$PY" bench/mllama_peer.py run "$dir/model" "$THREADS" "$ITERS" "$MODE" 2>/dev/null | tail -n 1)
echo "$ours"
echo "$peer"
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/mllama.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("mllama " + a["mode"] + ": ours %.3fs (%.0f MB)  pytorch %.3fs (%.0f MB)  ratio %.2f  loss %.6f vs %.6f" % (a["median_s"], a["peak_rss_mb"], b["median_s"], b["peak_rss_mb"], a["median_s"]/b["median_s"], a["loss"], b["loss"]))' "$ours" "$peer"
