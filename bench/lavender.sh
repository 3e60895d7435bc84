#!/bin/sh
# The Lavender loss (CPU, fp32) on the medium mllama config of bench/mllama.sh (its model
# folder, made by bench/mllama_peer.py): bench_lavender (ours) times the loss alone
# (forward + backward of L_att on the captured probabilities of 10 rows / 8 words, one
# 224² tile, 16 heads, Aligner sim d_h 32), a full LoRA step with it (lvd_lstep_run) and
# the plain LoRA step; bench/lavender_peer.py times the PyTorch reference of the same loss
# on the same inputs. Same thread count (BENCH_THREADS, default 1), median of BENCH_ITERS
# (default 3) steps and of 10x as many loss evaluations, after a warm-up. Goals (issue #11): loss <= 10% of the step, ours <= 0.5x
# PyTorch's loss time.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
ITERS=${BENCH_ITERS:-3}
if [ -z "$PY" ]; then
	echo "lavender: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" 2>/dev/null
ours=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_lavender" "$dir/model" "$THREADS" "$ITERS" "$dir/in.safetensors")
peer=$(OMP_NUM_THREADS=$THREADS "$PY" bench/lavender_peer.py "$dir/in.safetensors" "$THREADS" "$((ITERS * 10))" 2>/dev/null | tail -n 1)
echo "$ours"
echo "$peer"
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/lavender.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("lavender: loss fwd+bwd ours %.4fs pytorch %.4fs ratio %.2f; LoRA step with it %.3fs (plain %.3fs), loss share %.1f%%; L_att %.6f vs %.6f" % (a["loss_s"], b["loss_s"], a["loss_s"]/b["loss_s"], a["step_s"], a["step_plain_s"], 100*a["share"], a["latt"], b["latt"]))' "$ours" "$peer"
