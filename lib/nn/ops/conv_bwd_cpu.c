/* Backward of the 2-D convolution (lvd_conv2d_bwd, see conv.h): the plain path (images in
 * order) and, with ctx->cpu_fast and B >= 2, the fast path (fixed image groups over the pool). */
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

/* dX and dW of images [b0, b1) into dinp and dw (both accumulated; either NULL), with the
 * slab `col` of per_row·rows floats. */
struct cbwd {
	float *dinp, *dw;
	const float *dout, *inp, *w;
	int C, H, W, OC, KH, KW, stride, pad_t, pad_l, OH, OW, rows;
	float *cols;     /* parallel path: one slab per thread */
	float *parts;    /* parallel path: one dW partial per group, or NULL */
	size_t slab;     /* floats per slab */
	int B, groups;
};

static void cbwd_images(struct lvd_ctx *ctx, const struct cbwd *j, float *col, float *dw, int b0, int b1)
{
	const int CK = j->C * j->KH * j->KW;
	const size_t OHW = (size_t)j->OH * j->OW, CHW = (size_t)j->C * j->H * j->W;
	for (int b = b0; b < b1; b++) {
		const float *x = j->inp + (size_t)b * CHW;
		const float *dy = j->dout + (size_t)b * j->OC * OHW;
		float *dx = j->dinp ? j->dinp + (size_t)b * CHW : NULL;
		for (int oy0 = 0; oy0 < j->OH; oy0 += j->rows) {
			int nr = j->OH - oy0 < j->rows ? j->OH - oy0 : j->rows;
			int ncol = nr * j->OW;
			const float *dyb = dy + (size_t)oy0 * j->OW;   /* [OC, ncol], leading dim OHW */
			if (dw) {
				lvd_conv_im2col_rows(col, x, j->C, j->H, j->W, j->KH, j->KW, j->stride, j->pad_t,
						     j->pad_l, j->OW, oy0, nr);
				/* dw[OC, CK] += dyb[OC, ncol] · colᵀ */
				lvd_gemm(ctx, 0, 1, j->OC, CK, ncol, 1.0f, dyb, (int)OHW, col, ncol, 1.0f, dw, CK);
			}
			if (dx) {
				/* col[CK, ncol] = wᵀ[CK, OC] · dyb[OC, ncol] */
				lvd_gemm(ctx, 1, 0, CK, ncol, j->OC, 1.0f, j->w, CK, dyb, (int)OHW, 0.0f, col, ncol);
				col2im_rows(dx, col, j->C, j->H, j->W, j->KH, j->KW, j->stride, j->pad_t, j->pad_l,
					    j->OW, oy0, nr);
			}
		}
	}
}

struct cbwd_run {
	struct lvd_ctx *ctx;
	const struct cbwd *j;
};

static int cbwd_groups(void *arg, size_t g0, size_t g1, int tid)
{
	const struct cbwd_run *r = arg;
	const struct cbwd *j = r->j;
	const size_t wsz = (size_t)j->OC * j->C * j->KH * j->KW;
	for (size_t g = g0; g < g1; g++) {
		int b0 = (int)(g * (size_t)j->B / (size_t)j->groups);
		int b1 = (int)((g + 1) * (size_t)j->B / (size_t)j->groups);
		float *part = j->parts ? j->parts + g * wsz : NULL;
		cbwd_images(r->ctx, j, j->cols + (size_t)tid * j->slab, part, b0, b1);
	}
	return 0;
}

/* Groups of the parallel path: fixed by B alone, so the result does not depend on the
 * thread count. */
enum { CBWD_MAX_GROUPS = 16 };

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
	struct cbwd j = { dinp, dw, dout, inp, w, C, H, W, OC, KH, KW, stride, pad_t, pad_l, OH, OW, rows,
			  NULL, NULL, per_row * (size_t)rows, B, 1 };
	size_t mk = lvd_ctx_mark(ctx);
	if (!ctx->cpu_fast || B < 2) {
		/* plain path: images in order, dW accumulated in place */
		cbwd_images(ctx, &j, lvd_ctx_takef(ctx, j.slab), dw, 0, B);
		lvd_ctx_release(ctx, mk);
		return;
	}
	/* fast path: fixed groups of images over the pool, each with its own dW partial,
	 * summed in group order (the same for every thread count, 1 included) */
	const int T = lvd_ops_threads(ctx);
	j.groups = B < CBWD_MAX_GROUPS ? B : CBWD_MAX_GROUPS;
	const size_t wsz = (size_t)OC * CK;
	j.cols = lvd_ctx_takef(ctx, j.slab * (size_t)T);
	if (dw) {
		j.parts = lvd_ctx_takef(ctx, wsz * (size_t)j.groups);
		memset(j.parts, 0, wsz * (size_t)j.groups * sizeof *j.parts);
	}
	struct cbwd_run run = { ctx, &j };
	lvd_ops_run(ctx, (size_t)j.groups, cbwd_groups, &run);
	if (dw)
		for (int g = 0; g < j.groups; g++) {
			const float *pg = j.parts + (size_t)g * wsz;
			for (size_t i = 0; i < wsz; i++)
				dw[i] += pg[i];
		}
	lvd_ctx_release(ctx, mk);
}
