# lvd-pack run/inspect/ls/viz on a MiniCPM-Llama3-V-2.5 model folder, as a user runs them:
# three real photos (one picture, two slices, a grid of slices) with synthetic maps, written
# by build/tests/test_pack_mcv --fixture (the tiny golden MiniCPM config.json, the small
# Llama-3 tokenizer.json with the MiniCPM tags). The model type comes from config.json; the
# records are version 2 with grid targets (default 32); the mllama-only options are refused
# naming the model; a missing map is listed by id; threads do not change the bytes.
. tests/cli/lib.inc
P=$BUILD/lvd-pack
FX=$BUILD/tests/test_pack_mcv
D=$T_TMP/fx

expect_stdout "minicpmv" "run --help names MiniCPM-V" "$P" run --help
expect_stdout "openbmb" "run --help names --labels openbmb" "$P" run --help
if [ ! -x "$FX" ] || ! "$FX" --fixture "$D" 2>"$T_TMP/err"; then
	skip "fixture: $FX --fixture failed or missing ($(cat "$T_TMP/err"))"
	finish
	exit $?
fi
run() { out=$1; shift; "$P" run --manifest "$D/data.jsonl" --maps "$D/maps" --model "$D/model" --out "$out" "$@"; }

ok "run (threads 1)" run "$T_TMP/a" --threads 1
ok "run (threads 2)" run "$T_TMP/b" --threads 2
if cmp -s "$T_TMP/a/train-00000.lvdp" "$T_TMP/b/train-00000.lvdp"; then pass; else fail "shards identical for threads 1, 2"; fi
if grep -q '"model_type": "minicpmv"' "$T_TMP/a/pack.json" && grep -q '"labels": "openbmb"' "$T_TMP/a/pack.json" &&
	grep -q '"grid": 32' "$T_TMP/a/pack.json" && grep -q '"query_num": 8' "$T_TMP/a/pack.json" &&
	grep -q '"samples": 3,' "$T_TMP/a/pack.json"; then pass; else fail "pack.json: model_type, labels, grid, query_num, 3 samples"; fi

# inspect: the slicing of each record (the 480x640 photo: 1 column x 2 rows, source 32x24 patches)
expect_stdout '"model":"minicpmv"' "inspect names the model" "$P" inspect "$T_TMP/a" --id m1
expect_stdout '"cols":1,"rows":2' "inspect: m1's slice grid" "$P" inspect "$T_TMP/a" --id m1
expect_stdout '"cols":0,"rows":0' "inspect: m0 is one picture" "$P" inspect "$T_TMP/a" --id m0
expect_stdout '"targets":"grid","grid":[32,32]' "inspect: grid targets" "$P" inspect "$T_TMP/a" --id m2
expect_stdout '"query_num":8' "inspect: query_num" "$P" inspect "$T_TMP/a" --id m2
expect_stdout '[[beach]]' "inspect --model marks the matched words" "$P" inspect "$T_TMP/a" --id m1 --model "$D/model"
# ls names the model
expect_stdout "model minicpmv" "ls names the model" "$P" ls "$T_TMP/a"
expect_stdout '"model":"minicpmv"' "ls --json names the model" "$P" ls "$T_TMP/a" --json
# viz draws every word of every record
ok "viz" "$P" viz "$T_TMP/a/train-00000.lvdp" --out "$T_TMP/viz" --cell 4
n=$(ls "$T_TMP/viz" | grep -c '\.png$')
if [ "$n" -ge 15 ]; then pass; else fail "viz wrote $n PNGs, want one per word (>= 15)"; fi

# resume: the same command keeps the shard; another model type into the same folder is refused
ino=$(stat -c %i "$T_TMP/a/train-00000.lvdp")
ok "resume (same command)" run "$T_TMP/a" --threads 1
if [ "$(stat -c %i "$T_TMP/a/train-00000.lvdp")" = "$ino" ]; then pass; else fail "resume rewrote the complete shard"; fi
expect_exit 2 "resume with --grid 16 refused" run "$T_TMP/a" --grid 16
expect_stderr "grid was 32, now 16" "resume message names grid" run "$T_TMP/a" --grid 16

# --grid N is kept; the mllama canvas and label rules are refused naming the model
ok "--grid 16" run "$T_TMP/g" --grid 16
expect_stdout '"grid":[16,16]' "grid 16 record" "$P" inspect "$T_TMP/g" --id m0
expect_exit 2 "--grid canvas refused" run "$T_TMP/x1" --grid canvas
expect_stderr "does not exist for it" "--grid canvas message" run "$T_TMP/x1" --grid canvas
expect_exit 2 "--labels official refused" run "$T_TMP/x2" --labels official
expect_stderr "is a MiniCPM-V model" "--labels official message" run "$T_TMP/x2" --labels official
ok "--labels openbmb (the default) accepted" run "$T_TMP/x3" --labels openbmb
if cmp -s "$T_TMP/a/train-00000.lvdp" "$T_TMP/x3/train-00000.lvdp"; then pass; else fail "--labels openbmb is the default"; fi

# a sample without maps: listed by id and index, exit 1; --allow-missing-maps packs it
expect_exit 1 "missing map -> exit 1" "$P" run --manifest "$D/nomap.jsonl" --maps "$D/maps" --model "$D/model" --out "$T_TMP/n"
if grep -q '"id":"nomap"' "$T_TMP/n/errors.jsonl" && grep -q '"index":3' "$T_TMP/n/errors.jsonl" &&
	grep -q '"kind":"missing_maps"' "$T_TMP/n/errors.jsonl"; then pass; else fail "errors.jsonl lists nomap"; fi
ok "--allow-missing-maps" "$P" run --manifest "$D/nomap.jsonl" --maps "$D/maps" --model "$D/model" --out "$T_TMP/n2" --allow-missing-maps
if grep -q '"missing_maps": 1' "$T_TMP/n2/pack.json"; then pass; else fail "pack.json counts the missing map"; fi

# a tokenizer without the MiniCPM tags is refused naming the file and the token
mkdir -p "$T_TMP/m2" && cp "$D/model/config.json" "$T_TMP/m2/" && cp "$LVD_SRCDIR/tests/golden/tokenizer/small/tokenizer.json" "$T_TMP/m2/"
expect_exit 1 "tokenizer without <unk>" run "$T_TMP/x4" --model "$T_TMP/m2"
expect_stderr "tokenizer.json: " "tokenizer error names the file" run "$T_TMP/x4" --model "$T_TMP/m2"
expect_stderr "<unk>" "tokenizer error names the token" run "$T_TMP/x4" --model "$T_TMP/m2"
# an unknown model_type is refused naming config.json
mkdir -p "$T_TMP/m3" && cp "$D/model/tokenizer.json" "$T_TMP/m3/" && echo '{"model_type": "llava"}' >"$T_TMP/m3/config.json"
expect_stderr 'config.json: model_type "llava" is not supported' "unknown model_type" run "$T_TMP/x5" --model "$T_TMP/m3"

# the mllama side of the same options: --grid canvas is its default, --labels openbmb is refused
FM=$BUILD/tests/test_pack_tool
if [ -x "$FM" ] && "$FM" --fixture "$T_TMP/fm" 4 2>"$T_TMP/err"; then
	mrun() { out=$1; shift; "$P" run --manifest "$T_TMP/fm/data.jsonl" --maps "$T_TMP/fm/maps" --model "$T_TMP/fm/model" --out "$out" "$@"; }
	ok "mllama run" mrun "$T_TMP/ma"
	ok "mllama --grid canvas" mrun "$T_TMP/mb" --grid canvas
	if cmp -s "$T_TMP/ma/train-00000.lvdp" "$T_TMP/mb/train-00000.lvdp" && ! grep -q model_type "$T_TMP/ma/pack.json"; then pass; else fail "mllama: --grid canvas is the default; no model_type in pack.json"; fi
	expect_exit 2 "mllama --labels openbmb refused" mrun "$T_TMP/mc" --labels openbmb
	expect_stderr "is a Llama-3.2-Vision (mllama) model" "mllama --labels openbmb message" mrun "$T_TMP/mc" --labels openbmb
	expect_stdout "model mllama" "ls names mllama" "$P" ls "$T_TMP/ma"
else
	skip "mllama fixture: $FM --fixture failed or missing"
fi
finish
