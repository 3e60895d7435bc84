/* lib/nn/ops/norm_bwd.h — GroupNorm backward (CPU reference). The forward,
 * lvd_groupnorm_fwd, lives in the norm family (ops/norm.h) and saves mean/rstd.
 *
 *   lvd_groupnorm_bwd   gradients of y = (x - mean_g)·rstd_g·w[c] + b[c]
 *
 * Shapes (PyTorch order): inp, dout, dinp [B, C, HW]; w, dw, db [C]; mean, rstd [B, G]
 * as the forward saved them (biased variance, rstd = 1/sqrt(var + eps)). C must be
 * divisible by G (asserted). No fused SiLU (the forward's silu flag is inference only).
 * ACCUMULATES into dinp, dw and db; each may be NULL (skipped). w may be NULL (affine
 * off: w = 1). Per group, with n = (C/G)·HW, x̂ = (x - mean)·rstd, g = dout·w[c]:
 *   dx = rstd·(g - mean(g) - x̂·mean(g·x̂)),  dw[c] += Σ dout·x̂,  db[c] += Σ dout,
 * reductions in double. Groups are split over ctx's pool (bit-identical for any thread
 * count). No CUDA twin yet (asserts a CPU context). Nothing allocates. */
#ifndef LVD_NN_OPS_NORM_BWD_H
#define LVD_NN_OPS_NORM_BWD_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_groupnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd,
			   int B, int C, int HW, int G);

static inline void lvd_groupnorm_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db,
				     const float *dout, const float *inp, const float *w,
				     const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	lvd_groupnorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G);
}

#ifdef __cplusplus
}
#endif
#endif
