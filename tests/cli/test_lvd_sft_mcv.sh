# lvd-sft on MiniCPM-Llama3-V-2.5 (docs/sft.md "MiniCPM-V"): the golden tiny MiniCPM-V
# (tests/golden/minicpmv/model) and tiny packs of version-2 MCV records written by
# build/tests/test_sft --pack-mcv: usage errors, a pack of the other model type and a
# record whose geometry the model's slicing does not give (exit 1, nothing created), the
# loss going down on a repeated sample, one micro-step's gradients equal to
# lvd_lstep_mcv_run by hand, SIGKILL then resume equal bit for bit, the export (PEFT
# load-back with .venv-ref), 2 ranks x batch 1 = 1 rank x batch 2; --full of chosen
# groups (only those in the checkpoint, resume exact, 2 ranks with ZeRO-1) and LoRA with
# the resampler as PEFT modules_to_save.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
src=${LVD_SRCDIR:-.}
model=$src/tests/golden/minicpmv/model
mlmodel=$src/tests/golden/mllama/model
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

expect_stdout "--minicpm-map" "--help lists --minicpm-map" "$bin" run --help
expect_stdout "minicpmv" "--help names the MiniCPM-V model type" "$bin" run --help
ok "fixture pack (4 records)" "$fx" --pack-mcv "$T_TMP/pack" "$model" 4
ok "fixture pack (1 record)" "$fx" --pack-mcv "$T_TMP/pack1" "$model" 1
ok "fixture pack (2 records)" "$fx" --pack-mcv "$T_TMP/pack2" "$model" 2
ok "fixture pack (bad geometry)" "$fx" --pack-mcv "$T_TMP/bad" "$model" 3 1
ok "mllama fixture pack" "$fx" --pack "$T_TMP/mlpack" "$mlmodel" 2
run() { "$bin" run --model "$model" --threads 1 -q "$@"; }
expect_exit 2 "--train with mllama's groups" run --pack "$T_TMP/pack" --out "$T_TMP/r" --full --train text
grep -q "'text' is not one of vision, resampler, llm" "$T_TMP/err" && pass || fail "--train names MiniCPM-V's groups"
expect_exit 2 "--train llm without --full" run --pack "$T_TMP/pack" --out "$T_TMP/r" --train llm
expect_exit 2 "bad --minicpm-map" run --pack "$T_TMP/pack" --out "$T_TMP/r" --minicpm-map grid
expect_exit 2 "--geometry is mllama's" run --pack "$T_TMP/pack" --out "$T_TMP/r" --geometry official
expect_exit 2 "--minicpm-map with mllama" "$bin" run --model "$mlmodel" --pack "$T_TMP/mlpack" --out "$T_TMP/r" \
	--minicpm-map official
expect_exit 1 "--layers beyond the decoder" run --pack "$T_TMP/pack" --out "$T_TMP/r" --layers 2
expect_exit 1 "an mllama pack" run --pack "$T_TMP/mlpack" --out "$T_TMP/r"
grep -q "an mllama pack" "$T_TMP/err" && grep -q "MiniCPM-V" "$T_TMP/err" && pass || fail "wrong pack type: both named"
[ ! -e "$T_TMP/r" ] && pass || fail "bad input must not create the run folder"
expect_exit 1 "a MiniCPM pack for mllama" "$bin" run --model "$mlmodel" --pack "$T_TMP/pack" --out "$T_TMP/r" -q
grep -q "MiniCPM-V (minicpmv) pack" "$T_TMP/err" && grep -q "mllama" "$T_TMP/err" && pass || fail "both named (mllama)"
expect_exit 1 "geometry mismatch" run --pack "$T_TMP/bad" --out "$T_TMP/g" --batch 3 --lora dropout=0
grep -q "train-00000.lvdp: record 1 ('s001'): picture 0: the model's slicing gives" "$T_TMP/err" && pass ||
	fail "geometry mismatch names file, record and picture"

# The loss goes down on a repeated sample (1 record, 12 steps).
ok "repeated sample" run --pack "$T_TMP/pack1" --out "$T_TMP/d" --epochs 12 --lr 1e-2 --schedule constant
[ "$(wc -l <"$T_TMP/d/metrics.jsonl")" -eq 12 ] && pass || fail "12 metrics lines"
first=$(head -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a && b == b) }' && pass || fail "loss $first -> $last: not halved"
att1=$(head -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"att":\([0-9.e+-]*\).*/\1/')
att2=$(tail -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"att":\([0-9.e+-]*\).*/\1/')
awk -v a="$att1" -v b="$att2" 'BEGIN { exit !(b < a && a > 0) }' && pass || fail "L_att $att1 -> $att2: not lower"
grep -q '"model_type": *"minicpmv"' "$T_TMP/d/run.json" && grep -q '"minicpm_map": *"rollout"' "$T_TMP/d/run.json" &&
	pass || fail "run.json records the model type and map"
ok "official map + eval pack" run --pack "$T_TMP/pack1" --out "$T_TMP/o" --max-steps 2 --minicpm-map official \
	--layers 1 --eval-pack "$T_TMP/pack2" --batch 1
grep -v '"eval"' "$T_TMP/o/metrics.jsonl" | grep -q '"att":0[.][0-9]*[1-9]' && pass || fail "official map: L_att > 0"
grep '"eval":true' "$T_TMP/o/metrics.jsonl" | grep '"samples":2' | grep -q '"att":0[.][0-9]*[1-9]' && pass ||
	fail "eval pack: one line over both records with L_att > 0"

# Plumbing: lvd-sft's first step = lvd_lstep_mcv_run by hand (defaults, batch 2).
LVD_SFT_DUMP_GRADS="$T_TMP/g.safetensors" run --pack "$T_TMP/pack" --out "$T_TMP/p" --batch 2 --max-steps 1 \
	>"$T_TMP/out" 2>"$T_TMP/err" && pass || fail "gradient dump run"
ok "micro-step = lvd_lstep_mcv_run" "$fx" --mcv-grads "$model" "$T_TMP/pack" "$T_TMP/g.safetensors"

# SIGKILL after update 3 (ckpt-000002 exists), then the same command: bit-identical.
kr="--pack $T_TMP/pack --max-steps 4 --save-every 2"
ok "uninterrupted" run $kr --out "$T_TMP/u"
LVD_SFT_KILL_AT=3 run $kr --out "$T_TMP/k" >/dev/null 2>&1
[ $? -eq 137 ] && pass || fail "killed at step 3"
ok "resume" "$bin" run --model "$model" --threads 1 $kr --out "$T_TMP/k"
grep -q "resuming from" "$T_TMP/err" && pass || fail "resume message"
for f in adapter_model aligner; do
	ok "resume: $f bitwise" "$fx" --compare "$T_TMP/u/final/$f.safetensors" "$T_TMP/k/final/$f.safetensors" 0
done
ok "resume: state bitwise" cmp "$T_TMP/u/ckpt-000004/state.safetensors" "$T_TMP/k/ckpt-000004/state.safetensors"
sed 's/"elapsed".*//' "$T_TMP/u/metrics.jsonl" >"$T_TMP/m1"
sed 's/"elapsed".*//' "$T_TMP/k/metrics.jsonl" >"$T_TMP/m2"
ok "resume: same metrics" cmp "$T_TMP/m1" "$T_TMP/m2"
expect_exit 2 "changed --minicpm-map refused" run $kr --out "$T_TMP/u" --minicpm-map official

# Export: the checkpoint's PEFT adapter equals the run's final one; --merge writes the
# hub folder (LoRA merged; lvd_minicpmv_save_hf, golden-tested in test_minicpmv_save).
ok "export" "$bin" export "$T_TMP/u/ckpt-000004" --model "$model" --out "$T_TMP/ex"
for f in adapter_model.safetensors adapter_config.json aligner.safetensors aligner.json; do
	ok "export: $f equal" cmp "$T_TMP/ex/$f" "$T_TMP/u/final/$f"
done
grep -q "o_proj" "$T_TMP/ex/adapter_config.json" && grep -q "k_proj" "$T_TMP/ex/adapter_config.json" && pass ||
	fail "adapter targets q,k,v,o_proj"
ok "export --merge" "$bin" export "$T_TMP/u/ckpt-000004" --model "$model" --out "$T_TMP/ex2" --merge
[ -s "$T_TMP/ex2/config.json" ] && [ -s "$T_TMP/ex2/aligner.safetensors" ] && [ -s "$T_TMP/ex2/model.safetensors.index.json" ] &&
	[ ! -e "$T_TMP/ex2/adapter_model.safetensors" ] && pass || fail "export --merge: the hub folder + Aligner"
expect_exit 1 "export with the other model" "$bin" export "$T_TMP/u/ckpt-000004" --model "$mlmodel" --out "$T_TMP/ex3"

# Data parallel: 2 ranks x batch 1 (TCP launcher) = 1 rank x batch 2 within fp32 rounding:
# the first step's reduced gradients (values up to ~5; padding to the batch's longest
# sample and picture changes the summation order: ~1e-5 apart) and the weights after 2
# steps (Adam turns near-zero gradients' rounding into up to ~3% of lr = 1e-4).
sp="--pack $T_TMP/pack --max-steps 2 --lora dropout=0 --comm-timeout 60"
LVD_SFT_DUMP_GRADS="$T_TMP/gn2.safetensors" run $sp --out "$T_TMP/n2" --batch 1 --nproc-per-node 2 \
	>"$T_TMP/out" 2>"$T_TMP/err" && pass || fail "2 ranks x batch 1"
LVD_SFT_DUMP_GRADS="$T_TMP/gb2.safetensors" run $sp --out "$T_TMP/b2" --batch 2 >"$T_TMP/out" 2>"$T_TMP/err" &&
	pass || fail "1 rank x batch 2"
ok "2 ranks: gradients = batch 2" "$fx" --compare "$T_TMP/gb2.safetensors" "$T_TMP/gn2.safetensors" 3e-5
ok "2 ranks: LoRA = batch 2" "$fx" --compare "$T_TMP/b2/final/adapter_model.safetensors" \
	"$T_TMP/n2/final/adapter_model.safetensors" 1e-5
ok "2 ranks: Aligner = batch 2" "$fx" --compare "$T_TMP/b2/final/aligner.safetensors" \
	"$T_TMP/n2/final/aligner.safetensors" 1e-5 diffag_conv_last.bias
expect_exit 1 "the gradient compare can fail" "$fx" --compare "$T_TMP/gb2.safetensors" "$T_TMP/g.safetensors" 3e-5
l1=$(sed 's/.*"label_tokens":\([0-9]*\).*/\1/' "$T_TMP/n2/metrics.jsonl" | tr '\n' ' ')
l2=$(sed 's/.*"label_tokens":\([0-9]*\).*/\1/' "$T_TMP/b2/metrics.jsonl" | tr '\n' ' ')
[ "$l1" = "$l2" ] && [ -n "$l1" ] && pass || fail "2 ranks: global label-token counts ($l1 vs $l2)"

# --full --train resampler,llm: the checkpoint holds exactly those groups' tensors (hub
# names); final/ the hub folder with the trained tensors as the checkpoint has them;
# SIGKILL after update 3 then resume: bit-identical.
fr="--pack $T_TMP/pack2 --max-steps 4 --save-every 2 --full --train resampler,llm --lr 1e-3"
ok "full resampler,llm" run $fr --out "$T_TMP/fu"
"$bin" inspect "$T_TMP/fu/ckpt-000004" >"$T_TMP/insp" 2>/dev/null
grep -q '"llm.lm_head.weight"' "$T_TMP/insp" && grep -q '"resampler.query.adam_v"' "$T_TMP/insp" &&
	! grep -q '"vpm\.' "$T_TMP/insp" && ! grep -q '"lora"' "$T_TMP/insp" && pass || fail "full: checkpoint tensors"
[ -s "$T_TMP/fu/final/aligner.safetensors" ] && [ -s "$T_TMP/fu/final/config.json" ] &&
	[ ! -e "$T_TMP/fu/final/adapter_model.safetensors" ] && pass || fail "full: final/ holds the hub folder + Aligner"
ok "full: final/ weights = the checkpoint's trained tensors" "$fx" --compare-common \
	"$T_TMP/fu/ckpt-000004/state.safetensors" "$T_TMP/fu/final/model-00001-of-00001.safetensors" 0
grep -q '"train": *"resampler,llm"' "$T_TMP/fu/run.json" && grep -q '"full": *true' "$T_TMP/fu/run.json" && pass ||
	fail "full: run.json records --full --train"
ok "full: export" "$bin" export "$T_TMP/fu/ckpt-000004" --model "$model" --out "$T_TMP/fx"
ok "full: export = final/" cmp "$T_TMP/fx/model-00001-of-00001.safetensors" "$T_TMP/fu/final/model-00001-of-00001.safetensors"
expect_exit 1 "compare-common can fail" "$fx" --compare-common "$T_TMP/fu/ckpt-000004/state.safetensors" \
	"$T_TMP/ex2/model-00001-of-00001.safetensors" 0
LVD_SFT_KILL_AT=3 run $fr --out "$T_TMP/fk" >/dev/null 2>&1
[ $? -eq 137 ] && pass || fail "full: killed at step 3"
ok "full: resume" run $fr --out "$T_TMP/fk"
ok "full: state bitwise" cmp "$T_TMP/fu/ckpt-000004/state.safetensors" "$T_TMP/fk/ckpt-000004/state.safetensors"
ok "full vision" run --pack "$T_TMP/pack1" --out "$T_TMP/fv" --max-steps 1 --full --train vision
"$bin" inspect "$T_TMP/fv/ckpt-000001" >"$T_TMP/insp" 2>/dev/null
grep -q '"vpm.encoder.layers.0.self_attn.q_proj.weight"' "$T_TMP/insp" && ! grep -q '"resampler\.' "$T_TMP/insp" &&
	! grep -q '"llm\.' "$T_TMP/insp" && pass || fail "full vision: only vpm.* in the checkpoint"
# 2 ranks (--zero 0: the LLM's and the resampler's gradient blocks all-reduced) = 1 rank x
# batch 2: the first step's reduced gradients.
f2="--pack $T_TMP/pack2 --max-steps 1 --full --train resampler,llm --zero 0 --comm-timeout 60"
LVD_SFT_DUMP_GRADS="$T_TMP/fgn2.safetensors" run $f2 --out "$T_TMP/fn2" --batch 1 --nproc-per-node 2 \
	>"$T_TMP/out" 2>"$T_TMP/err" && pass || fail "full: 2 ranks x batch 1"
LVD_SFT_DUMP_GRADS="$T_TMP/fgb2.safetensors" run $f2 --out "$T_TMP/fb2" --batch 2 >"$T_TMP/out" 2>"$T_TMP/err" &&
	pass || fail "full: 1 rank x batch 2"
ok "full: 2 ranks = batch 2 (LLM, resampler, Aligner gradients)" "$fx" --compare "$T_TMP/fgb2.safetensors" \
	"$T_TMP/fgn2.safetensors" 3e-5

# LoRA + --train resampler: the resampler trains as PEFT modules_to_save.
ok "LoRA + resampler" run --pack "$T_TMP/pack2" --out "$T_TMP/lr" --max-steps 2 --train resampler
"$bin" inspect "$T_TMP/lr/ckpt-000002" >"$T_TMP/insp" 2>/dev/null
grep -q '"lora"' "$T_TMP/insp" && grep -q '"resampler.proj"' "$T_TMP/insp" && pass || fail "LoRA + resampler: checkpoint"
grep -q '"resampler"' "$T_TMP/lr/final/adapter_config.json" && pass || fail "modules_to_save resampler"
ok "LoRA + resampler: export" "$bin" export "$T_TMP/lr/ckpt-000002" --model "$model" --out "$T_TMP/lrx"
ok "LoRA + resampler: export = final" cmp "$T_TMP/lrx/adapter_model.safetensors" "$T_TMP/lr/final/adapter_model.safetensors"
# PEFT loads both exports into the reference model (one Python start).
py=$src/.venv-ref/bin/python
if [ -x "$py" ]; then
	ok "PEFT loads the exports" "$py" "$src/tests/ref/check_sft_mcv_export.py" "$T_TMP/ex" "$T_TMP/lrx"
	grep -q "ex: 8 adapters, 0 modules_to_save" "$T_TMP/out" && pass || fail "the LoRA export loaded"
	grep -q "lrx: 8 adapters, 13 modules_to_save tensors" "$T_TMP/out" && pass || fail "the resampler's tensors loaded"
else
	skip "PEFT load-back needs .venv-ref (make ref-env)"
fi
finish
