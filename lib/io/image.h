/* lib/io/image.h — image decode/encode and resizing that matches PIL.
 *
 * Pixels are interleaved 8-bit, row-major [H, W, C] (C = 3 for RGB, 1 for gray).
 * Decoding always yields RGB8 and reproduces what PIL gives for
 * Image.open(f).convert("RGB") (LVD_ALPHA_DROP) or for an alpha_composite onto an
 * opaque black/white background (LVD_ALPHA_BLACK/WHITE):
 *   - gray is replicated; 1/2/4-bit gray is scaled to 0..255 (v * 255 / (2^bits - 1));
 *   - palette is expanded; 16-bit RGB/RGBA/gray+alpha keep the high byte (v >> 8);
 *   - 16-bit plain gray is CLIPPED to 255 (min(v, 255)): PIL's I;16 -> L/RGB
 *     conversion does that, it does not scale; we reproduce it deliberately. Its tRNS
 *     key is ignored, as PIL's convert("RGBA") ignores it for I;16. tRNS keys of 16-bit
 *     RGB are ignored too;
 *   - alpha (RGBA, gray+alpha, palette tRNS, 8-bit gray/RGB tRNS colour keys) is
 *     composited with PIL's Image.alpha_composite integer formula over an opaque
 *     background b:  a == 0 -> b;  else t = (s*a + b*(255-a)) * 128 + (128 << 7),
 *     out = (((t >> 8) + t) >> 8) >> 7   (== round((s*a + b*(255-a)) / 255) up to
 *     PIL's own rounding);  LVD_ALPHA_DROP keeps the stored colour as convert("RGB").
 *   - JPEG: libturbojpeg, accurate (islow) IDCT and fancy upsampling like PIL's
 *     libjpeg defaults. CMYK/YCCK JPEGs are read as Adobe-inverted CMYK (PIL assumes
 *     that for every 4-component JPEG) and converted with PIL's formula
 *     r = (255 - k) - (c * (255 - k)) / 255 (PIL's rounded MULDIV255). A truncated
 *     JPEG is an error (as PIL without LOAD_TRUNCATED_IMAGES); other libjpeg warnings
 *     (extraneous bytes, corrupt data segments that still decode) are accepted, as PIL
 *     accepts them.
 * Images wider or taller than LVD_IMAGE_MAX_SIDE or with more than
 * LVD_IMAGE_MAX_PIXELS pixels are rejected (LVD_ERR_UNSUPPORTED) before any pixel
 * buffer is allocated. Corrupt data never crashes: libpng errors are caught with
 * setjmp and returned as LVD_ERR_FORMAT naming the file. */
#ifndef LVD_IO_IMAGE_H
#define LVD_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_image {
	int w, h, c;    /* c = 3 (RGB) or 1 (gray); alloc/resize accept 1..4 */
	uint8_t *px;    /* owned; [h][w][c]; free with lvd_image_free */
};

/* What to do with alpha: composite onto opaque black / white, or drop it (keep the
 * stored colour under transparent pixels, like PIL's convert("RGB")). */
enum lvd_alpha_bg { LVD_ALPHA_BLACK = 0, LVD_ALPHA_WHITE = 1, LVD_ALPHA_DROP = 2 };

#define LVD_IMAGE_MAX_SIDE (1 << 15)
#define LVD_IMAGE_MAX_PIXELS ((size_t)1 << 28)
/* Decompression-bomb guards, checked from the header before any pixel is decoded: a
 * file claiming more pixels than these many per byte of the file is LVD_ERR_FORMAT.
 * PNG: deflate expands at most 1032:1 and a 1-bit image packs 8 pixels per byte, so a
 * real PNG stays below 8256 pixels per byte. JPEG: a Huffman-coded 8x8 block costs at
 * least one bit (its DC code), so at most 512 pixels per byte; 2048 leaves room for
 * arithmetic coding. Real photos are near 1-10 pixels per byte. (A 690-byte JPEG header
 * claiming 28320x9473 pixels took 37 s and 0.9 GB to reject as truncated before.) */
#define LVD_IMAGE_PNG_RATIO 8400u
#define LVD_IMAGE_JPEG_RATIO 2048u

/* Allocates out->px for [h][w][c] (uninitialised) and sets w, h, c. c in 1..4,
 * w, h >= 1 and within the limits above (LVD_ERR_INVALID otherwise); LVD_ERR_NOMEM. */
int lvd_image_alloc(struct lvd_image *out, int w, int h, int c, struct lvd_error *err);

/* Decodes PNG or JPEG (detected by magic bytes) from memory to RGB8 (out->c = 3,
 * out->px owned by the caller afterwards; *out is zeroed on error). `name` is used in
 * error messages ("img/x.jpg: not a PNG or JPEG file"). Errors: LVD_ERR_FORMAT
 * (corrupt, truncated, not an image), LVD_ERR_UNSUPPORTED (too large), LVD_ERR_NOMEM. */
int lvd_image_decode(struct lvd_image *out, const void *data, size_t len, enum lvd_alpha_bg bg,
		     const char *name, struct lvd_error *err);
/* The largest image file read: 1 GiB. */
#define LVD_IMAGE_MAX_FILE ((uint64_t)1 << 30)

/* Reads and decodes a file (LVD_ERR_IO when it cannot be read; LVD_ERR_INVALID for a
 * FIFO, device or directory, which are refused without blocking, or a file over
 * LVD_IMAGE_MAX_FILE). */
int lvd_image_load(struct lvd_image *out, const char *path, enum lvd_alpha_bg bg, struct lvd_error *err);
/* Encodes RGB8 (c=3) or gray8 (c=1) as PNG into a malloc'd buffer (*out, *out_len;
 * caller frees). Errors: LVD_ERR_INVALID (other c, bad sizes), LVD_ERR_NOMEM. */
int lvd_image_encode_png(const struct lvd_image *img, uint8_t **out, size_t *out_len, struct lvd_error *err);
/* Writes a PNG file atomically (path.tmp, fsync, rename); LVD_ERR_IO on failure (the
 * tmp file is removed). */
int lvd_image_save_png(const struct lvd_image *img, const char *path, struct lvd_error *err);
/* Frees img->px and zeroes *img; NULL and zeroed images are fine. */
void lvd_image_free(struct lvd_image *img);

enum lvd_resample {
	LVD_RESAMPLE_NEAREST,
	LVD_RESAMPLE_BILINEAR,
	LVD_RESAMPLE_BICUBIC,
};

/* Resize of 8-bit pixels [h][w][c] (any c in 1..4, channels independent) into a new
 * image (*out allocated, caller frees). Same size -> plain copy.
 * antialias = 1: exactly PIL's Image.resize(size, filter) for mode L/RGB (Pillow 13):
 *   separable, horizontal pass then vertical, except vertical first when the height
 *   shrinks by more than twice as many pixels as the width (H - OH > 2 (W - OW) and
 *   OH < H: Pillow 13's order, measured; older Pillow ran horizontal first); source
 *   pixel centres at i + 0.5, output centre (j + 0.5) * in/out; the filter (bilinear:
 *   triangle, support 1; bicubic: Keys a = -0.5, support 2) is stretched by
 *   max(1, in/out) when downscaling (antialiasing); per-output weights normalised to
 *   sum 1, turned into 22-bit fixed point, accumulated in int with rounding, clipped to
 *   0..255 after each pass (the intermediate image is 8-bit). NEAREST is PIL's:
 *   src = floor((j + 0.5) * in/out).
 * antialias = 0: torch.nn.functional.interpolate(mode=bilinear|bicubic,
 *   align_corners=False, antialias=False) computed in float on the 8-bit values, then
 *   rounded to nearest and clipped: src = max(0, (j + 0.5) * in/out - 0.5) for
 *   bilinear, no clamp for bicubic (Keys a = -0.75, border pixels replicated).
 *   NEAREST ignores antialias (PIL's rule, = torch "nearest-exact").
 * Errors: LVD_ERR_INVALID (sizes < 1 or over the limits, c out of range),
 * LVD_ERR_NOMEM. */
int lvd_image_resize(struct lvd_image *out, const struct lvd_image *in, int new_w, int new_h,
		     enum lvd_resample method, int antialias, struct lvd_error *err);

/* The same resampling on float planes [C][H][W] (used for maps and normalised pixels);
 * dst is [C][new_h][new_w], caller-allocated, must not overlap src; no clamping or
 * rounding. antialias = 1: PIL's mode "F" resize (double weights and sums, float
 * intermediate after the horizontal pass; always horizontal first, where Pillow 13 may
 * run vertical first as above, which differs only by the fp32 rounding of the
 * intermediate); antialias = 0: torch interpolate as above
 * (float math). Sizes must be >= 1 (LVD_ASSERT); allocates small coefficient tables
 * and one intermediate plane (aborts if that allocation fails). */
void lvd_resize_f32(float *dst, const float *src, int C, int H, int W, int new_h, int new_w,
		    enum lvd_resample method, int antialias);

#ifdef __cplusplus
}
#endif
#endif
