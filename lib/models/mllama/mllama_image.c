/* lib/models/mllama/mllama_image.c — MllamaImageProcessor (PIL backend of transformers
 * 5.x): canvas choice among the supported aspect ratios, PIL bilinear resize of the
 * uint8 image, zero pad bottom/right, rescale 1/255, normalise, split into tiles; and
 * the processor's cross-attention token mask. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "models/mllama/mllama.h"

void lvd_mllama_image_cfg_default(struct lvd_mllama_image_cfg *c)
{
	static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
	static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
	c->tile = 560;
	c->max_tiles = 4;
	memcpy(c->mean, mean, sizeof mean);
	memcpy(c->std, std, sizeof std);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

int lvd_mllama_aspect_ratios(int max_tiles, int (*out)[2])
{
	LVD_ASSERT(max_tiles >= 1 && max_tiles <= 16);
	int n = 0;
	for (int a = 1; a <= max_tiles; a++)
		for (int b = 1; b <= max_tiles; b++)
			if (a * b <= max_tiles) {
				out[n][0] = a;
				out[n][1] = b;
				n++;
			}
	return n;
}

void lvd_mllama_image_canvas(const struct lvd_mllama_image_cfg *c, int h, int w, int *th, int *tw, int *new_h,
			     int *new_w)
{
	int list[64][2];
	int n = lvd_mllama_aspect_ratios(c->max_tiles < 8 ? c->max_tiles : 8, list);
	/* HF get_optimal_tiled_canvas: scale = min(canvas_h/h, canvas_w/w); smallest scale >= 1
	 * if any upscaling exists, else the largest; ties -> smallest area */
	double best_up = INFINITY, best_down = -INFINITY;
	for (int i = 0; i < n; i++) {
		double sh = (double)(list[i][0] * c->tile) / h, sw = (double)(list[i][1] * c->tile) / w;
		double s = sh < sw ? sh : sw;
		if (s >= 1.0 && s < best_up)
			best_up = s;
		if (s < 1.0 && s > best_down)
			best_down = s;
	}
	double sel = isfinite(best_up) ? best_up : best_down;
	long best_area = -1;
	for (int i = 0; i < n; i++) {
		double sh = (double)(list[i][0] * c->tile) / h, sw = (double)(list[i][1] * c->tile) / w;
		double s = sh < sw ? sh : sw;
		long area = (long)list[i][0] * list[i][1];
		if (s == sel && (best_area < 0 || area < best_area)) {
			best_area = area;
			*th = list[i][0];
			*tw = list[i][1];
		}
	}
	int ch = *th * c->tile, cw = *tw * c->tile;
	int tw_ = clampi(w, c->tile, cw), th_ = clampi(h, c->tile, ch);
	double scale_h = (double)th_ / h, scale_w = (double)tw_ / w;
	if (scale_w < scale_h) {
		*new_w = tw_;
		int nh = (int)floor(h * scale_w);
		*new_h = clampi(nh ? nh : 1, 1, th_);
	} else {
		*new_h = th_;
		int nw = (int)floor(w * scale_h);
		*new_w = clampi(nw ? nw : 1, 1, tw_);
	}
}

int lvd_mllama_image_process(float *pixels, int *aspect_ratio_id, int *mask, int *num_tiles,
			     const struct lvd_mllama_image_cfg *c, const uint8_t *rgb, int h, int w,
			     struct lvd_error *err)
{
	if (h < 1 || w < 1 || c->tile < 1 || c->max_tiles < 1 || c->max_tiles > 8)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama image: bad size %dx%d or config", w, h);
	int th, tw, nh, nw;
	lvd_mllama_image_canvas(c, h, w, &th, &tw, &nh, &nw);
	struct lvd_image in = { .w = w, .h = h, .c = 3, .px = (uint8_t *)rgb }, rs = { 0 };
	int rc = lvd_image_resize(&rs, &in, nw, nh, LVD_RESAMPLE_BILINEAR, 1, err);
	if (rc)
		return rc;
	int T = c->tile, nt = th * tw;
	size_t tile_px = (size_t)3 * T * T;
	memset(pixels, 0, sizeof(float) * tile_px * c->max_tiles);
	for (int t = 0; t < nt; t++) {
		int ty = t / tw, tx = t % tw;
		float *dst = pixels + (size_t)t * tile_px;
		for (int ch = 0; ch < 3; ch++) {
			float pad = (0.0f - c->mean[ch]) / c->std[ch];
			for (int y = 0; y < T; y++)
				for (int x = 0; x < T; x++) {
					int sy = ty * T + y, sx = tx * T + x;
					float v = pad;
					if (sy < nh && sx < nw) {
						float u = rs.px[((size_t)sy * nw + sx) * 3 + ch] * (1.0f / 255.0f);
						v = (u - c->mean[ch]) / c->std[ch];
					}
					dst[((size_t)ch * T + y) * T + x] = v;
				}
		}
	}
	lvd_image_free(&rs);
	int list[64][2];
	int n = lvd_mllama_aspect_ratios(c->max_tiles, list);
	*aspect_ratio_id = 0;
	for (int i = 0; i < n; i++)
		if (list[i][0] == th && list[i][1] == tw)
			*aspect_ratio_id = i + 1;
	for (int t = 0; t < c->max_tiles; t++)
		mask[t] = t < nt || t == 0;
	*num_tiles = nt;
	return 0;
}

void lvd_mllama_cross_mask(int *mask, const int *ids, int T, int image_token, int M, int TL, const int *num_tiles)
{
	memset(mask, 0, sizeof(int) * (size_t)T * M * TL);
	int loc[64], n = 0;
	for (int t = 0; t < T && n < 64; t++)
		if (ids[t] == image_token)
			loc[n++] = t;
	/* HF get_cross_attention_token_mask: image j sees [loc_j, loc_{j+1}), the last one
	 * sees [loc_last, T); consecutive image tokens extend to the end of the next run */
	for (int j = 0; j < n && j < M; j++) {
		int start = loc[j], end;
		if (n == 1)
			end = T;
		else if (j + 1 < n)
			end = loc[j + 1];
		else
			end = T;
		if (j + 1 < n && loc[j + 1] == loc[j] + 1) {
			/* a run of consecutive image tokens: all extend to the end of the run's text */
			int k = j + 1;
			while (k + 1 < n && loc[k + 1] == loc[k] + 1)
				k++;
			end = k + 1 < n ? loc[k + 1] : T;
		}
		for (int t = start; t < end; t++)
			for (int k = 0; k < num_tiles[j] && k < TL; k++)
				mask[((size_t)t * M + j) * TL + k] = 1;
	}
}
