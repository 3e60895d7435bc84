/* Backward of the 2-D convolution, plain CPU reference (lvd_conv2d_bwd, see conv.h). */
#include <string.h>

#include "nn/ops/conv.h"
#include "nn/ops/cpu_internal.h"
#include "nn/ops/gemm.h"

/* the adjoint of lvd_conv_im2col_rows (conv_cpu.c): dx[c][iy][ix] += col[...] */
static void col2im_rows(float *dx, const float *col, int C, int H, int W, int KH, int KW, int s,
			int pt, int pl, int OW, int oy0, int rows)
{
	const size_t ncol = (size_t)rows * OW;
	for (int c = 0; c < C; c++)
		for (int ky = 0; ky < KH; ky++)
			for (int kx = 0; kx < KW; kx++) {
				const float *d = col + ((size_t)(c * KH + ky) * KW + kx) * ncol;
				for (int r = 0; r < rows; r++) {
					int iy = (oy0 + r) * s + ky - pt;
					if (iy < 0 || iy >= H)
						continue;
					const float *dr = d + (size_t)r * OW;
					float *xr = dx + ((size_t)c * H + iy) * W;
					for (int ox = 0; ox < OW; ox++) {
						int ix = ox * s + kx - pl;
						if (ix >= 0 && ix < W)
							xr[ix] += dr[ox];
					}
				}
			}
}

void lvd_conv2d_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			const float *inp, const float *w, int B, int C, int H, int W, int OC, int KH, int KW,
			int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_bwd");
	LVD_ASSERTF(B >= 1 && C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1 && stride >= 1 &&
		    pad_t >= 0 && pad_l >= 0 && pad_b >= 0 && pad_r >= 0 &&
		    H + pad_t + pad_b >= KH && W + pad_l + pad_r >= KW,
		    "lvd_conv2d_bwd: bad shape B=%d C=%d H=%d W=%d OC=%d K=%dx%d stride %d", B, C, H, W, OC,
		    KH, KW, stride);
	const int OH = (H + pad_t + pad_b - KH) / stride + 1, OW = (W + pad_l + pad_r - KW) / stride + 1;
	const int CK = C * KH * KW;
	const size_t OHW = (size_t)OH * OW;
	if (db)
		for (int b = 0; b < B; b++)
			for (int oc = 0; oc < OC; oc++) {
				const float *dy = dout + ((size_t)b * OC + oc) * OHW;
				double s = 0;
				for (size_t p = 0; p < OHW; p++)
					s += dy[p];
				db[oc] += (float)s;
			}
	if (!dinp && !dw)
		return;
	/* output rows per block: the slab col [CK, rows·OW] stays near 4 M floats */
	size_t per_row = (size_t)CK * OW;
	int rows = (int)((size_t)(4u << 20) / per_row);
	if (rows < 1)
		rows = 1;
	if (rows > OH)
		rows = OH;
	size_t mk = lvd_ctx_mark(ctx);
	float *col = lvd_ctx_takef(ctx, per_row * rows);
	for (int b = 0; b < B; b++) {
		const float *x = inp + (size_t)b * C * H * W;
		const float *dy = dout + (size_t)b * OC * OHW;
		float *dx = dinp ? dinp + (size_t)b * C * H * W : NULL;
		for (int oy0 = 0; oy0 < OH; oy0 += rows) {
			int nr = OH - oy0 < rows ? OH - oy0 : rows;
			int ncol = nr * OW;
			const float *dyb = dy + (size_t)oy0 * OW;   /* [OC, ncol], leading dim OHW */
			if (dw) {
				lvd_conv_im2col_rows(col, x, C, H, W, KH, KW, stride, pad_t, pad_l, OW, oy0, nr);
				/* dw[OC, CK] += dyb[OC, ncol] · colᵀ */
				lvd_gemm(ctx, 0, 1, OC, CK, ncol, 1.0f, dyb, (int)OHW, col, ncol, 1.0f, dw, CK);
			}
			if (dx) {
				/* col[CK, ncol] = wᵀ[CK, OC] · dyb[OC, ncol] */
				lvd_gemm(ctx, 1, 0, CK, ncol, OC, 1.0f, w, CK, dyb, (int)OHW, 0.0f, col, ncol);
				col2im_rows(dx, col, C, H, W, KH, KW, stride, pad_t, pad_l, OW, oy0, nr);
			}
		}
	}
	lvd_ctx_release(ctx, mk);
}
