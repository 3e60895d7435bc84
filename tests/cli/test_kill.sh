# Kill anywhere (issue #17): `lvd-pack run`, `sd-attnmap run` and `lvd-sft run` are
# SIGKILLed at seeded random moments within the length of a clean run, then the same
# command is run again in the same folder; its outputs must be byte-identical to the
# clean run's (shards; lvd-sft's final adapter/Aligner files and last checkpoint), and no
# *.tmp may be left. LVD_KILL_TRIALS (default 5 per tool) and LVD_KILL_SEED (default 17)
# choose the trials; LVD_KILL_LOG=FILE appends "tool trial delay_s outcome" per trial.
. tests/cli/lib.inc
SHARED=${LVD_SHARED_DATA:-../shared/data}
TRIALS=${LVD_KILL_TRIALS:-5}
SEED=${LVD_KILL_SEED:-17}
LOG=${LVD_KILL_LOG:-/dev/null}

PFX=$BUILD/tests/test_pack_tool
pack_cmd() { $EXEC "$BUILD/lvd-pack" run --manifest "$T_TMP/pfx/data.jsonl" --maps "$T_TMP/pfx/maps" --model "$T_TMP/pfx/model" --out "$1" --shard-size 3 --threads 2 -q; }
pack_outputs() { ls "$1" | grep -E '^train-[0-9]+\.lvdp$'; }

sd_cmd() { $EXEC "$BUILD/sd-attnmap" run --sd tests/golden/sd/diffusers --tokenizer "$SHARED/clip" --images "$T_TMP/sdimg" --fold-vocab \
	--resolution 64 --timesteps 100,300 --noise-draws 1 --seed 3 -q --shard-bytes 1 --threads 2 --manifest "$T_TMP/sd.jsonl" --out "$1"; }
sd_outputs() { ls "$1" | grep -E '^attn-[0-9]+\.lvdm$'; }

SFX=$BUILD/tests/test_sft
MODEL=${LVD_SRCDIR:-.}/tests/golden/mllama/model
sft_cmd() { $EXEC "$BUILD/lvd-sft" run --model "$MODEL" --threads 1 -q --pack "$T_TMP/sftpack" --out "$1" --batch 2 --epochs 2 --save-every 1 --keep 2; }
sft_outputs() { (cd "$1" && ls final/* && ls -d ckpt-[0-9]* | tail -n 1 | sed 's|$|/state.safetensors|'); }

EXEC=
now() { date +%s.%N; }

kill_tool() { # tool
	tool=$1
	t0=$(now)
	${tool}_cmd "$T_TMP/clean-$tool" >/dev/null 2>"$T_TMP/err" || { fail "$tool: clean run"; return; }
	len=$(echo "$t0 $(now)" | awk '{ printf "%.3f", ($2 - $1) * 1.1 }')
	[ -n "$LVD_TEST_VERBOSE" ] && echo "  $tool: clean run ${len}s (x1.1)" >&2
	delays=$(awk -v s="$SEED" -v n="$TRIALS" -v l="$len" -v t="$tool" 'BEGIN { srand(s + length(t)); for (i = 0; i < n; i++) printf "%.3f\n", rand() * l }')
	i=0
	for d in $delays; do
		i=$((i + 1))
		out=$T_TMP/k-$tool-$i
		(EXEC=exec; ${tool}_cmd "$out" >/dev/null 2>&1) &   # exec: $! is the tool itself
		pid=$!
		sleep "$d"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		st=$?
		case $st in 137) what=killed ;; 0) what=finished-first ;; *) what="exit-$st" ;; esac
		if ! ${tool}_cmd "$out" >/dev/null 2>"$T_TMP/err"; then
			fail "$tool trial $i (kill at ${d}s, $what): resume failed"
			echo "$tool $i $d $what RESUME-FAILED" >>"$LOG"
			continue
		fi
		same=1
		for f in $(${tool}_outputs "$T_TMP/clean-$tool"); do cmp -s "$T_TMP/clean-$tool/$f" "$out/$f" || same=0; done
		[ "$(${tool}_outputs "$out" | wc -l)" -eq "$(${tool}_outputs "$T_TMP/clean-$tool" | wc -l)" ] || same=0
		[ -z "$(find "$out" -name '*.tmp' 2>/dev/null)" ] || same=0
		if [ $same -eq 1 ]; then pass; echo "$tool $i $d $what identical" >>"$LOG"
		else fail "$tool trial $i (kill at ${d}s, $what): resumed outputs differ"; echo "$tool $i $d $what DIFFERS" >>"$LOG"; fi
		rm -rf "$out"
	done
}

if [ -x "$PFX" ] && "$PFX" --fixture "$T_TMP/pfx" 24 >/dev/null 2>&1; then kill_tool pack
else skip "lvd-pack kills: $PFX --fixture failed or missing"; fi
if [ -f "$SHARED/images/skimage_chelsea.png" ] && [ -d "$SHARED/clip" ]; then
	mkdir -p "$T_TMP/sdimg"
	cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$SHARED/images/COCO_val2014_000000038678.png" "$T_TMP/sdimg/"
	cat >"$T_TMP/sd.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person with a camera"}
{"id": "woman", "image": "COCO_val2014_000000038678.png", "caption": "A woman holding a plate with a bagel on it."}
EOF
	kill_tool sd
else skip "sd-attnmap kills: $SHARED not found (set LVD_SHARED_DATA)"; fi
if [ -x "$SFX" ] && "$SFX" --pack "$T_TMP/sftpack" "$MODEL" 6 >/dev/null 2>&1; then kill_tool sft
else skip "lvd-sft kills: $SFX --pack failed or missing"; fi
finish
