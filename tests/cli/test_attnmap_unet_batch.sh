# sd-attnmap run --unet-batch (issue #16, timesteps batched into one UNet pass): the
# option's checks, batched and unbatched runs giving the same maps up to fp32 summation
# order (so within one fp16 step of the stored maps), a different seed being caught by
# the same comparison, and run.json recording a non-default batch. Tiny SD of
# tests/golden/sd at -r 128, 4 timesteps x 2 draws = 8 passes; a few seconds.
. tests/cli/lib.inc
SA=$BUILD/sd-attnmap
SHARED=${LVD_SHARED_DATA:-../shared/data}
SD=tests/golden/sd/diffusers
D=$T_TMP

expect_stdout "--unet-batch N" "run --help lists --unet-batch" "$SA" run --help
expect_exit 2 "--unet-batch 0 refused" "$SA" run --sd x --manifest m --out o --unet-batch 0
expect_exit 2 "--unet-batch 65 refused" "$SA" run --sd x --manifest m --out o --unet-batch 65

if [ ! -f "$SHARED/images/skimage_chelsea.png" ]; then
	skip "runs: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
mkdir -p "$D/img"
cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$D/img/"
cat >"$D/m.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person looking at a camera on a tripod"}
EOF
RUN="--sd $SD -t $SHARED/clip --images $D/img --resolution 128 --timesteps 100,300,500,700 --noise-draws 2 --fold-vocab --manifest $D/m.jsonl -q"
ok "run --unet-batch 1" "$SA" run $RUN --out "$D/b1" --unet-batch 1
ok "run --unet-batch 3 (3 + 3 + 2 passes)" "$SA" run $RUN --out "$D/b3" --unet-batch 3
ok "run (default: all 8 passes in one)" "$SA" run $RUN --out "$D/ba"
ok "run --seed 1" "$SA" run $RUN --out "$D/s1" --unet-batch 1 --seed 1

# every number of inspect --maps (maps, stats, ids, spans; not the shard path) of two
# folders: the same count, each within 2^-10 relative (one fp16 step) + 1e-6
nums() { "$SA" inspect --maps "$1" | sed -E 's/"shard":"[^"]*"//' | grep -oE -- '-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'; }
close() {
	nums "$1" >"$D/n1" && nums "$2" >"$D/n2" || return 1
	[ "$(wc -l <"$D/n1")" -eq "$(wc -l <"$D/n2")" ] && [ "$(wc -l <"$D/n1")" -gt 300 ] || return 1
	paste "$D/n1" "$D/n2" | awk '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1;
		if (d > m / 1024 + 1e-6) { bad++; if (bad < 4) print "  differ: " $1 " " $2 > "/dev/stderr" } }
		END { exit bad > 0 }'
}
close "$D/b1" "$D/ba" && pass || fail "batched (default) maps differ from --unet-batch 1"
close "$D/b1" "$D/b3" 2>/dev/null && pass || fail "--unet-batch 3 maps differ from --unet-batch 1"
close "$D/b1" "$D/s1" 2>/dev/null && fail "the comparison does not see another seed" || pass

# provenance: auto is not recorded (run.json as before), a set batch is; a resume with
# another batch is refused (its maps may differ in the last bits)
grep -qF '"unet_batch"' "$D/ba/run.json" && fail "default run records unet_batch" || pass
grep -qF '"unet_batch": 3' "$D/b3/run.json" && pass || fail "run.json lacks unet_batch 3"
expect_exit 2 "resume with another --unet-batch refused" "$SA" run $RUN --out "$D/ba" --unet-batch 2
grep -qF "unet_batch" "$T_TMP/err" && pass || fail "refusal names unet_batch"

# the round pipeline of --device cuda (decode threads, several images per batched UNet
# pass, grouped by latent shape), run on the CPU model by its test hook: the same maps up
# to fp32 summation order; the same bytes for any --threads (groups do not depend on
# timing); a missing image fails that sample only. chelsea (451x300 -> 128x64) and camera
# (128x128) are two shapes; camera2 shares camera's pass.
cp "$D/img/skimage_camera.png" "$D/img/camera2.png"
cat >"$D/mp.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person looking at a camera on a tripod"}
{"id": "gone", "image": "missing.png", "caption": "nothing"}
{"id": "camera2", "image": "camera2.png", "caption": "a camera"}
EOF
PIPE="--sd $SD -t $SHARED/clip --images $D/img --resolution 128 --timesteps 100,300,500,700 --noise-draws 2 --fold-vocab --manifest $D/mp.jsonl -q --keep-going --batch 4"
ok "pipeline hook, 1 thread" env LVD_ATTNMAP_PIPELINE=1 "$SA" run $PIPE --out "$D/p1" --threads 1
ok "pipeline hook, 3 threads" env LVD_ATTNMAP_PIPELINE=1 "$SA" run $PIPE --out "$D/p3" --threads 3
ok "per-sample run of the same manifest" "$SA" run $PIPE --out "$D/pc" --threads 2
nums "$D/p1" >"$D/q1"; nums "$D/p3" >"$D/q3"
cmp -s "$D/q1" "$D/q3" && [ -s "$D/q1" ] && pass || fail "pipeline records depend on --threads"
close "$D/pc" "$D/p1" && pass || fail "pipeline maps differ from the per-sample run"
[ "$("$SA" inspect "$D/p1" | wc -l)" -eq 3 ] && pass || fail "pipeline run lacks a record"
grep -qF '"gone"' "$D/p1/errors.jsonl" && pass || fail "missing image not listed in errors.jsonl"
finish
