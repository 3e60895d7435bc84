/* lib/nn/ops/conv.h — 2-D convolution forward and backward (family conv).
 *
 * inp [B, C, H, W], w [OC, C, KH, KW], b [OC] (may be NULL), out [B, OC, OH, OW] with
 * OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b) (likewise OW). Zero padding, the
 * pads may differ per side (the SD VAE downsampler pads right/bottom only); one stride
 * for both axes. out must not alias inp. Working memory comes from the ctx workspace.
 *
 * Paths (CPU):
 *   lvd_conv2d_fwd          the op. Plain: im2col (chunks of output rows, <= 8 M floats)
 *                           + GEMM, a 1×1 stride-1 unpadded conv is one GEMM. With
 *                           ctx->cpu_fast a 3×3 stride-1 pad-1 conv with >= 16 input
 *                           channels on >= 256 pixels runs as Winograd (measured faster
 *                           there on SD shapes; see conv_winograd.c).
 *   lvd_conv2d_im2col_fwd   always im2col + GEMM (the plain path, also with cpu_fast).
 *   lvd_conv2d_winograd_fwd always Winograd F(m×m, 3×3) for a 3×3 stride-1 pad-1 conv:
 *                           m = 2, 4, or 0 for the tile lvd_conv2d_winograd_tile picks
 *                           (F(2×2) below 32×32 pixels, F(4×4) from there). Transforms
 *                           add and subtract up to 16 values per term: measured error up
 *                           to ~1e-6 (F(2×2)) and 2.6e-6·sqrt(C) (F(4×4)) of the output
 *                           scale. Its work plan depends only on the shape, so the result
 *                           is bit-identical for every thread count.
 *   lvd_conv2d_naive        direct 7-loop convolution in double (oracle).
 *   lvd_conv2d_fwd_w16      the op with bf16 weights (the CUDA path's storage): the input
 *                           rounded to bf16 (nearest even), products and sums in fp32,
 *                           fp32 output. CPU (the oracle): inp rounded and w widened to
 *                           fp32 in the ctx workspace, then lvd_conv2d_fwd_cpu.
 *   lvd_conv2d_bwd          dX, dW, db (conv_bwd_cpu.c), see below.
 *
 * CUDA twins (conv.cu): lvd_conv2d_fwd_cuda: with cuDNN (LVD_HAVE_CUDNN) a symmetric-pad
 * conv runs cudnnConvolutionForward in fp32 with FMA math (no TF32: results agree with
 * the CPU to fp32 rounding), the algorithm picked once per shape by cuDNN's heuristic
 * among the GEMM-family algorithms (FFT and Winograd excluded for the same reason) and
 * cached in the context with its cuDNN handle (ops/cuda_cache.cuh); asymmetric pads
 * (the VAE downsampler) and builds without cuDNN run im2col (chunks of output rows,
 * <= 32 M values, device workspace) + lvd_gemm_cuda, a 1×1 stride-1 unpadded conv one
 * GEMM per image. lvd_conv2d_fwd_w16_cuda: the same im2col, straight to bf16 (the
 * rounding done while gathering), + lvd_gemm_bf16_cuda (cuBLASLt, fp32 compute and
 * output); 1×1: the image converted to bf16, one GEMM. In both im2col paths the images
 * of a batch with fewer than 4096 output pixels share GEMMs (im2col of several whole
 * images, one [OC, images·pixels] product scattered back to NCHW with the bias; 1×1
 * convs too). The other functions here are CPU only (assert a CPU context). */
#ifndef LVD_NN_OPS_CONV_H
#define LVD_NN_OPS_CONV_H

#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output size of a convolution along one axis. */
static inline int lvd_conv_out_size(int in, int k, int stride, int pad_lo, int pad_hi)
{
	return (in + pad_lo + pad_hi - k) / stride + 1;
}

void lvd_conv2d_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
		    int B, int C, int H, int W, int OC, int KH, int KW, int stride,
		    int pad_t, int pad_l, int pad_b, int pad_r);
/* w: [OC, C, KH, KW] bf16 bits. */
void lvd_conv2d_fwd_w16_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w, const float *b,
			    int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			    int pad_t, int pad_l, int pad_b, int pad_r);
void lvd_conv2d_im2col_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			   int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			   int pad_t, int pad_l, int pad_b, int pad_r);
void lvd_conv2d_winograd_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			     int B, int C, int H, int W, int OC, int m);
/* The output tile side m (2 or 4) Winograd uses for this shape when asked for m = 0. */
int lvd_conv2d_winograd_tile(int C, int H, int W, int OC);
void lvd_conv2d_naive(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
		      int B, int C, int H, int W, int OC, int KH, int KW, int stride,
		      int pad_t, int pad_l, int pad_b, int pad_r);

#if LVD_HAVE_CUDA
void lvd_conv2d_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			 int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			 int pad_t, int pad_l, int pad_b, int pad_r);
void lvd_conv2d_fwd_w16_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w, const float *b,
			     int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			     int pad_t, int pad_l, int pad_b, int pad_r);
#endif

static inline void lvd_conv2d_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
				  const float *b, int B, int C, int H, int W, int OC, int KH, int KW, int stride,
				  int pad_t, int pad_l, int pad_b, int pad_r)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_conv2d_fwd_cuda(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
		return;
	}
#endif
	lvd_conv2d_fwd_cpu(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
}

static inline void lvd_conv2d_fwd_w16(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
				      const float *b, int B, int C, int H, int W, int OC, int KH, int KW,
				      int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_conv2d_fwd_w16_cuda(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b,
					pad_r);
		return;
	}
#endif
	lvd_conv2d_fwd_w16_cpu(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
}

/* Backward of lvd_conv2d_fwd: dinp, dw, db from dout [B, OC, OH, OW] with inp, dinp
 * [B, C, H, W]; w, dw [OC, C, KH, KW]; db [OC]; same sizes, stride and pads as the
 * forward. Per sample and per block of output rows it builds the im2col slab
 * col [C·KH·KW, rows·OW] in the ctx workspace, then
 *   dW += dout_blk · colᵀ,   col = Wᵀ · dout_blk,   dX += col2im(col),   db += Σ dout
 * (GEMMs by lvd_gemm on ctx). ACCUMULATES into dinp, dw and db; each may be NULL
 * (skipped). Plain path (cpu_fast = 0, or B = 1): the images in order, dW accumulated in
 * place. Fast path (cpu_fast, B >= 2): min(B, 16) fixed groups of consecutive images
 * run over the pool, each group with its own dW partial, the partials added to dw in
 * group order: the result is the same for every thread count (1 included) and differs
 * from the plain path only in the order of dW's sums. Workspace: a slab of at most
 * max(C·KH·KW·OW, ~4 M) floats (the row block shrinks to fit) per thread, plus
 * min(B, 16)·OC·C·KH·KW floats of partials on the fast path. */
void lvd_conv2d_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			const float *inp, const float *w, int B, int C, int H, int W, int OC, int KH, int KW,
			int stride, int pad_t, int pad_l, int pad_b, int pad_r);

#if LVD_HAVE_CUDA
/* CUDA twin of the backward (conv_bwd.cu): the plain path's algorithm with cuBLASLt
 * GEMMs, a gather col2im and double dbias sums; deterministic. */
void lvd_conv2d_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			 const float *inp, const float *w, int B, int C, int H, int W, int OC, int KH, int KW,
			 int stride, int pad_t, int pad_l, int pad_b, int pad_r);
#endif

static inline void lvd_conv2d_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				  const float *inp, const float *w, int B, int C, int H, int W, int OC,
				  int KH, int KW, int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_conv2d_bwd_cuda(ctx, dinp, dw, db, dout, inp, w, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b,
				    pad_r);
		return;
	}
#endif
	lvd_conv2d_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, B, C, H, W, OC, KH, KW, stride,
			   pad_t, pad_l, pad_b, pad_r);
}

#ifdef __cplusplus
}
#endif
#endif
