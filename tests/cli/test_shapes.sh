# lvd-shapes as a user runs it: --help/--version, usage errors (exit 2), a run failure
# (exit 1), byte-identical folders for the same seed, different ones for another seed,
# both splits in one folder, progress on stderr and nothing on stdout.
. tests/cli/lib.inc
bin=$BUILD/lvd-shapes
expect_exit 0 "--help" "$bin" --help
expect_stdout "usage: lvd-shapes" "--help usage line" "$bin" --help
for o in --out --n --seed --split --min-shapes --max-shapes --tile-size --max-tiles --map-size --questions --version; do
	expect_stdout "$o" "--help lists $o" "$bin" --help
done
expect_stdout "lpm_attention" "--help names the map layout" "$bin" --help
expect_stdout "features: CUDA=" "--version" "$bin" --version
expect_exit 2 "no --out" "$bin" --n 2
expect_stderr "--out DIR is required" "no --out message" "$bin" --n 2
expect_exit 2 "bad flag" "$bin" --out "$T_TMP/x" --no-such-flag
expect_exit 2 "bad split" "$bin" --out "$T_TMP/x" --split test
expect_stderr "expected train or heldout" "bad split message" "$bin" --out "$T_TMP/x" --split test
expect_exit 2 "min > max" "$bin" --out "$T_TMP/x" --min-shapes 3 --max-shapes 2
expect_exit 2 "--n 0" "$bin" --out "$T_TMP/x" --n 0
expect_exit 2 "--n not a number" "$bin" --out "$T_TMP/x" --n 3x
expect_exit 2 "--max-shapes 4" "$bin" --out "$T_TMP/x" --max-shapes 4
expect_exit 2 "--tile-size 31" "$bin" --out "$T_TMP/x" --tile-size 31
expect_exit 2 "positional argument" "$bin" --out "$T_TMP/x" extra
[ ! -e "$T_TMP/x" ] && pass || fail "usage errors must not create the output folder"
: >"$T_TMP/file"
expect_exit 1 "output under a regular file" "$bin" --out "$T_TMP/file/sub" --n 1 --tile-size 32
expect_stderr "lvd-shapes: error:" "run error message" "$bin" --out "$T_TMP/file/sub" --n 1 --tile-size 32

run() { "$bin" --n 2 --tile-size 40 --max-shapes 2 --questions 2 "$@"; }
ok "run seed 5" run --seed 5 --out "$T_TMP/a"
[ ! -s "$T_TMP/out" ] && pass || fail "stdout must stay empty"
grep -q "2/2 images" "$T_TMP/err" && pass || fail "progress summary on stderr"
ok "run seed 5 again" run --seed 5 --out "$T_TMP/b"
ok "same seed, identical folders" diff -r "$T_TMP/a" "$T_TMP/b"
ok "run seed 6, quiet" run --seed 6 --out "$T_TMP/c" -q
[ ! -s "$T_TMP/err" ] && pass || fail "-q prints nothing"
expect_exit 1 "other seed, different folders" diff -rq "$T_TMP/a" "$T_TMP/c"
ok "heldout into the same folder" run --seed 5 --split heldout --out "$T_TMP/a"
ok "train manifest untouched" cmp "$T_TMP/a/train.jsonl" "$T_TMP/b/train.jsonl"
[ "$(wc -l <"$T_TMP/a/heldout.jsonl")" -eq 2 ] && pass || fail "heldout.jsonl has 2 lines"
grep -q '"id":"heldout-000001"' "$T_TMP/a/heldout.jsonl" && pass || fail "heldout ids"
[ -f "$T_TMP/a/images/heldout-000000.png" ] && pass || fail "heldout image written"
n_jpg=$(find "$T_TMP/a/attn" -name 'attention_*.jpg' | wc -l)
n_png=$(find "$T_TMP/a/attn-png" -name 'attention_*.png' | wc -l)
[ "$n_jpg" -ge 4 ] && [ "$n_jpg" -eq "$n_png" ] && pass || fail "maps: $n_jpg jpg, $n_png png"
[ -z "$(find "$T_TMP/a" -name '*.tmp')" ] && pass || fail "temporary files left behind"
finish
