/* lib/nn/ops/conv_cpu.c — CPU conv2d forward: im2col + GEMM (the plain path), the choice
 * of the Winograd fast path, and the naive oracle. Contract in conv.h. */
#include "nn/ops/conv.h"

#include <string.h>

#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"

#define CONV_SLAB_FLOATS ((size_t)8 << 20)

/* 3x3 stride-1 pad-1 convs with at least WINO_MIN_C input channels on at least
 * WINO_MIN_HW pixels run as Winograd when ctx->cpu_fast. Measured on SD 1.5 shapes
 * (2-core EPYC, OpenBLAS, per conv): 1.4-1.7x faster than im2col + GEMM from 32x32 up,
 * 1.1-1.3x at 16x16 (whole UNet pass 1-2 % faster with it), 2-3x slower at 8x8 and
 * 4x4, where the GEMMs are too thin and the 16/9 larger transformed weights dominate;
 * conv_in (3 or 4 channels) is 2.5x slower (K = C is too short for a GEMM). */
enum { WINO_MIN_HW = 256, WINO_MIN_C = 16 };

static int conv_is_pointwise(int KH, int KW, int stride, int pt, int pl, int pb, int pr)
{
	return KH == 1 && KW == 1 && stride == 1 && !pt && !pl && !pb && !pr;
}

/* col[(c·KH + kh)·KW + kw][r·OW + ow] for output rows [oh0, oh0 + rows) (cpu_internal.h). */
void lvd_conv_im2col_rows(float *col, const float *inp, int C, int H, int W, int KH, int KW,
			int stride, int pad_t, int pad_l, int OW, int oh0, int rows)
{
	size_t ncol = (size_t)rows * OW;
	for (int c = 0; c < C; c++)
		for (int kh = 0; kh < KH; kh++)
			for (int kw = 0; kw < KW; kw++) {
				float *dst = col + ((size_t)(c * KH + kh) * KW + kw) * ncol;
				const float *src = inp + (size_t)c * H * W;
				/* valid ow range: 0 <= ow·stride - pad_l + kw < W */
				int lo = 0, hi = OW;  /* [lo, hi) */
				while (lo < OW && lo * stride - pad_l + kw < 0)
					lo++;
				while (hi > lo && (hi - 1) * stride - pad_l + kw >= W)
					hi--;
				for (int r = 0; r < rows; r++) {
					float *d = dst + (size_t)r * OW;
					int ih = (oh0 + r) * stride - pad_t + kh;
					if (ih < 0 || ih >= H) {
						memset(d, 0, sizeof(float) * OW);
						continue;
					}
					const float *s = src + (size_t)ih * W;
					for (int ow = 0; ow < lo; ow++)
						d[ow] = 0.0f;
					if (stride == 1) {
						if (hi > lo)
							memcpy(d + lo, s + lo - pad_l + kw, sizeof(float) * (hi - lo));
					} else {
						for (int ow = lo; ow < hi; ow++)
							d[ow] = s[ow * stride - pad_l + kw];
					}
					for (int ow = hi > lo ? hi : lo; ow < OW; ow++)
						d[ow] = 0.0f;
				}
			}
}

void lvd_conv2d_im2col_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			   int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			   int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_im2col_fwd");
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	LVD_ASSERT(OH > 0 && OW > 0 && out != inp);
	int P = OH * OW, K = C * KH * KW;
	float beta = b ? 1.0f : 0.0f;
	int pointwise = conv_is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
	size_t per_row = (size_t)K * OW, rows = per_row ? CONV_SLAB_FLOATS / per_row : (size_t)OH;
	rows = rows < 1 ? 1 : rows > (size_t)OH ? (size_t)OH : rows;
	size_t mk = lvd_ctx_mark(ctx);
	float *col = pointwise ? NULL : lvd_ctx_takef(ctx, per_row * rows);
	for (int n = 0; n < B; n++) {
		const float *x = inp + (size_t)n * C * H * W;
		float *y = out + (size_t)n * OC * P;
		if (b)
			for (int o = 0; o < OC; o++)
				for (int p = 0; p < P; p++)
					y[(size_t)o * P + p] = b[o];
		if (pointwise) {
			lvd_gemm_cpu(ctx, 0, 0, OC, P, C, 1.0f, w, C, x, P, beta, y, P);
			continue;
		}
		for (int oh0 = 0; oh0 < OH; oh0 += (int)rows) {
			int r = OH - oh0 < (int)rows ? OH - oh0 : (int)rows;
			lvd_conv_im2col_rows(col, x, C, H, W, KH, KW, stride, pad_t, pad_l, OW, oh0, r);
			lvd_gemm_cpu(ctx, 0, 0, OC, r * OW, K, 1.0f, w, K, col, r * OW, beta, y + (size_t)oh0 * OW, P);
		}
	}
	lvd_ctx_release(ctx, mk);
}

void lvd_conv2d_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_fwd");
	if (ctx->cpu_fast && KH == 3 && KW == 3 && stride == 1 && pad_t == 1 && pad_l == 1 && pad_b == 1 &&
	    pad_r == 1 && C >= WINO_MIN_C && (size_t)H * W >= WINO_MIN_HW) {
		lvd_conv2d_winograd_fwd(ctx, out, inp, w, b, B, C, H, W, OC, 0);
		return;
	}
	lvd_conv2d_im2col_fwd(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
}

void lvd_conv2d_fwd_w16_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w, const float *b,
			    int B, int C, int H, int W, int OC, int KH, int KW, int stride,
			    int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_fwd_w16");
	size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * KH * KW;
	size_t mk = lvd_ctx_mark(ctx);
	float *xf = lvd_ctx_takef(ctx, nx + 1), *wf = lvd_ctx_takef(ctx, nw + 1);
	uint16_t *xb = lvd_ctx_take(ctx, sizeof(uint16_t) * (nx + 1));
	lvd_f32_to_bf16_cpu(ctx, xb, inp, nx);
	lvd_bf16_to_f32_cpu(ctx, xf, xb, nx);
	lvd_bf16_to_f32_cpu(ctx, wf, w, nw);
	lvd_conv2d_fwd_cpu(ctx, out, xf, wf, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
	lvd_ctx_release(ctx, mk);
}

void lvd_conv2d_naive(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
		      int B, int C, int H, int W, int OC, int KH, int KW, int stride,
		      int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_naive");
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	for (int n = 0; n < B; n++) {
		const float *x = inp + (size_t)n * C * H * W;
		float *y = out + (size_t)n * OC * OH * OW;
		for (int o = 0; o < OC; o++)
			for (int oh = 0; oh < OH; oh++)
				for (int ow = 0; ow < OW; ow++) {
					double s = b ? b[o] : 0.0;
					for (int c = 0; c < C; c++)
						for (int kh = 0; kh < KH; kh++)
							for (int kw = 0; kw < KW; kw++) {
								int ih = oh * stride - pad_t + kh, iw = ow * stride - pad_l + kw;
								if (ih < 0 || ih >= H || iw < 0 || iw >= W)
									continue;
								s += (double)w[((size_t)(o * C + c) * KH + kh) * KW + kw] *
								     x[((size_t)c * H + ih) * W + iw];
							}
					y[((size_t)o * OH + oh) * OW + ow] = (float)s;
				}
	}
}
