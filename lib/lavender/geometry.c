/* Image layout on the mllama patch canvas and area-weighted map resampling (see geometry.h). */
#include "lavender/geometry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json.h"
#include "models/mllama/mllama.h"

void lvd_geom_cfg_default(struct lvd_geom_cfg *cfg)
{
	cfg->tile_size = 560;
	cfg->patch_size = 14;
	cfg->max_tiles = 4;
}

int lvd_geom_cfg_check(const struct lvd_geom_cfg *cfg, struct lvd_error *err)
{
	if (cfg->tile_size < 1 || cfg->tile_size > 8192)
		return lvd_error_set(err, LVD_ERR_INVALID, "tile size %d out of range [1, 8192]", cfg->tile_size);
	if (cfg->patch_size < 1 || cfg->tile_size % cfg->patch_size != 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "patch size %d does not divide tile size %d",
				     cfg->patch_size, cfg->tile_size);
	if (cfg->max_tiles < 1 || cfg->max_tiles > LVD_GEOM_MAX_TILES)
		return lvd_error_set(err, LVD_ERR_INVALID, "max_image_tiles %d out of range [1, %d]",
				     cfg->max_tiles, LVD_GEOM_MAX_TILES);
	return LVD_OK;
}

int lvd_geom_cfg_from_json(struct lvd_geom_cfg *cfg, const char *json, size_t len, const char *name,
			   struct lvd_error *err)
{
	struct lvd_json j;
	int rc = lvd_json_parse(&j, name, json, len, err);
	if (rc)
		return rc;
	const int MAX = 1 << 20;
	int h = 0, w = 0;
	json_t *vc = lvd_json_find(&j, "vision_config");
	if (vc && !json_is_object(vc)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: 'vision_config' is not an object", name);
		goto out;
	}
	if ((rc = lvd_json_get_i32_or(&j, "vision_config.image_size", cfg->tile_size, 1, MAX, &cfg->tile_size, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "vision_config.patch_size", cfg->patch_size, 1, MAX, &cfg->patch_size, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "vision_config.max_num_tiles", cfg->max_tiles, 1, MAX, &cfg->max_tiles, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "max_image_tiles", cfg->max_tiles, 1, MAX, &cfg->max_tiles, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "patch_size", cfg->patch_size, 1, MAX, &cfg->patch_size, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "size.height", 0, 1, MAX, &h, err)) ||
	    (rc = lvd_json_get_i32_or(&j, "size.width", 0, 1, MAX, &w, err)))
		goto out;
	if (h && w && h != w) {
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: size %dx%d is not square", name, h, w);
		goto out;
	}
	if (h)
		cfg->tile_size = h;
	rc = lvd_geom_cfg_check(cfg, err);
	if (rc)
		lvd_error_prefix(err, "%s: ", name);
out:
	lvd_json_release(&j);
	return rc;
}

int lvd_geom_aspects(int max_tiles, int aspects[][2])
{
	LVD_ASSERT(max_tiles >= 1 && max_tiles <= LVD_GEOM_MAX_TILES);
	return lvd_mllama_aspect_ratios(max_tiles, aspects);
}

int lvd_geom_layout(struct lvd_geom *g, const struct lvd_geom_cfg *cfg, int img_h, int img_w,
		    struct lvd_error *err)
{
	int rc = lvd_geom_cfg_check(cfg, err);
	if (rc)
		return rc;
	if (img_h < 1 || img_w < 1 || img_h > 1 << 20 || img_w > 1 << 20)
		return lvd_error_set(err, LVD_ERR_INVALID, "image size %dx%d out of range", img_w, img_h);
	/* the canvas choice and resize extent are the mllama image processor's own
	 * (lib/models/mllama, the same code that makes the pixels) */
	struct lvd_mllama_image_cfg ic;
	lvd_mllama_image_cfg_default(&ic);
	ic.tile = cfg->tile_size;
	ic.max_tiles = cfg->max_tiles;
	memset(g, 0, sizeof *g);
	g->img_h = img_h;
	g->img_w = img_w;
	lvd_mllama_image_canvas(&ic, img_h, img_w, &g->tiles_h, &g->tiles_w, &g->new_h, &g->new_w);
	int asp[LVD_GEOM_MAX_ASPECTS][2];
	int na = lvd_geom_aspects(cfg->max_tiles, asp);
	for (int i = 0; i < na; i++)
		if (asp[i][0] == g->tiles_h && asp[i][1] == g->tiles_w)
			g->aspect_id = i + 1;
	LVD_ASSERT(g->aspect_id > 0);
	const int S = cfg->tile_size;
	g->canvas_h = g->tiles_h * S;
	g->canvas_w = g->tiles_w * S;
	const int p = cfg->patch_size;
	g->patches = S / p;
	g->grid_h = g->tiles_h * g->patches;
	g->grid_w = g->tiles_w * g->patches;
	g->valid_h = (g->new_h + p - 1) / p;
	g->valid_w = (g->new_w + p - 1) / p;
	return LVD_OK;
}

void lvd_geom_axis_free(struct lvd_geom_axis *ax)
{
	free(ax->first);
	free(ax->cnt);
	free(ax->off);
	free(ax->w);
	free(ax->total);
	memset(ax, 0, sizeof *ax);
}

int lvd_geom_axis_init(struct lvd_geom_axis *ax, int n_src, int n_dst, double extent, double step,
		       struct lvd_error *err)
{
	memset(ax, 0, sizeof *ax);
	if (n_src < 1 || n_dst < 1 || n_src > 1 << 20 || n_dst > 1 << 20 || !(extent > 0) || !(step > 0))
		return lvd_error_set(err, LVD_ERR_INVALID, "bad resampling axis (%d -> %d, extent %g, step %g)",
				     n_src, n_dst, extent, step);
	ax->n_src = n_src;
	ax->n_dst = n_dst;
	ax->first = lvd_alloc_array((size_t)n_dst, sizeof(int));
	ax->cnt = lvd_alloc_array((size_t)n_dst, sizeof(int));
	ax->off = lvd_alloc_array((size_t)n_dst, sizeof(int));
	ax->total = lvd_alloc_array((size_t)n_dst, sizeof(double));
	if (!ax->first || !ax->cnt || !ax->off || !ax->total)
		goto nomem;
	const double cell = extent / n_src;
	/* pass 1: ranges; a target overlaps source cells [i0, i1) */
	size_t nw = 0;
	for (int t = 0; t < n_dst; t++) {
		double a = t * step, b = (t + 1) * step;
		if (b > extent)
			b = extent;
		ax->off[t] = (int)nw;
		if (!(a < b)) {
			ax->first[t] = 0;
			ax->cnt[t] = 0;
			continue;
		}
		/* cells are [i·extent/n, (i+1)·extent/n); compute with the exact products to
		 * avoid drift, then widen by one and drop zero overlaps below */
		int i0 = (int)floor(a / cell) - 1, i1 = (int)ceil(b / cell) + 1;
		if (i0 < 0)
			i0 = 0;
		if (i1 > n_src)
			i1 = n_src;
		ax->first[t] = i0;
		ax->cnt[t] = i1 - i0;
		nw += (size_t)(i1 - i0);
	}
	ax->w = lvd_calloc_array(nw ? nw : 1, sizeof(double));
	if (!ax->w)
		goto nomem;
	for (int t = 0; t < n_dst; t++) {
		double a = t * step, b = (t + 1) * step, tot = 0;
		if (b > extent)
			b = extent;
		for (int k = 0; k < ax->cnt[t]; k++) {
			int i = ax->first[t] + k;
			double c0 = extent * i / n_src, c1 = extent * (i + 1) / n_src;
			double lo = a > c0 ? a : c0, hi = b < c1 ? b : c1;
			double w = hi > lo ? hi - lo : 0;
			ax->w[ax->off[t] + k] = w;
			tot += w;
		}
		ax->total[t] = tot;
	}
	return LVD_OK;
nomem:
	lvd_geom_axis_free(ax);
	return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory for resampling weights");
}

void lvd_geom_resampler_free(struct lvd_geom_resampler *r)
{
	lvd_geom_axis_free(&r->ay);
	lvd_geom_axis_free(&r->ax);
	free(r->valid);
	free(r->tmp);
	memset(r, 0, sizeof *r);
}

int lvd_geom_resampler_init(struct lvd_geom_resampler *r, const struct lvd_geom *g, int src_h, int src_w,
			    int grid, struct lvd_error *err)
{
	memset(r, 0, sizeof *r);
	if (src_h < 1 || src_w < 1 || src_h > 1 << 14 || src_w > 1 << 14)
		return lvd_error_set(err, LVD_ERR_INVALID, "map grid %dx%d out of range", src_w, src_h);
	if (grid < 0 || grid > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "--grid %d out of range [1, 4096]", grid);
	int rc;
	r->src_h = src_h;
	r->src_w = src_w;
	if (grid > 0) {
		r->dst_h = r->dst_w = grid;
		/* footprints in image pixels of the resized extent; any common unit works */
		rc = lvd_geom_axis_init(&r->ay, src_h, grid, g->new_h, (double)g->new_h / grid, err);
		if (!rc)
			rc = lvd_geom_axis_init(&r->ax, src_w, grid, g->new_w, (double)g->new_w / grid, err);
	} else {
		r->dst_h = g->grid_h;
		r->dst_w = g->grid_w;
		double p = (double)g->canvas_h / g->grid_h;
		rc = lvd_geom_axis_init(&r->ay, src_h, g->grid_h, g->new_h, p, err);
		if (!rc)
			rc = lvd_geom_axis_init(&r->ax, src_w, g->grid_w, g->new_w, p, err);
	}
	if (rc) {
		lvd_geom_resampler_free(r);
		return rc;
	}
	size_t n = (size_t)r->dst_h * r->dst_w;
	r->valid = malloc(n);
	r->tmp = lvd_alloc_array((size_t)src_w * r->dst_h, sizeof(float));
	if (!r->valid || !r->tmp) {
		lvd_geom_resampler_free(r);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory for a %dx%d canvas", r->dst_w, r->dst_h);
	}
	for (int y = 0; y < r->dst_h; y++)
		for (int x = 0; x < r->dst_w; x++)
			r->valid[(size_t)y * r->dst_w + x] = r->ay.total[y] > 0 && r->ax.total[x] > 0;
	return LVD_OK;
}

void lvd_geom_resample(struct lvd_geom_resampler *r, float *dst, const float *src)
{
	const int sw = r->src_w, dh = r->dst_h, dw = r->dst_w;
	/* rows: tmp[y][j] = Σ_i wy·src[i][j] / Σ wy */
	for (int y = 0; y < dh; y++) {
		float *t = r->tmp + (size_t)y * sw;
		double tot = r->ay.total[y];
		if (!(tot > 0)) {
			memset(t, 0, (size_t)sw * sizeof *t);
			continue;
		}
		const double *w = r->ay.w + r->ay.off[y];
		for (int j = 0; j < sw; j++) {
			double acc = 0;
			for (int k = 0; k < r->ay.cnt[y]; k++)
				acc += w[k] * src[(size_t)(r->ay.first[y] + k) * sw + j];
			t[j] = (float)(acc / tot);
		}
	}
	/* columns */
	for (int y = 0; y < dh; y++) {
		const float *t = r->tmp + (size_t)y * sw;
		float *d = dst + (size_t)y * dw;
		int rowok = r->ay.total[y] > 0;
		for (int x = 0; x < dw; x++) {
			double tot = r->ax.total[x];
			if (!rowok || !(tot > 0)) {
				d[x] = 0;
				continue;
			}
			const double *w = r->ax.w + r->ax.off[x];
			const float *s = t + r->ax.first[x];
			double acc = 0;
			for (int k = 0; k < r->ax.cnt[x]; k++)
				acc += w[k] * s[k];
			d[x] = (float)(acc / tot);
		}
	}
}

void lvd_minmax_norm(float *x, const uint8_t *valid, size_t n, float eps, float *mn, float *mx)
{
	float lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < n; i++)
		if (!valid || valid[i]) {
			if (x[i] < lo)
				lo = x[i];
			if (x[i] > hi)
				hi = x[i];
		}
	if (!(lo <= hi))
		lo = hi = 0; /* no valid cell */
	float den = hi - lo + eps; /* as the reference: (x - min) / (max - min + eps) in fp32 */
	for (size_t i = 0; i < n; i++)
		x[i] = (!valid || valid[i]) ? (x[i] - lo) / den : 0.0f;
	if (mn)
		*mn = lo;
	if (mx)
		*mx = hi;
}
