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
};

struct lvd_comm {
	const struct lvd_comm_vt *vt;
	enum lvd_comm_backend backend;
	int rank, world, local_rank;
	double timeout_s;
	uint64_t seq;          /* collectives started so far (messages name them "#seq") */
	uint64_t bytes_sent;
	void *impl;            /* the backend's state */
	struct lvd_comm *host; /* NCCL: the host communicator that bootstrapped it */
};

size_t lvd_comm_dtype_size(enum lvd_comm_dtype dt);
/* dst[i] += src[i] (F32 or F64 arrays of n). */
void lvd_comm_add(void *dst, const void *src, size_t n, enum lvd_comm_dtype dt);

/* Backend start-up (env already read; c->rank/world/local_rank/timeout_s set). */
int lvd_comm_mpi_start(struct lvd_comm *c, struct lvd_error *err);
int lvd_comm_tcp_start(struct lvd_comm *c, const struct lvd_comm_env *env, struct lvd_error *err);
/* Wraps host (which the NCCL communicator then owns) into an NCCL communicator. */
int lvd_comm_nccl_start(struct lvd_comm *c, struct lvd_comm *host, struct lvd_error *err);

#endif
