#!/bin/sh
# make bench: runs every bench/*.sh (each compares our code with a peer measured in the
# same run, printing medians and the ratio). The PyTorch/HF peers need `make ref-env`;
# without it a script prints SKIP for the peer and only our side.
BUILD=${BUILD:-build}
PY=${PY:-.venv-ref/bin/python}
[ -x "$PY" ] || PY=""
export BUILD PY
mkdir -p bench/out
status=0
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	[ -f "$b" ] || continue
	echo "== $b"
	sh "$b" || { echo "bench: $b failed" >&2; status=1; }
done
exit $status
