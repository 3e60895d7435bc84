/* tests/unit/test_image.c — PNG/JPEG decode, PNG encode and PIL/torch-exact resizing
 * against golden outputs from tests/ref/gen_images.py (PIL 13 / torch 2.15), plus a
 * corpus of invalid files. Real photos come from ../shared/data/images. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/image.h"

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const char *golden(const char *file)
{
	static char buf[4][4096];
	static int k;
	char *out = buf[k++ & 3];
	snprintf(out, sizeof buf[0], "%s/%s", lvd_test_path("tests/golden/images"), file);
	return out;
}

static const char *shared_image(const char *file)
{
	static char buf[4096];
	const char *sd = lvd_test_shared_data();
	if (!sd)
		return NULL;
	snprintf(buf, sizeof buf, "%s/images/%s", sd, file);
	return buf;
}

static json_t *index_json(void)
{
	static json_t *root;
	if (!root) {
		json_error_t je;
		root = json_load_file(golden("index.json"), 0, &je);
		if (!root)
			fprintf(stderr, "  cannot load golden index: %s\n", je.text);
	}
	return root;
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

static size_t shape_numel(json_t *c)
{
	size_t n = 1;
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(c, "shape"), i, v) n *= (size_t)json_integer_value(v);
	return n;
}

/* expected array of a case (u8 or f32), malloc'd; NULL on failure (reported) */
static void *expected(json_t *c, size_t *numel)
{
	size_t len;
	void *p = read_all(golden(jstr(c, "file")), &len);
	*numel = shape_numel(c);
	size_t want = *numel * (strcmp(jstr(c, "dtype"), "u8") == 0 ? 1 : 4);
	if (!p || len != want) {
		fprintf(stderr, "  golden %s: missing or wrong size\n", jstr(c, "file"));
		free(p);
		return NULL;
	}
	return p;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* max |a-b| over n bytes and the number of differing bytes */
static int u8_maxdiff(const uint8_t *a, const uint8_t *b, size_t n, size_t *ndiff)
{
	int m = 0;
	*ndiff = 0;
	for (size_t i = 0; i < n; i++) {
		int d = abs((int)a[i] - (int)b[i]);
		if (d) {
			(*ndiff)++;
			if (d > m)
				m = d;
		}
	}
	return m;
}

static enum lvd_resample method_of(const char *s)
{
	return strcmp(s, "nearest") == 0 ? LVD_RESAMPLE_NEAREST
	       : strcmp(s, "bilinear") == 0 ? LVD_RESAMPLE_BILINEAR
					    : LVD_RESAMPLE_BICUBIC;
}

/* ---- decode ---------------------------------------------------------------------- */

static void test_decode_golden(void)
{
	json_t *root = index_json(), *c;
	REQUIRE(root);
	size_t i;
	int n = 0, skipped = 0, jpeg_max = 0;
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		if (strcmp(jstr(c, "op"), "decode") != 0)
			continue;
		const char *src = jstr(c, "src"), *bgs = jstr(c, "bg");
		const char *path = json_is_true(json_object_get(c, "shared")) ? shared_image(src) : golden(src);
		if (!path) {
			skipped++;
			continue;
		}
		enum lvd_alpha_bg bg = strcmp(bgs, "black") == 0 ? LVD_ALPHA_BLACK
				       : strcmp(bgs, "white") == 0 ? LVD_ALPHA_WHITE
								   : LVD_ALPHA_DROP;
		struct lvd_image img;
		struct lvd_error err = {0};
		int rc = lvd_image_load(&img, path, bg, &err);
		CHECKF(rc == LVD_OK, "%s: %s", src, err.msg);
		if (rc)
			continue;
		size_t numel;
		uint8_t *want = expected(c, &numel);
		CHECK(want != NULL);
		int fh = jint(c, "full_h"), fw = jint(c, "full_w"), y0 = jint(c, "band_y0");
		CHECKF(img.w == fw && img.h == fh && img.c == 3, "%s: %dx%dx%d, want %dx%d", src, img.w, img.h,
		       img.c, fw, fh);
		if (want && img.w == fw && img.h == fh) {
			size_t off = (size_t)y0 * fw * 3, nd;
			REQUIRE(off + numel <= (size_t)fw * fh * 3);
			int md = u8_maxdiff(img.px + off, want, numel, &nd);
			int is_jpeg = strstr(src, ".jpg") != NULL;
			/* PNG decode and alpha compositing are integer-exact; JPEG: the same
			 * libjpeg-turbo islow IDCT and fancy upsampling as PIL's copy -> exact too */
			CHECKF(md == 0, "%s (%s): max diff %d, %zu values differ", src, bgs, md, nd);
			if (is_jpeg && md > jpeg_max)
				jpeg_max = md;
			const char *hash = jstr(c, "fnv1a64");
			if (hash) {
				char got[17];
				snprintf(got, sizeof got, "%016llx",
					 (unsigned long long)fnv1a64(img.px, (size_t)fw * fh * 3));
				CHECKF(strcmp(got, hash) == 0, "%s (%s): whole-image hash %s, want %s", src, bgs, got,
				       hash);
			}
		}
		free(want);
		lvd_image_free(&img);
		n++;
	}
	CHECK(n >= 20);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  decode: %d cases (%d skipped without shared data), JPEG max diff %d\n", n,
			skipped, jpeg_max);
}

/* ---- resize ---------------------------------------------------------------------- */

/* decoded source of a resize case: crop box, channel 0 only when "gray" */
static int resize_source(json_t *c, struct lvd_image *out)
{
	const char *path = shared_image(jstr(c, "src"));
	struct lvd_image img;
	struct lvd_error err = {0};
	if (!path)
		return -1;
	int rc = lvd_image_load(&img, path, LVD_ALPHA_DROP, &err);
	CHECKF(rc == LVD_OK, "%s", err.msg);
	if (rc)
		return -2;
	json_t *box = json_object_get(c, "box");
	int x0 = 0, y0 = 0, x1 = img.w, y1 = img.h;
	if (json_array_size(box) == 4) {
		x0 = (int)json_integer_value(json_array_get(box, 0));
		y0 = (int)json_integer_value(json_array_get(box, 1));
		x1 = (int)json_integer_value(json_array_get(box, 2));
		y1 = (int)json_integer_value(json_array_get(box, 3));
	}
	int gray = json_is_true(json_object_get(c, "gray")), oc = gray ? 1 : 3;
	rc = lvd_image_alloc(out, x1 - x0, y1 - y0, oc, &err);
	REQUIRE(rc == LVD_OK);
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			for (int k = 0; k < oc; k++)
				out->px[((size_t)(y - y0) * out->w + (x - x0)) * oc + k] =
					img.px[((size_t)y * img.w + x) * 3 + k];
	lvd_image_free(&img);
	return 0;
}

static void test_resize_pil_u8(void)
{
	json_t *root = index_json(), *c;
	REQUIRE(root);
	if (!lvd_test_shared_data())
		SKIP("../shared/data absent (real photos needed)");
	size_t i;
	int n = 0, worst = 0;
	size_t ndiff_total = 0, numel_total = 0;
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		if (strcmp(jstr(c, "op"), "resize") != 0 || jint(c, "antialias") != 1)
			continue;
		struct lvd_image src, out;
		struct lvd_error err = {0};
		if (resize_source(c, &src))
			continue;
		int rc = lvd_image_resize(&out, &src, jint(c, "w"), jint(c, "h"), method_of(jstr(c, "method")), 1,
					  &err);
		CHECKF(rc == LVD_OK, "%s: %s", jstr(c, "name"), err.msg);
		size_t numel, nd;
		uint8_t *want = expected(c, &numel);
		if (!rc && want) {
			REQUIRE(numel == (size_t)out.w * out.h * out.c);
			int md = u8_maxdiff(out.px, want, numel, &nd);
			/* the requirement is 1 level; the fixed-point replica is exact */
			CHECKF(md <= 1, "%s: max diff %d (%zu of %zu differ)", jstr(c, "name"), md, nd, numel);
			if (md > worst)
				worst = md;
			ndiff_total += nd;
			numel_total += numel;
		}
		free(want);
		lvd_image_free(&src);
		lvd_image_free(&out);
		n++;
	}
	CHECK(n >= 80);
	CHECKF(ndiff_total == 0, "%zu of %zu values differ from PIL (max %d)", ndiff_total, numel_total, worst);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  PIL resize: %d cases, %zu values, max diff %d, %zu differ\n", n, numel_total,
			worst, ndiff_total);
}

/* torch (antialias=0): 8-bit path vs round(torch float), float path vs torch float */
static void test_resize_torch(void)
{
	json_t *root = index_json(), *c;
	REQUIRE(root);
	if (!lvd_test_shared_data())
		SKIP("../shared/data absent (real photos needed)");
	size_t i;
	int n = 0;
	double worst_f = 0;
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		if (strcmp(jstr(c, "op"), "resize") != 0 || jint(c, "antialias") != 0)
			continue;
		struct lvd_image src, out;
		struct lvd_error err = {0};
		if (resize_source(c, &src))
			continue;
		int W = jint(c, "w"), H = jint(c, "h"), C = src.c;
		enum lvd_resample m = method_of(jstr(c, "method"));
		int rc = lvd_image_resize(&out, &src, W, H, m, 0, &err);
		CHECKF(rc == LVD_OK, "%s: %s", jstr(c, "name"), err.msg);
		size_t numel;
		float *want = expected(c, &numel); /* [H][W][C] */
		REQUIRE(want && numel == (size_t)W * H * C);
		int md = 0;
		for (size_t k = 0; !rc && k < numel; k++) {
			float v = want[k] < 0 ? 0 : want[k] > 255 ? 255 : want[k];
			int d = abs((int)out.px[k] - (int)(v + 0.5f));
			md = d > md ? d : md;
		}
		/* rounding of a float that torch computes in another summation order can land
		 * on the other side of .5: one level */
		CHECKF(md <= 1, "%s: 8-bit max diff %d", jstr(c, "name"), md);
		/* float path on planes [C][H][W] */
		size_t nin = (size_t)src.w * src.h;
		float *pin = malloc(nin * C * sizeof *pin), *pout = malloc(numel * sizeof *pout);
		float *wt = malloc(numel * sizeof *wt);
		REQUIRE(pin && pout && wt);
		for (int k = 0; k < C; k++)
			for (size_t p = 0; p < nin; p++)
				pin[k * nin + p] = src.px[p * C + k];
		for (int k = 0; k < C; k++)
			for (size_t p = 0; p < (size_t)W * H; p++)
				wt[k * (size_t)W * H + p] = want[p * C + k];
		lvd_resize_f32(pout, pin, C, src.h, src.w, H, W, m, 0);
		/* torch's kernels may fuse multiply-adds (FMA), ours do not: a few float32 ulp
		 * of the largest term (|w| * 255 ~ 320 for bicubic), measured <= 2.8e-4 */
		if (CHECK_CLOSE(jstr(c, "name"), pout, wt, numel, 0, 4e-6))
			for (size_t k = 0; k < numel; k++)
				worst_f = fmax(worst_f, fabs((double)pout[k] - wt[k]));
		free(pin);
		free(pout);
		free(wt);
		free(want);
		lvd_image_free(&src);
		lvd_image_free(&out);
		n++;
	}
	CHECK(n >= 6);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  torch resize: %d cases, float max |diff| %.3g\n", n, worst_f);
}

static void test_resize_f32_golden(void)
{
	json_t *root = index_json(), *c;
	REQUIRE(root);
	json_t *pl = json_object_get(root, "planes");
	size_t len;
	float *planes = (float *)read_all(golden(jstr(pl, "file")), &len);
	REQUIRE(planes);
	int C = (int)json_integer_value(json_array_get(json_object_get(pl, "shape"), 0));
	int H = (int)json_integer_value(json_array_get(json_object_get(pl, "shape"), 1));
	int W = (int)json_integer_value(json_array_get(json_object_get(pl, "shape"), 2));
	REQUIRE(len == (size_t)C * H * W * 4);
	size_t i;
	int n = 0;
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		if (strcmp(jstr(c, "op"), "fresize") != 0)
			continue;
		size_t numel;
		float *want = expected(c, &numel);
		int ow = jint(c, "w"), oh = jint(c, "h"), aa = jint(c, "antialias");
		REQUIRE(want && numel == (size_t)C * oh * ow);
		float *got = malloc(numel * sizeof *got);
		REQUIRE(got);
		lvd_resize_f32(got, planes, C, H, W, oh, ow, method_of(jstr(c, "method")), aa);
		/* PIL "F": same double weights and sums, float intermediate -> at most one
		 * float rounding apart; torch: float math, possibly FMA-fused on its side (see
		 * test_resize_torch), a few ulp of the largest value */
		CHECK_CLOSE(jstr(c, "name"), got, want, numel, 0, aa ? 2e-7 : 4e-6);
		free(got);
		free(want);
		n++;
	}
	CHECK(n == 20);
	free(planes);
}

static void test_resize_properties(void)
{
	struct lvd_image img, out;
	struct lvd_error err = {0};
	REQUIRE(lvd_image_alloc(&img, 37, 23, 3, &err) == LVD_OK);
	memset(img.px, 77, (size_t)37 * 23 * 3);
	enum lvd_resample ms[] = {LVD_RESAMPLE_NEAREST, LVD_RESAMPLE_BILINEAR, LVD_RESAMPLE_BICUBIC};
	int sizes[][2] = {{5, 3}, {100, 71}, {37, 9}, {1, 1}, {37, 23}};
	for (int m = 0; m < 3; m++)
		for (int aa = 0; aa < 2; aa++)
			for (int s = 0; s < 5; s++) {
				REQUIRE(lvd_image_resize(&out, &img, sizes[s][0], sizes[s][1], ms[m], aa, &err) == LVD_OK);
				CHECK(out.w == sizes[s][0] && out.h == sizes[s][1] && out.c == 3);
				size_t nd;
				uint8_t *ref = malloc((size_t)out.w * out.h * 3);
				memset(ref, 77, (size_t)out.w * out.h * 3);
				CHECKF(u8_maxdiff(out.px, ref, (size_t)out.w * out.h * 3, &nd) == 0,
				       "constant image not preserved: method %d aa %d size %dx%d", m, aa, out.w, out.h);
				free(ref);
				lvd_image_free(&out);
			}
	CHECK(lvd_image_resize(&out, &img, 0, 5, LVD_RESAMPLE_BILINEAR, 1, &err) == LVD_ERR_INVALID);
	CHECK(out.px == NULL);
	CHECK(lvd_image_resize(&out, &img, 5, 1 << 16, LVD_RESAMPLE_BILINEAR, 1, &err) == LVD_ERR_INVALID);
	CHECK(lvd_image_resize(&out, &img, 5, 5, (enum lvd_resample)9, 1, &err) == LVD_ERR_INVALID);
	lvd_image_free(&img);
}

/* ---- encode ---------------------------------------------------------------------- */

static void test_encode_roundtrip(void)
{
	struct lvd_error err = {0};
	for (int c = 1; c <= 3; c += 2) {
		struct lvd_image img, back;
		REQUIRE(lvd_image_alloc(&img, 61, 17, c, &err) == LVD_OK);
		uint32_t s = 12345;
		for (size_t k = 0; k < (size_t)61 * 17 * c; k++)
			img.px[k] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
		uint8_t *png;
		size_t len;
		REQUIRE(lvd_image_encode_png(&img, &png, &len, &err) == LVD_OK);
		CHECK(len > 8 && png[1] == 'P');
		REQUIRE(lvd_image_decode(&back, png, len, LVD_ALPHA_BLACK, "mem.png", &err) == LVD_OK);
		CHECK(back.w == 61 && back.h == 17 && back.c == 3);
		int same = 1;
		for (size_t p = 0; p < (size_t)61 * 17; p++)
			for (int k = 0; k < 3; k++)
				same &= back.px[p * 3 + k] == img.px[p * c + (c == 3 ? k : 0)];
		CHECK(same);
		free(png);
		lvd_image_free(&back);

		char path[256], tmp[300];
		snprintf(path, sizeof path, "/tmp/lvd-test-image-%d-%d.png", (int)getpid(), c);
		snprintf(tmp, sizeof tmp, "%s.tmp", path);
		REQUIRE(lvd_image_save_png(&img, path, &err) == LVD_OK);
		CHECK(access(tmp, F_OK) != 0);
		REQUIRE(lvd_image_load(&back, path, LVD_ALPHA_DROP, &err) == LVD_OK);
		CHECK(back.w == 61 && back.h == 17 && back.px[0] == img.px[0]);
		lvd_image_free(&back);
		unlink(path);
		lvd_image_free(&img);
	}
	struct lvd_image img;
	REQUIRE(lvd_image_alloc(&img, 4, 4, 3, &err) == LVD_OK);
	memset(img.px, 0, 48);
	CHECK(lvd_image_save_png(&img, "/nonexistent-dir/x.png", &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, "/nonexistent-dir/x.png.tmp");
	img.c = 2;
	uint8_t *png;
	size_t len;
	CHECK(lvd_image_encode_png(&img, &png, &len, &err) == LVD_ERR_INVALID);
	img.c = 3;
	lvd_image_free(&img);
	CHECK(lvd_image_load(&img, "/nonexistent-dir/y.png", LVD_ALPHA_DROP, &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, "y.png");
}

/* ---- invalid corpus -------------------------------------------------------------- */

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* expects a decode error with `code`, the name in the message, and a zeroed image */
static void expect_bad(const void *data, size_t len, int code, const char *what, const char *needle)
{
	struct lvd_image img;
	struct lvd_error err = {0};
	int rc = lvd_image_decode(&img, data, len, LVD_ALPHA_BLACK, what, &err);
	CHECKF(rc == code, "%s: rc %d (%s), want %d", what, rc, err.msg, code);
	CHECKF(strstr(err.msg, what) != NULL, "%s: message '%s' does not name the file", what, err.msg);
	if (needle)
		CHECKF(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
	CHECK(img.px == NULL && img.w == 0);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  %s -> %s\n", what, err.msg);
	lvd_image_free(&img);
}

static void test_invalid_corpus(void)
{
	size_t plen, jlen;
	uint8_t *png = read_all(golden("src_rgb_trns.png"), &plen);
	uint8_t *jpg = read_all(golden("src_q90.jpg"), &jlen);
	REQUIRE(png && jpg && plen > 100 && jlen > 1000);
	uint8_t *b = malloc(plen > jlen ? plen : jlen);
	REQUIRE(b);

	expect_bad(png, 0, LVD_ERR_FORMAT, "empty.png", "empty");
	expect_bad("hello world, not an image", 25, LVD_ERR_FORMAT, "text.png", "not a PNG or JPEG");
	uint32_t s = 99;
	for (size_t k = 0; k < 4096; k++)
		b[k] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
	expect_bad(b, 4096, LVD_ERR_FORMAT, "random.bin", NULL);
	memcpy(b, png, 8); /* PNG magic + random bytes */
	expect_bad(b, 4096, LVD_ERR_FORMAT, "random-magic.png", NULL);
	memcpy(b, jpg, 3); /* JPEG magic + random bytes */
	expect_bad(b, 4096, LVD_ERR_FORMAT, "random-magic.jpg", NULL);

	for (size_t cut = 8; cut < plen; cut += plen / 7) /* truncated PNG at many points */
		expect_bad(png, cut, LVD_ERR_FORMAT, "truncated.png", NULL);
	expect_bad(png, plen - 5, LVD_ERR_FORMAT, "no-iend.png", NULL);

	memcpy(b, png, plen);
	b[29] ^= 0x55; /* IHDR CRC (bytes 29..32) */
	expect_bad(b, plen, LVD_ERR_FORMAT, "ihdr-crc.png", "CRC");

	/* locate IDAT; corrupt its data and fix up the CRC so zlib sees the damage */
	size_t off = 8, idat = 0, idat_len = 0;
	while (off + 12 <= plen) {
		uint32_t n = (uint32_t)png[off] << 24 | png[off + 1] << 16 | png[off + 2] << 8 | png[off + 3];
		if (memcmp(png + off + 4, "IDAT", 4) == 0) {
			idat = off;
			idat_len = n;
			break;
		}
		off += 12 + n;
	}
	REQUIRE(idat && idat_len > 100);
	memcpy(b, png, plen);
	b[idat + 8 + idat_len / 2] ^= 0xff; /* libpng inflates before it sees the bad CRC */
	expect_bad(b, plen, LVD_ERR_FORMAT, "idat-corrupt.png", NULL);
	for (size_t k = idat + 8 + 2; k < idat + 8 + idat_len; k++)
		b[k] = (uint8_t)(k * 37);
	put_be32(b + idat + 8 + idat_len, crc32_png(b + idat + 4, idat_len + 4));
	expect_bad(b, plen, LVD_ERR_FORMAT, "idat-zlib.png", NULL);

	/* huge declared dimensions with a valid CRC: per side, and by pixel count */
	uint32_t dims[][2] = {{100000, 10}, {10, 1u << 20}, {30000, 30000}, {0, 5}};
	int codes[] = {LVD_ERR_FORMAT, LVD_ERR_FORMAT, LVD_ERR_UNSUPPORTED, LVD_ERR_FORMAT};
	for (int k = 0; k < 4; k++) {
		memcpy(b, png, plen);
		put_be32(b + 16, dims[k][0]);
		put_be32(b + 20, dims[k][1]);
		put_be32(b + 29, crc32_png(b + 12, 17));
		char name[64];
		snprintf(name, sizeof name, "huge-%ux%u.png", dims[k][0], dims[k][1]);
		/* over 2^31 (libpng's own limit) and over our side limit are both format errors
		 * from libpng's user limits; 30000^2 passes per-side checks but not ours */
		expect_bad(b, plen, codes[k], name, NULL);
	}

	for (size_t cut = 3; cut < jlen; cut += jlen / 5) /* truncated JPEG */
		expect_bad(jpg, cut, LVD_ERR_FORMAT, "truncated.jpg", NULL);
	/* huge JPEG: patch SOF0 height/width to 40000 x 40000 */
	memcpy(b, jpg, jlen);
	size_t sof = 0;
	for (size_t k = 2; k + 9 < jlen; k++)
		if (b[k] == 0xff && (b[k + 1] == 0xc0 || b[k + 1] == 0xc2)) {
			sof = k;
			break;
		}
	REQUIRE(sof);
	b[sof + 5] = 40000 >> 8, b[sof + 6] = 40000 & 255, b[sof + 7] = 40000 >> 8, b[sof + 8] = 40000 & 255;
	expect_bad(b, jlen, LVD_ERR_UNSUPPORTED, "huge.jpg", "exceeds");
	b[sof + 5] = 0, b[sof + 6] = 0; /* height 0 */
	expect_bad(b, jlen, LVD_ERR_FORMAT, "zero.jpg", NULL);

	free(b);
	free(png);
	free(jpg);
}

static void test_alpha_modes_direct(void)
{
	/* a 1x1 RGBA PNG from the encoder cannot carry alpha; use the golden alpha grid:
	 * row y has alpha y; x = 0 column has R = 0, G = 255 */
	struct lvd_image k, w, d;
	struct lvd_error err = {0};
	REQUIRE(lvd_image_load(&k, golden("src_alpha_grid.png"), LVD_ALPHA_BLACK, &err) == LVD_OK);
	REQUIRE(lvd_image_load(&w, golden("src_alpha_grid.png"), LVD_ALPHA_WHITE, &err) == LVD_OK);
	REQUIRE(lvd_image_load(&d, golden("src_alpha_grid.png"), LVD_ALPHA_DROP, &err) == LVD_OK);
	/* alpha 0 row: background; alpha 255 row: the colour */
	CHECK(k.px[0] == 0 && k.px[1] == 0 && w.px[0] == 255 && w.px[1] == 255 && d.px[1] == 255);
	size_t last = (size_t)255 * 256 * 3 + 200 * 3;
	CHECK(k.px[last] == 200 && w.px[last] == 200 && d.px[last] == 200);
	/* R = 255 at alpha 128 over black: round(255 * 128 / 255) = 128 */
	size_t mid = (size_t)128 * 256 * 3 + 255 * 3;
	CHECK(k.px[mid] == 128 && w.px[mid] == 255);
	struct lvd_image bad;
	CHECK(lvd_image_load(&bad, golden("src_alpha_grid.png"), (enum lvd_alpha_bg)7, &err) == LVD_ERR_INVALID);
	lvd_image_free(&k);
	lvd_image_free(&w);
	lvd_image_free(&d);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_decode_golden),
		TEST(test_alpha_modes_direct),
		TEST(test_resize_pil_u8),
		TEST(test_resize_torch),
		TEST(test_resize_f32_golden),
		TEST(test_resize_properties),
		TEST(test_encode_roundtrip),
		TEST(test_invalid_corpus),
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	json_decref(index_json());
	return rc;
}
