/* lib/io/image.h — image decode/encode and resizing that matches PIL.
 *
 * Pixels are interleaved 8-bit, row-major [H, W, C] (C = 3 for RGB, 1 for gray).
 * Decoding always yields RGB8: gray is replicated, palette expanded, 16-bit scaled
 * down (as PIL's convert("RGB") does), alpha composited onto a background (black by
 * default). JPEG goes through libturbojpeg (CMYK and grayscale included), PNG through
 * libpng. Resizing reproduces PIL's Image.resize (the reference used by the SD and VLM
 * image processors) within one gray level. */
#ifndef LVD_IO_IMAGE_H
#define LVD_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_image {
	int w, h, c;    /* c = 3 (RGB) or 1 (gray) */
	uint8_t *px;    /* owned; [h][w][c]; free with lvd_image_free */
};

enum lvd_alpha_bg { LVD_ALPHA_BLACK = 0, LVD_ALPHA_WHITE = 1 };

/* Decodes PNG or JPEG (detected by magic bytes) from memory to RGB8. `name` is used in
 * error messages ("img/x.jpg: not a PNG or JPEG file"). */
int lvd_image_decode(struct lvd_image *out, const void *data, size_t len, enum lvd_alpha_bg bg,
		     const char *name, struct lvd_error *err);
/* Reads and decodes a file. */
int lvd_image_load(struct lvd_image *out, const char *path, enum lvd_alpha_bg bg, struct lvd_error *err);
/* Encodes RGB8 (c=3) or gray8 (c=1) as PNG into a malloc'd buffer (*out, *out_len). */
int lvd_image_encode_png(const struct lvd_image *img, uint8_t **out, size_t *out_len, struct lvd_error *err);
/* Writes a PNG file atomically (path.tmp, rename). */
int lvd_image_save_png(const struct lvd_image *img, const char *path, struct lvd_error *err);
void lvd_image_free(struct lvd_image *img);

enum lvd_resample {
	LVD_RESAMPLE_NEAREST,
	LVD_RESAMPLE_BILINEAR,
	LVD_RESAMPLE_BICUBIC,
};

/* PIL-compatible resize of 8-bit pixels: `antialias` = 1 behaves like PIL's
 * Image.resize (the filter support scales with the downscale factor), 0 like a plain
 * (torch-style, align_corners=False) interpolation with fixed support. */
int lvd_image_resize(struct lvd_image *out, const struct lvd_image *in, int new_w, int new_h,
		     enum lvd_resample method, int antialias, struct lvd_error *err);

/* The same resampling on float planes [C][H][W] (used for maps and normalised pixels);
 * dst is [C][new_h][new_w], caller-allocated; no clamping or rounding. */
void lvd_resize_f32(float *dst, const float *src, int C, int H, int W, int new_h, int new_w,
		    enum lvd_resample method, int antialias);

#ifdef __cplusplus
}
#endif
#endif
