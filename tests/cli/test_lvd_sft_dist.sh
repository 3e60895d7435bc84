# Data-parallel lvd-sft (docs/dist.md) on the golden tiny mllama and the tiny packs of
# build/tests/test_sft --pack, 2 ranks on the 2-core machine (oversubscribed):
# (2 ranks x batch 1) = (1 rank x batch 2) = (1 rank x batch 1 x accum 2); mpirun,
# --nproc-per-node 2 and a torchrun-style environment give the same bits; SIGKILL of one
# rank then resume equals the uninterrupted run; resume with another rank count; a hung
# rank ends the job within --comm-timeout naming it; mismatched options and an
# unreadable shard on one rank are refused at start, before RUN_DIR is created.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

expect_stdout "--nproc-per-node" "--help lists --nproc-per-node" "$bin" run --help
expect_stdout "--comm-timeout" "--help lists --comm-timeout" "$bin" run --help
expect_exit 2 "bad --nproc-per-node" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --nproc-per-node 0
ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 6

base="--model $model --threads 1 -q --comm-timeout 60"
sp="--pack $T_TMP/pack --max-steps 3 --lora dropout=0"
# Same bits apart from the timing fields and comm_bytes (TCP counts its socket, MPI estimates).
same_metrics() {
	sed 's/"elapsed":[^,}]*//; s/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//; s/"comm_s":[^,}]*//; s/"comm_bytes":[^,}]*//' "$1/metrics.jsonl" >"$T_TMP/metrics1"
	sed 's/"elapsed":[^,}]*//; s/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//; s/"comm_s":[^,}]*//; s/"comm_bytes":[^,}]*//' "$2/metrics.jsonl" >"$T_TMP/metrics2"
	cmp -s "$T_TMP/metrics1" "$T_TMP/metrics2"
}
same_final() {
	cmp -s "$1/final/adapter_model.safetensors" "$2/final/adapter_model.safetensors" &&
		cmp -s "$1/final/aligner.safetensors" "$2/final/aligner.safetensors" && same_metrics "$1" "$2"
}
tcp_port=$(( 20000 + ($$ + 7) % 20000 ))

# --nproc-per-node and the torchrun-style environment (TCP backend, no MPI needed).
ok "--nproc-per-node 2" "$bin" run $base $sp --out "$T_TMP/n2" --batch 1 --nproc-per-node 2
ok "1 rank x batch 2" "$bin" run $base $sp --out "$T_TMP/b2" --batch 2
ok "1 rank x batch 1 x accum 2" "$bin" run $base $sp --out "$T_TMP/a2" --batch 1 --grad-accum 2
# Split invariance (fp32 summation order; the Aligner's conv_last.bias is rounding noise,
# LoRA within 3e-6 as Adam scales lora_A's tiny first gradients: see test_lvd_sft.sh).
for d in n2 a2; do
	ok "split $d: LoRA" "$fx" --compare "$T_TMP/b2/final/adapter_model.safetensors" \
		"$T_TMP/$d/final/adapter_model.safetensors" 3e-6
	ok "split $d: Aligner" "$fx" --compare "$T_TMP/b2/final/aligner.safetensors" \
		"$T_TMP/$d/final/aligner.safetensors" 1e-6 diffag_conv_last.bias
done
[ "$(wc -l <"$T_TMP/n2/metrics.jsonl")" -eq 3 ] && pass || fail "2 ranks: one metrics line per step (rank 0 only)"
grep -q '"label_tokens":13' "$T_TMP/n2/metrics.jsonl" && grep -q '"label_tokens":13' "$T_TMP/b2/metrics.jsonl" &&
	pass || fail "2 ranks: global label-token counts"
(
	RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_PORT=$tcp_port "$bin" run $base $sp --out "$T_TMP/tr" --batch 1 &
	RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_PORT=$tcp_port "$bin" run $base $sp --out "$T_TMP/tr" --batch 1
	r0=$?
	wait $!
	[ $r0 -eq 0 ] && [ $? -eq 0 ]
) >"$T_TMP/out" 2>"$T_TMP/err" && pass || fail "torchrun-style environment"
same_final "$T_TMP/n2" "$T_TMP/tr" && pass || fail "torchrun env = --nproc-per-node (bitwise)"

# A hung rank (test hook): the other rank's next collective times out naming it.
start=$(date +%s)
LVD_SFT_HANG_AT=1 LVD_SFT_KILL_RANK=1 "$bin" run $base $sp --out "$T_TMP/h" --batch 1 --nproc-per-node 2 \
	--comm-timeout 2 >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -ne 0 ] && pass || fail "hung rank: the job fails"
[ $(( $(date +%s) - start )) -lt 40 ] && pass || fail "hung rank: bounded time"
grep -q "rank(s) 1 did not reach it" "$T_TMP/err" && pass || fail "hung rank: named"

if ! command -v mpirun >/dev/null 2>&1 || ! "$bin" --version | grep -q "MPI=yes"; then
	skip "the mpirun cases need Open MPI (libopenmpi-dev openmpi-bin) and an MPI build"
	finish
	exit
fi
mrun() { mpirun -np "$1" "$bin" run $base "$@"; }
ok "mpirun -np 2" mpirun -np 2 "$bin" run $base $sp --out "$T_TMP/m2" --batch 1
same_final "$T_TMP/n2" "$T_TMP/m2" && pass || fail "mpirun = --nproc-per-node (bitwise)"

# SIGKILL of rank 1 after update 4 (before its checkpoint; ckpt-000003 exists), then the
# same command again: bit-identical to the uninterrupted run (dropout on).
kr="--pack $T_TMP/pack --epochs 2 --save-every 3 --batch 1"
ok "uninterrupted (2 ranks)" mpirun -np 2 "$bin" run $base $kr --out "$T_TMP/u"
LVD_SFT_KILL_AT=4 LVD_SFT_KILL_RANK=1 mpirun -np 2 -x LVD_SFT_KILL_AT -x LVD_SFT_KILL_RANK "$bin" run $base $kr \
	--out "$T_TMP/k" >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -ne 0 ] && pass || fail "rank 1 killed: the job fails"
[ -d "$T_TMP/k/ckpt-000003" ] && [ ! -e "$T_TMP/k/ckpt-000006" ] && pass || fail "killed at step 4: ckpt 3 only"
ok "resume after the kill (2 ranks)" mpirun -np 2 "$bin" run $base $kr --out "$T_TMP/k"
same_final "$T_TMP/u" "$T_TMP/k" && pass || fail "kill + resume = uninterrupted (bitwise)"
cmp -s "$T_TMP/u/ckpt-000006/state.safetensors" "$T_TMP/k/ckpt-000006/state.safetensors" && pass ||
	fail "kill + resume: last checkpoint bitwise"
# Resume with another rank count: the data cursor is a global sample position.
LVD_SFT_KILL_AT=4 "$bin" run $base $kr --out "$T_TMP/k1" --nproc-per-node 2 >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -ne 0 ] && pass || fail "killed run (for 1-rank resume)"
ok "resume on 1 rank" "$bin" run $base $kr --out "$T_TMP/k1" --max-steps 5
cp -r "$T_TMP/u/ckpt-000003" "$T_TMP/c3" && mkdir "$T_TMP/r1" && mv "$T_TMP/c3" "$T_TMP/r1/ckpt-000003" &&
	cp "$T_TMP/u/run.json" "$T_TMP/r1/" && head -3 "$T_TMP/u/metrics.jsonl" >"$T_TMP/r1/metrics.jsonl"
ok "1 rank from the 2-rank checkpoint" "$bin" run $base $kr --out "$T_TMP/r1" --max-steps 5
same_final "$T_TMP/k1" "$T_TMP/r1" && pass || fail "resume on another rank count is deterministic"
grep '"step":4' "$T_TMP/k1/metrics.jsonl" | grep -q '"epoch":1' && pass || fail "1-rank resume continues at epoch 1"
ok "resume on 3 ranks" mpirun -np 3 "$bin" run $base $kr --out "$T_TMP/k1" --max-steps 6
[ "$(wc -l <"$T_TMP/k1/metrics.jsonl")" -eq 6 ] && pass || fail "3-rank resume: 6 metrics lines"

# Refusals at start, before RUN_DIR exists: other options on rank 1; an unreadable shard
# on rank 1 (its own copy of the pack, truncated).
mpirun -np 1 "$bin" run $base $sp --out "$T_TMP/x" --batch 1 : -np 1 "$bin" run $base $sp --out "$T_TMP/x" \
	--batch 1 --lr 2e-4 >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -eq 2 ] && pass || fail "mismatched options: exit 2"
grep -q "rank 1: 'lr' is 0.0002 here but 0.0001 on rank 0" "$T_TMP/err" && pass || fail "mismatch names rank and key"
cp -r "$T_TMP/pack" "$T_TMP/packbad"
sh=$(ls "$T_TMP/packbad"/train-*.lvdp | head -1)
head -c 100 "$sh" >"$T_TMP/t" && mv "$T_TMP/t" "$sh"
mpirun -np 1 "$bin" run $base $sp --out "$T_TMP/x" --batch 1 : -np 1 "$bin" run $base --pack "$T_TMP/packbad" \
	--max-steps 3 --lora dropout=0 --out "$T_TMP/x" --batch 1 >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -eq 1 ] && pass || fail "bad shard on rank 1: exit 1"
grep -q "rank(s) 1 failed at start" "$T_TMP/err" && grep -q "packbad/train-" "$T_TMP/err" && pass ||
	fail "bad shard: rank and file named"
[ ! -e "$T_TMP/x" ] && pass || fail "refusals create no run folder"
finish
