# lvd-eval align as a user runs it, on the golden tiny mllama and a pack of real photos
# (../shared/data/images) written by build/tests/test_align --pack: --help, usage errors
# (exit 2), bad input (exit 1, nothing created), a run with a PEFT adapter + Aligner made
# by lvd-sft, a baseline, --viz and --dump-maps: outputs parse, counts equal the pack's
# matched words, PNG strips decode with the documented size; the Aligner MSE equals
# lvd-sft's L_att on the same weights; a zero LoRA leaves the raw maps as the baseline's.
. tests/cli/lib.inc
bin=$BUILD/lvd-eval
fx=$BUILD/tests/test_align
sft=$BUILD/lvd-sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
SHARED=${LVD_SHARED_DATA:-../shared/data}
if [ ! -x "$fx" ] || [ ! -x "$sft" ]; then skip "needs $fx and $sft"; finish; exit; fi
if [ ! -f "$SHARED/images/skimage_chelsea.png" ]; then skip "$SHARED/images not found (set LVD_SHARED_DATA)"; finish; exit; fi

expect_exit 0 "--help" "$bin" align --help
expect_stdout "usage: lvd-eval align" "--help usage line" "$bin" align --help
for o in --model --adapter --aligner --pack --out --baseline --baseline-adapter --viz --limit --layers --aggregate \
	--batch --threads --dump-maps; do
	expect_stdout "$o" "--help lists $o" "$bin" align --help
done
expect_stdout "align" "top-level --help lists align" "$bin" --help
expect_exit 2 "no --model" "$bin" align --pack x --out "$T_TMP/o"
expect_stderr "--out DIR is required" "no --out message" "$bin" align --model "$model" --pack x
expect_exit 2 "--baseline-adapter alone" "$bin" align --model "$model" --pack x --out "$T_TMP/o" --baseline-adapter y
expect_exit 2 "bad --aggregate" "$bin" align --model "$model" --pack x --out "$T_TMP/o" --aggregate sum
expect_exit 2 "bad --viz" "$bin" align --model "$model" --pack x --out "$T_TMP/o" --viz -1

n_words=$("$fx" --pack "$T_TMP/pack" "$model" "$SHARED/images" 6 2>"$T_TMP/err")
[ -n "$n_words" ] && [ "$n_words" -gt 6 ] && pass || fail "fixture pack (words: '$n_words')"
expect_exit 1 "missing pack" "$bin" align --model "$model" --pack "$T_TMP/nope" --out "$T_TMP/o"
expect_stderr "nope/pack.json" "missing pack names the file" "$bin" align --model "$model" --pack "$T_TMP/nope" --out "$T_TMP/o"
expect_stderr "adapter_config.json" "missing adapter names the file" "$bin" align --model "$model" --adapter "$T_TMP" \
	--pack "$T_TMP/pack" --out "$T_TMP/o"
expect_stderr "--layers" "a cross layer out of range" "$bin" align --model "$model" --layers 1 --pack "$T_TMP/pack" \
	--out "$T_TMP/o"
[ ! -e "$T_TMP/o" ] && pass || fail "bad input must not create the output folder"

# an adapter + Aligner trained for 3 steps, and one with lr 0 (LoRA B = 0) whose single
# step of batch 6 reports L_att over the whole pack at exactly the exported weights
ok "lvd-sft run" "$sft" run --model "$model" --pack "$T_TMP/pack" --out "$T_TMP/r" --max-steps 3 --batch 2 --lr 1e-2 \
	--threads 1 -q
ok "lvd-sft run lr 0" "$sft" run --model "$model" --pack "$T_TMP/pack" --out "$T_TMP/r0" --max-steps 1 --batch 6 \
	--lr 0 --threads 1 -q

ok "align with adapter, baseline, viz, dump" "$bin" align --model "$model" --adapter "$T_TMP/r/final" \
	--baseline "$model" --pack "$T_TMP/pack" --out "$T_TMP/e" --viz 2 --dump-maps "$T_TMP/d.safetensors" --threads 1 -q
cp "$T_TMP/out" "$T_TMP/table"
grep -q "baseline raw" "$T_TMP/table" && grep -q "^pointing " "$T_TMP/table" && pass || fail "stdout table"
[ "$(wc -l <"$T_TMP/e/align.jsonl")" -eq "$n_words" ] && pass || fail "align.jsonl has one line per matched word ($n_words)"
[ -s "$T_TMP/d.safetensors" ] && pass || fail "--dump-maps written"
ls "$T_TMP/e" | grep -q tmp && fail "temporary files left" || pass
for id in photo00 photo01; do
	[ -f "$T_TMP/e/viz/$id.png" ] && pass || fail "viz/$id.png"
done
[ ! -e "$T_TMP/e/viz/photo02.png" ] && pass || fail "--viz 2 draws two samples"
if command -v jq >/dev/null 2>&1; then
	jq -e . "$T_TMP/e/scores.json" >/dev/null && pass || fail "scores.json parses"
	jq -e -s 'length > 0 and all(.[]; .raw_mean.mse >= 0 and .aligner != null and .baseline.raw_mean != null)' \
		"$T_TMP/e/align.jsonl" >/dev/null && pass || fail "align.jsonl lines parse, with aligner and baseline blocks"
	[ "$(jq .counts.words "$T_TMP/e/scores.json")" -eq "$n_words" ] && pass || fail "counts.words"
	[ "$(jq .counts.samples "$T_TMP/e/scores.json")" -eq 6 ] && pass || fail "counts.samples"
	[ "$(jq -r '.model.aligner_maps.mse | type' "$T_TMP/e/scores.json")" = number ] && pass || fail "aligner means"
	[ "$(jq -r '.baseline.aligner_maps' "$T_TMP/e/scores.json")" = null ] && pass || fail "baseline without Aligner"
	[ "$(jq '.model.raw | length' "$T_TMP/e/scores.json")" -eq 1 ] && pass || fail "one cross layer"
	# strips: width 4 + 4·(160 + 4); height 4 + 2·18 + W·(18 + round(160·gh/gw) + 4)
	for id in photo00 photo01; do
		want=$(jq -r --arg id "$id" 'select(.id == $id) | .grid | "\(.[0]) \(.[1])"' "$T_TMP/e/align.jsonl" |
			awk '{ ph = int(160 * $1 / $2 + 0.5); if (ph < 8) ph = 8; h += 18 + ph + 4 } END { print 660, 40 + h }')
		got=$("$fx" --png-size "$T_TMP/e/viz/$id.png" 2>"$T_TMP/err")
		[ "$got" = "$want" ] && pass || fail "viz/$id.png is $got, want $want"
	done
	# the Aligner's MSE is the training loss's: lvd-sft's att of one full-pack step
	ok "align lr-0 adapter" "$bin" align --model "$model" --adapter "$T_TMP/r0/final" --baseline "$model" \
		--pack "$T_TMP/pack" --out "$T_TMP/e0" --batch 6 --threads 1 -q
	att=$(jq -r .att "$T_TMP/r0/metrics.jsonl")
	mse=$(jq -r .model.aligner_maps.mse "$T_TMP/e0/scores.json")
	awk -v a="$att" -v b="$mse" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-6 * a) }' && pass ||
		fail "Aligner MSE $mse equals lvd-sft's L_att $att"
	# LoRA B = 0: the adapted model's raw maps are the baseline's
	[ "$(jq -c .model.raw_mean "$T_TMP/e0/scores.json")" = "$(jq -c .baseline.raw_mean "$T_TMP/e0/scores.json")" ] &&
		pass || fail "zero LoRA: raw scores equal the baseline's"
	# the trained adapter changes them
	[ "$(jq -c .model.raw_mean "$T_TMP/e/scores.json")" != "$(jq -c .baseline.raw_mean "$T_TMP/e/scores.json")" ] &&
		pass || fail "trained LoRA changes the raw scores"
	# the same adapter (and its Aligner) on both sides: identical numbers
	ok "align baseline with adapter" "$bin" align --model "$model" --adapter "$T_TMP/r/final" --baseline "$model" \
		--baseline-adapter "$T_TMP/r/final" --pack "$T_TMP/pack" --out "$T_TMP/e3" --batch 2 --threads 1 -q
	for k in raw_mean aligner_maps; do
		[ "$(jq -c .model.$k "$T_TMP/e3/scores.json")" = "$(jq -c .baseline.$k "$T_TMP/e3/scores.json")" ] &&
			pass || fail "--baseline-adapter: $k equal to the model's"
	done
	ok "align --limit 2" "$bin" align --model "$model" --pack "$T_TMP/pack" --out "$T_TMP/e2" --limit 2 -q
	[ "$(jq .counts.samples "$T_TMP/e2/scores.json")" -eq 2 ] && pass || fail "--limit 2 scores 2 samples"
	[ "$(jq .model.aligner_maps "$T_TMP/e2/scores.json")" = null ] && pass || fail "no Aligner without one"
else
	skip "jq absent: output contents not checked"
fi
finish
