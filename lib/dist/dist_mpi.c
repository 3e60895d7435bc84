/* lib/dist/dist_mpi.c — the MPI backend (dist.h): non-blocking collectives polled with
 * MPI_Test until the communicator's timeout, and an arrival side channel that names the
 * ranks missing from a collective that timed out. Compiled with MPI's flags only
 * (Makefile); an empty start-up stub without LVD_HAVE_MPI.
 *
 * Arrivals: at the start of collective #k every rank sends k (8 bytes, a tag of its own,
 * on a duplicate of MPI_COMM_WORLD) to every other rank, and drains the arrivals it has
 * received. On a timeout the ranks whose latest arrival is below k are the missing ones.
 * The send buffers are a ring of LVD_MPI_RING slots per peer released with
 * MPI_Request_free: 8-byte messages go eagerly, so a slot is long delivered when reused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "dist/dist_impl.h"

#if LVD_HAVE_MPI
#include <mpi.h>

#define LVD_MPI_RING 64
#define LVD_MPI_ARRIVE_TAG 7301

struct mpi_state {
	MPI_Comm arr;          /* side channel */
	uint64_t *arrived;     /* [world] latest collective number announced by each rank */
	uint64_t *ring;        /* [LVD_MPI_RING] send slots */
	int we_init;           /* we called MPI_Init (and so MPI_Finalize) */
};

static void drain(struct lvd_comm *c, struct mpi_state *s)
{
	for (;;) {
		int flag = 0;
		MPI_Status st;
		MPI_Iprobe(MPI_ANY_SOURCE, LVD_MPI_ARRIVE_TAG, s->arr, &flag, &st);
		if (!flag)
			return;
		uint64_t v = 0;
		MPI_Recv(&v, 1, MPI_UINT64_T, st.MPI_SOURCE, LVD_MPI_ARRIVE_TAG, s->arr, MPI_STATUS_IGNORE);
		if (v > s->arrived[st.MPI_SOURCE])
			s->arrived[st.MPI_SOURCE] = v;
	}
}

/* Starts collective #(seq + 1): announce it and drain older arrivals. */
static void arrive(struct lvd_comm *c)
{
	struct mpi_state *s = c->impl;
	c->seq++;
	uint64_t *slot = &s->ring[c->seq % LVD_MPI_RING];
	*slot = c->seq;
	s->arrived[c->rank] = c->seq;
	for (int p = 0; p < c->world; p++) {
		if (p == c->rank)
			continue;
		MPI_Request rq;
		MPI_Isend(slot, 1, MPI_UINT64_T, p, LVD_MPI_ARRIVE_TAG, s->arr, &rq);
		MPI_Request_free(&rq);
	}
	drain(c, s);
}

static int wait_req(struct lvd_comm *c, MPI_Request *rq, const char *what, struct lvd_error *err)
{
	struct mpi_state *s = c->impl;
	double t0 = lvd_time_now();
	long sleep_ns = 1000;
	for (;;) {
		int done = 0;
		int rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
		if (rc != MPI_SUCCESS) {
			char m[MPI_MAX_ERROR_STRING];
			int l = 0;
			MPI_Error_string(rc, m, &l);
			return lvd_error_set(err, LVD_ERR_IO, "rank %d: %s #%llu failed: %s", c->rank, what,
					     (unsigned long long)c->seq, m);
		}
		if (done)
			return 0;
		if (lvd_time_now() - t0 > c->timeout_s)
			break;
		struct timespec ts = {0, sleep_ns};
		nanosleep(&ts, NULL);
		if (sleep_ns < 1000000)
			sleep_ns *= 2;
	}
	drain(c, s);
	char miss[512] = "";
	size_t l = 0;
	for (int p = 0; p < c->world; p++)
		if (s->arrived[p] < c->seq && l + 16 < sizeof miss)
			l += (size_t)snprintf(miss + l, sizeof miss - l, "%s%d", l ? ", " : "", p);
	if (l)
		return lvd_error_set(err, LVD_ERR_IO,
				     "rank %d: %s #%llu did not complete within %g s: rank(s) %s did not reach it "
				     "(dead, hung, or stuck in another collective)",
				     c->rank, what, (unsigned long long)c->seq, c->timeout_s, miss);
	return lvd_error_set(err, LVD_ERR_IO,
			     "rank %d: %s #%llu did not complete within %g s (every rank reached it; the transport "
			     "is stuck)", c->rank, what, (unsigned long long)c->seq, c->timeout_s);
}

static MPI_Datatype mpi_type(enum lvd_comm_dtype dt)
{
	return dt == LVD_COMM_F64 ? MPI_DOUBLE : MPI_FLOAT;
}

/* MPI counts are int: collectives of more elements go in chunks. */
#define CHUNK ((size_t)1 << 30)

static int mpi_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			  struct lvd_error *err)
{
	size_t es = lvd_comm_dtype_size(dt);
	for (size_t o = 0; o < n; o += CHUNK) {
		size_t k = n - o < CHUNK ? n - o : CHUNK;
		arrive(c);
		MPI_Request rq;
		MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + o * es, (int)k, mpi_type(dt), MPI_SUM, MPI_COMM_WORLD, &rq);
		c->bytes_sent += 2 * k * es * (uint64_t)(c->world - 1) / (uint64_t)c->world;
		int rc = wait_req(c, &rq, "all-reduce", err);
		if (rc)
			return rc;
	}
	return 0;
}

static int mpi_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			      enum lvd_comm_op op, struct lvd_error *err)
{
	if (n > (size_t)INT32_MAX)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "reduce-scatter: %zu elements per rank (MPI backend: at "
				     "most 2^31 - 1)", n);
	arrive(c);
	MPI_Request rq;
	MPI_Ireduce_scatter_block(send, recv, (int)n, mpi_type(dt), MPI_SUM, MPI_COMM_WORLD, &rq);
	c->bytes_sent += n * lvd_comm_dtype_size(dt) * (uint64_t)(c->world - 1);
	return wait_req(c, &rq, "reduce-scatter", err);
}

static int mpi_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	if (bytes > (size_t)INT32_MAX)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "all-gather: %zu bytes per rank (MPI backend: at most "
				     "2^31 - 1)", bytes);
	arrive(c);
	MPI_Request rq;
	const void *sb = send == (const char *)recv + (size_t)c->rank * bytes ? MPI_IN_PLACE : send;
	MPI_Iallgather(sb, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &rq);
	c->bytes_sent += bytes * (uint64_t)(c->world - 1);
	return wait_req(c, &rq, "all-gather", err);
}

static int mpi_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err)
{
	for (size_t o = 0; o < bytes || (o == 0 && bytes == 0); o += CHUNK) {
		size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
		arrive(c);
		MPI_Request rq;
		MPI_Ibcast((char *)buf + o, (int)k, MPI_BYTE, root, MPI_COMM_WORLD, &rq);
		if (c->rank == root)
			c->bytes_sent += k;
		int rc = wait_req(c, &rq, "broadcast", err);
		if (rc || bytes == 0)
			return rc;
	}
	return 0;
}

static int mpi_barrier(struct lvd_comm *c, struct lvd_error *err)
{
	arrive(c);
	MPI_Request rq;
	MPI_Ibarrier(MPI_COMM_WORLD, &rq);
	return wait_req(c, &rq, "barrier", err);
}

static void mpi_abort(struct lvd_comm *c, int code)
{
	MPI_Abort(MPI_COMM_WORLD, code);
}

static void mpi_destroy(struct lvd_comm *c)
{
	struct mpi_state *s = c->impl;
	if (!s)
		return;
	/* Pending arrivals of the last collectives: a barrier then a drain empties the
	 * channel before it is freed. */
	MPI_Barrier(s->arr);
	drain(c, s);
	MPI_Comm_free(&s->arr);
	int fin = 0;
	MPI_Finalized(&fin);
	if (s->we_init && !fin)
		MPI_Finalize();
	free(s->arrived);
	free(s->ring);
	free(s);
	c->impl = NULL;
}

static const struct lvd_comm_vt MPI_VT = {
	"mpi", mpi_all_reduce, mpi_reduce_scatter, mpi_all_gather, mpi_broadcast, mpi_barrier, mpi_abort, mpi_destroy,
	NULL, NULL,
};

int lvd_comm_mpi_start(struct lvd_comm *c, struct lvd_error *err)
{
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	/* SERIALIZED: the asynchronous collectives' progress thread calls MPI too (never at
	 * the same time as the main thread; dist_async.c). */
	if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
		return lvd_error_set(err, LVD_ERR_IO, "MPI_Init failed");
	if (inited)
		MPI_Query_thread(&provided);
	struct mpi_state *s = calloc(1, sizeof *s);
	int rank = 0, world = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	if (s) {
		s->arrived = calloc((size_t)world, sizeof *s->arrived);
		s->ring = calloc(LVD_MPI_RING, sizeof *s->ring);
	}
	if (!s || !s->arrived || !s->ring) {
		if (s) {
			free(s->arrived);
			free(s->ring);
		}
		free(s);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	s->we_init = !inited;
	MPI_Comm_dup(MPI_COMM_WORLD, &s->arr);
	/* Errors come back as codes (wait_req reports them) instead of aborting inside MPI. */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	c->rank = rank;
	c->world = world;
	c->impl = s;
	c->vt = &MPI_VT;
	c->backend = LVD_COMM_MPI;
	c->no_thread = provided < MPI_THREAD_SERIALIZED;
	/* The local rank: the launcher's, else the rank among the ranks of this host. */
	const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
	if (!lr) {
		MPI_Comm node;
		MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
		MPI_Comm_rank(node, &c->local_rank);
		MPI_Comm_free(&node);
	}
	return 0;
}

#else

int lvd_comm_mpi_start(struct lvd_comm *c, struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "this build has no MPI (rebuild with libopenmpi-dev installed)");
}

#endif
