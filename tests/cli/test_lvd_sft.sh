# lvd-sft as a user runs it, on the golden tiny mllama and tiny packs written by
# build/tests/test_sft --pack: --help, usage errors (exit 2), bad input (exit 1, nothing
# created), a run writing metrics/checkpoints/exports, --keep pruning, the loss going
# down on a repeated batch, split invariance (batch 2 vs batch 1 x accum 2), SIGKILL then
# resume equal bit for bit to an uninterrupted run, changed options refused on resume.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

expect_exit 0 "--help" "$bin" run --help
expect_stdout "usage: lvd-sft run" "--help usage line" "$bin" run --help
for o in --lambda-schedule --aligner-depth --aligner-norm --aligner-act --aligner-hidden --aggregate --layers \
	--geometry --init-aligner --model --pack --out --lora --lambda --lr --weight-decay --betas --eps --schedule --warmup --clip \
	--batch --grad-accum --epochs --max-steps --seed --loss-norm --threads --save-every --keep; do
	expect_stdout "$o" "--help lists $o" "$bin" run --help
done
expect_stdout "run" "top-level --help lists run" "$bin" --help
expect_stdout "export" "top-level --help lists export" "$bin" --help
expect_stdout "usage: lvd-sft export" "export --help" "$bin" export --help
expect_stdout "usage: lvd-sft inspect" "inspect --help" "$bin" inspect --help
expect_exit 2 "no --out" "$bin" run --model "$model" --pack x
expect_stderr "--out DIR is required" "no --out message" "$bin" run --model "$model" --pack x
expect_exit 2 "bad --lora key" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --lora rank=4
expect_exit 2 "bad --schedule" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --schedule exp
expect_exit 2 "bad --loss-norm" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --loss-norm mean
expect_exit 2 "bad --betas" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --betas 0.9
expect_exit 2 "bad --lambda-schedule" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --lambda-schedule lin
expect_exit 2 "bad --geometry" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --geometry grid
expect_exit 2 "--batch 0" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --batch 0

ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 6
ok "fixture pack of 2" "$fx" --pack "$T_TMP/pack2" "$model" 2
ok "empty fixture pack" "$fx" --pack "$T_TMP/empty" "$model" 0
expect_exit 1 "missing pack" "$bin" run --model "$model" --pack "$T_TMP/nope" --out "$T_TMP/r"
expect_stderr "nope/pack.json" "missing pack names the file" "$bin" run --model "$model" --pack "$T_TMP/nope" --out "$T_TMP/r"
expect_exit 1 "empty pack" "$bin" run --model "$model" --pack "$T_TMP/empty" --out "$T_TMP/r"
expect_stderr "holds no records" "empty pack message" "$bin" run --model "$model" --pack "$T_TMP/empty" --out "$T_TMP/r"
expect_exit 1 "pack smaller than a step" "$bin" run --model "$model" --pack "$T_TMP/pack2" --out "$T_TMP/r" --batch 4
expect_exit 1 "model folder without config" "$bin" run --model "$T_TMP" --pack "$T_TMP/pack" --out "$T_TMP/r"
[ ! -e "$T_TMP/r" ] && pass || fail "bad input must not create the run folder"

run() { "$bin" run --model "$model" --threads 1 -q "$@"; }
# A plain run: 2 epochs of 3 steps, checkpoints every 2 steps, keep 2.
ok "run" run --pack "$T_TMP/pack" --out "$T_TMP/a" --batch 2 --epochs 2 --save-every 2 --keep 2
[ "$(wc -l <"$T_TMP/a/metrics.jsonl")" -eq 6 ] && pass || fail "metrics.jsonl has 6 lines"
for k in '"step":6' '"epoch":1' '"lr":' '"loss":' '"ce":' '"att":' '"lambda":10' '"grad_norm":' '"label_tokens":' \
	'"pairs":' '"samples_per_s":' '"elapsed":'; do
	grep -q "$k" "$T_TMP/a/metrics.jsonl" && pass || fail "metrics.jsonl has $k"
done
[ -f "$T_TMP/a/ckpt-000006/state.safetensors" ] && [ -f "$T_TMP/a/ckpt-000006/state.json" ] && pass ||
	fail "final checkpoint"
[ -d "$T_TMP/a/ckpt-000004" ] && [ ! -e "$T_TMP/a/ckpt-000002" ] && pass || fail "--keep 2 pruned ckpt-000002 only"
grep -q '"cursor_epoch":2' "$T_TMP/a/ckpt-000006/state.json" && pass || fail "checkpoint cursor"
for f in adapter_model.safetensors adapter_config.json aligner.safetensors aligner.json; do
	[ -s "$T_TMP/a/final/$f" ] && pass || fail "final/$f"
done
grep -q '"r": *8' "$T_TMP/a/final/adapter_config.json" && pass || fail "adapter_config r 8"
grep -q '"lr":' "$T_TMP/a/run.json" && pass || fail "run.json records the options"
# Step LR schedule (default step:0.85 per epoch): epoch 1 runs at 0.85 x lr.
grep '"step":4' "$T_TMP/a/metrics.jsonl" | grep -q '"lr":8.50000000' && pass || fail "StepLR 0.85 in epoch 1"

# The loss goes down on a repeated batch (2 samples, 20 steps).
ok "repeated batch" run --pack "$T_TMP/pack2" --out "$T_TMP/d" --batch 2 --epochs 20 --lr 1e-2 --schedule constant
first=$(head -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' && pass || fail "loss $first -> $last: not halved"
att1=$(head -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"att":\([0-9.e+-]*\).*/\1/')
att2=$(tail -1 "$T_TMP/d/metrics.jsonl" | sed 's/.*"att":\([0-9.e+-]*\).*/\1/')
awk -v a="$att1" -v b="$att2" 'BEGIN { exit !(b < 0.5 * a) }' && pass || fail "L_att $att1 -> $att2: not halved"

# Split invariance: (batch 2, accum 1) == (batch 1, accum 2) within fp32 rounding. The
# Aligner's conv_last bias is skipped: the min-max normalisation after the Aligner makes
# L_att invariant to it, so its gradient is rounding noise that Adam scales to +-lr. LoRA
# within 3e-6: lora_A's first gradients are tiny (B starts at 0) and Adam scales them to
# +-lr (1e-4) steps, so the forward's rounding (GEMM blocking, the CE's fp32 exps) shows
# as ~1e-6 in A after 3 steps (measured 1.0e-6 with OpenBLAS's Haswell kernels, 1.7e-6
# with its Cooperlake ones); a wrong accumulation moves it by ~lr.
sp="--pack $T_TMP/pack --max-steps 3 --lora dropout=0"
ok "batch 2" run $sp --out "$T_TMP/s1" --batch 2
ok "batch 1 x accum 2" run $sp --out "$T_TMP/s2" --batch 1 --grad-accum 2
ok "split: LoRA equal" "$fx" --compare "$T_TMP/s1/final/adapter_model.safetensors" \
	"$T_TMP/s2/final/adapter_model.safetensors" 3e-6
ok "split: Aligner equal" "$fx" --compare "$T_TMP/s1/final/aligner.safetensors" \
	"$T_TMP/s2/final/aligner.safetensors" 1e-6 diffag_conv_last.bias
expect_exit 1 "compare can fail" "$fx" --compare "$T_TMP/s1/final/adapter_model.safetensors" \
	"$T_TMP/a/final/adapter_model.safetensors" 3e-6
ok "batch loss-norm" run $sp --out "$T_TMP/s3" --batch 1 --grad-accum 2 --loss-norm batch

# SIGKILL (test hook LVD_SFT_KILL_AT=N: killed after update N, before its checkpoint),
# then the same command again: bit-identical to the uninterrupted run (dropout on), also
# when the resume recomputes activations (--recompute all; all,vision: the vision
# tower's LoRA sites too).
kr="--pack $T_TMP/pack --epochs 2 --save-every 3 --keep 2"
ok "uninterrupted" run $kr --out "$T_TMP/u"
for kn in 7 6 5 1; do
	LVD_SFT_KILL_AT=$kn run $kr --out "$T_TMP/k$kn" >/dev/null 2>&1
	[ $? -eq 137 ] && pass || fail "killed at step $kn"
	# kill at 6 resumes with --recompute all: allowed (not a run option), the same bits
	rco=; [ "$kn" = 6 ] && rco="--recompute all"
	[ "$kn" = 5 ] && rco="--recompute all,vision"
	ok "resume after kill at $kn $rco" "$bin" run --model "$model" --threads 1 $kr --out "$T_TMP/k$kn" $rco
	if [ "$kn" -ge 4 ]; then
		grep -q "resuming from" "$T_TMP/err" && pass || fail "resume message (kill at $kn)"
	fi
	for f in adapter_model aligner; do
		ok "kill at $kn: $f bitwise" "$fx" --compare "$T_TMP/u/final/$f.safetensors" \
			"$T_TMP/k$kn/final/$f.safetensors" 0
	done
	ok "kill at $kn: state bitwise" cmp "$T_TMP/u/ckpt-000012/state.safetensors" "$T_TMP/k$kn/ckpt-000012/state.safetensors"
	sed 's/"elapsed".*//' "$T_TMP/u/metrics.jsonl" >"$T_TMP/m1"
	sed 's/"elapsed".*//' "$T_TMP/k$kn/metrics.jsonl" >"$T_TMP/m2"
	ok "kill at $kn: same metrics" cmp "$T_TMP/m1" "$T_TMP/m2"
done
# Safe changes are accepted (--threads, --max-steps, --save-every, --keep); others refused.
ok "resume with other threads and more steps" "$bin" run --model "$model" -q $kr --out "$T_TMP/u" --threads 2 \
	--max-steps 14 --save-every 7 --keep 1
[ "$(wc -l <"$T_TMP/u/metrics.jsonl")" -eq 14 ] && pass || fail "14 steps after --max-steps 14"
expect_exit 2 "changed --lr refused" run $kr --out "$T_TMP/u" --lr 2e-4
expect_stderr "lr was 0.0001" "refusal names the key" run $kr --out "$T_TMP/u" --lr 2e-4
expect_exit 2 "changed --lora refused" run $kr --out "$T_TMP/u" --lora r=4
ok "another pack" "$fx" --pack "$T_TMP/pack7" "$model" 7
expect_exit 2 "changed pack refused" run --pack "$T_TMP/pack7" --epochs 2 --save-every 3 --keep 2 --out "$T_TMP/u"
[ -d "$T_TMP/u/ckpt-000014" ] && pass || fail "refusals keep the checkpoints"

# export: a checkpoint's adapter and Aligner equal the run's final export byte for byte
# (also with a non-default Aligner, whose configuration comes from state.json).
ok "export" "$bin" export "$T_TMP/a/ckpt-000006" --model "$model" --out "$T_TMP/ex"
for f in adapter_model.safetensors adapter_config.json aligner.safetensors; do
	ok "export: $f equal" cmp "$T_TMP/ex/$f" "$T_TMP/a/final/$f"
done
expect_exit 2 "export without --out" "$bin" export "$T_TMP/a/ckpt-000006" --model "$model"
expect_exit 1 "export of a missing checkpoint" "$bin" export "$T_TMP/a/ckpt-000001" --model "$model" --out "$T_TMP/ex0"

# inspect: the checkpoint as JSON on stdout.
expect_stdout '"step": 6' "inspect step" "$bin" inspect "$T_TMP/a/ckpt-000006"
expect_stdout '"cursor_epoch": 2' "inspect cursor" "$bin" inspect "$T_TMP/a/ckpt-000006"
expect_stdout '"lora.adam_v"' "inspect tensors" "$bin" inspect "$T_TMP/a/ckpt-000006"
expect_exit 1 "inspect of a missing checkpoint" "$bin" inspect "$T_TMP/a/ckpt-000001"
expect_exit 2 "inspect without a checkpoint" "$bin" inspect

# Loss options: the lambda decay (T = steps per epoch = 6: lambda_1 = 10 exp(-2/6)), other
# Aligners, a layer out of range, --init-aligner from a trained Aligner.
ok "exp lambda schedule" run --pack "$T_TMP/pack" --out "$T_TMP/l1" --max-steps 2 --lambda-schedule exp:2
grep -q '"lambda":7.16531' "$T_TMP/l1/metrics.jsonl" && pass || fail "lambda at step 2 is 10 exp(-1/3)"
ok "deep group leaky max-before" run --pack "$T_TMP/pack" --out "$T_TMP/l2" --max-steps 2 --aligner-depth deep \
	--aligner-norm group --aligner-act leaky --aligner-hidden 8 --aggregate max-before --layers 0
grep -q '"aggregate": *"max-before"' "$T_TMP/l2/run.json" && pass || fail "run.json records --aggregate"
ok "export of a deep Aligner" "$bin" export "$T_TMP/l2/ckpt-000002" --model "$model" --out "$T_TMP/ex2"
ok "export: deep Aligner equal" cmp "$T_TMP/ex2/aligner.safetensors" "$T_TMP/l2/final/aligner.safetensors"
expect_exit 1 "--layers out of range" run --pack "$T_TMP/pack" --out "$T_TMP/l3" --layers 1
expect_stderr "out of range" "--layers message" run --pack "$T_TMP/pack" --out "$T_TMP/l3" --layers 1
expect_exit 1 "missing --init-aligner" run --pack "$T_TMP/pack" --out "$T_TMP/l3" --init-aligner "$T_TMP/none"
[ ! -e "$T_TMP/l3" ] && pass || fail "bad loss options must not create the run folder"
ok "--init-aligner" run --pack "$T_TMP/pack" --out "$T_TMP/l4" --max-steps 2 --init-aligner "$T_TMP/a/final/aligner.safetensors"
ok "same without --init-aligner" run --pack "$T_TMP/pack" --out "$T_TMP/l5" --max-steps 2
expect_exit 1 "--init-aligner changes the Aligner" "$fx" --compare "$T_TMP/l4/final/aligner.safetensors" \
	"$T_TMP/l5/final/aligner.safetensors" 1e-6

# A loss that becomes NaN (test hook LVD_SFT_NAN_AT=N): exit 1 naming the step and the
# samples, no update, the last checkpoint kept, nothing written for the step.
LVD_SFT_NAN_AT=3 run --pack "$T_TMP/pack" --out "$T_TMP/n" --save-every 2 2>"$T_TMP/err"
[ $? -eq 1 ] && pass || fail "NaN loss exits 1"
grep -q "step 3: the loss (nan)" "$T_TMP/err" && pass || fail "NaN message names the step"
grep -q "samples 's0" "$T_TMP/err" && pass || fail "NaN message names the samples"
[ -d "$T_TMP/n/ckpt-000002" ] && [ ! -e "$T_TMP/n/ckpt-000003" ] && pass || fail "NaN: checkpoint 2 kept"
[ "$(wc -l <"$T_TMP/n/metrics.jsonl")" -eq 2 ] && pass || fail "NaN: no metrics line for step 3"
finish
