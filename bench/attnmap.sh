#!/bin/sh
# sd-attnmap throughput on the CPU: images/s and maps/s (one map = one caption token)
# with the tool's own per-stage split (decode, text, VAE, UNet, aggregation, record
# encode, compression + I/O), for
#   1. the tiny SD config of tests/golden/sd (8 real photos, --resolution 256);
#   2. SD 1.5 dimensions at 256x256 with random weights (4 photos, 4 timesteps): UNet
#      and VAE from bench/bench_sd (`bench_sd gen`, shared with bench/sd.sh), the CLIP-L
#      text encoder written once by transformers (needs PY; SKIP otherwise).
# Env: BUILD, PY, THREADS (default: nproc), SD_BENCH_DIR (default /tmp/lvd-bench-sd),
#      LVD_SHARED_DATA (default ../shared/data). Results go to bench/out/attnmap.txt.
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
DIR=${SD_BENCH_DIR:-/tmp/lvd-bench-sd}
SHARED=${LVD_SHARED_DATA:-../shared/data}
CONFIGS=${SD_CONFIGS:-$SHARED/sd15_configs}
BIN=$BUILD/sd-attnmap
[ -x "$BIN" ] || { echo "attnmap: $BIN not built" >&2; exit 1; }
[ -f "$SHARED/images/captions.jsonl" ] || { echo "attnmap: SKIP (no $SHARED/images)"; exit 0; }
mkdir -p bench/out
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# manifest of the first N photos of captions.jsonl
manifest() {
	head -n "$1" "$SHARED/images/captions.jsonl" |
		sed -E 's/^\{"image": "([^"]+)", "caption": "([^"]*)".*/{"id": "\1", "image": "\1", "caption": "\2"}/' >"$2"
}

report() { # name, stderr log
	summary=$(grep 'summary:' "$2" | sed -E 's/^sd-attnmap( run)?: //')
	timings=$(grep 'timings' "$2" | sed -E 's/^sd-attnmap( run)?: //')
	echo "attnmap $1 ($THREADS threads): $summary" | tee -a bench/out/attnmap.txt
	echo "attnmap $1: $timings" | tee -a bench/out/attnmap.txt
}

manifest 8 "$TMP/m8.jsonl"
"$BIN" run --sd tests/golden/sd/diffusers --tokenizer "$SHARED/clip" --fold-vocab --images "$SHARED/images" \
	--manifest "$TMP/m8.jsonl" --out "$TMP/tiny" --resolution 256 --threads "$THREADS" --timings --keep-going \
	2>"$TMP/tiny.log" || { cat "$TMP/tiny.log" >&2; exit 1; }
report "tiny-256" "$TMP/tiny.log"

# SD 1.5 dimensions, random weights
if [ ! -f "$CONFIGS/unet_config.json" ]; then
	echo "attnmap sd15-256: SKIP (no SD 1.5 configs at $CONFIGS)"
	exit 0
fi
. bench/sd15_folder.inc
sd15_folder
case $? in
1) exit 1 ;;
2) echo "attnmap sd15-256: SKIP (the random CLIP-L text encoder is written with transformers: make ref-env)"
   exit 0 ;;
esac
manifest 4 "$TMP/m4.jsonl"
"$BIN" run --sd "$DIR" --tokenizer "$SHARED/clip" --images "$SHARED/images" --manifest "$TMP/m4.jsonl" \
	--out "$TMP/sd15" --resolution 256 --threads "$THREADS" --timings --keep-going \
	2>"$TMP/sd15.log" || { cat "$TMP/sd15.log" >&2; exit 1; }
report "sd15-256" "$TMP/sd15.log"
