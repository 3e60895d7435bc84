#!/bin/sh
# Regenerates every golden file under tests/golden/ (make golden). $1 = python.
set -eu
PY=${1:-.venv-ref/bin/python}
for g in tests/ref/gen_*.py; do
	echo "golden: $g" >&2
	"$PY" "$g"
done
