/* lib/nn/ops/conv_bwd.h — backward of the 2-D convolution (CPU reference).
 *
 *   lvd_conv2d_bwd   dX, dW, db of out = conv(inp, w) + b as lvd_conv2d_fwd computes it
 *
 * Shapes (PyTorch order): inp, dinp [B, C, H, W]; w, dw [OC, C, KH, KW]; db [OC];
 * dout [B, OC, OH, OW] with OH = (H + pad_t + pad_b - KH)/stride + 1 and
 * OW = (W + pad_l + pad_r - KW)/stride + 1 (lvd_conv_out_size). Zero padding, asymmetric
 * pads allowed, one stride for both axes, no dilation or groups (what the VAE and the
 * Lavender Aligner use: 3×3 pad 1, 1×1, stride-2 downsamplers).
 * Per sample and per block of output rows the op builds the im2col slab
 * col [C·KH·KW, rows·OW] in the context workspace, then
 *   dW += dout_blk · colᵀ,   col = Wᵀ · dout_blk,   dX += col2im(col),   db += Σ dout
 * (GEMMs by lvd_sgemm for now; phase 2 of issue #10 switches to lvd_gemm(ctx, ...)).
 * ACCUMULATES into dinp, dw and db; each may be NULL (skipped). Workspace: at most
 * max(C·KH·KW·OW, ~4 M) floats (the row block shrinks to fit). No CUDA twin yet (asserts
 * a CPU context). */
#ifndef LVD_NN_OPS_CONV_BWD_H
#define LVD_NN_OPS_CONV_BWD_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_conv2d_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			const float *inp, const float *w, int B, int C, int H, int W, int OC, int KH, int KW,
			int stride, int pad_t, int pad_l, int pad_b, int pad_r);

static inline void lvd_conv2d_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				  const float *inp, const float *w, int B, int C, int H, int W, int OC,
				  int KH, int KW, int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
	lvd_conv2d_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, B, C, H, W, OC, KH, KW, stride,
			   pad_t, pad_l, pad_b, pad_r);
}

#ifdef __cplusplus
}
#endif
#endif
