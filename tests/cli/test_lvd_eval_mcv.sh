# lvd-eval run on a MiniCPM-Llama3-V-2.5 model, as a user runs it: the tiny random MiniCPM
# with the small Llama-3 tokenizer + MiniCPM tokens that build/tests/test_eval_mcv --model
# writes (plus a PEFT adapter with LoRA and a changed resampler), real POPE questions and
# photos from ../shared/data/vqa: the model type read from config.json, predictions
# deterministic (two runs equal), tokens equal to lvd_minicpmv_gen run directly on the same
# prompt (test_eval_mcv --gen), batch 2 = batch 1, scores.json = `lvd-eval score`, the
# adapter, lvd-sft checkpoints as adapters (LoRA + resampler, --full: equal to the run's
# exports), and errors named: an unknown model_type, a tokenizer without the MiniCPM
# tokens, the sampled preset, another model type's checkpoint, a damaged one; and
# `lvd-eval align` on a MiniCPM pack against the training step's own maps.
. tests/cli/lib.inc
bin=$BUILD/lvd-eval
fx=$BUILD/tests/test_eval_mcv
D=${LVD_SRCDIR:-.}/../shared/data/vqa
if [ ! -x "$fx" ] || ! command -v jq >/dev/null 2>&1; then
	skip "needs $fx and jq"
	finish
	exit $?
fi
if [ ! -d "$D" ]; then
	skip "../shared/data absent"
	finish
	exit $?
fi
M=$T_TMP/m
ok "fixture model" "$fx" --model "$M"
ok "convert pope" "$bin" convert --from pope "$D/pope/coco_pope_random.subset.jsonl" --images "$(cd "$D" && pwd)/pope/images" \
	--image-ext png --out "$T_TMP/pope.jsonl"
head -2 "$T_TMP/pope.jsonl" >"$T_TMP/bench.jsonl"
run() { "$bin" run --model "$M" --bench "$T_TMP/bench.jsonl" --threads 1 --max-new-tokens 6 "$@"; }
ok "run batch 1" run --out "$T_TMP/b1"
for f in predictions.jsonl scores.json run.json; do [ -s "$T_TMP/b1/$f" ] && pass || fail "b1/$f"; done
[ "$(jq -c . "$T_TMP/b1/predictions.jsonl" | wc -l)" -eq 2 ] && pass || fail "2 predictions that parse"
jq -e '.run.provenance.model.model_type == "minicpmv" and .benchmarks.POPE.kind == "yesno" and .run.tokens_generated > 0' \
	"$T_TMP/b1/scores.json" >/dev/null && pass || fail "scores.json: model type, benchmark, tokens"
jq -e '.options.eos == [4001, 4009] and .options.pad == 0' "$T_TMP/b1/run.json" >/dev/null && pass ||
	fail "stops: generation_config's eos + <|eot_id|>, pad 0 (the hub's terminators)"
ok "score the predictions" "$bin" score "$T_TMP/b1/predictions.jsonl" --out "$T_TMP/s.json"
[ "$(jq -cS .benchmarks "$T_TMP/s.json")" = "$(jq -cS .benchmarks "$T_TMP/b1/scores.json")" ] && pass ||
	fail "run's scores = score's"
ok "run again" run --out "$T_TMP/b1b"
[ "$(jq -c '[.id, .tokens, .output, .parsed, .correct]' "$T_TMP/b1/predictions.jsonl")" = \
	"$(jq -c '[.id, .tokens, .output, .parsed, .correct]' "$T_TMP/b1b/predictions.jsonl")" ] && pass ||
	fail "predictions deterministic"
# every item's tokens equal lvd_minicpmv_gen_* run directly on its prompt and image
for i in 1 2; do
	line=$(sed -n "${i}p" "$T_TMP/b1/predictions.jsonl")
	want=$("$fx" --gen "$M" - "$(printf '%s\n' "$line" | jq -r .image)" 6 "$(printf '%s\n' "$line" | jq -c .prompt)")
	got=$(printf '%s\n' "$line" | jq -r '.tokens | map(tostring) | join(" ")')
	[ -n "$want" ] && [ "$got" = "$want" ] && pass || fail "item $i: tokens $got, direct generation $want"
done
ok "run batch 2" run --out "$T_TMP/b2" --batch 2
[ "$(jq -c '[.id, .tokens, .output]' "$T_TMP/b2/predictions.jsonl")" = "$(jq -c '[.id, .tokens, .output]' "$T_TMP/b1/predictions.jsonl")" ] &&
	pass || fail "batch 2 = batch 1 token for token"
# the PEFT adapter (LoRA + resampler copy)
ok "run --adapter" run --out "$T_TMP/pa" --adapter "$M/adapter"
[ "$(jq -c .tokens "$T_TMP/pa/predictions.jsonl")" != "$(jq -c .tokens "$T_TMP/b1/predictions.jsonl")" ] && pass ||
	fail "the adapter changes the outputs"
line=$(sed -n 1p "$T_TMP/pa/predictions.jsonl")
[ "$("$fx" --gen "$M" "$M/adapter" "$(printf '%s\n' "$line" | jq -r .image)" 6 "$(printf '%s\n' "$line" | jq -c .prompt)")" = \
	"$(printf '%s\n' "$line" | jq -r '.tokens | map(tostring) | join(" ")')" ] && pass || fail "adapter item = direct generation"
jq -e '.run.provenance.adapter.kind == "peft" and .run.provenance.adapter.adapter_model_safetensors_sha256' \
	"$T_TMP/pa/scores.json" >/dev/null && pass || fail "adapter provenance"
# errors, named
expect_exit 1 "sampled preset refused" run --out "$T_TMP/x" --preset vlmevalkit
expect_stderr "a MiniCPM model runs --preset greedy" "sampled preset: the reason" run --out "$T_TMP/x" --preset vlmevalkit
mkdir -p "$T_TMP/ck" && echo '{"step": 3}' >"$T_TMP/ck/state.json"
expect_stderr "a checkpoint of a mllama run, --model is minicpmv" "another model type's checkpoint refused" \
	run --out "$T_TMP/x" --adapter "$T_TMP/ck"
[ ! -e "$T_TMP/x" ] && pass || fail "refused runs create no output folder"
# lvd-sft checkpoints of MiniCPM runs as --adapter: LoRA + the resampler (PEFT
# modules_to_save) and --full of resampler,llm, two steps each on a pack of this model
# (test_sft --pack-mcv); the checkpoint's predictions equal the run's own export's
# (final/: the PEFT folder, or the hub folder given as --model) and differ from the base's
sft=$BUILD/lvd-sft
if [ -x "$sft" ] && [ -x "$BUILD/tests/test_sft" ]; then
	ok "sft fixture pack" "$BUILD/tests/test_sft" --pack-mcv "$T_TMP/spack" "$M" 2
	ok "sft: LoRA + resampler" "$sft" run --model "$M" --pack "$T_TMP/spack" --out "$T_TMP/sr" --threads 1 -q \
		--max-steps 2 --lr 1e-2 --train resampler
	ok "sft: --full resampler,llm" "$sft" run --model "$M" --pack "$T_TMP/spack" --out "$T_TMP/sf" --threads 1 -q \
		--max-steps 2 --lr 1e-3 --full --train resampler,llm
	ok "run --adapter ckpt (LoRA + resampler)" run --out "$T_TMP/c1" --adapter "$T_TMP/sr/ckpt-000002"
	ok "run --adapter its export" run --out "$T_TMP/c2" --adapter "$T_TMP/sr/final"
	ok "run --adapter ckpt (--full)" run --out "$T_TMP/c3" --adapter "$T_TMP/sf/ckpt-000002"
	ok "run the --full export" "$bin" run --model "$T_TMP/sf/final" --bench "$T_TMP/bench.jsonl" --threads 1 \
		--max-new-tokens 6 --out "$T_TMP/c4"
	tk() { jq -c .tokens "$1/predictions.jsonl" | paste -sd' ' -; }
	[ "$(tk "$T_TMP/c1")" = "$(tk "$T_TMP/c2")" ] && pass || fail "LoRA + resampler: checkpoint = export"
	[ "$(tk "$T_TMP/c3")" = "$(tk "$T_TMP/c4")" ] && pass || fail "--full: checkpoint = export"
	[ "$(tk "$T_TMP/c1")" != "$(tk "$T_TMP/b1")" ] && [ "$(tk "$T_TMP/c3")" != "$(tk "$T_TMP/b1")" ] && pass ||
		fail "the checkpoints change the outputs"
	jq -e '.run.provenance.adapter.kind == "lvd-sft checkpoint" and .run.provenance.adapter.step == 2' \
		"$T_TMP/c1/scores.json" >/dev/null && pass || fail "checkpoint provenance (kind, step)"
	mkdir -p "$T_TMP/ck2" && cp "$T_TMP/sr/ckpt-000002/state.json" "$T_TMP/ck2/" &&
		printf 'not safetensors' >"$T_TMP/ck2/state.safetensors"
	expect_exit 1 "a damaged checkpoint" run --out "$T_TMP/x" --adapter "$T_TMP/ck2"
	grep -q "ck2" "$T_TMP/err" && pass || fail "the damaged checkpoint named"
else
	skip "lvd-sft checkpoints: needs $sft and build/tests/test_sft"
fi
# align on a MiniCPM pack (records by lvd_packrec_encode: 3 real photos, 2 words each but
# the last): every (word, view) equals the training step's traces (test_eval_mcv --lstep:
# lvd_lstep_mcv_run with its own capture rows), raw mean map and Aligner mse, both maps
ok "fixture pack" "$fx" --pack "$M" "$T_TMP/pack"
for mp in rollout official; do
	ok "align --minicpm-map $mp" "$bin" align --model "$M" --adapter "$M/adapter" --pack "$T_TMP/pack" \
		--out "$T_TMP/al-$mp" --threads 1 --minicpm-map "$mp" --viz 1
	jq -r '[.id, .word, (.view // "-"), .raw_mean.mse, .aligner.mse] | map(tostring) | join(" ")' \
		"$T_TMP/al-$mp/align.jsonl" >"$T_TMP/al-$mp.txt"
	"$fx" --lstep "$M" "$M/adapter" "$T_TMP/pack" "$mp" >"$T_TMP/ls-$mp.txt"
	n=$(wc -l <"$T_TMP/ls-$mp.txt")
	[ "$n" -eq "$(wc -l <"$T_TMP/al-$mp.txt")" ] && [ "$n" -eq "$([ $mp = rollout ] && echo 8 || echo 4)" ] && pass ||
		fail "$mp: $n entries"
	paste -d' ' "$T_TMP/al-$mp.txt" "$T_TMP/ls-$mp.txt" | awk '
		function rel(a, b) { d = a - b; if (d < 0) d = -d; s = (a < 0 ? -a : a) + 1e-12; return d / s }
		$1 != $6 || $2 != $7 || $3 != $8 || rel($4, $9) > 1e-6 || rel($5, $10) > 1e-6 { bad++; print > "/dev/stderr" }
		END { exit bad > 0 }' && pass || fail "$mp: align = the training step's maps"
	jq -e --arg m "$mp" '.options.minicpm_map == $m and .counts.samples == 3 and .counts.samples_without_words == 1' \
		"$T_TMP/al-$mp/scores.json" >/dev/null && pass || fail "$mp: scores.json options and counts"
done
[ -s "$T_TMP/al-rollout/viz/s0.png" ] && pass || fail "viz strip"
grep -q '"view":"slices"' "$T_TMP/al-rollout/align.jsonl" && pass || fail "rollout entries name their view"
ok "align with a baseline" "$bin" align --model "$M" --adapter "$M/adapter" --baseline "$M" --pack "$T_TMP/pack" \
	--out "$T_TMP/al-b" --threads 1 --limit 1
jq -e 'select(.baseline.raw_mean.mse != null)' "$T_TMP/al-b/align.jsonl" >/dev/null && pass || fail "baseline entries"
expect_exit 2 "bad --minicpm-map" "$bin" align --model "$M" --pack "$T_TMP/pack" --out "$T_TMP/x" --minicpm-map grid
# a pack made for another model (the mllama fixture of test_eval_run) is refused, named
if [ -x "$BUILD/tests/test_eval_run" ] && "$BUILD/tests/test_eval_run" --model "$T_TMP/ml" >/dev/null 2>&1; then
	expect_stderr "a MiniCPM-V (minicpmv) pack" "MiniCPM pack, mllama model" "$bin" align --model "$T_TMP/ml" \
		--pack "$T_TMP/pack" --out "$T_TMP/x"
else
	skip "mllama fixture (build/tests/test_eval_run)"
fi
cp -r "$M" "$T_TMP/other"
jq '.model_type = "qwen2_vl"' "$M/config.json" >"$T_TMP/other/config.json"
expect_stderr "config.json: model_type 'qwen2_vl'" "unknown model type named" "$bin" run --model "$T_TMP/other" \
	--bench "$T_TMP/bench.jsonl" --out "$T_TMP/x"
cp "$M/config.json" "$T_TMP/other/config.json"
jq '(.added_tokens[] | select(.id == 4011) | .content) = "<|reserved_special_token_9|>"' "$M/tokenizer.json" \
	>"$T_TMP/other/tokenizer.json"
expect_exit 1 "tokenizer without <image> refused" "$bin" run --model "$T_TMP/other" --bench "$T_TMP/bench.jsonl" --out "$T_TMP/x"
expect_stderr "tokenizer has no <image>" "missing token named" "$bin" run --model "$T_TMP/other" --bench "$T_TMP/bench.jsonl" \
	--out "$T_TMP/x"
finish
