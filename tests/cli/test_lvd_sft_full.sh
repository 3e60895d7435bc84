# lvd-sft's further trainer features on the golden tiny mllama and packs written by
# build/tests/test_sft --pack: --full/--train (only the chosen groups change; SIGKILL then
# resume bit-identical), export --merge/--dtype/--max-shard-size (complete transformers
# folder; the LoRA merge itself is checked against base+LoRA logits in
# tests/unit/test_mllama_full.c), the CE warm-up and ramp, --eval-pack/--eval-every, and
# --resume/--no-resume.
. tests/cli/lib.inc
bin=$BUILD/lvd-sft
fx=$BUILD/tests/test_sft
model=${LVD_SRCDIR:-.}/tests/golden/mllama/model
if [ ! -x "$fx" ]; then skip "needs $fx (make $fx)"; finish; exit; fi

for o in --full --train --ce-warmup --ce-ramp --eval-pack --eval-every --resume --no-resume; do
	expect_stdout "$o" "run --help lists $o" "$bin" run --help
done
for o in --merge --dtype --max-shard-size; do
	expect_stdout "$o" "export --help lists $o" "$bin" export --help
done
ok "fixture pack" "$fx" --pack "$T_TMP/pack" "$model" 6
ok "fixture pack of 2" "$fx" --pack "$T_TMP/pack2" "$model" 2
run() { "$bin" run --model "$model" --threads 1 -q "$@"; }
P="--pack $T_TMP/pack"
expect_exit 2 "--full with --lora" run $P --out "$T_TMP/x" --full --lora r=4
expect_exit 2 "--train without --full" run $P --out "$T_TMP/x" --train vision
expect_exit 2 "bad --train group" run $P --out "$T_TMP/x" --full --train vision,lm
expect_stderr "'lm' is not one of" "bad --train message" run $P --out "$T_TMP/x" --full --train vision,lm
expect_exit 2 "--eval-every without --eval-pack" run $P --out "$T_TMP/x" --eval-every 2
expect_exit 2 "--resume without a checkpoint" run $P --out "$T_TMP/x" --resume
expect_stderr "holds no complete checkpoint" "--resume message" run $P --out "$T_TMP/x" --resume
expect_exit 1 "missing eval pack" run $P --out "$T_TMP/x" --eval-pack "$T_TMP/nope"
expect_stderr "nope/pack.json" "missing eval pack names the file" run $P --out "$T_TMP/x" --eval-pack "$T_TMP/nope"
[ ! -e "$T_TMP/x" ] && pass || fail "refused options must not create the run folder"

# --full --train projector,cross: the exported model differs from the base (a run at
# lr 0 exports the base under the same names) exactly in the projector and the cross
# layer (layers.1 of the tiny model).
F="$P --full --max-steps 3 --save-every 2 --lr 1e-3"
ok "full projector,cross" run $F --train projector,cross --out "$T_TMP/f1"
ok "full at lr 0" run $P --full --max-steps 1 --lr 0 --out "$T_TMP/f0"
shard=model-00001-of-00001.safetensors
for f in config.json model.safetensors.index.json $shard generation_config.json aligner.safetensors; do
	[ -s "$T_TMP/f1/final/$f" ] && pass || fail "full: final/$f"
done
"$fx" --diff "$T_TMP/f1/final/$shard" "$T_TMP/f0/final/$shard" >"$T_TMP/changed"
grep -q '^model.multi_modal_projector.weight$' "$T_TMP/changed" && pass || fail "projector changed"
grep -q '^model.language_model.layers.1.cross_attn.q_proj.weight$' "$T_TMP/changed" && pass || fail "cross layer changed"
if grep -v -e '^model.multi_modal_projector\.' -e '^model.language_model.layers.1\.' "$T_TMP/changed" >"$T_TMP/bad"; then
	fail "full: frozen groups changed: $(head -3 "$T_TMP/bad" | tr '\n' ' ')"
else
	pass
fi
grep -q '"train": *"projector,cross"' "$T_TMP/f1/run.json" && pass || fail "run.json records --train"
expect_stdout '"multi_modal_projector.weight.adam_v"' "full checkpoint holds the moments" \
	"$bin" inspect "$T_TMP/f1/ckpt-000003"
expect_exit 1 "frozen groups have no state" grep -q '"vision_model.' "$T_TMP/out"
ok "full, all groups" run $P --full --max-steps 1 --lr 1e-3 --out "$T_TMP/fa"
"$fx" --diff "$T_TMP/fa/final/$shard" "$T_TMP/f0/final/$shard" >"$T_TMP/changed"
for g in model.vision_model.patch_embedding.weight model.multi_modal_projector.weight lm_head.weight \
	model.language_model.layers.0.self_attn.q_proj.weight model.language_model.layers.1.cross_attn.k_proj.weight; do
	grep -q "^$g\$" "$T_TMP/changed" && pass || fail "full (all): $g changed"
done
ok "full: repeated batch" run --pack "$T_TMP/pack2" --out "$T_TMP/fd" --batch 2 --epochs 20 --lr 1e-3 \
	--schedule constant --full
first=$(head -1 "$T_TMP/fd/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$T_TMP/fd/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.25 * a) }' && pass || fail "full: loss $first -> $last not down 4x"
expect_exit 2 "changed --train refused on resume" run $F --train projector --out "$T_TMP/f1"

# --full: SIGKILL after step 3 (checkpoint at 2), resume: bit-identical.
K="$P --full --train text,cross --epochs 1 --save-every 2 --lr 1e-3"
ok "full uninterrupted" run $K --out "$T_TMP/fu"
LVD_SFT_KILL_AT=3 run $K --out "$T_TMP/fk" >/dev/null 2>&1
[ $? -eq 137 ] && pass || fail "full: killed at step 3"
ok "full resume" "$bin" run --model "$model" --threads 1 $K --out "$T_TMP/fk" --resume
grep -q "resuming from" "$T_TMP/err" && pass || fail "full: resume message"
ok "full resume: state bitwise" cmp "$T_TMP/fu/ckpt-000006/state.safetensors" "$T_TMP/fk/ckpt-000006/state.safetensors"
ok "full resume: model bitwise" cmp "$T_TMP/fu/final/$shard" "$T_TMP/fk/final/$shard"
sed 's/"elapsed".*//' "$T_TMP/fu/metrics.jsonl" >"$T_TMP/m1"
sed 's/"elapsed".*//' "$T_TMP/fk/metrics.jsonl" >"$T_TMP/m2"
ok "full resume: same metrics" cmp "$T_TMP/m1" "$T_TMP/m2"
expect_exit 2 "--no-resume with a checkpoint" run $K --out "$T_TMP/fu" --no-resume
expect_stderr "already holds ckpt-000006" "--no-resume message" run $K --out "$T_TMP/fu" --no-resume
ok "--no-resume on a new folder" run $P --max-steps 1 --out "$T_TMP/nr" --no-resume

# export of a --full checkpoint: the same folder as final/; bf16; refuses a non-empty --out.
ok "export full" "$bin" export "$T_TMP/fu/ckpt-000006" --model "$model" --out "$T_TMP/fe"
ok "export full = final" cmp "$T_TMP/fe/$shard" "$T_TMP/fu/final/$shard"
ok "export full bf16" "$bin" export "$T_TMP/fu/ckpt-000006" --model "$model" --out "$T_TMP/fe16" --dtype bf16
grep -q '"dtype": *"bfloat16"' "$T_TMP/fe16/config.json" && pass || fail "bf16 config dtype"
s32=$(wc -c <"$T_TMP/fe/$shard"); s16=$(wc -c <"$T_TMP/fe16/$shard")
[ "$s16" -lt "$s32" ] && pass || fail "bf16 shard smaller ($s16 vs $s32)"
expect_exit 1 "export into a non-empty folder" "$bin" export "$T_TMP/fu/ckpt-000006" --model "$model" --out "$T_TMP/fe"
expect_stderr "not empty" "non-empty folder message" "$bin" export "$T_TMP/fu/ckpt-000006" --model "$model" --out "$T_TMP/fe"

ok "export into new/deep/ with a trailing slash" "$bin" export "$T_TMP/fu/ckpt-000006" --model "$model" \
	--out "$T_TMP/new/deep/"
ok "export into new/deep/: same shard" cmp "$T_TMP/new/deep/$shard" "$T_TMP/fu/final/$shard"
[ ! -e "$T_TMP/new/deep.tmp" ] && [ ! -e "$T_TMP/new/deep/.tmp" ] && pass || fail "no temporary folder left"

# export --merge of a LoRA checkpoint: complete folder, several shards at 300KB.
ok "lora run" run $P --max-steps 2 --lr 1e-2 --out "$T_TMP/l"
expect_exit 2 "--dtype without --merge" "$bin" export "$T_TMP/l/ckpt-000002" --model "$model" --out "$T_TMP/lm" --dtype bf16
expect_exit 2 "bad --dtype" "$bin" export "$T_TMP/l/ckpt-000002" --model "$model" --out "$T_TMP/lm" --merge --dtype fp16
expect_exit 2 "bad --max-shard-size" "$bin" export "$T_TMP/l/ckpt-000002" --model "$model" --out "$T_TMP/lm" --merge \
	--max-shard-size 3XB
ok "export --merge" "$bin" export "$T_TMP/l/ckpt-000002" --model "$model" --out "$T_TMP/lm" --merge --max-shard-size 300KB
n=$(ls "$T_TMP/lm" | grep -c '^model-0000[0-9]-of-0000[0-9].safetensors$')
[ "$n" -ge 2 ] && pass || fail "merge: several shards at 300KB ($n)"
for f in config.json model.safetensors.index.json generation_config.json aligner.safetensors aligner.json; do
	[ -s "$T_TMP/lm/$f" ] && pass || fail "merge: $f"
done
[ ! -e "$T_TMP/lm/adapter_model.safetensors" ] && [ ! -e "$T_TMP/lm.tmp" ] && pass || fail "merge: no adapter, no temp folder"
grep -q '"lm_head.weight"' "$T_TMP/lm/model.safetensors.index.json" && pass || fail "index names lm_head.weight"
grep -q '"total_size"' "$T_TMP/lm/model.safetensors.index.json" && pass || fail "index total_size"
ok "merge: Aligner as exported" cmp "$T_TMP/lm/aligner.safetensors" "$T_TMP/l/final/aligner.safetensors"

# CE warm-up P = 2 and ramp R = 2: ce_scale 1e-7, 1e-7, 0, 0.5, 1 and loss = ce_scale*ce + lambda*att.
ok "ce warm-up and ramp" run $P --max-steps 5 --ce-warmup 2 --ce-ramp 2 --out "$T_TMP/w"
sc=$(sed 's/.*"ce_scale":\([0-9.e+-]*\).*/\1/' "$T_TMP/w/metrics.jsonl" | tr '\n' ' ')
echo "$sc" | awk '{ exit !($1 < 1.1e-7 && $1 > 0.9e-7 && $2 == $1 && $3 == 0 && $4 == 0.5 && $5 == 1) }' && pass ||
	fail "ce_scale per step: $sc"
while read -r l; do
	echo "$l" | sed 's/.*"att":\([0-9.e+-]*\).*"ce":\([0-9.e+-]*\).*"ce_scale":\([0-9.e+-]*\).*"lambda":\([0-9.e+-]*\).*"loss":\([0-9.e+-]*\).*/\1 \2 \3 \4 \5/'
done <"$T_TMP/w/metrics.jsonl" | awk '{ d = $3 * $2 + $4 * $1 - $5; if (d < 0) d = -d; if (d > 1e-6 * ($5 + 1)) bad = 1 } END { exit bad }' &&
	pass || fail "loss = ce_scale*ce + lambda*att"
ok "ramp without warm-up" run $P --max-steps 2 --ce-ramp 4 --out "$T_TMP/w2"
grep '"step":2' "$T_TMP/w2/metrics.jsonl" | grep -q '"ce_scale":0.25' && pass || fail "ramp: step 2 at 0.25"

# --eval-pack: every 2 steps and at the end; forward only (the weights equal a run without it).
ok "eval run" run $P --max-steps 3 --eval-pack "$T_TMP/pack2" --eval-every 2 --out "$T_TMP/e" --save-every 1
[ "$(grep -c '"eval":true' "$T_TMP/e/metrics.jsonl")" -eq 2 ] && pass || fail "two eval lines"
grep '"eval":true' "$T_TMP/e/metrics.jsonl" | grep '"step":2' | grep '"samples":2' | grep -q '"ce":' && pass ||
	fail "eval line at step 2 over 2 samples"
grep '"eval":true' "$T_TMP/e/metrics.jsonl" | grep -q '"step":3' && pass || fail "eval line at the end"
ok "same run without eval" run $P --max-steps 3 --out "$T_TMP/e0" --save-every 1
ok "eval leaves training alone" cmp "$T_TMP/e/ckpt-000003/state.safetensors" "$T_TMP/e0/ckpt-000003/state.safetensors"
e2=$(grep '"eval":true' "$T_TMP/e/metrics.jsonl" | grep '"step":2' | sed 's/.*"ce":\([0-9.e+-]*\).*/\1/')
e3=$(grep '"eval":true' "$T_TMP/e/metrics.jsonl" | grep '"step":3' | sed 's/.*"ce":\([0-9.e+-]*\).*/\1/')
[ -n "$e2" ] && [ "$e2" != "$e3" ] && pass || fail "eval CE follows the weights ($e2, $e3)"
EV="$P --max-steps 4 --eval-pack $T_TMP/pack2 --eval-every 2 --save-every 2"
ok "eval uninterrupted" run $EV --out "$T_TMP/eu"
LVD_SFT_KILL_AT=3 run $EV --out "$T_TMP/ek" >/dev/null 2>&1
[ $? -eq 137 ] && pass || fail "eval run killed at step 3"
ok "eval run resumed" run $EV --out "$T_TMP/ek"
sed 's/"elapsed".*//' "$T_TMP/eu/metrics.jsonl" >"$T_TMP/m1"
sed 's/"elapsed".*//' "$T_TMP/ek/metrics.jsonl" >"$T_TMP/m2"
ok "eval resume: same metrics and eval lines" cmp "$T_TMP/m1" "$T_TMP/m2"
mkdir -p "$T_TMP/model2" && cp "$model"/* "$T_TMP/model2/" && echo >>"$T_TMP/model2/config.json"
ok "pack for another model" "$fx" --pack "$T_TMP/packo" "$T_TMP/model2" 2
expect_exit 1 "eval pack of another model" run $P --max-steps 1 --eval-pack "$T_TMP/packo" --out "$T_TMP/eo"
expect_stderr "config.json" "eval pack mismatch names the model file" run $P --max-steps 1 --eval-pack "$T_TMP/packo" \
	--out "$T_TMP/eo"
[ ! -e "$T_TMP/eo" ] && pass || fail "eval pack mismatch must not create the run folder"
ok "eval of the train pack" run $P --max-steps 1 --eval-pack "$T_TMP/pack" --out "$T_TMP/e6"
grep '"eval":true' "$T_TMP/e6/metrics.jsonl" | grep -q '"samples":6' && pass || fail "eval covers all 6 records"
finish
