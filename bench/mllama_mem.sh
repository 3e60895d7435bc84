#!/bin/sh
# The training memory modes of issue #20 (--recompute, the fused LM head + CE): one LoRA
# Lavender step of the tiny golden mllama (tests/golden/mllama/model: text 4 layers x 64,
# one cross layer) with a Llama-3-sized vocabulary (128256; the image token after it),
# T = 512, each mode in its own process (bench_mllama_mem): peak resident set, context
# workspace high-water mark, activation block, loss (equal across recompute modes; the
# fused head to fp32 rounding). No peer: the modes are compared with each other.
# Then the vision tower's recompute (,vision) on a vision-heavy variant of the same model
# (the text as above with its 256-token vocabulary; the vision encoder at 224 px tiles,
# 4 tiles of 257 patches, width 256, MLP 1024, 4 heads, 8 local + 1 global layers) into
# bench/out/mllama_mem_vision.jsonl.
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
mkdir -p "$dir/vision"
sed -e 's/"hidden_size": 32/"hidden_size": 256/' -e 's/"image_size": 56/"image_size": 224/' \
	-e 's/"intermediate_size": 64/"intermediate_size": 1024/' -e 's/"attention_heads": 2/"attention_heads": 4/' \
	-e 's/"num_hidden_layers": 2/"num_hidden_layers": 8/' -e 's/"vision_output_dim": 96/"vision_output_dim": 768/' \
	tests/golden/mllama/model/config.json >"$dir/vision/config.json"
: >bench/out/mllama_mem_vision.jsonl
for mode in none all vision all,vision; do
	OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench/bench_mllama_mem" "$dir/vision" "$mode" 0 "$THREADS" |
		tee -a bench/out/mllama_mem_vision.jsonl
done
