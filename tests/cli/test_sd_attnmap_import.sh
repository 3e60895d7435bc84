# sd-attnmap import/export as a user runs them: the official per-word layout written by
# lvd-shapes (exact maps) is imported, checked word by word and value by value (export
# of the imported records gives back lvd-shapes' PNG files byte for byte), then packed by
# lvd-pack; bad inputs (unknown words, missing folder, unreadable map, maps of two sizes)
# fail the sample naming the file; resume; a tiny-SD run survives export -> import ->
# export unchanged (same tokens and words as the run).
. tests/cli/lib.inc
bin=$BUILD/sd-attnmap
SHARED=${LVD_SHARED_DATA:-../shared/data}
D=$T_TMP

expect_exit 0 "import --help" "$bin" import --help
expect_stdout "--skip-unknown" "import --help lists options" "$bin" import --help
expect_stdout "lpm_attention" "import --help names the layout" "$bin" import --help
expect_exit 0 "export --help" "$bin" export --help
expect_stdout "--jpeg" "export --help lists --jpeg" "$bin" export --help
expect_stdout "import" "tool help lists import" "$bin" --help
expect_exit 2 "import without required options" "$bin" import --manifest m
expect_exit 2 "import bad flag" "$bin" import --nope
expect_exit 2 "import --text-field bad" "$bin" import --manifest m --from f --tokenizer t --out o --text-field x
expect_exit 2 "export without --out" "$bin" export --maps m
expect_exit 2 "export --format gif" "$bin" export --maps m --out o --format gif
expect_exit 2 "export --size 0" "$bin" export --maps m --out o --size 0
expect_exit 2 "export --norm bad" "$bin" export --maps m --out o --norm minmax

if [ ! -f "$SHARED/clip/vocab.json" ] || [ ! -x "$BUILD/lvd-shapes" ]; then
	skip "import runs: $SHARED/clip or $BUILD/lvd-shapes not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
TOK=$SHARED/clip
ok "lvd-shapes" "$BUILD/lvd-shapes" --out "$D/s" --n 6 --seed 2 --tile-size 56 -q
IMP="$bin import --manifest $D/s/train.jsonl --images $D/s --tokenizer $TOK -q"
expect_stderr "cannot open --from folder" "missing --from" $IMP --from "$D/none" --out "$D/x"

# the maps name words of the questions and answers too: not in the caption -> the
# sample fails naming the file (exit 1); --skip-unknown ignores them
expect_exit 1 "unknown words fail the samples" $IMP --from "$D/s/attn-png" --out "$D/u"
if grep -q 'lpm_attention/train-0000[0-9]*/attention_[a-z]*\.png: word .* is not in the SD text' "$D/u/errors.jsonl"
then pass; else fail "errors.jsonl names the map file and its word"; fi
ok "import --skip-unknown" $IMP --from "$D/s/attn-png" --out "$D/m" --skip-unknown
"$bin" inspect "$D/m" >"$D/m.jsonl" 2>"$T_TMP/err"
if [ "$(wc -l <"$D/m.jsonl")" -eq 6 ]; then pass; else fail "6 records"; fi
if grep -q '"unknown_maps":[1-9]' "$D/m/shards.jsonl" && grep -q '"source": *"official-layout"' "$D/m/run.json"
then pass; else fail "shards.jsonl counts unknown maps, run.json the source"; fi

# words: each record's words are the caption's words that lvd-shapes gave a map
# (word_maps of the manifest), in caption order, repeats included
i=0
while IFS= read -r line; do
	id=$(echo "$line" | grep -o '"id":"[^"]*"' | head -n 1 | sed 's/"id":"//; s/"$//')
	keys=$(echo "$line" | grep -o '"word_maps":{[^}]*}' | grep -o '"[a-z]*":"attn' | sed 's/":"attn//; s/"//g')
	cap=$(echo "$line" | grep -o '"caption":"[^"]*"' | sed 's/"caption":"//; s/"$//' | tr -c 'a-z' '\n' | grep -v '^$')
	want=$(for w in $cap; do echo "$keys" | grep -qx "$w" && echo "$w"; done | tr '\n' ',' | sed 's/,$//')
	got=$(grep "\"id\":\"$id\"" "$D/m.jsonl" | grep -o '"words":\[[^]]*\]' | sed 's/"words":\[//; s/\]//; s/"//g')
	if [ -n "$want" ] && [ "$want" = "$got" ]; then pass; else fail "$id: words [$got], want [$want]"; fi
	i=$((i + 1))
done <"$D/s/train.jsonl"
[ "$i" -eq 6 ] && pass || fail "6 manifest lines read"
# every token has its word's map: max exactly 1 (lvd-shapes scales each map to 255), grid 32x32
if ! grep -o '"stats":\[[^]]*\]' "$D/m.jsonl" | grep -qv '"stats":\[0.0,1.0,'; then pass; else fail "every map spans [0, 1]"; fi
if [ "$(grep -c '"grid":\[32,32\]' "$D/m.jsonl")" -eq 6 ]; then pass; else fail "grid 32x32"; fi
# the record's image size is the image's (lvd-pack checks it against the image)
w0=$(head -n 1 "$D/s/train.jsonl" | grep -o '"width":[0-9]*' | sed 's/.*://')
h0=$(head -n 1 "$D/s/train.jsonl" | grep -o '"height":[0-9]*' | sed 's/.*://')
if head -n 1 "$D/m.jsonl" | grep -q "\"image\":\[$w0,$h0\]"; then pass; else fail "image size recorded"; fi

# values: exporting the imported maps unscaled gives lvd-shapes' exact PNG maps back, byte for byte
ok "export --norm none --size native" "$bin" export --maps "$D/m" --out "$D/e" --norm none --size native -q
nf=0; bad=0
for f in $(cd "$D/e" && find . -type f -name 'attention_*.png'); do
	nf=$((nf + 1)); cmp -s "$D/e/$f" "$D/s/attn-png/$f" || bad=$((bad + 1))
done
if [ "$nf" -ge 12 ] && [ "$bad" -eq 0 ]; then pass; else fail "exported maps equal lvd-shapes' ($nf files, $bad differ)"; fi
if [ -f "$D/e/export.json" ]; then pass; else fail "export.json written"; fi
expect_stderr "not empty" "export refuses a non-empty --out" "$bin" export --maps "$D/m" --out "$D/e"

# the JPEG maps: same words, values within the JPEG loss of the PNG import
ok "import the JPEG maps" $IMP --from "$D/s/attn" --out "$D/mj" --skip-unknown
"$bin" inspect "$D/m" --maps | sed 's/.*"maps"://' | tr -s ',[]' '\n\n\n' | grep -v '^$' >"$D/vp.txt"
"$bin" inspect "$D/mj" --maps | sed 's/.*"maps"://' | tr -s ',[]' '\n\n\n' | grep -v '^$' >"$D/vj.txt"
if [ -s "$D/vp.txt" ] && [ "$(wc -l <"$D/vp.txt")" -eq "$(wc -l <"$D/vj.txt")" ] &&
   paste "$D/vp.txt" "$D/vj.txt" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > w) w = d } END { exit !(w <= 12 / 255) }'
then pass; else fail "JPEG import within 12 grey levels of the PNG import"; fi

# resume: the same command finds the shard complete; other options are refused
cp "$D/m/attn-00000.lvdm" "$D/keep.lvdm"
ok "resume" $IMP --from "$D/s/attn-png" --out "$D/m" --skip-unknown
cmp -s "$D/keep.lvdm" "$D/m/attn-00000.lvdm" && pass || fail "resume leaves the shard"
expect_exit 2 "changed options refused" $IMP --from "$D/s/attn-png" --out "$D/m"

# bad inputs: a missing folder, an unreadable map, maps of two sizes -> named, skipped
cp -r "$D/s/attn-png" "$D/bad"
rm -r "$D/bad/train-000001.png"
printf 'garbage' >"$D/bad/train-000002.png/lpm_attention/train-000002/attention_green.png"
"$bin" export --maps "$D/m" --id train-000003 --out "$D/e16" --size 16 -q
f16=$(find "$D/e16" -name 'attention_*.png' | head -n 1)
cp "$f16" "$D/bad/train-000003.png/lpm_attention/train-000003/attention_zz.png"
expect_exit 1 "bad inputs exit 1" $IMP --from "$D/bad" --out "$D/b" --skip-unknown
if grep -q "bad/train-000001.png' is not a folder" "$D/b/errors.jsonl"; then pass; else fail "missing folder named"; fi
if grep -q 'train-000002/attention_green.png' "$D/b/errors.jsonl"; then pass; else fail "unreadable map named"; fi
if grep -q 'attention_zz.png: map is 16x16, the maps before it are 32x32' "$D/b/errors.jsonl"; then pass
else fail "maps of two sizes refused"; fi
ok "bad inputs with --keep-going" $IMP --from "$D/bad" --out "$D/b2" --skip-unknown --keep-going
if [ "$(wc -l <"$D/b2/errors.jsonl")" -eq 3 ] && [ "$("$bin" inspect "$D/b2" | wc -l)" -eq 3 ]; then pass
else fail "3 skipped, 3 records"; fi

# a caption longer than CLIP's 75 tokens: a map of a word past the cut is counted, not an error
any=$(find "$D/s/attn-png/train-000000.png" -name 'attention_*.png' | head -n 1)
mkdir -p "$D/cut/train-000000.png/lpm_attention/train-000000"
for w in red zebra; do cp "$any" "$D/cut/train-000000.png/lpm_attention/train-000000/attention_$w.png"; done
long="a red square"; k=0
while [ "$k" -lt 40 ]; do long="$long and more"; k=$((k + 1)); done
printf '{"id": "long", "image": "images/train-000000.png", "caption": "%s zebra"}\n' "$long" >"$D/long.jsonl"
ok "import a truncated caption" "$bin" import --manifest "$D/long.jsonl" --images "$D/s" --tokenizer "$TOK" \
	--from "$D/cut" --out "$D/lc" -q
if grep -q '"cut_maps":1' "$D/lc/shards.jsonl" && "$bin" inspect "$D/lc" | grep -q '"truncated":true,"words":\["red"\]'
then pass; else fail "zebra counted as cut, red imported"; fi

# lvd-pack consumes the imported maps unchanged
if [ -f "$SHARED/llama3/tokenizer.model" ] && [ -x "$BUILD/lvd-pack" ]; then
	mkdir -p "$D/model"
	cp "$SHARED/llama3/tokenizer.model" "$D/model/"
	printf '{"model_type": "mllama", "image_token_index": 128256, "vision_config": {"image_size": 56, "patch_size": 14, "max_num_tiles": 4}}\n' >"$D/model/config.json"
	ok "lvd-pack run on imported maps" "$BUILD/lvd-pack" run --manifest "$D/s/train.jsonl" --images "$D/s" --maps "$D/m" \
		--model "$D/model" --out "$D/pack" -q
	"$BUILD/lvd-pack" inspect "$D/pack/train-00000.lvdp" --model "$D/model" >"$D/p.jsonl" 2>"$T_TMP/err"
	if [ "$(wc -l <"$D/p.jsonl")" -eq 6 ] && [ "$(grep -c '"word":"' "$D/p.jsonl")" -ge 6 ]; then pass
	else fail "6 packed records with matched words"; fi
else
	skip "lvd-pack on imported maps: $SHARED/llama3 or lvd-pack missing"
fi

# a tiny-SD run survives export -> import -> export: the import has the run's tokens and
# words, and the second export is byte-identical to the first
if [ -d tests/golden/sd/diffusers ]; then
	head -n 3 "$D/s/train.jsonl" >"$D/s3.jsonl"
	ok "tiny sd-attnmap run" "$bin" run --sd tests/golden/sd/diffusers --tokenizer "$TOK" --images "$D/s" --fold-vocab \
		--resolution 128 --min-side 16 -q --manifest "$D/s3.jsonl" --out "$D/r"
	ok "export run maps" "$bin" export --maps "$D/r" --out "$D/re" --size native -q
	ok "import them" "$bin" import --manifest "$D/s3.jsonl" --images "$D/s" --tokenizer "$TOK" --from "$D/re" --out "$D/ri" -q
	ok "export again" "$bin" export --maps "$D/ri" --out "$D/re2" --size native -q
	nf=0; bad=0
	for f in $(cd "$D/re" && find . -type f -name 'attention_*.png'); do
		nf=$((nf + 1)); cmp -s "$D/re/$f" "$D/re2/$f" || bad=$((bad + 1))
	done
	if [ "$nf" -ge 15 ] && [ "$bad" -eq 0 ]; then pass; else fail "export -> import -> export fixpoint ($nf files, $bad differ)"; fi
	"$bin" inspect "$D/r" | grep -o '"words":\[[^]]*\],"tokens":\[[^]]*\]' | sed 's/"stats":\[[^]]*\]//g' >"$D/rw.txt"
	"$bin" inspect "$D/ri" | grep -o '"words":\[[^]]*\],"tokens":\[[^]]*\]' | sed 's/"stats":\[[^]]*\]//g' >"$D/iw.txt"
	if [ "$(wc -l <"$D/rw.txt")" -eq 3 ] && cmp -s "$D/rw.txt" "$D/iw.txt"; then pass
	else fail "imported tokens and words equal the run's"; fi
	ok "export --size 32 --jpeg" "$bin" export --maps "$D/r" --out "$D/rj" --jpeg -q
	if [ "$(find "$D/rj" -name 'attention_*.jpg' | wc -l)" -eq "$nf" ]; then pass; else fail "one JPEG per word"; fi
	ok "import the 32x32 JPEGs" "$bin" import --manifest "$D/s3.jsonl" --images "$D/s" --tokenizer "$TOK" --from "$D/rj" --out "$D/rji" -q
	if [ "$("$bin" inspect "$D/rji" | grep -c '"grid":\[32,32\]')" -eq 3 ]; then pass; else fail "resampled to 32x32"; fi
else
	skip "round trip through a tiny run: tests/golden/sd/diffusers missing"
fi
finish
