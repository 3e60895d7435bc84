# lvd-pack run/inspect/viz as a user runs them, on the synthetic fixture written by
# build/tests/test_pack_tool --fixture (small PNGs, one map record per sample, the small
# Llama-3 tokenizer.json): usage errors, a missing map listed by id, determinism across
# --threads, resume, --shard, inspect output, viz, corrupt shards, --labels official
# (two BOS, labels of the official Flickr collator, recorded and checked on resume).
. tests/cli/lib.inc
P=$BUILD/lvd-pack
FX=$BUILD/tests/test_pack_tool
D=$T_TMP/fx

expect_exit 0 "run --help" "$P" run --help
expect_stdout "usage: lvd-pack run" "run --help text" "$P" run --help
expect_stdout "usage: lvd-pack inspect" "inspect --help" "$P" inspect --help
expect_stdout "usage: lvd-pack viz" "viz --help" "$P" viz --help
expect_exit 2 "run without inputs" "$P" run
expect_stderr "are required" "run without inputs message" "$P" run
expect_exit 2 "bad --overlong" "$P" run --manifest a --maps b --model c --out d --overlong cut
expect_exit 2 "bad --match-in" "$P" run --manifest a --maps b --model c --out d --match-in question
expect_exit 2 "bad --query-at" "$P" run --manifest a --maps b --model c --out d --query-at next
expect_exit 2 "bad --labels" "$P" run --manifest a --maps b --model c --out d --labels hf
expect_stdout "--labels official" "run --help explains --labels" "$P" run --help
expect_exit 2 "bad --grid" "$P" run --manifest a --maps b --model c --out d --grid 0
expect_exit 2 "bad --shard" "$P" run --manifest a --maps b --model c --out d --shard 2/2
expect_exit 2 "bad flag" "$P" run --no-such-flag
expect_exit 2 "inspect without file" "$P" inspect
expect_exit 2 "viz without --out" "$P" viz x.lvdp

if [ ! -x "$FX" ] || ! "$FX" --fixture "$D" 20 nomap 2>"$T_TMP/err"; then
	skip "fixture: $FX --fixture failed or missing"
	finish
	exit $?
fi
expect_exit 1 "missing --maps folder" "$P" run --manifest "$D/data.jsonl" --maps "$D/nope" --model "$D/model" --out "$T_TMP/x"
expect_stderr "cannot open --maps folder" "missing --maps message" "$P" run --manifest "$D/data.jsonl" --maps "$D/nope" --model "$D/model" --out "$T_TMP/x"

run() { out=$1; shift; "$P" run --manifest "$D/data.jsonl" --maps "$D/maps" --model "$D/model" --out "$out" --shard-size 8 "$@"; }

# a sample without a map record: listed by id, exit 1; --keep-going: exit 0
expect_exit 1 "missing map -> exit 1" run "$T_TMP/a" --threads 1
if grep -q '"id":"nomap"' "$T_TMP/a/errors.jsonl" && grep -q '"kind":"missing_maps"' "$T_TMP/a/errors.jsonl"; then pass; else fail "errors.jsonl lists nomap"; fi
expect_stderr "skipped sample 20 'nomap'" "missing map named on stderr" run "$T_TMP/a2" --threads 1
expect_exit 0 "--keep-going" run "$T_TMP/k" --keep-going
expect_exit 0 "--allow-missing-maps" run "$T_TMP/m" --allow-missing-maps
if grep -q '"missing_maps": 1' "$T_TMP/m/pack.json"; then pass; else fail "pack.json counts missing maps"; fi
if grep -q '"samples": 21' "$T_TMP/m/pack.json"; then pass; else fail "pack.json samples 21"; fi

# undecodable image, missing image file, empty answer: listed with their kind
printf 'not an image' >"$D/images/bad.png"
cat >"$D/bad.jsonl" <<'EOF'
{"id": "s00000", "image": "images/bad.png", "caption": "a black dog running on the beach"}
{"id": "s00001", "image": "images/img1.png", "conversations": [{"role": "user", "content": "<image>\nWhat?"}, {"role": "assistant", "content": "  "}]}
{"id": "s00002", "image": "images/gone.png", "caption": "A man riding a horse, near a river."}
{"id": "s00003", "image": "images/img3.png", "caption": "the astronaut holds the American flag"}
EOF
expect_exit 1 "bad samples -> exit 1" "$P" run --manifest "$D/bad.jsonl" --maps "$D/maps" --model "$D/model" --out "$T_TMP/bad"
for want in '"id":"s00000","image":"images/bad.png","index":0,"kind":"image"' \
	'"id":"s00001","image":"images/img1.png","index":1,"kind":"empty_answer"' \
	'"id":"s00002","image":"images/gone.png","index":2,"kind":"image"'; do
	if grep -qF -- "$want" "$T_TMP/bad/errors.jsonl"; then pass; else fail "errors.jsonl lacks $want"; fi
done
if grep -q '"samples": 1,' "$T_TMP/bad/pack.json" && grep -q '"skipped": 3,' "$T_TMP/bad/pack.json"; then pass; else fail "bad run: 1 packed, 3 skipped"; fi

# determinism: --threads 1 vs 2 vs 3 (batch smaller than the input)
ok "threads 2" run "$T_TMP/b" --threads 2 --keep-going
ok "threads 3 batch 5" run "$T_TMP/c" --threads 3 --batch 5 --keep-going
same=1
for f in train-00000.lvdp train-00001.lvdp train-00002.lvdp; do
	cmp -s "$T_TMP/a/$f" "$T_TMP/b/$f" && cmp -s "$T_TMP/a/$f" "$T_TMP/c/$f" || same=0
done
[ -f "$T_TMP/a/train-00003.lvdp" ] && same=0
if [ $same -eq 1 ]; then pass; else fail "shards identical for threads 1, 2, 3"; fi

# resume: keep shard 0, drop the rest, leave a stale temporary; shard 0 is not rewritten
cp -r "$T_TMP/b" "$T_TMP/r"
rm "$T_TMP/r/train-00001.lvdp" "$T_TMP/r/train-00002.lvdp"
echo junk > "$T_TMP/r/train-00001.lvdp.tmp"
ino=$(stat -c %i "$T_TMP/r/train-00000.lvdp")
expect_stderr "resuming after 1 complete shard" "resume message" run "$T_TMP/r" --threads 2 --keep-going
same=1
for f in train-00000.lvdp train-00001.lvdp train-00002.lvdp; do cmp -s "$T_TMP/a/$f" "$T_TMP/r/$f" || same=0; done
if [ $same -eq 1 ] && [ "$(stat -c %i "$T_TMP/r/train-00000.lvdp")" = "$ino" ] && [ ! -e "$T_TMP/r/train-00001.lvdp.tmp" ]; then pass; else fail "resume gives identical shards, shard 0 untouched"; fi
if [ "$(grep -c nomap "$T_TMP/r/errors.jsonl")" -eq 1 ]; then pass; else fail "errors.jsonl not duplicated on resume"; fi
if grep -q '"samples": 20' "$T_TMP/r/pack.json"; then pass; else fail "resumed pack.json stats cover all shards"; fi
# the one resume rule: a shard without its shards.jsonl line (killed between the rename and
# the line) is recomputed, byte-identical; the complete shards before it are kept
cp -r "$T_TMP/b" "$T_TMP/r2"
head -n 2 "$T_TMP/b/shards.jsonl" >"$T_TMP/r2/shards.jsonl"
echo junk >"$T_TMP/r2/train-00002.lvdp"
ino=$(stat -c %i "$T_TMP/r2/train-00001.lvdp")
expect_stderr "resuming after 2 complete shard" "resume after a shard without its line" run "$T_TMP/r2" --threads 2 --keep-going
if cmp -s "$T_TMP/a/train-00002.lvdp" "$T_TMP/r2/train-00002.lvdp" && [ "$(stat -c %i "$T_TMP/r2/train-00001.lvdp")" = "$ino" ] &&
   [ "$(wc -l <"$T_TMP/r2/shards.jsonl")" -eq 3 ] && cmp -s "$T_TMP/b/shards.jsonl" "$T_TMP/r2/shards.jsonl"; then pass
else fail "shard without its ledger line recomputed, ledger restored"; fi
expect_exit 2 "resume with other options refused" run "$T_TMP/r" --grid 32 --keep-going
expect_stderr "params differ" "resume refusal message" run "$T_TMP/r" --grid 32 --keep-going

# --shard i/N: the two halves hold every sample once
ok "shard 0/2" run "$T_TMP/s0" --shard 0/2 --keep-going
ok "shard 1/2" run "$T_TMP/s1" --shard 1/2 --keep-going
n0=$(for f in "$T_TMP"/s0/train-*.lvdp; do "$P" inspect "$f"; done | wc -l)
n1=$(for f in "$T_TMP"/s1/train-*.lvdp; do "$P" inspect "$f"; done | wc -l)
if [ "$n0" -eq 10 ] && [ "$n1" -eq 10 ]; then pass; else fail "shard split 10+10, got $n0+$n1"; fi

# inspect: JSON per sample, matched words marked with --model
expect_stdout '"id":"s00000"' "inspect ids" "$P" inspect "$T_TMP/a/train-00000.lvdp"
expect_stdout '[[black]] [[dog]] [[running]]' "inspect marks words" "$P" inspect "$T_TMP/a/train-00000.lvdp" --model "$D/model" --id s00000
expect_stdout '"tiles_h":1,"tiles_w":3,"aspect_id":3' "inspect tiling 1200x300" "$P" inspect "$T_TMP/a/train-00000.lvdp" --id s00002
expect_stdout '"labels":[' "inspect --full" "$P" inspect "$T_TMP/a/train-00000.lvdp" --full --id s00003
expect_exit 1 "inspect unknown id" "$P" inspect "$T_TMP/a/train-00000.lvdp" --id nope
head -c 300 "$T_TMP/a/train-00000.lvdp" > "$T_TMP/trunc.lvdp"
expect_exit 1 "inspect truncated shard" "$P" inspect "$T_TMP/trunc.lvdp"
expect_exit 1 "inspect a maps shard" "$P" inspect "$D/maps/attn-00000.lvdm"
# --grid 32 and --no-embed-images
ok "grid 32" run "$T_TMP/g" --grid 32 --no-embed-images --keep-raw --keep-going
expect_stdout '"targets":"grid","grid":[32,32]' "grid record" "$P" inspect "$T_TMP/g/train-00000.lvdp" --id s00000
expect_stdout '"image_path":"' "path stored" "$P" inspect "$T_TMP/g/train-00000.lvdp" --id s00000
# viz
ok "viz" "$P" viz "$T_TMP/a/train-00000.lvdp" --out "$T_TMP/viz" --id s00001
if [ -f "$T_TMP/viz/s00001_1_red.png" ]; then pass; else fail "viz wrote s00001_1_red.png"; fi
ok "viz from a path" "$P" viz "$T_TMP/g/train-00000.lvdp" --out "$T_TMP/vizg" -n 1

# --labels official: every record starts with two BOS (4000 in the small vocabulary) and
# holds the recipes record's ids after them; every label equals its id except -100 at
# <|image|> (4256) and at the assistant header <|start_header_id|> (4006) .. <|end_header_id|>
# (4007) (a header whose role is not "user", 882); recipes labels start with -100
ok "labels official" run "$T_TMP/lo" --labels official --keep-going
if grep -q '"labels": "official"' "$T_TMP/lo/pack.json" && grep -q '"labels": "recipes"' "$T_TMP/b/pack.json"; then pass
else fail "pack.json params record the label mode"; fi
expect_stdout '"labels":[4000,4000,4006,882,4007,271,-100,' "official labels of s00000" "$P" inspect "$T_TMP/lo/train-00000.lvdp" --full --id s00000
expect_stdout '"labels":[-100,-100,-100,' "recipes labels of s00000" "$P" inspect "$T_TMP/b/train-00000.lvdp" --full --id s00000
arrays() { for f in "$1"/train-*.lvdp; do "$P" inspect "$f" --full; done | grep -o "\"$2\":\[[^]]*\]" | sed 's/.*\[//; s/\]//'; }
arrays "$T_TMP/lo" ids >"$T_TMP/lo.ids"; arrays "$T_TMP/lo" labels >"$T_TMP/lo.lab"; arrays "$T_TMP/b" ids >"$T_TMP/b.ids"
if [ "$(wc -l <"$T_TMP/lo.ids")" -eq 20 ] && [ "$(sed 's/^/4000,/' "$T_TMP/b.ids")" = "$(cat "$T_TMP/lo.ids")" ]; then pass
else fail "official ids = BOS + recipes ids, 20 records"; fi
bad=$(paste -d';' "$T_TMP/lo.ids" "$T_TMP/lo.lab" | awk -F';' '{
	n = split($1, id, ","); m = split($2, lab, ","); if (n != m || id[1] != 4000 || id[2] != 4000) { bad++; next }
	hdr = 0; masked = 0
	for (i = 1; i <= n; i++) {
		if (id[i] == 4006 && id[i + 1] != 882) hdr = 1
		want = (hdr || id[i] == 4256) ? -100 : id[i]
		if (lab[i] != want) bad++
		masked += lab[i] == -100
		if (id[i] == 4007) hdr = 0
	}
	if (masked < 4) bad++
} END { print bad + 0 }')
if [ "$bad" = 0 ]; then pass; else fail "official labels: $bad records/positions differ from the rule"; fi
expect_exit 2 "resume with other --labels refused" run "$T_TMP/lo" --keep-going
expect_stderr 'labels was "official", now "recipes"' "resume --labels refusal message" run "$T_TMP/lo" --keep-going

# the end-to-end pipeline (tiny SD -> sd-attnmap -> lvd-pack on real photos) is
# tests/e2e/pipeline.sh
finish
