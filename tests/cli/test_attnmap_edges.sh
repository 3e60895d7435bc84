# The rough edges of sd-attnmap and lvd-pack a new user hits (issue #16): messages that
# name the actual cause, a failed first run not pinning run.json, the SD configs and the
# tokenizer configs in the provenance, option checks, map joining in lvd-pack, ls.
# Tiny SD of tests/golden/sd at -r 128 on real photos; a few seconds in all.
. tests/cli/lib.inc
SA=$BUILD/sd-attnmap
LP=$BUILD/lvd-pack
SHARED=${LVD_SHARED_DATA:-../shared/data}
SD=tests/golden/sd/diffusers
D=$T_TMP

# ---- option checks and usage hints (no inputs needed) ----
expect_stderr "100 given twice" "--timesteps 100,100 refused" "$SA" run --sd x --manifest m --out o --timesteps 100,300,100
expect_exit 2 "--timesteps 100,100 exit 2" "$SA" run --sd x --manifest m --out o --timesteps 100,100
expect_stderr "try 'sd-attnmap run --help'" "run usage error points at run --help" "$SA" run --no-such-flag
expect_stderr "try 'sd-attnmap inspect --help'" "inspect usage error points at inspect --help" "$SA" inspect
expect_stderr "try 'lvd-pack run --help'" "lvd-pack run usage error points at run --help" "$LP" run
expect_stdout "--text-field F" "run --help documents auto" "$SA" run --help
grep -qF "auto" "$T_TMP/out" && pass || fail "run --help mentions --text-field auto"
expect_stdout "SD 1.x/2.x" "run --help says SD 1.x/2.x" "$SA" run --help
expect_stdout "-t, --tokenizer" "-t is --tokenizer in run" "$SA" run --help
expect_stdout "-t, --tokenizer" "-t is --tokenizer in import" "$SA" import --help
if "$SA" run --help | grep -q -- "-t, --threads" || "$LP" run --help | grep -q -- "-t, --threads"; then
	fail "-t still means --threads somewhere"; else pass; fi
expect_stdout "--id-from-image" "run --help lists --id-from-image" "$SA" run --help
expect_stderr "not cpu, cuda or cuda:K" "--device tpu is refused by name" "$SA" run --sd x --manifest m --out o --device tpu
expect_stderr "not cpu, cuda or cuda:K" "--device cuda:x is refused" "$SA" run --sd x --manifest m --out o --device cuda:x
# --device cuda: refused with the reason in a CPU-only build or without a GPU (else it gets
# past the option check and fails on the missing --sd)
if "$SA" --version 2>&1 | grep -qF "CUDA=no"; then
	expect_stderr "this build has no CUDA" "--device cuda in a CPU-only build" "$SA" run --sd x --manifest m --out o --device cuda
elif ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	"$SA" run --sd x --manifest m --out o --device cuda >"$T_TMP/out" 2>"$T_TMP/err"
	if grep -qF "this build has no CUDA" "$T_TMP/err" || grep -qF "no CUDA device found" "$T_TMP/err"; then pass
	else fail "--device cuda without a GPU: $(cat "$T_TMP/err")"; fi
fi
expect_stderr "--method inversion runs on the cpu only" "--device cuda refuses --method inversion" \
	"$SA" run --sd x --manifest m --out o --device cuda:0 --method inversion
expect_stdout "--id-from-image" "lvd-pack run --help lists --id-from-image" "$LP" run --help

# ---- --sd without a tokenizer: the actual cause ----
mkdir -p "$D/empty" "$D/notok"
cp -r "$SD"/* "$D/notok/"
expect_stderr "without tokenizer/" "diffusers folder without tokenizer/" "$SA" run --sd "$D/notok" --manifest m --out "$D/o"
if grep -qF "single-file" "$T_TMP/err"; then fail "no single-file hint for a diffusers folder"; else pass; fi
expect_stderr "empty folder" "empty --sd folder" "$SA" run --sd "$D/empty" --manifest m --out "$D/o"
grep -qF "single-file checkpoint" "$T_TMP/err" && pass || fail "empty folder gets the single-file hint"
expect_stderr "single file" "single-file checkpoint without --tokenizer" "$SA" run --sd tests/golden/sd/ldm.safetensors --manifest m --out "$D/o"
[ ! -e "$D/o" ] && pass || fail "nothing written for a bad --sd"

if [ ! -f "$SHARED/images/skimage_chelsea.png" ]; then
	skip "runs: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
CL=$SHARED/clip
mkdir -p "$D/img"
cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$D/img/"
cat >"$D/m.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person looking at a camera on a tripod"}
EOF
RUN="--sd $SD -t $CL --images $D/img --resolution 128 --timesteps 100 -q"
mkdir -p "$D/nocfg" && cp -r "$SD"/* "$D/nocfg/" && rm "$D/nocfg/unet/config.json"
expect_stderr "cannot open $D/nocfg/unet/config.json: No such file" "missing config named" \
	"$SA" run $RUN --sd "$D/nocfg" --manifest "$D/m.jsonl" --out "$D/o"
grep -qF ":-1:" "$T_TMP/err" && fail "config error with :-1:" || pass

# ---- a failed first run (forgotten --fold-vocab): one fatal error, then the rerun works ----
expect_exit 1 "vocabulary mismatch exit 1" "$SA" run $RUN --manifest "$D/m.jsonl" --out "$D/f"
grep -qF "vocabulary of 1000" "$T_TMP/err" && pass || fail "vocabulary mismatch named up front"
grep -qF "skipped" "$T_TMP/err" && fail "vocabulary mismatch as per-sample skips" || pass
ok "corrected rerun replaces run.json" "$SA" run $RUN --fold-vocab --manifest "$D/m.jsonl" --out "$D/f"
grep -q '"fold_vocab": true' "$D/f/run.json" && pass || fail "run.json of the corrected run"
# once a shard exists, run.json pins the options
expect_exit 2 "changed options after a shard refused" "$SA" run $RUN --fold-vocab --seed 9 --manifest "$D/m.jsonl" --out "$D/f"

# ---- provenance: configs and tokenizer configs hashed, prediction type recorded ----
for k in '"vae/config.json"' '"unet/config.json"' '"scheduler/scheduler_config.json"' \
	'"special_tokens_map.json"' '"tokenizer_config.json"' '"prediction_type": "epsilon"'; do
	grep -qF "$k" "$D/f/run.json" && pass || fail "run.json lacks $k"
done
mkdir -p "$D/sd2" && cp -r "$SD"/* "$D/sd2/"
ok "run on a copy" "$SA" run $RUN --sd "$D/sd2" --fold-vocab --manifest "$D/m.jsonl" --out "$D/c"
sed 's/"scaling_factor": *[0-9.]*/"scaling_factor": 0.5/' "$SD/vae/config.json" >"$D/sd2/vae/config.json"
cmp -s "$SD/vae/config.json" "$D/sd2/vae/config.json" && fail "vae config edit took no effect" || pass
expect_exit 2 "edited vae/config.json refused on resume" "$SA" run $RUN --sd "$D/sd2" --fold-vocab --manifest "$D/m.jsonl" --out "$D/c"
grep -qF "sd_weights" "$T_TMP/err" && pass || fail "edited config named"

# ---- --id-from-image ----
printf '{"image": "skimage_chelsea.png", "caption": "a cat"}\n' >"$D/noid.jsonl"
expect_exit 1 "manifest without ids fails" "$SA" run $RUN --fold-vocab --manifest "$D/noid.jsonl" --out "$D/n1"
ok "--id-from-image" "$SA" run $RUN --fold-vocab --id-from-image --manifest "$D/noid.jsonl" --out "$D/n2"
expect_stdout '"id":"skimage_chelsea.png"' "id taken from the image" "$SA" inspect "$D/n2"

# ---- lvd-pack messages ----
sed 's/<|begin_of_text|>/<|no_begin|>/' tests/golden/tokenizer/small/tokenizer.json >"$D/nobos.json"
expect_exit 1 "tokenizer without <|begin_of_text|>" "$LP" tokenize -t "$D/nobos.json" --text "hello"
grep -qF "nobos.json: the tokenizer has no <|begin_of_text|>" "$T_TMP/err" && pass || fail "the tokenizer blamed"
grep -qF "line 1" "$T_TMP/err" && fail "stdin line 1 blamed" || pass
mkdir -p "$D/vlm" && cp tests/golden/tokenizer/small/tokenizer.json "$D/vlm/"
expect_stderr "is a file: --model takes the VLM folder" "run --model TOKENIZER_FILE" \
	"$LP" run --manifest "$D/m.jsonl" --maps "$D/f" --model "$D/vlm/tokenizer.json" --out "$D/p"
grep -qF "Not a directory" "$T_TMP/err" && fail "ENOTDIR shown" || pass

# ---- lvd-pack: joining map folders ----
FX=$BUILD/tests/test_pack_tool
if [ ! -x "$FX" ] || ! "$FX" --fixture "$D/fx" 1 2>"$T_TMP/err"; then
	skip "lvd-pack joins: $FX --fixture failed or missing"
	finish
	exit $?
fi
VLM=$D/fx/model
pack() { "$LP" run --manifest "$D/m.jsonl" --images "$D/img" --model "$VLM" --threads 1 -q "$@"; }
ok "shard 0/2" "$SA" run $RUN --fold-vocab --manifest "$D/m.jsonl" --out "$D/s0" --shard 0/2
ok "shard 1/2" "$SA" run $RUN --fold-vocab --manifest "$D/m.jsonl" --out "$D/s1" --shard 1/2
expect_exit 1 "one of two splits refused" pack --maps "$D/s0" --out "$D/p1"
grep -qF "1 of the 2 splits missing" "$T_TMP/err" && grep -qF "i = 1" "$T_TMP/err" && pass || fail "missing split named"
ok "--maps A --maps B joins both" pack --maps "$D/s0" --maps "$D/s1" --out "$D/p2"
grep -qF '"samples": 2' "$D/p2/pack.json" && pass || fail "both samples packed"
expect_stdout '"id":"camera"' "lvd-pack inspect FOLDER: camera packed from the second folder" "$LP" inspect "$D/p2"
expect_stdout '"id":"chelsea"' "lvd-pack inspect FOLDER --id" "$LP" inspect "$D/p2" --id chelsea
expect_exit 1 "lvd-pack inspect FOLDER --id unknown" "$LP" inspect "$D/p2" --id nope
ok "shard 1/2 with another seed" "$SA" run $RUN --fold-vocab --seed 9 --manifest "$D/m.jsonl" --out "$D/s1b" --shard 1/2
expect_exit 1 "folders of two seeds refused" pack --maps "$D/s0" --maps "$D/s1b" --out "$D/p3"
grep -qF "different parameters: seed 0 vs 9" "$T_TMP/err" && grep -qF "$D/s0/attn-00000-of-00002-00000.lvdm" "$T_TMP/err" &&
	grep -qF "$D/s1b/attn-00001-of-00002-00000.lvdm" "$T_TMP/err" && pass || fail "seed mismatch names both shards"
[ ! -e "$D/p3/pack.json" ] && pass || fail "nothing written for refused maps"
mkdir -p "$D/mix" && cp "$D/s0/attn-00000-of-00002-00000.lvdm" "$D/mix/attn-00000.lvdm" && cp "$D/s1b/attn-00001-of-00002-00000.lvdm" "$D/mix/attn-00001.lvdm"
expect_stderr "seed 0 vs 9" "one folder with two seeds refused" pack --maps "$D/mix" --out "$D/p4"
ok "timesteps 300" "$SA" run $RUN --fold-vocab --timesteps 300 --manifest "$D/m.jsonl" --out "$D/s1t" --shard 1/2
expect_stderr "timesteps [100] vs [300]" "timesteps mismatch refused" pack --maps "$D/s0" --maps "$D/s1t" --out "$D/p5"
expect_stderr "record id 'chelsea' is in two map shards" "duplicate id refused" pack --maps "$D/s0" --maps "$D/f" --out "$D/p6" --shard 0/2
sed 's/a facial photo of a tabby cat/a facial photo of a ginger cat/' "$D/m.jsonl" >"$D/edited.jsonl"
"$LP" run --manifest "$D/edited.jsonl" --images "$D/img" --model "$VLM" --threads 1 -q --maps "$D/f" --out "$D/p7" \
	>"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q '"id":"chelsea".*"kind":"stale_maps"' "$D/p7/errors.jsonl" && pass || fail "edited caption: stale maps (exit $rc)"
grep -qF "rerun sd-attnmap" "$D/p7/errors.jsonl" && pass || fail "stale maps reason"

# ---- ls, viz of a shard, lvd-pack progress and viz of a broken image ----
expect_stdout "2 records" "sd-attnmap ls" "$SA" ls "$D/f"
grep -qF "timesteps [100]" "$T_TMP/out" && grep -qF "shard 0/1" "$T_TMP/out" && pass || fail "ls shows params and split"
expect_stdout "PARAMS DIFFER: seed" "sd-attnmap ls marks a shard of other params" "$SA" ls "$D/mix"
expect_stdout '"records":1' "sd-attnmap ls --json" "$SA" ls --json "$D/s0"
expect_exit 1 "sd-attnmap ls of a folder without shards" "$SA" ls "$D/empty"
ok "sd-attnmap viz SHARD.lvdm" "$SA" viz "$D/f/attn-00000.lvdm" --id chelsea --out "$D/viz" -v
grep -qF "drawing on grey" "$T_TMP/err" && fail "viz SHARD ignored the run.json beside it" || pass
mkdir -p "$D/img2" && cp "$D/img"/*.png "$D/img2/"
"$LP" run --manifest "$D/m.jsonl" --images "$D/img2" --model "$VLM" --threads 1 --maps "$D/f" --out "$D/pv" \
	--no-embed-images >"$T_TMP/out" 2>"$T_TMP/err"
grep -qF "2/2 samples" "$T_TMP/err" && pass || fail "lvd-pack progress with a total"
expect_stdout "2 records" "lvd-pack ls" "$LP" ls "$D/pv"
grep -qF "pack.json: 2 samples, 0 skipped" "$T_TMP/out" && pass || fail "lvd-pack ls statistics"
printf 'broken' >"$D/img2/skimage_chelsea.png"
expect_exit 1 "lvd-pack viz with a broken image exits 1" "$LP" viz "$D/pv/train-00000.lvdp" --out "$D/pviz"
grep -qF "train-00000.lvdp: record 0 'chelsea'" "$T_TMP/err" && pass || fail "broken image named by shard and id"
ls "$D/pviz" | grep -q '^camera_' && pass || fail "viz went on after the broken image"

# ---- repeated warnings capped: 12 samples whose maps hold a word twice ----
ok "export for the warning cap" "$SA" export --maps "$D/f" --out "$D/off" --id chelsea
cp "$D/off/skimage_chelsea.png/lpm_attention/skimage_chelsea/attention_cat.png" \
	"$D/off/skimage_chelsea.png/lpm_attention/skimage_chelsea/attention_cat_1.png"
for k in 0 1 2 3 4 5 6 7 8 9 10 11; do
	echo "{\"id\": \"c$k\", \"image\": \"skimage_chelsea.png\", \"caption\": \"a facial photo of a tabby cat\"}"
done >"$D/twelve.jsonl"
ok "import with 12 duplicate words" "$SA" import --manifest "$D/twelve.jsonl" --images "$D/img" --from "$D/off" -t "$CL" --out "$D/imp"
[ "$(grep -c "replaces" "$T_TMP/err")" -eq 10 ] && pass || fail "10 'replaces' warnings shown, not $(grep -c replaces "$T_TMP/err")"
grep -qF "more maps replace others of the same word" "$T_TMP/err" && grep -qF "12 replaced duplicates" "$T_TMP/err" && pass || fail "the rest counted"

# ---- SD 2 tokenizer padding: the folder's pad token "!" = 0, in tokenize and run ----
mkdir -p "$D/sd2tok" && cp "$CL"/vocab.json "$CL"/merges.txt "$D/sd2tok/"
printf '{"pad_token": "!", "eos_token": "<|endoftext|>"}' >"$D/sd2tok/special_tokens_map.json"
expect_stdout "49406 320 2368 49407 0 0 0 0" "tokenize --pad auto, SD 2 folder" "$SA" tokenize -t "$D/sd2tok" --max-length 8 --pad auto --text "a cat"
expect_stdout "49406 320 2368 49407 49407 49407 49407 49407" "tokenize --pad auto, SD 1 folder" "$SA" tokenize -t "$CL" --max-length 8 --pad auto --text "a cat"
ok "run with the SD 2 tokenizer folder" "$SA" run $RUN --fold-vocab -t "$D/sd2tok" --manifest "$D/m.jsonl" --out "$D/t2"
"$SA" inspect "$D/f" --id camera --maps >"$D/t1.json" && "$SA" inspect "$D/t2" --id camera --maps >"$D/t2.json"
if [ "$(grep -o '"tokens":[^]]*' "$D/t1.json")" = "$(grep -o '"tokens":[^]]*' "$D/t2.json")" ] && ! cmp -s "$D/t1.json" "$D/t2.json"
then pass; else fail "same tokens, other maps with zero padding"; fi

# ---- lvd-pack: a first run that wrote no shard does not pin pack.json ----
"$LP" run --manifest "$D/twelve.jsonl" --images "$D/img" --model "$VLM" --maps "$D/f" --out "$D/pz" -q >/dev/null 2>&1
[ -f "$D/pz/pack.json" ] && ! ls "$D/pz" | grep -q lvdp && pass || fail "all samples missing maps: no shard"
ok "rerun with other options replaces pack.json" "$LP" run --manifest "$D/twelve.jsonl" --images "$D/img" --model "$VLM" \
	--maps "$D/f" --out "$D/pz" -q --allow-missing-maps
grep -qF '"allow_missing_maps": true' "$D/pz/pack.json" && pass || fail "pack.json of the rerun"

finish
