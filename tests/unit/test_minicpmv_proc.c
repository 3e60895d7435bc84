/* tests/unit/test_minicpmv_proc.c — the MiniCPM-Llama3-V-2.5 processor against
 * tests/ref/gen_minicpmv_proc.py (tests/golden/minicpmv_proc/proc.json): slicing geometry
 * on a table of sizes and two configs; on real photos (../shared/data/images; one case a
 * 2x2 tiling to reach 9 slices) the pictures' sizes, tgt_sizes and patch strips (fp32,
 * bit-exact: sha256 of the strip bytes plus sampled values), the rendered chat, input_ids,
 * pre-shifted labels and image_bound (exact); the batch layout, slice boxes, the token-name
 * lookup and the error paths. */
#include "harness.h"

#include <jansson.h>
#include <unistd.h>

#include "core/sha256.h"
#include "io/image.h"
#include "lavender/minicpmv_targets.h"
#include "models/minicpmv/minicpmv_proc.h"

#define GOLD "tests/golden/minicpmv_proc/proc.json"

static json_t *gold(void)
{
	json_error_t je;
	json_t *g = json_load_file(lvd_test_path(GOLD), 0, &je);
	if (!g)
		fprintf(stderr, "  %s: %s\n", GOLD, je.text);
	return g;
}

static int ji(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

static struct lvd_minicpmv_slice_cfg cfg_of(json_t *c)
{
	json_t *j = json_object_get(c, "cfg");
	struct lvd_minicpmv_slice_cfg s = {ji(j, "max_slice_nums"), ji(j, "scale_resolution"), ji(j, "patch_size")};
	return s;
}

static void test_geometry(void)
{
	json_t *g = gold();
	REQUIRE(g);
	size_t i;
	json_t *c;
	int n = 0;
	json_array_foreach(json_object_get(g, "geom"), i, c) {
		struct lvd_minicpmv_slice_cfg s = cfg_of(c);
		struct lvd_minicpmv_geom geo;
		struct lvd_error err = {0};
		int W = ji(c, "W"), H = ji(c, "H");
		int rc = lvd_minicpmv_slice_geom(&geo, &s, W, H, &err);
		CHECKF(rc == 0, "%dx%d: %s", W, H, err.msg);
		if (rc)
			continue;
		json_t *pics = json_object_get(c, "pics"), *ref = json_object_get(c, "refine");
		CHECKF(geo.cols == ji(c, "cols") && geo.rows == ji(c, "rows"), "%dx%d (max %d): grid %dx%d, want %dx%d", W,
		       H, s.max_slices, geo.cols, geo.rows, ji(c, "cols"), ji(c, "rows"));
		CHECK(geo.refine_w == json_integer_value(json_array_get(ref, 0)));
		CHECK(geo.refine_h == json_integer_value(json_array_get(ref, 1)));
		CHECK(geo.n == (int)json_array_size(pics));
		for (int k = 0; k < geo.n && k < (int)json_array_size(pics); k++) {
			json_t *p = json_array_get(pics, k);
			CHECKF(geo.pic[k].w == json_integer_value(json_array_get(p, 0)) &&
				       geo.pic[k].h == json_integer_value(json_array_get(p, 1)),
			       "%dx%d picture %d: %dx%d, want %lldx%lld", W, H, k, geo.pic[k].w, geo.pic[k].h,
			       json_integer_value(json_array_get(p, 0)), json_integer_value(json_array_get(p, 1)));
			CHECK(geo.pic[k].tw * s.patch == geo.pic[k].w && geo.pic[k].th * s.patch == geo.pic[k].h);
		}
		n++;
	}
	CHECK(n >= 40);
	json_decref(g);
}

/* the slices' boxes tile the original image; the source covers it */
static void test_boxes(void)
{
	struct lvd_minicpmv_slice_cfg s = {9, 448, 14};
	struct lvd_minicpmv_geom geo;
	struct lvd_error err = {0};
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, 1920, 2560, &err) == 0);
	REQUIRE(geo.cols == 3 && geo.rows == 3 && geo.n == 10);
	CHECK(geo.pic[0].row == -1 && geo.pic[0].x0 == 0 && geo.pic[0].x1 == 1920 && geo.pic[0].y1 == 2560);
	double area = 0;
	for (int i = 1; i < geo.n; i++) {
		const struct lvd_minicpmv_pic *p = &geo.pic[i];
		CHECK(p->row == (i - 1) / 3 && p->col == (i - 1) % 3);
		CHECK_NEAR(p->x0, p->col * 640.0, 1e-9);
		CHECK_NEAR(p->y1, (p->row + 1) * 2560.0 / 3, 1e-9);
		area += (p->x1 - p->x0) * (p->y1 - p->y0);
	}
	CHECK_NEAR(area, 1920.0 * 2560.0, 1e-3);
	/* unsliced: one picture */
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, 300, 200, &err) == 0);
	CHECK(geo.n == 1 && geo.cols == 0 && geo.rows == 0 && geo.refine_w == 0);
}

static int load_case_image(struct lvd_image *img, const char *sd, json_t *c)
{
	char path[4300];
	struct lvd_error err = {0};
	snprintf(path, sizeof path, "%s/images/%s", sd, json_string_value(json_object_get(c, "image")));
	if (lvd_image_load(img, path, LVD_ALPHA_DROP, &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	int k = ji(c, "tile");
	if (k == 1)
		return 0;
	struct lvd_image t = {0};
	if (lvd_image_alloc(&t, img->w * k, img->h * k, 3, &err)) {
		lvd_image_free(img);
		return -1;
	}
	for (int y = 0; y < t.h; y++)
		for (int x = 0; x < t.w; x++)
			memcpy(t.px + ((size_t)y * t.w + x) * 3, img->px + ((size_t)(y % img->h) * img->w + x % img->w) * 3, 3);
	lvd_image_free(img);
	*img = t;
	return 0;
}

static void test_pixels(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent (real photos needed)");
	json_t *g = gold();
	REQUIRE(g);
	size_t i;
	json_t *c;
	int npic = 0;
	json_array_foreach(json_object_get(g, "cases"), i, c) {
		struct lvd_image img = {0};
		REQUIRE(load_case_image(&img, sd, c) == 0);
		const char *name = json_string_value(json_object_get(c, "image"));
		CHECK(img.w == ji(c, "W") && img.h == ji(c, "H"));
		struct lvd_minicpmv_slice_cfg s = cfg_of(c);
		struct lvd_minicpmv_images im;
		struct lvd_error err = {0};
		int rc = lvd_minicpmv_preprocess(&im, &s, img.px, img.w, img.h, &err);
		lvd_image_free(&img);
		CHECKF(rc == 0, "%s: %s", name, err.msg);
		if (rc)
			continue;
		json_t *pics = json_object_get(c, "pics");
		CHECKF(im.geom.cols == ji(c, "cols") && im.geom.rows == ji(c, "rows") &&
			       im.geom.n == (int)json_array_size(pics),
		       "%s: grid %dx%d", name, im.geom.cols, im.geom.rows);
		for (int k = 0; k < im.geom.n && k < (int)json_array_size(pics); k++) {
			json_t *p = json_array_get(pics, k);
			const struct lvd_minicpmv_pic *q = &im.geom.pic[k];
			CHECK(q->w == ji(p, "w") && q->h == ji(p, "h") && q->th == ji(p, "th") && q->tw == ji(p, "tw"));
			const float *st = im.pixels + im.off[k];
			size_t n = im.off[k + 1] - im.off[k];
			CHECK(n == (size_t)3 * q->w * q->h);
			unsigned char dg[LVD_SHA256_LEN];
			char hex[LVD_SHA256_HEX_LEN];
			lvd_sha256(st, n * sizeof *st, dg); /* fp32 little-endian bytes, as numpy writes them */
			lvd_sha256_hex(dg, hex);
			size_t j;
			json_t *sm;
			double worst = 0;
			json_array_foreach(json_object_get(p, "samples"), j, sm) {
				size_t at = (size_t)json_integer_value(json_array_get(sm, 0));
				double want = json_real_value(json_array_get(sm, 1));
				double d = at < n ? fabs(st[at] - want) : INFINITY;
				worst = d > worst ? d : worst;
			}
			CHECKF(!strcmp(hex, json_string_value(json_object_get(p, "sha256"))),
			       "%s picture %d (%dx%d): strip differs; largest sampled difference %.3g", name, k, q->w, q->h,
			       worst);
			CHECKF(worst == 0, "%s picture %d: sampled values differ by up to %.3g", name, k, worst);
			npic++;
		}
		lvd_minicpmv_images_free(&im);
	}
	fprintf(stderr, "  %d pictures bit-exact checked\n", npic);
	CHECK(npic >= 30);
	json_decref(g);
}

static struct lvd_llama_tok *llama3(const char *sd)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/llama3/tokenizer.model", sd);
	struct lvd_llama_tok *t = NULL;
	struct lvd_error err = {0};
	if (lvd_llama_tok_load(&t, p, LVD_LLAMA_SCHEME_HF31, &err))
		fprintf(stderr, "  load: %s\n", err.msg);
	return t;
}

/* the real Llama-3 vocabulary for text; the MiniCPM tokens' ids from the golden file */
static int golden_ids(struct lvd_minicpmv_tok_ids *k, struct lvd_llama_tok *tok, json_t *g)
{
	json_t *sp = json_object_get(g, "special_ids");
	k->bos = lvd_llama_special_id(tok, "<|begin_of_text|>");
	k->start_header = lvd_llama_special_id(tok, "<|start_header_id|>");
	k->end_header = lvd_llama_special_id(tok, "<|end_header_id|>");
	k->eot = lvd_llama_special_id(tok, "<|eot_id|>");
	k->unk = (int32_t)json_integer_value(json_object_get(sp, "<unk>"));
	k->im_start = (int32_t)json_integer_value(json_object_get(sp, "<image>"));
	k->im_end = (int32_t)json_integer_value(json_object_get(sp, "</image>"));
	k->slice_start = (int32_t)json_integer_value(json_object_get(sp, "<slice>"));
	k->slice_end = (int32_t)json_integer_value(json_object_get(sp, "</slice>"));
	struct lvd_tokens t;
	struct lvd_error err = {0};
	lvd_tokens_init(&t);
	int rc = lvd_llama_encode(tok, "assistant", 9, 0, &t, &err);
	k->assistant = !rc && t.n == 1 ? t.ids[0] : -1;
	lvd_tokens_free(&t);
	return k->bos < 0 || k->eot < 0 || k->assistant < 0 || !k->im_start || !k->slice_end ? -1 : 0;
}

static void test_chat(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent (Llama-3 vocabulary needed)");
	json_t *g = gold();
	REQUIRE(g);
	struct lvd_llama_tok *tok = llama3(sd);
	REQUIRE(tok);
	struct lvd_minicpmv_tok_ids k;
	REQUIRE(golden_ids(&k, tok, g) == 0);
	int Q = ji(g, "query_num");
	size_t i;
	json_t *c;
	int ncase = 0;
	json_array_foreach(json_object_get(g, "cases"), i, c) {
		struct lvd_minicpmv_slice_cfg s = cfg_of(c);
		struct lvd_minicpmv_geom geo;
		struct lvd_error err = {0};
		const char *name = json_string_value(json_object_get(c, "image"));
		REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, ji(c, "W"), ji(c, "H"), &err) == 0);
		json_t *jm = json_object_get(c, "messages");
		struct lvd_minicpmv_msg msgs[8];
		size_t n = json_array_size(jm);
		REQUIRE(n <= 8);
		for (size_t m = 0; m < n; m++) {
			json_t *o = json_array_get(jm, m);
			msgs[m].role = json_string_value(json_object_get(o, "role"));
			msgs[m].content = json_string_value(json_object_get(o, "content"));
			msgs[m].len = json_string_length(json_object_get(o, "content"));
		}
		struct lvd_minicpmv_chat ch;
		int rc = lvd_minicpmv_chat_build(&ch, tok, &k, Q, &geo, msgs, n, &err);
		CHECKF(rc == 0, "%s: %s", name, err.msg);
		if (rc)
			continue;
		CHECK_STR(ch.text, json_string_value(json_object_get(c, "text")));
		json_t *ids = json_object_get(c, "input_ids"), *lab = json_object_get(c, "labels");
		CHECKF(ch.T == json_array_size(ids), "%s: %zu tokens, want %zu", name, ch.T, json_array_size(ids));
		size_t bad_id = 0, bad_lab = 0, ntrain = 0;
		for (size_t t = 0; t < ch.T && t < json_array_size(ids); t++) {
			bad_id += ch.ids[t] != json_integer_value(json_array_get(ids, t));
			bad_lab += ch.labels[t] != json_integer_value(json_array_get(lab, t));
			ntrain += ch.labels[t] != -100;
		}
		CHECKF(bad_id == 0, "%s: %zu ids differ", name, bad_id);
		CHECKF(bad_lab == 0, "%s: %zu labels differ", name, bad_lab);
		CHECK(ntrain > 0);
		json_t *bd = json_object_get(c, "image_bound");
		CHECK(ch.n_bound == (int)json_array_size(bd) && ch.n_bound == geo.n);
		for (int b = 0; b < ch.n_bound && b < (int)json_array_size(bd); b++) {
			CHECK(ch.bound[2 * b] == json_integer_value(json_array_get(json_array_get(bd, b), 0)));
			CHECK(ch.bound[2 * b + 1] == json_integer_value(json_array_get(json_array_get(bd, b), 1)));
			CHECK(ch.bound[2 * b + 1] - ch.bound[2 * b] == Q);
		}
		lvd_minicpmv_chat_free(&ch);
		ncase++;
	}
	CHECK(ncase >= 9);
	lvd_llama_tok_free(tok);
	json_decref(g);
}

/* what the batch layout holds: strips, zero padding, tgt_sizes */
static void test_batch(void)
{
	struct lvd_minicpmv_slice_cfg s = {4, 56, 14};
	int W = 150, H = 90;
	uint8_t *rgb = malloc((size_t)W * H * 3);
	REQUIRE(rgb);
	for (int i = 0; i < W * H * 3; i++)
		rgb[i] = (uint8_t)(i * 37 + (i / 7) * 11);
	struct lvd_minicpmv_images im;
	struct lvd_error err = {0};
	REQUIRE(lvd_minicpmv_preprocess(&im, &s, rgb, W, H, &err) == 0);
	free(rgb);
	REQUIRE(im.geom.n > 1);
	int L = lvd_minicpmv_images_lmax(&im) + 2, ps = 14;
	float *dst = malloc(sizeof(float) * (size_t)im.geom.n * 3 * ps * L * ps);
	int *tgt = malloc(sizeof(int) * 2 * (size_t)im.geom.n);
	REQUIRE(dst && tgt);
	lvd_minicpmv_images_batch(dst, tgt, L, &im);
	int bad = 0;
	for (int i = 0; i < im.geom.n; i++) {
		const struct lvd_minicpmv_pic *p = &im.geom.pic[i];
		CHECK(tgt[2 * i] == p->th && tgt[2 * i + 1] == p->tw);
		size_t n = (size_t)p->th * p->tw * ps;
		for (int r = 0; r < 3 * ps; r++)
			for (int x = 0; x < L * ps; x++) {
				float v = dst[((size_t)i * 3 * ps + r) * L * ps + x];
				float want = (size_t)x < n ? im.pixels[im.off[i] + r * n + x] : 0.0f;
				bad += v != want;
			}
		/* values are (u / 255 - 0.5) / 0.5 */
		for (size_t j = im.off[i]; j < im.off[i + 1]; j++)
			bad += !(im.pixels[j] >= -1.0f && im.pixels[j] <= 1.0f);
	}
	CHECK(bad == 0);
	free(dst);
	free(tgt);
	lvd_minicpmv_images_free(&im);
}

/* names looked up in a tokenizer.json carrying the MiniCPM tokens; missing ones named */
static void test_tok_ids(void)
{
	json_t *t = json_load_file(lvd_test_path("tests/golden/tokenizer/small/tokenizer.json"), 0, NULL);
	REQUIRE(t);
	json_t *added = json_object_get(t, "added_tokens");
	static const char *tags[] = {"<unk>", "<image>", "</image>", "<slice>", "</slice>"};
	char dir[] = "/tmp/lvd_mproc_XXXXXX", path[64];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	REQUIRE(json_dump_file(t, path, 0) == 0);
	struct lvd_llama_tok *tok = NULL;
	struct lvd_minicpmv_tok_ids k;
	struct lvd_error err = {0};
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_MLLAMA, &err) == 0);
	CHECK(lvd_minicpmv_tok_ids_get(&k, tok, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "<unk>");
	lvd_llama_tok_free(tok);
	for (int i = 0; i < 5; i++) {
		json_t *a = json_object();
		json_object_set_new(a, "id", json_integer(5000 + i));
		json_object_set_new(a, "content", json_string(tags[i]));
		json_object_set_new(a, "special", json_true());
		json_array_append_new(added, a);
	}
	REQUIRE(json_dump_file(t, path, 0) == 0);
	tok = NULL;
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_MLLAMA, &err) == 0);
	CHECKF(lvd_minicpmv_tok_ids_get(&k, tok, &err) == 0, "%s", err.msg);
	CHECK(k.unk == 5000 && k.im_start == 5001 && k.im_end == 5002 && k.slice_start == 5003 && k.slice_end == 5004);
	CHECK(k.bos == lvd_llama_special_id(tok, "<|begin_of_text|>") && k.eot == lvd_llama_special_id(tok, "<|eot_id|>"));
	/* a small layout with these ids: one source picture, Q = 3 */
	struct lvd_minicpmv_slice_cfg s = {9, 448, 14};
	struct lvd_minicpmv_geom geo;
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, 300, 200, &err) == 0);
	struct lvd_minicpmv_msg m[2] = {{"user", "<image>\nhi", 10}, {"assistant", "ok", 2}};
	struct lvd_minicpmv_chat ch;
	REQUIRE(lvd_minicpmv_chat_build(&ch, tok, &k, 3, &geo, m, 2, &err) == 0);
	CHECK(ch.n_bound == 1);
	CHECK(ch.ids[ch.bound[0] - 1] == 5001 && ch.ids[ch.bound[1]] == 5002);
	CHECK(ch.bound[1] - ch.bound[0] == 3);
	CHECK(ch.ids[ch.bound[0]] == 5000);
	lvd_minicpmv_chat_free(&ch);
	lvd_llama_tok_free(tok);
	unlink(path);
	rmdir(dir);
	json_decref(t);
}

/* overlap of [a0, a1) and [b0, b1) */
static double ovl(double a0, double a1, double b0, double b1)
{
	double lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
	return hi > lo ? hi - lo : 0;
}

/* word maps onto every picture's patch grid = the area-weighted mean over the picture's
 * box, computed here directly per patch */
static void test_targets(void)
{
	struct lvd_minicpmv_slice_cfg s = {9, 448, 14};
	static const int sizes[][2] = {{1920, 2560}, {300, 200}, {741, 500}, {4000, 900}};
	const int sh = 7, sw = 11;
	float src[7 * 11];
	for (int i = 0; i < sh * sw; i++)
		src[i] = (float)((i * 7919) % 101) / 100.0f;
	for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
		struct lvd_minicpmv_geom geo;
		struct lvd_minicpmv_targets t;
		struct lvd_error err = {0};
		const int W = sizes[z][0], H = sizes[z][1];
		REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, W, H, &err) == 0);
		REQUIRE(lvd_minicpmv_targets_init(&t, &geo, sh, sw, &err) == 0);
		float *dst = malloc(sizeof(float) * t.total);
		REQUIRE(dst);
		lvd_minicpmv_targets_apply(&t, dst, src);
		double worst = 0;
		size_t k = 0;
		for (int i = 0; i < geo.n; i++) {
			const struct lvd_minicpmv_pic *p = &geo.pic[i];
			double cw = (p->x1 - p->x0) / p->tw, ch = (p->y1 - p->y0) / p->th;
			for (int py = 0; py < p->th; py++)
				for (int px = 0; px < p->tw; px++, k++) {
					double y0 = p->y0 + py * ch, x0 = p->x0 + px * cw, acc = 0, tot = 0;
					for (int a = 0; a < sh; a++)
						for (int b = 0; b < sw; b++) {
							double w = ovl(y0, y0 + ch, (double)a * H / sh, (double)(a + 1) * H / sh) *
								   ovl(x0, x0 + cw, (double)b * W / sw, (double)(b + 1) * W / sw);
							acc += w * src[a * sw + b];
							tot += w;
						}
					double d = fabs(dst[k] - acc / tot);
					worst = d > worst ? d : worst;
				}
		}
		CHECK(k == t.total);
		CHECKF(worst < 1e-5, "%dx%d: largest difference %.3g", W, H, worst);
		free(dst);
		lvd_minicpmv_targets_free(&t);
	}
	struct lvd_minicpmv_geom geo;
	struct lvd_minicpmv_targets t;
	struct lvd_error err = {0};
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, 300, 200, &err) == 0);
	CHECK(lvd_minicpmv_targets_init(&t, &geo, 0, 4, &err) == LVD_ERR_INVALID);
}

static void test_errors(void)
{
	struct lvd_minicpmv_slice_cfg s = {9, 448, 14}, bad = {0, 448, 14};
	struct lvd_minicpmv_geom geo;
	struct lvd_error err = {0};
	CHECK(lvd_minicpmv_slice_geom(&geo, &s, 0, 10, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "0x10");
	CHECK(lvd_minicpmv_slice_geom(&geo, &s, 10, LVD_IMAGE_MAX_SIDE + 1, &err) == LVD_ERR_INVALID);
	CHECK(lvd_minicpmv_slice_geom(&geo, &bad, 10, 10, &err) == LVD_ERR_INVALID);
	/* a picture larger than an image may be: (1 x 30000) upscales to 14 x 77588 */
	uint8_t px[3 * 8] = {0};
	struct lvd_minicpmv_images im;
	CHECK(lvd_minicpmv_preprocess(&im, &s, px, 1, 8, &err) == 0);
	lvd_minicpmv_images_free(&im);
	uint8_t *tall = calloc(3, 30000);
	REQUIRE(tall);
	CHECK(lvd_minicpmv_preprocess(&im, &s, tall, 1, 30000, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "1x30000");
	CHECK(im.pixels == NULL);
	free(tall);
	/* config */
	struct lvd_minicpmv_config cfg = {0};
	cfg.slice_mode = 0, cfg.max_slice_nums = 9, cfg.scale_resolution = 448, cfg.slice_patch = 14;
	CHECK(lvd_minicpmv_slice_cfg_from(&s, &cfg, &err) == LVD_ERR_UNSUPPORTED);
	cfg.slice_mode = 1, cfg.max_slice_nums = LVD_MINICPMV_MAX_SLICES + 1;
	CHECK(lvd_minicpmv_slice_cfg_from(&s, &cfg, &err) == LVD_ERR_UNSUPPORTED);
	cfg.max_slice_nums = 9;
	CHECK(lvd_minicpmv_slice_cfg_from(&s, &cfg, &err) == 0 && s.max_slices == 9 && s.scale == 448 && s.patch == 14);
	/* conversations (ids are arbitrary: rejected before tokenizing) */
	struct lvd_minicpmv_tok_ids k = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &s, 300, 200, &err) == 0);
	struct lvd_minicpmv_chat ch;
	struct lvd_minicpmv_msg one[1] = {{"user", "hi", 2}};
	CHECK(lvd_minicpmv_chat_build(&ch, NULL, &k, 96, &geo, one, 1, &err) == LVD_ERR_INVALID);
	struct lvd_minicpmv_msg first[2] = {{"assistant", "hi", 2}, {"user", "x", 1}};
	CHECK(lvd_minicpmv_chat_build(&ch, NULL, &k, 96, &geo, first, 2, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not 'user'");
	struct lvd_minicpmv_msg two[2] = {{"user", "<image> and <image>", 19}, {"assistant", "x", 1}};
	CHECK(lvd_minicpmv_chat_build(&ch, NULL, &k, 96, &geo, two, 2, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "more than one");
	struct lvd_minicpmv_msg utf[2] = {{"user", "a\xff", 2}, {"assistant", "x", 1}};
	CHECK(lvd_minicpmv_chat_build(&ch, NULL, &k, 96, &geo, utf, 2, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "message 0: invalid UTF-8 at byte 1");
	struct lvd_minicpmv_msg ok[2] = {{"user", "a", 1}, {"assistant", "x", 1}};
	CHECK(lvd_minicpmv_chat_build(&ch, NULL, &k, 0, &geo, ok, 2, &err) == LVD_ERR_INVALID);
	CHECK(ch.ids == NULL && ch.T == 0);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_geometry), TEST(test_boxes),  TEST(test_pixels),
						TEST(test_chat),     TEST(test_batch),  TEST(test_tok_ids),
						TEST(test_targets),  TEST(test_errors), {0}};
	return lvd_test_main(argc, argv, tests);
}
