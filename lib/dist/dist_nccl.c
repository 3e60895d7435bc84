/* lib/dist/dist_nccl.c — the NCCL backend (dist.h) for GPU ranks: device buffers, the
 * ncclUniqueId broadcast from rank 0 over the host communicator (MPI, TCP, or none for
 * one rank), device LOCAL_RANK % visible devices. Each collective waits for the device's
 * earlier work (cudaDeviceSynchronize), runs on the communicator's own stream, and is
 * polled (cudaStreamQuery, ncclCommGetAsyncError) until done or until the timeout, when
 * the communicator is aborted (ncclCommAbort) and LVD_ERR_IO names the collective; the
 * host communicator's arrival tracking is not available on this path, so the message
 * cannot name the missing rank. Compiled only with LVD_HAVE_NCCL (a stub otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "dist/dist_impl.h"

#if LVD_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

struct nccl_state {
	ncclComm_t comm;
	cudaStream_t stream;
	int device;
};

static int nccl_fail(struct lvd_comm *c, const char *what, ncclResult_t r, struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_IO, "rank %d: NCCL %s #%llu: %s", c->rank, what, (unsigned long long)c->seq,
			     ncclGetErrorString(r));
}

static int cuda_fail(struct lvd_comm *c, const char *what, cudaError_t e, struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_IO, "rank %d: %s #%llu: CUDA: %s", c->rank, what, (unsigned long long)c->seq,
			     cudaGetErrorString(e));
}

/* Polls the stream and the communicator until the enqueued collective is done. */
static int nccl_wait(struct lvd_comm *c, const char *what, ncclResult_t launched, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	if (launched != ncclSuccess && launched != ncclInProgress)
		return nccl_fail(c, what, launched, err);
	double t0 = lvd_time_now();
	for (;;) {
		cudaError_t q = cudaStreamQuery(s->stream);
		if (q == cudaSuccess)
			return 0;
		if (q != cudaErrorNotReady)
			return cuda_fail(c, what, q, err);
		ncclResult_t ae = ncclSuccess;
		ncclCommGetAsyncError(s->comm, &ae);
		if (ae != ncclSuccess && ae != ncclInProgress) {
			ncclCommAbort(s->comm);
			s->comm = NULL;
			return nccl_fail(c, what, ae, err);
		}
		if (lvd_time_now() - t0 > c->timeout_s) {
			ncclCommAbort(s->comm);
			s->comm = NULL;
			return lvd_error_set(err, LVD_ERR_IO,
					     "rank %d: NCCL %s #%llu did not complete within %g s (a rank is dead or hung; "
					     "the communicator was aborted)", c->rank, what, (unsigned long long)c->seq,
					     c->timeout_s);
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
}

static int pre(struct lvd_comm *c, const char *what, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	c->seq++;
	if (!s->comm)
		return lvd_error_set(err, LVD_ERR_IO, "rank %d: NCCL %s #%llu: the communicator was aborted", c->rank,
				     what, (unsigned long long)c->seq);
	cudaError_t e = cudaDeviceSynchronize();
	return e == cudaSuccess ? 0 : cuda_fail(c, what, e, err);
}

static ncclDataType_t nc_type(enum lvd_comm_dtype dt)
{
	return dt == LVD_COMM_F64 ? ncclFloat64 : dt == LVD_COMM_F32 ? ncclFloat32 : ncclBfloat16;
}

static ncclRedOp_t nc_op(enum lvd_comm_op op)
{
	return op == LVD_COMM_MEAN ? ncclAvg : ncclSum;
}

static int nccl_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			   struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	int rc = pre(c, "all-reduce", err);
	if (rc)
		return rc;
	c->bytes_sent += 2 * n * lvd_comm_dtype_size(dt) * (uint64_t)(c->world - 1) / (uint64_t)c->world;
	return nccl_wait(c, "all-reduce", ncclAllReduce(buf, buf, n, nc_type(dt), nc_op(op), s->comm, s->stream), err);
}

static int nccl_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			       enum lvd_comm_op op, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	int rc = pre(c, "reduce-scatter", err);
	if (rc)
		return rc;
	c->bytes_sent += n * lvd_comm_dtype_size(dt) * (uint64_t)(c->world - 1);
	return nccl_wait(c, "reduce-scatter",
			 ncclReduceScatter(send, recv, n, nc_type(dt), nc_op(op), s->comm, s->stream), err);
}

static int nccl_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	int rc = pre(c, "all-gather", err);
	if (rc)
		return rc;
	c->bytes_sent += bytes * (uint64_t)(c->world - 1);
	return nccl_wait(c, "all-gather", ncclAllGather(send, recv, bytes, ncclUint8, s->comm, s->stream), err);
}

static int nccl_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	int rc = pre(c, "broadcast", err);
	if (rc)
		return rc;
	if (c->rank == root)
		c->bytes_sent += bytes;
	return nccl_wait(c, "broadcast", ncclBroadcast(buf, buf, bytes, ncclUint8, root, s->comm, s->stream), err);
}

static int nccl_barrier(struct lvd_comm *c, struct lvd_error *err)
{
	/* NCCL has no barrier: an all-reduce of one float on the device. */
	struct nccl_state *s = c->impl;
	float *d = NULL;
	cudaError_t e = cudaMalloc((void **)&d, sizeof *d);
	if (e != cudaSuccess)
		return cuda_fail(c, "barrier", e, err);
	cudaMemsetAsync(d, 0, sizeof *d, s->stream);
	int rc = pre(c, "barrier", err);
	if (!rc)
		rc = nccl_wait(c, "barrier", ncclAllReduce(d, d, 1, ncclFloat32, ncclSum, s->comm, s->stream), err);
	cudaFree(d);
	return rc;
}

static void nccl_abort(struct lvd_comm *c, int code)
{
	struct nccl_state *s = c->impl;
	if (s && s->comm)
		ncclCommAbort(s->comm);
	if (s)
		s->comm = NULL;
	/* The host communicator ends the other ranks (MPI_Abort, closed sockets). */
	if (c->host)
		c->host->vt->abort(c->host, code);
	_exit(code);
}

static void nccl_destroy(struct lvd_comm *c)
{
	struct nccl_state *s = c->impl;
	if (!s)
		return;
	if (s->comm) {
		cudaStreamSynchronize(s->stream);
		ncclCommDestroy(s->comm);
	}
	cudaStreamDestroy(s->stream);
	free(s);
	c->impl = NULL;
}

/* Asynchronous collectives (dist.h): after the work of lvd_comm_set_stream's stream
 * (an event the communicator's stream waits for; without one, the whole device), the
 * collective is enqueued on the communicator's stream and an event recorded after it;
 * the wait polls that event against the timeout. Requests and blocking calls share the
 * one stream, so they run in call order. */
static int nccl_req_start(struct lvd_comm *c, struct lvd_comm_req *r, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	const char *what = r->kind == LVD_REQ_ALL_REDUCE ? "all-reduce" : "all-gather";
	c->seq++;
	if (!s->comm)
		return lvd_error_set(err, LVD_ERR_IO, "rank %d: NCCL %s #%llu: the communicator was aborted", c->rank,
				     what, (unsigned long long)c->seq);
	cudaError_t e;
	if (c->stream) {
		cudaEvent_t ready;
		if ((e = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming)) != cudaSuccess)
			return cuda_fail(c, what, e, err);
		e = cudaEventRecord(ready, (cudaStream_t)c->stream);
		if (e == cudaSuccess)
			e = cudaStreamWaitEvent(s->stream, ready, 0);
		cudaEventDestroy(ready);
	} else {
		e = cudaDeviceSynchronize();
	}
	if (e != cudaSuccess)
		return cuda_fail(c, what, e, err);
	ncclResult_t nr;
	if (r->kind == LVD_REQ_ALL_REDUCE) {
		c->bytes_sent += 2 * r->n * lvd_comm_dtype_size(r->dt) * (uint64_t)(c->world - 1) / (uint64_t)c->world;
		nr = ncclAllReduce(r->buf, r->buf, r->n, nc_type(r->dt), nc_op(r->op), s->comm, s->stream);
	} else {
		c->bytes_sent += r->n * (uint64_t)(c->world - 1);
		nr = ncclAllGather(r->send, r->buf, r->n, ncclUint8, s->comm, s->stream);
	}
	if (nr != ncclSuccess && nr != ncclInProgress)
		return nccl_fail(c, what, nr, err);
	cudaEvent_t ev;
	if ((e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)) != cudaSuccess)
		return cuda_fail(c, what, e, err);
	if ((e = cudaEventRecord(ev, s->stream)) != cudaSuccess) {
		cudaEventDestroy(ev);
		return cuda_fail(c, what, e, err);
	}
	r->event = ev;
	return 0;
}

static int nccl_req_wait(struct lvd_comm *c, struct lvd_comm_req *r, struct lvd_error *err)
{
	struct nccl_state *s = c->impl;
	const char *what = r->kind == LVD_REQ_ALL_REDUCE ? "all-reduce" : "all-gather";
	cudaEvent_t ev = (cudaEvent_t)r->event;
	double t0 = lvd_time_now();
	int rc = 0;
	for (;;) {
		cudaError_t q = cudaEventQuery(ev);
		if (q == cudaSuccess)
			break;
		if (q != cudaErrorNotReady) {
			rc = cuda_fail(c, what, q, err);
			break;
		}
		ncclResult_t ae = ncclSuccess;
		if (s->comm)
			ncclCommGetAsyncError(s->comm, &ae);
		if (!s->comm || (ae != ncclSuccess && ae != ncclInProgress)) {
			if (s->comm)
				ncclCommAbort(s->comm);
			s->comm = NULL;
			rc = ae != ncclSuccess ? nccl_fail(c, what, ae, err)
					       : lvd_error_set(err, LVD_ERR_IO, "rank %d: NCCL %s: the communicator was "
							       "aborted", c->rank, what);
			break;
		}
		if (lvd_time_now() - t0 > c->timeout_s) {
			ncclCommAbort(s->comm);
			s->comm = NULL;
			rc = lvd_error_set(err, LVD_ERR_IO, "rank %d: NCCL %s did not complete within %g s (a rank is dead "
					   "or hung; the communicator was aborted)", c->rank, what, c->timeout_s);
			break;
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	cudaEventDestroy(ev);
	return rc;
}

static const struct lvd_comm_vt NCCL_VT = {
	"nccl", nccl_all_reduce, nccl_reduce_scatter, nccl_all_gather, nccl_broadcast, nccl_barrier, nccl_abort,
	nccl_destroy, nccl_req_start, nccl_req_wait,
};

int lvd_comm_nccl_start(struct lvd_comm *c, struct lvd_comm *host, struct lvd_error *err)
{
	int ndev = 0;
	cudaError_t e = cudaGetDeviceCount(&ndev);
	if (e != cudaSuccess || ndev == 0)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "rank %d: NCCL needs a CUDA device (%s)", c->rank,
				     e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
	struct nccl_state *s = calloc(1, sizeof *s);
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	s->device = c->local_rank % ndev;
	if ((e = cudaSetDevice(s->device)) != cudaSuccess ||
	    (e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess) {
		int dev = s->device;
		free(s);
		return lvd_error_set(err, LVD_ERR_IO, "rank %d: CUDA device %d: %s", c->rank, dev, cudaGetErrorString(e));
	}
	ncclUniqueId id;
	memset(&id, 0, sizeof id);
	ncclResult_t r = ncclSuccess;
	if (c->rank == 0)
		r = ncclGetUniqueId(&id);
	int rc = 0;
	/* Rank 0's id (or its failure, as an all-zero id) reaches every rank. */
	if (host->world > 1)
		rc = lvd_comm_broadcast(host, &id, sizeof id, 0, err);
	if (!rc && r != ncclSuccess)
		rc = lvd_error_set(err, LVD_ERR_IO, "rank %d: ncclGetUniqueId: %s", c->rank, ncclGetErrorString(r));
	if (rc) {
		cudaStreamDestroy(s->stream);
		free(s);
		return rc;
	}
	/* Non-blocking init, polled against the timeout. */
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	cfg.blocking = 0;
	r = ncclCommInitRankConfig(&s->comm, c->world, id, c->rank, &cfg);
	double t0 = lvd_time_now();
	while (r == ncclInProgress || r == ncclSuccess) {
		ncclResult_t st = ncclInProgress;
		ncclCommGetAsyncError(s->comm, &st);
		if (st == ncclSuccess) {
			r = ncclSuccess;
			break;
		}
		if (st != ncclInProgress) {
			r = st;
			break;
		}
		if (lvd_time_now() - t0 > c->timeout_s) {
			ncclCommAbort(s->comm);
			cudaStreamDestroy(s->stream);
			free(s);
			return lvd_error_set(err, LVD_ERR_IO, "rank %d: ncclCommInitRank did not complete within %g s "
					     "(a rank did not join)", c->rank, c->timeout_s);
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	if (r != ncclSuccess) {
		if (s->comm)
			ncclCommAbort(s->comm);
		cudaStreamDestroy(s->stream);
		free(s);
		return lvd_error_set(err, LVD_ERR_IO, "rank %d: ncclCommInitRank: %s", c->rank, ncclGetErrorString(r));
	}
	c->impl = s;
	c->vt = &NCCL_VT;
	c->backend = LVD_COMM_NCCL;
	c->host = host;
	c->seq = 0;
	c->bytes_sent = 0;
	return 0;
}

#else

int lvd_comm_nccl_start(struct lvd_comm *c, struct lvd_comm *host, struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "GPU ranks need NCCL, and this build has none (CUDA=1 with "
			     "nccl.h installed)");
}

#endif
