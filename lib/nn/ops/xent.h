/* lib/nn/ops/xent.h — token cross-entropy (family xent), as torch's
 * cross_entropy(ignore_index=-100): logits [N, V], targets [N] in [0, V) or -100.
 * Reductions in double. CPU functions in xent_cpu.c (the oracle); CUDA twins in xent.cu
 * (logits, targets, dlogits in device memory): one block per row walks the vocabulary
 * (max, Σ exp in double) with no probability matrix, the backward writes the gradient in
 * that same pass; the forward reads the targets back (count, range check) and sums the
 * per-row losses on the host in row order, so it waits for the stream. Callers that must
 * not hold [N, V] logits at once use lvd_lmhead_xent_* (below: the LM head fused with
 * the loss, the vocabulary in chunks; the driver in xent_head.c, backend-neutral). */
#ifndef LVD_NN_OPS_XENT_H
#define LVD_NN_OPS_XENT_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

#if LVD_HAVE_CUDA
double lvd_xent_fwd_cuda(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N, int V);
void lvd_xent_bwd_cuda(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets, float scale,
		       int N, int V);
double lvd_xent_fwd_bwd_cuda(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits, const int *targets,
			     float scale, int N, int V);
#endif

/* Returns the summed loss over kept rows; *count = kept rows (the mean divides by it). */
double lvd_xent_fwd_cpu(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N,
			int V);
/* dlogits += scale · (softmax(logits) − onehot(target)) for kept rows (ACCUMULATES;
 * scale = 1/count for the mean). */
void lvd_xent_bwd_cpu(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets, float scale,
		      int N, int V);

static inline double lvd_xent_fwd(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N,
				  int V)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA)
		return lvd_xent_fwd_cuda(ctx, count, logits, targets, N, V);
#endif
	return lvd_xent_fwd_cpu(ctx, count, logits, targets, N, V);
}
static inline void lvd_xent_bwd(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets,
				float scale, int N, int V)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_xent_bwd_cuda(ctx, dlogits, logits, targets, scale, N, V);
		return;
	}
#endif
	lvd_xent_bwd_cpu(ctx, dlogits, logits, targets, scale, N, V);
}

/* Both at once (the training step's loss): returns lvd_xent_fwd's sum and *count and
 * ACCUMULATES lvd_xent_bwd's gradient with the given scale (the caller's 1/count for a
 * mean over more rows than this call sees, e.g. row chunks or ranks). CPU: the two
 * functions in turn; CUDA: one pass per row from one log-sum-exp. */
double lvd_xent_fwd_bwd_cpu(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits, const int *targets,
			    float scale, int N, int V);
static inline double lvd_xent_fwd_bwd(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits,
				      const int *targets, float scale, int N, int V)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA)
		return lvd_xent_fwd_bwd_cuda(ctx, dlogits, count, logits, targets, scale, N, V);
#endif
	return lvd_xent_fwd_bwd_cpu(ctx, dlogits, count, logits, targets, scale, N, V);
}

/* ---- fused LM head + cross-entropy, the vocabulary in chunks (issue #20) ----
 * The loss of logits = h[N, D] · W[V, D]ᵀ without the [N, V] logits: the head runs over
 * `chunk` vocabulary rows at a time (lvd_linear_fwd on W + v0·D, so cuBLASLt on CUDA)
 * into an [N, chunk] block of the ctx workspace, and each block feeds a row kernel.
 * Forward: an online log-sum-exp per row (running max in fp32, Σ exp(l − max) in double,
 * rescaled when the max grows) and the target's logit; returns Σ loss of the kept rows,
 * *count = kept rows, and lse[N] = max + log Σ exp (double; NAN for ignored rows), the
 * per-row statistic the backward reuses. Backward: the blocks again (one more head
 * GEMM per chunk), each turned in place into scale·(exp(l − lse) − onehot(target))
 * (ignored rows 0), then dh += block · W_c and dW_c += blockᵀ · h (dW NULL: not
 * computed). ACCUMULATES into dh and dW. Equal to lvd_linear_fwd + lvd_xent_* on the
 * whole logits up to fp32 rounding: the per-chunk GEMMs may pick other kernels (last
 * bits of a logit), dh sums the chunks' products in chunk order, and the log-sum-exp
 * is reassociated in double. Workspace: N·chunk floats, plus 2 floats and a double
 * per row of state in the forward (lvd_lmhead_xent_ws_floats). chunk >= V: one block
 * (still no dlogits block). CPU: the row kernels split the rows over ctx's pool
 * (results independent of it).
 * CUDA (xent.cu): the two row kernels below; lse and targets in device memory; the
 * forward reads the targets back and sums the row losses on the host in row order. */
double lvd_lmhead_xent_fwd(struct lvd_ctx *ctx, double *lse, int *count, const float *h, const float *W,
			   const int *targets, int N, int D, int V, int chunk);
void lvd_lmhead_xent_bwd(struct lvd_ctx *ctx, float *dh, float *dW, const double *lse, const float *h, const float *W,
			 const int *targets, float scale, int N, int D, int V, int chunk);
/* Floats of ctx workspace the two take at most (for memory plans). */
size_t lvd_lmhead_xent_ws_floats(int N, int V, int chunk);

/* The row kernels of one vocabulary block l[N, Vc] holding columns [v0, v0 + Vc):
 * chunk_fwd updates the running max mx[N], sum se[N] and target logit tl[N] (start: mx
 * −inf, se 0; rows whose target is -100 untouched); chunk_end turns them into lse[N]
 * and returns Σ (lse − tl) of the kept rows, *count (row order, double); chunk_bwd
 * overwrites l with scale·(exp(l − lse) − onehot) (ignored rows 0). */
void lvd_xent_chunk_fwd_cpu(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l, const int *targets,
			    int N, int Vc, int v0);
double lvd_xent_chunk_end_cpu(struct lvd_ctx *ctx, double *lse, int *count, const float *mx, const double *se,
			      const float *tl, const int *targets, int N, int V);
void lvd_xent_chunk_bwd_cpu(struct lvd_ctx *ctx, float *l, const double *lse, const int *targets, float scale, int N,
			    int Vc, int v0);
#if LVD_HAVE_CUDA
void lvd_xent_chunk_fwd_cuda(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l,
			     const int *targets, int N, int Vc, int v0);
double lvd_xent_chunk_end_cuda(struct lvd_ctx *ctx, double *lse, int *count, const float *mx, const double *se,
			       const float *tl, const int *targets, int N, int V);
void lvd_xent_chunk_bwd_cuda(struct lvd_ctx *ctx, float *l, const double *lse, const int *targets, float scale, int N,
			     int Vc, int v0);
#endif
static inline void lvd_xent_chunk_fwd(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l,
				      const int *targets, int N, int Vc, int v0)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_xent_chunk_fwd_cuda(ctx, mx, se, tl, l, targets, N, Vc, v0);
		return;
	}
#endif
	lvd_xent_chunk_fwd_cpu(ctx, mx, se, tl, l, targets, N, Vc, v0);
}
static inline double lvd_xent_chunk_end(struct lvd_ctx *ctx, double *lse, int *count, const float *mx,
					const double *se, const float *tl, const int *targets, int N, int V)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA)
		return lvd_xent_chunk_end_cuda(ctx, lse, count, mx, se, tl, targets, N, V);
#endif
	return lvd_xent_chunk_end_cpu(ctx, lse, count, mx, se, tl, targets, N, V);
}
static inline void lvd_xent_chunk_bwd(struct lvd_ctx *ctx, float *l, const double *lse, const int *targets,
				      float scale, int N, int Vc, int v0)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_xent_chunk_bwd_cuda(ctx, l, lse, targets, scale, N, Vc, v0);
		return;
	}
#endif
	lvd_xent_chunk_bwd_cpu(ctx, l, lse, targets, scale, N, Vc, v0);
}

#ifdef __cplusplus
}
#endif
#endif
