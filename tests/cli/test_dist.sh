# lib/dist's communicator with several ranks (build/tests/test_dist, tests/unit/test_dist.c):
# every collective and ZeRO-1 under `mpirun -np 2` and `-np 3` (oversubscribed) and over
# the TCP backend (torchrun-style environment, 2 and 3 ranks); a hung rank makes the
# others fail within the timeout naming it (MPI and TCP), bounded in time.
. tests/cli/lib.inc
t=$BUILD/tests/test_dist
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# MPI and sanitizers: Open MPI's own allocations are not ours to report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$t" ]; then skip "needs $t (make $t)"; finish; exit; fi

# TCP ranks of one job on a free port: tcp_job PORT NRANKS ARGS...; exit status of the worst.
tcp_job() {
	port=$1; n=$2; shift 2
	pids=""
	r=0
	while [ $r -lt "$n" ]; do
		RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" >>"$T_TMP/tcp.out" 2>>"$T_TMP/err" &
		pids="$pids $!"
		r=$((r + 1))
	done
	worst=0
	for p in $pids; do wait "$p"; rc=$?; [ $rc -gt $worst ] && worst=$rc; done
	return $worst
}
# A port no one listens on, from the shell's PID (tests run one at a time per worktree).
port0=$(( 20000 + $$ % 20000 ))

: >"$T_TMP/tcp.out"
ok "tcp 2 ranks" tcp_job $port0 2 "$t"
[ "$(grep -c ' 0 failed' "$T_TMP/tcp.out")" -eq 2 ] && pass || fail "tcp 2 ranks: both ranks pass"
: >"$T_TMP/tcp.out"
ok "tcp 3 ranks" tcp_job $((port0 + 1)) 3 "$t"
[ "$(grep -c ' 0 failed' "$T_TMP/tcp.out")" -eq 3 ] && pass || fail "tcp 3 ranks: all ranks pass"
start=$(date +%s)
tcp_job $((port0 + 2)) 3 "$t" --hang 1
rc=$?
[ $rc -ne 0 ] && pass || fail "tcp: a hung rank fails the job"
[ $(( $(date +%s) - start )) -lt 30 ] && pass || fail "tcp: the hung job ended in bounded time"
grep -q "rank(s) 2 did not reach it" "$T_TMP/err" && pass || fail "tcp: the root names the hung rank"
expect_stderr "rank 0 at 127.0.0.1" "tcp: no root within the timeout" env RANK=1 WORLD_SIZE=2 MASTER_PORT=$((port0 + 3)) \
	"$t" --hang 1

if ! command -v mpirun >/dev/null 2>&1; then
	skip "mpirun not installed (apt-get install openmpi-bin): the MPI cases"
	finish
	exit
fi
if ! "$BUILD/lvd-sft" --version | grep -q "MPI=yes"; then
	skip "this build has no MPI (apt-get install libopenmpi-dev, rebuild): the MPI cases"
	expect_stderr "this build has no MPI" "mpirun launch refused without MPI" mpirun -np 1 "$t"
	finish
	exit
fi
for n in 2 3; do
	mpirun -np $n "$t" >"$T_TMP/out" 2>"$T_TMP/err"
	[ $? -eq 0 ] && pass || fail "mpirun -np $n"
	[ "$(grep -c ' 0 failed' "$T_TMP/out")" -eq $n ] && pass || fail "mpirun -np $n: every rank passes"
done
start=$(date +%s)
mpirun -np 3 "$t" --hang 1 >"$T_TMP/out" 2>"$T_TMP/err"
[ $? -ne 0 ] && pass || fail "mpi: a hung rank fails the job"
[ $(( $(date +%s) - start )) -lt 30 ] && pass || fail "mpi: the hung job ended in bounded time"
grep -q "rank(s) 2 did not reach it" "$T_TMP/err" && pass || fail "mpi: the hung rank is named"
finish
