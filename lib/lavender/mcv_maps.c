/* The MiniCPM map modes of the Lavender loss, CPU reference (see mcv_maps.h). */
#include "lavender/mcv_maps.h"

#include <string.h>

#include "lavender/latt.h"
#include "nn/ctx.h"
#include "nn/ops/gemm.h"
#include "nn/ops/resample.h"

int lvd_mcv_parse_map(const char *s, enum lvd_mcv_map *out, struct lvd_error *err)
{
	if (s && !strcmp(s, "rollout"))
		*out = LVD_MCV_MAP_ROLLOUT;
	else if (s && !strcmp(s, "official"))
		*out = LVD_MCV_MAP_OFFICIAL;
	else
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM map '%s' unknown (official, rollout)", s ? s : "");
	return LVD_OK;
}

int lvd_mcv_geom_check(struct lvd_mcv_geom *g, struct lvd_error *err)
{
	if ((unsigned)g->mode > LVD_MCV_MAP_OFFICIAL)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: mode %d out of range", (int)g->mode);
	if (g->heads < 1 || g->heads > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: heads %d out of range", g->heads);
	if (g->Q < 1 || g->Q > 65536)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: %d tokens per picture out of range", g->Q);
	if (g->cols < 0 || g->rows < 0 || (g->cols == 0) != (g->rows == 0) || (long long)g->cols * g->rows > 63)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: slice grid %dx%d (cols x rows) out of range",
				     g->cols, g->rows);
	if (g->n_pics != 1 + g->cols * g->rows)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "MiniCPM maps: %d pictures, the %dx%d slice grid needs 1 + %d", g->n_pics,
				     g->cols, g->rows, g->cols * g->rows);
	if (g->grid < 1 || g->grid > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: grid %d out of range [1, 4096]", g->grid);
	g->n2 = g->n_pics * g->Q;
	g->ores = 1;
	while (g->ores * g->ores < g->n2)
		g->ores++;
	if (g->mode == LVD_MCV_MAP_OFFICIAL) {
		g->views = 1;
		return LVD_OK;
	}
	if (g->Hr < 1 || g->Hr > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: %d resampler heads out of range", g->Hr);
	if (g->Lmax < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "MiniCPM maps: patch axis %d out of range", g->Lmax);
	for (int k = 0; k < g->n_pics; k++) {
		if (g->th[k] < 1 || g->tw[k] < 1 || (long long)g->th[k] * g->tw[k] > g->Lmax)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "MiniCPM maps: picture %d's %dx%d patches (th x tw) outside [1, %d patches]",
					     k, g->th[k], g->tw[k], g->Lmax);
		if (k > 1 && (g->th[k] != g->th[1] || g->tw[k] != g->tw[1]))
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "MiniCPM maps: slice %d is %dx%d patches, slice 1 %dx%d (slices are equal cells)",
					     k, g->th[k], g->tw[k], g->th[1], g->tw[1]);
	}
	g->views = g->n_pics > 1 ? 2 : 1;
	return LVD_OK;
}

/* latt's official geometry with one tile of n2 tokens: the official hook exactly */
static void official_geom(struct lvd_latt_geom *lg, const struct lvd_mcv_geom *g)
{
	memset(lg, 0, sizeof *lg);
	lg->heads = g->heads;
	lg->S = g->n2;
	lg->tile_tok = g->n2;
	lg->patches = 1;
	lg->tiles_h = lg->tiles_w = 1;
	lg->patch_px = 1;
	lg->new_h = lg->new_w = 1;
	lg->grid = g->grid;
	lg->official = 1;
	struct lvd_error e;
	LVD_ASSERTF(lvd_latt_geom_check(lg, &e) == LVD_OK, "MiniCPM official maps: %s", e.msg);
}

/* view v's patch grid: the source picture, or the slice canvas */
static void view_dims(const struct lvd_mcv_geom *g, int v, int *vh, int *vw)
{
	*vh = v == 0 ? g->th[0] : g->rows * g->th[1];
	*vw = v == 0 ? g->tw[0] : g->cols * g->tw[1];
}

/* view v [R, H, vh, vw] <-> its N×N map [R, H, N, N] over the image extent (lvd-pack's
 * --grid weights in patch units): fwd: dst (map) = resample(src (view)); else dst
 * (view) += adjoint(src (map)) */
static void view_resample(struct lvd_ctx *ctx, float *dst, const float *src, const struct lvd_mcv_geom *g, int v,
			  int R, int fwd)
{
	const int N = g->grid;
	int vh, vw;
	view_dims(g, v, &vh, &vw);
	if (fwd)
		lvd_resample_areaw_fwd(ctx, dst, src, R, g->heads, vh, vw, N, N, vh, (double)vh / N, vw, (double)vw / N);
	else
		lvd_resample_areaw_bwd(ctx, dst, src, R, g->heads, vh, vw, N, N, vh, (double)vh / N, vw, (double)vw / N);
}

/* the largest picture's patch count */
static int pic_max(const struct lvd_mcv_geom *g)
{
	int n = g->th[0] * g->tw[0];
	if (g->views > 1 && g->th[1] * g->tw[1] > n)
		n = g->th[1] * g->tw[1];
	return n;
}

/* picture k's offset in the packed R̄ (off may be NULL); returns the total */
static size_t rbar_offsets(size_t *off, const struct lvd_mcv_geom *g)
{
	size_t tot = 0;
	for (int k = 0; k < g->n_pics; k++) {
		if (off)
			off[k] = tot;
		tot += (size_t)g->Q * g->th[k] * g->tw[k];
	}
	return tot;
}

size_t lvd_mcv_rbar_floats(const struct lvd_mcv_geom *g)
{
	return rbar_offsets(NULL, g);
}

void lvd_mcv_rbar_fwd(struct lvd_ctx *ctx, float *rbar, const float *Rr, const struct lvd_mcv_geom *g)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_mcv_rbar_fwd");
	LVD_ASSERT(g->mode == LVD_MCV_MAP_ROLLOUT);
	size_t mk = lvd_ctx_mark(ctx);
	double *acc = lvd_ctx_take(ctx, (size_t)g->Q * pic_max(g) * sizeof *acc);
	const double inv = 1.0 / g->Hr;
	for (int k = 0; k < g->n_pics; k++) {
		const int n = g->th[k] * g->tw[k];
		memset(acc, 0, (size_t)g->Q * n * sizeof *acc);
		for (int hr = 0; hr < g->Hr; hr++)
			for (int q = 0; q < g->Q; q++) {
				const float *src = Rr + (((size_t)k * g->Hr + hr) * g->Q + q) * g->Lmax;
				double *a = acc + (size_t)q * n;
				for (int p = 0; p < n; p++)
					a[p] += src[p];
			}
		for (size_t i = 0; i < (size_t)g->Q * n; i++)
			rbar[i] = (float)(acc[i] * inv);
		rbar += (size_t)g->Q * n;
	}
	lvd_ctx_release(ctx, mk);
}

void lvd_mcv_rbar_bwd(float *dRr, const float *drbar, const struct lvd_mcv_geom *g)
{
	LVD_ASSERT(g->mode == LVD_MCV_MAP_ROLLOUT);
	const float inv = 1.0f / (float)g->Hr;
	for (int k = 0; k < g->n_pics; k++) {
		const int n = g->th[k] * g->tw[k];
		for (int hr = 0; hr < g->Hr; hr++)
			for (int q = 0; q < g->Q; q++) {
				float *d = dRr + (((size_t)k * g->Hr + hr) * g->Q + q) * g->Lmax;
				const float *s = drbar + (size_t)q * n;
				for (int p = 0; p < n; p++)
					d[p] += s[p] * inv;
			}
		drbar += (size_t)g->Q * n;
	}
}

/* Picture k's map Mk [H, R, th_k·tw_k] and its block of its view [R, H, vh, vw] (the
 * source view for k = 0, else the slice canvas at ((k-1)/cols, (k-1)%cols)): copied into
 * the view (to_view) or back out of it. */
static void pic_copy(float *const *view, float *Mk, const struct lvd_mcv_geom *g, int k, int R, int to_view)
{
	const int H = g->heads, th = g->th[k], tw = g->tw[k], n = th * tw;
	const int v = k > 0, y0 = k ? ((k - 1) / g->cols) * g->th[1] : 0, x0 = k ? ((k - 1) % g->cols) * g->tw[1] : 0;
	int vh, vw;
	view_dims(g, v, &vh, &vw);
	for (int h = 0; h < H; h++)
		for (int r = 0; r < R; r++) {
			float *m = Mk + ((size_t)h * R + r) * n;
			float *d = view[v] + (((size_t)r * H + h) * vh + y0) * vw + x0;
			for (int y = 0; y < th; y++) {
				if (to_view)
					memcpy(d + (size_t)y * vw, m + (size_t)y * tw, (size_t)tw * sizeof *m);
				else
					memcpy(m + (size_t)y * tw, d + (size_t)y * vw, (size_t)tw * sizeof *m);
			}
		}
}

void lvd_mcv_maps_fwd(struct lvd_ctx *ctx, float *out, const float *A, const float *rbar,
		      const struct lvd_mcv_geom *g, int R)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_mcv_maps_fwd");
	LVD_ASSERT(R >= 1 && g->views >= 1);
	if (g->mode == LVD_MCV_MAP_OFFICIAL) {
		struct lvd_latt_geom lg;
		official_geom(&lg, g);
		lvd_latt_maps_fwd(ctx, out, A, &lg, R);
		return;
	}
	LVD_ASSERT(rbar);
	const size_t S = (size_t)g->n2, RH = (size_t)R * g->heads, NN = (size_t)g->grid * g->grid;
	size_t mk = lvd_ctx_mark(ctx);
	size_t off[LVD_MCV_MAX_PICS];
	rbar_offsets(off, g);
	float *vmap[2] = { NULL, NULL };
	for (int v = 0; v < g->views; v++) {
		int vh, vw;
		view_dims(g, v, &vh, &vw);
		vmap[v] = lvd_ctx_takef(ctx, RH * vh * vw);
	}
	float *Mk = lvd_ctx_takef(ctx, RH * pic_max(g));
	for (int k = 0; k < g->n_pics; k++) {
		const int th = g->th[k], tw = g->tw[k], n = th * tw;
		/* Mk[h, r, p] = Σ_q A[h, r, kQ + q]·R̄_k[q, p]: the H·R rows of A are S apart */
		lvd_gemm(ctx, 0, 0, (int)RH, n, g->Q, 1.0f, A + (size_t)k * g->Q, (int)S, rbar + off[k], n, 0.0f, Mk, n);
		pic_copy(vmap, Mk, g, k, R, 1);
	}
	for (int v = 0; v < g->views; v++)
		view_resample(ctx, out + v * RH * NN, vmap[v], g, v, R, 1);
	lvd_ctx_release(ctx, mk);
}

void lvd_mcv_maps_bwd(struct lvd_ctx *ctx, float *dA, float *drbar, const float *dout, const float *A,
		      const float *rbar, const struct lvd_mcv_geom *g, int R)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_mcv_maps_bwd");
	LVD_ASSERT(R >= 1 && g->views >= 1);
	if (!dA && !drbar)
		return;
	if (g->mode == LVD_MCV_MAP_OFFICIAL) {
		if (dA) {
			struct lvd_latt_geom lg;
			official_geom(&lg, g);
			lvd_latt_maps_bwd(ctx, dA, dout, &lg, R);
		}
		return;
	}
	LVD_ASSERT(A && rbar);
	const int Q = g->Q;
	const size_t S = (size_t)g->n2, RH = (size_t)R * g->heads, NN = (size_t)g->grid * g->grid;
	size_t mk = lvd_ctx_mark(ctx);
	size_t off[LVD_MCV_MAX_PICS];
	rbar_offsets(off, g);
	float *dv[2] = { NULL, NULL };
	for (int v = 0; v < g->views; v++) {
		int vh, vw;
		view_dims(g, v, &vh, &vw);
		dv[v] = lvd_ctx_takef(ctx, RH * vh * vw);
		memset(dv[v], 0, RH * vh * vw * sizeof *dv[v]);
		view_resample(ctx, dv[v], dout + v * RH * NN, g, v, R, 0);
	}
	const int nmax = pic_max(g);
	float *dMk = lvd_ctx_takef(ctx, RH * nmax);
	for (int k = 0; k < g->n_pics; k++) {
		const int th = g->th[k], tw = g->tw[k], n = th * tw;
		pic_copy(dv, dMk, g, k, R, 0);
		/* dA[H·R, Q] += dM[H·R, n]·R̄_kᵀ;  dR̄_k[Q, n] += Aᵀ·dM (the H·R rows S apart) */
		if (dA)
			lvd_gemm(ctx, 0, 1, (int)RH, Q, n, 1.0f, dMk, n, rbar + off[k], n, 1.0f, dA + (size_t)k * Q, (int)S);
		if (drbar)
			lvd_gemm(ctx, 1, 0, Q, n, (int)RH, 1.0f, A + (size_t)k * Q, (int)S, dMk, n, 1.0f, drbar + off[k], n);
	}
	lvd_ctx_release(ctx, mk);
}
