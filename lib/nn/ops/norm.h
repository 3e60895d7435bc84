/* lib/nn/ops/norm.h — normalisations (family norm): LayerNorm and RMSNorm over the last
 * dim with backward, GroupNorm forward (+ fused SiLU) and backward. InstanceNorm2d is its
 * own family (ops/instnorm.h).
 *
 * Statistics are computed in double (biased variance) and saved as float when the
 * pointers are non-NULL. out may equal inp in the forwards. Backwards ACCUMULATE into
 * dinp, dw, db (each may be NULL). Rows (LayerNorm) and groups (GroupNorm) are spread
 * over ctx->pool when large; each is computed whole by one thread, so results do not
 * depend on the thread count. Nothing allocates.
 * CUDA twins (norm.cu, LVD_HAVE_CUDA) take the same arguments in device memory, queue on
 * ctx->stream and reduce in double as the CPU code does.
 * Dimension letters: N rows, C channels, B batch, G groups, HW pixels. */
#ifndef LVD_NN_OPS_NORM_H
#define LVD_NN_OPS_NORM_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[N, C] = (inp - mean) / sqrt(var + eps) · w + b (w, b may be NULL: 1, 0);
 * mean/rstd [N] saved when non-NULL. */
void lvd_layernorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			   const float *w, const float *b, int N, int C, float eps);
/* Needs the saved mean and rstd; w may be NULL (1). */
void lvd_layernorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd, int N, int C);
/* out[N, C] = w · x · rsqrt(mean(x²) + eps) (Llama/HF); rstd [N] saved when non-NULL. */
void lvd_rmsnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp, const float *w,
			 int N, int C, float eps);
void lvd_rmsnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout, const float *inp,
			 const float *w, const float *rstd, int N, int C);
/* GroupNorm: inp [B, C, HW], G groups of C/G channels, statistics over (C/G)·HW, then the
 * per-channel affine w, b [C] (NULL: 1, 0); silu != 0 applies SiLU to the result (fused,
 * forward only). mean/rstd [B, G] saved when non-NULL. C % G == 0 (asserted). With
 * ctx->cpu_fast and AVX2 the sums and the affine+SiLU run vectorised (the SiLU through
 * the vectorised exp). */
void lvd_groupnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			   const float *w, const float *b, int B, int C, int HW, int G, float eps, int silu);
/* GroupNorm backward (no SiLU: the forward's silu flag is inference only). Shapes: inp,
 * dout, dinp [B, C, HW]; w, dw, db [C]; mean, rstd [B, G] as the forward saved them.
 * ACCUMULATES into dinp, dw, db (each may be NULL); w may be NULL (1). Per group, with
 * n = (C/G)·HW, x̂ = (x - mean)·rstd, g = dout·w[c]:
 *   dx = rstd·(g - mean(g) - x̂·mean(g·x̂)),  dw[c] += Σ dout·x̂,  db[c] += Σ dout,
 * reductions in double. Groups are split over ctx->pool (bit-identical for any thread
 * count). */
void lvd_groupnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd,
			   int B, int C, int HW, int G);

#if LVD_HAVE_CUDA
void lvd_layernorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			    const float *w, const float *b, int N, int C, float eps);
void lvd_layernorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			    const float *inp, const float *w, const float *mean, const float *rstd, int N, int C);
void lvd_rmsnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp, const float *w,
			  int N, int C, float eps);
void lvd_rmsnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout, const float *inp,
			  const float *w, const float *rstd, int N, int C);
void lvd_groupnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			    const float *w, const float *b, int B, int C, int HW, int G, float eps, int silu);
void lvd_groupnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			    const float *inp, const float *w, const float *mean, const float *rstd, int B, int C,
			    int HW, int G);
#define LVD_NORM_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_NORM_CUDA(call) do { } while (0)
#endif

static inline void lvd_layernorm_fwd(struct lvd_ctx *ctx, float *out, float *mean, float *rstd,
				     const float *inp, const float *w, const float *b, int N, int C, float eps)
{
	LVD_NORM_CUDA(lvd_layernorm_fwd_cuda(ctx, out, mean, rstd, inp, w, b, N, C, eps));
	lvd_layernorm_fwd_cpu(ctx, out, mean, rstd, inp, w, b, N, C, eps);
}
static inline void lvd_layernorm_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db,
				     const float *dout, const float *inp, const float *w, const float *mean,
				     const float *rstd, int N, int C)
{
	LVD_NORM_CUDA(lvd_layernorm_bwd_cuda(ctx, dinp, dw, db, dout, inp, w, mean, rstd, N, C));
	lvd_layernorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}
static inline void lvd_rmsnorm_fwd(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp,
				   const float *w, int N, int C, float eps)
{
	LVD_NORM_CUDA(lvd_rmsnorm_fwd_cuda(ctx, out, rstd, inp, w, N, C, eps));
	lvd_rmsnorm_fwd_cpu(ctx, out, rstd, inp, w, N, C, eps);
}
static inline void lvd_rmsnorm_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout,
				   const float *inp, const float *w, const float *rstd, int N, int C)
{
	LVD_NORM_CUDA(lvd_rmsnorm_bwd_cuda(ctx, dinp, dw, dout, inp, w, rstd, N, C));
	lvd_rmsnorm_bwd_cpu(ctx, dinp, dw, dout, inp, w, rstd, N, C);
}
static inline void lvd_groupnorm_fwd(struct lvd_ctx *ctx, float *out, float *mean, float *rstd,
				     const float *inp, const float *w, const float *b, int B, int C, int HW,
				     int G, float eps, int silu)
{
	LVD_NORM_CUDA(lvd_groupnorm_fwd_cuda(ctx, out, mean, rstd, inp, w, b, B, C, HW, G, eps, silu));
	lvd_groupnorm_fwd_cpu(ctx, out, mean, rstd, inp, w, b, B, C, HW, G, eps, silu);
}
static inline void lvd_groupnorm_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db,
				     const float *dout, const float *inp, const float *w,
				     const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	LVD_NORM_CUDA(lvd_groupnorm_bwd_cuda(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G));
	lvd_groupnorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G);
}
#undef LVD_NORM_CUDA

#ifdef __cplusplus
}
#endif
#endif
