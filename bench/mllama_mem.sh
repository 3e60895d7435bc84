#!/bin/sh
# The training memory modes of issue #20 (--recompute, the fused LM head + CE): one LoRA
# Lavender step of the tiny golden mllama (tests/golden/mllama/model: text 4 layers x 64,
# one cross layer) with a Llama-3-sized vocabulary (128256; the image token after it),
# T = 512, each mode in its own process (bench_mllama_mem): peak resident set, context
# workspace high-water mark, activation block, loss (equal across recompute modes; the
# fused head to fp32 rounding). No peer: the modes are compared with each other.
set -eu
BUILD=${BUILD:-build}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed -e 's/"vocab_size": 256/"vocab_size": 128256/' -e 's/"image_token_index": 256/"image_token_index": 128256/' \
	tests/golden/mllama/model/config.json >"$dir/config.json"
mkdir -p bench/out
: >bench/out/mllama_mem.jsonl
for mode in "none 0" "none 8192" "xattn 8192" "all 8192" "all 0"; do
	set -- $mode
	OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_mllama_mem" "$dir" "$1" "$2" "$THREADS" |
		tee -a bench/out/mllama_mem.jsonl
done
