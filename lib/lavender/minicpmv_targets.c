/* lib/lavender/minicpmv_targets.c — word maps onto MiniCPM-V picture grids (see the
 * header): two resamplers built from geometry.h's area-overlap axes. */
#include "lavender/minicpmv_targets.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* a resampler onto dh x dw cells tiling the whole image (extent H x W) */
static int whole_image(struct lvd_geom_resampler *r, int src_h, int src_w, int dh, int dw, int H, int W,
		       struct lvd_error *err)
{
	memset(r, 0, sizeof *r);
	r->src_h = src_h, r->src_w = src_w, r->dst_h = dh, r->dst_w = dw;
	int rc = lvd_geom_axis_init(&r->ay, src_h, dh, H, (double)H / dh, err);
	if (!rc)
		rc = lvd_geom_axis_init(&r->ax, src_w, dw, W, (double)W / dw, err);
	if (rc)
		return rc;
	size_t n = (size_t)dh * dw;
	r->valid = malloc(n);
	r->tmp = lvd_alloc_array((size_t)src_w * dh, sizeof *r->tmp);
	if (!r->valid || !r->tmp)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory for a %dx%d target grid", dw, dh);
	memset(r->valid, 1, n);
	return 0;
}

int lvd_minicpmv_targets_init(struct lvd_minicpmv_targets *t, const struct lvd_minicpmv_geom *g, int src_h,
			      int src_w, struct lvd_error *err)
{
	memset(t, 0, sizeof *t);
	if (src_h < 1 || src_w < 1 || src_h > 1 << 14 || src_w > 1 << 14)
		return lvd_error_set(err, LVD_ERR_INVALID, "map grid %dx%d out of range", src_w, src_h);
	if (g->n < 1 || g->W < 1 || g->H < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv targets: empty geometry");
	t->n = g->n;
	for (int i = 0; i < g->n; i++)
		t->total += (size_t)g->pic[i].th * g->pic[i].tw;
	int rc = whole_image(&t->src, src_h, src_w, g->pic[0].th, g->pic[0].tw, g->H, g->W, err);
	if (!rc && g->n > 1) {
		t->cols = g->cols, t->rows = g->rows, t->th = g->pic[1].th, t->tw = g->pic[1].tw;
		rc = whole_image(&t->canvas, src_h, src_w, t->rows * t->th, t->cols * t->tw, g->H, g->W, err);
		if (!rc && !(t->buf = lvd_alloc_array((size_t)t->rows * t->th * t->cols * t->tw, sizeof *t->buf)))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory for the slice canvas");
	}
	if (rc)
		lvd_minicpmv_targets_free(t);
	return rc;
}

void lvd_minicpmv_targets_free(struct lvd_minicpmv_targets *t)
{
	if (!t)
		return;
	lvd_geom_resampler_free(&t->src);
	lvd_geom_resampler_free(&t->canvas);
	free(t->buf);
	memset(t, 0, sizeof *t);
}

void lvd_minicpmv_targets_apply(struct lvd_minicpmv_targets *t, float *dst, const float *src)
{
	lvd_geom_resample(&t->src, dst, src);
	if (t->n <= 1)
		return;
	lvd_geom_resample(&t->canvas, t->buf, src);
	float *d = dst + (size_t)t->src.dst_h * t->src.dst_w;
	const size_t cw = (size_t)t->cols * t->tw;
	for (int r = 0; r < t->rows; r++)
		for (int c = 0; c < t->cols; c++)
			for (int y = 0; y < t->th; y++, d += t->tw)
				memcpy(d, t->buf + ((size_t)r * t->th + y) * cw + (size_t)c * t->tw, (size_t)t->tw * sizeof *d);
}
