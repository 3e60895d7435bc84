/* Aggregation of SD cross-attention maps; see attnmap.h for the geometry, the
 * interpolation formula and the averaging rule. */
#include "lavender/attnmap.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parse.h"
#include "nn/ctx.h"
#include "nn/ops/elem.h"
#include "nn/ops/resample.h"

/* round(num / den) for positive integers, halves up. */
static int64_t div_round(int64_t num, int64_t den)
{
	return (2 * num + den) / (2 * den);
}

int lvd_attnmap_geometry(struct lvd_attnmap_geom *g, int img_w, int img_h, int resolution,
			 int grid, struct lvd_error *err)
{
	if (img_w < 1 || img_h < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "image size %dx%d is empty", img_w, img_h);
	if (resolution < 64 || resolution > 4096 || resolution % 64)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "resolution %d is not a multiple of 64 in [64, 4096]", resolution);
	if (grid < 0 || grid > 1024)
		return lvd_error_set(err, LVD_ERR_INVALID, "grid %d is not in [1, 1024]", grid);
	memset(g, 0, sizeof *g);
	g->img_w = img_w;
	g->img_h = img_h;
	int lng = img_w >= img_h ? img_w : img_h;
	int sht = img_w >= img_h ? img_h : img_w;
	int64_t s = div_round((int64_t)sht * resolution, (int64_t)lng * 64) * 64;
	if (s < 64)
		s = 64;
	if (s > resolution)
		s = resolution;
	if (img_w >= img_h) {
		g->sd_w = resolution;
		g->sd_h = (int)s;
	} else {
		g->sd_h = resolution;
		g->sd_w = (int)s;
	}
	g->lat_w = g->sd_w / 8;
	g->lat_h = g->sd_h / 8;
	if (grid == 0) {
		g->grid_w = g->lat_w / 2;
		g->grid_h = g->lat_h / 2;
	} else {
		int ll = g->lat_w >= g->lat_h ? g->lat_w : g->lat_h;
		int ls = g->lat_w >= g->lat_h ? g->lat_h : g->lat_w;
		int64_t gs = div_round((int64_t)grid * ls, ll);
		if (gs < 1)
			gs = 1;
		if (g->lat_w >= g->lat_h) {
			g->grid_w = grid;
			g->grid_h = (int)gs;
		} else {
			g->grid_h = grid;
			g->grid_w = (int)gs;
		}
	}
	return LVD_OK;
}

int lvd_attnmap_layer_level(int lat_h, int lat_w, int h, int w)
{
	if (h < 1 || w < 1)
		return -1;
	for (int k = 0; k <= LVD_ATTNMAP_MAX_LEVEL; k++)
		if ((int64_t)h << k == lat_h && (int64_t)w << k == lat_w)
			return k;
	return -1;
}

int lvd_attnmap_parse_layers(const char *s, int resolution, unsigned *mask, struct lvd_error *err)
{
	unsigned m = 0;
	char buf[256];
	if (!s || !*s)
		return lvd_error_set(err, LVD_ERR_INVALID, "--layers: empty list");
	if (strlen(s) >= sizeof buf)
		return lvd_error_set(err, LVD_ERR_INVALID, "--layers: list too long");
	strcpy(buf, s);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		int rc = lvd_parse_u64(tok, 1, 4096, &v, "--layers", err);
		if (rc)
			return rc;
		int k = -1;
		for (int j = 0; j <= LVD_ATTNMAP_MAX_LEVEL; j++)
			if ((uint64_t)(resolution / 8) == v << j && (resolution / 8) % (1 << j) == 0)
				k = j;
		if (k < 0)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "--layers: %s is not a layer side at resolution %d (use %d, %d, %d or %d)",
					     tok, resolution, resolution / 8, resolution / 16, resolution / 32,
					     resolution / 64);
		if (m & (1u << k))
			return lvd_error_set(err, LVD_ERR_INVALID, "--layers: %s given twice", tok);
		m |= 1u << k;
	}
	if (!m)
		return lvd_error_set(err, LVD_ERR_INVALID, "--layers: empty list");
	*mask = m;
	return LVD_OK;
}

void lvd_attnmap_format_layers(char *buf, size_t cap, unsigned mask, int resolution)
{
	size_t n = 0;
	if (cap)
		buf[0] = 0;
	for (int k = LVD_ATTNMAP_MAX_LEVEL; k >= 0; k--) {
		if (!(mask & (1u << k)) || n >= cap)
			continue;
		int w = snprintf(buf + n, cap - n, "%s%d", n ? "," : "", resolution / 8 >> k);
		if (w < 0)
			return;
		n += (size_t)w;
	}
}

/* Source coordinate tables for one axis (torch align_corners=False). */
static void axis_coords(int in, int out, int i, int *i0, int *i1, float *l)
{
	float scale = (float)in / (float)out;
	float s = ((float)i + 0.5f) * scale - 0.5f;
	if (s < 0)
		s = 0;
	int a = (int)s;
	if (a > in - 1)
		a = in - 1;
	*i0 = a;
	*i1 = a < in - 1 ? a + 1 : a;
	*l = s - (float)a;
}

void lvd_attnmap_resize_bilinear(float *dst, const float *src, int C, int H, int W, int OH, int OW)
{
	for (int y = 0; y < OH; y++) {
		int y0, y1;
		float ly;
		axis_coords(H, OH, y, &y0, &y1, &ly);
		for (int x = 0; x < OW; x++) {
			int x0, x1;
			float lx;
			axis_coords(W, OW, x, &x0, &x1, &lx);
			for (int c = 0; c < C; c++) {
				const float *p = src + (size_t)c * H * W;
				float top = (1 - lx) * p[(size_t)y0 * W + x0] + lx * p[(size_t)y0 * W + x1];
				float bot = (1 - lx) * p[(size_t)y1 * W + x0] + lx * p[(size_t)y1 * W + x1];
				dst[((size_t)c * OH + y) * OW + x] = (1 - ly) * top + ly * bot;
			}
		}
	}
}

int lvd_attnmap_acc_init(struct lvd_attnmap_acc *acc, int n_ctx, int tok_first, int T,
			 int lat_h, int lat_w, int gh, int gw, unsigned levels, struct lvd_error *err)
{
	memset(acc, 0, sizeof *acc);
	if (n_ctx < 1 || tok_first < 0 || T < 1 || tok_first > n_ctx - T)
		return lvd_error_set(err, LVD_ERR_INVALID, "token range [%d, %d) outside context %d",
				     tok_first, tok_first + T, n_ctx);
	if (lat_h < 1 || lat_w < 1 || gh < 1 || gw < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "bad latent %dx%d or grid %dx%d",
				     lat_h, lat_w, gh, gw);
	size_t n;
	if (lvd_size_mul4(&n, (size_t)T, (size_t)gh, (size_t)gw, 1) ||
	    !(acc->sum = lvd_calloc_array(n, sizeof(float))))
		return lvd_error_set(err, LVD_ERR_NOMEM, "attention map accumulator (%d x %d x %d)", T, gh, gw);
	acc->n_ctx = n_ctx;
	acc->tok_first = tok_first;
	acc->T = T;
	acc->lat_h = lat_h;
	acc->lat_w = lat_w;
	acc->gh = gh;
	acc->gw = gw;
	acc->levels = levels;
	return LVD_OK;
}

int lvd_attnmap_acc_add(struct lvd_attnmap_acc *acc, const float *map, int H, int W)
{
	int k = lvd_attnmap_layer_level(acc->lat_h, acc->lat_w, H, W);
	if (k < 0 || !(acc->levels & (1u << k)))
		return 0;
	const size_t N = (size_t)acc->n_ctx, T = (size_t)acc->T;
	const float *m = map + acc->tok_first;
	for (int y = 0; y < acc->gh; y++) {
		int y0, y1;
		float ly;
		axis_coords(H, acc->gh, y, &y0, &y1, &ly);
		for (int x = 0; x < acc->gw; x++) {
			int x0, x1;
			float lx;
			axis_coords(W, acc->gw, x, &x0, &x1, &lx);
			const float *p00 = m + ((size_t)y0 * W + x0) * N, *p01 = m + ((size_t)y0 * W + x1) * N;
			const float *p10 = m + ((size_t)y1 * W + x0) * N, *p11 = m + ((size_t)y1 * W + x1) * N;
			float *o = acc->sum + (size_t)y * acc->gw + x;
			const size_t plane = (size_t)acc->gh * acc->gw;
			for (size_t t = 0; t < T; t++) {
				float top = (1 - lx) * p00[t] + lx * p01[t];
				float bot = (1 - lx) * p10[t] + lx * p11[t];
				o[t * plane] += (1 - ly) * top + ly * bot;
			}
		}
	}
	acc->n_added++;
	return 1;
}

int lvd_attnmap_map_add(struct lvd_ctx *ctx, const struct lvd_attnmap_acc *acc, float *dst, const float *map, int H,
			int W)
{
	int k = lvd_attnmap_layer_level(acc->lat_h, acc->lat_w, H, W);
	if (k < 0 || !(acc->levels & (1u << k)))
		return 0;
	lvd_resample_bilinear_tok_add(ctx, dst, map + acc->tok_first, acc->n_ctx, acc->T, H, W, acc->gh, acc->gw);
	return 1;
}

void lvd_attnmap_sum_add(struct lvd_ctx *ctx, const struct lvd_attnmap_acc *acc, float *sum, const float *map)
{
	lvd_add(ctx, sum, map, (size_t)acc->T * acc->gh * acc->gw);
}

int lvd_attnmap_acc_mean(const struct lvd_attnmap_acc *acc, float *out, struct lvd_error *err)
{
	if (!acc->n_added)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "no attention layer matched the selected levels (latent %dx%d)",
				     acc->lat_w, acc->lat_h);
	size_t n = (size_t)acc->T * acc->gh * acc->gw;
	float cnt = (float)acc->n_added;
	for (size_t i = 0; i < n; i++)
		out[i] = acc->sum[i] / cnt;
	return LVD_OK;
}

void lvd_attnmap_acc_free(struct lvd_attnmap_acc *acc)
{
	if (!acc)
		return;
	free(acc->sum);
	acc->sum = NULL;
}

void lvd_attnmap_stats(struct lvd_attnmap_stats *s, const float *map, size_t n)
{
	double mn = n ? map[0] : 0, mx = n ? map[0] : 0, sum = 0;
	for (size_t i = 0; i < n; i++) {
		double v = map[i];
		if (v < mn)
			mn = v;
		if (v > mx)
			mx = v;
		sum += v;
	}
	s->min = (float)mn;
	s->max = (float)mx;
	s->sum = (float)sum;
	s->mean = n ? (float)(sum / (double)n) : 0.0f;
}
