# ZeRO-1 in lvd-sft run --full (docs/dist.md) on the golden tiny mllama and the tiny pack of
# build/tests/test_sft --pack, 2 local ranks over TCP (--nproc-per-node 2; the same code
# runs under mpirun): the sharded optimiser state (--zero 1, the default) gives the same
# bits as the all-reduce (--zero 0), checkpoints included, and equals 1 rank x batch 2
# within fp32 summation order; comm_bytes in metrics.jsonl; SIGKILL of rank 1 then resume
# (2 ranks, and from the checkpoint on 1 rank) equals the uninterrupted run.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

expect_stdout "--zero" "--help lists --zero" "$bin" run --help
ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 6
base="--model $model --threads 1 -q --comm-timeout 60 --pack $T_TMP/pack --full"
expect_exit 2 "--zero 1 without --full" "$bin" run --model "$model" --pack "$T_TMP/pack" --out "$T_TMP/x" --zero 1
expect_exit 2 "--zero 2" "$bin" run $base --out "$T_TMP/x" --zero 2
[ ! -e "$T_TMP/x" ] && pass || fail "refusals create no run folder"

shard=model-00001-of-00001.safetensors
# The metrics apart from the timing fields and comm_bytes.
strip() { sed 's/"elapsed":[^,}]*//; s/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//; s/"comm_s":[^,}]*//; s/"comm_bytes":[^,}]*//' "$1/metrics.jsonl"; }
same_run() {
	cmp -s "$1/final/$shard" "$2/final/$shard" && cmp -s "$1/final/aligner.safetensors" "$2/final/aligner.safetensors" &&
		strip "$1" >"$T_TMP/m1" && strip "$2" >"$T_TMP/m2" && cmp -s "$T_TMP/m1" "$T_TMP/m2"
}

# ZeRO-1 = all-reduce, bitwise (2 ranks: the sum of two values does not depend on order).
s="--max-steps 3 --save-every 2 --batch 1"
ok "2 ranks, ZeRO-1 (default)" "$bin" run $base $s --out "$T_TMP/z1" --nproc-per-node 2
ok "2 ranks, --zero 0" "$bin" run $base $s --out "$T_TMP/z0" --nproc-per-node 2 --zero 0
same_run "$T_TMP/z1" "$T_TMP/z0" && pass || fail "ZeRO-1 = all-reduce: final weights and metrics bitwise"
for c in ckpt-000002 ckpt-000003; do
	cmp -s "$T_TMP/z1/$c/state.safetensors" "$T_TMP/z0/$c/state.safetensors" && pass ||
		fail "ZeRO-1 = all-reduce: $c (full moments gathered) bitwise"
done
n=$(grep -c '"comm_bytes":[1-9]' "$T_TMP/z1/metrics.jsonl")
[ "$n" -eq 3 ] && pass || fail "comm_bytes > 0 on every step ($n of 3)"
# The sharded path really ran: the TCP socket counts other bytes than the all-reduce's.
b1=$(sed -n 's/.*"comm_bytes":\([0-9]*\).*/\1/p' "$T_TMP/z1/metrics.jsonl" | head -1)
b0=$(sed -n 's/.*"comm_bytes":\([0-9]*\).*/\1/p' "$T_TMP/z0/metrics.jsonl" | head -1)
[ -n "$b1" ] && [ "$b1" != "$b0" ] && pass || fail "ZeRO-1 and all-reduce send other bytes ($b1, $b0)"
# = 1 rank x batch 2 within fp32 summation order: AdamW divides each element's step by
# sqrt(v), so the rounding of a gradient near 0 can move its weight by up to lr per step
# (1e-4 here); measured 4.2e-6, as 1 rank x batch 1 x accum 2 gives.
ok "1 rank x batch 2" "$bin" run $base --max-steps 3 --save-every 2 --batch 2 --out "$T_TMP/b2"
ok "ZeRO-1 = 1 rank x batch 2: model" "$fx" --compare "$T_TMP/b2/final/$shard" "$T_TMP/z1/final/$shard" 1e-5
ok "ZeRO-1 = 1 rank x batch 2: Aligner" "$fx" --compare "$T_TMP/b2/final/aligner.safetensors" \
	"$T_TMP/z1/final/aligner.safetensors" 1e-6 diffag_conv_last.bias
ok "ZeRO-1 checkpoint: the tensors of a 1-rank one" "$fx" --compare "$T_TMP/b2/ckpt-000003/state.safetensors" \
	"$T_TMP/z1/ckpt-000003/state.safetensors" 1e9

# SIGKILL of rank 1 after update 4 (ckpt-000003 exists), then the same command again:
# rank 0 loads the full state and each rank takes its shard. Bitwise = uninterrupted.
kr="--epochs 2 --save-every 3 --batch 1 --train text,cross --lr 1e-3"
ok "uninterrupted (2 ranks, ZeRO-1)" "$bin" run $base $kr --out "$T_TMP/u" --nproc-per-node 2
LVD_SFT_KILL_AT=4 LVD_SFT_KILL_RANK=1 "$bin" run $base $kr --out "$T_TMP/k" --nproc-per-node 2 \
	>"$T_TMP/out" 2>"$T_TMP/err"
[ $? -ne 0 ] && pass || fail "rank 1 killed: the job fails"
[ -d "$T_TMP/k/ckpt-000003" ] && [ ! -e "$T_TMP/k/ckpt-000006" ] && pass || fail "killed at step 4: ckpt 3 only"
cp -r "$T_TMP/k" "$T_TMP/k1"
ok "resume after the kill (2 ranks)" "$bin" run $base $kr --out "$T_TMP/k" --nproc-per-node 2
same_run "$T_TMP/u" "$T_TMP/k" && pass || fail "kill + resume = uninterrupted (bitwise)"
cmp -s "$T_TMP/u/ckpt-000006/state.safetensors" "$T_TMP/k/ckpt-000006/state.safetensors" && pass ||
	fail "kill + resume: last checkpoint bitwise"
# Resume on 1 rank (the whole state, no sharding): the killed run's checkpoint continues
# exactly as the uninterrupted run's does.
mkdir "$T_TMP/r1" && cp -r "$T_TMP/u/ckpt-000003" "$T_TMP/r1/" && cp "$T_TMP/u/run.json" "$T_TMP/r1/" &&
	head -3 "$T_TMP/u/metrics.jsonl" >"$T_TMP/r1/metrics.jsonl"
ok "resume the killed run on 1 rank" "$bin" run $base $kr --out "$T_TMP/k1" --max-steps 5
ok "resume the uninterrupted run's ckpt-3 on 1 rank" "$bin" run $base $kr --out "$T_TMP/r1" --max-steps 5
same_run "$T_TMP/k1" "$T_TMP/r1" && pass || fail "1-rank resume of the killed run = of the uninterrupted (bitwise)"
grep '"step":5,' "$T_TMP/k1/metrics.jsonl" | grep -vq comm_bytes && pass || fail "1-rank resume: no comm_bytes"
finish
