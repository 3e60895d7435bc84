#!/bin/sh
# Data-parallel lvd-sft on CPU ranks (docs/dist.md): step time of 1 rank x batch 2 vs
# 2 ranks x batch 1 (equal global batch) on the medium mllama config of bench/mllama.sh
# (its model folder, made by bench/mllama_peer.py; a pack of 8 fixture records from
# build/tests/test_sft --pack), LoRA r=8 on q_proj,v_proj plus the Aligner, 1 thread per
# rank, BENCH_STEPS (default 3) steps, medians over steps. The ranks talk over mpirun
# when the build has MPI, else --nproc-per-node (TCP). Prints the all-reduce share of the
# 2-rank step (comm_s in metrics.jsonl: the gradient all-reduce, including the wait for
# the slower rank) and the bytes each rank sends per step for LoRA and for full
# fine-tuning (ring all-reduce 2(W-1)/W x 4 bytes x params; ZeRO-1 sends the same:
# reduce-scatter + all-gather, and keeps 8/W bytes of AdamW state per param instead of 8).
# Measured: --full on 2 ranks with --zero 1 and --zero 0 (BENCH_FULL_STEPS, default 2,
# steps each), the median comm_bytes (rank 0's bytes in the step's collectives: MPI's
# ring count, or the TCP socket's) and comm_s of the steps.
# On a 2-core machine shared with other jobs the 2-rank number shows overhead, not a
# speed-up; the peer here is the 1-rank run measured in the same script.
set -eu
BUILD=${BUILD:-build}
PY=${PY:-}
STEPS=${BENCH_STEPS:-3}
FSTEPS=${BENCH_FULL_STEPS:-2}
if [ -z "$PY" ]; then
	echo "dist: SKIP (no .venv-ref: the medium model folder needs transformers)"
	exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$PY" bench/mllama_peer.py make "$dir/model" >/dev/null 2>&1
"$BUILD/tests/test_sft" --pack "$dir/pack" "$dir/model" 8 224 14 4 8192
c="--model $dir/model --pack $dir/pack --max-steps $STEPS --threads 1 -q --save-every 100000"
OPENBLAS_NUM_THREADS=1 "$BUILD/lvd-sft" run $c --out "$dir/r1" --batch 2
if command -v mpirun >/dev/null 2>&1 && "$BUILD/lvd-sft" --version | grep -q "MPI=yes"; then
	launch=mpirun
	OPENBLAS_NUM_THREADS=1 mpirun -np 2 "$BUILD/lvd-sft" run $c --out "$dir/r2" --batch 1
	for z in 0 1; do
		OPENBLAS_NUM_THREADS=1 mpirun -np 2 "$BUILD/lvd-sft" run $c --out "$dir/f$z" --batch 1 --full --zero $z \
			--max-steps "$FSTEPS"
	done
else
	launch=nproc-per-node
	OPENBLAS_NUM_THREADS=1 "$BUILD/lvd-sft" run $c --out "$dir/r2" --batch 1 --nproc-per-node 2
	for z in 0 1; do
		OPENBLAS_NUM_THREADS=1 "$BUILD/lvd-sft" run $c --out "$dir/f$z" --batch 1 --nproc-per-node 2 --full \
			--zero $z --max-steps "$FSTEPS"
	done
fi
mkdir -p bench/out
"$PY" - "$dir" "$launch" <<'PY' | tee bench/out/dist.jsonl
import json, statistics, struct, subprocess, sys
d, launch = sys.argv[1], sys.argv[2]
def steps(run):
    m = [json.loads(l) for l in open(f"{d}/{run}/metrics.jsonl")]
    el = [x["elapsed"] for x in m]
    return [b - a for a, b in zip([0.0] + el, el)], [x.get("comm_s", 0.0) for x in m]
s1, _ = steps("r1")
s2, c2 = steps("r2")
def measured(run):
    m = [json.loads(l) for l in open(f"{d}/{run}/metrics.jsonl")]
    return statistics.median(x["comm_bytes"] for x in m), statistics.median(x["comm_s"] for x in m)
fb0, fc0 = measured("f0")
fb1, fc1 = measured("f1")
hdr = open(f"{d}/model/model.safetensors", "rb")
n = struct.unpack("<Q", hdr.read(8))[0]
meta = json.loads(hdr.read(n))
full = 0
for k, v in meta.items():
    if k != "__metadata__":
        p = 1
        for x in v["shape"]:
            p *= x
        full += p
st = open(f"{d}/r1/final/adapter_model.safetensors", "rb")
n = struct.unpack("<Q", st.read(8))[0]
lora = sum(eval("*".join(map(str, v["shape"]))) for k, v in json.loads(st.read(n)).items() if k != "__metadata__")
al = open(f"{d}/r1/final/aligner.safetensors", "rb")
n = struct.unpack("<Q", al.read(8))[0]
aligner = sum(eval("*".join(map(str, v["shape"]))) for k, v in json.loads(al.read(n)).items() if k != "__metadata__")
W = 2
ring = lambda p: 2 * (W - 1) / W * 4 * p
out = {
    "bench": "dist", "launcher": launch, "steps": len(s1),
    "step_s_1rank_b2": statistics.median(s1), "step_s_2rank_b1": statistics.median(s2),
    "ratio_2rank_over_1rank": statistics.median(s2) / statistics.median(s1),
    "allreduce_s": statistics.median(c2), "allreduce_share": statistics.median(c2) / statistics.median(s2),
    "params_lora_aligner": lora + aligner, "params_full": full + aligner,
    "bytes_per_step_lora": ring(lora + aligner), "bytes_per_step_full": ring(full + aligner),
    "bytes_per_step_full_zero1": ring(full + aligner),
    "adam_state_bytes_per_rank_full": 8 * (full + aligner), "adam_state_bytes_per_rank_full_zero1": 8 * (full + aligner) / W,
    "measured_comm_bytes_full": fb0, "measured_comm_bytes_full_zero1": fb1,
    "measured_comm_s_full": fc0, "measured_comm_s_full_zero1": fc1,
}
print(json.dumps(out))
print("dist: step 1 rank x b2 %.2fs, 2 ranks x b1 %.2fs (ratio %.2f, %s); all-reduce %.3fs = %.1f%% of the step; "
      "bytes/step/rank LoRA %.2f MB, full %.1f MB (ZeRO-1 the same, AdamW state/rank %.0f -> %.0f MB)" % (
      out["step_s_1rank_b2"], out["step_s_2rank_b1"], out["ratio_2rank_over_1rank"], launch, out["allreduce_s"],
      100 * out["allreduce_share"], out["bytes_per_step_lora"] / 1e6, out["bytes_per_step_full"] / 1e6,
      out["adam_state_bytes_per_rank_full"] / 1e6, out["adam_state_bytes_per_rank_full_zero1"] / 1e6), file=sys.stderr)
print("dist: --full on 2 ranks, measured per step (rank 0): all-reduce %.1f MB in %.3fs, ZeRO-1 %.1f MB in %.3fs "
      "(ratio %.3f)" % (fb0 / 1e6, fc0, fb1 / 1e6, fc1, fb1 / fb0 if fb0 else 0.0), file=sys.stderr)
PY
