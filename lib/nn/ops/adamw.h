/* lib/nn/ops/adamw.h — the optimiser kernels (family adamw): one AdamW update over a
 * flat fp32 block, and the sum of squares behind gradient-norm clipping. The rest of the
 * optimiser (parameter groups, state, clipping, schedules) is lib/train/optim.h and
 * lib/train/sched.h.
 *
 *   lvd_adamw_step   torch.optim.AdamW's update (CPU default path, fp32) for n values
 *   lvd_sumsq        Σ x[i]² in double, bit-identical for any thread count
 *
 * lvd_adamw_step(ctx, param, m, v, grad, n, lr, beta1, beta2, eps, wd, step)
 *   param, m, v [n] are updated in place (m, v: the fp32 first and second moments, zero
 *   before step 1); grad [n] is read only. step is the 1-based index of this update
 *   (torch's state["step"] after its increment). Hyperparameters are doubles, as
 *   Python floats are in torch: the scalars below are computed in double and rounded to
 *   fp32 once, and every per-element operation is the fp32 operation torch performs, in
 *   its order (torch 2.15 single-tensor path, AVX2 kernels; see the tolerance notes in
 *   tests/unit/test_optim.c):
 *     if wd != 0:  p = p · f(1 − lr·wd)                       decoupled weight decay
 *     m = lerp(m, g, f(1 − β1))   = fma(w, g − m, m)  (w < 0.5; else fma(w − 1, g − m, g))
 *     v = v · f(β2);  v = fma(f(1 − β2)·g, g, v)              (addcmul)
 *     d = sqrt(v) / f(sqrt(1 − β2^step)) + f(eps)             eps after the corrected sqrt
 *     p = p + (f(−lr / (1 − β1^step)) · m) / d                (addcdiv)
 *   f() = rounding to fp32, fma exact (C fmaf). amsgrad and maximize are not offered.
 *   Elementwise, split over ctx's pool in contiguous ranges: the result is the same for
 *   any thread count. Nothing allocates. CUDA twin (adamw.cu): the same scalars and
 *   per-element operations (no FMA contraction), bit-identical to the CPU update.
 *
 * lvd_sumsq(ctx, x, n)
 *   Σ x[i]² accumulated in double over fixed chunks of LVD_SUMSQ_CHUNK values whose
 *   partial sums are added in chunk order, so the result does not depend on the thread
 *   count. Takes ceil(n / LVD_SUMSQ_CHUNK) doubles of workspace. CUDA twin: one block per
 *   chunk (in-chunk order differs: agrees to double rounding), chunk sums added on the
 *   host in order; it waits for the stream. */
#ifndef LVD_NN_OPS_ADAMW_H
#define LVD_NN_OPS_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LVD_SUMSQ_CHUNK = 1 << 14 };

void lvd_adamw_step_cpu(struct lvd_ctx *ctx, float *param, float *m, float *v, const float *grad,
			size_t n, double lr, double beta1, double beta2, double eps, double wd,
			int64_t step);
double lvd_sumsq_cpu(struct lvd_ctx *ctx, const float *x, size_t n);

#if LVD_HAVE_CUDA
void lvd_adamw_step_cuda(struct lvd_ctx *ctx, float *param, float *m, float *v, const float *grad,
			 size_t n, double lr, double beta1, double beta2, double eps, double wd,
			 int64_t step);
double lvd_sumsq_cuda(struct lvd_ctx *ctx, const float *x, size_t n);
#endif

static inline void lvd_adamw_step(struct lvd_ctx *ctx, float *param, float *m, float *v,
				  const float *grad, size_t n, double lr, double beta1, double beta2,
				  double eps, double wd, int64_t step)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_adamw_step_cuda(ctx, param, m, v, grad, n, lr, beta1, beta2, eps, wd, step);
		return;
	}
#endif
	lvd_adamw_step_cpu(ctx, param, m, v, grad, n, lr, beta1, beta2, eps, wd, step);
}
static inline double lvd_sumsq(struct lvd_ctx *ctx, const float *x, size_t n)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA)
		return lvd_sumsq_cuda(ctx, x, n);
#endif
	return lvd_sumsq_cpu(ctx, x, n);
}

#ifdef __cplusplus
}
#endif
#endif
