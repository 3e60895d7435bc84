/* lib/dist/dist.h — the communicator of multi-rank runs (data-parallel lvd-sft): one
 * interface over the backends, so no caller knows which one is in use.
 *
 * Backends (lvd_comm_init picks one from the launcher's environment):
 *   single  no launcher: rank 0 of 1; every collective is a copy (or nothing).
 *   mpi     mpirun / srun with PMI (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK): Open MPI
 *           on host buffers (LVD_HAVE_MPI builds; otherwise such a launch is refused).
 *   tcp     torchrun-style environment without MPI (RANK, WORLD_SIZE, LOCAL_RANK,
 *           MASTER_ADDR, MASTER_PORT; also srun's SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
 *           when MASTER_ADDR/MASTER_PORT are set and no PMI is present): a star over TCP
 *           sockets to rank 0 (rank 0 listens at MASTER_PORT; reductions are summed on
 *           rank 0 in rank order and sent back). Host buffers. Meant for a few CPU ranks
 *           (lvd-sft --nproc-per-node) and as the NCCL bootstrap; not a fast transport.
 *   nccl    GPU ranks (opts.device = 1, LVD_HAVE_NCCL builds): device buffers; the
 *           ncclUniqueId is broadcast from rank 0 over the host backend above (MPI or TCP,
 *           single for one rank); device = LOCAL_RANK % visible devices.
 * LVD_DIST_BACKEND=single|mpi|tcp forces the host backend (tests).
 *
 * Semantics. Every rank calls the same collectives in the same order with the same
 * sizes. Sums are element-wise over ranks; MEAN divides the sum by world in fp32. bf16
 * (uint16_t bits) reduces through fp32 staging and rounds back to nearest-even. With one
 * rank every operation leaves data unchanged (bit-identical to not communicating).
 * reduce_scatter: send [world · n], recv [n] = Σ_r send_r[rank·n, (rank+1)·n).
 * all_gather: send [bytes], recv [world · bytes] in rank order.
 *
 * Faults. A collective that does not complete within opts.timeout_s returns
 * LVD_ERR_IO with a message naming the collective, its number and, when knowable, the
 * ranks that never reached it ("rank(s) 1 did not reach it" — MPI: each rank announces
 * its arrival at every collective on a side channel; TCP: the root sees who did not
 * send); a peer that died is reported the same way (TCP: closed socket; MPI: mpirun
 * itself ends the job naming the process). After any error the communicator is unusable:
 * call lvd_comm_abort, which ends every rank of the job (MPI_Abort, ncclCommAbort, or
 * closing the sockets so the peers fail at once) and does not return.
 *
 * Asynchronous collectives (overlap with compute; lib/dist/dist_async.c):
 * lvd_comm_all_reduce_start / lvd_comm_all_gather_start return at once with a request;
 * lvd_comm_wait blocks until it is done. Requests run one at a time in start order (FIFO),
 * on every rank in the same order, so every rank must start the same collectives in the
 * same order (as for blocking ones). The buffers belong to the collective until its wait.
 * Host backends (tcp, mpi, single): a progress thread per communicator (created at the
 * first start) runs each request through the very code of the blocking call, so a
 * request's result is bit-identical to the blocking call on the same buffer: the sum
 * order is the backend's (tcp: rank 0 sums element i as ((x0 + x1) + x2) + ... whatever
 * the buffer's size or split, so splitting a buffer into buckets changes no bit; mpi:
 * Open MPI picks its algorithm by message size, so one request equals one blocking call
 * of the same size, and with 2 ranks (x0 + x1 = x1 + x0) any split is bit-identical; with
 * more ranks pin the algorithm (OMPI_MCA_coll_tuned_use_dynamic_rules=1,
 * OMPI_MCA_coll_tuned_allreduce_algorithm=1, docs/dist.md) when splits must match). A
 * blocking call made while requests are in flight first waits for them (so it keeps its
 * place in the order) and then runs on the calling thread. MPI needs
 * MPI_THREAD_SERIALIZED for the progress thread; where the library gives less, a start
 * runs the collective at once (no overlap, same results). nccl: the collective is
 * enqueued on the communicator's stream after the work of the stream given to
 * lvd_comm_set_stream (none: after the whole device, cudaDeviceSynchronize), and wait
 * polls it against the timeout.
 *
 * Threads: one thread per communicator calls it (the progress thread is internal). */
#ifndef LVD_DIST_DIST_H
#define LVD_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_comm_backend { LVD_COMM_SINGLE, LVD_COMM_MPI, LVD_COMM_TCP, LVD_COMM_NCCL };
enum lvd_comm_dtype { LVD_COMM_F32, LVD_COMM_F64, LVD_COMM_BF16 };
enum lvd_comm_op { LVD_COMM_SUM, LVD_COMM_MEAN };

#define LVD_COMM_DEFAULT_TIMEOUT 600.0

struct lvd_comm_opts {
	double timeout_s;  /* per collective; <= 0: LVD_COMM_DEFAULT_TIMEOUT */
	int device;        /* 1: GPU ranks over NCCL (device buffers); 0: host buffers */
};

/* Where the launcher says this process is (from the environment alone). */
struct lvd_comm_env {
	int rank, world, local_rank;   /* 0, 1, 0 without a launcher */
	enum lvd_comm_backend backend; /* the host backend the environment asks for */
	const char *launcher;          /* "none", "mpirun", "srun", "torchrun" */
	char master_addr[256];         /* tcp only */
	int master_port;
};

struct lvd_comm;

/* Reads the environment (above). Errors: LVD_ERR_INVALID (a malformed or inconsistent
 * variable, an MPI launch in a build without MPI, srun without PMI and without
 * MASTER_ADDR/MASTER_PORT — each message names the variable). */
int lvd_comm_env_read(struct lvd_comm_env *env, struct lvd_error *err);

/* Creates the communicator of this process (lvd_comm_env_read, then the backend's
 * start-up: MPI_Init, the TCP rendezvous within timeout_s, ncclCommInitRank). Errors:
 * those of lvd_comm_env_read, LVD_ERR_IO (rendezvous/start-up failed or timed out),
 * LVD_ERR_UNSUPPORTED (device = 1 without NCCL), LVD_ERR_NOMEM. */
int lvd_comm_init(struct lvd_comm **out, const struct lvd_comm_opts *opts, struct lvd_error *err);
/* Ends the backend (MPI_Finalize, closing sockets); NULL is a no-op. Collective: every
 * rank calls it at the end. */
void lvd_comm_destroy(struct lvd_comm *c);

int lvd_comm_rank(const struct lvd_comm *c);
int lvd_comm_world(const struct lvd_comm *c);
int lvd_comm_local_rank(const struct lvd_comm *c);
enum lvd_comm_backend lvd_comm_backend(const struct lvd_comm *c);
const char *lvd_comm_backend_name(const struct lvd_comm *c);
/* Bytes this rank has sent through collectives so far, for benches: counted on the TCP
 * socket; for MPI and NCCL the ring algorithm's count (an estimate); 0 with one rank. */
uint64_t lvd_comm_bytes_sent(const struct lvd_comm *c);

/* In place: buf[n] = op over ranks of buf[n]. */
int lvd_comm_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			struct lvd_error *err);
/* recv[n] = op over ranks of send[rank·n, (rank+1)·n) (send holds world·n elements). */
int lvd_comm_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			    enum lvd_comm_op op, struct lvd_error *err);
/* recv[world · bytes] = the ranks' send[bytes] in rank order (send may alias
 * recv + rank·bytes). */
int lvd_comm_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err);
/* buf[bytes] of rank root to every rank. */
int lvd_comm_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err);
int lvd_comm_barrier(struct lvd_comm *c, struct lvd_error *err);

/* Asynchronous collectives (see above). A request must be waited for exactly once;
 * lvd_comm_wait frees it and returns the collective's status (errors as the blocking
 * call's; after an error every later request fails with the same message). Start errors:
 * LVD_ERR_NOMEM, LVD_ERR_IO (the communicator already failed). */
struct lvd_comm_req;
int lvd_comm_all_reduce_start(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			      struct lvd_comm_req **req, struct lvd_error *err);
int lvd_comm_all_gather_start(struct lvd_comm *c, void *recv, const void *send, size_t bytes,
			      struct lvd_comm_req **req, struct lvd_error *err);
int lvd_comm_wait(struct lvd_comm *c, struct lvd_comm_req *req, struct lvd_error *err);
/* Requests started and not yet waited for. */
int lvd_comm_pending(const struct lvd_comm *c);
/* NCCL: the CUDA stream (cudaStream_t) whose work an asynchronous start must follow
 * (NULL: the whole device); no effect on host backends. */
void lvd_comm_set_stream(struct lvd_comm *c, void *stream);

/* Ends the whole job with exit status code (every rank); does not return. */
void lvd_comm_abort(struct lvd_comm *c, int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
