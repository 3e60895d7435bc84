/* lib/nn/ops/xent.h — token cross-entropy (family xent), as torch's
 * cross_entropy(ignore_index=-100): logits [N, V], targets [N] in [0, V) or -100.
 * Reductions in double. CPU functions in xent_cpu.c (the oracle); CUDA twins in xent.cu
 * (logits, targets, dlogits in device memory): one block per row walks the vocabulary
 * (max, Σ exp in double) with no probability matrix, the backward writes the gradient in
 * that same pass; the forward reads the targets back (count, range check) and sums the
 * per-row losses on the host in row order, so it waits for the stream. Callers that must
 * not hold [N, V] logits at once run the LM head and these ops over chunks of rows. */
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

#ifdef __cplusplus
}
#endif
#endif
