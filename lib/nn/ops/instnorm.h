/* lib/nn/ops/instnorm.h — InstanceNorm2d (torch.nn.InstanceNorm2d with
 * track_running_stats = False), forward and backward (CPU reference).
 *
 *   lvd_instnorm_fwd   out = (x - mean_bc)·rstd_bc·w[c] + b[c]
 *   lvd_instnorm_bwd   its gradients (accumulating)
 *
 * Shapes (PyTorch order): inp, out, dout, dinp [B, C, HW] (HW = H·W); w, b, dw, db [C];
 * mean, rstd [B, C]. Statistics per (sample, channel) over HW with the biased variance
 * (as torch), computed in double; rstd = 1/sqrt(var + eps). affine off: w = b = NULL
 * (w = 1, b = 0). The forward saves mean/rstd when those pointers are non-NULL; out may
 * equal inp. The backward ACCUMULATES into dinp, dw, db (each may be NULL, skipped) and
 * needs the saved mean/rstd; it is GroupNorm's backward with G = C. Work is split over
 * ctx's pool (bit-identical for any thread count). Nothing allocates. CUDA twins
 * (instnorm.cu): the GroupNorm twins of norm.cu with G = C (B·C <= 65535). */
#ifndef LVD_NN_OPS_INSTNORM_H
#define LVD_NN_OPS_INSTNORM_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_instnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			  const float *w, const float *b, int B, int C, int HW, float eps);
void lvd_instnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			  const float *inp, const float *w, const float *mean, const float *rstd,
			  int B, int C, int HW);

#if LVD_HAVE_CUDA
void lvd_instnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			   const float *w, const float *b, int B, int C, int HW, float eps);
void lvd_instnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd,
			   int B, int C, int HW);
#endif

static inline void lvd_instnorm_fwd(struct lvd_ctx *ctx, float *out, float *mean, float *rstd,
				    const float *inp, const float *w, const float *b,
				    int B, int C, int HW, float eps)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_instnorm_fwd_cuda(ctx, out, mean, rstd, inp, w, b, B, C, HW, eps);
		return;
	}
#endif
	lvd_instnorm_fwd_cpu(ctx, out, mean, rstd, inp, w, b, B, C, HW, eps);
}
static inline void lvd_instnorm_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db,
				    const float *dout, const float *inp, const float *w,
				    const float *mean, const float *rstd, int B, int C, int HW)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_instnorm_bwd_cuda(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW);
		return;
	}
#endif
	lvd_instnorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW);
}

#ifdef __cplusplus
}
#endif
#endif
