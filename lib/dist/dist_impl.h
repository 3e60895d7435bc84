/* lib/dist/dist_impl.h — private to lib/dist: the communicator struct and the table each
 * backend fills (dist.c: environment, single rank, bf16 staging and MEAN for host
 * backends; dist_mpi.c, dist_tcp.c, dist_nccl.c: the backends). */
#ifndef LVD_DIST_DIST_IMPL_H
#define LVD_DIST_DIST_IMPL_H

#include "dist/dist.h"

/* Host backends get F32/F64 and SUM only (dist.c stages bf16 and divides for MEAN);
 * the NCCL backend gets every dtype and op as the caller passed them. */
struct lvd_comm_vt {
	const char *name;
	int (*all_reduce)(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			  struct lvd_error *err);
	int (*reduce_scatter)(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			      enum lvd_comm_op op, struct lvd_error *err);
	int (*all_gather)(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err);
	int (*broadcast)(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err);
	int (*barrier)(struct lvd_comm *c, struct lvd_error *err);
	void (*abort)(struct lvd_comm *c, int code);
	void (*destroy)(struct lvd_comm *c);
	/* Device backends only (NULL for host ones, which dist_async.c's progress thread
	 * serves): enqueue req's collective / wait for it. */
	int (*req_start)(struct lvd_comm *c, struct lvd_comm_req *req, struct lvd_error *err);
	int (*req_wait)(struct lvd_comm *c, struct lvd_comm_req *req, struct lvd_error *err);
};

enum lvd_comm_req_kind { LVD_REQ_ALL_REDUCE, LVD_REQ_ALL_GATHER };

/* One asynchronous collective (dist_async.c). */
struct lvd_comm_req {
	enum lvd_comm_req_kind kind;
	void *buf;                   /* all-reduce: in place; all-gather: recv */
	const void *send;            /* all-gather */
	size_t n;                    /* all-reduce: elements; all-gather: bytes per rank */
	enum lvd_comm_dtype dt;
	enum lvd_comm_op op;
	int done, rc;
	struct lvd_error err;
	struct lvd_comm_req *next;   /* the progress thread's queue */
	void *event;                 /* NCCL: cudaEvent_t recorded after the collective */
};

struct lvd_comm_async;           /* the progress thread (dist_async.c) */

struct lvd_comm {
	const struct lvd_comm_vt *vt;
	enum lvd_comm_backend backend;
	int rank, world, local_rank;
	double timeout_s;
	uint64_t seq;          /* collectives started so far (messages name them "#seq") */
	uint64_t bytes_sent;
	void *impl;            /* the backend's state */
	struct lvd_comm *host; /* NCCL: the host communicator that bootstrapped it */
	struct lvd_comm_async *async; /* host backends: the progress thread, NULL until the first start */
	int no_thread;         /* 1: the backend may not be called from another thread (MPI below
				* MPI_THREAD_SERIALIZED): starts run at once */
	int pending;           /* requests started, not yet waited for */
	void *stream;          /* NCCL: lvd_comm_set_stream's stream */
};

size_t lvd_comm_dtype_size(enum lvd_comm_dtype dt);
/* dst[i] += src[i] (F32 or F64 arrays of n). */
void lvd_comm_add(void *dst, const void *src, size_t n, enum lvd_comm_dtype dt);

/* The blocking collectives' bodies (dist.c), run by the caller or the progress thread. */
int lvd_comm_run_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			    struct lvd_error *err);
int lvd_comm_run_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err);
/* Before a blocking collective: waits until the progress thread has run every request
 * started so far; LVD_ERR_IO (err set) when one of them failed. */
int lvd_comm_async_drain(struct lvd_comm *c, struct lvd_error *err);
/* Stops and joins the progress thread (lvd_comm_destroy). */
void lvd_comm_async_stop(struct lvd_comm *c);

/* Backend start-up (env already read; c->rank/world/local_rank/timeout_s set). */
int lvd_comm_mpi_start(struct lvd_comm *c, struct lvd_error *err);
int lvd_comm_tcp_start(struct lvd_comm *c, const struct lvd_comm_env *env, struct lvd_error *err);
/* Wraps host (which the NCCL communicator then owns) into an NCCL communicator. */
int lvd_comm_nccl_start(struct lvd_comm *c, struct lvd_comm *host, struct lvd_error *err);

#endif
