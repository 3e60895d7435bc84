# Fault injection (issue #17; LVD_FAULT, lib/core/fault.h) over small runs of
# `lvd-pack run`, `sd-attnmap run` and `lvd-sft run`: the N-th open/read/write/fsync/
# rename/mmap/alloc fails (EIO, ENOSPC) or is interrupted (EINTR) or short. For every
# trial: no crash (exit < 128); a failure that is not retried ends non-zero with an
# "error:" line; every output under its final name validates (inspect); and a rerun
# without faults in the same folder ends 0 with outputs byte-identical to a clean run.
# EINTR and short transfers must be absorbed: exit 0 and identical outputs at once.
# A fault while working on one sample (its image, its map record) is a failure of the
# machine, not of the sample (struct lvd_error.transient): the run stops with exit 1 and
# lists nothing in errors.jsonl, so the rerun computes the sample and ends identical. A
# trial that still finds errors.jsonl lines has its identity checked against errors.jsonl
# naming the sample instead.
#
# make test samples a few N per call (46 trials, ~8 s of CPU); LVD_FAULT_FULL=1 runs
# every N of every call (40 spread N for alloc; minutes). LVD_FAULT_MATRIX=FILE appends one line per trial:
# "tool op err N outcome" (docs/reliability.md has the matrix of a full run).
. tests/cli/lib.inc
SHARED=${LVD_SHARED_DATA:-../shared/data}
MATRIX=${LVD_FAULT_MATRIX:-/dev/null}
FULL=${LVD_FAULT_FULL:-0}
TO="timeout 120"

# ---- tools ------------------------------------------------------------------------------
# Each tool: <tool>_cmd OUT (runs it), <tool>_outputs OUT (final-named outputs to compare),
# <tool>_valid FILE (validates one output).
PFX=$BUILD/tests/test_pack_tool
pack_cmd() { $TO "$BUILD/lvd-pack" run --manifest "$T_TMP/pfx/data.jsonl" --maps "$T_TMP/pfx/maps" --model "$T_TMP/pfx/model" --out "$1" --shard-size 4 --threads 1 -q; }
pack_outputs() { ls "$1" 2>/dev/null | grep -E '^train-[0-9]+\.lvdp$'; }
pack_valid() { "$BUILD/lvd-pack" inspect "$1" >/dev/null 2>&1; }

sd_cmd() { $TO "$BUILD/sd-attnmap" run --sd tests/golden/sd/diffusers --tokenizer "$SHARED/clip" --images "$T_TMP/sdimg" --fold-vocab \
	--resolution 64 --timesteps 100 --noise-draws 1 --seed 3 -q --shard-bytes 1 --threads 1 --manifest "$T_TMP/sd.jsonl" --out "$1"; }
sd_outputs() { ls "$1" 2>/dev/null | grep -E '^attn-[0-9]+\.lvdm$'; }
sd_valid() { "$BUILD/sd-attnmap" inspect "$1" >/dev/null 2>&1; }

SFX=$BUILD/tests/test_sft
MODEL=${LVD_SRCDIR:-.}/tests/golden/mllama/model
sft_cmd() { $TO "$BUILD/lvd-sft" run --model "$MODEL" --threads 1 -q --pack "$T_TMP/sftpack" --out "$1" --batch 2 --epochs 1 --save-every 1; }
sft_outputs() { (cd "$1" 2>/dev/null && ls -d ckpt-[0-9]*/state.safetensors final/*.safetensors 2>/dev/null); }
sft_valid() { case $1 in */state.safetensors) "$BUILD/lvd-sft" inspect "$(dirname "$1")" >/dev/null 2>&1 ;; *) true ;; esac; }

# ---- one trial --------------------------------------------------------------------------
n_trials=0
trial() { # tool op N err
	tool=$1; op=$2; n=$3; e=$4
	n_trials=$((n_trials + 1))
	out=$T_TMP/t-$tool
	rm -rf "$out"
	LVD_FAULT=$op:$n:$e ${tool}_cmd "$out" >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	if ! grep -q "fault injected" "$T_TMP/err"; then
		echo "$tool $op $e $n not-reached" >>"$MATRIX"
		return 1
	fi
	what="$tool $op:$n:$e"
	if [ $rc -ge 124 ]; then fail "$what: exit $rc (crash or hang)"; echo "$tool $op $e $n CRASH($rc)" >>"$MATRIX"; return 0; fi
	# outputs under final names are valid
	for f in $(${tool}_outputs "$out"); do
		${tool}_valid "$out/$f" || { fail "$what: $f under its final name is not valid"; echo "$tool $op $e $n INVALID-OUTPUT" >>"$MATRIX"; return 0; }
	done
	skipped=0
	[ -s "$out/errors.jsonl" ] && skipped=1
	if [ $rc -ne 0 ] && ! grep -q "error:" "$T_TMP/err"; then
		fail "$what: exit $rc without an error line"; echo "$tool $op $e $n SILENT($rc)" >>"$MATRIX"; return 0
	fi
	case $e in EINTR|short)
		if [ $rc -ne 0 ]; then fail "$what: not absorbed (exit $rc)"; echo "$tool $op $e $n NOT-ABSORBED" >>"$MATRIX"; return 0; fi ;;
	esac
	first=$rc
	# rerun without faults, same folder
	${tool}_cmd "$out" >"$T_TMP/out" 2>"$T_TMP/err2"
	rc=$?
	same=1
	for f in $(${tool}_outputs "$T_TMP/clean-$tool"); do cmp -s "$T_TMP/clean-$tool/$f" "$out/$f" || same=0; done
	[ "$(${tool}_outputs "$out" | wc -l)" -eq "$(${tool}_outputs "$T_TMP/clean-$tool" | wc -l)" ] || same=0
	if [ $rc -eq 0 ] && [ $same -eq 1 ]; then
		if [ $first -eq 0 ]; then echo "$tool $op $e $n absorbed" >>"$MATRIX"; else echo "$tool $op $e $n error;rerun-identical" >>"$MATRIX"; fi
		pass
	elif [ $skipped -eq 1 ] && [ $first -eq 1 ] && [ $rc -eq 1 ]; then
		echo "$tool $op $e $n sample-skipped(listed);kept-on-resume" >>"$MATRIX"
		pass
	else
		fail "$what: first exit $first, rerun exit $rc, identical $same"
		sed 's/^/    | /' "$T_TMP/err2" | head -5 >&2
		echo "$tool $op $e $n RERUN-DIFFERS(first=$first,rerun=$rc)" >>"$MATRIX"
	fi
	return 0
}

# N values for a call made `count` times: every N (full) or a spread of k of them.
pick() { count=$1; k=$2
	if [ "$FULL" = 1 ] && [ -n "$3" ]; then k=$3
	elif [ "$FULL" = 1 ]; then seq 1 "$count"; return; fi
	[ "$count" -ge 1 ] || return
	awk -v c="$count" -v k="$k" 'BEGIN { for (i = 0; i < k; i++) { n = (k == 1) ? 1 : 1 + int(i * (c - 1) / (k - 1)); if (!seen[n]++) print n } }'
}

counts() { # tool -> "open=.. read=.." of a clean run (also the reference outputs)
	rm -rf "$T_TMP/clean-$1"
	LVD_FAULT=count ${1}_cmd "$T_TMP/clean-$1" >/dev/null 2>"$T_TMP/cnt"
	rc=$?
	[ $rc -eq 0 ] || { fail "$1: clean run exit $rc"; sed 's/^/    | /' "$T_TMP/cnt" | head >&2; return 1; }
	sed -n 's/^lvd: fault counts: //p' "$T_TMP/cnt" | tail -n 1
}
count_of() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

run_tool() { # tool k_eio k_other
	tool=$1; k=$2; k2=$3
	c=$(counts "$tool") || return
	[ -n "$LVD_TEST_VERBOSE" ] && echo "  $tool calls: $c" >&2
	for op in open read write fsync rename mmap; do
		for n in $(pick "$(count_of "$c" $op)" "$k"); do trial "$tool" $op "$n" EIO; done
	done
	for n in $(pick "$(count_of "$c" write)" "$k2"); do trial "$tool" write "$n" ENOSPC; trial "$tool" write "$n" short; trial "$tool" write "$n" EINTR; done
	for n in $(pick "$(count_of "$c" read)" "$k2"); do trial "$tool" read "$n" short; trial "$tool" read "$n" EINTR; done
	for n in $(pick "$(count_of "$c" fsync)" "$k2"); do trial "$tool" fsync "$n" ENOSPC; done
	for n in $(pick "$(count_of "$c" alloc)" "$k2" 40); do trial "$tool" alloc "$n" EIO; done
}

# ---- fixtures -----------------------------------------------------------------------------
if [ -x "$PFX" ] && "$PFX" --fixture "$T_TMP/pfx" 12 >/dev/null 2>&1; then
	run_tool pack 3 1
else
	skip "lvd-pack faults: $PFX --fixture failed or missing"
fi
if [ -f "$SHARED/images/skimage_chelsea.png" ] && [ -d "$SHARED/clip" ]; then
	mkdir -p "$T_TMP/sdimg"
	cp "$SHARED/images/skimage_chelsea.png" "$SHARED/images/skimage_camera.png" "$T_TMP/sdimg/"
	cat >"$T_TMP/sd.jsonl" <<'EOF'
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "camera", "image": "skimage_camera.png", "caption": "a person with a camera"}
EOF
	run_tool sd 1 0
else
	skip "sd-attnmap faults: $SHARED not found (set LVD_SHARED_DATA)"
fi
if [ -x "$SFX" ] && "$SFX" --pack "$T_TMP/sftpack" "$MODEL" 4 >/dev/null 2>&1; then
	run_tool sft 2 1
else
	skip "lvd-sft faults: $SFX --pack failed or missing"
fi
[ -n "$LVD_TEST_VERBOSE" ] && echo "  $n_trials trials" >&2
finish
