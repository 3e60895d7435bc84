#!/bin/sh
# sd-attnmap with the timesteps batched into one UNet pass (issue #16): SD 1.5 and SD 2.1
# dimensions (random weights, as bench/attnmap.sh), 4 timesteps, THREADS threads, at 256²
# (4 photos) and 512² (2 photos): images/s and maps/s of
#   before  sd-attnmap run --unet-batch 1 (4 UNet passes of batch 1 per image)
#   after   sd-attnmap run (default: the 4 passes as one batch-4 pass)
#   peer    bench/attnmap_peer.py: diffusers + transformers, the same procedure with an
#           attn2 processor capturing the head-averaged maps, the 4 noised latents as one
#           batch-4 UNet pass, torch on THREADS threads
# one run each, back to back; prints the ratio after/peer (goal >= 1.5) and after/before.
# SD 2.1(-base) dimensions: the UNet with per-level head counts [5, 10, 20, 20] (head dim
# 64), linear proj_in/proj_out and 1024-wide cross-attention, the OpenCLIP-H text tower as
# diffusers stores it (23 layers of width 1024, 16 heads, gelu), the same VAE; configs
# derived from the SD 1.5 ones into $SD_BENCH_DIR/configs (random weights, as for 1.5).
# Both sides use the CLIP tokenizer folder (SD 2's pads with "!" instead of
# <|endoftext|>: same lengths, same cost).
# Env: BUILD, PY (needed: the peer and the random text encoder), THREADS (default 2),
#      SD_DIMS ("1.5", "2.1" or both, default "1.5 2.1"), SD_BENCH_DIR (with one SD_DIMS;
#      default /tmp/lvd-bench-sd, or /tmp/lvd-bench-sd21), LVD_SHARED_DATA (default
#      ../shared/data), ATTNMAP_BATCH_RES (default "256 512"). Results go to
#      bench/out/attnmap_batch.jsonl.
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
SD_DIMS=${SD_DIMS:-1.5 2.1}
case $SD_DIMS in
*" "*) # several: one run of this script per dimension set
	[ -z "${SD_BENCH_DIR:-}" ] || { echo "attnmap_batch: SD_BENCH_DIR needs a single SD_DIMS" >&2; exit 1; }
	for d in $SD_DIMS; do SD_DIMS=$d sh "$0" || exit 1; done
	exit 0 ;;
esac
case $SD_DIMS in
1.5) DIR=${SD_BENCH_DIR:-/tmp/lvd-bench-sd} ;;
2.1) DIR=${SD_BENCH_DIR:-/tmp/lvd-bench-sd21} ;;
*) echo "attnmap_batch: SD_DIMS must be 1.5 or 2.1, not '$SD_DIMS'" >&2; exit 1 ;;
esac
SHARED=${LVD_SHARED_DATA:-../shared/data}
CONFIGS=${SD_CONFIGS:-$SHARED/sd15_configs}
RES=${ATTNMAP_BATCH_RES:-256 512}
BIN=$BUILD/sd-attnmap
[ -x "$BIN" ] || { echo "attnmap_batch: $BIN not built" >&2; exit 1; }
[ -f "$SHARED/images/captions.jsonl" ] || { echo "attnmap_batch: SKIP (no $SHARED/images)"; exit 0; }
[ -f "$CONFIGS/unet_config.json" ] || { echo "attnmap_batch: SKIP (no SD 1.5 configs at $CONFIGS)"; exit 0; }
[ -n "$PY" ] || { echo "attnmap_batch: SKIP (the peer and the random text encoder need PY: make ref-env)"; exit 0; }
mkdir -p bench/out
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ "$SD_DIMS" = 2.1 ]; then # SD 2.1-base configs from the SD 1.5 ones
	mkdir -p "$DIR/configs"
	"$PY" - "$CONFIGS" "$DIR/configs" <<'EOF' || exit 1
import json, shutil, sys
src, dst = sys.argv[1:3]
for f in ("vae_config.json", "scheduler_config.json", "model_index.json"):
    shutil.copy(f"{src}/{f}", f"{dst}/{f}")
u = json.load(open(f"{src}/unet_config.json"))
u.update(attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, use_linear_projection=True)
json.dump(u, open(f"{dst}/unet_config.json", "w"), indent=2)
t = json.load(open(f"{src}/text_encoder_config.json"))
t.update(hidden_act="gelu", hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
         num_hidden_layers=23, projection_dim=512)
json.dump(t, open(f"{dst}/text_encoder_config.json", "w"), indent=2)
EOF
	CONFIGS=$DIR/configs
fi
. bench/sd15_folder.inc
sd15_folder || exit 1

manifest() { # first N photos of captions.jsonl
	head -n "$1" "$SHARED/images/captions.jsonl" |
		sed -E 's/^\{"image": "([^"]+)", "caption": "([^"]*)".*/{"id": "\1", "image": "\1", "caption": "\2"}/' >"$2"
}

ours() { # name, resolution, manifest, extra options -> JSON line
	name=$1 r=$2 m=$3
	shift 3
	"$BIN" run --sd "$DIR" --tokenizer "$SHARED/clip" --images "$SHARED/images" --manifest "$m" \
		--out "$TMP/$name-$r" --resolution "$r" --timesteps 100,300,500,700 --threads "$THREADS" --timings "$@" \
		2>"$TMP/$name-$r.log" || { cat "$TMP/$name-$r.log" >&2; return 1; }
	grep 'timings' "$TMP/$name-$r.log" | sed -E 's/^sd-attnmap( run)?: /  /' >&2
	# summary: "N samples ..., R records, S skipped, X.Xs, ..." ; maps = kept tokens, from inspect
	sec=$(grep 'summary:' "$TMP/$name-$r.log" | sed -E 's/.* ([0-9.]+)s, .*/\1/')
	imgs=$(grep 'summary:' "$TMP/$name-$r.log" | sed -E 's/.* ([0-9]+) records.*/\1/')
	maps=$("$BIN" inspect "$TMP/$name-$r" | grep -o '"str"' | wc -l)
	awk -v n="$name" -v d="$SD_DIMS" -v r="$r" -v t="$THREADS" -v s="$sec" -v i="$imgs" -v m="$maps" 'BEGIN {
		printf "{\"impl\": \"lvd-%s\", \"sd\": \"%s\", \"resolution\": %d, \"threads\": %d, \"images\": %d, \"maps\": %d, \"seconds\": %.3f, \"images_per_s\": %.4f, \"maps_per_s\": %.2f}\n",
		       n, d, r, t, i, m, s, i / s, m / s }'
}

ips() { echo "$1" | sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/'; }

for r in $RES; do
	n=4
	[ "$r" -ge 512 ] && n=2
	manifest "$n" "$TMP/m$r.jsonl"
	echo "attnmap_batch SD $SD_DIMS ${r}²: load average $(cut -d' ' -f1-3 /proc/loadavg)"
	before=$(ours before "$r" "$TMP/m$r.jsonl" --unet-batch 1) || exit 1
	echo "$before" | tee -a bench/out/attnmap_batch.jsonl
	after=$(ours after "$r" "$TMP/m$r.jsonl") || exit 1
	echo "$after" | tee -a bench/out/attnmap_batch.jsonl
	peer=$("$PY" bench/attnmap_peer.py "$CONFIGS" "$SHARED/clip" "$TMP/m$r.jsonl" "$SHARED/images" "$r" "$THREADS") ||
		exit 1
	echo "$peer" | tee -a bench/out/attnmap_batch.jsonl
	awk -v d="$SD_DIMS" -v b="$(ips "$before")" -v a="$(ips "$after")" -v p="$(ips "$peer")" -v r="$r" -v t="$THREADS" \
		-v l="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
		printf "attnmap_batch SD %s %d², %d threads: before %.4f, after %.4f, diffusers %.4f images/s; after/before %.2fx, after/diffusers %.2fx (goal >= 1.5); load average after: %s\n",
		       d, r, t, b, a, p, a / b, a / p, l }' | tee -a bench/out/attnmap_batch.txt
done
