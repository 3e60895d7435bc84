#!/bin/sh
# make demo: the Lavender experiment end to end on CPU, on data made here (docs/demo.md).
#   1 lvd-shapes      a shapes world: train split + held-out split with new layouts, exact
#                     per-word masks in the official Lavender layout
#   2 sd-attnmap      oracle maps: `import` of those masks (train and held-out); `run` with
#                     the tiny random SD (tests/golden/sd/diffusers) on a few of the same
#                     images, to exercise that path (its maps are noise, not used further)
#   3 lvd-sft init    a tiny mllama with seeded random weights and the real Llama-3 tokenizer
#   4 lvd-pack        train and held-out packs
#   5 lvd-sft run     twice, same seed and data: lambda = 0 (CE only) and lambda = 10
#   6 lvd-eval run    held-out questions, both runs          (skipped when not built)
#   7 lvd-eval align  held-out pack: base model, both runs, --viz strips (skipped likewise)
#   8 lvd-report      demo/report.md + ce.png, att.png
# Output goes to $DEMO_DIR (default demo/, git-ignored). Every stage whose output is
# complete is skipped on a re-run (lvd-sft resumes from its checkpoints).
# Sizes (environment): DEMO_TRAIN (images, 100), DEMO_HELDOUT (40), DEMO_EPOCHS (2),
# DEMO_LR (2e-3), DEMO_SD_IMAGES (3), DEMO_THREADS (2), DEMO_VIZ (4), DEMO_SEED (1).
set -eu
BUILD=${BUILD:-build}
SHARED=${LVD_SHARED_DATA:-../shared/data}
OUT=${DEMO_DIR:-demo}
NTRAIN=${DEMO_TRAIN:-100}
NHELD=${DEMO_HELDOUT:-40}
EPOCHS=${DEMO_EPOCHS:-2}
LR=${DEMO_LR:-2e-3}
NSD=${DEMO_SD_IMAGES:-3}
THREADS=${DEMO_THREADS:-2}
NVIZ=${DEMO_VIZ:-4}
SEED=${DEMO_SEED:-1}
SD=tests/golden/sd/diffusers
TILE=64   # image_size of the `tiny` preset
for f in "$SHARED/clip/vocab.json" "$SHARED/llama3/tokenizer.model"; do
	[ -f "$f" ] || { echo "demo: $f not found (set LVD_SHARED_DATA to the shared data folder)" >&2; exit 1; }
done
mkdir -p "$OUT"
T0=$(date +%s)
NOTES=""
note() { NOTES="$NOTES$1
"; }
stage() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
skip() { printf '   %s\n' "$*" >&2; note "- $*"; }
q="-q"

stage "1/8 lvd-shapes: $NTRAIN train + $NHELD held-out images (tiles of $TILE px)"
W=$OUT/world
[ -s "$W/train.jsonl" ] || "$BUILD/lvd-shapes" $q --out "$W" --n "$NTRAIN" --seed "$SEED" --tile-size $TILE
[ -s "$W/heldout.jsonl" ] || "$BUILD/lvd-shapes" $q --out "$W" --n "$NHELD" --seed "$SEED" --tile-size $TILE --split heldout
echo "   $(wc -l <"$W/train.jsonl") train images, $(wc -l <"$W/heldout-bench.jsonl") held-out questions" >&2

stage "2/8 sd-attnmap import (oracle maps) + sd-attnmap run (tiny SD on $NSD images)"
for s in train heldout; do
	[ -s "$OUT/maps-$s/shards.jsonl" ] ||
		"$BUILD/sd-attnmap" import $q --manifest "$W/$s.jsonl" --images "$W" --from "$W/attn-png" \
			--tokenizer "$SHARED/clip" --skip-unknown --out "$OUT/maps-$s"
done
head -n "$NSD" "$W/train.jsonl" >"$OUT/sd-subset.jsonl"
[ -s "$OUT/maps-sd/shards.jsonl" ] ||
	"$BUILD/sd-attnmap" run $q --sd "$SD" --tokenizer "$SHARED/clip" --fold-vocab --resolution 128 --min-side 32 \
		--timesteps 300,700 --manifest "$OUT/sd-subset.jsonl" --images "$W" --out "$OUT/maps-sd"
"$BUILD/sd-attnmap" inspect "$OUT/maps-sd" --id train-000000 | cut -c1-300 >&2

stage "3/8 lvd-sft init: tiny mllama (seed $SEED, non-zero gates)"
M=$OUT/model
[ -s "$M/model.safetensors" ] ||
	"$BUILD/lvd-sft" init $q --config tiny --out "$M" --seed "$SEED" --tokenizer "$SHARED/llama3" --gate 1

stage "4/8 lvd-pack: train and held-out packs (words of questions and answers matched)"
for s in train heldout; do
	[ -s "$OUT/pack-$s/pack.json" ] ||
		"$BUILD/lvd-pack" run $q --manifest "$W/$s.jsonl" --images "$W" --maps "$OUT/maps-$s" --model "$M" \
			--match-in all --out "$OUT/pack-$s"
done

for L in 0 10; do
	stage "5/8 lvd-sft run: lambda = $L, $EPOCHS epochs, lr $LR"
	"$BUILD/lvd-sft" run --model "$M" --pack "$OUT/pack-train" --out "$OUT/run-l$L" --lambda "$L" --lr "$LR" \
		--lora "r=16,alpha=32,dropout=0.05,targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" \
		--schedule constant --warmup 10 --epochs "$EPOCHS" --seed "$SEED" --threads "$THREADS" --save-every 100000 --keep 1
done

REPORT_ARGS="--run λ0=$OUT/run-l0 --run λ10=$OUT/run-l10"
stage "6/8 lvd-eval run: held-out questions"
if "$BUILD/lvd-eval" run --help >/dev/null 2>&1; then
	for L in 0 10; do
		[ -s "$OUT/eval-l$L/scores.json" ] ||
			"$BUILD/lvd-eval" run $q --model "$M" --adapter "$OUT/run-l$L/final" --bench "$W/heldout-bench.jsonl" \
				--images "$W" --threads "$THREADS" --max-new-tokens 8 --batch 8 --out "$OUT/eval-l$L"
		REPORT_ARGS="$REPORT_ARGS --eval λ$L=$OUT/eval-l$L"
	done
else
	skip "lvd-eval run: not available in this build"
fi

stage "7/8 lvd-eval align: held-out pack (base model, then both runs; --viz $NVIZ)"
if "$BUILD/lvd-eval" align --help >/dev/null 2>&1; then
	[ -s "$OUT/align-base/scores.json" ] ||
		"$BUILD/lvd-eval" align $q --model "$M" --pack "$OUT/pack-heldout" --out "$OUT/align-base" --viz "$NVIZ" \
			--threads "$THREADS"
	REPORT_ARGS="$REPORT_ARGS --align-base $OUT/align-base"
	for L in 0 10; do
		[ -s "$OUT/align-l$L/scores.json" ] ||
			"$BUILD/lvd-eval" align $q --model "$M" --adapter "$OUT/run-l$L/final" \
				--aligner "$OUT/run-l$L/final/aligner.safetensors" --pack "$OUT/pack-heldout" \
				--out "$OUT/align-l$L" --viz "$NVIZ" --threads "$THREADS"
		REPORT_ARGS="$REPORT_ARGS --align λ$L=$OUT/align-l$L"
	done
	note "- viz strips (image | oracle map | VLM map): before training $OUT/align-base/viz/, after $OUT/align-l0/viz/ and $OUT/align-l10/viz/"
else
	skip "lvd-eval align: not available in this build"
fi

stage "8/8 lvd-report: $OUT/report.md"
note "- world: $NTRAIN train images, $NHELD held-out images (new layouts), seed $SEED; model: lvd-sft init --config tiny; wall time of this invocation $(($(date +%s) - T0)) s"
# shellcheck disable=SC2086 # REPORT_ARGS holds separate words without spaces inside
"$BUILD/lvd-report" --out "$OUT" --title "lvd demo: Lavender on the shapes world (λ = 0 vs λ = 10)" \
	--note "$NOTES" $REPORT_ARGS
stage "done: $OUT/report.md, $OUT/ce.png, $OUT/att.png"
