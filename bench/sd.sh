#!/bin/sh
# SD 1.5-sized UNet pass (32x32 latent, 77 tokens) and VAE encode (256x256), ours vs
# diffusers + PyTorch on the CPU, same thread count, median of RUNS, peak RSS of each
# process. Random fp32 weights: ours from a fixed seed written once to $SD_BENCH_DIR
# (about 3.6 GB), PyTorch's from its own init of the same configs.
# Env: BUILD (build dir), PY (python with torch+diffusers, empty = skip peer),
#      THREADS (default: nproc), RUNS (default 3), SD_BENCH_DIR (default /tmp/lvd-bench-sd).
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-3}
DIR=${SD_BENCH_DIR:-/tmp/lvd-bench-sd}
CONFIGS=${SD_CONFIGS:-../shared/data/sd15_configs}
BIN=$BUILD/bench/bench_sd
[ -x "$BIN" ] || { echo "sd: $BIN not built" >&2; exit 1; }
[ -f "$CONFIGS/unet_config.json" ] || { echo "sd: SKIP (no SD 1.5 configs at $CONFIGS)"; exit 0; }
"$BIN" gen "$DIR" "$CONFIGS" || exit 1
mkdir -p bench/out
for what in unet vae; do
	ours=$("$BIN" "$what" "$DIR" "$RUNS" "$THREADS") || exit 1
	echo "$ours" | tee -a bench/out/sd.jsonl
	if [ -n "$PY" ]; then
		peer=$("$PY" bench/sd_peer.py "$what" "$CONFIGS" "$RUNS" "$THREADS") || exit 1
		echo "$peer" | tee -a bench/out/sd.jsonl
		o=$(echo "$ours" | sed -E 's/.*"median_s": ([0-9.]+).*/\1/')
		p=$(echo "$peer" | sed -E 's/.*"median_s": ([0-9.]+).*/\1/')
		g=$(echo "$ours" | sed -E 's/.*"gemm_share": ([0-9.]+).*/\1/')
		awk -v o="$o" -v p="$p" -v g="$g" -v w="$what" -v t="$THREADS" 'BEGIN {
			printf "sd %s: ours %.3f s, pytorch %.3f s, ratio %.2fx (goal <= 0.80), GEMM share %.0f%%, %d threads\n",
			       w, o, p, o / p, 100 * g, t }'
	else
		echo "sd $what: SKIP peer (no PY; make ref-env)"
	fi
done
