# make demo reduced (data/demo.sh with 4 training images, 2 held-out images, one epoch):
# every stage runs and its output exists and parses — the shapes world and its bench, the
# oracle and tiny-SD maps (sd-attnmap inspect), the random model (lvd-sft init), both packs
# (lvd-pack inspect), both runs (the first CE of the random model, metrics lines, lvd-sft
# inspect of the last checkpoint, the final adapter), lvd-eval run / align outputs or their "not available" message, and the
# report with both runs and its two PNGs.
. tests/cli/lib.inc
SHARED=${LVD_SHARED_DATA:-../shared/data}
if [ ! -f "$SHARED/llama3/tokenizer.model" ] || [ ! -f "$SHARED/clip/vocab.json" ]; then
	skip "demo: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
for t in lvd-shapes sd-attnmap lvd-pack lvd-sft lvd-eval lvd-report; do
	if [ ! -x "$BUILD/$t" ]; then skip "demo: $BUILD/$t missing"; finish; exit $?; fi
done
D=$T_TMP/demo
ok "reduced demo" env BUILD="$BUILD" LVD_SHARED_DATA="$SHARED" DEMO_DIR="$D" DEMO_TRAIN=4 DEMO_HELDOUT=2 \
	DEMO_EPOCHS=1 DEMO_SD_IMAGES=1 DEMO_VIZ=1 DEMO_THREADS=2 sh data/demo.sh
cp "$T_TMP/err" "$T_TMP/demo.err"
for n in 1 2 3 4 5 6 7 8; do
	grep -q "$n/8 " "$T_TMP/demo.err" && pass || fail "stage $n/8 reported its progress"
done
[ "$(wc -l <"$D/world/train.jsonl")" -eq 4 ] && [ "$(wc -l <"$D/world/heldout.jsonl")" -eq 2 ] && pass ||
	fail "world: 4 train and 2 held-out images"
[ "$(grep -c '"category"' "$D/world/heldout-bench.jsonl")" -ge 2 ] && pass || fail "held-out bench lines"
ok "oracle maps parse" "$BUILD/sd-attnmap" inspect "$D/maps-train" --id train-000000
grep -q '"blue"\|"red"\|"green"\|"yellow"\|"purple"' "$T_TMP/out" && pass || fail "oracle maps hold colour words"
ok "held-out maps parse" "$BUILD/sd-attnmap" inspect "$D/maps-heldout" --id heldout-000000
ok "tiny-SD maps parse" "$BUILD/sd-attnmap" inspect "$D/maps-sd" --id train-000000
[ -s "$D/model/model.safetensors" ] && [ -s "$D/model/tokenizer.model" ] && pass || fail "lvd-sft init model"
for s in train heldout; do
	ok "$s pack parses" "$BUILD/lvd-pack" inspect "$D/pack-$s/train-00000.lvdp" --model "$D/model"
	grep -q "\[\[" "$T_TMP/out" && pass || fail "$s pack has matched words"
done
# the model of lvd-sft init loads and trains; random init: almost uniform logits, so the
# first CE is ln 128256 = 11.76 plus about half the logit variance (std 0.1·√128 ≈ 1.1)
ce=$(head -1 "$D/run-l0/metrics.jsonl" | sed -n 's/.*"ce":\([0-9.e+-]*\).*/\1/p')
awk -v c="${ce:-nan}" 'BEGIN { exit !(c > 11 && c < 15) }' && pass || fail "first CE $ce: not near ln(128256) + 0.6"
for L in 0 10; do
	[ "$(wc -l <"$D/run-l$L/metrics.jsonl")" -eq 4 ] && pass || fail "run λ $L: 4 metrics lines"
	grep -q "\"lambda\":$L" "$D/run-l$L/metrics.jsonl" && pass || fail "run λ $L: lambda in metrics"
	ok "run λ $L: checkpoint parses" "$BUILD/lvd-sft" inspect "$D/run-l$L/ckpt-000004"
	[ -s "$D/run-l$L/final/adapter_model.safetensors" ] && [ -s "$D/run-l$L/final/aligner.safetensors" ] && pass ||
		fail "run λ $L: final adapter and Aligner"
done
if "$BUILD/lvd-eval" run --help >/dev/null 2>&1; then
	for L in 0 10; do
		[ "$(wc -l <"$D/eval-l$L/predictions.jsonl")" -eq "$(wc -l <"$D/world/heldout-bench.jsonl")" ] && pass ||
			fail "lvd-eval run λ $L: one prediction per question"
	done
	grep -q "| all |" "$D/report.md" && pass || fail "report: accuracy table"
else
	grep -q "lvd-eval run: not available in this build" "$T_TMP/demo.err" && pass || fail "lvd-eval run skip message"
fi
if "$BUILD/lvd-eval" align --help >/dev/null 2>&1; then
	for a in base l0 l10; do
		[ -s "$D/align-$a/scores.json" ] && [ -s "$D/align-$a/align.jsonl" ] && pass || fail "lvd-eval align $a outputs"
	done
	grep -q "| pearson |" "$D/report.md" && pass || fail "report: alignment table"
else
	grep -q "lvd-eval align: not available in this build" "$T_TMP/demo.err" && pass || fail "lvd-eval align skip message"
fi
grep -q "^| λ0 | 0 | 4 |" "$D/report.md" && grep -q "^| λ10 | 10 | 4 |" "$D/report.md" && pass ||
	fail "report.md lists both runs with 4 steps"
for p in ce att; do
	[ "$(od -An -tx1 -N8 "$D/$p.png" | tr -d ' ')" = 89504e470d0a1a0a ] && pass || fail "$p.png is a PNG"
done
# a re-run skips every complete stage and rewrites the same report
cp "$D/report.md" "$T_TMP/report1.md"
ok "demo re-run" env BUILD="$BUILD" LVD_SHARED_DATA="$SHARED" DEMO_DIR="$D" DEMO_TRAIN=4 DEMO_HELDOUT=2 \
	DEMO_EPOCHS=1 DEMO_SD_IMAGES=1 DEMO_VIZ=1 DEMO_THREADS=2 sh data/demo.sh
[ "$(wc -l <"$D/run-l10/metrics.jsonl")" -eq 4 ] && pass || fail "re-run: no extra steps"
finish
