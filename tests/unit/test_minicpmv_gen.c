/* tests/unit/test_minicpmv_gen.c — generation with the KV cache for minicpmv
 * (lvd_minicpmv_gen_*, lib/models/minicpmv/minicpmv_gen.h) against transformers'
 * llm.generate(inputs_embeds, do_sample=False) on the tiny model of tests/ref/gen_minicpmv.py,
 * golden data by tests/ref/gen_minicpmv_generate.py (tests/golden/minicpmv_gen/
 * generate.safetensors). The pictures are made here from the real photos by
 * lvd_minicpmv_preprocess (the model's slice_config: 448, max 9), as the generator made
 * them with its re-implementation of the hub processor:
 *   test_single   B = 1, a 640x640 photo (source + 2x2 slices): tokens exact, step logits;
 *   test_batch    B = 2 (+ a 480x640 photo: source + 2 slices), the shorter prompt left
 *                 padded; sample 0 equals its single run; 2 threads give the same tokens;
 *   test_eos      an eos list that stops sample 0 after 3 tokens (then pads);
 *   test_nocache  the cached step logits equal lvd_minicpmv_forward of the whole sequence;
 *   test_lora     with LoRA adapters (dropout set, eval mode): the session equals the
 *                 no-cache forward with the same adapters, and differs from the base;
 *   test_bad      invalid sessions rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "golden_util.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"
#include "models/minicpmv/minicpmv_gen.h"
#include "models/minicpmv/minicpmv_proc.h"

#define GOLD "tests/golden/minicpmv_gen/generate.safetensors"
#define MODEL "tests/golden/minicpmv/model"
#define PAD 0
#define MAXNEW 8

static const char *const PHOTOS[2] = {"COCO_val2014_000000203438.png", "COCO_val2014_000000038678.png"};

struct gcase {
	int B, T, NI, Lmax, steps, neos;
	int *ids, *am, *bound, *nimg, *tgt, *seq, *eos, *mytgt;
	float *logits, *pix;
	struct lvd_minicpmv_batch b;
};

static void case_free(struct gcase *c)
{
	free(c->ids), free(c->am), free(c->bound), free(c->nimg), free(c->tgt), free(c->seq), free(c->eos);
	free(c->mytgt), free(c->logits), free(c->pix);
}

/* the photo's pictures by lvd_minicpmv_preprocess */
static int photo(struct lvd_minicpmv_images *im, const struct lvd_minicpmv_slice_cfg *s, const char *name)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/images/%s", lvd_test_shared_data(), name);
	struct lvd_image img = {0};
	struct lvd_error err = {0};
	int rc = lvd_image_load(&img, path, LVD_ALPHA_DROP, &err);
	if (!rc)
		rc = lvd_minicpmv_preprocess(im, s, img.px, img.w, img.h, &err);
	if (rc)
		fprintf(stderr, "  %s: %s\n", name, err.msg);
	lvd_image_free(&img);
	return rc;
}

static int case_load(struct gcase *c, const char *name, const struct lvd_minicpmv_config *cfg)
{
	struct lvd_st *gs = NULL;
	struct lvd_error err = {0};
	char key[128];
	memset(c, 0, sizeof *c);
	if (lvd_st_open(&gs, lvd_test_path(GOLD), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	snprintf(key, sizeof key, "%s.input_ids", name);
	const struct lvd_tensor_view *t = lvd_st_find(gs, key);
	snprintf(key, sizeof key, "%s.logits", name);
	const struct lvd_tensor_view *lt = lvd_st_find(gs, key);
	int rc = -1;
	if (!t || !lt)
		goto out;
	c->B = (int)t->shape[0], c->T = (int)t->shape[1], c->steps = (int)lt->shape[0];
	size_t n = 0;
#define GETI(field, suffix)                            \
	snprintf(key, sizeof key, "%s." suffix, name); \
	c->field = lvd_gold_i32(gs, key);
	GETI(ids, "input_ids");
	GETI(am, "attention_mask");
	GETI(bound, "image_bound");
	GETI(nimg, "n_images");
	GETI(tgt, "tgt_sizes");
	GETI(seq, "sequences");
#undef GETI
	snprintf(key, sizeof key, "%s.eos", name);
	free(lvd_gold_f32(gs, key, &n));
	c->neos = (int)n;
	c->eos = lvd_gold_i32(gs, key);
	snprintf(key, sizeof key, "%s.logits", name);
	c->logits = lvd_gold_f32(gs, key, NULL);
	if (!c->ids || !c->am || !c->bound || !c->nimg || !c->tgt || !c->seq || !c->eos || !c->logits)
		goto out;
	/* pictures from the photos, sample by sample */
	struct lvd_minicpmv_slice_cfg s;
	if (lvd_minicpmv_slice_cfg_from(&s, cfg, &err))
		goto out;
	struct lvd_minicpmv_images im[2];
	memset(im, 0, sizeof im);
	int ok = c->B <= 2;
	for (int b = 0; ok && b < c->B; b++) {
		ok = photo(&im[b], &s, PHOTOS[b]) == 0 && im[b].geom.n == c->nimg[b];
		c->NI += im[b].geom.n;
		int l = lvd_minicpmv_images_lmax(&im[b]);
		c->Lmax = l > c->Lmax ? l : c->Lmax;
	}
	if (ok) {
		size_t per = (size_t)3 * s.patch * c->Lmax * s.patch;
		c->pix = calloc(per * c->NI, sizeof(float));
		c->mytgt = calloc(2 * (size_t)c->NI, sizeof(int));
		ok = c->pix && c->mytgt;
		for (int b = 0, i = 0; ok && b < c->B; i += im[b].geom.n, b++)
			lvd_minicpmv_images_batch(c->pix + per * i, c->mytgt + 2 * i, c->Lmax, &im[b]);
	}
	for (int b = 0; b < 2; b++)
		lvd_minicpmv_images_free(&im[b]);
	if (!ok)
		goto out;
	struct lvd_minicpmv_batch bt = {.B = c->B, .T = c->T, .input_ids = c->ids, .NI = c->NI, .Lmax = c->Lmax,
					.pixel_values = c->pix, .tgt_sizes = c->mytgt, .n_images = c->nimg,
					.image_bound = c->bound};
	c->b = bt;
	rc = 0;
out:
	lvd_st_close(gs);
	return rc;
}

static struct lvd_minicpmv *load_model(void)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = {0};
	if (lvd_minicpmv_load(&m, lvd_test_path(MODEL), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	return m;
}

/* the session of a case: tokens exact against the golden; step logits [steps, B, V]
 * returned (caller frees); with check_logits, the logits against the golden */
static float *run_case(struct lvd_minicpmv *m, const struct gcase *c, const char *what, int check_logits)
{
	int B = c->B, V = lvd_minicpmv_cfg(m)->vocab;
	struct lvd_gen_opts o = {.max_new_tokens = MAXNEW, .eos = c->eos, .n_eos = c->neos, .pad_id = PAD};
	struct lvd_minicpmv_gen *g = NULL;
	struct lvd_error err = {0};
	int rc = lvd_minicpmv_gen_begin(&g, m, &c->b, c->am, &o, &err);
	CHECKF(rc == 0, "%s: begin: %s", what, err.msg);
	if (rc)
		return NULL;
	float *all = calloc((size_t)MAXNEW * B * V, sizeof(float));
	int next[8], done = 0, k = 0, tok_ok = 1;
	REQUIRE(all && B <= 8);
	while (lvd_minicpmv_gen_step(g, next, &done, &err) == 0 && !done) {
		REQUIRE(k < MAXNEW);
		memcpy(all + (size_t)k * B * V, lvd_minicpmv_gen_logits(g), sizeof(float) * (size_t)B * V);
		for (int s = 0; s < B; s++)
			if (k < c->steps && next[s] != c->seq[(size_t)s * c->steps + k]) {
				tok_ok = 0;
				fprintf(stderr, "  %s: step %d sample %d: token %d, transformers %d\n", what, k, s, next[s],
					c->seq[(size_t)s * c->steps + k]);
			}
		k++;
	}
	CHECKF(tok_ok, "%s: tokens differ from transformers", what);
	CHECKF(k == c->steps && lvd_minicpmv_gen_count(g) == c->steps, "%s: %d steps, transformers %d", what, k,
	       c->steps);
	CHECK(lvd_minicpmv_gen_step(g, next, &done, &err) == 0 && done == 1);
	CHECK(lvd_minicpmv_gen_bytes(g) > 0);
	if (check_logits) {
		/* fp32 on both sides (bf16-exact weights), the same ops in another summation
		 * order (BLAS vs torch, cache attention vs eager): test_minicpmv's 1e-4 of scale */
		char name[96];
		snprintf(name, sizeof name, "%s: step logits", what);
		CHECK_CLOSE(name, all, c->logits, (size_t)c->steps * B * V, 0, 1e-4);
	}
	lvd_minicpmv_gen_free(g);
	return all;
}

static int have_data(void)
{
	return lvd_test_shared_data() != NULL;
}

static void simple_case(const char *name)
{
	if (!have_data())
		SKIP("../shared/data absent (the photos)");
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct gcase c;
	REQUIRE(case_load(&c, name, lvd_minicpmv_cfg(m)) == 0);
	CHECK(memcmp(c.mytgt, c.tgt, sizeof(int) * 2 * (size_t)c.NI) == 0); /* the same slicing as the generator */
	free(run_case(m, &c, name, 1));
	lvd_minicpmv_free(m);
	case_free(&c);
}

static void test_single(void) { simple_case("single"); }
static void test_eos(void) { simple_case("eos"); }

static void test_batch(void)
{
	if (!have_data())
		SKIP("../shared/data absent (the photos)");
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct gcase c, s;
	REQUIRE(case_load(&c, "batch", lvd_minicpmv_cfg(m)) == 0 && case_load(&s, "single", lvd_minicpmv_cfg(m)) == 0);
	REQUIRE(c.B == 2 && c.am[c.T] == 0 && c.am[0] == 1 && s.B == 1); /* sample 1 left padded */
	int V = lvd_minicpmv_cfg(m)->vocab;
	float *lb = run_case(m, &c, "batch", 1), *ls = run_case(m, &s, "single", 1);
	REQUIRE(lb && ls);
	/* sample 0 beside a padded sample equals its run alone: the batch's GEMMs see more
	 * rows and the resampler more padded keys — summation order only, 1e-5 of scale */
	float *b0 = malloc(sizeof(float) * MAXNEW * V);
	REQUIRE(b0);
	for (int k = 0; k < MAXNEW; k++)
		memcpy(b0 + (size_t)k * V, lb + (size_t)k * 2 * V, sizeof(float) * V);
	CHECK_CLOSE("batch sample 0 vs single", b0, ls, (size_t)MAXNEW * V, 0, 1e-5);
	free(b0), free(lb), free(ls);
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts co = {.backend = LVD_BACKEND_CPU, .threads = 2};
	REQUIRE(lvd_ctx_create(&ctx, &co, &err) == 0);
	lvd_minicpmv_set_ctx(m, ctx);
	free(run_case(m, &c, "batch, 2 threads", 1));
	lvd_minicpmv_set_ctx(m, NULL);
	lvd_ctx_destroy(ctx);
	lvd_minicpmv_free(m);
	case_free(&c), case_free(&s);
}

/* prompt + generated tokens but the last through lvd_minicpmv_forward: the logits of rows
 * T-1 .. T+n-2 are the steps' (sample 0 of a case, unpadded) */
static float *nocache_logits(struct lvd_minicpmv *m, const struct gcase *c, const int *gen, int n)
{
	int V = lvd_minicpmv_cfg(m)->vocab, T = c->T + n - 1;
	int *ids = malloc(sizeof(int) * T);
	float *want = malloc(sizeof(float) * (size_t)n * V);
	REQUIRE(ids && want);
	memcpy(ids, c->ids, sizeof(int) * c->T);
	for (int k = 0; k + 1 < n; k++)
		ids[c->T + k] = gen[k];
	struct lvd_minicpmv_batch b = c->b;
	b.T = T;
	b.input_ids = ids;
	struct lvd_error err = {0};
	int rc = lvd_minicpmv_forward(m, &b, &err);
	CHECKF(rc == 0, "forward: %s", err.msg);
	for (int k = 0; !rc && k < n; k++)
		memcpy(want + (size_t)k * V, lvd_minicpmv_logits(m) + (size_t)(c->T - 1 + k) * V, sizeof(float) * V);
	free(ids);
	return want;
}

static void test_nocache(void)
{
	if (!have_data())
		SKIP("../shared/data absent (the photos)");
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct gcase c;
	REQUIRE(case_load(&c, "single", lvd_minicpmv_cfg(m)) == 0);
	float *steps = run_case(m, &c, "single", 1);
	REQUIRE(steps);
	float *want = nocache_logits(m, &c, c.seq, c.steps);
	/* both ours in fp32: cache attention on the last rows against the training forward's
	 * block attention — summation order only */
	CHECK_CLOSE("cached steps vs no-cache forward", steps, want, (size_t)c.steps * lvd_minicpmv_cfg(m)->vocab, 0,
		    1e-5);
	free(want), free(steps);
	lvd_minicpmv_free(m);
	case_free(&c);
}

/* LoRA on q/v with random A, B: the session (adapters, no dropout) equals the no-cache
 * forward with the same adapters (lvd_minicpmv_forward's LoRA path, checked against
 * PEFT by test_minicpmv_train) */
static void test_lora(void)
{
	if (!have_data())
		SKIP("../shared/data absent (the photos)");
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct gcase c;
	REQUIRE(case_load(&c, "single", lvd_minicpmv_cfg(m)) == 0);
	struct lvd_error err = {0};
	struct lvd_minicpmv_lora_cfg lc = {.r = 4, .alpha = 8, .dropout = 0.3f, .targets = "q_proj,v_proj", .seed = 3};
	REQUIRE(lvd_minicpmv_add_lora(m, &lc, &err) == 0);
	lvd_minicpmv_set_eval(m, 1);
	uint64_t st = 12345;
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *l = lvd_minicpmv_lora_at(m, i);
		for (int k = 0; k < 4 * l->out; k++) {
			st = st * 6364136223846793005ull + 1442695040888963407ull;
			l->B[k] = ((float)(st >> 40) / (float)(1u << 24) - 0.5f) * 0.2f;
		}
	}
	struct lvd_gen_opts o = {.max_new_tokens = MAXNEW, .eos = c.eos, .n_eos = c.neos, .pad_id = PAD};
	struct lvd_minicpmv_gen *g = NULL;
	REQUIRE(lvd_minicpmv_gen_begin(&g, m, &c.b, c.am, &o, &err) == 0);
	int V = lvd_minicpmv_cfg(m)->vocab, next[1], done = 0, n = 0, gen[MAXNEW], differs = 0;
	float *steps = malloc(sizeof(float) * MAXNEW * V);
	REQUIRE(steps);
	while (lvd_minicpmv_gen_step(g, next, &done, &err) == 0 && !done) {
		memcpy(steps + (size_t)n * V, lvd_minicpmv_gen_logits(g), sizeof(float) * V);
		differs |= next[0] != c.seq[n];
		gen[n++] = next[0];
	}
	lvd_minicpmv_gen_free(g);
	CHECK(n == MAXNEW);
	CHECK(differs); /* the adapters change the outputs */
	float *want = nocache_logits(m, &c, gen, n);
	CHECK_CLOSE("LoRA session vs LoRA no-cache forward", steps, want, (size_t)n * V, 0, 1e-5);
	free(want), free(steps);
	lvd_minicpmv_free(m);
	case_free(&c);
}

static void test_bad(void)
{
	if (!have_data())
		SKIP("../shared/data absent (the photos)");
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct gcase c;
	REQUIRE(case_load(&c, "batch", lvd_minicpmv_cfg(m)) == 0);
	struct lvd_minicpmv_gen *g = NULL;
	struct lvd_error err = {0};
	struct lvd_gen_opts o = {.max_new_tokens = 0, .eos = c.eos, .n_eos = 1, .pad_id = PAD};
	CHECK(lvd_minicpmv_gen_begin(&g, m, &c.b, c.am, &o, &err) == LVD_ERR_INVALID && !g);
	o.max_new_tokens = 4;
	int *am = malloc(sizeof(int) * c.B * c.T);
	REQUIRE(am);
	memcpy(am, c.am, sizeof(int) * c.B * c.T);
	memset(am + c.T, 0, sizeof(int) * c.T);
	CHECK(lvd_minicpmv_gen_begin(&g, m, &c.b, am, &o, &err) == LVD_ERR_INVALID && !g);
	CHECK_CONTAINS(err.msg, "sample 1");
	memcpy(am, c.am, sizeof(int) * c.B * c.T);
	am[c.bound[0]] = 0; /* a picture row marked as padding */
	CHECK(lvd_minicpmv_gen_begin(&g, m, &c.b, am, &o, &err) == LVD_ERR_INVALID && !g);
	CHECK_CONTAINS(err.msg, "image_bound[0]");
	c.ids[3] = 100000;
	CHECK(lvd_minicpmv_gen_begin(&g, m, &c.b, c.am, &o, &err) == LVD_ERR_INVALID && !g);
	CHECK_CONTAINS(err.msg, "input_ids");
	free(am);
	lvd_minicpmv_free(m);
	case_free(&c);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_single), TEST(test_batch), TEST(test_eos), TEST(test_nocache), TEST(test_lora), TEST(test_bad),
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}
