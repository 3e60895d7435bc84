# End to end: tiny SD (tests/golden/sd) -> sd-attnmap -> lvd-pack on 4 real photos of
# ../shared/data with the real Llama-3 tokenizer. Checks: both runs succeed, lvd-pack
# inspect shows the expected matched words, tokens and tiling, every content word is
# matched, a word's target map is a non-trivial min-max normalised map (values in [0, 1],
# max 1), sd-attnmap inspect and lvd-pack inspect agree on each sample's word list, viz.
. tests/cli/lib.inc
P=$BUILD/lvd-pack
SDB=$BUILD/sd-attnmap
SHARED=${LVD_SHARED_DATA:-../shared/data}
STOP=tests/golden/pack/stopwords.txt
if [ ! -f "$SHARED/images/captions.jsonl" ] || [ ! -f "$SHARED/llama3/tokenizer.model" ]; then
	skip "pipeline: $SHARED not found (set LVD_SHARED_DATA)"
	finish
	exit $?
fi
if [ ! -x "$SDB" ] || [ ! -x "$P" ] || [ ! -d tests/golden/sd/diffusers ]; then
	skip "pipeline: $SDB, $P or tests/golden/sd/diffusers missing"
	finish
	exit $?
fi

E=$T_TMP/e2e
mkdir -p "$E/img" "$E/model"
for f in skimage_chelsea.png COCO_val2014_000000038678.png skimage_camera.png COCO_val2014_000000096638.png; do
	cp "$SHARED/images/$f" "$E/img/"
done
cp "$SHARED/llama3/tokenizer.model" "$E/model/"
printf '{"model_type": "mllama", "image_token_index": 128256, "vision_config": {"image_size": 560, "patch_size": 14, "max_num_tiles": 4}}\n' >"$E/model/config.json"
cat >"$E/m.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "woman", "image": "COCO_val2014_000000038678.png", "caption": "A woman in striped shirt holding a plate with a bagel on it."}
{"id": "camera", "image": "skimage_camera.png", "conversations": [{"role": "user", "content": "<image>\nWhat is this?"}, {"role": "assistant", "content": "A person looking at a camera on a tripod."}]}
{"id": "snow", "image": "COCO_val2014_000000096638.png", "caption": "A man sitting in the snow riding a snowboard."}
EOF
ok "sd-attnmap run" "$SDB" run --sd tests/golden/sd/diffusers --tokenizer "$SHARED/clip" --images "$E/img" \
	--fold-vocab --resolution 128 --seed 3 -q --manifest "$E/m.jsonl" --out "$E/maps"
ok "lvd-pack run" "$P" run --manifest "$E/m.jsonl" --images "$E/img" --maps "$E/maps" --model "$E/model" \
	--out "$E/pack" --stopwords "$STOP" -q
"$P" inspect "$E/pack/train-00000.lvdp" --model "$E/model" >"$E/i.jsonl" 2>"$T_TMP/err"
if [ "$(wc -l <"$E/i.jsonl")" -eq 4 ]; then pass; else fail "4 records"; fi
for want in 'a [[facial]] [[photo]] of a [[tabby]] [[cat]]<|eot_id|>' \
	'A [[person]] [[looking]] at a [[camera]] on a [[tripod]].<|eot_id|>' \
	'A [[woman]] in [[striped]] [[shirt]] [[holding]] a [[plate]] with a [[bagel]] on it.' \
	'"id":"woman","tokens":38,"label_tokens":17,"image_token":5,"tiling":{"tiles_h":2,"tiles_w":1,"aspect_id":5' \
	'"image_w":480,"image_h":640,"new_w":480,"new_h":640},"targets":"canvas","grid":[80,40],"valid_patches":1610' \
	'"image_w":640,"image_h":480,"new_w":640,"new_h":480},"targets":"canvas","grid":[40,80]'; do
	if grep -qF -- "$want" "$E/i.jsonl"; then pass; else fail "inspect lacks: $want"; fi
done
if grep -q '"content_match_rate": 1' "$E/pack/pack.json"; then pass; else fail "all content words matched"; fi

# the target map of the first word of "woman": min-max normalised over the image's
# patches (padding cells are 0), so every value lies in [0, 1], the peak is exactly 1
# (fp16 represents 1.0 exactly) and the map is not constant
"$P" inspect "$E/pack/train-00000.lvdp" --id woman --full >"$E/full.json" 2>"$T_TMP/err"
grep -o '"target":\[[^]]*\]' "$E/full.json" | head -n 1 | sed 's/"target":\[//; s/\]//' | tr ',' '\n' >"$E/target.txt"
if awk 'BEGIN { mn = 1e9; mx = -1e9 } { n++; if ($1 < mn) mn = $1; if ($1 > mx) mx = $1; if ($1 != $1 + 0) bad++ }
	END { exit !(n == 80 * 40 && !bad && mn >= 0 && mx == 1 && mn < mx) }' "$E/target.txt"; then
	pass
else
	fail "woman's first target: 3200 values in [0, 1] with max 1 and not constant"
fi
n_lo=$(awk '$1 < 0.5' "$E/target.txt" | wc -l)
if [ "$n_lo" -gt 0 ] && [ "$n_lo" -lt 3200 ]; then pass; else fail "target map has values on both sides of 0.5"; fi

# word lists: the SD record's words (sd-attnmap inspect), lowercased, punctuation and
# stop words removed, repeats dropped, are lvd-pack's matched words (the SD text is the
# answer for all four samples)
grep -v '^#' "$STOP" | grep -v '^ *$' >"$E/stop.txt"
for id in chelsea woman camera snow; do
	"$SDB" inspect "$E/maps" --id "$id" 2>"$T_TMP/err" | grep -o '"words":\[[^]]*\]' | sed 's/"words":\[//; s/\]//' |
		tr ',' '\n' | tr -d '"' | tr 'A-Z' 'a-z' | grep -E '^[[:alnum:]]+$' | grep -vxF -f "$E/stop.txt" |
		awk '!seen[$0]++' >"$E/sd_$id.txt"
	"$P" inspect "$E/pack/train-00000.lvdp" --id "$id" 2>"$T_TMP/err" | grep -o '"word":"[^"]*"' |
		sed 's/"word":"//; s/"$//' >"$E/pack_$id.txt"
	if [ -s "$E/sd_$id.txt" ] && cmp -s "$E/sd_$id.txt" "$E/pack_$id.txt"; then
		pass
	else
		fail "$id: sd-attnmap words [$(tr '\n' ' ' <"$E/sd_$id.txt")] vs lvd-pack words [$(tr '\n' ' ' <"$E/pack_$id.txt")]"
	fi
done

ok "lvd-pack viz" "$P" viz "$E/pack/train-00000.lvdp" --out "$E/viz" --id woman
if [ -f "$E/viz/woman_0_woman.png" ]; then pass; else fail "viz wrote woman_0_woman.png"; fi
finish
