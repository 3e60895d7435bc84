/* lib/lavender/attnmap.h — aggregation of Stable Diffusion cross-attention maps into
 * per-token maps on an output grid (stage one of Lavender, DESIGN §5).
 *
 * Dimension letters in this file: N context length of the text encoder (77 for SD),
 * T kept caption tokens, H×W a UNet layer's map size, GH×GW the output grid.
 *
 * Geometry (lvd_attnmap_geometry): an image of img_w×img_h is resized keeping its
 * aspect ratio so that its longer side is R = --resolution; the shorter side is
 * round(short·R/long / 64)·64, at least 64 (so sd_w, sd_h are multiples of 64 and no
 * crop happens). The latent grid is sd/8. The default output grid is latent/2 per side
 * (32×32 at 512², 32×24 at 512×384); an explicit grid G makes the longer side G and the
 * shorter side max(1, round(G·lat_short/lat_long)).
 *
 * Layer levels: an attn2 layer whose map is H×W on a latent of LH×LW has level k when
 * LH = H·2^k and LW = W·2^k (k = 0..3 for SD 1.x/2.x: 64², 32², 16², 8² at 512²). The
 * option --layers names layers by their side at a square R input (R/8 ... R/64, e.g.
 * "16,32" at 512), parsed into a bit mask of levels (lvd_attnmap_parse_layers).
 *
 * Interpolation: every selected layer map is resized to GH×GW with bilinear
 * interpolation, half-pixel centres, edge clamping and no antialiasing — exactly
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False):
 *     for output row y: s = max(0, (y + 0.5)·H/GH − 0.5), y0 = floor(s),
 *     y1 = min(y0 + 1, H − 1), ly = s − y0 (and likewise for columns);
 *     out = (1−ly)((1−lx)·m[y0][x0] + lx·m[y0][x1]) + ly((1−lx)·m[y1][x0] + lx·m[y1][x1]).
 * Aggregation is the plain mean over every added layer map (selected layers ×
 * timesteps × noise draws, each weighted equally), accumulated in fp32 in the order
 * the maps are added.
 *
 * Kept tokens: only the caption's real tokens, context positions 1..T (BOS at 0, EOS
 * and padding after T are dropped). */
#ifndef LVD_LAVENDER_ATTNMAP_H
#define LVD_LAVENDER_ATTNMAP_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_ATTNMAP_MAX_LEVEL 3   /* levels 0..3: latent, /2, /4, /8 */

struct lvd_attnmap_geom {
	int img_w, img_h;   /* decoded image */
	int sd_w, sd_h;     /* SD input size, multiples of 64 */
	int lat_w, lat_h;   /* sd / 8 */
	int grid_w, grid_h; /* output grid */
};

/* Fills g for an image and the options. resolution: multiple of 64 in [64, 4096];
 * grid: 0 for the default (latent / 2), else the longer side of the grid in [1, 1024].
 * LVD_ERR_INVALID when an argument is out of range or the image has a side < 1. */
int lvd_attnmap_geometry(struct lvd_attnmap_geom *g, int img_w, int img_h, int resolution,
			 int grid, struct lvd_error *err);

/* Level k of a H×W layer map on a LH×LW latent (see above), or -1 when it is none. */
int lvd_attnmap_layer_level(int lat_h, int lat_w, int h, int w);

/* Parses "16,32" (layer sides at a square `resolution` input) into a bit mask of
 * levels (bit k set = level k selected). Each value must be resolution/8/2^k for some
 * k in 0..3; duplicates are refused. LVD_ERR_INVALID naming the bad value otherwise. */
int lvd_attnmap_parse_layers(const char *s, int resolution, unsigned *mask, struct lvd_error *err);

/* Default --layers mask: levels 1 and 2 (32² and 16² at 512², as prompt-to-prompt/DAAM). */
#define LVD_ATTNMAP_DEFAULT_LAYERS ((1u << 1) | (1u << 2))

/* Writes the mask back as a "16,32" string (ascending sides) into buf. */
void lvd_attnmap_format_layers(char *buf, size_t cap, unsigned mask, int resolution);

/* Bilinear resize (formula above) of C planes [C][H][W] into dst [C][OH][OW]. */
void lvd_attnmap_resize_bilinear(float *dst, const float *src, int C, int H, int W, int OH, int OW);

/* Accumulator for one sample: sum[T][GH][GW] of the resized maps of tokens
 * [tok_first, tok_first + T) and the number of maps added. */
struct lvd_attnmap_acc {
	int n_ctx;          /* N: keys per query in the maps given to add */
	int tok_first, T;   /* kept token range */
	int lat_h, lat_w;   /* latent grid, for the level of each layer map */
	int gh, gw;         /* output grid */
	unsigned levels;    /* selected levels (bit mask) */
	uint32_t n_added;   /* maps accumulated so far */
	float *sum;         /* [T][GH][GW], owned */
};

/* Allocates the accumulator (zeroed). Needs 0 <= tok_first, T >= 1,
 * tok_first + T <= n_ctx, positive sizes; LVD_ERR_INVALID / LVD_ERR_NOMEM otherwise. */
int lvd_attnmap_acc_init(struct lvd_attnmap_acc *acc, int n_ctx, int tok_first, int T,
			 int lat_h, int lat_w, int gh, int gw, unsigned levels, struct lvd_error *err);

/* Adds one head-averaged layer map `map` [H·W][N] (query-major, as attention produces
 * it: map[(y·W + x)·N + n]) when its level is selected: resizes tokens
 * [tok_first, tok_first+T) to the grid and adds them to sum. Returns 1 when added, 0
 * when the layer's level is not selected or is none. Accumulates; never allocates. */
int lvd_attnmap_acc_add(struct lvd_attnmap_acc *acc, const float *map, int H, int W);

/* The device-agnostic form of lvd_attnmap_acc_add's resize, by an op on ctx (map and
 * dst are memory of ctx): dst[T][GH][GW] += the kept tokens of map [H·W][N] resized to
 * the grid (lvd_resample_bilinear_tok_add: the fp32 arithmetic of lvd_attnmap_acc_add).
 * Into a zeroed dst that is the resized map itself, which added to a sum by
 * lvd_attnmap_sum_add gives, on the CPU, the bits of lvd_attnmap_acc_add. acc->sum and
 * n_added are not touched. Returns 1 when the layer's level is selected, 0 when not
 * (dst untouched). */
struct lvd_ctx;
int lvd_attnmap_map_add(struct lvd_ctx *ctx, const struct lvd_attnmap_acc *acc, float *dst, const float *map, int H,
			int W);

/* sum[T][GH][GW] += map (a lvd_attnmap_map_add result) by lvd_add on ctx (both
 * memory of ctx): the accumulation step of lvd_attnmap_acc_add, same bits on the CPU. */
void lvd_attnmap_sum_add(struct lvd_ctx *ctx, const struct lvd_attnmap_acc *acc, float *sum, const float *map);

/* out[T][GH][GW] = sum / n_added. LVD_ERR_INVALID when no map was added (e.g. --layers
 * selects levels the model does not have at this size). */
int lvd_attnmap_acc_mean(const struct lvd_attnmap_acc *acc, float *out, struct lvd_error *err);

void lvd_attnmap_acc_free(struct lvd_attnmap_acc *acc);

/* Statistics of one map, computed in double over the fp32 values. */
struct lvd_attnmap_stats {
	float min, max, mean, sum;
};
void lvd_attnmap_stats(struct lvd_attnmap_stats *s, const float *map, size_t n);

#ifdef __cplusplus
}
#endif
#endif
