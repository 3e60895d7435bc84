#!/bin/sh
# sd-attnmap --method inversion against the default noise method, on the same photos and
# threads, back to back: seconds per image of each and their ratio, and how alike the two
# methods' maps are (per caption token: Pearson between the two maps; mean, min, max).
#   1. the tiny SD of tests/golden/sd (4 photos, --resolution 256, --steps 50);
#   2. SD 1.5 dimensions at 256² with random weights (2 photos, --steps STEPS15, default
#      10; the UNet passes scale linearly: 1 + 2·steps passes per image against 4), using
#      the folder bench/attnmap.sh writes (SD_BENCH_DIR; SKIP when absent).
# Random weights say nothing about how real SD's two maps compare: run it with
# SD=/path/to/stable-diffusion-v1-4 for that (the Pearson numbers are then meaningful).
# Env: BUILD, PY (for the Pearson numbers; SKIP without), THREADS (default nproc), SD,
#      SD_BENCH_DIR, STEPS15, LVD_SHARED_DATA. Results: bench/out/attnmap_inversion.txt.
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
DIR=${SD_BENCH_DIR:-/tmp/lvd-bench-sd}
SHARED=${LVD_SHARED_DATA:-../shared/data}
STEPS15=${STEPS15:-10}
BIN=$BUILD/sd-attnmap
[ -x "$BIN" ] || { echo "attnmap_inversion: $BIN not built" >&2; exit 1; }
[ -f "$SHARED/images/captions.jsonl" ] || { echo "attnmap_inversion: SKIP (no $SHARED/images)"; exit 0; }
mkdir -p bench/out
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=bench/out/attnmap_inversion.txt
: >"$OUT"

manifest() {
	head -n "$1" "$SHARED/images/captions.jsonl" |
		sed -E 's/^\{"image": "([^"]+)", "caption": "([^"]*)".*/{"id": "\1", "image": "\1", "caption": "\2"}/' >"$2"
}

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

# compare NAME SD_ARGS... -- N STEPS: runs both methods and reports
compare() {
	name=$1; n=$2; steps=$3; shift 3
	manifest "$n" "$TMP/m.jsonl"
	t0=$(now)
	"$BIN" run "$@" --images "$SHARED/images" --manifest "$TMP/m.jsonl" --out "$TMP/$name-noise" \
		--resolution 256 --threads "$THREADS" -q --keep-going || return 1
	t1=$(now)
	"$BIN" run "$@" --images "$SHARED/images" --manifest "$TMP/m.jsonl" --out "$TMP/$name-inv" \
		--resolution 256 --threads "$THREADS" -q --keep-going --method inversion --steps "$steps" || return 1
	t2=$(now)
	sn=$(secs "$t0" "$t1"); si=$(secs "$t1" "$t2")
	awk -v n="$n" -v a="$sn" -v b="$si" -v s="$steps" -v name="$name" -v th="$THREADS" 'BEGIN {
		printf "attnmap_inversion %s (%d threads, %d images): noise (4 timesteps) %.3f s/image, inversion (--steps %d, guidance 7.5: %d UNet passes) %.3f s/image, ratio %.1fx\n",
			name, th, n, a / n, s, 1 + 2 * s, b / n, b / a }' | tee -a "$OUT"
	if [ -z "$PY" ]; then
		echo "attnmap_inversion $name: Pearson SKIP (no PY)" | tee -a "$OUT"
		return 0
	fi
	"$BIN" inspect "$TMP/$name-noise" --maps >"$TMP/a.jsonl" && "$BIN" inspect "$TMP/$name-inv" --maps >"$TMP/b.jsonl" &&
		"$PY" - "$TMP/a.jsonl" "$TMP/b.jsonl" "$name" <<'PYEOF' | tee -a "$OUT"
import json, sys
import numpy as np
a = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
b = {r["id"]: r for r in map(json.loads, open(sys.argv[2]))}
rs = []
for k in a:
    if k not in b:
        continue
    for x, y in zip(a[k]["maps"], b[k]["maps"]):
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        if x.std() > 0 and y.std() > 0:
            rs.append(float(np.corrcoef(x, y)[0, 1]))
rs = np.asarray(rs)
print("attnmap_inversion %s: Pearson(noise map, inversion map) per token over %d tokens: mean %.3f, min %.3f, max %.3f"
      % (sys.argv[3], len(rs), rs.mean(), rs.min(), rs.max()))
PYEOF
}

if [ -n "${SD:-}" ]; then
	compare "user-sd" 4 50 --sd "$SD" || exit 1
	exit 0
fi
compare "tiny-256" 4 50 --sd tests/golden/sd/diffusers --tokenizer "$SHARED/clip" --fold-vocab || exit 1
if [ -f "$DIR/text_encoder/model.safetensors" ] && [ -f "$DIR/unet/diffusion_pytorch_model.safetensors" ]; then
	compare "sd15-256" 2 "$STEPS15" --sd "$DIR" --tokenizer "$SHARED/clip" || exit 1
else
	echo "attnmap_inversion sd15-256: SKIP (run bench/attnmap.sh first: it writes $DIR)" | tee -a "$OUT"
fi
