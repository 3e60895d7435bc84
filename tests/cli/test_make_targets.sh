# make attnmaps / pack / sft / eval / sweep (mk/pipeline.mk): which stages re-run when a
# variable changes. The tools are stubs (PIPE_BIN) that log "<tool> <subcommand> <args>"
# and create their --out folder, so the real stamp logic runs in about a second:
# nothing re-runs when nothing changed; a training variable (LR, LAMBDA, EPOCHS, LORA)
# re-runs only sft and eval; VLM re-runs pack onward; SD re-runs everything;
# SHARD=i/N runs one share into its own folder; `make -n` after a training change
# lists only lvd-sft and lvd-eval (and changes nothing: the next real run is unaffected);
# sweep trains every (LR, LAMBDA) and writes one report.
. tests/cli/lib.inc
src=${LVD_SRCDIR:-.}
if ! command -v make >/dev/null 2>&1; then skip "needs make"; finish; exit; fi
bin=$T_TMP/bin
mkdir -p "$bin" "$T_TMP/sd" "$T_TMP/vlm" "$T_TMP/vlm2"
for t in sd-attnmap lvd-pack lvd-sft lvd-eval lvd-report; do
	cat >"$bin/$t" <<EOF
#!/bin/sh
echo "$t \$*" >>"$T_TMP/log"
while [ \$# -gt 0 ]; do [ "\$1" = --out ] && mkdir -p "\$2"; shift; done
exit 0
EOF
	chmod +x "$bin/$t"
done
echo '{"id": "a", "image": "a.png", "caption": "a cat"}' >"$T_TMP/data.jsonl"
echo '{"id": "q", "kind": "yesno", "question": "?", "answer": "yes"}' >"$T_TMP/bench.jsonl"
P=$T_TMP/p
# the first call goes through the Makefile (which includes mk/pipeline.mk), the others
# read mk/pipeline.mk alone (parsing the whole Makefile each time is slow on a busy machine)
MKF=Makefile
# (BUILD: the Makefile rewrites BUILD/.features at parse time; keep the real build dir out)
mk() { make -C "$src" -f "$MKF" --no-print-directory BUILD="$T_TMP/build" PIPE_BIN="$bin" OUT="$P" SD="$T_TMP/sd" MANIFEST="$T_TMP/data.jsonl" \
	VLM="$T_TMP/vlm" BENCH="$T_TMP/bench.jsonl" "$@"; }
# ran TOOL...: exactly these tools (first word of each log line, in order) since the last call
ran() {
	got=$(cut -d' ' -f1 "$T_TMP/log" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
	want="$*"
	: >"$T_TMP/log"
	[ "$got" = "$want" ] && pass || fail "ran '$got', want '$want' ($step)"
}

step="first run"; ok "$step" mk eval
grep -q -- "--lr 1e-4 --lambda 10 --epochs 1" "$T_TMP/log" && pass || fail "default training options"
ran sd-attnmap lvd-pack lvd-sft lvd-eval
MKF=mk/pipeline.mk
[ -f "$P/runs/lr1e-4-lambda10-ep1/.done" ] && [ -f "$P/runs/lr1e-4-lambda10-ep1/eval/.done" ] && pass ||
	fail "run folder named by its options"
step="nothing changed"; ok "$step" mk eval; ran
step="LR changed"; ok "$step" mk eval LR=2e-4; ran lvd-sft lvd-eval
step="LR changed (make -n)"; ok "$step" mk -n eval LR=3e-4
grep -q "lvd-sft run" "$T_TMP/out" && grep -q "lvd-eval run" "$T_TMP/out" && pass || fail "make -n lists sft and eval"
grep -q "lvd-pack\|sd-attnmap" "$T_TMP/out" && fail "make -n after LR lists pack or attnmaps" || pass
: >"$T_TMP/log"
step="LAMBDA changed"; ok "$step" mk eval LAMBDA=1; ran lvd-sft lvd-eval
step="EPOCHS changed"; ok "$step" mk eval EPOCHS=2; ran lvd-sft lvd-eval
step="LORA changed"; ok "$step" mk eval LORA=r=4; ran lvd-sft lvd-eval
step="LORA changed back"; ok "$step" mk eval; ran lvd-sft lvd-eval
step="back, nothing changed"; ok "$step" mk eval; ran
step="BENCH changed"; cp "$T_TMP/bench.jsonl" "$T_TMP/bench2.jsonl"; ok "$step" mk eval BENCH="$T_TMP/bench2.jsonl"
ran lvd-eval
step="VLM changed"; ok "$step" mk eval VLM="$T_TMP/vlm2"; ran lvd-pack lvd-sft lvd-eval
step="SD changed"; mkdir -p "$T_TMP/sd2"; ok "$step" mk eval VLM="$T_TMP/vlm2" SD="$T_TMP/sd2"
ran sd-attnmap lvd-pack lvd-sft lvd-eval
step="manifest touched"; sleep 1; touch "$T_TMP/data.jsonl"; ok "$step" mk eval VLM="$T_TMP/vlm2" SD="$T_TMP/sd2"
ran sd-attnmap lvd-pack lvd-sft lvd-eval
step="sft only"; ok "$step" mk sft VLM="$T_TMP/vlm2" SD="$T_TMP/sd2" LR=5e-4; ran lvd-sft
step="one share"; ok "$step" mk attnmaps SHARD=1/4
grep -q -- "--out $P/maps-1-of-4 --shard 1/4" "$T_TMP/log" && pass || fail "SHARD=1/4: --shard and its own folder"
ran sd-attnmap
[ -f "$P/maps-1-of-4/.done" ] && pass || fail "share stamp"
step="NPROC"; ok "$step" mk -n sft NPROC=2 LR=7e-4 SD=/elsewhere
grep -q "mpirun -np 2 .*lvd-sft run" "$T_TMP/out" && pass || fail "NPROC=2 runs lvd-sft under mpirun"
: >"$T_TMP/log"
step="sweep"; ok "$step" mk sweep VLM="$T_TMP/vlm2" SD="$T_TMP/sd2" LRS="1e-4 2e-4" LAMBDAS="1 10" EPOCHS=3
ran lvd-sft lvd-eval lvd-sft lvd-eval lvd-sft lvd-eval lvd-sft lvd-eval lvd-report
for r in lr1e-4-lambda1-ep3 lr1e-4-lambda10-ep3 lr2e-4-lambda1-ep3 lr2e-4-lambda10-ep3; do
	[ -f "$P/runs/$r/eval/.done" ] && pass || fail "sweep run $r"
done
step="sweep again"; ok "$step" mk sweep VLM="$T_TMP/vlm2" SD="$T_TMP/sd2" LRS="1e-4 2e-4" LAMBDAS="1 10" EPOCHS=3
grep -q -- "--run lr1e-4-λ1=$P/runs/lr1e-4-lambda1-ep3 --eval lr1e-4-λ1=" "$T_TMP/log" && pass ||
	fail "sweep report lists the runs and their evals"
ran lvd-report
expect_stderr "SD= is required" "missing SD" make -C "$src" --no-print-directory BUILD="$T_TMP/build" PIPE_BIN="$bin" \
	OUT="$T_TMP/q" \
	MANIFEST="$T_TMP/data.jsonl" attnmaps
finish
