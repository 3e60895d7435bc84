/* Resampling operators and their adjoints, plain CPU reference (see resample.h). */
#include <math.h>
#include <string.h>

#include "nn/ops/cpu_internal.h"
#include "nn/ops/resample.h"

#define CHECK_SHAPE(op, B, C, H, W, OH, OW) \
	LVD_ASSERTF((B) >= 1 && (C) >= 1 && (H) >= 1 && (W) >= 1 && (OH) >= 1 && (OW) >= 1, \
		    "%s: bad shape B=%d C=%d %dx%d -> %dx%d", op, B, C, H, W, OH, OW)

/* Every op works plane by plane ((b, c) pairs); planes are independent, so they are split
 * over ctx's pool by lvd_ops_run (inline with one thread or inside a parallel_for).
 * Each plane is computed the same way whatever the split: results are bit-identical for
 * every thread count. */
struct axis;
struct rs_args {
	void (*plane)(const struct rs_args *a, size_t pl, int tid);
	float *out;
	const float *inp;
	int H, W, OH, OW, align_corners;
	const struct axis *ay, *ax;   /* areaw */
	float *tmp;                   /* areaw fwd: [threads][OH·W] */
	double *dt;                   /* areaw bwd: [threads][W] */
};

static int rs_chunk(void *u, size_t begin, size_t end, int tid)
{
	const struct rs_args *a = u;
	for (size_t pl = begin; pl < end; pl++)
		a->plane(a, pl, tid);
	return 0;
}

/* The whole body of the ops that need no workspace: checks, then plane by plane. */
static void rs_go(struct lvd_ctx *ctx, const char *op, void (*plane)(const struct rs_args *, size_t, int),
		  float *out, const float *inp, int B, int C, int H, int W, int OH, int OW, int align_corners)
{
	LVD_CTX_NEED_CPU(ctx, op);
	CHECK_SHAPE(op, B, C, H, W, OH, OW);
	struct rs_args a = {.plane = plane, .out = out, .inp = inp, .H = H, .W = W, .OH = OH, .OW = OW,
			    .align_corners = align_corners};
	lvd_ops_run(ctx, (size_t)B * C, rs_chunk, &a);
}

/* ---- area (adaptive average pooling) ------------------------------------------- */

static int area_lo(int o, int in, int out) { return (int)(((long long)o * in) / out); }
static int area_hi(int o, int in, int out) { return (int)(((long long)(o + 1) * in + out - 1) / out); }

static void area_fwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	const float *x = a->inp + pl * H * W;
	float *y = a->out + pl * OH * OW;
	for (int oy = 0; oy < OH; oy++) {
		int y0 = area_lo(oy, H, OH), y1 = area_hi(oy, H, OH);
		for (int ox = 0; ox < OW; ox++) {
			int x0 = area_lo(ox, W, OW), x1 = area_hi(ox, W, OW);
			double s = 0;
			for (int iy = y0; iy < y1; iy++)
				for (int ix = x0; ix < x1; ix++)
					s += x[(size_t)iy * W + ix];
			y[(size_t)oy * OW + ox] = (float)(s / ((double)(y1 - y0) * (x1 - x0)));
		}
	}
}

void lvd_resample_area_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
			       int OH, int OW)
{
	rs_go(ctx, "lvd_resample_area_fwd", area_fwd_plane, out, inp, B, C, H, W, OH, OW, 0);
}

static void area_bwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	float *dx = a->out + pl * H * W;
	const float *dy = a->inp + pl * OH * OW;
	for (int oy = 0; oy < OH; oy++) {
		int y0 = area_lo(oy, H, OH), y1 = area_hi(oy, H, OH);
		for (int ox = 0; ox < OW; ox++) {
			int x0 = area_lo(ox, W, OW), x1 = area_hi(ox, W, OW);
			float g = (float)(dy[(size_t)oy * OW + ox] / ((double)(y1 - y0) * (x1 - x0)));
			for (int iy = y0; iy < y1; iy++)
				for (int ix = x0; ix < x1; ix++)
					dx[(size_t)iy * W + ix] += g;
		}
	}
}

void lvd_resample_area_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H, int W,
			       int OH, int OW)
{
	rs_go(ctx, "lvd_resample_area_bwd", area_bwd_plane, dinp, dout, B, C, H, W, OH, OW, 0);
}

/* ---- area-weighted footprints (lvd-pack) ----------------------------------------- */

/* One axis's overlap weights, computed exactly as lvd_geom_axis_init does (same ranges,
 * same products, same summation order) so the results match lvd_geom_resample bit for
 * bit. Target t reads src[first[t] + k]·w[off[t] + k] for k < cnt[t]; tot[t] = Σ w. */
struct axis {
	int *first, *cnt, *off;
	double *w, *tot;
};

static void axis_range(int t, int n_src, double ext, double step, int *i0, int *i1)
{
	const double cell = ext / n_src;
	double a = t * step, b = (t + 1) * step;
	if (b > ext)
		b = ext;
	if (!(a < b)) {
		*i0 = *i1 = 0;
		return;
	}
	int lo = (int)floor(a / cell) - 1, hi = (int)ceil(b / cell) + 1;
	*i0 = lo < 0 ? 0 : lo;
	*i1 = hi > n_src ? n_src : hi;
}

static void axis_build(struct lvd_ctx *ctx, struct axis *ax, int n_src, int n_dst, double ext, double step)
{
	ax->first = lvd_ctx_take(ctx, (size_t)n_dst * sizeof(int));
	ax->cnt = lvd_ctx_take(ctx, (size_t)n_dst * sizeof(int));
	ax->off = lvd_ctx_take(ctx, (size_t)n_dst * sizeof(int));
	ax->tot = lvd_ctx_take(ctx, (size_t)n_dst * sizeof(double));
	size_t nw = 0;
	for (int t = 0; t < n_dst; t++) {
		int i0, i1;
		axis_range(t, n_src, ext, step, &i0, &i1);
		ax->first[t] = i0;
		ax->cnt[t] = i1 - i0;
		ax->off[t] = (int)nw;
		nw += (size_t)(i1 - i0);
	}
	ax->w = lvd_ctx_take(ctx, (nw ? nw : 1) * sizeof(double));
	for (int t = 0; t < n_dst; t++) {
		double a = t * step, b = (t + 1) * step, tot = 0;
		if (b > ext)
			b = ext;
		for (int k = 0; k < ax->cnt[t]; k++) {
			int i = ax->first[t] + k;
			double c0 = ext * i / n_src, c1 = ext * (i + 1) / n_src;
			double lo = a > c0 ? a : c0, hi = b < c1 ? b : c1;
			double w = hi > lo ? hi - lo : 0;
			ax->w[ax->off[t] + k] = w;
			tot += w;
		}
		ax->tot[t] = tot;
	}
}

#define CHECK_AREAW(op) \
	LVD_ASSERTF(ext_h > 0 && step_h > 0 && ext_w > 0 && step_w > 0, \
		    "%s: bad footprint (ext %g/%g, step %g/%g)", op, ext_h, ext_w, step_h, step_w)

static void areaw_fwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	const struct axis *ay = a->ay, *ax = a->ax;
	const float *src = a->inp + pl * H * W;
	float *dst = a->out + pl * OH * OW;
	float *tmp = a->tmp + (size_t)tid * OH * W;
	for (int y = 0; y < OH; y++) {      /* rows: tmp[y][j] = Σ_i wy·src[i][j] / Σ wy */
		float *t = tmp + (size_t)y * W;
		double tot = ay->tot[y];
		if (!(tot > 0)) {
			memset(t, 0, (size_t)W * sizeof *t);
			continue;
		}
		const double *w = ay->w + ay->off[y];
		for (int j = 0; j < W; j++) {
			double acc = 0;
			for (int k = 0; k < ay->cnt[y]; k++)
				acc += w[k] * src[(size_t)(ay->first[y] + k) * W + j];
			t[j] = (float)(acc / tot);
		}
	}
	for (int y = 0; y < OH; y++) {      /* columns */
		const float *t = tmp + (size_t)y * W;
		float *d = dst + (size_t)y * OW;
		int rowok = ay->tot[y] > 0;
		for (int x = 0; x < OW; x++) {
			double tot = ax->tot[x];
			if (!rowok || !(tot > 0)) {
				d[x] = 0;
				continue;
			}
			const double *w = ax->w + ax->off[x];
			const float *s = t + ax->first[x];
			double acc = 0;
			for (int k = 0; k < ax->cnt[x]; k++)
				acc += w[k] * s[k];
			d[x] = (float)(acc / tot);
		}
	}
}

static void areaw_bwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	const struct axis *ay = a->ay, *ax = a->ax;
	float *dsrc = a->out + pl * H * W;
	const float *dy = a->inp + pl * OH * OW;
	double *dt = a->dt + (size_t)tid * W;   /* one row of dtmp */
	for (int y = 0; y < OH; y++) {
		if (!(ay->tot[y] > 0))
			continue;
		/* dtmp[y][j] = Σ_x (wx/totx)·dout[y][x] */
		for (int j = 0; j < W; j++)
			dt[j] = 0;
		for (int x = 0; x < OW; x++) {
			double tot = ax->tot[x];
			if (!(tot > 0))
				continue;
			double g = dy[(size_t)y * OW + x] / tot;
			const double *w = ax->w + ax->off[x];
			for (int k = 0; k < ax->cnt[x]; k++)
				dt[ax->first[x] + k] += w[k] * g;
		}
		/* dsrc[i][j] += (wy/toty)·dtmp[y][j] */
		const double *w = ay->w + ay->off[y];
		for (int k = 0; k < ay->cnt[y]; k++) {
			double wk = w[k] / ay->tot[y];
			if (wk == 0)
				continue;
			float *d = dsrc + (size_t)(ay->first[y] + k) * W;
			for (int j = 0; j < W; j++)
				d[j] += (float)(wk * dt[j]);
		}
	}
}

/* Both directions: the two axes' weights in the workspace, then plane by plane; the
 * forward needs an [OH, W] float row-pass buffer per thread, the backward a W-long
 * double row. */
static void areaw_run(struct lvd_ctx *ctx, const char *op, int bwd, float *out, const float *inp, int B, int C,
		      int H, int W, int OH, int OW, double ext_h, double step_h, double ext_w, double step_w)
{
	LVD_CTX_NEED_CPU(ctx, op);
	CHECK_SHAPE(op, B, C, H, W, OH, OW);
	CHECK_AREAW(op);
	size_t mk = lvd_ctx_mark(ctx);
	struct axis ay, ax;
	axis_build(ctx, &ay, H, OH, ext_h, step_h);
	axis_build(ctx, &ax, W, OW, ext_w, step_w);
	struct rs_args a = {.plane = bwd ? areaw_bwd_plane : areaw_fwd_plane, .out = out, .inp = inp, .H = H,
			    .W = W, .OH = OH, .OW = OW, .ay = &ay, .ax = &ax};
	if (bwd)
		a.dt = lvd_ctx_take(ctx, (size_t)lvd_ops_threads(ctx) * W * sizeof(double));
	else
		a.tmp = lvd_ctx_takef(ctx, (size_t)lvd_ops_threads(ctx) * OH * W);
	lvd_ops_run(ctx, (size_t)B * C, rs_chunk, &a);
	lvd_ctx_release(ctx, mk);
}

void lvd_resample_areaw_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W,
				int OH, int OW, double ext_h, double step_h, double ext_w, double step_w)
{
	areaw_run(ctx, "lvd_resample_areaw_fwd", 0, out, inp, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
}

void lvd_resample_areaw_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H, int W,
				int OH, int OW, double ext_h, double step_h, double ext_w, double step_w)
{
	areaw_run(ctx, "lvd_resample_areaw_bwd", 1, dinp, dout, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
}

/* ---- bilinear (torch upsample_bilinear2d) ----------------------------------------- */

/* source indices and weights of output index o along one axis (fp32, as torch) */
static void bil_index(int o, int in, int out, int align_corners, int *i0, int *i1, float *l0, float *l1)
{
	if (in == out) {
		*i0 = *i1 = o;
		*l0 = 1.0f;
		*l1 = 0.0f;
		return;
	}
	float src;
	if (align_corners) {
		float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
		src = scale * (float)o;
	} else {
		float scale = (float)in / (float)out;
		src = scale * ((float)o + 0.5f) - 0.5f;
		if (src < 0.0f)
			src = 0.0f;
	}
	int i = (int)floorf(src);
	if (i > in - 1)
		i = in - 1;
	float l = src - (float)i;
	l = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
	*i0 = i;
	*i1 = i + (i < in - 1 ? 1 : 0);
	*l1 = l;
	*l0 = 1.0f - l;
}


static void bil_fwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	const float *x = a->inp + pl * H * W;
	float *y = a->out + pl * OH * OW;
	for (int oy = 0; oy < OH; oy++) {
		int h0, h1;
		float a0, a1;
		bil_index(oy, H, OH, a->align_corners, &h0, &h1, &a0, &a1);
		const float *r0 = x + (size_t)h0 * W, *r1 = x + (size_t)h1 * W;
		for (int ox = 0; ox < OW; ox++) {
			int w0, w1;
			float b0, b1;
			bil_index(ox, W, OW, a->align_corners, &w0, &w1, &b0, &b1);
			y[(size_t)oy * OW + ox] = a0 * (b0 * r0[w0] + b1 * r0[w1]) + a1 * (b0 * r1[w0] + b1 * r1[w1]);
		}
	}
}

void lvd_resample_bilinear_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				   int W, int OH, int OW, int align_corners)
{
	rs_go(ctx, "lvd_resample_bilinear_fwd", bil_fwd_plane, out, inp, B, C, H, W, OH, OW, align_corners);
}

static void bil_bwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OH = a->OH, OW = a->OW;
	float *dx = a->out + pl * H * W;
	const float *dy = a->inp + pl * OH * OW;
	for (int oy = 0; oy < OH; oy++) {
		int h0, h1;
		float a0, a1;
		bil_index(oy, H, OH, a->align_corners, &h0, &h1, &a0, &a1);
		float *r0 = dx + (size_t)h0 * W, *r1 = dx + (size_t)h1 * W;
		for (int ox = 0; ox < OW; ox++) {
			int w0, w1;
			float b0, b1;
			bil_index(ox, W, OW, a->align_corners, &w0, &w1, &b0, &b1);
			float g = dy[(size_t)oy * OW + ox];
			r0[w0] += a0 * b0 * g;
			r0[w1] += a0 * b1 * g;
			r1[w0] += a1 * b0 * g;
			r1[w1] += a1 * b1 * g;
		}
	}
}

void lvd_resample_bilinear_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
				   int W, int OH, int OW, int align_corners)
{
	rs_go(ctx, "lvd_resample_bilinear_bwd", bil_bwd_plane, dinp, dout, B, C, H, W, OH, OW, align_corners);
}

/* ---- bilinear of token-last maps, accumulated (attention-map grids) --------------- */

struct tok_args {
	float *out;
	const float *inp;
	int ld, H, W, OH, OW;
};

static int tok_add_chunk(void *u, size_t begin, size_t end, int tid)
{
	const struct tok_args *a = u;
	const int W = a->W, OW = a->OW;
	const size_t plane = (size_t)a->OH * OW, ld = (size_t)a->ld;
	for (size_t t = begin; t < end; t++) {
		const float *m = a->inp + t;
		float *o = a->out + t * plane;
		for (int y = 0; y < a->OH; y++) {
			int y0, y1;
			float a0, a1;
			bil_index(y, a->H, a->OH, 0, &y0, &y1, &a0, &a1);
			for (int x = 0; x < OW; x++) {
				int x0, x1;
				float b0, b1;
				bil_index(x, W, OW, 0, &x0, &x1, &b0, &b1);
				float top = b0 * m[((size_t)y0 * W + x0) * ld] + b1 * m[((size_t)y0 * W + x1) * ld];
				float bot = b0 * m[((size_t)y1 * W + x0) * ld] + b1 * m[((size_t)y1 * W + x1) * ld];
				o[(size_t)y * OW + x] += a0 * top + a1 * bot;
			}
		}
	}
	return 0;
}

void lvd_resample_bilinear_tok_add_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int ld, int T, int H,
				       int W, int OH, int OW)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_resample_bilinear_tok_add");
	CHECK_SHAPE("lvd_resample_bilinear_tok_add", 1, T, H, W, OH, OW);
	LVD_ASSERTF(ld >= T, "lvd_resample_bilinear_tok_add: ld %d < T %d", ld, T);
	struct tok_args a = {.out = out, .inp = inp, .ld = ld, .H = H, .W = W, .OH = OH, .OW = OW};
	lvd_ops_run(ctx, (size_t)T, tok_add_chunk, &a);
}

/* ---- nearest ×2 ------------------------------------------------------------------ */

static void near_fwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OW = 2 * W;
	const float *x = a->inp + pl * H * W;
	float *y = a->out + pl * 4 * H * W;
	for (int oy = 0; oy < 2 * H; oy++) {
		const float *r = x + (size_t)(oy / 2) * W;
		float *d = y + (size_t)oy * OW;
		for (int ix = 0; ix < W; ix++)
			d[2 * ix] = d[2 * ix + 1] = r[ix];
	}
}

void lvd_resample_nearest2x_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
				    int W)
{
	rs_go(ctx, "lvd_resample_nearest2x_fwd", near_fwd_plane, out, inp, B, C, H, W, 2 * H, 2 * W, 0);
}

static void near_bwd_plane(const struct rs_args *a, size_t pl, int tid)
{
	const int H = a->H, W = a->W, OW = 2 * W;
	float *dx = a->out + pl * H * W;
	const float *dy = a->inp + pl * 4 * H * W;
	for (int iy = 0; iy < H; iy++)
		for (int ix = 0; ix < W; ix++) {
			const float *g = dy + (size_t)(2 * iy) * OW + 2 * ix;
			dx[(size_t)iy * W + ix] += (g[0] + g[1]) + (g[OW] + g[OW + 1]);
		}
}

void lvd_resample_nearest2x_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
				    int W)
{
	rs_go(ctx, "lvd_resample_nearest2x_bwd", near_bwd_plane, dinp, dout, B, C, H, W, 2 * H, 2 * W, 0);
}
