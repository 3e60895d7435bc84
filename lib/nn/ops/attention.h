/* lib/nn/ops/attention.h — inference multi-head attention with head-averaged probability
 * capture (family attention; SD's UNet/VAE/CLIP). Training attention with backward and
 * capture rows is lib/nn/ops/attn*.h.
 *
 * q [Sq, ldq], k [Sk, ldk], v [Sk, ldv]: head h uses columns [h·D, (h+1)·D) of each
 * (contiguous head split). out [Sq, H·D] (row stride H·D) = softmax(q_h k_hᵀ·scale) v_h
 * per head. causal != 0 masks keys j > i (needs Sq == Sk). probs_mean [Sq, Sk], when
 * non-NULL, receives the probabilities averaged over heads (overwritten). out must not
 * alias q, k, v.
 *
 * CPU: blocked over query rows so no [H, Sq, Sk] tensor exists: each block of at most 128
 * rows (fewer when 128·Sk exceeds 4 M floats, and at most max(16, ceil(Sq / 8)) so a
 * pool gets work) takes a [rows, Sk] score slab per thread from the ctx workspace. The
 * blocks depend on the shape only and run over ctx->pool (single-threaded GEMMs); every
 * block runs its heads in order, so out and probs_mean are bit-identical for any thread
 * count. Softmax as lvd_softmax_fwd (its
 * fast path with ctx->cpu_fast).
 *
 * CUDA (attention.cu), fp32 throughout, same results to fp32 rounding (not bitwise):
 *   probs_mean == NULL and D <= 128: one fused flash-style kernel (online softmax over
 *     blocks of 32 keys, [Sq, Sk] never materialised; a warp owns 4 query rows, a lane
 *     one key of the block for the scores and D/32 output columns for the sums; causal
 *     blocks stop at the block's last row);
 *   probs_mean != NULL (attn2, Sk = 77) or D > 128 (the VAE mid-block, D = 512; SD 1.5's
 *     8×8 level, D = 160): explicit, per chunk of query rows (all heads' [rows, Sk] scores
 *     <= 32 M floats of device workspace): scores by lvd_gemm_cuda, causal mask,
 *     lvd_softmax_fwd_cuda, the head mean accumulated in head order as on the CPU, then
 *     P·V by lvd_gemm_cuda per head. */
#ifndef LVD_NN_OPS_ATTENTION_H
#define LVD_NN_OPS_ATTENTION_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_attention_fwd_cpu(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
		       const float *k, int ldk, const float *v, int ldv,
		       int Sq, int Sk, int H, int D, float scale, int causal);
/* Plain-loop double-precision oracle with the same contract. */
void lvd_attention_naive(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
			 const float *k, int ldk, const float *v, int ldv,
			 int Sq, int Sk, int H, int D, float scale, int causal);

#if LVD_HAVE_CUDA
void lvd_attention_fwd_cuda(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
			    const float *k, int ldk, const float *v, int ldv,
			    int Sq, int Sk, int H, int D, float scale, int causal);
#endif

static inline void lvd_attention_fwd(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
				     const float *k, int ldk, const float *v, int ldv,
				     int Sq, int Sk, int H, int D, float scale, int causal)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_attention_fwd_cuda(ctx, out, probs_mean, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		return;
	}
#endif
	lvd_attention_fwd_cpu(ctx, out, probs_mean, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
}

#ifdef __cplusplus
}
#endif
#endif
