/* lib/lavender/minicpmv_targets.h — Stable Diffusion word maps onto the patch grids of
 * the MiniCPM-V-2.5 pictures of one image (lvd-pack's targets for MiniCPM; issue #18).
 *
 * A word map [src_h, src_w] covers the whole original image. Picture 0 (the source)
 * shows the whole image on a th0 x tw0 patch grid; slice (r, c) shows the cell
 * [c·W/cols, (c+1)·W/cols) x [r·H/rows, (r+1)·H/rows) on a th x tw grid (all slices
 * have one size). The slices' grids therefore tile one canvas of rows·th x cols·tw
 * patches over the whole image, slice (r, c) being its block of rows r·th.. and columns
 * c·tw... Both grids are filled with the area-weighted resampling of geometry.h
 * (lvd_geom_axis: every target cell the area-weighted mean of the source cells it
 * overlaps; every cell is valid since the pictures show image pixels only), the canvas
 * once, then cut. Output: per picture its th_i·tw_i patches in row-major patch order
 * (the strip order of the forward, patch l = py·tw + px), pictures in processor order
 * (source, then slices row-major), back to back. */
#ifndef LVD_LAVENDER_MINICPMV_TARGETS_H
#define LVD_LAVENDER_MINICPMV_TARGETS_H

#include <stddef.h>

#include "core/error.h"
#include "lavender/geometry.h"
#include "models/minicpmv/minicpmv_proc.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_minicpmv_targets {
	int n;                              /* pictures */
	size_t total;                       /* Σ th_i·tw_i: floats written per map */
	int cols, rows, th, tw;             /* slice grid and one slice's patches (0 unsliced) */
	struct lvd_geom_resampler src;      /* onto the source picture's grid */
	struct lvd_geom_resampler canvas;   /* onto the slices' canvas (unused when unsliced) */
	float *buf;                         /* [rows·th · cols·tw] scratch */
};

/* Builds the resamplers for maps of src_h x src_w (1..16384) and the pictures of g.
 * *t zeroed first; free with lvd_minicpmv_targets_free. Errors: LVD_ERR_INVALID (sizes),
 * LVD_ERR_NOMEM. */
int lvd_minicpmv_targets_init(struct lvd_minicpmv_targets *t, const struct lvd_minicpmv_geom *g, int src_h,
			      int src_w, struct lvd_error *err);
void lvd_minicpmv_targets_free(struct lvd_minicpmv_targets *t);

/* dst[t->total] = src [src_h·src_w] on every picture's patch grid (layout above).
 * Not thread-safe per object (scratch). */
void lvd_minicpmv_targets_apply(struct lvd_minicpmv_targets *t, float *dst, const float *src);

#ifdef __cplusplus
}
#endif
#endif
