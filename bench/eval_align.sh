#!/bin/sh
# lvd-eval align throughput (CPU, fp32) on the medium mllama config of bench/mllama.sh (its
# model folder, made by bench/mllama_peer.py: 16 text heads, one cross layer, 224² tiles,
# up to 4 tiles): a pack of BENCH_SAMPLES (default 24) real photos from ../shared/data
# (build/tests/test_align --pack: 10 tokens, 1-3 matched words per sample), scored with a
# LoRA adapter and an Aligner (sim, d_h 32) exported by one lvd-sft step at lr 0. Reports
# matched words per second (forward + maps + metrics, loading excluded) for the raw maps
# alone and with the Aligner, same thread count (BENCH_THREADS, default 1), per wall
# second and per CPU second of the process (the latter is what a loaded machine still
# measures fairly; the loader's image threads are included). There is no
# peer: the official code has no alignment evaluation, so only our side is printed.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
THREADS=${BENCH_THREADS:-${THREADS:-1}}
N=${BENCH_SAMPLES:-24}
SHARED=${LVD_SHARED_DATA:-../shared/data}
if [ -z "$PY" ]; then
	echo "eval_align: SKIP (no .venv-ref: the model folder needs transformers)"
	exit 0
fi
if [ ! -x "$BUILD/tests/test_align" ] || [ ! -f "$SHARED/images/skimage_chelsea.png" ]; then
	echo "eval_align: SKIP (needs $BUILD/tests/test_align and $SHARED/images)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" 2>/dev/null
words=$("$BUILD/tests/test_align" --pack "$dir/pack" "$dir/model" "$SHARED/images" "$N")
"$BUILD/lvd-sft" run --model "$dir/model" --pack "$dir/pack" --out "$dir/run" --max-steps 1 --lr 0 \
	--threads "$THREADS" -q
OPENBLAS_NUM_THREADS=$THREADS "$BUILD/lvd-eval" align --model "$dir/model" --pack "$dir/pack" --out "$dir/raw" \
	--threads "$THREADS" -q >/dev/null
OPENBLAS_NUM_THREADS=$THREADS "$BUILD/lvd-eval" align --model "$dir/model" --adapter "$dir/run/final" \
	--pack "$dir/pack" --out "$dir/al" --threads "$THREADS" -q >/dev/null
line=$("$PY" -c 'import json,sys
r = json.load(open(sys.argv[1]))["model"]; a = json.load(open(sys.argv[2]))["model"]
print(json.dumps({"side": "ours", "threads": int(sys.argv[3]), "samples": int(sys.argv[4]), "words": a["words"],
                  "raw_words_per_s": r["words_per_s"], "raw_s": r["seconds"], "raw_cpu_s": r["cpu_seconds"],
                  "raw_words_per_cpu_s": r["words"] / r["cpu_seconds"],
                  "aligner_words_per_s": a["words_per_s"], "aligner_s": a["seconds"], "aligner_cpu_s": a["cpu_seconds"],
                  "aligner_words_per_cpu_s": a["words"] / a["cpu_seconds"]}))' \
	"$dir/raw/scores.json" "$dir/al/scores.json" "$THREADS" "$N")
echo "$line"
mkdir -p bench/out
printf '%s\n' "$line" > bench/out/eval_align.jsonl
"$PY" -c 'import json,sys; a=json.loads(sys.argv[1]); print("eval_align: %d words (%d samples), %d threads: raw maps %.2f words/s (%.2f per CPU s), with LoRA + Aligner %.2f words/s (%.2f per CPU s); no peer" % (a["words"], a["samples"], a["threads"], a["raw_words_per_s"], a["raw_words_per_cpu_s"], a["aligner_words_per_s"], a["aligner_words_per_cpu_s"]))' "$line"
[ "$words" -gt 0 ]
