/* tests/fuzz/fuzz_image.c — PNG and JPEG decoding and resizing (lib/io/image.h). The
 * last 4 bytes (when the input has more than 4) choose the alpha mode, the resize method,
 * antialiasing and the output size (1..64 each side); the rest is the encoded image.
 * A decoded image is also resized with lvd_resize_f32 and re-encoded as PNG. */
#include "fuzz.h"
#include "io/image.h"

static int fuzz_image(const uint8_t *data, size_t size)
{
	uint8_t ctl[4] = {0, 0, 7, 7};
	if (size > 4) {
		memcpy(ctl, data + size - 4, 4);
		size -= 4;
	}
	struct lvd_image img = {0}, out = {0};
	struct lvd_error err = {0};
	if (lvd_image_decode(&img, data, size, (enum lvd_alpha_bg)(ctl[0] % 3), "fuzz.img", &err) != 0)
		return 0;
	if (img.w < 1 || img.h < 1 || img.c != 3 || !img.px)
		abort();
	int nw = 1 + ctl[2] % 64, nh = 1 + ctl[3] % 64;
	enum lvd_resample m = (enum lvd_resample)(ctl[1] % 3);
	int aa = (ctl[1] >> 2) & 1;
	if (lvd_image_resize(&out, &img, nw, nh, m, aa, &err) == 0) {
		uint8_t *png = NULL;
		size_t n = 0;
		if (lvd_image_encode_png(&out, &png, &n, &err) == 0)
			free(png);
	}
	lvd_image_free(&out);
	if ((size_t)img.w * img.h <= (1u << 16)) {
		size_t np = (size_t)img.w * img.h;
		float *src = malloc(np * sizeof *src), *dst = malloc((size_t)nw * nh * sizeof *dst);
		if (src && dst) {
			for (size_t i = 0; i < np; i++)
				src[i] = img.px[3 * i] / 255.0f;
			lvd_resize_f32(dst, src, 1, img.h, img.w, nh, nw, m, aa);
		}
		free(src);
		free(dst);
	}
	lvd_image_free(&img);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_image)
