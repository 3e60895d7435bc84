# lvd-sft init: --help, usage errors (exit 2), bad input (exit 1, nothing left behind), the
# same seed giving a byte-identical folder and another seed or --gate a different one.
# That the folder loads, packs and trains (with a first-step CE near ln(vocabulary)) is
# checked by tests/e2e/test_demo.sh, which builds its model with lvd-sft init.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
tok=${LVD_SHARED_DATA:-${LVD_SRCDIR:-.}/../shared/data}
if [ ! -f "$tok/llama3/tokenizer.model" ]; then
	skip "needs the shared data folder (LVD_SHARED_DATA: llama3/tokenizer.model)"
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
grep -q '"vocab_size": 128256' "$T_TMP/m1/config.json" && pass || fail "tiny: the Llama-3 vocabulary"
grep -q '"height": 64' "$T_TMP/m1/preprocessor_config.json" && pass || fail "preprocessor: the tile size"
grep -q '128009' "$T_TMP/m1/generation_config.json" && pass || fail "generation_config: eos ids"
expect_exit 1 "existing --out refused" "$bin" init --config tiny --out "$T_TMP/m1"
rm -rf "$T_TMP/m1"
# determinism and the effect of --seed and --gate on a small config (the golden tiny
# mllama's: a 256-token vocabulary keeps the files small)
cfg=${LVD_SRCDIR:-.}/tests/golden/mllama/model/config.json
ok "init small" "$bin" init --config "$cfg" --out "$T_TMP/s1" --seed 5 --tokenizer "$tok/llama3" --gate 1
ok "init small again" "$bin" init --config "$T_TMP/s1/config.json" --out "$T_TMP/s2" --seed 5 --tokenizer "$tok/llama3" \
	--gate 1
ok "same seed: byte-identical folder" diff -r "$T_TMP/s1" "$T_TMP/s2"
ok "config copied" cmp "$cfg" "$T_TMP/s1/config.json"
ok "other seed" "$bin" init --config "$cfg" --out "$T_TMP/s3" --seed 6 --gate 1
expect_exit 1 "other seed: other weights" cmp -s "$T_TMP/s1/model.safetensors" "$T_TMP/s3/model.safetensors"
ok "gate 0" "$bin" init --config "$cfg" --out "$T_TMP/s4" --seed 5
expect_exit 1 "--gate changes the weights" cmp -s "$T_TMP/s1/model.safetensors" "$T_TMP/s4/model.safetensors"
# only the gates differ: same size, and the files differ in a few bytes only
[ "$(wc -c <"$T_TMP/s1/model.safetensors")" -eq "$(wc -c <"$T_TMP/s4/model.safetensors")" ] &&
	[ "$(cmp -l "$T_TMP/s1/model.safetensors" "$T_TMP/s4/model.safetensors" | wc -l)" -le 64 ] && pass ||
	fail "--gate changes only the gates"
finish
