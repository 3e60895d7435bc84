/* Checks of lvd-eval align's numerics and helpers for its CLI test:
 *   - lib/eval/align.h metrics on hand-built 4×4 maps against values computed by hand
 *     from the definitions (each expected value derived in a comment);
 *   - lvd_latt_raw_word_maps: the mean equals lvd_latt_word_maps' raw bit for bit, and
 *     each layer's map equals the raw map of a one-layer configuration;
 *   - test_align --pack DIR MODEL PHOTOS N: an lvd-pack folder of N records made from
 *     real photos (PNGs of PHOTOS = ../shared/data/images) for the mllama folder MODEL
 *     (its tile, patch, tiles and image token; the golden tiny one in the CLI test, the
 *     medium bench model in bench/eval_align.sh); targets are per-patch channel means of
 *     the photo, min-max normalised. Prints the number of matched words.
 *   - test_align --png-size FILE: prints "W H" of a PNG (exit 1 when it does not decode). */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"

#include "core/sha256.h"
#include "eval/align.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/geometry.h"
#include "lavender/latt.h"
#include "lavender/packrec.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"

static struct lvd_eval_align_m metrics(const float *m, const float *t, const uint8_t *mask, size_t n)
{
	struct lvd_eval_align_m r;
	struct lvd_error e = {0};
	void *work = malloc(lvd_eval_align_work_bytes(n));
	LVD_ASSERT(work);
	LVD_ASSERT(lvd_eval_align_metrics(&r, m, t, mask, n, work, &e) == 0);
	free(work);
	return r;
}

static const uint8_t ALL[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* Target: 1 at cell 5, 0.5 at cell 6; map: the two swapped. */
static void test_swapped_peaks(void)
{
	float t[16] = {0}, m[16] = {0};
	t[5] = 1.0f, t[6] = 0.5f;
	m[6] = 1.0f, m[5] = 0.5f;
	struct lvd_eval_align_m r = metrics(m, t, ALL, 16);
	/* two cells off by 0.5: (0.25 + 0.25) / 16 */
	CHECK_NEAR(r.mse, 0.03125, 1e-15);
	/* equal means 1.5/16; Σmt − 16·mean² = 1 − 0.140625 = 55/64; Σm² − 16·mean² = 71/64 */
	CHECK_NEAR(r.pearson, 55.0 / 71.0, 1e-12);
	/* both sums 1.5 + 16ε cancel in p/q: KL = 0.5·ln((1+ε)/(0.5+ε)) / (1.5 + 16ε),
	 * ≈ ln(2)/3 */
	const double eps = LVD_EVAL_ALIGN_EPS;
	CHECK_NEAR(r.kl, 0.5 * log((1 + eps) / (0.5 + eps)) / (1.5 + 16 * eps), 1e-12);
	CHECK_NEAR(r.kl, log(2.0) / 3.0, 1e-5);
	/* mass 1.5: 10% and 20% are reached by the first cell: S(t) = {5}, S(m) = {6} */
	CHECK(r.iou10 == 0.0 && r.iou20 == 0.0);
	/* argmax of m is cell 6, not in {5} */
	CHECK(r.pointing == 0.0);
}

/* Identical maps: perfect scores. */
static void test_identical(void)
{
	float t[16];
	for (int i = 0; i < 16; i++)
		t[i] = (float)((i * 7) % 5) / 4.0f;
	struct lvd_eval_align_m r = metrics(t, t, ALL, 16);
	CHECK(r.mse == 0.0);
	CHECK_NEAR(r.pearson, 1.0, 1e-12);
	CHECK_NEAR(r.kl, 0.0, 1e-15);
	CHECK(r.iou10 == 1.0 && r.iou20 == 1.0 && r.pointing == 1.0);
}

/* A flat target with two raised cells: S10(t) = {5}, S20(t) = {5, 6}; the map's peak at
 * cell 6 points inside S20 but not at the target's argmax. */
static void test_pointing_and_iou(void)
{
	float t[16], m[16] = {0};
	for (int i = 0; i < 16; i++)
		t[i] = 0.1f;
	t[5] = 0.3f, t[6] = 0.29f;
	m[6] = 1.0f;
	struct lvd_eval_align_m r = metrics(m, t, ALL, 16);
	/* mass of t: 0.59 + 14·0.1 = 1.99: 10% = 0.199 < 0.3 (cell 5); 20% = 0.398 needs
	 * cells 5 and 6 (0.59). The map's mass is all in cell 6: S10(m) = S20(m) = {6}. */
	CHECK(r.iou10 == 0.0);
	CHECK_NEAR(r.iou20, 0.5, 0);
	CHECK(r.pointing == 1.0);
	/* MSE: cell 6 (1 − 0.29)² + cell 5 0.3² + 14·0.1² = 0.5041 + 0.09 + 0.14 over 16 */
	CHECK_NEAR(r.mse, (0.71 * 0.71 + 0.09 + 0.14) / 16, 1e-7);
}

/* Invalid cells are ignored: huge values there change nothing; a constant map has
 * Pearson 0 and an empty mass set when it is 0. */
static void test_mask_and_degenerate(void)
{
	uint8_t mask[16];
	float t[16], m[16];
	for (int i = 0; i < 16; i++) {
		mask[i] = i % 4 < 2; /* the left half */
		t[i] = mask[i] ? (float)(i % 3) / 2.0f : 50.0f;
		m[i] = mask[i] ? (float)((i + 1) % 3) / 2.0f : 99.0f;
	}
	struct lvd_eval_align_m a = metrics(m, t, mask, 16);
	for (int i = 0; i < 16; i++)
		if (!mask[i])
			t[i] = m[i] = -7.0f;
	struct lvd_eval_align_m b = metrics(m, t, mask, 16);
	CHECK(memcmp(&a, &b, sizeof a) == 0);
	/* hand check of the MSE: valid cells 0,1,4,5,8,9,12,13; t = (i%3)/2, m = ((i+1)%3)/2 */
	double se = 0;
	const int cells[8] = {0, 1, 4, 5, 8, 9, 12, 13};
	for (int k = 0; k < 8; k++) {
		double d = ((cells[k] + 1) % 3 - cells[k] % 3) / 2.0;
		se += d * d;
	}
	CHECK_NEAR(a.mse, se / 8, 1e-15);
	float z[16] = {0};
	struct lvd_eval_align_m c = metrics(z, t, mask, 16);
	CHECK(c.pearson == 0.0);   /* constant map */
	CHECK(c.iou10 == 0.0);     /* empty set against a non-empty one */
	/* argmax of a constant map: the first valid cell (0); t[0] = 0 is not in S20(t) */
	CHECK(c.pointing == 0.0);
	uint8_t none[16] = {0};
	void *work = malloc(lvd_eval_align_work_bytes(16));
	struct lvd_error e = {0};
	CHECK(lvd_eval_align_metrics(&c, m, t, none, 16, work, &e) == LVD_ERR_INVALID);
	free(work);
}

/* The top-k mass set itself: order by value, ties by index, shortest prefix. */
static void test_topk_mass(void)
{
	uint8_t set[4];
	size_t order[8];
	const uint8_t all[4] = {1, 1, 1, 1};
	const float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
	/* 0.4 < 0.5·1.0 <= 0.4 + 0.3 */
	CHECK(lvd_eval_topk_mass(set, order, x, all, 4, 0.5) == 2);
	CHECK(set[3] && set[2] && !set[1] && !set[0]);
	CHECK(lvd_eval_topk_mass(set, order, x, all, 4, 0.35) == 1);
	CHECK(lvd_eval_topk_mass(set, order, x, all, 4, 0.75) == 3);
	CHECK(lvd_eval_topk_mass(set, order, x, all, 4, 1.0) == 4);
	const float tie[4] = {0.5f, 0.5f, 0, 0};
	CHECK(lvd_eval_topk_mass(set, order, tie, all, 4, 0.3) == 1);
	CHECK(set[0] && !set[1]);
	const float zero[4] = {0};
	CHECK(lvd_eval_topk_mass(set, order, zero, all, 4, 0.2) == 0);
	const float y[4] = {1.0f, 0.2f, 0.3f, 0.4f};
	const uint8_t mask[4] = {0, 1, 1, 1};
	/* mass 0.9 without cell 0: half is 0.45 -> {3, 2} */
	CHECK(lvd_eval_topk_mass(set, order, y, mask, 4, 0.5) == 2);
	CHECK(!set[0] && set[2] && set[3]);
}

/* lvd_latt_raw_word_maps against lvd_latt_word_maps on random probabilities: 2 layers,
 * 2 heads, 1×1 tile of 2×2 patches (tile_tok 5, CLS first), 3 rows, 2 words. */
static void test_raw_word_maps(void)
{
	struct lvd_error e = {0};
	struct lvd_ctx *ctx = NULL;
	REQUIRE(lvd_ctx_create(&ctx, NULL, &e) == 0);
	struct lvd_latt_geom g = {0};
	g.heads = 2, g.S = 5, g.tile_tok = 5, g.tok_skip = 1, g.patches = 2, g.tiles_h = 1, g.tiles_w = 1;
	g.patch_px = 14, g.new_h = 28, g.new_w = 20;
	REQUIRE(lvd_latt_geom_check(&g, &e) == 0);
	const int R = 3, HW = g.gh * g.gw;
	float p0[2 * 3 * 5], p1[2 * 3 * 5];
	for (int i = 0; i < 30; i++) {
		p0[i] = (float)((i * 37) % 11) / 11.0f;
		p1[i] = (float)((i * 53) % 13) / 13.0f;
	}
	const float *probs[2] = {p0, p1};
	uint8_t mask[4];
	lvd_latt_mask(&g, mask);
	const int r0[2] = {0, 2}, r1[1] = {1};
	struct lvd_latt_word words[2] = {{2, r0, NULL}, {1, r1, NULL}};
	struct lvd_latt_sample s = { .geom = g, .R = R, .probs = probs, .mask = mask, .W = 2, .words = words };
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, 2, 2);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg.aligner);
	float *params = malloc(lay.n_params * sizeof *params);
	lvd_aligner_init(&cfg.aligner, params, 3, LVD_ALIGNER_INIT_NORMAL, 0.02f);
	float per[2 * 2 * 4], mean[2 * 4], ref[2 * 4], al[2 * 4];
	lvd_latt_raw_word_maps(ctx, per, mean, &s, &cfg);
	lvd_latt_word_maps(ctx, al, ref, &s, params, &cfg);
	CHECK(memcmp(mean, ref, sizeof mean) == 0);
	for (int l = 0; l < 2; l++) {
		struct lvd_latt_cfg c1 = cfg;
		c1.n_layers = 1;
		c1.layers[0] = l;
		lvd_latt_word_maps(ctx, al, ref, &s, params, &c1);
		CHECK(memcmp(per + (size_t)l * 2 * HW, ref, sizeof ref) == 0);
	}
	/* every valid cell of a word map lies in [0, 1] and the maximum is ~1 */
	float mx = 0;
	for (int i = 0; i < HW; i++)
		if (mask[i]) {
			CHECK(mean[i] >= 0 && mean[i] <= 1);
			mx = mean[i] > mx ? mean[i] : mx;
		}
	CHECK_NEAR(mx, 1.0, 1e-5);
	free(params);
	lvd_ctx_destroy(ctx);
}

/* ---- the real-photo pack --------------------------------------------------------------- */

/* the model's vision constants and image token (its config.json) */
static struct lvd_mllama_config g_mc;

static const char *const PHOTOS[] = {
	"skimage_chelsea.png", "COCO_val2014_000000038678.png", "skimage_camera.png",
	"COCO_val2014_000000096638.png", "skimage_astronaut.png", "skimage_page.png",
};
#define N_PHOTOS 6

/* Record i from photo i % 6 (shrunk to at most 96 px a side, embedded as PNG): 10 tokens
 * (image token at 1, labels from t = 3), 1 + i % 3 matched words; word w's target is the
 * photo's channel w % 3 averaged over each valid patch of the canvas, min-max normalised. */
static uint8_t *photo_record(int i, const char *dir, size_t *len, int *n_words, struct lvd_error *e)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, PHOTOS[i % N_PHOTOS]);
	struct lvd_image full = {0}, im = {0}, canvas = {0};
	if (lvd_image_load(&full, path, LVD_ALPHA_WHITE, e))
		return NULL;
	double sc = 96.0 / (full.w > full.h ? full.w : full.h);
	int w = (int)(full.w * sc + 0.5), h = (int)(full.h * sc + 0.5);
	uint8_t *png = NULL, *out = NULL;
	size_t png_len = 0;
	struct lvd_geom_cfg gc = {g_mc.v_image_size, g_mc.v_patch, g_mc.v_max_tiles};
	const int PATCH = g_mc.v_patch;
	struct lvd_geom g;
	struct lvd_packrec r = {0};
	if (lvd_image_resize(&im, &full, w, h, LVD_RESAMPLE_BILINEAR, 1, e) || lvd_image_encode_png(&im, &png, &png_len, e) ||
	    lvd_geom_layout(&g, &gc, h, w, e) ||
	    lvd_image_resize(&canvas, &im, g.new_w, g.new_h, LVD_RESAMPLE_BILINEAR, 1, e))
		goto done;
	char id[32];
	snprintf(id, sizeof id, "photo%02d", i);
	r.id = id;
	r.flags = LVD_PACKREC_IMAGE;
	r.T = 10;
	int32_t tokens[10], labels[10];
	tokens[0] = 200;
	for (uint32_t t = 1; t < r.T; t++)
		tokens[t] = t == 1 ? g_mc.image_token_index : 10 + (int)((i * 7 + (int)t * 13) % 180);
	for (uint32_t t = 0; t < r.T; t++)
		labels[t] = t < 3 ? -100 : tokens[t];
	r.tokens = tokens;
	r.labels = labels;
	r.W = 1 + (uint32_t)(i % 3);
	static const char *const keys[3] = {"red", "green", "blue"};
	struct lvd_packrec_word words[3];
	uint32_t pos[3][2], query[3][2];
	for (uint32_t wi = 0; wi < r.W; wi++) {
		pos[wi][0] = 3 + wi;
		pos[wi][1] = 7 + wi;
		query[wi][0] = 2 + wi;
		query[wi][1] = 6 + wi;
		words[wi] = (struct lvd_packrec_word){(char *)keys[wi], 2, 2, pos[wi], query[wi], 0, 0.0f, 1.0f};
	}
	r.words = words;
	r.gh = (uint32_t)g.grid_h;
	r.gw = (uint32_t)g.grid_w;
	size_t hw = (size_t)r.gh * r.gw;
	r.mask = malloc(hw);
	r.targets = calloc(r.W * hw + 1, sizeof *r.targets);
	float *acc = calloc(hw + 1, sizeof *acc);
	LVD_ASSERT(r.mask && r.targets && acc);
	for (uint32_t wi = 0; wi < r.W; wi++) {
		float lo = 1e30f, hi = -1e30f;
		for (size_t c = 0; c < hw; c++) {
			int y = (int)(c / r.gw), x = (int)(c % r.gw);
			r.mask[c] = y * PATCH < g.new_h && x * PATCH < g.new_w;
			acc[c] = 0;
			if (!r.mask[c])
				continue;
			int n = 0;
			for (int py = y * PATCH; py < (y + 1) * PATCH && py < g.new_h; py++)
				for (int px = x * PATCH; px < (x + 1) * PATCH && px < g.new_w; px++, n++)
					acc[c] += canvas.px[((size_t)py * g.new_w + px) * 3 + wi % 3];
			acc[c] /= (float)n;
			lo = acc[c] < lo ? acc[c] : lo;
			hi = acc[c] > hi ? acc[c] : hi;
		}
		for (size_t c = 0; c < hw; c++)
			r.targets[wi * hw + c] = lvd_f32_to_f16(r.mask[c] ? (acc[c] - lo) / (hi - lo + 1e-6f) : 0.0f);
	}
	free(acc);
	lvd_packrec_set_geom(&r, &g, g_mc.v_image_size, PATCH);
	r.image_pos = 1;
	r.image = png;
	r.image_len = (uint32_t)png_len;
	*n_words = (int)r.W;
	if (lvd_packrec_encode(&r, &out, len, e))
		out = NULL;
	free(r.mask);
	free(r.targets);
done:
	free(png);
	lvd_image_free(&full);
	lvd_image_free(&im);
	lvd_image_free(&canvas);
	return out;
}

/* pack.json (the model's config fingerprint), one shard of n records, shards.jsonl. */
static int photo_pack(const char *dir, const char *model, const char *photos, int n, int *words, struct lvd_error *e)
{
	int rc = lvd_mkdir_p(dir, e);
	char p[700], hex[LVD_SHA256_HEX_LEN], js[1200], line[256];
	unsigned char d[LVD_SHA256_LEN];
	snprintf(p, sizeof p, "%s/config.json", model);
	if (rc || (rc = lvd_mllama_config_load(&g_mc, p, e)) || (rc = lvd_sha256_file(p, d, e)))
		return rc;
	lvd_sha256_hex(d, hex);
	snprintf(js, sizeof js, "{\"tool\": \"test_align\", \"params\": {}, \"inputs\": {\"model\": {\"config_sha256\": \"%s\"}}}\n",
		 hex);
	snprintf(p, sizeof p, "%s/pack.json", dir);
	if ((rc = lvd_file_write_atomic(p, js, strlen(js), e)))
		return rc;
	struct lvd_rec_writer *w = NULL;
	snprintf(p, sizeof p, "%s/train-00000.lvdp", dir);
	if ((rc = lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, js, NULL, e)))
		return rc;
	*words = 0;
	for (int i = 0; i < n && !rc; i++) {
		size_t len = 0;
		int nw = 0;
		uint8_t *pl = photo_record(i, photos, &len, &nw, e);
		char id[32];
		snprintf(id, sizeof id, "photo%02d", i);
		rc = pl ? lvd_rec_writer_append(w, id, pl, len, e) : 1;
		*words += nw;
		free(pl);
	}
	int rc2 = lvd_rec_writer_close(w, e);
	if (rc || rc2)
		return rc ? rc : rc2;
	snprintf(line, sizeof line, "{\"shard\": 0, \"first\": 0, \"end\": %d, \"records\": %d}\n", n, n);
	snprintf(p, sizeof p, "%s/shards.jsonl", dir);
	return lvd_file_write_atomic(p, line, strlen(line), e);
}

int main(int argc, char **argv)
{
	struct lvd_error e = {0};
	if (argc == 6 && !strcmp(argv[1], "--pack")) {
		int words = 0;
		if (photo_pack(argv[2], argv[3], argv[4], atoi(argv[5]), &words, &e)) {
			fprintf(stderr, "test_align --pack: %s\n", e.msg);
			return 1;
		}
		printf("%d\n", words);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--png-size")) {
		struct lvd_image im = {0};
		if (lvd_image_load(&im, argv[2], LVD_ALPHA_DROP, &e)) {
			fprintf(stderr, "test_align --png-size: %s\n", e.msg);
			return 1;
		}
		printf("%d %d\n", im.w, im.h);
		lvd_image_free(&im);
		return 0;
	}
	static const struct lvd_test tests[] = {
		TEST(test_swapped_peaks), TEST(test_identical), TEST(test_pointing_and_iou),
		TEST(test_mask_and_degenerate), TEST(test_topk_mass), TEST(test_raw_word_maps), {0},
	};
	return lvd_test_main(argc, argv, tests);
}
