/* lib/nn/ctx.c — execution context: pool, BLAS policy, workspace arenas. The CUDA
 * half (stream, cuBLASLt handle, device arena) is lib/nn/ctx_cuda.cu. */
#include "nn/ctx.h"

#include <pthread.h>
#include <stdlib.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"

#if LVD_HAVE_CUDA
/* lib/nn/ctx_cuda.cu */
int lvd_ctx_cuda_init(struct lvd_ctx *ctx, const struct lvd_ctx_opts *o, struct lvd_error *err);
void lvd_ctx_cuda_free(struct lvd_ctx *ctx);
void *lvd_buf_alloc_cuda(struct lvd_ctx *ctx, size_t bytes);
void lvd_buf_free_cuda(struct lvd_ctx *ctx, void *p);
void lvd_buf_copy_cuda(struct lvd_ctx *ctx, void *dst, const void *src, size_t bytes, int to_device);
void lvd_buf_zero_cuda(struct lvd_ctx *ctx, void *p, size_t bytes);
void lvd_ctx_sync_cuda(struct lvd_ctx *ctx);
#define ON_CUDA(ctx) ((ctx)->backend == LVD_BACKEND_CUDA)
#else
#define ON_CUDA(ctx) 0
#endif

size_t lvd_dtype_size(enum lvd_dtype t)
{
	return t == LVD_F32 ? 4 : 2;
}

const char *lvd_dtype_name(enum lvd_dtype t)
{
	switch (t) {
	case LVD_F32: return "F32";
	case LVD_BF16: return "BF16";
	case LVD_F16: return "F16";
	}
	return "?";
}

/* OpenBLAS entry points outside cblas (exported by libopenblas); weak so that another
 * BLAS still links, and the policy is then skipped. */
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
extern void openblas_read_env(void) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

/* 1 on an AMD family 19h CPU (Zen 3 / Zen 4): Zen 4 runs AVX-512 as two 256-bit halves */
static int cpu_amd_family19h(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	unsigned a, b, c, d;
	if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u || d != 0x69746e65u || c != 0x444d4163u)
		return 0; /* "AuthenticAMD" */
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	return ((a >> 8) & 0xf) + ((a >> 20) & 0xff) == 0x19;
#else
	return 0;
#endif
}

/* OpenBLAS's kernel set. A DYNAMIC_ARCH OpenBLAS (Debian's) gives AMD Zen 4 its AVX-512
 * kernels (SkylakeX / Cooperlake), which Zen 4 runs as 256-bit halves; its Haswell (AVX2)
 * kernels are faster there: every product of the MiniCPM-V training step 1110.6 -> 1048.0
 * ms at one thread (OpenBLAS 0.3.21, docs/DESIGN.md §BLAS policy). So on AMD family 19h,
 * when OpenBLAS chose an AVX-512 set and the user did not name one (OPENBLAS_CORETYPE),
 * OpenBLAS is re-initialised with OPENBLAS_CORETYPE=Haswell, its documented selector;
 * the variable is removed again. Runs before any BLAS call and any other thread. */
static void blas_pick_kernels(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	if ((user && *user) || !openblas_get_corename || !gotoblas_dynamic_init || !gotoblas_dynamic_quit)
		return;
	const char *core = openblas_get_corename();
	if (!core || !cpu_amd_family19h() ||
	    (strcmp(core, "SkylakeX") && strcmp(core, "Cooperlake") && strcmp(core, "SapphireRapids")))
		return;
	setenv("OPENBLAS_CORETYPE", "Haswell", 1);
	gotoblas_dynamic_quit();
	gotoblas_dynamic_init();
	unsetenv("OPENBLAS_CORETYPE");
}

/* Makes OpenBLAS's idle worker threads sleep almost at once after a GEMM instead of
 * spinning for ~2^28 cycles (OpenBLAS's default), which otherwise steals the cores from
 * our own thread pool between GEMMs (measured: SD UNet at 2 threads 1.37-1.55 s -> 1.08 s).
 * Sets OPENBLAS_THREAD_TIMEOUT=4 unless the user set it, and restarts OpenBLAS's thread
 * server so the value takes effect. Runs once, before other threads should exist (setenv). */
static void blas_quiet_workers(void)
{
	if (getenv("OPENBLAS_THREAD_TIMEOUT") || !openblas_read_env || !blas_thread_shutdown_)
		return;
	setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
	openblas_read_env();
	blas_thread_shutdown_(); /* the next parallel GEMM restarts the workers with it */
}

/* Threads OpenBLAS may use (the policy: 1; lvd_gemm splits over the ctx pool itself). */
static void blas_set_threads(int n)
{
	if (openblas_set_num_threads)
		openblas_set_num_threads(n);
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_policy_once(void)
{
	blas_pick_kernels();
	blas_quiet_workers();
	blas_set_threads(1);
}

void lvd_blas_policy_init(void)
{
	pthread_once(&blas_once, blas_policy_once);
}

const char *lvd_blas_corename(void)
{
	const char *c = openblas_get_corename ? openblas_get_corename() : NULL;
	return c ? c : "unknown";
}

static size_t default_ws_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psz <= 0)
		return (size_t)8 << 30;
	return (size_t)pages * (size_t)psz;
}

int lvd_ctx_create(struct lvd_ctx **out, const struct lvd_ctx_opts *opts, struct lvd_error *err)
{
	struct lvd_ctx_opts o = {0};
	if (opts)
		o = *opts;
	*out = NULL;
	int T = o.threads > 0 ? o.threads : 1;
	if (T > 1024)
		return lvd_error_set(err, LVD_ERR_INVALID, "thread count %d out of range [1, 1024]", T);
#if !LVD_HAVE_CUDA
	if (o.backend == LVD_BACKEND_CUDA)
		return lvd_error_set(err, LVD_ERR_INVALID, "CUDA backend requested, but this build has no CUDA "
				     "(rebuild with nvcc on PATH or CUDA=1)");
#endif
	lvd_blas_policy_init();
	struct lvd_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return lvd_error_set(err, LVD_ERR_NOMEM, "execution context: out of memory");
	c->backend = o.backend;
	c->threads = T;
	c->cpu_fast = !o.cpu_plain;
	c->device = o.device;
	if (T > 1) {
		int rc = lvd_pool_create(&c->pool, T, err);
		if (rc) {
			free(c);
			return rc;
		}
	}
	size_t cap = o.ws_bytes ? o.ws_bytes : default_ws_bytes();
	void *base = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		lvd_pool_destroy(c->pool);
		free(c);
		return lvd_error_errno(err, LVD_ERR_NOMEM, "cannot reserve a %zu-byte workspace", cap);
	}
	c->ws.base = base;
	c->ws.cap = cap;
#if LVD_HAVE_CUDA
	if (o.backend == LVD_BACKEND_CUDA) {
		int rc = lvd_ctx_cuda_init(c, &o, err);
		if (rc) {
			lvd_ctx_destroy(c);
			return rc;
		}
	}
#endif
	*out = c;
	return LVD_OK;
}

void lvd_ctx_destroy(struct lvd_ctx *ctx)
{
	if (!ctx)
		return;
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA)
		lvd_ctx_cuda_free(ctx);
#endif
	if (ctx->ws.base)
		munmap(ctx->ws.base, ctx->ws.cap);
	lvd_pool_destroy(ctx->pool);
	free(ctx);
}

static struct lvd_arena *arena(struct lvd_ctx *ctx)
{
	return ctx->backend == LVD_BACKEND_CUDA ? &ctx->dws : &ctx->ws;
}

size_t lvd_ctx_mark(const struct lvd_ctx *ctx)
{
	return ctx->backend == LVD_BACKEND_CUDA ? ctx->dws.used : ctx->ws.used;
}

void *lvd_ctx_take(struct lvd_ctx *ctx, size_t bytes)
{
	struct lvd_arena *a = arena(ctx);
	size_t n = (bytes + 63) & ~(size_t)63;
	LVD_ASSERTF(n >= bytes && n <= a->cap - a->used,
		    "workspace exhausted: %zu bytes asked, %zu of %zu left", bytes, a->cap - a->used, a->cap);
	void *p = a->base + a->used;
	a->used += n;
	if (a->used > a->peak)
		a->peak = a->used;
	return p;
}

float *lvd_ctx_takef(struct lvd_ctx *ctx, size_t n)
{
	size_t bytes;
	LVD_ASSERTF(lvd_size_mul(&bytes, n, sizeof(float)) == 0, "workspace request of %zu floats overflows", n);
	return lvd_ctx_take(ctx, bytes);
}

void lvd_ctx_release(struct lvd_ctx *ctx, size_t mark)
{
	struct lvd_arena *a = arena(ctx);
	LVD_ASSERT(mark <= a->used);
	a->used = mark;
}

size_t lvd_ctx_ws_peak(const struct lvd_ctx *ctx)
{
	return ctx->backend == LVD_BACKEND_CUDA ? ctx->dws.peak : ctx->ws.peak;
}

void lvd_ctx_ws_reset_peak(struct lvd_ctx *ctx)
{
	struct lvd_arena *a = arena(ctx);
	a->peak = a->used;
}

int lvd_ctx_parallel_for(struct lvd_ctx *ctx, size_t n, lvd_pool_fn fn, void *user)
{
	return lvd_pool_parallel_for(ctx->pool, n, fn, user);
}

int lvd_ctx_in_parallel(void)
{
	return lvd_pool_in_chunk();
}

void *lvd_buf_alloc(struct lvd_ctx *ctx, size_t bytes)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx))
		return lvd_buf_alloc_cuda(ctx, bytes);
#endif
	return lvd_alloc_aligned(bytes ? bytes : 1, 1);
}

void lvd_buf_free(struct lvd_ctx *ctx, void *p)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx)) {
		lvd_buf_free_cuda(ctx, p);
		return;
	}
#endif
	free(p);
}

void lvd_buf_upload(struct lvd_ctx *ctx, void *dst, const void *src_host, size_t bytes)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx)) {
		lvd_buf_copy_cuda(ctx, dst, src_host, bytes, 1);
		return;
	}
#endif
	if (bytes)
		memcpy(dst, src_host, bytes);
}

void lvd_buf_download(struct lvd_ctx *ctx, void *dst_host, const void *src, size_t bytes)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx)) {
		lvd_buf_copy_cuda(ctx, dst_host, src, bytes, 0);
		return;
	}
#endif
	if (bytes)
		memcpy(dst_host, src, bytes);
}

void lvd_buf_zero(struct lvd_ctx *ctx, void *p, size_t bytes)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx)) {
		lvd_buf_zero_cuda(ctx, p, bytes);
		return;
	}
#endif
	if (bytes)
		memset(p, 0, bytes);
}

void lvd_ctx_sync(struct lvd_ctx *ctx)
{
#if LVD_HAVE_CUDA
	if (ON_CUDA(ctx))
		lvd_ctx_sync_cuda(ctx);
#endif
	(void)ctx;
}
