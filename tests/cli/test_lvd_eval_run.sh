# lvd-eval run as a user runs it, on the tiny random mllama with the small Llama-3
# tokenizer that build/tests/test_eval_run --model writes (plus the same LoRA as a PEFT
# adapter and as an lvd-sft checkpoint), with real questions and photos from
# ../shared/data/vqa (POPE and MMBench samples): --help, usage errors, bad bench lines
# named file:line, outputs that parse, tokens equal to lvd_mllama_gen run directly on
# the same prompt (test_eval_run --gen), batch 2 = batch 1, adapter = checkpoint,
# --limit, resume (skips done ids, redoes a cut-off line), changed options refused,
# scores.json = `lvd-eval score` of predictions.jsonl, the sampled preset, captions, and
# the checkpoint of an lvd-sft --full run as --adapter (= its exported hub folder).
. tests/cli/lib.inc
bin=$BUILD/lvd-eval
fx=$BUILD/tests/test_eval_run
expect_exit 0 "run --help" "$bin" run --help
expect_stdout "usage: lvd-eval run" "run --help usage" "$bin" run --help
for o in --model --adapter --bench --images --out --kind --max-new-tokens --batch --limit --threads --preset --seed \
	--prompt caption vlmevalkit letter; do
	expect_stdout "$o" "run --help lists $o" "$bin" run --help
done
expect_stdout "run" "--help lists run" "$bin" --help
expect_exit 2 "run without --model" "$bin" run --bench x --out y
expect_exit 2 "bad --preset" "$bin" run --model m --bench x --out y --preset beam
expect_exit 2 "bad --prompt" "$bin" run --model m --bench x --out y --prompt cot
expect_exit 2 "bad --kind" "$bin" run --model m --bench x --out y --kind essay
expect_exit 2 "--batch 0" "$bin" run --model m --bench x --out y --batch 0
expect_exit 2 "--seed without sampling" "$bin" run --model m --bench x --out y --seed 3
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
expect_exit 1 "missing bench" "$bin" run --model "$M" --bench "$T_TMP/nope.jsonl" --out "$T_TMP/x"
expect_stderr "nope.jsonl" "missing bench named" "$bin" run --model "$M" --bench "$T_TMP/nope.jsonl" --out "$T_TMP/x"
expect_exit 1 "model folder without config" "$bin" run --model "$T_TMP" --bench "$T_TMP/nope.jsonl" --out "$T_TMP/x"

# the bench: 4 POPE questions (short prompts) and 3 MMBench questions (long ones), so a
# batch mixes lengths (left padding) and kinds
ok "convert pope" "$bin" convert --from pope "$D/pope/coco_pope_random.subset.jsonl" --images "$(cd "$D" && pwd)/pope/images" \
	--image-ext png --out "$T_TMP/pope.jsonl"
jq -c 'select(.benchmark == "MMBench" and .language == "en") | {id: ("mmb-" + (.index | tostring)),
	dataset: "MMBench_sample_EN", kind: "mcq", image: ("'"$(cd "$D" && pwd)"'/mmbench/" + .image), question,
	choices: ({A, B, C, D} | with_entries(select(.value != null))), answer, index, category}
	+ (if .hint then {hint} else {} end)' "$D/mmbench/mmbench_samples.jsonl" | head -3 >"$T_TMP/mmb.jsonl"
{ head -4 "$T_TMP/pope.jsonl"; cat "$T_TMP/mmb.jsonl"; } >"$T_TMP/bench.jsonl"
[ "$(wc -l <"$T_TMP/bench.jsonl")" -eq 7 ] && pass || fail "bench of 7"
expect_stderr "is an adapter folder" "adapter given as --model" "$bin" run --model "$M/adapter" --bench "$T_TMP/bench.jsonl" --out "$T_TMP/x"
expect_stderr "neither a PEFT adapter" "--adapter not an adapter" "$bin" run --model "$M" --adapter "$T_TMP" --bench "$T_TMP/bench.jsonl" --out "$T_TMP/x"
[ ! -e "$T_TMP/x" ] && pass || fail "bad model input creates no output folder"

run() { "$bin" run --model "$M" --bench "$T_TMP/bench.jsonl" --threads 1 --max-new-tokens 10 "$@"; }
ok "run batch 1" run --out "$T_TMP/b1"
for f in predictions.jsonl scores.json run.json; do [ -s "$T_TMP/b1/$f" ] && pass || fail "b1/$f"; done
[ "$(jq -c . "$T_TMP/b1/predictions.jsonl" | wc -l)" -eq 7 ] && pass || fail "7 predictions that parse"
[ "$(jq -r '[.id, .prompt, .output, .parsed, (.correct | tostring), (.tokens | length), .stop] | length' \
	"$T_TMP/b1/predictions.jsonl" | sort -u)" = 7 ] && pass || fail "prediction fields"
jq -e '.benchmarks.POPE.kind == "yesno" and .benchmarks.MMBench_sample_EN.kind == "mcq"' "$T_TMP/b1/scores.json" \
	>/dev/null && pass || fail "scores.json benchmarks"
jq -e '.run.provenance.model.weights.sha256 and .run.provenance.model.config_json_sha256 and .run.options.preset == "greedy"
	and .run.tokens_generated > 0 and .run.adapter == null' "$T_TMP/b1/scores.json" >/dev/null && pass ||
	fail "scores.json provenance"
grep -q 'Please select the correct answer from the options above. ' "$T_TMP/b1/predictions.jsonl" && pass ||
	fail "mcq prompt is VLMEvalKit's dataset prompt"
# one scoring path: `score` on the predictions gives the same benchmarks
ok "score the predictions" "$bin" score "$T_TMP/b1/predictions.jsonl" --out "$T_TMP/s.json"
[ "$(jq -cS .benchmarks "$T_TMP/s.json")" = "$(jq -cS .benchmarks "$T_TMP/b1/scores.json")" ] && pass ||
	fail "run's scores = score's"
# every item's tokens equal lvd_mllama_gen_* run directly on its prompt and image
i=0
while [ $i -lt 7 ]; do
	i=$((i + 1))
	line=$(sed -n "${i}p" "$T_TMP/b1/predictions.jsonl")
	want=$("$fx" --gen "$M" - "$(printf '%s\n' "$line" | jq -r .image)" 10 "$(printf '%s\n' "$line" | jq -c .prompt)")
	got=$(printf '%s\n' "$line" | jq -r '.tokens | map(tostring) | join(" ")')
	[ -n "$want" ] && [ "$got" = "$want" ] && pass || fail "item $i: tokens $got, direct generation $want"
done
ok "run batch 3" run --out "$T_TMP/b3" --batch 3
[ "$(jq -c '[.id, .tokens, .output]' "$T_TMP/b3/predictions.jsonl")" = "$(jq -c '[.id, .tokens, .output]' "$T_TMP/b1/predictions.jsonl")" ] &&
	pass || fail "batch 3 = batch 1 token for token"
ok "run --limit 3" run --out "$T_TMP/l3" --limit 3 --batch 2
[ "$(wc -l <"$T_TMP/l3/predictions.jsonl")" -eq 3 ] && pass || fail "--limit 3 gives 3 lines"

# adapters: PEFT folder and lvd-sft checkpoint of the same LoRA agree, and match --gen
ok "run --adapter peft" run --out "$T_TMP/pa" --adapter "$M/adapter" --batch 2
ok "run --adapter ckpt" run --out "$T_TMP/ca" --adapter "$M/ckpt"
[ "$(jq -c .tokens "$T_TMP/pa/predictions.jsonl")" = "$(jq -c .tokens "$T_TMP/ca/predictions.jsonl")" ] && pass ||
	fail "PEFT adapter = lvd-sft checkpoint"
[ "$(jq -c .tokens "$T_TMP/pa/predictions.jsonl")" != "$(jq -c .tokens "$T_TMP/b1/predictions.jsonl")" ] && pass ||
	fail "the adapter changes the outputs"
line=$(sed -n 5p "$T_TMP/pa/predictions.jsonl")
[ "$("$fx" --gen "$M" "$M/adapter" "$(printf '%s\n' "$line" | jq -r .image)" 10 "$(printf '%s\n' "$line" | jq -c .prompt)")" = \
	"$(printf '%s\n' "$line" | jq -r '.tokens | map(tostring) | join(" ")')" ] && pass || fail "adapter item = direct generation"
jq -e '.run.provenance.adapter.kind == "lvd-sft checkpoint" and .run.provenance.adapter.step == 6' "$T_TMP/ca/scores.json" \
	>/dev/null && pass || fail "checkpoint provenance"
# the checkpoint of a --full run (text and cross layers, two steps on a fixture pack of this
# model's geometry): the trained tensors over the base equal the run's exported hub folder
sft=$BUILD/lvd-sft
if [ -x "$sft" ] && [ -x "$BUILD/tests/test_sft" ]; then
	geo=$(jq -r '"\(.vision_config.image_size) \(.vision_config.patch_size) \(.vision_config.max_num_tiles) \(.image_token_index)"' \
		"$M/config.json")
	ok "sft fixture pack" "$BUILD/tests/test_sft" --pack "$T_TMP/spack" "$M" 2 $geo
	ok "sft --full text,cross" "$sft" run --model "$M" --pack "$T_TMP/spack" --out "$T_TMP/sf" --threads 1 -q \
		--max-steps 2 --lr 1e-3 --full --train text,cross
	ok "run --adapter a --full checkpoint" run --out "$T_TMP/fc" --adapter "$T_TMP/sf/ckpt-000002"
	ok "run its export as --model" "$bin" run --model "$T_TMP/sf/final" --bench "$T_TMP/bench.jsonl" --threads 1 \
		--max-new-tokens 10 --out "$T_TMP/fe"
	[ "$(jq -c .tokens "$T_TMP/fc/predictions.jsonl")" = "$(jq -c .tokens "$T_TMP/fe/predictions.jsonl")" ] && pass ||
		fail "--full checkpoint = its export"
	[ "$(jq -c .tokens "$T_TMP/fc/predictions.jsonl")" != "$(jq -c .tokens "$T_TMP/b1/predictions.jsonl")" ] && pass ||
		fail "the --full checkpoint changes the outputs"
else
	skip "--full checkpoint: needs $sft and build/tests/test_sft"
fi

# resume: 3 done, the rest added; a cut-off last line is redone; same result as one go
ok "resume: first 3" run --out "$T_TMP/r" --limit 3
ok "resume: all" run --out "$T_TMP/r" --batch 2
grep -q "3 predictions there, 4 to go" "$T_TMP/err" && pass || fail "resume skips the 3 done"
[ "$(jq -c '[.id, .tokens]' "$T_TMP/r/predictions.jsonl")" = "$(jq -c '[.id, .tokens]' "$T_TMP/b1/predictions.jsonl")" ] &&
	pass || fail "resumed predictions = one go"
sz=$(wc -c <"$T_TMP/r/predictions.jsonl")
truncate -s $((sz - 20)) "$T_TMP/r/predictions.jsonl"
ok "resume after a cut-off line" run --out "$T_TMP/r"
grep -q "cut-off last line" "$T_TMP/err" && pass || fail "cut-off line reported"
[ "$(jq -c '[.id, .tokens]' "$T_TMP/r/predictions.jsonl")" = "$(jq -c '[.id, .tokens]' "$T_TMP/b1/predictions.jsonl")" ] &&
	pass || fail "cut-off item redone"
[ "$(jq -cS .benchmarks "$T_TMP/r/scores.json")" = "$(jq -cS .benchmarks "$T_TMP/b1/scores.json")" ] && pass ||
	fail "resumed scores = one go"
expect_exit 1 "changed option refused" run --out "$T_TMP/r" --max-new-tokens 11
expect_stderr "option 'max_new_tokens' was 10, now 11" "changed option named" run --out "$T_TMP/r" --max-new-tokens 11
expect_stderr "option 'adapter'" "changed adapter named" run --out "$T_TMP/r" --adapter "$M/adapter"

# bad bench lines: file:line and field
{ head -2 "$T_TMP/bench.jsonl"; sed -n 5p "$T_TMP/bench.jsonl" | jq -c '.answer = "E"'; } >"$T_TMP/bad.jsonl"
expect_exit 1 "bad bench line" "$bin" run --model "$M" --bench "$T_TMP/bad.jsonl" --out "$T_TMP/bad"
expect_stderr "bad.jsonl:3: field 'answer'" "bad line named" "$bin" run --model "$M" --bench "$T_TMP/bad.jsonl" --out "$T_TMP/bad"
{ head -1 "$T_TMP/bench.jsonl"; echo '{"id": "x", "kind": "yesno"'; } >"$T_TMP/bad2.jsonl"
expect_stderr "bad2.jsonl:2:" "broken JSON line named" "$bin" run --model "$M" --bench "$T_TMP/bad2.jsonl" --out "$T_TMP/bad"
head -1 "$T_TMP/bench.jsonl" | jq -c '.image = "missing.png"' >"$T_TMP/bad3.jsonl"
expect_stderr "bad3.jsonl:1: field 'image'" "missing image named" "$bin" run --model "$M" --bench "$T_TMP/bad3.jsonl" --out "$T_TMP/bad3"
{ head -1 "$T_TMP/bench.jsonl"; head -1 "$T_TMP/bench.jsonl"; } >"$T_TMP/dup.jsonl"
expect_stderr "dup.jsonl:2: id 'random-127' repeats line 1" "repeated id" "$bin" run --model "$M" --bench "$T_TMP/dup.jsonl" --out "$T_TMP/bad"

# sampled preset: reproducible from the seed whatever the batch; the seed matters
ok "vlmevalkit seed 1" run --out "$T_TMP/v1" --preset vlmevalkit --seed 1
ok "vlmevalkit seed 1 batch 4" run --out "$T_TMP/v1b" --preset vlmevalkit --seed 1 --batch 4
ok "vlmevalkit seed 2" run --out "$T_TMP/v2" --preset vlmevalkit --seed 2
[ "$(jq -c .tokens "$T_TMP/v1/predictions.jsonl")" = "$(jq -c .tokens "$T_TMP/v1b/predictions.jsonl")" ] && pass ||
	fail "sampling independent of the batch"
[ "$(jq -c .tokens "$T_TMP/v1/predictions.jsonl")" != "$(jq -c .tokens "$T_TMP/v2/predictions.jsonl")" ] && pass ||
	fail "another seed samples other tokens"
jq -e '.run.options.temperature == 0.6 and .run.options.top_p == 0.9 and .run.options.bos == "two"' "$T_TMP/v1/scores.json" \
	>/dev/null && pass || fail "preset recorded"
[ "$(jq -c '.tokens | length' "$T_TMP/v1/predictions.jsonl" | sort -u)" != "" ] && pass || fail "sampled tokens"

# a stop id the tiny model emits (the second token of the first POPE item): generation
# stops there, the stop token is kept in the tokens and its text in the output (only
# <|eot_id|> is removed, as VLMEvalKit's wrapper does)
stop=$(head -1 "$T_TMP/b1/predictions.jsonl" | jq -r '.tokens[1]')
mkdir -p "$T_TMP/m2"
for f in config.json model.safetensors tokenizer.json; do ln -s "$M/$f" "$T_TMP/m2/$f"; done
jq -c ".eos_token_id += [$stop]" "$M/generation_config.json" >"$T_TMP/m2/generation_config.json"
ok "run with an extra stop id" "$bin" run --model "$T_TMP/m2" --bench "$T_TMP/bench.jsonl" --threads 1 --max-new-tokens 10 \
	--out "$T_TMP/st" --limit 1
[ "$(jq -c '[.tokens, .stop]' "$T_TMP/st/predictions.jsonl")" = "$(head -1 "$T_TMP/b1/predictions.jsonl" | jq -c '[.tokens[0:2], "eos"]')" ] &&
	pass || fail "stops on the eos list"
jq -e ".run.options.eos[3] == $stop" "$T_TMP/st/scores.json" >/dev/null && pass || fail "eos list recorded"

# --prompt letter and --kind caption
ok "--prompt letter" run --out "$T_TMP/pl" --prompt letter --limit 5
grep -q "Answer with the option's letter from the given choices directly." "$T_TMP/pl/predictions.jsonl" && pass ||
	fail "letter prompt"
ok "--kind caption" run --out "$T_TMP/cap" --kind caption --limit 2
jq -e '.captions_unscored == 2' "$T_TMP/cap/scores.json" >/dev/null && pass || fail "captions unscored"
[ "$(jq -r .kind "$T_TMP/cap/predictions.jsonl" | sort -u)" = caption ] && pass || fail "caption kind recorded"
finish
