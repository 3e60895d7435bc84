/* lib/nn/ops/gate.h — gated residual connections (family "gate"): the residual adds of
 * transformer blocks, optionally scaled by tanh of a learned scalar gate (mllama's
 * gated cross-attention layers and global vision layers) and by a per-row factor
 * (mllama's full-text-row mask on the cross-attention MLP branch).
 *
 *   out[N, C] = x + k_r · branch,   k_r = g · rowscale[r],
 *   g = tanh(gate[0]) (gate NULL: 1), rowscale[N] (NULL: 1).
 *
 * Letters: N rows, C channels. CUDA twins (gate.cu): same arguments in device memory
 * (gate, rowscale included); g = tanhf on the device (within 2 ulp of the CPU's), the
 * gate gradient summed over rows in order, in double. */
#ifndef LVD_NN_OPS_GATE_H
#define LVD_NN_OPS_GATE_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

#if LVD_HAVE_CUDA
void lvd_gated_residual_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *x, const float *branch,
				 const float *gate, const float *rowscale, int N, int C);
void lvd_gated_residual_bwd_cuda(struct lvd_ctx *ctx, float *dbranch, float *dgate, const float *dout,
				 const float *branch, const float *gate, const float *rowscale, int N, int C);
void lvd_row_mask_cuda(struct lvd_ctx *ctx, float *x, const float *rowmask, int N, int C);
#define LVD_GATE_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_GATE_CUDA(call) do { } while (0)
#endif

/* out may equal x. Elementwise; split over ctx's pool, results independent of it. */
void lvd_gated_residual_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *x, const float *branch,
				const float *gate, const float *rowscale, int N, int C);
static inline void lvd_gated_residual_fwd(struct lvd_ctx *ctx, float *out, const float *x, const float *branch,
					  const float *gate, const float *rowscale, int N, int C)
{
	LVD_GATE_CUDA(lvd_gated_residual_fwd_cuda(ctx, out, x, branch, gate, rowscale, N, C));
	lvd_gated_residual_fwd_cpu(ctx, out, x, branch, gate, rowscale, N, C);
}

/* Backward, ACCUMULATING: dbranch += k_r · dout; dgate[0] += (1 − g²) · Σ_r rowscale[r] ·
 * Σ_c dout·branch (summed in double, rows in order; skipped when gate or dgate is NULL).
 * The identity path (dx = dout) is the caller's: nothing is written for x. dbranch
 * may be NULL. */
void lvd_gated_residual_bwd_cpu(struct lvd_ctx *ctx, float *dbranch, float *dgate, const float *dout,
				const float *branch, const float *gate, const float *rowscale, int N, int C);
static inline void lvd_gated_residual_bwd(struct lvd_ctx *ctx, float *dbranch, float *dgate, const float *dout,
					  const float *branch, const float *gate, const float *rowscale, int N, int C)
{
	LVD_GATE_CUDA(lvd_gated_residual_bwd_cuda(ctx, dbranch, dgate, dout, branch, gate, rowscale, N, C));
	lvd_gated_residual_bwd_cpu(ctx, dbranch, dgate, dout, branch, gate, rowscale, N, C);
}

/* Zeroes the rows r of x[N, C] with rowmask[r] == 0 (in place; other rows untouched).
 * Linear and self-adjoint: apply it to the gradient for the backward. (mllama's Meta
 * row masking of the cross-attention output.) */
void lvd_row_mask_cpu(struct lvd_ctx *ctx, float *x, const float *rowmask, int N, int C);
static inline void lvd_row_mask(struct lvd_ctx *ctx, float *x, const float *rowmask, int N, int C)
{
	LVD_GATE_CUDA(lvd_row_mask_cuda(ctx, x, rowmask, N, C));
	lvd_row_mask_cpu(ctx, x, rowmask, N, C);
}

#undef LVD_GATE_CUDA

#ifdef __cplusplus
}
#endif
#endif
