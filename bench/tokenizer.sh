#!/bin/sh
# Llama-3 tokenizer throughput, ours vs Hugging Face `tokenizers` (single thread), on
# the same MB megabytes of text (bench/out/tokenizer_corpus.txt, generated once from
# the golden corpus), median of RUNS; both token counts must agree. Then a 1 MB line of
# one repeated character (goal: well under a second).
# Env: BUILD, PY (python with tokenizers; empty = skip peer), MB (default 50), RUNS (default 3).
BUILD=${BUILD:-build}
MB=${MB:-50}
RUNS=${RUNS:-3}
D=${LVD_SHARED_DATA:-../shared/data}
BIN=$BUILD/bench/bench_tokenizer
CORPUS=bench/out/tokenizer_corpus.txt
[ -x "$BIN" ] || { echo "tokenizer: $BIN not built" >&2; exit 1; }
[ -f "$D/llama3/tokenizer.model" ] || { echo "tokenizer: SKIP (no $D/llama3/tokenizer.model)"; exit 0; }
mkdir -p bench/out
want=$((MB * 1048576))
if [ ! -f "$CORPUS" ] || [ "$(wc -c < "$CORPUS")" -lt "$want" ]; then
	"$BIN" gen "$CORPUS" "$MB" || exit 1
fi
ours=$("$BIN" run "$D/llama3/tokenizer.model" "$CORPUS" "$RUNS") || exit 1
echo "$ours" | tee -a bench/out/tokenizer.jsonl
if [ -n "$PY" ]; then
	peer=$(RAYON_NUM_THREADS=1 "$PY" bench/tokenizer_peer.py "$D/llama3/tokenizer.model" \
		"$D/llama3/special_tokens.json" "$CORPUS" "$RUNS") || exit 1
	echo "$peer" | tee -a bench/out/tokenizer.jsonl
	o=$(echo "$ours" | sed -E 's/.*"median_s": ([0-9.]+).*/\1/')
	p=$(echo "$peer" | sed -E 's/.*"median_s": ([0-9.]+).*/\1/')
	ot=$(echo "$ours" | sed -E 's/.*"tokens": ([0-9]+).*/\1/')
	pt=$(echo "$peer" | sed -E 's/.*"tokens": ([0-9]+).*/\1/')
	[ "$ot" = "$pt" ] || { echo "tokenizer: token counts differ (ours $ot, hf $pt)" >&2; exit 1; }
	awk -v o="$o" -v p="$p" -v n="$ot" -v mb="$MB" 'BEGIN {
		printf "tokenizer llama3 %d MB: ours %.3f s (%.2f Mtok/s), hf tokenizers %.3f s (%.2f Mtok/s), speed ratio %.2fx (goal >= 1.00)\n",
		       mb, o, n / o / 1e6, p, n / p / 1e6, p / o }'
else
	echo "tokenizer: SKIP peer (no PY; make ref-env)"
fi
ll=$("$BIN" longline "$D/llama3/tokenizer.model" 1 "$D/clip") || exit 1
echo "$ll" | tee -a bench/out/tokenizer.jsonl
echo "$ll" | awk '{ match($0, /"llama_s": [0-9.]+/); l = substr($0, RSTART + 11, RLENGTH - 11);
	match($0, /"clip_s": [0-9.]+/); c = substr($0, RSTART + 10, RLENGTH - 10);
	printf "tokenizer 1 MB single-character line: llama3 %.3f s, clip %.3f s (goal < 1 s)\n", l, c }'
