/* The Lavender attention loss over plain buffers, CPU reference (see latt.h). */
#include "lavender/latt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"
#include "lavender/packrec.h"
#include "nn/ctx.h"
#include "nn/ops/resample.h"

/* ---- geometry ---------------------------------------------------------------------- */

/* the MiniCPM kind: heads, S and grid, then the picture layout (mcv_maps.h) */
static int geom_check_mcv(struct lvd_latt_geom *g, struct lvd_error *err)
{
	if (g->grid < 1 || g->grid > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: MiniCPM maps need a grid in [1, 4096], not %d",
				     g->grid);
	g->mcv.heads = g->heads;
	g->mcv.grid = g->grid;
	int rc = lvd_mcv_geom_check(&g->mcv, err);
	if (rc)
		return rc;
	if (g->S != g->mcv.n2)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "latt geometry: key length %d, the MiniCPM sample has %d pictures x %d tokens = %d",
				     g->S, g->mcv.n_pics, g->mcv.Q, g->mcv.n2);
	g->gh = g->gw = g->vh = g->vw = g->grid;
	g->ores = g->och = g->ocw = 0;
	return LVD_OK;
}

int lvd_latt_views(const struct lvd_latt_geom *g)
{
	return g->kind == LVD_LATT_GEOM_MINICPM ? g->mcv.views : 1;
}

int lvd_latt_geom_check(struct lvd_latt_geom *g, struct lvd_error *err)
{
	if (g->heads < 1 || g->heads > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: heads %d out of range", g->heads);
	if ((unsigned)g->kind > LVD_LATT_GEOM_MINICPM)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: kind %d out of range", (int)g->kind);
	if (g->kind == LVD_LATT_GEOM_MINICPM)
		return geom_check_mcv(g, err);
	if (g->patches < 1 || g->patches > 1024)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: patches %d out of range", g->patches);
	if (g->tok_skip < 0 || (long long)g->tok_skip + (long long)g->patches * g->patches > g->tile_tok)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "latt geometry: %d skipped + %d² patch tokens exceed %d tokens per tile",
				     g->tok_skip, g->patches, g->tile_tok);
	if (g->tiles_h < 1 || g->tiles_w < 1 || g->tiles_h * g->tiles_w > 64)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: tiles %dx%d out of range", g->tiles_h,
				     g->tiles_w);
	if (g->tok0 < 0 || (long long)g->tok0 + (long long)g->tiles_h * g->tiles_w * g->tile_tok > g->S)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "latt geometry: %dx%d tiles of %d tokens from key %d exceed the key length %d",
				     g->tiles_h, g->tiles_w, g->tile_tok, g->tok0, g->S);
	if (g->patch_px < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: patch px %d out of range", g->patch_px);
	long long ch = (long long)g->tiles_h * g->patches * g->patch_px;
	long long cw = (long long)g->tiles_w * g->patches * g->patch_px;
	if (g->new_h < 1 || g->new_w < 1 || g->new_h > ch || g->new_w > cw)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: image extent %dx%d outside the %lldx%lld canvas",
				     g->new_w, g->new_h, cw, ch);
	if (g->grid < 0 || g->grid > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt geometry: grid %d out of range [0, 4096]", g->grid);
	if (g->official) {
		int nt = g->tiles_h * g->tiles_w;
		if (!g->grid || nt > 4)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "latt geometry: the official geometry needs a --grid pack and at most 4 tiles (grid %d, %d tiles)",
					     g->grid, nt);
		int r = 1;
		while (r * r < g->tile_tok)
			r++;
		g->ores = r;
		g->och = nt <= 2 ? r : 2 * r;
		g->ocw = nt == 1 ? r : 2 * r;
	} else {
		g->ores = g->och = g->ocw = 0;
	}
	g->vh = (g->new_h + g->patch_px - 1) / g->patch_px;
	g->vw = (g->new_w + g->patch_px - 1) / g->patch_px;
	if (g->grid) {
		g->gh = g->gw = g->grid;
	} else {
		g->gh = g->tiles_h * g->patches;
		g->gw = g->tiles_w * g->patches;
	}
	return LVD_OK;
}

int lvd_latt_geom_set_aspect(struct lvd_latt_geom *g, int aspect_id, int max_tiles, struct lvd_error *err)
{
	if (max_tiles < 1 || max_tiles > LVD_GEOM_MAX_TILES)
		return lvd_error_set(err, LVD_ERR_INVALID, "max tiles %d out of range [1, %d]", max_tiles,
				     LVD_GEOM_MAX_TILES);
	int asp[LVD_GEOM_MAX_ASPECTS][2];
	int na = lvd_geom_aspects(max_tiles, asp);
	if (aspect_id < 1 || aspect_id > na)
		return lvd_error_set(err, LVD_ERR_INVALID, "aspect_ratio_id %d out of range [1, %d]", aspect_id, na);
	g->tiles_h = asp[aspect_id - 1][0];
	g->tiles_w = asp[aspect_id - 1][1];
	return LVD_OK;
}

void lvd_latt_mask(const struct lvd_latt_geom *g, uint8_t *mask)
{
	for (int y = 0; y < g->gh; y++)
		for (int x = 0; x < g->gw; x++)
			mask[(size_t)y * g->gw + x] = g->grid ? 1 : (y < g->vh && x < g->vw);
}

static inline size_t tok_of(const struct lvd_latt_geom *g, int y, int x)
{
	const int P = g->patches;
	return (size_t)g->tok0 + (size_t)((y / P) * g->tiles_w + x / P) * g->tile_tok + (size_t)g->tok_skip +
	       (size_t)(y % P) * P + (size_t)(x % P);
}

/* out[R, H, h, w] for the valid patch block [vh, vw] (crop) or the canvas (zeros beyond) */
static void gather(float *out, const float *probs, const struct lvd_latt_geom *g, int R, int oh, int ow)
{
	const int H = g->heads;
	for (int r = 0; r < R; r++)
		for (int h = 0; h < H; h++) {
			const float *src = probs + ((size_t)h * R + r) * g->S;
			float *d = out + ((size_t)r * H + h) * oh * ow;
			for (int y = 0; y < oh; y++)
				for (int x = 0; x < ow; x++)
					d[(size_t)y * ow + x] = y < g->vh && x < g->vw ? src[tok_of(g, y, x)] : 0.0f;
		}
}

static void scatter(float *dprobs, const float *dmap, const struct lvd_latt_geom *g, int R, int oh, int ow)
{
	const int H = g->heads;
	for (int r = 0; r < R; r++)
		for (int h = 0; h < H; h++) {
			float *dst = dprobs + ((size_t)h * R + r) * g->S;
			const float *d = dmap + ((size_t)r * H + h) * oh * ow;
			for (int y = 0; y < g->vh && y < oh; y++)
				for (int x = 0; x < g->vw && x < ow; x++)
					dst[tok_of(g, y, x)] += d[(size_t)y * ow + x];
		}
}

/* ---- the official geometry ------------------------------------------------------------ */

/* PyTorch's antialiased bilinear weights along one axis (align_corners=False):
 * scale = in/out, support = scale >= 1 ? scale : 1, center = scale·(i + 0.5),
 * xmin = max((long)(center - support + 0.5), 0), xsize = min((long)(center + support + 0.5),
 * in) - xmin, w_j = tri((j + xmin - center + 0.5)·(scale >= 1 ? 1/scale : 1)), normalised. */
struct aa_axis {
	int n_in, n_out, kmax;
	int *xmin, *xsize;
	double *w;   /* [n_out·kmax] */
};

static void aa_axis_make(struct lvd_ctx *ctx, struct aa_axis *a, int n_in, int n_out)
{
	const double scale = (double)n_in / n_out;
	const double support = scale >= 1.0 ? scale : 1.0, inv = scale >= 1.0 ? 1.0 / scale : 1.0;
	a->n_in = n_in;
	a->n_out = n_out;
	a->kmax = (int)ceil(support) * 2 + 1;
	a->xmin = lvd_ctx_take(ctx, (size_t)n_out * sizeof(int));
	a->xsize = lvd_ctx_take(ctx, (size_t)n_out * sizeof(int));
	a->w = lvd_ctx_take(ctx, (size_t)n_out * a->kmax * sizeof(double));
	for (int i = 0; i < n_out; i++) {
		double center = scale * (i + 0.5);
		long lo = (long)(center - support + 0.5), hi = (long)(center + support + 0.5);
		if (lo < 0)
			lo = 0;
		if (hi > n_in)
			hi = n_in;
		int n = (int)(hi - lo);
		LVD_ASSERT(n >= 1 && n <= a->kmax);
		double *w = a->w + (size_t)i * a->kmax, tot = 0;
		for (int j = 0; j < n; j++) {
			double x = fabs((j + lo - center + 0.5) * inv);
			w[j] = x < 1.0 ? 1.0 - x : 0.0;
			tot += w[j];
		}
		for (int j = 0; j < n; j++)
			w[j] = tot != 0 ? w[j] / tot : 0;
		a->xmin[i] = (int)lo;
		a->xsize[i] = n;
	}
}

/* The 1-D linear interpolation (align_corners=False) of n_in values to n_out, as
 * F.interpolate(mode='linear') computes it in fp32: i0, i1 and the two weights. */
static void lin_index(int j, int n_in, int n_out, int *i0, int *i1, float *l0, float *l1)
{
	const float scale = (float)n_in / (float)n_out;
	float src = scale * ((float)j + 0.5f) - 0.5f;
	if (src < 0)
		src = 0;
	int a = (int)src;
	if (a > n_in - 1)
		a = n_in - 1;
	*i0 = a;
	*i1 = a + (a < n_in - 1);
	*l1 = src - (float)a;
	*l0 = 1.0f - *l1;
}

/* where tile t's r×r block sits on the official canvas */
static void off_tile(const struct lvd_latt_geom *g, int t, int *oy, int *ox)
{
	int nt = g->tiles_h * g->tiles_w;
	*oy = nt <= 2 ? 0 : (t / 2) * g->ores;
	*ox = nt == 1 ? 0 : nt == 2 ? t * g->ores : (t % 2) * g->ores;
}

static void official_fwd(struct lvd_ctx *ctx, float *out, const float *probs, const struct lvd_latt_geom *g, int R)
{
	const int H = g->heads, r = g->ores, ch = g->och, cw = g->ocw, N = g->grid, nt = g->tiles_h * g->tiles_w;
	const size_t NP = (size_t)R * H;
	size_t mk = lvd_ctx_mark(ctx);
	float *canvas = lvd_ctx_takef(ctx, NP * ch * cw), *tmp = lvd_ctx_takef(ctx, NP * ch * N);
	memset(canvas, 0, NP * ch * cw * sizeof *canvas);
	for (int rr = 0; rr < R; rr++)
		for (int h = 0; h < H; h++) {
			const float *src = probs + ((size_t)h * R + rr) * g->S;
			float *cv = canvas + ((size_t)rr * H + h) * ch * cw;
			for (int t = 0; t < nt; t++) {
				const float *x = src + g->tok0 + (size_t)t * g->tile_tok;
				int oy, ox;
				off_tile(g, t, &oy, &ox);
				for (int j = 0; j < r * r; j++) {
					int i0, i1;
					float l0, l1;
					lin_index(j, g->tile_tok, r * r, &i0, &i1, &l0, &l1);
					cv[(size_t)(oy + j / r) * cw + ox + j % r] = l0 * x[i0] + l1 * x[i1];
				}
			}
		}
	struct aa_axis ax, ay;
	aa_axis_make(ctx, &ax, cw, N);
	aa_axis_make(ctx, &ay, ch, N);
	/* horizontal, then vertical (PyTorch's order) */
	for (size_t pl = 0; pl < NP; pl++)
		for (int y = 0; y < ch; y++) {
			const float *s = canvas + (pl * ch + y) * cw;
			float *d = tmp + (pl * ch + y) * N;
			for (int x = 0; x < N; x++) {
				const double *w = ax.w + (size_t)x * ax.kmax;
				double acc = 0;
				for (int k = 0; k < ax.xsize[x]; k++)
					acc += w[k] * s[ax.xmin[x] + k];
				d[x] = (float)acc;
			}
		}
	for (size_t pl = 0; pl < NP; pl++)
		for (int y = 0; y < N; y++) {
			const double *w = ay.w + (size_t)y * ay.kmax;
			float *d = out + (pl * N + y) * N;
			for (int x = 0; x < N; x++) {
				double acc = 0;
				for (int k = 0; k < ay.xsize[y]; k++)
					acc += w[k] * tmp[(pl * ch + ay.xmin[y] + k) * N + x];
				d[x] = (float)acc;
			}
		}
	lvd_ctx_release(ctx, mk);
}

static void official_bwd(struct lvd_ctx *ctx, float *dprobs, const float *dout, const struct lvd_latt_geom *g, int R)
{
	const int H = g->heads, r = g->ores, ch = g->och, cw = g->ocw, N = g->grid, nt = g->tiles_h * g->tiles_w;
	const size_t NP = (size_t)R * H;
	size_t mk = lvd_ctx_mark(ctx);
	float *dcanvas = lvd_ctx_takef(ctx, NP * ch * cw), *dtmp = lvd_ctx_takef(ctx, NP * ch * N);
	memset(dcanvas, 0, NP * ch * cw * sizeof *dcanvas);
	memset(dtmp, 0, NP * ch * N * sizeof *dtmp);
	struct aa_axis ax, ay;
	aa_axis_make(ctx, &ax, cw, N);
	aa_axis_make(ctx, &ay, ch, N);
	for (size_t pl = 0; pl < NP; pl++)
		for (int y = 0; y < N; y++) {
			const double *w = ay.w + (size_t)y * ay.kmax;
			const float *d = dout + (pl * N + y) * N;
			for (int k = 0; k < ay.xsize[y]; k++) {
				float *t = dtmp + (pl * ch + ay.xmin[y] + k) * N;
				for (int x = 0; x < N; x++)
					t[x] += (float)(w[k] * d[x]);
			}
		}
	for (size_t pl = 0; pl < NP; pl++)
		for (int y = 0; y < ch; y++) {
			const float *d = dtmp + (pl * ch + y) * N;
			float *s = dcanvas + (pl * ch + y) * cw;
			for (int x = 0; x < N; x++) {
				const double *w = ax.w + (size_t)x * ax.kmax;
				for (int k = 0; k < ax.xsize[x]; k++)
					s[ax.xmin[x] + k] += (float)(w[k] * d[x]);
			}
		}
	for (int rr = 0; rr < R; rr++)
		for (int h = 0; h < H; h++) {
			float *dst = dprobs + ((size_t)h * R + rr) * g->S;
			const float *cv = dcanvas + ((size_t)rr * H + h) * ch * cw;
			for (int t = 0; t < nt; t++) {
				float *dx = dst + g->tok0 + (size_t)t * g->tile_tok;
				int oy, ox;
				off_tile(g, t, &oy, &ox);
				for (int j = 0; j < r * r; j++) {
					int i0, i1;
					float l0, l1;
					lin_index(j, g->tile_tok, r * r, &i0, &i1, &l0, &l1);
					float v = cv[(size_t)(oy + j / r) * cw + ox + j % r];
					dx[i0] += l0 * v;
					dx[i1] += l1 * v;
				}
			}
		}
	lvd_ctx_release(ctx, mk);
}

void lvd_latt_maps_fwd(struct lvd_ctx *ctx, float *out, const float *probs, const struct lvd_latt_geom *g, int R)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_latt_maps_fwd");
	LVD_ASSERT(R >= 1 && g->gh >= 1);
	if (g->official) {
		official_fwd(ctx, out, probs, g, R);
		return;
	}
	if (!g->grid) {
		gather(out, probs, g, R, g->gh, g->gw);
		return;
	}
	size_t mk = lvd_ctx_mark(ctx);
	float *crop = lvd_ctx_takef(ctx, (size_t)R * g->heads * g->vh * g->vw);
	gather(crop, probs, g, R, g->vh, g->vw);
	lvd_resample_areaw_fwd(ctx, out, crop, R, g->heads, g->vh, g->vw, g->grid, g->grid,
			       (double)g->vh * g->patch_px, (double)g->new_h / g->grid,
			       (double)g->vw * g->patch_px, (double)g->new_w / g->grid);
	lvd_ctx_release(ctx, mk);
}

void lvd_latt_maps_bwd(struct lvd_ctx *ctx, float *dprobs, const float *dout, const struct lvd_latt_geom *g, int R)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_latt_maps_bwd");
	LVD_ASSERT(R >= 1 && g->gh >= 1);
	if (g->official) {
		official_bwd(ctx, dprobs, dout, g, R);
		return;
	}
	if (!g->grid) {
		scatter(dprobs, dout, g, R, g->gh, g->gw);
		return;
	}
	size_t mk = lvd_ctx_mark(ctx);
	size_t n = (size_t)R * g->heads * g->vh * g->vw;
	float *dcrop = lvd_ctx_takef(ctx, n);
	memset(dcrop, 0, n * sizeof *dcrop);
	lvd_resample_areaw_bwd(ctx, dcrop, dout, R, g->heads, g->vh, g->vw, g->grid, g->grid,
			       (double)g->vh * g->patch_px, (double)g->new_h / g->grid,
			       (double)g->vw * g->patch_px, (double)g->new_w / g->grid);
	scatter(dprobs, dcrop, g, R, g->vh, g->vw);
	lvd_ctx_release(ctx, mk);
}

/* ---- configuration ------------------------------------------------------------------ */

void lvd_latt_cfg_default(struct lvd_latt_cfg *cfg, int heads, int n_captured)
{
	memset(cfg, 0, sizeof *cfg);
	lvd_aligner_cfg_default(&cfg->aligner, heads);
	cfg->agg = LVD_LATT_MEAN_AFTER;
	cfg->n_captured = n_captured;
	cfg->n_layers = 0;
	cfg->minmax_eps = 1e-6f;
}

int lvd_latt_cfg_check(const struct lvd_latt_cfg *cfg, struct lvd_error *err)
{
	int rc = lvd_aligner_cfg_check(&cfg->aligner, err);
	if (rc)
		return rc;
	if ((unsigned)cfg->agg > LVD_LATT_MAX_BEFORE)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt: aggregation %d out of range", (int)cfg->agg);
	if (cfg->n_captured < 1 || cfg->n_captured > LVD_LATT_MAX_LAYERS)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt: %d captured layers out of range [1, %d]",
				     cfg->n_captured, LVD_LATT_MAX_LAYERS);
	if (cfg->n_layers < 0 || cfg->n_layers > cfg->n_captured)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt: %d chosen layers out of range [0, %d]", cfg->n_layers,
				     cfg->n_captured);
	for (int i = 0; i < cfg->n_layers; i++) {
		if (cfg->layers[i] < 0 || cfg->layers[i] >= cfg->n_captured)
			return lvd_error_set(err, LVD_ERR_INVALID, "latt: layer index %d out of range [0, %d)",
					     cfg->layers[i], cfg->n_captured);
		for (int j = 0; j < i; j++)
			if (cfg->layers[j] == cfg->layers[i])
				return lvd_error_set(err, LVD_ERR_INVALID, "latt: layer index %d chosen twice",
						     cfg->layers[i]);
	}
	if (!(cfg->minmax_eps > 0) || !isfinite(cfg->minmax_eps))
		return lvd_error_set(err, LVD_ERR_INVALID, "latt: min-max eps %g must be > 0", (double)cfg->minmax_eps);
	return LVD_OK;
}

static int chosen_layers(const struct lvd_latt_cfg *cfg, int *out)
{
	if (cfg->n_layers == 0) {
		for (int i = 0; i < cfg->n_captured; i++)
			out[i] = i;
		return cfg->n_captured;
	}
	memcpy(out, cfg->layers, (size_t)cfg->n_layers * sizeof *out);
	return cfg->n_layers;
}

int lvd_latt_sample_check(const struct lvd_latt_sample *s, const struct lvd_latt_cfg *cfg, struct lvd_error *err)
{
	int rc = lvd_latt_cfg_check(cfg, err);
	if (rc)
		return rc;
	struct lvd_latt_geom g = s->geom;
	if ((rc = lvd_latt_geom_check(&g, err)))
		return rc;
	if (g.gh != s->geom.gh || g.gw != s->geom.gw || g.vh != s->geom.vh || g.vw != s->geom.vw ||
	    g.ores != s->geom.ores)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: geometry not checked (derived fields stale)");
	if (g.heads != cfg->aligner.d_in)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: %d heads but the Aligner takes d_in = %d",
				     g.heads, cfg->aligner.d_in);
	if (s->R < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: %d rows", s->R);
	if (!s->probs || !s->mask)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: probabilities or mask missing");
	if (g.kind == LVD_LATT_GEOM_MINICPM && g.mcv.mode == LVD_MCV_MAP_ROLLOUT && !s->rprobs)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: the MiniCPM rollout map needs the resampler probabilities");
	if (g.kind == LVD_LATT_GEOM_MINICPM && g.mcv.views != s->geom.mcv.views)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: geometry not checked (derived fields stale)");
	int lay[LVD_LATT_MAX_LAYERS];
	int L = chosen_layers(cfg, lay);
	for (int i = 0; i < L; i++)
		if (!s->probs[lay[i]])
			return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: no probabilities for layer %d", lay[i]);
	size_t hw = (size_t)g.gh * g.gw, nvalid = 0;
	for (size_t i = 0; i < hw; i++) {
		int want = g.grid ? 1 : ((int)(i / g.gw) < g.vh && (int)(i % g.gw) < g.vw);
		if (s->mask[i] != want)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "latt sample: mask cell (%zu, %zu) is %d, the geometry says %d",
					     i / g.gw, i % g.gw, s->mask[i], want);
		nvalid += want;
	}
	if (!nvalid)
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: no valid cell");
	if (s->W < 0 || (s->W && !s->words))
		return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: %d words", s->W);
	for (int w = 0; w < s->W; w++) {
		const struct lvd_latt_word *wd = &s->words[w];
		if (wd->n_rows < 1 || !wd->rows)
			return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: word %d has no rows", w);
		for (int k = 0; k < wd->n_rows; k++)
			if (wd->rows[k] < 0 || wd->rows[k] >= s->R)
				return lvd_error_set(err, LVD_ERR_INVALID, "latt sample: word %d row %d out of range [0, %d)",
						     w, wd->rows[k], s->R);
	}
	return LVD_OK;
}

/* ---- min-max over valid cells ------------------------------------------------------- */

struct mm {
	size_t lo, hi;   /* cells holding min and max (first occurrence) */
	float den;       /* max - min + eps */
};

static struct mm minmax_fwd(float *y, const float *x, const uint8_t *mask, size_t n, float eps)
{
	struct mm m = { 0, 0, 0 };
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (!mask[i])
			continue;
		if (!any) {
			m.lo = m.hi = i;
			any = 1;
			continue;
		}
		if (x[i] < x[m.lo])
			m.lo = i;
		if (x[i] > x[m.hi])
			m.hi = i;
	}
	LVD_ASSERT(any);
	const float lo = x[m.lo];
	m.den = x[m.hi] - lo + eps;
	for (size_t i = 0; i < n; i++)
		y[i] = mask[i] ? (x[i] - lo) / m.den : 0.0f;
	return m;
}

/* dx += ∂/∂x of <gy, y> for y = minmax(x) (y as the forward wrote it) */
static void minmax_bwd(float *dx, const float *gy, const float *y, const uint8_t *mask, size_t n, struct mm m)
{
	double dlo = 0, dhi = 0;
	for (size_t i = 0; i < n; i++) {
		if (!mask[i])
			continue;
		dx[i] += gy[i] / m.den;
		dlo += (double)gy[i] * (y[i] - 1.0);
		dhi -= (double)gy[i] * y[i];
	}
	dx[m.lo] += (float)(dlo / m.den);
	dx[m.hi] += (float)(dhi / m.den);
}

/* rows -> words: Vr[R, HW] given; U[w] = minmax(mean of its rows) for words with
 * want[w]; returns the per-word min-max records in wm and the row means in M. */
static void group_words(float *U, float *M, struct mm *wm, const float *V, const struct lvd_latt_sample *s,
			const uint8_t *want, size_t HW, float eps)
{
	for (int w = 0; w < s->W; w++) {
		if (!want[w])
			continue;
		const struct lvd_latt_word *wd = &s->words[w];
		float *mw = M + (size_t)w * HW;
		for (size_t i = 0; i < HW; i++) {
			float acc = 0;
			for (int k = 0; k < wd->n_rows; k++)
				acc += V[(size_t)wd->rows[k] * HW + i];
			mw[i] = s->mask[i] ? acc / (float)wd->n_rows : 0.0f;
		}
		wm[w] = minmax_fwd(U + (size_t)w * HW, mw, s->mask, HW, eps);
	}
}

/* ---- the loss ----------------------------------------------------------------------- */

/* Z from per-layer values: mean (summed in layer order, then / L) or max (the first
 * layer holding it wins; arg records it). Called for l = 0..L-1 in order. */
static void agg_layer(float *Z, int *arg, const float *Yl, int l, int L, size_t n, int use_max)
{
	for (size_t i = 0; i < n; i++) {
		if (l == 0) {
			Z[i] = Yl[i];
			if (use_max)
				arg[i] = 0;
		} else if (use_max) {
			if (Yl[i] > Z[i]) {
				Z[i] = Yl[i];
				arg[i] = l;
			}
		} else {
			Z[i] += Yl[i];
		}
	}
	if (!use_max && l == L - 1)
		for (size_t i = 0; i < n; i++)
			Z[i] /= (float)L;
}

/* the layer-l share of a gradient through agg_layer */
static void agg_layer_bwd(float *gl, const float *g, const int *arg, int l, int L, size_t n, int use_max)
{
	for (size_t i = 0; i < n; i++)
		gl[i] = use_max ? (arg[i] == l ? g[i] : 0.0f) : g[i] / (float)L;
}

/* acc[r, i] += Σ_h X[r, h, i] (the raw head-and-layer mean for evaluation) */
static void raw_acc(double *acc, const float *X, int R, int H, size_t HW)
{
	for (int r = 0; r < R; r++)
		for (int h = 0; h < H; h++) {
			const float *x = X + ((size_t)r * H + h) * HW;
			double *a = acc + (size_t)r * HW;
			for (size_t i = 0; i < HW; i++)
				a[i] += x[i];
		}
}

/* per-row min-max of acc/div over valid cells, then the word grouping into U */
static void raw_group(float *U, const double *acc, double div, const struct lvd_latt_sample *s, size_t HW,
		      float eps, struct lvd_ctx *ctx)
{
	const int R = s->R, W = s->W;
	const size_t RH = (size_t)R * HW;
	float *Zr = lvd_ctx_takef(ctx, RH), *Vr = lvd_ctx_takef(ctx, RH);
	float *Mr = lvd_ctx_takef(ctx, (size_t)W * HW);
	struct mm *wr = lvd_ctx_take(ctx, (size_t)W * sizeof *wr);
	uint8_t *all = lvd_ctx_take(ctx, (size_t)W);
	memset(all, 1, (size_t)W);
	for (size_t i = 0; i < RH; i++)
		Zr[i] = (float)(acc[i] / div);
	for (int r = 0; r < R; r++)
		(void)minmax_fwd(Vr + (size_t)r * HW, Zr + (size_t)r * HW, s->mask, HW, eps);
	group_words(U, Mr, wr, Vr, s, all, HW, eps);
}

/* ---- map kinds ---------------------------------------------------------------------- */

static int is_mcv(const struct lvd_latt_sample *s)
{
	return s->geom.kind == LVD_LATT_GEOM_MINICPM;
}

/* out[R, H, GH, GW] of captured layer `layer` (R = V·the sample's rows for MiniCPM; a
 * prepared MiniCPM sample carries R̄ in rprobs and dR̄ in drprobs, see prepare) */
static void maps_fwd(struct lvd_ctx *ctx, float *out, const struct lvd_latt_sample *s, int layer, int R)
{
	if (is_mcv(s))
		lvd_mcv_maps_fwd(ctx, out, s->probs[layer], s->rprobs, &s->geom.mcv, R / s->geom.mcv.views);
	else
		lvd_latt_maps_fwd(ctx, out, s->probs[layer], &s->geom, R);
}

/* whether layer's maps need a backward (its dprobs, or MiniCPM's dRr) */
static int dmaps_want(float *const *dprobs, const struct lvd_latt_sample *s, int layer)
{
	return (dprobs && dprobs[layer]) || (is_mcv(s) && s->drprobs);
}

static void maps_bwd(struct lvd_ctx *ctx, float *const *dprobs, const float *dout, const struct lvd_latt_sample *s,
		     int layer, int R)
{
	if (is_mcv(s))
		lvd_mcv_maps_bwd(ctx, dprobs ? dprobs[layer] : NULL, s->drprobs, dout, s->probs[layer], s->rprobs,
				 &s->geom.mcv, R / s->geom.mcv.views);
	else
		lvd_latt_maps_bwd(ctx, dprobs[layer], dout, &s->geom, R);
}

/* The sample as the loss sees it. MiniCPM rollout: rprobs = R̄ (lvd_mcv_rbar_fwd, once
 * for all layers) and drprobs = a zeroed dR̄ when s wants dRr (finish spreads it); with
 * V > 1 views, V·R rows and V·W words, view-major (word v·W + w = word w's rows
 * r -> v·R + r, same target). Arrays from ctx's workspace (the caller releases). */
static struct lvd_latt_sample prepare(struct lvd_ctx *ctx, const struct lvd_latt_sample *s)
{
	const int V = lvd_latt_views(&s->geom);
	struct lvd_latt_sample x = *s;
	if (is_mcv(s)) {
		const struct lvd_mcv_geom *g = &s->geom.mcv;
		x.drprobs = NULL;
		if (g->mode == LVD_MCV_MAP_ROLLOUT) {
			const size_t n = lvd_mcv_rbar_floats(g);
			float *rbar = lvd_ctx_takef(ctx, n);
			lvd_mcv_rbar_fwd(ctx, rbar, s->rprobs, g);
			x.rprobs = rbar;
			if (s->drprobs) {
				x.drprobs = lvd_ctx_takef(ctx, n);
				memset(x.drprobs, 0, n * sizeof *x.drprobs);
			}
		}
	}
	if (V == 1)
		return x;
	size_t nr = 0;
	for (int w = 0; w < s->W; w++)
		nr += (size_t)s->words[w].n_rows;
	struct lvd_latt_word *wd = lvd_ctx_take(ctx, ((size_t)V * s->W + 1) * sizeof *wd);
	int *rows = lvd_ctx_take(ctx, ((size_t)V * nr + 1) * sizeof *rows);
	size_t k = 0;
	for (int v = 0; v < V; v++)
		for (int w = 0; w < s->W; w++) {
			const struct lvd_latt_word *o = &s->words[w];
			struct lvd_latt_word *n = &wd[(size_t)v * s->W + w];
			n->n_rows = o->n_rows;
			n->rows = rows + k;
			n->target = o->target;
			for (int i = 0; i < o->n_rows; i++)
				rows[k++] = v * s->R + o->rows[i];
		}
	x.R = V * s->R;
	x.W = V * s->W;
	x.words = wd;
	return x;
}

/* s's dRr += the prepared sample's dR̄ over the resampler heads */
static void finish(const struct lvd_latt_sample *s, const struct lvd_latt_sample *x)
{
	if (x->drprobs)
		lvd_mcv_rbar_bwd(s->drprobs, x->drprobs, &s->geom.mcv);
}

/* lvd_latt_sample_loss on a checked, expanded sample */
static int sample_loss_core(struct lvd_ctx *ctx, double *loss, float *dparams, float *const *dprobs,
			    const struct lvd_latt_sample *s, const float *params, const struct lvd_latt_cfg *cfg,
			    double pair_count, float dscale, struct lvd_latt_trace *tr)
{
	const struct lvd_latt_geom *g = &s->geom;
	const int R = s->R, H = g->heads, GH = g->gh, GW = g->gw, W = s->W;
	const size_t HW = (size_t)GH * GW, map = (size_t)H * HW, RM = (size_t)R * map, RH = (size_t)R * HW;
	int lay[LVD_LATT_MAX_LAYERS];
	const int L = chosen_layers(cfg, lay);
	const int before = cfg->agg == LVD_LATT_MEAN_BEFORE || cfg->agg == LVD_LATT_MAX_BEFORE;
	const int use_max = cfg->agg == LVD_LATT_MAX_AFTER || cfg->agg == LVD_LATT_MAX_BEFORE;
	const int lean = cfg->lean && !before;
	const float eps = cfg->minmax_eps;
	const struct lvd_aligner_cfg *ac = &cfg->aligner;

	int n_match = 0;
	for (int w = 0; w < W; w++)
		n_match += s->words[w].target != NULL;
	const int dmaps = dprobs || (is_mcv(s) && s->drprobs); /* gradients below the Aligner */
	const int want_grad = (dparams || dmaps) && n_match > 0;

	size_t mk = lvd_ctx_mark(ctx);
	/* maps: all layers [L, R, H, HW], or one layer at a time when lean */
	float *Xall = tr && tr->maps ? tr->maps : lean || before ? NULL : lvd_ctx_takef(ctx, (size_t)L * RM);
	float *Xtmp = Xall ? NULL : lvd_ctx_takef(ctx, RM);
	double *racc = NULL;
	if (tr && tr->raw_words && W) {
		racc = lvd_ctx_take(ctx, RH * sizeof *racc);
		memset(racc, 0, RH * sizeof *racc);
	}
	float *Z = tr && tr->agg ? tr->agg : lvd_ctx_takef(ctx, RH);
	int *arg = NULL;                /* argmax layer (max modes) */
	float *Xb = NULL, *saved = NULL;
	if (before) {
		/* 1-2. maps, their aggregate, one Aligner pass */
		Xb = lvd_ctx_takef(ctx, RM);
		if (use_max)
			arg = lvd_ctx_take(ctx, RM * sizeof *arg);
		for (int l = 0; l < L; l++) {
			float *Xl = Xall ? Xall + (size_t)l * RM : Xtmp;
			maps_fwd(ctx, Xl, s, lay[l], R);
			if (racc)
				raw_acc(racc, Xl, R, H, HW);
			agg_layer(Xb, arg, Xl, l, L, RM, use_max);
		}
		float *Y = tr && tr->aligned ? tr->aligned : Z;
		if (want_grad)
			saved = lvd_ctx_takef(ctx, lvd_aligner_saved_floats(ac, R, (int)HW));
		lvd_aligner_fwd(ctx, Y, saved, Xb, params, ac, R, GH, GW);
		if (Y != Z)
			memcpy(Z, Y, RH * sizeof *Z);
	} else {
		if (use_max)
			arg = lvd_ctx_take(ctx, RH * sizeof *arg);
		if (!lean) {
			/* 1-2. all maps, one batched Aligner pass over L·R images */
			for (int l = 0; l < L; l++) {
				maps_fwd(ctx, Xall + (size_t)l * RM, s, lay[l], R);
				if (racc)
					raw_acc(racc, Xall + (size_t)l * RM, R, H, HW);
			}
			float *Y = tr && tr->aligned ? tr->aligned : lvd_ctx_takef(ctx, (size_t)L * RH);
			if (want_grad)
				saved = lvd_ctx_takef(ctx, lvd_aligner_saved_floats(ac, L * R, (int)HW));
			lvd_aligner_fwd(ctx, Y, saved, Xall, params, ac, L * R, GH, GW);
			for (int l = 0; l < L; l++)
				agg_layer(Z, arg, Y + (size_t)l * RH, l, L, RH, use_max);
		} else {
			/* 1-2. layer by layer; the backward recomputes each layer's Aligner pass */
			float *Ytmp = tr && tr->aligned ? NULL : lvd_ctx_takef(ctx, RH);
			for (int l = 0; l < L; l++) {
				float *Xl = Xall ? Xall + (size_t)l * RM : Xtmp;
				float *Yl = Ytmp ? Ytmp : tr->aligned + (size_t)l * RH;
				maps_fwd(ctx, Xl, s, lay[l], R);
				if (racc)
					raw_acc(racc, Xl, R, H, HW);
				lvd_aligner_fwd(ctx, Yl, NULL, Xl, params, ac, R, GH, GW);
				agg_layer(Z, arg, Yl, l, L, RH, use_max);
			}
		}
	}
	/* 3. rows */
	float *V = tr && tr->rows ? tr->rows : lvd_ctx_takef(ctx, RH);
	struct mm *rm = lvd_ctx_take(ctx, (size_t)R * sizeof *rm);
	for (int r = 0; r < R; r++)
		rm[r] = minmax_fwd(V + (size_t)r * HW, Z + (size_t)r * HW, s->mask, HW, eps);
	/* 4. words (all when traced, else the matched ones) */
	uint8_t *want = lvd_ctx_take(ctx, (size_t)W + 1);
	for (int w = 0; w < W; w++)
		want[w] = (tr && (tr->words || tr->word_loss)) || s->words[w].target;
	float *U = tr && tr->words ? tr->words : lvd_ctx_takef(ctx, (size_t)W * HW + 1);
	float *M = lvd_ctx_takef(ctx, (size_t)W * HW + 1);
	struct mm *wm = lvd_ctx_take(ctx, ((size_t)W + 1) * sizeof *wm);
	group_words(U, M, wm, V, s, want, HW, eps);
	/* 5. MSE */
	size_t nvalid = 0;
	for (size_t i = 0; i < HW; i++)
		nvalid += s->mask[i] != 0;
	double sum = 0;
	for (int w = 0; w < W; w++) {
		const float *T = s->words[w].target;
		double mse = 0;
		if (T) {
			const float *u = U + (size_t)w * HW;
			for (size_t i = 0; i < HW; i++)
				if (s->mask[i]) {
					double d = (double)u[i] - T[i];
					mse += d * d;
				}
			mse /= (double)nvalid;
			sum += mse;
		}
		if (tr && tr->word_loss)
			tr->word_loss[w] = (float)mse;
	}
	*loss += sum / pair_count;
	/* raw maps for evaluation: mean over layers and heads, same grouping */
	if (racc)
		raw_group(tr->raw_words, racc, (double)L * H, s, HW, eps, ctx);

	if (want_grad) {
		/* 5'. dU -> dM -> dV */
		float *gU = lvd_ctx_takef(ctx, HW), *gM = lvd_ctx_takef(ctx, HW);
		float *gV = lvd_ctx_takef(ctx, RH);
		memset(gV, 0, RH * sizeof *gV);
		const double c = 2.0 * dscale / ((double)nvalid * pair_count);
		for (int w = 0; w < W; w++) {
			const struct lvd_latt_word *wd = &s->words[w];
			if (!wd->target)
				continue;
			const float *u = U + (size_t)w * HW;
			for (size_t i = 0; i < HW; i++)
				gU[i] = s->mask[i] ? (float)(c * ((double)u[i] - wd->target[i])) : 0.0f;
			memset(gM, 0, HW * sizeof *gM);
			minmax_bwd(gM, gU, u, s->mask, HW, wm[w]);
			const float inv = 1.0f / (float)wd->n_rows;
			for (int k = 0; k < wd->n_rows; k++) {
				float *gv = gV + (size_t)wd->rows[k] * HW;
				for (size_t i = 0; i < HW; i++)
					if (s->mask[i])
						gv[i] += gM[i] * inv;
			}
		}
		/* 3'. dV -> dZ */
		float *gZ = lvd_ctx_takef(ctx, RH);
		memset(gZ, 0, RH * sizeof *gZ);
		for (int r = 0; r < R; r++)
			minmax_bwd(gZ + (size_t)r * HW, gV + (size_t)r * HW, V + (size_t)r * HW, s->mask, HW, rm[r]);
		/* 2'-1'. through the Aligner and the aggregation to the maps and the probabilities */
		if (before) {
			float *gA = NULL;
			if (dmaps) {
				gA = lvd_ctx_takef(ctx, RM);
				memset(gA, 0, RM * sizeof *gA);
			}
			lvd_aligner_bwd(ctx, gA, dparams, gZ, saved, Xb, params, ac, R, GH, GW);
			if (dmaps) {
				float *gX = lvd_ctx_takef(ctx, RM);
				for (int l = 0; l < L; l++)
					if (dmaps_want(dprobs, s, lay[l])) {
						agg_layer_bwd(gX, gA, arg, l, L, RM, use_max);
						maps_bwd(ctx, dprobs, gX, s, lay[l], R);
					}
			}
		} else if (!lean) {
			float *gY = lvd_ctx_takef(ctx, (size_t)L * RH);
			for (int l = 0; l < L; l++)
				agg_layer_bwd(gY + (size_t)l * RH, gZ, arg, l, L, RH, use_max);
			float *gA = NULL;
			if (dmaps) {
				gA = lvd_ctx_takef(ctx, (size_t)L * RM);
				memset(gA, 0, (size_t)L * RM * sizeof *gA);
			}
			lvd_aligner_bwd(ctx, gA, dparams, gY, saved, Xall, params, ac, L * R, GH, GW);
			if (dmaps)
				for (int l = 0; l < L; l++)
					if (dmaps_want(dprobs, s, lay[l]))
						maps_bwd(ctx, dprobs, gA + (size_t)l * RM, s, lay[l], R);
		} else {
			float *sv = lvd_ctx_takef(ctx, lvd_aligner_saved_floats(ac, R, (int)HW));
			float *gY = lvd_ctx_takef(ctx, RH), *Ys = lvd_ctx_takef(ctx, RH);
			float *gA = dmaps ? lvd_ctx_takef(ctx, RM) : NULL;
			for (int l = 0; l < L; l++) {
				float *gAl = dmaps_want(dprobs, s, lay[l]) ? gA : NULL;
				if (!dparams && !gAl)
					continue;
				float *Xl = Xall ? Xall + (size_t)l * RM : Xtmp;
				if (!Xall)
					maps_fwd(ctx, Xl, s, lay[l], R);
				lvd_aligner_fwd(ctx, Ys, sv, Xl, params, ac, R, GH, GW);
				agg_layer_bwd(gY, gZ, arg, l, L, RH, use_max);
				if (gAl)
					memset(gAl, 0, RM * sizeof *gAl);
				lvd_aligner_bwd(ctx, gAl, dparams, gY, sv, Xl, params, ac, R, GH, GW);
				if (gAl)
					maps_bwd(ctx, dprobs, gAl, s, lay[l], R);
			}
		}
	}
	lvd_ctx_release(ctx, mk);
	return n_match;
}

int lvd_latt_sample_loss(struct lvd_ctx *ctx, double *loss, float *dparams, float *const *dprobs,
			 const struct lvd_latt_sample *s, const float *params, const struct lvd_latt_cfg *cfg,
			 double pair_count, float dscale, struct lvd_latt_trace *tr)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_latt_sample_loss");
	struct lvd_error e;
	LVD_ASSERTF(lvd_latt_sample_check(s, cfg, &e) == LVD_OK, "lvd_latt_sample_loss: %s", e.msg);
	LVD_ASSERT(pair_count > 0);
	if (!is_mcv(s))
		return sample_loss_core(ctx, loss, dparams, dprobs, s, params, cfg, pair_count, dscale, tr);
	const int V = lvd_latt_views(&s->geom);
	size_t mk = lvd_ctx_mark(ctx);
	struct lvd_latt_sample x = prepare(ctx, s);
	int m = sample_loss_core(ctx, loss, dparams, dprobs, &x, params, cfg, pair_count * V, dscale, tr);
	finish(s, &x);
	lvd_ctx_release(ctx, mk);
	return m / V;
}

void lvd_latt_word_maps(struct lvd_ctx *ctx, float *aligned, float *raw, const struct lvd_latt_sample *s,
			const float *params, const struct lvd_latt_cfg *cfg)
{
	struct lvd_latt_trace tr;
	memset(&tr, 0, sizeof tr);
	size_t mk = lvd_ctx_mark(ctx);
	tr.words = aligned ? aligned
			   : lvd_ctx_takef(ctx, (size_t)lvd_latt_views(&s->geom) * s->W * s->geom.gh * s->geom.gw + 1);
	tr.raw_words = raw;
	double unused = 0;
	struct lvd_latt_sample x = *s;
	x.drprobs = NULL;
	lvd_latt_sample_loss(ctx, &unused, NULL, NULL, &x, params, cfg, 1.0, 0.0f, &tr);
	lvd_ctx_release(ctx, mk);
}

void lvd_latt_raw_word_maps(struct lvd_ctx *ctx, float *per_layer, float *mean, const struct lvd_latt_sample *s,
			    const struct lvd_latt_cfg *cfg)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_latt_raw_word_maps");
	struct lvd_error e;
	LVD_ASSERTF(lvd_latt_sample_check(s, cfg, &e) == LVD_OK, "lvd_latt_raw_word_maps: %s", e.msg);
	if (!s->W || (!per_layer && !mean))
		return;
	size_t mk = lvd_ctx_mark(ctx);
	struct lvd_latt_sample x = prepare(ctx, s);
	x.drprobs = NULL;
	s = &x;
	const struct lvd_latt_geom *g = &s->geom;
	const int R = s->R, H = g->heads, W = s->W;
	const size_t HW = (size_t)g->gh * g->gw, RH = (size_t)R * HW;
	int lay[LVD_LATT_MAX_LAYERS];
	const int L = chosen_layers(cfg, lay);
	float *X = lvd_ctx_takef(ctx, (size_t)R * H * HW);
	double *tot = lvd_ctx_take(ctx, RH * sizeof *tot), *one = NULL;
	memset(tot, 0, RH * sizeof *tot);
	if (per_layer)
		one = lvd_ctx_take(ctx, RH * sizeof *one);
	for (int l = 0; l < L; l++) {
		maps_fwd(ctx, X, s, lay[l], R);
		raw_acc(tot, X, R, H, HW);
		if (one) {
			size_t m2 = lvd_ctx_mark(ctx);
			memset(one, 0, RH * sizeof *one);
			raw_acc(one, X, R, H, HW);
			raw_group(per_layer + (size_t)l * W * HW, one, (double)H, s, HW, cfg->minmax_eps, ctx);
			lvd_ctx_release(ctx, m2);
		}
	}
	if (mean)
		raw_group(mean, tot, (double)L * H, s, HW, cfg->minmax_eps, ctx);
	lvd_ctx_release(ctx, mk);
}

double lvd_latt_loss(struct lvd_ctx *ctx, float *dparams, float *const *const *dprobs,
		     const struct lvd_latt_sample *samples, int n, const float *params,
		     const struct lvd_latt_cfg *cfg, double pair_count, float dscale, int *n_pairs)
{
	int pairs = 0;
	for (int b = 0; b < n; b++)
		for (int w = 0; w < samples[b].W; w++)
			pairs += samples[b].words[w].target != NULL;
	if (n_pairs)
		*n_pairs = pairs;
	if (pair_count <= 0)
		pair_count = pairs;
	if (pairs == 0)
		return 0.0;
	double loss = 0;
	for (int b = 0; b < n; b++) {
		int m = 0;
		for (int w = 0; w < samples[b].W; w++)
			m += samples[b].words[w].target != NULL;
		if (!m)
			continue; /* nothing to learn from this sample */
		lvd_latt_sample_loss(ctx, &loss, dparams, dprobs ? dprobs[b] : NULL, &samples[b], params, cfg,
				     pair_count, dscale, NULL);
	}
	return loss;
}

/* ---- from a pack record ---------------------------------------------------------------- */


static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void lvd_latt_plan_free(struct lvd_latt_plan *p)
{
	free(p->rows_pos);
	free(p->words);
	free(p->row_idx);
	free(p->targets);
	free(p->mask);
	if (p->keys)
		for (int w = 0; w < p->W; w++)
			free(p->keys[w]);
	free(p->keys);
	memset(p, 0, sizeof *p);
}

int lvd_latt_plan_from_packrec(struct lvd_latt_plan *p, const struct lvd_packrec *rec, int heads, int S,
			       int tok0, int tile_tok, int max_tiles, int official, struct lvd_error *err)
{
	memset(p, 0, sizeof *p);
	struct lvd_latt_geom *g = &p->geom;
	int rc = lvd_latt_geom_set_aspect(g, (int)rec->aspect_id, max_tiles, err);
	if (rc)
		return lvd_error_prefix(err, "pack record '%s': ", rec->id);
	if ((uint32_t)g->tiles_h != rec->tiles_h || (uint32_t)g->tiles_w != rec->tiles_w)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "pack record '%s': aspect_id %u is %dx%d tiles (of %d), the record says %ux%u", rec->id,
				     rec->aspect_id, g->tiles_h, g->tiles_w, max_tiles, rec->tiles_h, rec->tiles_w);
	if (!rec->patch_px || rec->tile_px % rec->patch_px)
		return lvd_error_set(err, LVD_ERR_INVALID, "pack record '%s': patch_px %u does not divide tile_px %u",
				     rec->id, rec->patch_px, rec->tile_px);
	const int grid = rec->flags & LVD_PACKREC_GRID ? (int)rec->gh : 0;
	if (grid && rec->gh != rec->gw)
		return lvd_error_set(err, LVD_ERR_INVALID, "pack record '%s': --grid targets %ux%u are not square", rec->id,
				     rec->gw, rec->gh);
	g->heads = heads;
	g->S = S;
	g->tok0 = tok0;
	g->tile_tok = tile_tok;
	g->tok_skip = 1;
	g->patches = (int)(rec->tile_px / rec->patch_px);
	g->patch_px = (int)rec->patch_px;
	g->new_h = (int)rec->new_h;
	g->new_w = (int)rec->new_w;
	g->grid = grid;
	g->official = official;
	if ((rc = lvd_latt_geom_check(g, err)))
		return lvd_error_prefix(err, "pack record '%s': ", rec->id);
	if ((uint32_t)g->gh != rec->gh || (uint32_t)g->gw != rec->gw)
		return lvd_error_set(err, LVD_ERR_INVALID, "pack record '%s': targets are %ux%u, the geometry gives %dx%d",
				     rec->id, rec->gw, rec->gh, g->gw, g->gh);
	const size_t hw = (size_t)g->gh * g->gw;
	p->mask = malloc(hw);
	if (!p->mask)
		goto nomem;
	lvd_latt_mask(g, p->mask);
	for (size_t i = 0; i < hw; i++)
		if (p->mask[i] != (rec->mask[i] != 0)) {
			unsigned want = p->mask[i];
			lvd_latt_plan_free(p);
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "pack record '%s': mask cell (%zu, %zu) is %u, the geometry says %u", rec->id,
					     i / rec->gw, i % rec->gw, rec->mask[i], want);
		}
	/* rows: the distinct query positions, sorted */
	size_t nq = 0;
	for (uint32_t w = 0; w < rec->W; w++)
		nq += rec->words[w].n_query;
	p->W = (int)rec->W;
	p->rows_pos = lvd_alloc_array(nq ? nq : 1, sizeof *p->rows_pos);
	p->row_idx = lvd_alloc_array(nq ? nq : 1, sizeof *p->row_idx);
	p->words = lvd_calloc_array(rec->W ? rec->W : 1, sizeof *p->words);
	p->targets = lvd_alloc_array(rec->W * hw + 1, sizeof *p->targets);
	p->keys = lvd_calloc_array(rec->W ? rec->W : 1, sizeof *p->keys);
	p->T = (int)rec->T;
	if (!p->rows_pos || !p->row_idx || !p->words || !p->targets || !p->keys)
		goto nomem;
	for (uint32_t w = 0; w < rec->W; w++)
		if (!(p->keys[w] = lvd_strdup(rec->words[w].key)))
			goto nomem;
	size_t k = 0;
	for (uint32_t w = 0; w < rec->W; w++)
		for (uint32_t q = 0; q < rec->words[w].n_query; q++)
			p->rows_pos[k++] = rec->words[w].query[q];
	qsort(p->rows_pos, nq, sizeof *p->rows_pos, cmp_u32);
	size_t R = 0;
	for (size_t i = 0; i < nq; i++)
		if (!R || p->rows_pos[R - 1] != p->rows_pos[i])
			p->rows_pos[R++] = p->rows_pos[i];
	p->R = (int)R;
	k = 0;
	for (uint32_t w = 0; w < rec->W; w++) {
		const struct lvd_packrec_word *pw = &rec->words[w];
		p->words[w].n_rows = (int)pw->n_query;
		p->words[w].rows = p->row_idx + k;
		for (uint32_t q = 0; q < pw->n_query; q++) {
			const uint32_t *hit = bsearch(&pw->query[q], p->rows_pos, R, sizeof *p->rows_pos, cmp_u32);
			LVD_ASSERT(hit);
			p->row_idx[k++] = (int)(hit - p->rows_pos);
		}
		float *t = p->targets + (size_t)w * hw;
		for (size_t i = 0; i < hw; i++)
			t[i] = lvd_f16_to_f32(rec->targets[(size_t)w * hw + i]);
		p->words[w].target = t;
	}
	return LVD_OK;
nomem:
	lvd_latt_plan_free(p);
	return lvd_error_set(err, LVD_ERR_NOMEM, "pack record '%s': out of memory for the loss plan", rec->id);
}

struct lvd_latt_sample lvd_latt_plan_sample(const struct lvd_latt_plan *p, const float *const *probs)
{
	struct lvd_latt_sample s;
	memset(&s, 0, sizeof s);
	s.geom = p->geom;
	s.R = p->R;
	s.probs = probs;
	s.mask = p->mask;
	s.W = p->W;
	s.words = p->words;
	return s;
}

/* ---- schedules ---------------------------------------------------------------------- */

void lvd_latt_sched_default(struct lvd_latt_sched *s)
{
	memset(s, 0, sizeof *s);
	s->lambda = 10.0f;
	s->decay = LVD_LATT_CONST;
	s->decay_factor = 1.0f;
}

int lvd_latt_sched_check(const struct lvd_latt_sched *s, struct lvd_error *err)
{
	if (!isfinite(s->lambda) || s->lambda < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "λ %g must be finite and >= 0", (double)s->lambda);
	if ((unsigned)s->decay > LVD_LATT_INV_EXP)
		return lvd_error_set(err, LVD_ERR_INVALID, "λ decay %d out of range", (int)s->decay);
	if (s->decay != LVD_LATT_CONST && (s->decay_steps < 1 || !isfinite(s->decay_factor)))
		return lvd_error_set(err, LVD_ERR_INVALID, "λ decay needs steps >= 1 (got %ld) and a finite factor",
				     s->decay_steps);
	if (s->warmup < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "warm-up steps %ld < 0", s->warmup);
	if (s->ce_ramp && s->total_steps <= s->warmup)
		return lvd_error_set(err, LVD_ERR_INVALID, "CE ramp: total steps %ld must exceed the warm-up %ld",
				     s->total_steps, s->warmup);
	return LVD_OK;
}

void lvd_latt_sched_at(const struct lvd_latt_sched *s, long t, float *lambda_t, float *ce_scale)
{
	double lam = s->lambda;
	if (s->decay != LVD_LATT_CONST) {
		double e = s->lambda * exp(-(double)s->decay_factor * (double)t / (double)s->decay_steps);
		lam = s->decay == LVD_LATT_EXP ? e : 1.0 - e;
	}
	double ce = 1.0;
	if (t < s->warmup)
		ce = 1e-7;
	else if (s->ce_ramp) {
		ce = (double)(t - s->warmup) / (double)(s->total_steps - s->warmup);
		if (ce > 1)
			ce = 1;
	}
	if (lambda_t)
		*lambda_t = (float)lam;
	if (ce_scale)
		*ce_scale = (float)ce;
}
