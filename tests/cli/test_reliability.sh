# Hostile CLI inputs of issue #17 ("Defects found by trying"), on the lvd-pack fixture
# (build/tests/test_pack_tool --fixture) and the tiny SD checkpoint: FIFO and /dev/zero
# images refused (no hang), a manifest from stdin ("-"), /dev/stdin on a pipe or a FIFO
# read once (same shards as from a file), /dev/zero as manifest refused quickly, resume
# refusing a damaged earlier shard (exit 1), the output-folder lock naming its holder, a
# failed errors.jsonl write (injected ENOSPC) ending a --keep-going run non-zero and
# naming the file. Every tool call runs under `timeout` so a hang fails the test.
. tests/cli/lib.inc
P=$BUILD/lvd-pack
A=$BUILD/sd-attnmap
FX=$BUILD/tests/test_pack_tool
SHARED=${LVD_SHARED_DATA:-../shared/data}
D=$T_TMP/fx
TO="timeout 60"

if [ ! -x "$FX" ] || ! "$FX" --fixture "$D" 12 nomap 2>"$T_TMP/err"; then
	skip "fixture: $FX --fixture failed or missing"
	finish
	exit $?
fi
run() { m=$1; out=$2; shift 2; $TO "$P" run --manifest "$m" --maps "$D/maps" --model "$D/model" --out "$out" --shard-size 4 --threads 2 -q "$@"; }
ok "reference run" run "$D/data.jsonl" "$T_TMP/ref" --keep-going
nshards=$(ls "$T_TMP/ref" | grep -c 'lvdp$')
[ "$nshards" -ge 3 ] && pass || fail "reference run wrote $nshards shards (want >= 3)"
same_as_ref() {
	s=1
	for f in "$T_TMP"/ref/train-*.lvdp; do cmp -s "$f" "$1/$(basename "$f")" || s=0; done
	[ "$(ls "$1" | grep -c 'lvdp$')" -eq "$nshards" ] || s=0
	[ $s -eq 1 ]
}

# ---- the manifest read once: "-", /dev/stdin on a pipe, a FIFO (what <(...) gives) ----
ok "manifest from stdin (-)" sh -c "$TO $P run --manifest - --images $D --maps $D/maps --model $D/model --out $T_TMP/stdin --shard-size 4 --threads 2 -q --keep-going <$D/data.jsonl"
same_as_ref "$T_TMP/stdin" && pass || fail "manifest '-': shards identical to the file run"
ok "manifest /dev/stdin on a pipe" sh -c "cat $D/data.jsonl | $TO $P run --manifest /dev/stdin --images $D --maps $D/maps --model $D/model --out $T_TMP/pipe --shard-size 4 --threads 2 -q --keep-going"
same_as_ref "$T_TMP/pipe" && pass || fail "manifest /dev/stdin: shards identical to the file run"
mkfifo "$T_TMP/m.fifo"
(cat "$D/data.jsonl" >"$T_TMP/m.fifo") &
ok "manifest FIFO" run "$T_TMP/m.fifo" "$T_TMP/fifo" --images "$D" --keep-going
wait
same_as_ref "$T_TMP/fifo" && pass || fail "manifest FIFO: shards identical to the file run"
expect_exit 1 "manifest /dev/zero refused" run /dev/zero "$T_TMP/zero"
grep -qF "line longer than 16 MiB" "$T_TMP/err" && pass || fail "manifest /dev/zero message"

# ---- non-regular images: refused per sample, no hang ----------------------------------
mkfifo "$D/images/fifo.png"
cat >"$D/hostile.jsonl" <<'EOF'
{"id": "s00000", "image": "images/fifo.png", "caption": "a black dog running on the beach"}
{"id": "s00001", "image": "/dev/zero", "caption": "two red apples on a wooden table"}
EOF
expect_exit 1 "lvd-pack: FIFO and /dev/zero images skipped" run "$D/hostile.jsonl" "$T_TMP/hostile"
if [ "$(grep -c 'not a regular file' "$T_TMP/hostile/errors.jsonl" 2>/dev/null)" = 2 ]; then pass; else fail "lvd-pack errors.jsonl: 2 non-regular images"; fi

# ---- resume checks every kept shard ------------------------------------------------------
cp -r "$T_TMP/ref" "$T_TMP/trunc"
head -c 200 "$T_TMP/ref/train-00000.lvdp" >"$T_TMP/trunc/train-00000.lvdp"
expect_exit 1 "truncated earlier shard: exit 1" run "$D/data.jsonl" "$T_TMP/trunc" --keep-going
grep -qF "train-00000.lvdp" "$T_TMP/err" && grep -qF "hint: delete" "$T_TMP/err" && pass || fail "truncated shard named with a hint"

# ---- the output-folder lock --------------------------------------------------------------
cp -r "$T_TMP/ref" "$T_TMP/locked"
printf 'pid 4242 host elsewhere\n' >"$T_TMP/locked/.lock"
exec 9>>"$T_TMP/locked/.lock"   # this shell holds the lock, like another run would
flock -x 9
expect_exit 1 "locked --out refused" run "$D/data.jsonl" "$T_TMP/locked" --keep-going
grep -qF "is in use by pid 4242 host elsewhere" "$T_TMP/err" && pass || fail "lock holder named"
exec 9>&-
ok "unlocked again: resume succeeds" run "$D/data.jsonl" "$T_TMP/locked" --keep-going
grep -qF "pid " "$T_TMP/locked/.lock" && pass || fail ".lock names the pid"

# ---- a failed write of errors.jsonl (a full disk) ---------------------------------------
# LVD_FAULT=write:N (lib/core/fault.h) fails the N-th write; find the N that hits the
# errors.jsonl line of the first skipped sample: with --keep-going the run must still end
# non-zero, naming errors.jsonl. The same under a file-size limit (EFBIG) for pack.json.
hit=0
for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do
	rm -rf "$T_TMP/efail"
	LVD_FAULT=write:$n:ENOSPC run "$D/hostile.jsonl" "$T_TMP/efail" --keep-going >/dev/null 2>"$T_TMP/err"
	rc=$?
	if grep -qF "cannot write '$T_TMP/efail/errors.jsonl'" "$T_TMP/err"; then hit=$n; break; fi
done
if [ $hit -gt 0 ] && [ $rc -eq 1 ]; then pass; else fail "errors.jsonl write failure (write #$hit): exit $rc, want 1"; fi
expect_exit 1 "write failure under ulimit -f: exit 1" sh -c "trap '' XFSZ; ulimit -f 1; $TO $P run --manifest $D/data.jsonl --maps $D/maps --model $D/model --out $T_TMP/fsz --shard-size 4 -q --keep-going"
grep -qF "cannot write '$T_TMP/fsz/pack.json.tmp'" "$T_TMP/err" && pass || fail "write failure names the file"

# ---- sd-attnmap: the same rules through the tiny SD checkpoint ---------------------------
if [ ! -f "$SHARED/images/skimage_chelsea.png" ] || [ ! -d "$SHARED/clip" ]; then
	skip "sd-attnmap cases: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
I=$T_TMP/img
mkdir -p "$I"
cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$I/"
mkfifo "$I/fifo.png"
cat >"$T_TMP/sd.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "fifo", "image": "fifo.png", "caption": "a FIFO"}
{"id": "zero", "image": "/dev/zero", "caption": "endless zeros"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person with a camera"}
EOF
SDC="--sd tests/golden/sd/diffusers --tokenizer $SHARED/clip --images $I --fold-vocab --resolution 64 --timesteps 100 --noise-draws 1 --seed 3 -q --shard-bytes 1 --threads 1"
expect_exit 1 "sd-attnmap: FIFO and /dev/zero images skipped" $TO "$A" run $SDC --manifest "$T_TMP/sd.jsonl" --out "$T_TMP/sd"
if [ "$(grep -c 'not a regular file' "$T_TMP/sd/errors.jsonl" 2>/dev/null)" = 2 ] && [ -f "$T_TMP/sd/attn-00001.lvdm" ]; then pass
else fail "sd-attnmap: 2 records, 2 non-regular images in errors.jsonl"; fi
ok "sd-attnmap: manifest from stdin" sh -c "$TO $A run $SDC --manifest - --out $T_TMP/sd-in --keep-going <$T_TMP/sd.jsonl"
cmp -s "$T_TMP/sd/attn-00000.lvdm" "$T_TMP/sd-in/attn-00000.lvdm" && cmp -s "$T_TMP/sd/attn-00001.lvdm" "$T_TMP/sd-in/attn-00001.lvdm" &&
	pass || fail "sd-attnmap: stdin manifest gives the same shards"
head -c 100 "$T_TMP/sd/attn-00000.lvdm" >"$T_TMP/sd/attn-00000.lvdm.cut" && mv "$T_TMP/sd/attn-00000.lvdm.cut" "$T_TMP/sd/attn-00000.lvdm"
expect_exit 1 "sd-attnmap: truncated earlier shard: exit 1" $TO "$A" run $SDC --manifest "$T_TMP/sd.jsonl" --out "$T_TMP/sd" --keep-going
grep -qF "attn-00000.lvdm" "$T_TMP/err" && pass || fail "sd-attnmap: truncated shard named"
finish
