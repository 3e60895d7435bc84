# lvd-report on hand-made inputs: usage errors (exit 2), unreadable runs (exit 1 naming the
# file), the training table (first value, mean of the last 10% of steps), accuracy per
# category from predictions.jsonl (booleans and VQA scores), the alignment table from
# scores.json, the PNGs, and a run without eval/align reported as not measured.
. tests/cli/lib.inc
bin=$BUILD/lvd-report
mkdir -p "$T_TMP/r1" "$T_TMP/r2" "$T_TMP/e1" "$T_TMP/a1"
i=1
while [ $i -le 20 ]; do   # r1: ce 20..1 (last 10% = steps 19, 20: mean 1.5), att constant 0.5
	echo "{\"step\":$i,\"lambda\":10.0,\"ce\":$((21 - i)),\"att\":0.5,\"elapsed\":$i.5}" >>"$T_TMP/r1/metrics.jsonl"
	i=$((i + 1))
done
echo '{"step":1,"lambda":0.0,"ce":3.0,"att":0.25,"elapsed":0.5}' >"$T_TMP/r2/metrics.jsonl"
cat >"$T_TMP/e1/predictions.jsonl" <<'EOF'
{"id":"a","category":"color","correct":true}
{"id":"b","category":"color","correct":false}
{"id":"c","category":"presence","correct":1.0}
EOF
echo '{"model": {"raw_mean": {"mse": 0.1, "pearson": 0.25, "kl": 1.5, "iou10": 0.125, "iou20": 0.375, "pointing": 0.5}, "words": 7}}' \
	>"$T_TMP/a1/scores.json"

expect_exit 0 "--help" "$bin" --help
for o in --out --run --eval --align --align-base --title --note --window; do
	expect_stdout "$o" "--help lists $o" "$bin" --help
done
expect_exit 2 "no --run" "$bin" --out "$T_TMP/o"
expect_exit 2 "no --out" "$bin" --run "a=$T_TMP/r1"
expect_exit 2 "--run without =" "$bin" --out "$T_TMP/o" --run "$T_TMP/r1"
expect_exit 2 "--eval of an unknown run" "$bin" --out "$T_TMP/o" --run "a=$T_TMP/r1" --eval "b=$T_TMP/e1"
expect_exit 2 "a run named twice" "$bin" --out "$T_TMP/o" --run "a=$T_TMP/r1" --run "a=$T_TMP/r2"
expect_exit 1 "missing metrics" "$bin" --out "$T_TMP/o" --run "a=$T_TMP/none"
expect_stderr "none/metrics.jsonl" "missing metrics names the file" "$bin" --out "$T_TMP/o" --run "a=$T_TMP/none"
echo 'not json' >"$T_TMP/bad.jsonl"; mkdir -p "$T_TMP/rb"; cp "$T_TMP/bad.jsonl" "$T_TMP/rb/metrics.jsonl"
expect_stderr "metrics.jsonl:1: not a JSON object" "bad metrics line named" "$bin" --out "$T_TMP/o" --run "a=$T_TMP/rb"
[ ! -e "$T_TMP/o" ] && pass || fail "bad input writes nothing"

ok "report" "$bin" --out "$T_TMP/o" --run "first=$T_TMP/r1" --run "second=$T_TMP/r2" --eval "first=$T_TMP/e1" \
	--align "first=$T_TMP/a1" --title "T" --note "hello note"
R=$T_TMP/o/report.md
cmp -s "$T_TMP/out" "$R" && pass || fail "stdout is report.md"
grep -q "^# T$" "$R" && grep -q "^hello note$" "$R" && pass || fail "title and note"
grep -qF "| first | 10 | 20 | 20.5 | 20.0000 | 1.5000 | 0.5000 | 0.5000 |" "$R" && pass || fail "training row of r1"
grep -qF "| second | 0 | 1 | 0.5 | 3.0000 | 3.0000 | 0.2500 | 0.2500 |" "$R" && pass || fail "training row of r2"
grep -qF "| color | 50.0% (n=2) | – |" "$R" && pass || fail "accuracy: color"
grep -qF "| presence | 100.0% (n=1) | – |" "$R" && pass || fail "accuracy: presence (a VQA score)"
grep -qF "| all | 66.7% (n=3) | – |" "$R" && pass || fail "accuracy: all, last"
grep -qF "| pearson | 0.2500 | – |" "$R" && grep -qF "| iou20 | 0.3750 | – |" "$R" &&
	grep -qF "| pointing | 0.5000 | – |" "$R" && pass || fail "alignment table"
grep -qF "7 matched words" "$R" && pass || fail "alignment word count"
grep -qF "y: 1 (bottom) … 20 (top)" "$R" && pass || fail "ce.png axis range"
for p in ce att; do
	[ "$(od -An -tx1 -N8 "$T_TMP/o/$p.png" | tr -d ' ')" = 89504e470d0a1a0a ] && pass || fail "$p.png is a PNG"
done
ok "report with --align-base" "$bin" -q --out "$T_TMP/o3" --run "first=$T_TMP/r1" --run "second=$T_TMP/r2" \
	--align "second=$T_TMP/a1" --align-base "$T_TMP/a1"
grep -qF "| metric | before training | first | second |" "$T_TMP/o3/report.md" &&
	grep -qF "| pearson | 0.2500 | – | 0.2500 |" "$T_TMP/o3/report.md" && pass || fail "--align-base: a first column"
ok "report without eval or align" "$bin" -q --out "$T_TMP/o2" --run "a=$T_TMP/r2"
[ ! -s "$T_TMP/out" ] && pass || fail "-q prints nothing"
grep -q "Not measured (lvd-eval run" "$T_TMP/o2/report.md" && grep -q "Not measured (lvd-eval align" "$T_TMP/o2/report.md" &&
	pass || fail "missing eval and align reported"
finish
