/* lib/nn/ops/cpu_internal.h — private helpers of the CPU op files (not a public header):
 * how an op spreads work over ctx->pool, the AVX2 check of the fast paths, and helpers
 * two files of one family share (the fast-path rows, conv's im2col).
 *
 * lvd_ops_run runs fn over [0, n) on the pool, or inline on the caller when the context
 * has no pool or the caller already runs inside a parallel_for chunk (ops never nest a
 * parallel_for). lvd_ops_run_big does the same but stays inline below `work` values of
 * LVD_OPS_PAR_MIN (a wake-up costs more than the work). Both split by lvd_pool_chunk,
 * so a split op whose items are independent gives the serial result bit for bit. */
#ifndef LVD_NN_OPS_CPU_INTERNAL_H
#define LVD_NN_OPS_CPU_INTERNAL_H

#include <stddef.h>

#include "core/pool.h"
#include "nn/ctx.h"

enum { LVD_OPS_PAR_MIN = 1 << 15 };

/* Threads an op may use from here: 1 inside a parallel_for chunk or without a pool. */
static inline int lvd_ops_threads(const struct lvd_ctx *ctx)
{
	return ctx->pool && ctx->threads > 1 && !lvd_ctx_in_parallel() ? ctx->threads : 1;
}

static inline void lvd_ops_run(struct lvd_ctx *ctx, size_t n, lvd_pool_fn fn, void *job)
{
	if (n == 0)
		return;
	if (lvd_ops_threads(ctx) == 1 || n < 2) {
		fn(job, 0, n, 0);
		return;
	}
	int rc = lvd_ctx_parallel_for(ctx, n, fn, job);
	LVD_ASSERT(rc == 0);
}

static inline void lvd_ops_run_big(struct lvd_ctx *ctx, size_t n, size_t work, lvd_pool_fn fn, void *job)
{
	if (work < LVD_OPS_PAR_MIN) {
		if (n)
			fn(job, 0, n, 0);
		return;
	}
	lvd_ops_run(ctx, n, fn, job);
}

/* 1 when the fast AVX2+FMA paths may run: ctx->cpu_fast and the CPU has both. */
int lvd_ops_cpu_avx2(void);
static inline int lvd_ops_fast_avx2(const struct lvd_ctx *ctx)
{
	return ctx->cpu_fast && lvd_ops_cpu_avx2();
}

/* Fast paths (the *_fast.c files), called only when lvd_ops_fast_avx2(ctx). */
void lvd_softmax_row_avx2(float *r, int M);                      /* softmax_fast.c */
/* softmax_fast.c, the xent rows: Σ exp(l − max) (double sum; -1 when the row has a NaN)
 * and d (+)= s·exp(l − (zh + zl)) */
double lvd_xent_sumexp_avx2(const float *l, int V, float *mx_out);
void lvd_xent_expscale_avx2(float *d, const float *l, int V, float zh, float zl, float s, int acc);
void lvd_groupnorm_group_avx2(float *out, float *mean, float *rstd, const float *inp,
			      const float *w, const float *b, int cg, int HW, float eps, int silu); /* norm_fast.c */
void lvd_geglu_row_avx2(float *y, const float *a, const float *g, int F);   /* act_fast.c */
/* act_fast.c: n elements of one activation (o0, o1 outputs; a, b, c inputs as act_cpu.c
 * passes them): gelu tanh fwd (o0 = gelu(a)) and bwd (o0 += a·gelu'(b)), swiglu fwd
 * (o0 = silu(a)·b) and bwd (o0 = dgate, o1 = dup, either NULL; a gate, b up, c dout) */
enum lvd_act_fast { LVD_ACT_GELU_TANH_FWD, LVD_ACT_GELU_TANH_BWD, LVD_ACT_SWIGLU_FWD, LVD_ACT_SWIGLU_BWD };
void lvd_act_span_avx2(enum lvd_act_fast op, float *o0, float *o1, const float *a, const float *b, const float *c,
		       size_t n);

/* im2col of output rows [oy0, oy0 + rows) of a conv (conv_cpu.c; also used by the
 * backward in conv_bwd_cpu.c): col[(c·KH + ky)·KW + kx][r·OW + ox] =
 * inp[c][(oy0 + r)·stride + ky - pad_t][ox·stride + kx - pad_l], 0 outside the image. */
void lvd_conv_im2col_rows(float *col, const float *inp, int C, int H, int W, int KH, int KW,
			  int stride, int pad_t, int pad_l, int OW, int oy0, int rows);

#endif
