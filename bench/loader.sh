#!/bin/sh
# The lvd-sft pack loader alone on synthetic packs of 1k and 10k records (released
# geometry: tile 560, 4 tiles; embedded PNGs; fp16 targets): samples/s with the image
# decode + mllama image processor + Lavender plans on 1 and 2 producer threads, the
# record streaming alone (no images) over a whole epoch, and the RSS of 1k vs 10k packs
# (goal: equal within 5%; the loader keeps only the shard indexes and the epoch order).
# Goal for the rate: >= 10x the training step rate (compare with bench/mllama.sh).
BUILD=${BUILD:-build}
B=$BUILD/bench/bench_loader
if [ ! -x "$B" ]; then
	echo "loader: SKIP ($B not built)"
	exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=${LOADER_BENCH_SAMPLES:-200}
for n in 1000 10000; do
	"$B" make "$T/p$n" "$n" || exit 1
	for th in 1 2; do
		"$B" run "$T/p$n" "$th" 4 "$S" 1 | tee "$T/img$n.$th" || exit 1
	done
	"$B" run "$T/p$n" 2 4 "$n" 0 | tee "$T/txt$n" || exit 1
done
# RSS: the loader's own growth (at end minus before open), pixels included
rss() { sed -n 's/.*RSS before open \([0-9]*\) KiB, after open [0-9]* KiB, at end \([0-9]*\) KiB.*/\1 \2/p' "$1"; }
for f in img txt; do
	if [ $f = img ]; then fa=$T/img1000.2; fb=$T/img10000.2; else fa=$T/txt1000; fb=$T/txt10000; fi
	set -- $(rss "$fa"); a0=$1; a1=$2
	set -- $(rss "$fb"); b0=$1; b1=$2
	[ -n "$a1" ] && [ -n "$b1" ] || continue
	echo "loader: RSS growth ($f) 1k: $((a1 - a0)) KiB, 10k: $((b1 - b0)) KiB; whole process 1k $a1 KiB, 10k $b1 KiB ($(echo "scale=4; $b1 / $a1" | bc)x)"
done
