#!/bin/sh
# lvd-pack throughput on 10k synthetic samples (fixed 8x12 maps, 4 small PNGs, the small
# Llama-3 tokenizer.json): the in-memory CPU-bound part on one thread (bench_pack cpu),
# then the whole tool (manifest, map reads, image reads, zstd, writes) with 1 and 2
# threads. Goal: >= 2000 samples/s on 2 cores. No peer: nothing in PyTorch does this.
BUILD=${BUILD:-build}
N=${PACK_BENCH_N:-10000}
B=$BUILD/bench/bench_pack
P=$BUILD/lvd-pack
if [ ! -x "$B" ] || [ ! -x "$P" ]; then
	echo "pack: SKIP ($B or $P not built)"
	exit 0
fi
export LVD_SRCDIR=${LVD_SRCDIR:-$(pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B" fixture "$T/fx" "$N" || exit 1
"$B" cpu "$T/fx" "$N" || exit 1
for th in 1 2; do
	s=$(date +%s.%N)
	"$P" run -q --manifest "$T/fx/data.jsonl" --maps "$T/fx/maps" --model "$T/fx/model" --out "$T/p$th" \
		--threads "$th" --timings 2>"$T/err$th" || { cat "$T/err$th"; exit 1; }
	e=$(date +%s.%N)
	echo "pack: lvd-pack run --threads $th: $N samples in $(echo "$e - $s" | bc) s, $(echo "$N / ($e - $s)" | bc) samples/s (wall, incl. tokenizer load)"
	grep timings "$T/err$th" | sed 's/^/  /'
done
cmp -s "$T/p1/train-00000.lvdp" "$T/p2/train-00000.lvdp" && echo "pack: shards identical for --threads 1 and 2" || { echo "pack: shards differ between thread counts" >&2; exit 1; }
du -sh "$T/p1" | awk '{print "pack: output size " $1}'
