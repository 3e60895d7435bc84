#!/bin/sh
# lvd-eval run's generation (greedy, KV cache, fp32, CPU): bench_gen (lvd_mllama_gen_*) vs
# transformers generate(do_sample=False) on the medium mllama of bench/mllama.sh (written
# by bench/mllama_peer.py make), one sample of 64 prompt tokens with one 224² tile, NEW
# (BENCH_NEW, default 32) new tokens, the same thread count (BENCH_THREADS, default 1),
# medians of BENCH_ITERS (default 3) after a warm-up. Prints both JSON lines, then time to
# first token and decode time per token of each side and the ratios ours/pytorch (goal
# <= 0.8 per token), and whether the greedy tokens agree.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
ITERS=${BENCH_ITERS:-3}
NEW=${BENCH_NEW:-32}
if [ -z "$PY" ]; then
	echo "eval: SKIP (no .venv-ref: the model folder and the peer need transformers)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" 2>/dev/null
ours=$(OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_gen" "$dir/model" "$THREADS" "$ITERS" "$NEW")
peer=$(OMP_NUM_THREADS=$THREADS "$PY" bench/eval_peer.py run "$dir/model" "$THREADS" "$ITERS" "$NEW" 2>/dev/null | tail -n 1)
echo "$ours"
echo "$peer"
mkdir -p bench/out
printf '%s\n%s\n' "$ours" "$peer" > bench/out/eval.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("eval generate: ttft ours %.3fs pytorch %.3fs (ratio %.2f)  per token ours %.2fms pytorch %.2fms (ratio %.2f, %.1f vs %.1f tokens/s)  tokens %s" % (a["ttft_s"], b["ttft_s"], a["ttft_s"]/b["ttft_s"], 1e3*a["decode_s_per_token"], 1e3*b["decode_s_per_token"], a["decode_s_per_token"]/b["decode_s_per_token"], a["tokens_per_s"], b["tokens_per_s"], "equal" if a["tokens"] == b["tokens"] else "DIFFER"))' "$ours" "$peer"
