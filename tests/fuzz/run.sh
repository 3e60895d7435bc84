#!/bin/sh
# tests/fuzz/run.sh TARGET... — runs each built harness $FUZZ_BUILD/fuzz/fuzz_TARGET for
# $FUZZ_SECONDS seconds under libFuzzer, niced, one at a time (see docs/fuzz.md).
# Working corpus: $FUZZ_BUILD/corpus/TARGET (new inputs land there; the checked-in
# tests/fuzz/corpus/TARGET and tests/fuzz/regress/TARGET are read only). Crashes, leaks,
# timeouts and OOMs are written to $FUZZ_BUILD/artifacts/TARGET-*. Prints one summary
# line per target (execs, exec/s, coverage edges, features, corpus) and exits 1 when a
# target found anything.
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-65536}
bad=""
for t in "$@"; do
	bin=$FUZZ_BUILD/fuzz/fuzz_$t
	corpus=$FUZZ_BUILD/corpus/$t
	mkdir -p "$corpus" "$FUZZ_BUILD/artifacts" "$FUZZ_BUILD/logs"
	seeds=""
	for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do
		[ -d "$d" ] && seeds="$seeds $d"
	done
	log=$FUZZ_BUILD/logs/$t.log
	# shellcheck disable=SC2086
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} nice -n 19 "$bin" -max_total_time="$FUZZ_SECONDS" \
		-max_len="$FUZZ_MAX_LEN" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$FUZZ_BUILD/artifacts/$t-" "$corpus" $seeds >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
	ft=$(echo "$last" | sed -nE 's/.*ft: ([0-9]+).*/\1/p')
	corp=$(echo "$last" | sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
	printf 'fuzz %-16s rc %d  execs %s  exec/s %s  cov %s  ft %s  corpus %s\n' "$t" "$rc" \
		"${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
	if [ "$rc" -ne 0 ]; then
		bad="$bad $t"
		grep -E 'ERROR|SUMMARY|Test unit written|artifact' "$log" | head -n 8 | sed 's/^/  | /'
	fi
done
[ -n "$bad" ] && { echo "fuzz: findings in:$bad (logs in $FUZZ_BUILD/logs)" >&2; exit 1; }
exit 0
