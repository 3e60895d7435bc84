/* lib/lavender/geometry.h — where an image lands on the VLM's patch grid, and moving
 * Stable Diffusion word maps onto that grid.
 *
 * mllama (Llama-3.2-Vision) layout, exactly as transformers' MllamaImageProcessor computes
 * it (image_processing_mllama.py: get_all_supported_aspect_ratios,
 * get_optimal_tiled_canvas, get_image_size_fit_to_canvas). The canvas choice and the
 * resize extent come from lib/models/mllama (lvd_mllama_image_canvas, the code that
 * makes the pixels), so targets and pixels cannot disagree; this header documents the
 * rule and adds the patch grid, validity and resampling:
 *
 *   supported arrangements: for a in 1..T, for b in 1..T, a·b <= T  ->  (a, b), used as
 *     (tiles_high, tiles_wide); aspect_ratio_id = index + 1 (0 means "no image").
 *     T = 4 gives (1,1) (1,2) (1,3) (1,4) (2,1) (2,2) (3,1) (4,1).
 *   canvas choice: canvas (a·S, b·S) for tile size S; scale = min(a·S/h, b·S/w) in double;
 *     if any scale >= 1 take the smallest such scale, else the largest scale < 1; ties
 *     (equal scale) go to the smallest canvas area, then to the earlier arrangement.
 *   resize extent: tw = clamp(w, S, canvas_w), th = clamp(h, S, canvas_h);
 *     if tw/w < th/h: new_w = tw, new_h = min(floor(h·(tw/w)) or 1, th)
 *     else:           new_h = th, new_w = min(floor(w·(th/h)) or 1, tw)
 *   The resized image sits at the top-left of the canvas; the rest is padding.
 *   Patches: P = S / patch px per tile side (560/14 = 40); the patch canvas is
 *     [tiles_high·P, tiles_wide·P], patch (y, x) covering canvas pixels
 *     [y·p, (y+1)·p) × [x·p, (x+1)·p) for patch size p.
 *
 * Map resampling (area-weighted, separable). An SD map [gh, gw] covers the whole image,
 * so source cell (i, j) covers the image-extent rectangle
 *   rows [i·new_h/gh, (i+1)·new_h/gh) × cols [j·new_w/gw, (j+1)·new_w/gw) in canvas px.
 * Target patch (y, x) has footprint F = [y·p, (y+1)·p) ∩ [0, new_h) × [x·p, (x+1)·p) ∩ [0, new_w)
 * and value
 *   t[y][x] = Σ_ij |F ∩ cell_ij| · s[i][j]  /  Σ_ij |F ∩ cell_ij|
 * i.e. the area-weighted mean of the source cells overlapping the part of the patch the
 * image covers; valid[y][x] = 1 iff F is non-empty (y·p < new_h and x·p < new_w), and
 * invalid patches get 0. Because the weights factor into a row overlap times a column
 * overlap, the result is computed as two 1-D passes (rows, then columns).
 * With --grid N the footprint of target (y, x) is [y·H/N, (y+1)·H/N) × [x·W/N, (x+1)·W/N)
 * of the whole image, every cell is valid, and the same formula applies.
 * Mass is conserved: Σ t[y][x]·|F_yx| = Σ s[i][j]·|cell_ij| (over the image extent). */
#ifndef LVD_LAVENDER_GEOMETRY_H
#define LVD_LAVENDER_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_GEOM_MAX_TILES 8       /* upper bound accepted for max_image_tiles (the mllama
                                      * image processor's limit) */
#define LVD_GEOM_MAX_ASPECTS 64    /* arrangements with a·b <= 8: 20 */

/* The VLM's vision-side constants (config.json vision_config / preprocessor_config.json). */
struct lvd_geom_cfg {
	int tile_size;   /* S: image_size, 560 for Llama-3.2-Vision */
	int patch_size;  /* p: 14 */
	int max_tiles;   /* T: max_image_tiles / max_num_tiles, 4 */
};

/* Layout of one image, all integers. */
struct lvd_geom {
	int img_h, img_w;          /* original image */
	int tiles_h, tiles_w;      /* chosen arrangement (tiles high, tiles wide) */
	int aspect_id;             /* 1-based index into the supported list */
	int canvas_h, canvas_w;    /* tiles·S pixels */
	int new_h, new_w;          /* resized image extent at the canvas' top-left */
	int patches;               /* P = S/p patches per tile side */
	int grid_h, grid_w;        /* patch canvas tiles·P */
	int valid_h, valid_w;      /* patch rows/cols touching the image: ceil(new/p) */
};

/* Llama-3.2-Vision defaults: 560, 14, 4. */
void lvd_geom_cfg_default(struct lvd_geom_cfg *cfg);

/* Checks cfg: tile_size in [1, 8192], patch_size divides tile_size, max_tiles in
 * [1, LVD_GEOM_MAX_TILES]. LVD_ERR_INVALID naming the field. */
int lvd_geom_cfg_check(const struct lvd_geom_cfg *cfg, struct lvd_error *err);

/* Reads the constants from a JSON text: a transformers config.json (vision_config:
 * image_size, patch_size, max_num_tiles) or a preprocessor_config.json (size.height,
 * max_image_tiles); fields absent keep the values already in *cfg. `name` is used in
 * error messages. */
int lvd_geom_cfg_from_json(struct lvd_geom_cfg *cfg, const char *json, size_t len,
			   const char *name, struct lvd_error *err);

/* Fills aspects[i][0..1] = (tiles_high, tiles_wide) in transformers' order; returns the
 * count (<= LVD_GEOM_MAX_ASPECTS). max_tiles must be in [1, LVD_GEOM_MAX_TILES]. */
int lvd_geom_aspects(int max_tiles, int aspects[][2]);

/* Layout of an img_h × img_w image (both >= 1 and <= 1<<20). LVD_ERR_INVALID otherwise. */
int lvd_geom_layout(struct lvd_geom *g, const struct lvd_geom_cfg *cfg, int img_h, int img_w,
		    struct lvd_error *err);

/* Precomputed 1-D overlap weights for one axis: target t receives
 * Σ_k w[off[t]+k]·src[first[t]+k] for k < cnt[t]; w are overlap lengths (not normalised).
 * Owned arrays; free with lvd_geom_axis_free. */
struct lvd_geom_axis {
	int n_src, n_dst;
	int *first, *cnt, *off;    /* [n_dst] */
	double *w;                 /* [Σ cnt] */
	double *total;             /* [n_dst] Σ w for the target (0 = invalid) */
};

/* Axis weights: source cells split `extent` px into n_src equal cells; target t covers
 * [t·step, (t+1)·step) ∩ [0, extent). n_dst targets. step > 0, extent > 0. */
int lvd_geom_axis_init(struct lvd_geom_axis *ax, int n_src, int n_dst, double extent, double step,
		       struct lvd_error *err);
void lvd_geom_axis_free(struct lvd_geom_axis *ax);

/* A resampler: the two axes plus the validity mask, built once per (layout, source grid)
 * and applied to every word map of the sample. */
struct lvd_geom_resampler {
	int src_h, src_w, dst_h, dst_w;
	struct lvd_geom_axis ay, ax;
	uint8_t *valid;            /* [dst_h·dst_w], owned */
	float *tmp;                /* [src_w·dst_h] scratch, owned */
};

/* Onto the patch canvas of g (dst = grid_h × grid_w) when grid == 0, or onto grid × grid
 * covering the whole image when grid > 0. src_h, src_w >= 1. */
int lvd_geom_resampler_init(struct lvd_geom_resampler *r, const struct lvd_geom *g, int src_h,
			    int src_w, int grid, struct lvd_error *err);
void lvd_geom_resampler_free(struct lvd_geom_resampler *r);

/* dst[dst_h·dst_w] = resampled src[src_h·src_w] (formula above); invalid cells get 0.
 * Not thread-safe per resampler (uses r->tmp). */
void lvd_geom_resample(struct lvd_geom_resampler *r, float *dst, const float *src);

/* Min-max normalisation over the valid cells (all when valid is NULL):
 * x' = (x - min) / (max - min + eps) on valid cells, 0 elsewhere. Writes *mn, *mx (may be
 * NULL). n >= 1. */
void lvd_minmax_norm(float *x, const uint8_t *valid, size_t n, float eps, float *mn, float *mx);

#ifdef __cplusplus
}
#endif
#endif
