# lvd-sft --word-keys argmax (the official word keys: a word's rows are those whose
# predicted token, decoded alone and stripped, equals it) as a user runs it, on the golden
# tiny mllama with the real Llama-3 tokenizer beside it: bad value (exit 2), a model folder
# without a tokenizer (exit 1, nothing created), a run recording the option in run.json
# and the pairs it matched in metrics.jsonl, and resume refusing a changed --word-keys.
# The numerics are tests/unit/test_lavender_step.c (test_step_keys, test_key_table).
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi
run() { "$bin" run --threads 1 -q "$@"; }

expect_stdout "--word-keys" "--help lists --word-keys" "$bin" run --help
expect_exit 2 "bad --word-keys" run --model "$model" --pack x --out "$T_TMP/r" --word-keys first
ok "fixture pack" "$fx" --pack "$T_TMP/p0" "$model" 4
expect_exit 1 "no tokenizer" run --model "$model" --pack "$T_TMP/p0" --out "$T_TMP/r" --word-keys argmax
expect_stderr "needs the model's tokenizer" "no tokenizer message" run --model "$model" --pack "$T_TMP/p0" \
	--out "$T_TMP/r" --word-keys argmax
[ ! -e "$T_TMP/r" ] && pass || fail "a missing tokenizer must not create the run folder"

sd=${LVD_SHARED_DATA:-../shared/data}
if [ ! -f "$sd/llama3/tokenizer.model" ]; then
	skip "../shared/data/llama3/tokenizer.model absent"
	finish
	exit
fi
mkdir -p "$T_TMP/m"
cp "$model"/* "$T_TMP/m/" && cp "$sd/llama3/tokenizer.model" "$T_TMP/m/"
ok "fixture pack for the folder with the tokenizer" "$fx" --pack "$T_TMP/pack" "$T_TMP/m" 4
ok "argmax keys run" run --model "$T_TMP/m" --pack "$T_TMP/pack" --out "$T_TMP/k" --max-steps 2 --batch 2 \
	--grad-accum 2 --save-every 1 --word-keys argmax
grep -q '"word_keys": *"argmax"' "$T_TMP/k/run.json" && pass || fail "run.json records word_keys argmax"
[ "$(grep -c '"pairs":' "$T_TMP/k/metrics.jsonl")" -eq 2 ] && pass || fail "metrics.jsonl: 2 lines with pairs"
[ -s "$T_TMP/k/final/adapter_model.safetensors" ] && pass || fail "argmax run exported the adapter"
expect_exit 2 "resume with --word-keys pack refused" run --model "$T_TMP/m" --pack "$T_TMP/pack" --out "$T_TMP/k" \
	--max-steps 2 --batch 2 --grad-accum 2 --save-every 1
expect_stderr "word_keys" "the refusal names word_keys" run --model "$T_TMP/m" --pack "$T_TMP/pack" \
	--out "$T_TMP/k" --max-steps 2 --batch 2 --grad-accum 2 --save-every 1
finish
