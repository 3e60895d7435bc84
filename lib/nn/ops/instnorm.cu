// lib/nn/ops/instnorm.cu — CUDA twins of family instnorm (ops/instnorm.h): InstanceNorm2d
// is GroupNorm with one channel per group (G = C), so both directions are the norm
// family's GroupNorm twins (norm.cu: statistics in double over split chunks, merged
// exactly; y = x·a + (b − mean·a) with a = rstd·w, the same value as the CPU's
// (x − mean)·(rstd·w) + b up to fp32 rounding).
#include "nn/ops/instnorm.h"
#include "nn/ops/norm.h"

extern "C" void lvd_instnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
				      const float *w, const float *b, int B, int C, int HW, float eps)
{
	LVD_ASSERTF(B >= 1 && C >= 1 && HW >= 1, "lvd_instnorm_fwd: bad shape B=%d C=%d HW=%d", B, C, HW);
	lvd_groupnorm_fwd_cuda(ctx, out, mean, rstd, inp, w, b, B, C, HW, C, eps, 0);
}

extern "C" void lvd_instnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				      const float *inp, const float *w, const float *mean, const float *rstd, int B, int C,
				      int HW)
{
	lvd_groupnorm_bwd_cuda(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, C);
}
