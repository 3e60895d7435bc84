# sd-attnmap run/inspect/viz as a user runs them, on the tiny SD checkpoint of
# tests/golden/sd and real photos from ../shared/data/images: usage errors, bad inputs,
# resume after SIGKILL (byte-identical), --shard i/N union, thread-count independence.
. tests/cli/lib.inc
bin=$BUILD/sd-attnmap
SHARED=${LVD_SHARED_DATA:-../shared/data}

expect_exit 0 "run --help" "$bin" run --help
expect_stdout "--shard-bytes" "run --help lists options" "$bin" run --help
expect_exit 0 "inspect --help" "$bin" inspect --help
expect_exit 0 "viz --help" "$bin" viz --help
expect_exit 2 "run bad flag" "$bin" run --no-such-flag
expect_exit 2 "run without required options" "$bin" run --sd x
expect_stderr "multiple of 64" "run --resolution 100" "$bin" run --sd x --manifest m --out o --resolution 100
expect_exit 2 "run --resolution 100 exit" "$bin" run --sd x --manifest m --out o --resolution 100
expect_exit 2 "run --method unknown" "$bin" run --sd x --manifest m --out o --method ddpm
expect_exit 2 "run --steps 65" "$bin" run --sd x --manifest m --out o --method inversion --steps 65
expect_exit 2 "run --guidance -1" "$bin" run --sd x --manifest m --out o --method inversion --guidance -1
expect_stdout "--method M" "run --help lists --method" "$bin" run --help
expect_stderr "not a layer side" "run --layers 24" "$bin" run --sd x --manifest m --out o --layers 24
expect_exit 2 "run --timesteps 1000" "$bin" run --sd x --manifest m --out o --timesteps 100,1000
expect_exit 2 "run --shard 2/2" "$bin" run --sd x --manifest m --out o --shard 2/2
expect_exit 2 "run --device cuda" "$bin" run --sd x --manifest m --out o --device cuda
expect_exit 2 "run --text-field bad" "$bin" run --sd x --manifest m --out o --text-field nope
expect_exit 2 "inspect without shard" "$bin" inspect
expect_exit 2 "viz without --id" "$bin" viz somewhere --out x

if [ ! -f "$SHARED/images/captions.jsonl" ]; then
	skip "sd-attnmap runs: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
SD=tests/golden/sd/diffusers
D=$T_TMP
IMG=$SHARED/images
mkdir -p "$D/img"
cp "$IMG/skimage_chelsea.png" "$IMG/COCO_val2014_000000038678.png" "$IMG/skimage_camera.png" \
   "$IMG/COCO_val2014_000000096638.png" "$D/img/"
printf 'not a png at all' >"$D/img/corrupt.png"
cat >"$D/m.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "woman", "image": "COCO_val2014_000000038678.png", "caption": "A woman in striped shirt holding a plate with a bagel on it."}
{"id": "broken", "image": "corrupt.png", "caption": "a corrupt file"}
{"id": "camera", "image": "skimage_camera.png", "conversations": [{"role": "user", "content": "<image>\nWhat is this?"}, {"role": "assistant", "content": "A person looking at a camera on a tripod."}]}
{"id": "gone", "image": "missing.png", "caption": "a missing file"}
{"id": "snow", "image": "COCO_val2014_000000096638.png", "caption": "A man sitting in the snow riding a snowboard."}
EOF
grep -v -e broken -e gone "$D/m.jsonl" >"$D/good.jsonl"
COMMON="--sd $SD --tokenizer $SHARED/clip --images $D/img --fold-vocab --resolution 128 --seed 3 -q"

expect_stderr "m-none.jsonl" "missing manifest named" "$bin" run $COMMON --manifest "$D/m-none.jsonl" --out "$D/x"
expect_exit 1 "missing manifest exit 1" "$bin" run $COMMON --manifest "$D/m-none.jsonl" --out "$D/x"

# bad samples: skipped, listed, exit 1 (0 with --keep-going)
expect_exit 1 "bad samples exit 1" "$bin" run $COMMON --manifest "$D/m.jsonl" --out "$D/bad" --threads 2
grep -qF "2 sample(s) skipped" "$T_TMP/err" && pass || fail "bad samples summary"
if grep -q '"id":"broken"' "$D/bad/errors.jsonl" && grep -q '"id":"gone"' "$D/bad/errors.jsonl" &&
   [ "$(wc -l <"$D/bad/errors.jsonl")" -eq 2 ]; then pass; else fail "errors.jsonl lists broken and gone once each"; fi
ok "bad samples with --keep-going" "$bin" run $COMMON --manifest "$D/m.jsonl" --out "$D/bad2" --keep-going
"$bin" inspect "$D/bad2" >"$D/bad2.jsonl" 2>"$T_TMP/err"
if [ "$(wc -l <"$D/bad2.jsonl")" -eq 4 ] && grep -q '"id":"camera"' "$D/bad2.jsonl"; then pass; else fail "4 records kept"; fi
expect_stdout '"text":"A person looking at a camera on a tripod."' "assistant text used" "$bin" inspect "$D/bad2" --id camera

# reference run: one shard per record (--shard-bytes 1), 1 thread
ok "full run" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/full" --shard-bytes 1 --threads 1
if [ -f "$D/full/attn-00003.lvdm" ] && [ ! -f "$D/full/attn-00004.lvdm" ] && [ -f "$D/full/run.json" ]; then pass
else fail "4 shards and run.json"; fi
"$bin" inspect "$D/full" --id chelsea >"$T_TMP/out" 2>"$T_TMP/err"
if grep -q '"sd_size":\[128,64\]' "$T_TMP/out" && grep -q '"grid":\[8,4\]' "$T_TMP/out"; then pass; else fail "chelsea 451x300 -> sd 128x64, grid 8x4"; fi

# threads 1 vs 2 (batch 3): identical bytes
ok "run --threads 2" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/t2" --shard-bytes 1 --threads 2 --batch 3
if cmp -s "$D/full/attn-00000.lvdm" "$D/t2/attn-00000.lvdm" && cmp -s "$D/full/attn-00003.lvdm" "$D/t2/attn-00003.lvdm"
then pass; else fail "threads 1 vs 2 byte-identical"; fi

# resume: drop the last two shards, re-run: recomputed bytes equal, earlier shards untouched
mkdir -p "$D/res" && cp "$D/full"/* "$D/res/"
rm "$D/res/attn-00002.lvdm" "$D/res/attn-00003.lvdm"
touch -d '2000-01-01' "$D/res/attn-00000.lvdm"
ok "resume run" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/res" --shard-bytes 1 --threads 1
same=1
for k in 0 1 2 3; do cmp -s "$D/full/attn-0000$k.lvdm" "$D/res/attn-0000$k.lvdm" || same=0; done
[ "$same" -eq 1 ] && pass || fail "resumed shards byte-identical"
if [ "$(find "$D/res/attn-00000.lvdm" -newermt '2001-01-01' | wc -l)" -eq 0 ]; then pass; else fail "finished shard rewritten"; fi

# resume after SIGKILL in the middle of a run (more timesteps so that it takes a while)
SLOW="--timesteps 10,110,210,310,410,510,610,710 --noise-draws 2 --shard-bytes 1 --threads 1"
ok "slow reference run" "$bin" run $COMMON $SLOW --manifest "$D/good.jsonl" --out "$D/slow"
"$bin" run $COMMON $SLOW --manifest "$D/good.jsonl" --out "$D/kill" 2>/dev/null &
pid=$!
n=0
while [ ! -f "$D/kill/attn-00000.lvdm" ] && kill -0 $pid 2>/dev/null && [ $n -lt 2000 ]; do sleep 0.01; n=$((n + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ -n "$LVD_TEST_VERBOSE" ] && echo "  killed with $(ls "$D/kill" | grep -c 'lvdm$') shard(s) done: $(ls "$D/kill" | tr '\n' ' ')" >&2
ok "run after SIGKILL" "$bin" run $COMMON $SLOW --manifest "$D/good.jsonl" --out "$D/kill"
same=1
for k in 0 1 2 3; do cmp -s "$D/slow/attn-0000$k.lvdm" "$D/kill/attn-0000$k.lvdm" || same=0; done
[ "$same" -eq 1 ] && [ -z "$(ls "$D/kill" | grep '\.tmp$')" ] && pass || fail "SIGKILL + resume byte-identical"

# a finished run re-run does nothing and still succeeds
ok "re-run of a finished run" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/full" --shard-bytes 1 --threads 1

# result-changing options are checked against run.json
expect_exit 2 "resume with another seed refused" "$bin" run --sd $SD --tokenizer $SHARED/clip --images $D/img --fold-vocab --resolution 128 --seed 4 -q --manifest "$D/good.jsonl" --out "$D/full" --shard-bytes 1
grep -qF "seed was 3, now 4" "$T_TMP/err" && pass || fail "refusal names the option"

# --shard 0/2 and 1/2: disjoint, union equals the full run's records
ok "shard 0/2" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/s0" --shard 0/2
ok "shard 1/2" "$bin" run $COMMON --manifest "$D/good.jsonl" --out "$D/s1" --shard 1/2
strip() { sed -E 's/^\{"shard":"[^"]*","record":[0-9]+,//' | sort; }
"$bin" inspect --maps "$D/full" | strip >"$D/full.txt"
{ "$bin" inspect --maps "$D/s0"; "$bin" inspect --maps "$D/s1"; } | strip >"$D/split.txt"
if [ -s "$D/full.txt" ] && cmp -s "$D/full.txt" "$D/split.txt" &&
   [ "$("$bin" inspect "$D/s0" | wc -l)" -eq 2 ]; then pass; else fail "shard 0/2 + 1/2 == full"; fi

# inspect and viz
expect_stdout '"words":["a","facial","photo","of","a","tabby","cat"]' "inspect words" "$bin" inspect "$D/full" --id chelsea
expect_exit 1 "inspect unknown id" "$bin" inspect "$D/full" --id nobody
printf 'garbage' >"$D/bad.lvdm"
expect_exit 1 "inspect corrupt shard" "$bin" inspect "$D/bad.lvdm"
ok "viz" "$bin" viz "$D/full" --id chelsea --out "$D/viz" --images "$D/img"
if [ -f "$D/viz/chelsea-strip.png" ] && [ -f "$D/viz/chelsea-w06-cat.png" ]; then pass; else fail "viz PNGs"; fi
expect_exit 1 "viz unknown id" "$bin" viz "$D/full" --id nobody --out "$D/viz"
# a missing checkpoint is named as such (not as a missing tokenizer)
expect_stderr "cannot open --sd '$T_TMP/no-such-sd'" "missing --sd named" "$BUILD/sd-attnmap" run --sd "$T_TMP/no-such-sd" --manifest "$T_TMP/none.jsonl" --out "$T_TMP/o-nosd"
finish
