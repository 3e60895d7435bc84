# lvd-sft init: --help, usage errors (exit 2), bad input (exit 1, nothing left behind), the
# same seed giving a byte-identical folder and another seed or --gate a different one, and
# the folder loading and training: a 2-image shapes world -> sd-attnmap import -> lvd-pack
# -> one lvd-sft step with a finite CE near ln(vocabulary) (random init: almost uniform).
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
tok=${LVD_SHARED_DATA:-${LVD_SRCDIR:-.}/../shared/data}
if [ ! -f "$tok/llama3/tokenizer.model" ] || [ ! -f "$tok/clip/vocab.json" ]; then
	skip "needs the shared data folder (LVD_SHARED_DATA: llama3/tokenizer.model, clip/vocab.json)"
	finish
	exit
fi

expect_exit 0 "--help" "$bin" init --help
for o in --config --out --seed --tokenizer --gate tiny; do
	expect_stdout "$o" "--help lists $o" "$bin" init --help
done
expect_stdout "init" "top-level --help lists init" "$bin" --help
expect_exit 2 "no --config" "$bin" init --out "$T_TMP/x"
expect_exit 2 "no --out" "$bin" init --config tiny
expect_exit 2 "bad --gate" "$bin" init --config tiny --out "$T_TMP/x" --gate abc
expect_exit 2 "bad --seed" "$bin" init --config tiny --out "$T_TMP/x" --seed -1
expect_exit 1 "unknown preset" "$bin" init --config huge --out "$T_TMP/x"
expect_stderr "neither a file nor a preset" "unknown preset message" "$bin" init --config huge --out "$T_TMP/x"
printf '{"model_type": "mllama"}\n' >"$T_TMP/bad.json"
expect_exit 1 "config without sub-configs" "$bin" init --config "$T_TMP/bad.json" --out "$T_TMP/x"
expect_stderr "bad.json" "config error names the file" "$bin" init --config "$T_TMP/bad.json" --out "$T_TMP/x"
expect_exit 1 "tokenizer folder without a tokenizer" "$bin" init --config tiny --out "$T_TMP/x" --tokenizer "$T_TMP"
expect_stderr "no tokenizer.json or tokenizer.model" "tokenizer message" "$bin" init --config tiny --out "$T_TMP/x" \
	--tokenizer "$T_TMP"
[ ! -e "$T_TMP/x" ] && [ ! -e "$T_TMP/x.tmp" ] && pass || fail "bad input leaves no folder"

ok "init tiny" "$bin" init --config tiny --out "$T_TMP/m1" --seed 5 --tokenizer "$tok/llama3" --gate 1
for f in config.json model.safetensors preprocessor_config.json generation_config.json tokenizer.model \
	chat_template.jinja; do
	[ -s "$T_TMP/m1/$f" ] && pass || fail "init wrote $f"
done
expect_exit 1 "existing --out refused" "$bin" init --config tiny --out "$T_TMP/m1"
ok "init again" "$bin" init --config "$T_TMP/m1/config.json" --out "$T_TMP/m2" --seed 5 --tokenizer "$tok/llama3" \
	--gate 1
ok "same seed: byte-identical folder" diff -r "$T_TMP/m1" "$T_TMP/m2"
ok "other seed" "$bin" init --config tiny --out "$T_TMP/m3" --seed 6 --gate 1
expect_exit 1 "other seed: other weights" cmp -s "$T_TMP/m1/model.safetensors" "$T_TMP/m3/model.safetensors"
rm -rf "$T_TMP/m2" "$T_TMP/m3"
ok "gate 0" "$bin" init --config tiny --out "$T_TMP/m4" --seed 5
expect_exit 1 "--gate changes the weights" cmp -s "$T_TMP/m1/model.safetensors" "$T_TMP/m4/model.safetensors"
rm -rf "$T_TMP/m4"

# loads and trains: one step on a pack of the shapes world (64-px tiles, as the preset)
w=$T_TMP/w
ok "shapes" "$BUILD/lvd-shapes" -q --out "$w" --n 2 --seed 3 --tile-size 64
ok "import" "$BUILD/sd-attnmap" import -q --manifest "$w/train.jsonl" --from "$w/attn-png" \
	--tokenizer "$tok/clip" --skip-unknown --out "$T_TMP/maps"
ok "pack" "$BUILD/lvd-pack" run -q --manifest "$w/train.jsonl" --images "$w" --maps "$T_TMP/maps" \
	--model "$T_TMP/m1" --match-in all --out "$T_TMP/pack"
ok "one training step" "$bin" run -q --model "$T_TMP/m1" --pack "$T_TMP/pack" --out "$T_TMP/r" --max-steps 1 \
	--threads 2
ce=$(sed -n 's/.*"ce":\([0-9.e+-]*\).*/\1/p' "$T_TMP/r/metrics.jsonl" 2>/dev/null)
awk -v c="${ce:-nan}" 'BEGIN { exit !(c > 10.8 && c < 12.8) }' && pass ||
	fail "CE of the random model $ce: not near ln(128256) = 11.76"
finish
