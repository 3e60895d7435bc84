# lvd-sft's memory planner (lib/train/plan.h; docs/sft.md "Memory planner"): --plan-only
# on the real Llama-3.2-11B-Vision config.json (no weights: tests/golden/mllama/config-11b),
# --max-memory refusing with exit 2 and the option that would fit, the plan record in
# run.json and the stderr block of a real run on the golden tiny mllama.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
src=${LVD_SRCDIR:-.}
model=$src/tests/golden/mllama/model
big=$src/tests/golden/mllama/config-11b

for o in --max-memory --plan-only --plan-device --plan-tokens --plan-rows --recompute; do
	expect_stdout "$o" "run --help lists $o" "$bin" run --help
done
expect_stdout "parameters 10.670 B, trained 5.898 M" "11B LoRA plan: parameter counts" \
	"$bin" run --model "$big" --plan-only
expect_stdout "predicted peak per rank" "11B plan prints the peak" "$bin" run --model "$big" --plan-only
expect_stdout "unverified: no GPU run yet" "cuda plan is marked unverified" \
	"$bin" run --model "$big" --plan-only --plan-device cuda
expect_stdout "8 ranks ZeRO-1" "8-rank full plan" "$bin" run --model "$big" --plan-only --full --nproc-per-node 8
expect_exit 2 "11B --full over --max-memory 64G" "$bin" run --model "$big" --plan-only --full --max-memory 64G
expect_stderr "optim dominates" "refusal names the dominating part" \
	"$bin" run --model "$big" --plan-only --full --max-memory 64G
expect_stderr "ZeRO" "refusal names the option" "$bin" run --model "$big" --plan-only --full --max-memory 64G
ok "11B LoRA fits 80G" "$bin" run --model "$big" --plan-only --max-memory 80G
expect_exit 2 "bad --max-memory" "$bin" run --model "$big" --plan-only --max-memory 12X
expect_stderr "is not a size" "bad --max-memory message" "$bin" run --model "$big" --plan-only --max-memory 12X
expect_exit 2 "bad --plan-device" "$bin" run --model "$big" --plan-only --plan-device tpu
expect_stdout "recompute xattn, LM head fused" "plan names --recompute and the fused head" \
	"$bin" run --model "$big" --plan-only --recompute xattn
expect_stdout "LM head logits kept" "--word-keys argmax keeps the logits" \
	"$bin" run --model "$big" --plan-only --word-keys argmax
expect_exit 2 "bad --recompute" "$bin" run --model "$big" --plan-only --recompute some
expect_stdout "recompute all,vision, LM head fused" "--recompute with the vision tower" \
	"$bin" run --model "$big" --plan-only --recompute vision,all
expect_exit 2 "bad --recompute list" "$bin" run --model "$big" --plan-only --recompute all,xattn
expect_stderr "is not none, xattn or all" "bad --recompute message" "$bin" run --model "$big" --plan-only --recompute some
expect_exit 1 "--plan-only without config.json" "$bin" run --model "$T_TMP/none" --plan-only
expect_stderr "none/config.json" "missing config named" "$bin" run --model "$T_TMP/none" --plan-only

if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi
ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 2
run() { "$bin" run --model "$model" --pack "$T_TMP/pack" --threads 1 --max-steps 1 "$@"; }
expect_exit 2 "run over --max-memory" run --out "$T_TMP/r0" --max-memory 1M
expect_stderr "acts dominates" "run refusal names the part" run --out "$T_TMP/r0" --max-memory 1M
[ ! -e "$T_TMP/r0" ] && pass || fail "a refused run must not create the run folder"
expect_stderr "plan: predicted peak per rank" "run prints the plan on stderr" \
	run --out "$T_TMP/r1" --max-memory 1G --plan-tokens 64 --recompute all
grep -q '"plan": {' "$T_TMP/r1/run.json" && grep -q '"peak":' "$T_TMP/r1/run.json" && pass ||
	fail "run.json holds the plan record"
grep -q '"recompute": "all"' "$T_TMP/r1/run.json" && grep -q '"fused_head": true' "$T_TMP/r1/run.json" && pass ||
	fail "run.json records --recompute and the fused head"
expect_exit 2 "--full run over --max-memory" run --out "$T_TMP/r2" --full --max-memory 2M --plan-tokens 16
expect_exit 2 "2-rank run over --max-memory" run --out "$T_TMP/r3" --nproc-per-node 2 --full --max-memory 1M
[ "$(grep -c 'exceeds --max-memory' "$T_TMP/err")" = 1 ] && pass || fail "2 ranks: the refusal printed once (rank 0)"
finish
