#!/bin/sh
# Everything that needs a GPU, in one script for a lent device machine:
#   sh tests/gpu/run.sh      (from the repository root)
# Logs go to $OUT when set (what a lent machine brings back), else build/gpu-logs/.
# Steps, each logged to its own file, the most valuable first so a short lease still
# yields them; every step runs even when an earlier one failed, and the exit status is 1
# when any failed:
#   devices      nvidia-smi
#   build        make CUDA=1 all + test binaries (NVWERROR= so a newer toolkit's new
#                warnings cannot stop the run; -Werror is checked where CI builds)
#   ops          the CPU-vs-CUDA op test (build/tests/test_cuda_ops), every case named
#   sd           SD end to end on the GPU vs the fp32 CPU model, maps per token on real
#                photos, and sd-attnmap --device cuda vs cpu (build/tests/test_cuda_sd)
#   mllama       mllama training on the GPU vs the CPU model (#20): forward, captured
#                probabilities, every gradient, AdamW, a 5-step LoRA run
#                (build/tests/test_cuda_mllama)
#   dist         the NCCL communicator with one rank (build/tests/test_cuda_dist)
#   bench        GEMM: lvd_gemm_cuda / lvd_gemm_bf16_cuda vs plain cuBLAS, TFLOP/s
#   bench_sd     SD ops at SD 1.5 512² shapes: fused attention vs the explicit path,
#                conv fp32 / bf16 weights vs cuDNN bf16, TFLOP/s (bench_sd_ops)
#   attnmap_bench  sd-attnmap --device cuda at SD 1.5 dims, 512², 4 timesteps, --batch 1
#                and 8 vs diffusers + PyTorch (bench/attnmap_peer_gpu.py, needs PY with
#                torch): images/s, UNet TFLOP/s, GPU memory (tests/gpu/bench_attnmap.sh)
#   mllama_bench one mllama training step (LoRA r 8 and full) at Llama-3.2-11B-Vision
#                dimensions with fewer layers, 4-tile image + 512 tokens, vs transformers +
#                PEFT (bf16, SDPA) on the same GPU: step time, text-decoder MFU, memory vs
#                the planner (tests/gpu/bench_mllama_train.sh)
#   memcheck     the op test under compute-sanitizer (out-of-bounds, races) if present
#   suite        the whole `make test` (CPU tests plus the op test again)
# Budget: about 1 min to build on 16 cores, seconds for ops and bench, ~1 min for sd,
# ~3 min for attnmap_bench (writing the 4 GB random-weight folder included), ~1 min for
# mllama, ~3 min for mllama_bench (filling ~3B random parameters on the host), ~1 min
# memcheck, a few minutes for the suite; each step has a timeout.
set -u
LOG=${OUT:-build/gpu-logs}
mkdir -p "$LOG"
J=$(nproc 2>/dev/null || echo 4)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
FAILED=""

step() {
	name=$1; limit=$2; shift 2
	echo "== $name: $*"
	start=$(date +%s)
	timeout "$limit" "$@" >"$LOG/$name.log" 2>&1
	rc=$?
	echo "== $name: exit $rc after $(( $(date +%s) - start ))s (log $LOG/$name.log)"
	tail -n 60 "$LOG/$name.log"
	[ "$rc" -eq 0 ] || FAILED="$FAILED $name"
	return 0
}

step devices 30 nvidia-smi
step build 400 sh -c "{ sh scripts/deps.sh --check || sh scripts/deps.sh; } && make -j$J CUDA=1 NVWERROR= all build/tests/test_cuda_ops build/tests/test_cuda_dist build/tests/test_cuda_sd build/tests/test_cuda_mllama build/bench/bench_sd"
if [ -x build/tests/test_cuda_ops ]; then
	step ops 120 env LVD_TEST_VERBOSE=1 build/tests/test_cuda_ops
	step sd 240 env LVD_TEST_VERBOSE=1 build/tests/test_cuda_sd
	step mllama 240 env LVD_TEST_VERBOSE=1 build/tests/test_cuda_mllama
	step dist 120 env LVD_TEST_VERBOSE=1 build/tests/test_cuda_dist
	step bench 120 build/gpu/bench_gemm 10
	step bench_sd 120 build/gpu/bench_sd_ops 10
	step attnmap_bench 420 sh tests/gpu/bench_attnmap.sh
	step mllama_bench 420 sh tests/gpu/bench_mllama_train.sh
	if [ -x "$CUDA_HOME/bin/compute-sanitizer" ]; then
		step memcheck 240 "$CUDA_HOME/bin/compute-sanitizer" --tool memcheck --error-exitcode 3 \
			build/tests/test_cuda_ops
	fi
	step suite 420 make -j"$J" CUDA=1 NVWERROR= test
fi
if [ -n "$FAILED" ]; then
	echo "gpu run: failed:$FAILED"
	exit 1
fi
echo "gpu run: all steps passed"
