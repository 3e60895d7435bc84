#!/bin/sh
# Runs every test program ($BUILD/tests/*) and every CLI/e2e script (tests/cli/*.sh,
# tests/e2e/*.sh). Each prints a last line "…: N passed, N failed, N skipped"; this sums
# them and ends with "total: N passed, N failed, N skipped". Exit 1 on any failure,
# including a program that crashes or prints no summary. LVD_TESTS="name ..." runs only
# the named programs / scripts (basenames, e.g. "test_pool test_lvd_pack.sh").
BUILD=${BUILD:-build}
LVD_SRCDIR=${LVD_SRCDIR:-$(pwd)}
export BUILD LVD_SRCDIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=0; F=0; S=0; bad=""
run_one() {
	name=$1; shift
	if [ -n "${LVD_TESTS:-}" ]; then
		case " $LVD_TESTS " in *" $name "*) ;; *) return ;; esac
	fi
	start=$(date +%s)
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	secs=$(( $(date +%s) - start ))
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$tmp/out" | tail -n 1)
	p=$(echo "$line" | sed -nE 's/^(.*[^0-9])?([0-9]+) passed.*/\2/p')
	f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
	s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
	p=${p:-0}; f=${f:-0}; s=${s:-0}
	if [ -z "$line" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
		f=$((f + 1)); echo "FAIL $name: exit $rc, no clean summary" >&2
	fi
	if [ "$f" -ne 0 ]; then
		bad="$bad $name"
		sed 's/^/  | /' "$tmp/err" | tail -n 60 >&2
	else
		grep -E '^ *SKIP' "$tmp/err" | sed "s|^|  $name: |" >&2
	fi
	printf '%-28s %3d passed, %d failed, %d skipped (%ss)\n' "$name" "$p" "$f" "$s" "$secs"
	P=$((P + p)); F=$((F + f)); S=$((S + s))
}
for t in "$BUILD"/tests/*; do
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
for t in tests/cli/*.sh tests/e2e/*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t")" sh "$t"
done
[ -n "$bad" ] && echo "failed:$bad" >&2
echo "total: $P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
