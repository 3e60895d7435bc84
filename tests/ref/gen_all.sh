#!/bin/sh
# Regenerates every golden file under tests/golden/ (make golden). $1 = python.
# Order matters: gen_attnmap.py reads the tiny SD checkpoint that gen_sd.py writes, and
# gen_pack.py may read what the earlier ones wrote; the rest follow alphabetically.
# gen_sft.py also runs the built tools in $BUILD (make golden builds them first) on the
# tiny SD of gen_sd.py and the small tokenizer of gen_tokenizer.py.
set -eu
PY=${1:-.venv-ref/bin/python}
first="tests/ref/gen_safetensors.py tests/ref/gen_images.py tests/ref/gen_tokenizer.py tests/ref/gen_sd.py tests/ref/gen_attnmap.py tests/ref/gen_mllama.py tests/ref/gen_pack.py"
for g in $first; do
	[ -f "$g" ] || continue
	echo "golden: $g" >&2
	"$PY" "$g"
done
for g in tests/ref/gen_*.py; do
	case " $first " in *" $g "*) continue ;; esac
	echo "golden: $g" >&2
	"$PY" "$g"
done
