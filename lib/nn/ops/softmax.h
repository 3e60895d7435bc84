/* lib/nn/ops/softmax.h — row softmax and its backward (family softmax).
 *
 * x [N, M] row-major, softmax over each row of M: max-subtracted, fp32 sum. Entries of
 * -inf give exactly 0 (a row that is entirely -inf gives NaN, as PyTorch). With
 * ctx->cpu_fast and AVX2 the CPU path uses the vectorised exp (about 1 ulp, exp_avx2.h);
 * otherwise expf. Nothing allocates. */
#ifndef LVD_NN_OPS_SOFTMAX_H
#define LVD_NN_OPS_SOFTMAX_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[N, M] = softmax(inp) per row; out may equal inp. */
void lvd_softmax_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M);
/* dinp += out ⊙ (dout − Σ_row dout ⊙ out) (sum in double): ACCUMULATES. dinp must not
 * alias dout or out. */
void lvd_softmax_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out, int N, int M);

#if LVD_HAVE_CUDA
void lvd_softmax_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M);
void lvd_softmax_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out, int N, int M);
#endif

static inline void lvd_softmax_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_softmax_fwd_cuda(ctx, out, inp, N, M);
		return;
	}
#endif
	lvd_softmax_fwd_cpu(ctx, out, inp, N, M);
}

static inline void lvd_softmax_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out,
				   int N, int M)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_softmax_bwd_cuda(ctx, dinp, dout, out, N, M);
		return;
	}
#endif
	lvd_softmax_bwd_cpu(ctx, dinp, dout, out, N, M);
}

#ifdef __cplusplus
}
#endif
#endif
