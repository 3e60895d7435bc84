# --shard i/N runs of one job into one folder (issue #16): lvd-pack run and sd-attnmap run
# name shards, ledgers, errors, provenance and lock by split, so two splits run at once
# into one folder; the outputs equal separate-folder runs; each split resumes on its own;
# a folder of another kind of run is refused; readers (lvd-pack --maps, the loader in
# test_loader) take all splits and refuse an incomplete set naming the missing ones.
. tests/cli/lib.inc
P=$BUILD/lvd-pack
SA=$BUILD/sd-attnmap
FX=$BUILD/tests/test_pack_tool
SHARED=${LVD_SHARED_DATA:-../shared/data}
SD=tests/golden/sd/diffusers
D=$T_TMP/fx

if [ ! -x "$FX" ] || ! "$FX" --fixture "$D" 20 2>"$T_TMP/err"; then
	skip "fixture: $FX --fixture failed or missing"
	finish
	exit $?
fi
run() { out=$1; shift; "$P" run --manifest "$D/data.jsonl" --maps "$D/maps" --model "$D/model" --out "$out" --shard-size 4 --threads 1 -q "$@"; }

# ---- lvd-pack: separate folders, then both splits at once into one folder ----
ok "pack 0/2 alone" run "$T_TMP/a0" --shard 0/2
ok "pack 1/2 alone" run "$T_TMP/a1" --shard 1/2
run "$T_TMP/j" --shard 0/2 >"$T_TMP/o0" 2>"$T_TMP/e0" & p0=$!
run "$T_TMP/j" --shard 1/2 >"$T_TMP/o1" 2>"$T_TMP/e1" & p1=$!
wait $p0; r0=$?
wait $p1; r1=$?
[ "$r0" -eq 0 ] && [ "$r1" -eq 0 ] && pass || { fail "concurrent splits into one folder: exit $r0, $r1"; cat "$T_TMP/e0" "$T_TMP/e1" >&2; }
for f in train-00000-of-00002-00000.lvdp train-00001-of-00002-00000.lvdp shards-00000-of-00002.jsonl \
	shards-00001-of-00002.jsonl pack-00000-of-00002.json pack-00001-of-00002.json errors-00000-of-00002.jsonl \
	.lock-00000-of-00002 .lock-00001-of-00002; do
	[ -e "$T_TMP/j/$f" ] && pass || fail "split name $f missing"
done
[ ! -e "$T_TMP/j/train-00000.lvdp" ] && [ ! -e "$T_TMP/j/shards.jsonl" ] && [ ! -e "$T_TMP/j/pack.json" ] &&
	pass || fail "plain names written by a split run"
same=1; n=0
for f in "$T_TMP"/a0/*.lvdp "$T_TMP"/a1/*.lvdp "$T_TMP"/a0/shards-*.jsonl "$T_TMP"/a1/shards-*.jsonl; do
	n=$((n + 1)); cmp -s "$f" "$T_TMP/j/$(basename "$f")" || same=0
done
[ "$same" -eq 1 ] && [ "$n" -ge 6 ] && [ "$(ls "$T_TMP"/j/*.lvdp | wc -l)" -eq $((n - 2)) ] && pass ||
	fail "one folder = union of separate folders ($n files, same=$same)"
bad=$(cat "$T_TMP"/j/shards-*.jsonl | grep -vc '"file":"train-0000[01]-of-00002-0000[0-9].lvdp"')
[ "$bad" -eq 0 ] && pass || fail "$bad ledger lines without their file"
nrec=$("$P" inspect "$T_TMP/j" | wc -l)
[ "$nrec" -eq 20 ] && pass || fail "inspect of the folder: $nrec records, want 20"
expect_stdout "pack-*.json: 20 samples" "lvd-pack ls sums the splits' pack files" "$P" ls "$T_TMP/j"
# each split resumes on its own: nothing recomputed
ino=$(stat -c %i "$T_TMP/j/train-00001-of-00002-00000.lvdp")
ok "split 1/2 rerun resumes" "$P" run --manifest "$D/data.jsonl" --maps "$D/maps" --model "$D/model" --out "$T_TMP/j" \
	--shard-size 4 --threads 1 --shard 1/2
grep -qF "resuming after" "$T_TMP/err" && [ "$(stat -c %i "$T_TMP/j/train-00001-of-00002-00000.lvdp")" = "$ino" ] &&
	pass || fail "split 1/2 resumed without rewriting"
# another kind of run into the folder: refused, naming the split
expect_exit 1 "a run without --shard into a split folder" run "$T_TMP/j"
grep -qF "needs its own folder" "$T_TMP/err" && pass || fail "plain run refusal message"
expect_exit 1 "--shard 0/3 into a folder of --shard i/2" run "$T_TMP/j" --shard 0/3
grep -qF "of a --shard i/2 run" "$T_TMP/err" && pass || fail "other-N refusal message"
ok "plain run" run "$T_TMP/p"
expect_exit 1 "--shard 0/2 into a plain run's folder" run "$T_TMP/p" --shard 0/2
grep -qF "of a run without --shard" "$T_TMP/err" && pass || fail "split into plain folder message"
[ -e "$T_TMP/p/train-00000.lvdp" ] && [ -e "$T_TMP/p/shards.jsonl" ] && pass || fail "plain names kept for N = 1"

# ---- lvd-sft on a pack of splits (the loader: all ledgers in split order, "file") ----
SFX=$BUILD/tests/test_sft
VLM=${LVD_SRCDIR:-.}/tests/golden/mllama/model
if [ -x "$SFX" ] && "$SFX" --pack "$T_TMP/sp" "$VLM" 6 2>"$T_TMP/err"; then
	# the fixture's one shard as split 0 of 2; split 1 ran over no sample (an empty ledger)
	mkdir -p "$T_TMP/ss"
	cp "$T_TMP/sp/train-00000.lvdp" "$T_TMP/ss/train-00000-of-00002-00000.lvdp"
	cp "$T_TMP/sp/pack.json" "$T_TMP/ss/pack-00000-of-00002.json"
	cp "$T_TMP/sp/pack.json" "$T_TMP/ss/pack-00001-of-00002.json"
	sed 's/"shard": 0,/"shard": 0, "file": "train-00000-of-00002-00000.lvdp",/' "$T_TMP/sp/shards.jsonl" \
		>"$T_TMP/ss/shards-00000-of-00002.jsonl"
	: >"$T_TMP/ss/shards-00001-of-00002.jsonl"
	sft() { "$BUILD/lvd-sft" run --model "$VLM" --threads 1 -q --batch 2 --max-steps 2 "$@"; }
	ok "lvd-sft on the plain pack" sft --pack "$T_TMP/sp" --out "$T_TMP/sa"
	ok "lvd-sft on the pack of splits" sft --pack "$T_TMP/ss" --out "$T_TMP/sb"
	sed 's/"elapsed":[^,]*,//; s/"samples_per_s":[^,]*,//; s/"tokens_per_s":[^,}]*//' "$T_TMP/sa/metrics.jsonl" >"$T_TMP/ma"
	sed 's/"elapsed":[^,]*,//; s/"samples_per_s":[^,]*,//; s/"tokens_per_s":[^,}]*//' "$T_TMP/sb/metrics.jsonl" >"$T_TMP/mb"
	cmp -s "$T_TMP/ma" "$T_TMP/mb" && [ -s "$T_TMP/ma" ] && pass || fail "same metrics from the plain and the split pack"
	grep -q '"pack_shards_sha256": \[' "$T_TMP/sb/run.json" && pass || fail "run.json hashes every split ledger"
	rm "$T_TMP/ss/shards-00001-of-00002.jsonl"
	expect_exit 1 "lvd-sft on a pack with a split missing" sft --pack "$T_TMP/ss" --out "$T_TMP/sc"
	grep -qF "i = 1" "$T_TMP/err" && pass || fail "lvd-sft names the missing split"
else
	skip "lvd-sft on splits: $SFX --pack failed or missing"
fi

# ---- sd-attnmap: two splits at once into one folder, lvd-pack --maps on it ----
CL=$SHARED/clip
if [ ! -d "$SD" ] || [ ! -d "$CL" ] || [ ! -f "$SHARED/images/skimage_chelsea.png" ]; then
	skip "sd-attnmap splits: $SD, $CL or the shared photos missing"
	finish
	exit $?
fi
M=$T_TMP/sd
mkdir -p "$M/img"
cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$M/img/"
cat >"$M/m.jsonl" <<'EOT'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person looking at a camera on a tripod"}
EOT
sa() { "$SA" run --sd "$SD" -t "$CL" --images "$M/img" --resolution 128 --timesteps 100 -q --fold-vocab --threads 1 --manifest "$M/m.jsonl" "$@"; }
ok "maps 1/2 alone" sa --out "$M/s1" --shard 1/2
sa --out "$M/j" --shard 0/2 2>"$T_TMP/e0" & p0=$!
sa --out "$M/j" --shard 1/2 2>"$T_TMP/e1" & p1=$!
wait $p0; r0=$?
wait $p1; r1=$?
[ "$r0" -eq 0 ] && [ "$r1" -eq 0 ] && pass || { fail "concurrent map splits: exit $r0, $r1"; cat "$T_TMP/e0" "$T_TMP/e1" >&2; }
cmp -s "$M/s1/attn-00001-of-00002-00000.lvdm" "$M/j/attn-00001-of-00002-00000.lvdm" && pass || fail "map split = its separate run"
[ -e "$M/j/run-00000-of-00002.json" ] && [ -e "$M/j/run-00001-of-00002.json" ] && [ ! -e "$M/j/run.json" ] && pass ||
	fail "run.json per split"
expect_stdout '"id":"camera"' "sd-attnmap inspect of the split folder" "$SA" inspect "$M/j"
expect_stdout "total: 2 shard(s), 2 records" "sd-attnmap ls of the split folder" "$SA" ls "$M/j"
if "$FX" --fixture "$M/fx" 1 2>"$T_TMP/err"; then
	pk() { "$P" run --manifest "$M/m.jsonl" --images "$M/img" --model "$M/fx/model" --threads 1 -q "$@"; }
	ok "lvd-pack --maps of a split folder" pk --maps "$M/j" --out "$M/p"
	grep -qF '"samples": 2' "$M/p/pack.json" && pass || fail "both samples packed"
	mv "$M/j/shards-00001-of-00002.jsonl" "$M/away.jsonl"
	expect_exit 1 "--maps with a split missing" pk --maps "$M/j" --out "$M/p2"
	grep -qF "1 of the 2 splits missing" "$T_TMP/err" && grep -qF "i = 1" "$T_TMP/err" && pass ||
		fail "missing split named"
	ok "pack --shard 0/2 needs only maps split 0" pk --maps "$M/j" --out "$M/p4" --shard 0/2
	grep -qF "attn-00001-of-00002" "$M/p4/pack-00000-of-00002.json" && fail "pack split 0 read maps split 1" || pass
	expect_exit 1 "pack --shard 1/2 without maps split 1" pk --maps "$M/j" --out "$M/p5" --shard 1/2
	grep -qF "no split 1 of 2" "$T_TMP/err" && pass || fail "missing split of the pack's --shard named"
	mv "$M/j/attn-00001-of-00002-00000.lvdm" "$M/away.lvdm"
	ok "--maps of split 0 and split 1 in two folders" pk --maps "$M/j" --maps "$M/s1" --out "$M/p3"
else
	skip "lvd-pack --maps on map splits: $FX --fixture failed"
fi
finish
