/* lib/nn/ctx.h — the execution context every op takes as its first argument.
 *
 * One struct lvd_ctx says where and how ops run:
 *   - backend: CPU (fp32 reference, OpenBLAS) or CUDA (stream + cuBLASLt handle);
 *   - the CPU thread pool: every op parallelises over ctx->pool and nothing else;
 *   - the BLAS threading policy, set once for the process (lvd_ctx_create): OpenBLAS
 *     runs single-threaded and lvd_gemm splits large products over ctx->pool itself,
 *     so no op ever toggles OpenBLAS's thread count and GEMMs may be called from
 *     inside a parallel_for chunk (they then run on that thread alone); on AMD Zen 4
 *     OpenBLAS takes its AVX2 kernels (faster there than its AVX-512 ones);
 *   - cpu_fast: 1 lets ops take their fast CPU paths (AVX2, Winograd); 0 forces the
 *     plain reference paths (the oracle) so tests exercise both;
 *   - a workspace arena replacing caller-sized scratch: ops take what they need with
 *     lvd_ctx_mark / lvd_ctx_take / lvd_ctx_release and give it back before
 *     returning (stack discipline). The host arena is reserved address space
 *     (MAP_NORESERVE): pages are committed only when touched, it never moves, and
 *     its high-water mark is reported by lvd_ctx_ws_peak.
 *
 * Ownership: lvd_ctx_create allocates; lvd_ctx_destroy frees the pool, the arenas
 * and the CUDA handles. A context is used by one thread at a time (ops run their own
 * parallel_for inside); two threads need two contexts.
 *
 * Dispatch: each op family header (lib/nn/ops/<family>.h) declares the CPU function
 * `lvd_<op>_cpu` (in <family>_cpu.c, the oracle; fast paths in <family>_fast.c), the
 * CUDA twin `lvd_<op>_cuda` (in <family>.cu, built when nvcc exists) with the same
 * arguments, and a static inline `lvd_<op>` that picks one by ctx->backend. An op
 * without a CUDA twin asserts a CPU context (LVD_CTX_NEED_CPU). Family headers compile
 * as C and as C++ (the .cu files include them).
 *
 * CUDA twins: every tensor pointer is device memory; a twin queues its work on
 * ctx->stream and returns without waiting (lvd_ctx_sync waits); it takes working memory
 * only from the device arena and releases it before returning (the stream orders later
 * reuse); it reduces in fp32, or in double where the CPU reference does (norm
 * statistics, softmax-backward dots), so results agree to fp32 rounding; backward twins
 * accumulate as their CPU ops. CUDA and cuBLASLt failures abort with the API's message
 * (core/cuda_check.h). */
#ifndef LVD_NN_CTX_H
#define LVD_NN_CTX_H

#include <stddef.h>

#include "core/error.h"
#include "core/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_backend { LVD_BACKEND_CPU = 0, LVD_BACKEND_CUDA = 1 };

/* Element types of parameters and activations (compute dtypes): fp32 on the CPU; bf16
 * storage with fp32 accumulation on CUDA. Distinct from the storage dtypes of files
 * (enum lvd_st_dtype in io/safetensors.h, which also has integers and F64). */
enum lvd_dtype { LVD_F32 = 0, LVD_BF16 = 1, LVD_F16 = 2 };
size_t lvd_dtype_size(enum lvd_dtype t);
const char *lvd_dtype_name(enum lvd_dtype t);

/* A bump allocator over one reserved block (64-byte granules). */
struct lvd_arena {
	unsigned char *base;
	size_t cap, used, peak;
	int device;          /* 1: base is device memory (cudaMalloc) */
};

struct lvd_ctx {
	enum lvd_backend backend;
	int threads;             /* CPU threads, >= 1 */
	struct lvd_pool *pool;   /* NULL when threads == 1 */
	int cpu_fast;            /* 1: fast CPU paths allowed (default); 0: plain paths only */
	int device;              /* CUDA ordinal */
	void *stream;            /* cudaStream_t (CUDA backend) */
	void *blas;              /* cublasLtHandle_t (CUDA backend) */
	void *blas_ws;           /* cuBLASLt workspace (device memory) */
	size_t blas_ws_bytes;
	struct lvd_arena ws;     /* host workspace */
	struct lvd_arena dws;    /* device workspace (CUDA backend) */
	void *cuda_cache;        /* CUDA twins' per-context state (algorithm choices, cuDNN
				  * handle): lib/nn/ops/cuda_cache.cuh; NULL until first use */
};

struct lvd_ctx_opts {
	enum lvd_backend backend;
	int threads;             /* 0 = 1 thread */
	int device;              /* CUDA ordinal */
	int cpu_plain;           /* 1: cpu_fast = 0 */
	size_t ws_bytes;         /* host workspace reservation; 0 = physical memory size */
	size_t dws_bytes;        /* device workspace; 0 = 1 GiB */
};

/* Creates a context (opts may be NULL: CPU, one thread). Sets the process-wide BLAS
 * policy (OpenBLAS single-threaded, idle workers quieted) the first time it runs.
 * Errors: LVD_ERR_INVALID (threads out of range, CUDA asked for in a CPU-only build
 * or with no device), LVD_ERR_NOMEM, those of lvd_pool_create. */
int lvd_ctx_create(struct lvd_ctx **out, const struct lvd_ctx_opts *opts, struct lvd_error *err);
void lvd_ctx_destroy(struct lvd_ctx *ctx);

/* The process-wide BLAS policy alone (idempotent; lvd_ctx_create calls it): OpenBLAS
 * single-threaded with its idle workers quieted, and its AVX2 (Haswell) kernels on AMD
 * Zen 4 where it picked AVX-512 ones unless OPENBLAS_CORETYPE names a set. */
void lvd_blas_policy_init(void);
/* OpenBLAS's kernel set in use ("Haswell", "SkylakeX", ...; "unknown" with another BLAS). */
const char *lvd_blas_corename(void);

/* Workspace (host arena on CPU, device arena on CUDA): mark, take, release.
 * lvd_ctx_take never fails: running out of the reservation is a sizing bug
 * (LVD_ASSERT naming the request). Memory is uninitialised. */
size_t lvd_ctx_mark(const struct lvd_ctx *ctx);
void *lvd_ctx_take(struct lvd_ctx *ctx, size_t bytes);
float *lvd_ctx_takef(struct lvd_ctx *ctx, size_t n);
void lvd_ctx_release(struct lvd_ctx *ctx, size_t mark);
/* High-water mark of the workspace in bytes since creation (or the last reset). */
size_t lvd_ctx_ws_peak(const struct lvd_ctx *ctx);
void lvd_ctx_ws_reset_peak(struct lvd_ctx *ctx);

/* Runs fn over [0, n) on ctx->pool (inline when threads == 1). Same contract as
 * lvd_pool_parallel_for; returns its code. */
int lvd_ctx_parallel_for(struct lvd_ctx *ctx, size_t n, lvd_pool_fn fn, void *user);
/* 1 while the calling thread runs a parallel_for chunk (ops then stay single-threaded). */
int lvd_ctx_in_parallel(void);

/* Buffers that live where the context computes: host memory (64-byte aligned) on the
 * CPU backend, device memory on CUDA. Model and test code allocate through these so
 * the same code runs on either backend; lvd_buf_alloc returns NULL on failure (the
 * caller reports LVD_ERR_NOMEM). upload/download copy between host memory and such a
 * buffer (a memcpy on the CPU backend) and complete before returning; zero sets bytes
 * to 0; lvd_ctx_sync waits for all queued work (no-op on the CPU). */
void *lvd_buf_alloc(struct lvd_ctx *ctx, size_t bytes);
void lvd_buf_free(struct lvd_ctx *ctx, void *p);
void lvd_buf_upload(struct lvd_ctx *ctx, void *dst, const void *src_host, size_t bytes);
void lvd_buf_download(struct lvd_ctx *ctx, void *dst_host, const void *src, size_t bytes);
void lvd_buf_zero(struct lvd_ctx *ctx, void *p, size_t bytes);
void lvd_ctx_sync(struct lvd_ctx *ctx);

#define LVD_CTX_NEED_CPU(ctx, op) \
	LVD_ASSERTF((ctx)->backend == LVD_BACKEND_CPU, "%s: no CUDA twin yet (CPU context required)", op)

#ifdef __cplusplus
}
#endif
#endif
