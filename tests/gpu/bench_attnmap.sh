#!/bin/sh
# sd-attnmap on the GPU vs diffusers + PyTorch on the same GPU, one call of tests/gpu/run.sh
# (its step attnmap_bench): SD 1.5 dimensions with random weights (UNet and VAE from
# bench_sd gen, the CLIP-L text encoder from bench_sd gen-text: no Python needed), 512²
# (seven square photos of ../shared/data/images, cycled under distinct ids: one latent
# shape, 64x64), timesteps 100,300,500,700, --batch 1 and 8:
#   ours   sd-attnmap run --device cuda --batch B: images/s from its summary, the achieved
#          UNet TFLOP/s (images/s x 4 passes x the analytic FLOPs of one pass, bench_sd
#          flops) and its fraction of the GPU's dense bf16 peak (PEAK_TFLOPS, default 989:
#          H100 SXM / H200), GPU memory: weights + device workspace peak (the tool's log);
#   peer   bench/attnmap_peer_gpu.py with the same batch (bf16, SDPA attn1, an attn2
#          capturing processor), when PY (default .venv-ref/bin/python) has torch with CUDA
#          and diffusers; SKIP otherwise.
# Prints one line per measurement and a last line "attnmap-gpu: ..." (the report).
# Env: BUILD (build), LVD_SHARED_DATA (../shared/data), SD_BENCH_DIR (/tmp/lvd-gpu-bench-sd),
#      PY, PEAK_TFLOPS, N1 / N8 (images at batch 1 / 8: 16 / 64).
set -u
BUILD=${BUILD:-build}
SHARED=${LVD_SHARED_DATA:-../shared/data}
CONFIGS=$SHARED/sd15_configs
DIR=${SD_BENCH_DIR:-/tmp/lvd-gpu-bench-sd}
PY=${PY:-.venv-ref/bin/python}
PEAK=${PEAK_TFLOPS:-989}
N1=${N1:-16}
N8=${N8:-64}
BIN=$BUILD/sd-attnmap
GEN=$BUILD/bench/bench_sd
for f in "$BIN" "$GEN"; do
	[ -x "$f" ] || { echo "attnmap-gpu: $f not built (make all $GEN)"; exit 1; }
done
[ -f "$SHARED/images/captions.jsonl" ] && [ -d "$CONFIGS" ] || { echo "attnmap-gpu: SKIP (no $SHARED)"; exit 0; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# the SD 1.5-dimension folder (written once, ~4 GB of fp32)
mkdir -p "$DIR"
"$GEN" gen "$DIR" "$CONFIGS" && "$GEN" gen-text "$DIR" "$CONFIGS" || { echo "attnmap-gpu: bench_sd gen failed"; exit 1; }
cp "$CONFIGS/model_index.json" "$DIR/model_index.json" 2>/dev/null
FLOPS=$("$GEN" flops "$DIR" 64 64) || exit 1

# manifest: the square photos (512x512 at --resolution 512), cycled
SQ="COCO_val2014_000000203438.png COCO_val2014_000000438915.png COCO_val2014_000000487349.png
COCO_val2014_000000481252.png COCO_val2014_000000455675.png skimage_astronaut.png skimage_camera.png"
manifest() { # N FILE
	i=0
	while [ "$i" -lt "$1" ]; do
		for im in $SQ; do
			[ "$i" -lt "$1" ] || break
			cap=$(grep -F "\"$im\"" "$SHARED/images/captions.jsonl" | head -n 1 |
				sed -E 's/.*"caption": "([^"]*)".*/\1/')
			echo "{\"id\": \"s$i\", \"image\": \"$im\", \"caption\": \"${cap:-a photo}\"}"
			i=$((i + 1))
		done
	done >"$2"
}
manifest "$N8" "$T/m8.jsonl"
head -n "$N1" "$T/m8.jsonl" >"$T/m1.jsonl"

REPORT=""
ours() { # BATCH MANIFEST
	log=$T/ours$1.log
	"$BIN" run --sd "$DIR" --tokenizer "$SHARED/clip" --manifest "$2" --images "$SHARED/images" --out "$T/o$1" \
		--resolution 512 --device cuda --batch "$1" --threads 8 --timings 2>"$log"
	rc=$?
	cat "$log"
	if [ "$rc" -ne 0 ]; then
		REPORT="$REPORT ours b$1 FAILED (exit $rc);"
		return 1
	fi
	ips=$(sed -nE 's/.* ([0-9.]+) images\/s.*/\1/p' "$log" | tail -n 1)
	wts=$(sed -nE 's/.*weights ([0-9.]+) GiB.*/\1/p' "$log" | tail -n 1)
	wsp=$(sed -nE 's/.*workspace peak ([0-9.]+) GiB.*/\1/p' "$log" | tail -n 1)
	tf=$(awk -v i="$ips" -v f="$FLOPS" 'BEGIN { printf "%.1f", i * 4 * f / 1e12 }')
	pct=$(awk -v t="$tf" -v p="$PEAK" 'BEGIN { printf "%.1f", 100 * t / p }')
	mem=$(awk -v a="${wts:-0}" -v b="${wsp:-0}" 'BEGIN { printf "%.2f", a + b }')
	echo "ours batch $1: $ips images/s, UNet $tf TFLOP/s ($pct% of $PEAK), GPU memory $mem GiB (weights $wts + workspace peak $wsp)"
	eval "OURS$1=$ips"
	REPORT="$REPORT b$1 ours $ips img/s $tf TFLOP/s ${pct}% mem ${mem}GiB"
}
peer() { # BATCH STEPS
	if ! "$PY" -c "import torch, diffusers; assert torch.cuda.is_available()" 2>/dev/null; then
		echo "peer: SKIP ($PY without torch+CUDA+diffusers)"
		REPORT="$REPORT peer SKIP;"
		return 0
	fi
	out=$("$PY" bench/attnmap_peer_gpu.py "$CONFIGS" "$SHARED/clip" "$T/m8.jsonl" "$SHARED/images" 512 "$1" "$2" 2>"$T/peer$1.log")
	rc=$?
	echo "peer batch $1: $out"
	[ "$rc" -eq 0 ] || { tail -n 20 "$T/peer$1.log"; REPORT="$REPORT peer b$1 FAILED;"; return 1; }
	pips=$(echo "$out" | sed -nE 's/.*"images_per_s": ([0-9.]+).*/\1/p')
	pmem=$(echo "$out" | sed -nE 's/.*"peak_mem_gib": ([0-9.]+).*/\1/p')
	eval "o=\${OURS$1:-0}"
	ratio=$(awk -v a="$o" -v b="$pips" 'BEGIN { printf "%.2f", b > 0 ? a / b : 0 }')
	REPORT="$REPORT, peer $pips img/s mem ${pmem}GiB, ours/peer ${ratio}x;"
}
st=0
ours 1 "$T/m1.jsonl" || st=1
peer 1 "$N1" || st=1
ours 8 "$T/m8.jsonl" || st=1
peer 8 $((N8 / 8)) || st=1
echo "attnmap-gpu ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1), 512², 4 timesteps, UNet $(awk -v f="$FLOPS" 'BEGIN { printf "%.3f", f / 1e12 }') TFLOP/pass):$REPORT"
exit $st
