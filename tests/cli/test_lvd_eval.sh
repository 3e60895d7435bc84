# lvd-eval convert/score as a user runs them: --help, usage errors (exit 2), bad input
# files (exit 1, the message names file and line), the real samples in ../shared/data/vqa
# (MMBench/CCBench rebuilt as VLMEvalKit TSVs with base64 images, POPE question files),
# TextVQA/DocVQA layouts, and `score` on tests/golden/eval/predictions.jsonl giving the
# numbers worked out by hand (below) from VLMEvalKit's rules.
. tests/cli/lib.inc
bin=$BUILD/lvd-eval
G=tests/golden/eval
expect_exit 0 "--help" "$bin" --help
expect_stdout "convert" "--help lists convert" "$bin" --help
expect_stdout "score" "--help lists score" "$bin" --help
for o in --from --out --name --images --image-ext --category --kind mmbench-tsv vlmevalkit-tsv pope textvqa docvqa; do
	expect_stdout "$o" "convert --help lists $o" "$bin" convert --help
done
for o in --bench --out --rescored --circular --no-answer-is --vqa-official --anls-threshold; do
	expect_stdout "$o" "score --help lists $o" "$bin" score --help
done
expect_exit 2 "no subcommand" "$bin"
expect_exit 2 "convert without --from" "$bin" convert --out "$T_TMP/b.jsonl" x
expect_exit 2 "convert bad --from" "$bin" convert --from csv --out "$T_TMP/b.jsonl" x
expect_stderr "expected mmbench-tsv" "bad --from message" "$bin" convert --from csv --out "$T_TMP/b.jsonl" x
expect_exit 2 "convert without --out" "$bin" convert --from pope x
expect_exit 2 "convert without input" "$bin" convert --from pope --out "$T_TMP/b.jsonl"
expect_exit 2 "convert --kind with pope" "$bin" convert --from pope --kind vqa --out "$T_TMP/b.jsonl" x
expect_exit 2 "score without file" "$bin" score
expect_exit 2 "score bad --circular" "$bin" score --circular maybe $G/predictions.jsonl
expect_exit 2 "score bad --anls-threshold" "$bin" score --anls-threshold 2 $G/predictions.jsonl
expect_exit 2 "score unknown flag" "$bin" score --judge gpt $G/predictions.jsonl
expect_exit 1 "convert missing file" "$bin" convert --from pope --out "$T_TMP/b.jsonl" "$T_TMP/nope.jsonl"
expect_exit 1 "score missing file" "$bin" score "$T_TMP/nope.jsonl"
[ ! -e "$T_TMP/b.jsonl" ] && pass || fail "failed converts must not leave an output"

# ---- score on the fixed predictions: numbers derived by hand ----------------------------
# MMBench_DEV_EN_toy (circular by name): q1 all 4 rotations right -> hit; q2 rotation 2
#   wrong; q3 rotation 1 "答案是A" unmatched -> 1/3 = 33.3333. vanilla_0: the 3 main rows
#   right = 100; vanilla_all: 11 of 13 rows (orphan included) = 84.6154; 1 orphan, 1 no_answer.
# SEEDBench_toy (not circular): "(B)" right, "" unmatched = 50.
# POPE: exploded rows (p8 "adversarial,random" counts twice) tp 2 fp 1 fn 3 -> P 66.6667,
#   R 40, F1 50; accuracy 4/9 = 44.4444; LLaVA parse: tp 2 fp 2 fn 3 tn 2 -> F1 44.4444,
#   yes-ratio 4/9 = 44.4444; adversarial F1 66.6667, popular 0, random 50.
# TextVQA: (0.6 + 1) / 2 = 80. DocVQA: (0.75 + 1) / 2 = 87.5, form 75, table/list 100.
ok "score fixed predictions" "$bin" score $G/predictions.jsonl --out "$T_TMP/s.json" --rescored "$T_TMP/r.jsonl"
# scores.json flattened once per run ("a.b.c<TAB>value"), then looked up per check
flat() { jq -r 'paths(scalars) as $p | "\($p | map(tostring) | join("."))\t\(getpath($p))"' "$T_TMP/s.json" >"$T_TMP/flat"; }
want() { got=$(awk -F'\t' -v k="$1" '$1 == k {printf "%.4f", $2}' "$T_TMP/flat"); [ "$got" = "$2" ] && pass || fail "$1 = $got, want $2"; }
if command -v jq >/dev/null 2>&1; then
	flat
	want 'benchmarks.MMBench_DEV_EN_toy.overall' 33.3333
	want 'benchmarks.MMBench_DEV_EN_toy.metrics.vanilla_0' 100.0000
	want 'benchmarks.MMBench_DEV_EN_toy.metrics.vanilla_all' 84.6154
	want 'benchmarks.MMBench_DEV_EN_toy.counts.unmatched' 1.0000
	want 'benchmarks.MMBench_DEV_EN_toy.counts.orphan_rotations' 1.0000
	want 'benchmarks.MMBench_DEV_EN_toy.counts.no_answer' 1.0000
	want 'benchmarks.MMBench_DEV_EN_toy.categories.Attribute Recognition.overall' 50.0000
	want 'benchmarks.MMBench_DEV_EN_toy.categories.Scenery Building.overall' 0.0000
	want 'benchmarks.MMBench_DEV_EN_toy.l2_categories.FP-S.overall' 50.0000
	want 'benchmarks.SEEDBench_toy.overall' 50.0000
	want 'benchmarks.POPE.overall' 50.0000
	want 'benchmarks.POPE.metrics.accuracy' 44.4444
	want 'benchmarks.POPE.metrics.precision' 66.6667
	want 'benchmarks.POPE.metrics.recall' 40.0000
	want 'benchmarks.POPE.metrics.llava.f1' 44.4444
	want 'benchmarks.POPE.metrics.llava.yes_ratio' 44.4444
	want 'benchmarks.POPE.categories.adversarial.f1' 66.6667
	want 'benchmarks.POPE.categories.popular.f1' 0.0000
	want 'benchmarks.POPE.categories.random.f1' 50.0000
	want 'benchmarks.POPE.categories.random.llava.yes_ratio' 25.0000
	want 'benchmarks.TextVQA.overall' 80.0000
	want 'benchmarks.DocVQA.overall' 87.5000
	want 'benchmarks.DocVQA.categories.form.overall' 75.0000
	[ "$(jq -r .input.predictions.sha256 "$T_TMP/s.json")" = "$(sha256sum $G/predictions.jsonl | cut -d' ' -f1)" ] &&
		pass || fail "provenance sha256"
	[ "$(jq -r .options.circular "$T_TMP/s.json")" = auto ] && pass || fail "options recorded"
	[ "$(jq -r 'select(.id=="q3-r1") | .parsed' "$T_TMP/r.jsonl")" = unmatched ] && pass || fail "rescored: unmatched"
	[ "$(jq -r 'select(.id=="q1-r2") | .correct' "$T_TMP/r.jsonl")" = true ] && pass || fail "rescored: correct"
	[ "$(jq -r 'select(.id=="t1") | .correct' "$T_TMP/r.jsonl")" = 0.6 ] && pass || fail "rescored: vqa value"
	# --circular off: every answered row is its own question: 11 of 13 right
	ok "score --circular off" "$bin" score --circular off $G/predictions.jsonl --out "$T_TMP/s.json"; flat
	want 'benchmarks.MMBench_DEV_EN_toy.overall' 84.6154
	# without the "answer is" fallback q1-r2 ("The answer is D") still parses: D is the
	# last of 4 tokens, so can_infer_option's token rule finds it first
	ok "score --no-answer-is" "$bin" score --no-answer-is $G/predictions.jsonl --out "$T_TMP/s.json"; flat
	want 'benchmarks.MMBench_DEV_EN_toy.overall' 33.3333
else
	skip "jq absent: score numbers not checked"
fi
ok "score to stdout" "$bin" score -q $G/predictions.jsonl
grep -q '"benchmarks"' "$T_TMP/out" && pass || fail "scores.json on stdout"

# ---- bad prediction files ---------------------------------------------------------------
printf '{"id":"a","kind":"yesno","question":"q","answer":"yes","output":"yes"}\n{"id":"b",\n' >"$T_TMP/bad1.jsonl"
expect_exit 1 "bad JSON line" "$bin" score "$T_TMP/bad1.jsonl"
expect_stderr "bad1.jsonl:2:" "bad JSON names file:line" "$bin" score "$T_TMP/bad1.jsonl"
printf '{"id":"a","kind":"yesno","question":"q","answer":"yes"}\n' >"$T_TMP/bad2.jsonl"
expect_stderr "bad2.jsonl:1: field 'output'" "missing output" "$bin" score "$T_TMP/bad2.jsonl"
printf '{"id":"a","kind":"mcq","question":"q","choices":{"A":"x","B":"y"},"answer":"E","output":"A"}\n' >"$T_TMP/bad3.jsonl"
expect_stderr "bad3.jsonl:1: field 'answer'" "answer outside choices" "$bin" score "$T_TMP/bad3.jsonl"
printf '{"id":"a","kind":"yesno","question":"q","answer":"yes","output":"y"}\n{"id":"a","kind":"yesno","question":"q","answer":"no","output":"n"}\n' >"$T_TMP/bad4.jsonl"
expect_stderr "bad4.jsonl:2: id 'a' repeats line 1" "duplicate id" "$bin" score "$T_TMP/bad4.jsonl"
printf '{"id":"a","kind":"essay","question":"q","output":"y"}\n' >"$T_TMP/bad5.jsonl"
expect_stderr "field 'kind'" "unknown kind" "$bin" score "$T_TMP/bad5.jsonl"
printf '{"id":"zz","output":"A"}\n' >"$T_TMP/bad6.jsonl"
expect_stderr "id 'zz' is not in" "--bench without the id" "$bin" score "$T_TMP/bad6.jsonl" --bench $G/predictions.jsonl

# ---- convert: TSV errors ----------------------------------------------------------------
printf 'index\tquestion\tA\tB\tanswer\timage\n1\t"never closed\tx\ty\tA\tAAAA\n' >"$T_TMP/q.tsv"
expect_exit 1 "TSV unclosed quote" "$bin" convert --from mmbench-tsv "$T_TMP/q.tsv" --out "$T_TMP/b.jsonl"
expect_stderr "q.tsv:2: quoted cell 2 never closes" "unclosed quote message" "$bin" convert --from mmbench-tsv "$T_TMP/q.tsv" --out "$T_TMP/b.jsonl"
printf 'index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\tA\t%s\n' "$(printf 'x%.0s' $(seq 80))" >"$T_TMP/b64.tsv"
expect_stderr "b64.tsv:2: field 'image': not a PNG" "image not an image" "$bin" convert --from mmbench-tsv "$T_TMP/b64.tsv" --out "$T_TMP/b.jsonl"
printf 'index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\tC\t5\n' >"$T_TMP/ans.tsv"
expect_stderr "ans.tsv:2: field 'answer': 'C'" "answer not an option" "$bin" convert --from mmbench-tsv "$T_TMP/ans.tsv" --out "$T_TMP/b.jsonl"
printf 'index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\n' >"$T_TMP/cells.tsv"
expect_stderr "cells.tsv:2: row has 4 cells, the header 6" "short row" "$bin" convert --from mmbench-tsv "$T_TMP/cells.tsv" --out "$T_TMP/b.jsonl"
printf 'index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\tA\t9\n' >"$T_TMP/ref.tsv"
expect_stderr "ref.tsv:2: field 'image': '9'" "dangling image reference" "$bin" convert --from mmbench-tsv "$T_TMP/ref.tsv" --out "$T_TMP/b.jsonl"
printf '{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "maybe"}\n' >"$T_TMP/coco_pope_x.json"
expect_stderr "coco_pope_x.json:1: field 'label'" "POPE bad label" "$bin" convert --from pope "$T_TMP/coco_pope_x.json" --out "$T_TMP/b.jsonl"
[ ! -e "$T_TMP/b.jsonl" ] && pass || fail "failed converts must not leave an output"

# a tiny VLMEvalKit TSV: one row holds the image, the next names it; a Python-list answer
png=$(base64 -w0 tests/golden/images/$(ls tests/golden/images | grep -m1 '\.png$'))
printf 'index\tquestion\tanswer\timage\tcategory\n5\t"say ""hi"""\t"[%s, %s]"\t%s\tocr\n6\tNone?\tNA\t5\tocr\n' \
	"'hi'" "'hello'" "$png" >"$T_TMP/OCRBench_toy.tsv"
ok "vlmevalkit-tsv" "$bin" convert --from vlmevalkit-tsv "$T_TMP/OCRBench_toy.tsv" --out "$T_TMP/o/bench.jsonl"
if command -v jq >/dev/null 2>&1; then
	[ "$(jq -r 'select(.id=="OCRBench_toy-5") | .answers | join("|")' "$T_TMP/o/bench.jsonl")" = "hi|hello" ] && pass || fail "python list answer"
	[ "$(jq -r 'select(.id=="OCRBench_toy-5") | .question' "$T_TMP/o/bench.jsonl")" = 'say "hi"' ] && pass || fail "quoted TSV cell"
	[ "$(jq -r 'select(.id=="OCRBench_toy-6") | .image' "$T_TMP/o/bench.jsonl")" = "images/OCRBench_toy/5.png" ] && pass || fail "image reference resolved"
	[ "$(jq -r 'select(.id=="OCRBench_toy-6") | has("answers")' "$T_TMP/o/bench.jsonl")" = false ] && pass || fail "NA answer is no answer"
fi
[ -f "$T_TMP/o/images/OCRBench_toy/5.png" ] && pass || fail "TSV image written"

# ---- convert: TextVQA and DocVQA layouts --------------------------------------------------
ok "textvqa" "$bin" convert --from textvqa $G/textvqa_sample.json --images train_images --out "$T_TMP/t.jsonl"
ok "docvqa" "$bin" convert --from docvqa $G/docvqa_sample.json --out "$T_TMP/d.jsonl"
if command -v jq >/dev/null 2>&1; then
	[ "$(jq -r .image "$T_TMP/t.jsonl" | head -1)" = train_images/0054c91397f2fe05.jpg ] && pass || fail "textvqa image path"
	[ "$(jq -r '.answers | length' "$T_TMP/t.jsonl" | head -1)" = 10 ] && pass || fail "textvqa answers"
	[ "$(jq -r .kind "$T_TMP/d.jsonl" | sort -u)" = anls ] && pass || fail "docvqa kind"
	[ "$(jq -r .category "$T_TMP/d.jsonl" | tail -1)" = layout ] && pass || fail "docvqa category"
	# score them: TextVQA "Nokia" -> 9 "nokia" GTs, every row sees >= 8 others -> 1;
	# "twenty-five": '-' becomes a space, "five" -> "5": "twenty 5", equal only to the GT
	# "twenty five" (also "twenty 5"): that row sees 0 others, the 9 others see 1 -> 1/3:
	# 9/3/10 = 0.3; mean (1 + 0.3) / 2 = 65
	jq -c '. + {output: (if .id == "34602" then "Nokia" else "twenty-five" end)}' "$T_TMP/t.jsonl" >"$T_TMP/tp.jsonl"
	ok "score textvqa" "$bin" score "$T_TMP/tp.jsonl" --out "$T_TMP/s.json"; flat
	want 'benchmarks.TextVQA.overall' 65.0000
	# DocVQA: "1,234.00" equals the second GT -> 1; "J Smith" vs "J. Smith": distance 1 over
	# 8 -> 0.875; mean 93.75
	jq -c '. + {output: (if .id == "49153" then "1,234.00" else "J Smith" end)}' "$T_TMP/d.jsonl" >"$T_TMP/dp.jsonl"
	ok "score docvqa" "$bin" score "$T_TMP/dp.jsonl" --out "$T_TMP/s.json"; flat
	want 'benchmarks.DocVQA.overall' 93.7500
fi

# ---- the real samples ---------------------------------------------------------------------
D=../shared/data/vqa
if [ ! -d "$D" ]; then
	skip "SKIP: ../shared/data absent"
	finish
	exit $?
fi
ok "pope: the three real question files" "$bin" convert --from pope $D/pope/coco_pope_random.subset.jsonl \
	$D/pope/coco_pope_popular.subset.jsonl $D/pope/coco_pope_adversarial.subset.jsonl \
	--images "$(pwd)/$D/pope/images" --image-ext png --out "$T_TMP/pope.jsonl"
[ "$(wc -l <"$T_TMP/pope.jsonl")" -eq 144 ] && pass || fail "pope: 144 questions"
if command -v jq >/dev/null 2>&1; then
	[ "$(jq -r .category "$T_TMP/pope.jsonl" | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')" = "48 " ] &&
		pass || fail "pope: 48 per category"
	missing=0
	for f in $(jq -r .image "$T_TMP/pope.jsonl" | sort -u); do [ -f "$f" ] || missing=$((missing + 1)); done
	[ "$missing" -eq 0 ] && pass || fail "pope: $missing images missing"
	# answering "yes" to everything: recall 100, precision = share of yes labels
	jq -c '. + {output: "Yes."}' "$T_TMP/pope.jsonl" >"$T_TMP/popep.jsonl"
	ok "pope: score all-yes" "$bin" score "$T_TMP/popep.jsonl" --out "$T_TMP/s.json"; flat
	yes=$(jq -r .label $D/pope/*.subset.jsonl | grep -c '^yes$')
	want 'benchmarks.POPE.metrics.recall' 100.0000
	want 'benchmarks.POPE.metrics.precision' "$(awk -v y="$yes" 'BEGIN{printf "%.4f", 100*y/144}')"
	want 'benchmarks.POPE.metrics.llava.yes_ratio' 100.0000
fi

if command -v python3 >/dev/null 2>&1; then
	# MMBench/CCBench samples as VLMEvalKit TSVs: pandas-style quoting (csv module, the
	# writer pandas uses) and each image base64-encoded in the `image` column
	python3 - "$D/mmbench" "$T_TMP" <<'PY'
import base64, csv, json, sys
src, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(src + "/mmbench_samples.jsonl", encoding="utf-8")]
groups = {"MMBench_sample_EN": ("MMBench", "en"), "MMBench_sample_CN": ("MMBench", "cn"), "CCBench_sample": ("CCBench", "cn")}
for name, (b, lang) in groups.items():
    with open(f"{out}/{name}.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"])
        for r in rows:
            if r["benchmark"] == b and r["language"] == lang:
                img = base64.b64encode(open(src + "/" + r["image"], "rb").read()).decode()
                w.writerow([r["index"], r["question"], r["hint"] or "", r["A"], r["B"], r["C"] or "", r["D"] or "",
                            r["answer"], r["category"], r["l2-category"] or "", img])
PY
	ok "mmbench-tsv: the real samples" "$bin" convert --from mmbench-tsv "$T_TMP/MMBench_sample_EN.tsv" \
		"$T_TMP/MMBench_sample_CN.tsv" "$T_TMP/CCBench_sample.tsv" --out "$T_TMP/mm/bench.jsonl"
	[ "$(wc -l <"$T_TMP/mm/bench.jsonl")" -eq 54 ] && pass || fail "mmbench: 54 questions"
	[ "$(ls "$T_TMP/mm/images/MMBench_sample_EN" | wc -l)" -eq 20 ] && pass || fail "mmbench: 20 EN images"
	cmp -s "$T_TMP/mm/images/CCBench_sample/0.png" $D/mmbench/images/CCBench_0.png && pass || fail "image bytes kept"
	grep -q '图中所示建筑名称为？' "$T_TMP/mm/bench.jsonl" && pass || fail "Chinese question kept"
	if command -v jq >/dev/null 2>&1; then
		[ "$(jq -r 'select(.id=="MMBench_sample_EN-1") | .choices.C' "$T_TMP/mm/bench.jsonl")" = \
		  "$(jq -r 'select(.benchmark=="MMBench" and .language=="en" and .index==1) | .C' $D/mmbench/mmbench_samples.jsonl)" ] &&
			pass || fail "multi-line option text kept"
		# rescore through --bench: every prediction "A" -> the share of questions whose
		# answer is A (no rotations in the samples: circular groups of one)
		jq -c 'select(.dataset=="CCBench_sample") | {id, output: "A"}' "$T_TMP/mm/bench.jsonl" >"$T_TMP/ccp.jsonl"
		jq -c 'select(.dataset=="CCBench_sample")' "$T_TMP/mm/bench.jsonl" >"$T_TMP/cc.jsonl"
		ok "score --bench on CCBench" "$bin" score "$T_TMP/ccp.jsonl" --bench "$T_TMP/cc.jsonl" --out "$T_TMP/s.json"; flat
		nA=$(jq -r 'select(.benchmark=="CCBench") | .answer' $D/mmbench/mmbench_samples.jsonl | grep -c '^A$')
		want 'benchmarks.CCBench_sample.overall' "$(awk -v a="$nA" 'BEGIN{printf "%.4f", 100*a/14}')"
		[ "$(jq -r .benchmarks.CCBench_sample.circular "$T_TMP/s.json")" = true ] && pass || fail "CCBench is circular by name"
	fi
else
	skip "python3 absent: MMBench TSVs not rebuilt"
fi
finish
