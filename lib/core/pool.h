/* lib/core/pool.h — a fixed-size thread pool with deterministic static chunking.
 *
 * lvd_pool_parallel_for splits [0, n_items) into T contiguous chunks (T = the pool's
 * thread count): thread t gets [t*n/T, (t+1)*n/T). The split depends only on n and T,
 * never on timing, so per-chunk partial results combined in thread order are
 * reproducible. The calling thread runs chunk 0 itself; T-1 workers run the rest. A
 * pool of 1 (or a NULL pool) runs everything inline on the caller.
 *
 * One parallel_for at a time per pool: concurrent calls from different threads are
 * serialised; calling parallel_for on the same pool from inside fn is a programming
 * error (LVD_ASSERT). Functions here return error codes only for creation. */
#ifndef LVD_CORE_POOL_H
#define LVD_CORE_POOL_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_pool;

/* Work on items [begin, end) as thread `thread_id` (0 <= thread_id < T). Return 0 on
 * success or an error code (enum lvd_err); chunks are never empty. */
typedef int (*lvd_pool_fn)(void *ctx, size_t begin, size_t end, int thread_id);

/* Creates a pool of n threads (including the caller); n = 0 means the number of online
 * CPUs. Returns LVD_OK and *out, or LVD_ERR_INVALID (n > 1024) / LVD_ERR_NOMEM /
 * LVD_ERR_IO (pthread_create failed) with err filled. Free with lvd_pool_destroy. */
int lvd_pool_create(struct lvd_pool **out, int n, struct lvd_error *err);

/* Joins the workers and frees the pool. NULL is a no-op. */
void lvd_pool_destroy(struct lvd_pool *pool);

/* Thread count T (1 for NULL). */
int lvd_pool_threads(const struct lvd_pool *pool);

/* Runs fn over [0, n_items) as described above and waits for all chunks. Returns 0, or
 * the non-zero code returned by the lowest-numbered failing thread (all chunks still
 * run to completion). n_items = 0 calls nothing. */
int lvd_pool_parallel_for(struct lvd_pool *pool, size_t n_items, lvd_pool_fn fn, void *ctx);

/* 1 while the calling thread runs a chunk of some pool's parallel_for (pools of more
 * than one thread; a NULL or 1-thread pool runs inline and does not count). */
int lvd_pool_in_chunk(void);

/* The chunk of thread t: [*begin, *end) = [t*n/T, (t+1)*n/T) (overflow-safe). Exposed
 * so callers can size per-thread scratch by chunk. */
void lvd_pool_chunk(size_t n_items, int n_threads, int t, size_t *begin, size_t *end);

#ifdef __cplusplus
}
#endif
#endif
