/* lib/nn/ops/resample.h — spatial resampling as linear operators with exact adjoints
 * (CPU reference).
 *
 *   lvd_resample_area_fwd / _bwd      torch F.interpolate(mode='area') =
 *                                     adaptive_avg_pool2d, any in/out sizes
 *   lvd_resample_areaw_fwd / _bwd     lvd-pack's area-weighted footprint resampling
 *                                     (lib/lavender/geometry.h: canvas and --grid)
 *   lvd_resample_bilinear_fwd / _bwd  torch F.interpolate(mode='bilinear',
 *                                     align_corners=False|True) by output size
 *   lvd_resample_nearest2x_fwd / _bwd torch F.interpolate(scale_factor=2, mode='nearest')
 *   lvd_resample_bilinear_tok_add     bilinear (align_corners=False) of token-last maps,
 *                                     accumulated: the attention-map grid of
 *                                     lib/lavender/attnmap.c (lvd_attnmap_acc_add)
 *
 * Shapes (PyTorch order): inp, dinp [B, C, H, W]; out, dout [B, C, OH, OW] (nearest2x:
 * OH = 2H, OW = 2W). Every plane (b, c) is resampled alone. Each forward is out = A·inp
 * for a fixed matrix A; each _bwd is the adjoint, dinp += Aᵀ·dout, i.e. the backward
 * of the forward, and ACCUMULATES into dinp. out must not alias inp.
 *
 * area: output (oy, ox) is the plain mean of input rows [floor(oy·H/OH),
 *   ceil((oy+1)·H/OH)) × cols [floor(ox·W/OW), ceil((ox+1)·W/OW)) (integer arithmetic).
 * areaw: source cell i of an axis covers [i·ext/n_src, (i+1)·ext/n_src); target t covers
 *   [t·step, (t+1)·step) ∩ [0, ext); t = Σ_i |overlap|·s_i / Σ_i |overlap|, separable
 *   (rows pass to fp32, then columns), targets with an empty footprint get 0 (and pass
 *   no gradient). ext_h/step_h for rows, ext_w/step_w for columns, all > 0. For lvd-pack:
 *   canvas mode ext = new_h (new_w), step = canvas_h/grid_h; --grid N: ext = new_h
 *   (new_w), step = new_h/N (new_w/N). The arithmetic is lvd_geom_resample's, so the
 *   results are bit-identical to it (tested).
 * bilinear: torch's upsample_bilinear2d index rule in fp32: align_corners = 0:
 *   src = max((dst + 0.5)·in/out - 0.5, 0); = 1: src = dst·(in-1)/(out-1) (0 when
 *   out == 1); i0 = min(floor(src), in-1), i1 = i0 + (i0 < in-1), λ = src - i0 (clamped to
 *   [0, 1]); in == out copies.
 *
 * Planes are split over ctx's pool (bit-identical results for any thread count).
 * Workspace (areaw only): the two axes' overlap weights, and per thread an [OH, W]
 * row-pass plane (fwd) or a W-double row (bwd).
 * CUDA twins: resample.cu has the forwards nearest2x, bilinear, area and
 * bilinear_tok_add, one thread per output value; nearest2x and bilinear repeat the CPU's
 * fp32 operations without FMA contraction (the CPU's bits), area sums in double.
 * resample_train.cu has areaw forward and backward: they build the axis weights on the
 * host (lvd_geom_axis_init), upload them to the device workspace and repeat the CPU's
 * double arithmetic in its order (bit-identical to the CPU op). The other functions are
 * CPU only (the _cpu functions assert a CPU context). */
#ifndef LVD_NN_OPS_RESAMPLE_H
#define LVD_NN_OPS_RESAMPLE_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_resample_area_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
			       int OH, int OW);
void lvd_resample_area_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H, int W,
			       int OH, int OW);
void lvd_resample_areaw_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
				int OH, int OW, double ext_h, double step_h, double ext_w, double step_w);
void lvd_resample_areaw_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H, int W,
				int OH, int OW, double ext_h, double step_h, double ext_w, double step_w);
void lvd_resample_bilinear_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				   int W, int OH, int OW, int align_corners);
void lvd_resample_bilinear_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
				   int W, int OH, int OW, int align_corners);
/* out[t][oy][ox] += the bilinear (align_corners = 0) sample at (oy, ox) of map t, whose
 * pixel (y, x) is inp[(y·W + x)·ld + t], for t < T <= ld: a [H·W, ld] head-mean
 * attention (tokens last) offset to its first kept token, added into a [T, OH, OW] sum.
 * The fp32 arithmetic and order of lvd_attnmap_acc_add (bit-identical, tested); maps
 * split over the pool. */
void lvd_resample_bilinear_tok_add_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int ld, int T, int H,
				       int W, int OH, int OW);
void lvd_resample_nearest2x_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				    int W);
void lvd_resample_nearest2x_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
				    int W);

#if LVD_HAVE_CUDA
void lvd_resample_area_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
				int OH, int OW);
void lvd_resample_bilinear_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				    int W, int OH, int OW, int align_corners);
void lvd_resample_nearest2x_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				     int W);
void lvd_resample_bilinear_tok_add_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int ld, int T, int H,
					int W, int OH, int OW);
void lvd_resample_areaw_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
				 int OH, int OW, double ext_h, double step_h, double ext_w, double step_w);
void lvd_resample_areaw_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H, int W,
				 int OH, int OW, double ext_h, double step_h, double ext_w, double step_w);
#define LVD_RS_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_RS_CUDA(call) do { } while (0)
#endif

static inline void lvd_resample_area_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C,
					 int H, int W, int OH, int OW)
{
	LVD_RS_CUDA(lvd_resample_area_fwd_cuda(ctx, out, inp, B, C, H, W, OH, OW));
	lvd_resample_area_fwd_cpu(ctx, out, inp, B, C, H, W, OH, OW);
}
static inline void lvd_resample_area_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C,
					 int H, int W, int OH, int OW)
{
	lvd_resample_area_bwd_cpu(ctx, dinp, dout, B, C, H, W, OH, OW);
}
static inline void lvd_resample_areaw_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C,
					  int H, int W, int OH, int OW, double ext_h, double step_h,
					  double ext_w, double step_w)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_resample_areaw_fwd_cuda(ctx, out, inp, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
		return;
	}
#endif
	lvd_resample_areaw_fwd_cpu(ctx, out, inp, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
}
static inline void lvd_resample_areaw_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C,
					  int H, int W, int OH, int OW, double ext_h, double step_h,
					  double ext_w, double step_w)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_resample_areaw_bwd_cuda(ctx, dinp, dout, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
		return;
	}
#endif
	lvd_resample_areaw_bwd_cpu(ctx, dinp, dout, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
}
static inline void lvd_resample_bilinear_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C,
					     int H, int W, int OH, int OW, int align_corners)
{
	LVD_RS_CUDA(lvd_resample_bilinear_fwd_cuda(ctx, out, inp, B, C, H, W, OH, OW, align_corners));
	lvd_resample_bilinear_fwd_cpu(ctx, out, inp, B, C, H, W, OH, OW, align_corners);
}
static inline void lvd_resample_bilinear_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, int B,
					     int C, int H, int W, int OH, int OW, int align_corners)
{
	lvd_resample_bilinear_bwd_cpu(ctx, dinp, dout, B, C, H, W, OH, OW, align_corners);
}
static inline void lvd_resample_nearest2x_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int B,
					      int C, int H, int W)
{
	LVD_RS_CUDA(lvd_resample_nearest2x_fwd_cuda(ctx, out, inp, B, C, H, W));
	lvd_resample_nearest2x_fwd_cpu(ctx, out, inp, B, C, H, W);
}
static inline void lvd_resample_nearest2x_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, int B,
					      int C, int H, int W)
{
	lvd_resample_nearest2x_bwd_cpu(ctx, dinp, dout, B, C, H, W);
}

static inline void lvd_resample_bilinear_tok_add(struct lvd_ctx *ctx, float *out, const float *inp, int ld,
						 int T, int H, int W, int OH, int OW)
{
	LVD_RS_CUDA(lvd_resample_bilinear_tok_add_cuda(ctx, out, inp, ld, T, H, W, OH, OW));
	lvd_resample_bilinear_tok_add_cpu(ctx, out, inp, ld, T, H, W, OH, OW);
}
#undef LVD_RS_CUDA

#ifdef __cplusplus
}
#endif
#endif
