# lvd-sft --overlap and --shard-frozen (docs/sft.md, issue #20) on the golden tiny mllama,
# 2 ranks (and 3) on the 2-core machine: the per-layer gradient all-reduce overlapped with the
# backward and the ZeRO-3 sharding of the frozen text layers give the bits of the plain
# run (one all-reduce after the backward, every weight on every rank): with --grad-accum,
# with an eval pack that leaves a rank without samples, over the TCP launcher and mpirun;
# the planner predicts the saving; --shard-frozen with --full is refused.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

expect_stdout "--overlap" "--help lists --overlap" "$bin" run --help
expect_stdout "--shard-frozen" "--help lists --shard-frozen" "$bin" run --help
expect_exit 2 "--shard-frozen with --full" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --full --shard-frozen
expect_exit 2 "bad --overlap" "$bin" run --model "$model" --pack x --out "$T_TMP/r" --overlap 2
# The plan: 4 ranks shard the 4 text layers into less than they hold whole; the peak drops.
"$bin" run --model "$model" --plan-only --nproc-per-node 4 >"$T_TMP/p0" 2>&1
"$bin" run --model "$model" --plan-only --nproc-per-node 4 --shard-frozen >"$T_TMP/p1" 2>&1
grep -q "shard-frozen: weights 120.32 KiB smaller per rank" "$T_TMP/p1" && pass || fail "plan: the saving is stated"
[ "$(grep weights "$T_TMP/p0")" != "$(grep weights "$T_TMP/p1")" ] && pass || fail "plan: weights part shrinks"

ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 6
ok "fixture eval pack (5 records)" "$fx" --pack "$T_TMP/epack" "$model" 5
base="--model $model --threads 1 -q --comm-timeout 60"
sp="--pack $T_TMP/pack --max-steps 3 --lora dropout=0 --batch 1"
strip() {
	sed 's/"elapsed":[^,}]*//; s/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//; s/"comm_s":[^,}]*//; s/"comm_bytes":[^,}]*//' "$1/metrics.jsonl"
}
same_final() {
	cmp -s "$1/final/adapter_model.safetensors" "$2/final/adapter_model.safetensors" &&
		cmp -s "$1/final/aligner.safetensors" "$2/final/aligner.safetensors" &&
		strip "$1" >"$T_TMP/m1" && strip "$2" >"$T_TMP/m2" && cmp -s "$T_TMP/m1" "$T_TMP/m2"
}

ok "2 ranks, --overlap 0" "$bin" run $base $sp --out "$T_TMP/o0" --overlap 0 --nproc-per-node 2
ok "2 ranks, --overlap 1" "$bin" run $base $sp --out "$T_TMP/o1" --nproc-per-node 2
same_final "$T_TMP/o0" "$T_TMP/o1" && pass || fail "overlap = one all-reduce after the backward (bitwise)"
"$bin" run --model "$model" --threads 1 --comm-timeout 60 $sp --out "$T_TMP/s1" --shard-frozen --nproc-per-node 2 \
	>"$T_TMP/out" 2>"$T_TMP/err"
[ $? -eq 0 ] && pass || fail "2 ranks, --shard-frozen"
same_final "$T_TMP/o0" "$T_TMP/s1" && pass || fail "shard-frozen = every weight on every rank (bitwise)"
grep -q "kept as 1/2 shards" "$T_TMP/err" && pass || fail "shard-frozen: the sharding is logged"
# 3 steps x (forward + backward) x 4 layers: the first step gathers 2L - 2 = 6 (the
# backward's first two layers are still held from the forward), later steps 2L - 4 = 4;
# only the very first layer is not prefetched.
grep -q "14 layer gathers (1 not prefetched)" "$T_TMP/err" && pass || fail "shard-frozen: prefetch counts"

# 3 ranks over tcp: the rank-order sum makes the buckets bitwise one flat all-reduce.
ok "3 ranks, --overlap 0" "$bin" run $base $sp --out "$T_TMP/t0" --overlap 0 --nproc-per-node 3
ok "3 ranks, overlap + shard" "$bin" run $base $sp --out "$T_TMP/t1" --shard-frozen --nproc-per-node 3
same_final "$T_TMP/t0" "$T_TMP/t1" && pass || fail "3 ranks: overlap + shard-frozen bitwise"

# Gradient accumulation: only the last micro-batch's backward starts the buckets.
ok "accum 2, --overlap 0" "$bin" run $base $sp --out "$T_TMP/a0" --grad-accum 2 --overlap 0 --nproc-per-node 2
ok "accum 2, overlap + shard" "$bin" run $base $sp --out "$T_TMP/a1" --grad-accum 2 --shard-frozen --nproc-per-node 2
same_final "$T_TMP/a0" "$T_TMP/a1" && pass || fail "accum 2: overlap + shard-frozen bitwise"

# An eval pack of 5 records at 2 ranks x batch 2: rank 1 has no sample in the last eval
# batch and runs the gathers alone (no hang, same eval lines).
ev="--eval-pack $T_TMP/epack --eval-every 2 --batch 2 --pack $T_TMP/pack --max-steps 2 --lora dropout=0"
ok "eval, plain" "$bin" run $base $ev --out "$T_TMP/e0" --overlap 0 --nproc-per-node 2
ok "eval, overlap + shard" "$bin" run $base $ev --out "$T_TMP/e1" --shard-frozen --nproc-per-node 2
same_final "$T_TMP/e0" "$T_TMP/e1" && pass || fail "eval with an idle rank: bitwise"
grep -q '"eval":true.*"samples":5' "$T_TMP/e1/metrics.jsonl" && pass || fail "eval covers the 5 records"

if ! command -v mpirun >/dev/null 2>&1 || ! "$bin" --version | grep -q "MPI=yes"; then
	skip "the mpirun cases need Open MPI (libopenmpi-dev openmpi-bin) and an MPI build"
	finish
	exit
fi
ok "mpirun -np 2, overlap + shard" mpirun -np 2 "$bin" run $base $sp --out "$T_TMP/mp" --shard-frozen
same_final "$T_TMP/o0" "$T_TMP/mp" && pass || fail "mpirun overlap + shard = tcp plain (bitwise)"
finish
