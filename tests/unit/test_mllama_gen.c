/* tests/unit/test_mllama_gen.c — greedy generation with the KV cache (lvd_mllama_gen_*)
 * against transformers' generate(do_sample=False) on the tiny mllama of
 * tests/ref/gen_mllama.py, golden data by tests/ref/gen_mllama_generate.py
 * (tests/golden/mllama/generate.safetensors; photos from io.safetensors):
 *   test_single     B = 1, tokens exact, step logits;
 *   test_batch      B = 2, sample 1 left padded (attention mask), tokens and logits;
 *                   sample 0 equals its single run; 2 threads give the same tokens;
 *   test_eos        an eos list that stops sample 0 early (then pads) and sample 1 on 201;
 *   test_text       no image (cross layers skipped);
 *   test_lora       the PEFT adapter of lora.safetensors;
 *   test_nocache    the cached step logits equal lvd_mllama_forward of the whole sequence
 *                   (cross mask extended by the prompt's last row);
 *   test_bad        invalid sessions rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"

#define GOLD "tests/golden/mllama"


static int *geti(struct lvd_st *st, const char *name, size_t *n)
{
	size_t k;
	float *f = lvd_gold_f32(st, name, &k);
	if (!f)
		return NULL;
	int *p = malloc(sizeof(int) * k);
	for (size_t i = 0; p && i < k; i++)
		p[i] = (int)f[i];
	free(f);
	if (n)
		*n = k;
	return p;
}

/* one golden case plus its batch */
struct gcase {
	int B, T, TL, steps, neos;
	int *ids, *am, *xm, *img, *seq, *eos, *arid, *armask;
	float *logits, *pix;
	struct lvd_mllama_batch b;
};

static void case_free(struct gcase *c)
{
	free(c->ids), free(c->am), free(c->xm), free(c->img), free(c->seq), free(c->eos), free(c->arid);
	free(c->armask), free(c->logits), free(c->pix);
}

static int case_load(struct gcase *c, const char *name)
{
	struct lvd_st *gs = NULL, *io = NULL;
	struct lvd_error err = { 0 };
	char key[128];
	memset(c, 0, sizeof *c);
	if (lvd_st_open(&gs, lvd_test_path(GOLD "/generate.safetensors"), &err) ||
	    lvd_st_open(&io, lvd_test_path(GOLD "/io.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		lvd_st_close(gs);
		return -1;
	}
	snprintf(key, sizeof key, "%s.input_ids", name);
	const struct lvd_tensor_view *t = lvd_st_find(gs, key);
	snprintf(key, sizeof key, "%s.logits", name);
	const struct lvd_tensor_view *lt = lvd_st_find(gs, key);
	const struct lvd_tensor_view *pv = lvd_st_find(io, "pixel_values");
	int rc = -1;
	if (!t || !lt || !pv)
		goto out;
	c->B = (int)t->shape[0];
	c->T = (int)t->shape[1];
	c->steps = (int)lt->shape[0];
	c->TL = (int)pv->shape[2];
	size_t n;
#define GETI(field, suffix, np)                                    \
	snprintf(key, sizeof key, "%s." suffix, name);             \
	c->field = geti(gs, key, np);
	GETI(ids, "input_ids", NULL);
	GETI(am, "attention_mask", NULL);
	GETI(xm, "cross_attention_mask", NULL);
	GETI(img, "image", NULL);
	GETI(seq, "sequences", NULL);
	GETI(eos, "eos", &n);
#undef GETI
	c->neos = (int)n;
	snprintf(key, sizeof key, "%s.logits", name);
	c->logits = lvd_gold_f32(gs, key, NULL);
	int *arid = geti(io, "aspect_ratio_ids", NULL), *arm = geti(io, "aspect_ratio_mask", NULL);
	float *pix = lvd_gold_f32(io, "pixel_values", NULL);
	size_t per = (size_t)pv->numel / (size_t)pv->shape[0]; /* one sample's [1, TL, C, H, W] */
	c->pix = malloc(sizeof(float) * per * c->B);
	c->arid = malloc(sizeof(int) * c->B);
	c->armask = malloc(sizeof(int) * c->B * c->TL);
	if (c->ids && c->am && c->xm && c->img && c->seq && c->eos && c->logits && arid && arm && pix && c->pix &&
	    c->arid && c->armask) {
		for (int s = 0; s < c->B; s++) {
			int k = c->img[s];
			memcpy(c->pix + per * s, pix + per * k, sizeof(float) * per);
			c->arid[s] = arid[k];
			memcpy(c->armask + s * c->TL, arm + k * c->TL, sizeof(int) * c->TL);
		}
		rc = 0;
	}
	free(arid), free(arm), free(pix);
	struct lvd_mllama_batch b = { .B = c->B, .T = c->T, .M = 1, .input_ids = c->ids, .pixel_values = c->pix,
				      .aspect_ratio_ids = c->arid, .aspect_ratio_mask = c->armask,
				      .cross_attention_mask = c->xm };
	c->b = b;
out:
	lvd_st_close(gs);
	lvd_st_close(io);
	return rc;
}

static struct lvd_mllama *load_model(int threads)
{
	struct lvd_mllama *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_mllama_load(&m, lvd_test_path(GOLD "/model"), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	if (threads > 1 && lvd_mllama_set_threads(m, threads, &err)) {
		lvd_mllama_free(m);
		return NULL;
	}
	return m;
}

/* runs the case's session; checks tokens (exact) and step logits against the golden;
 * returns the step logits [steps, B, V] (caller frees) */
static float *run_case(struct lvd_mllama *m, const struct gcase *c, const char *what)
{
	const struct lvd_mllama_config *cf = lvd_mllama_cfg(m);
	int B = c->B, V = cf->vocab, L = c->T + c->steps;
	struct lvd_gen_opts o = { .max_new_tokens = 8, .eos = c->eos, .n_eos = c->neos, .pad_id = 202 };
	struct lvd_mllama_gen *g = NULL;
	struct lvd_error err = { 0 };
	int rc = lvd_mllama_gen_begin(&g, m, &c->b, c->am, &o, &err);
	CHECKF(rc == 0, "%s: begin: %s", what, err.msg);
	if (rc)
		return NULL;
	float *all = calloc((size_t)8 * B * V, sizeof(float));
	int next[8], done = 0, k = 0, tok_ok = 1;
	REQUIRE(all && B <= 8);
	while (lvd_mllama_gen_step(g, next, &done, &err) == 0 && !done) {
		REQUIRE(k < 8);
		memcpy(all + (size_t)k * B * V, lvd_mllama_gen_logits(g), sizeof(float) * (size_t)B * V);
		for (int s = 0; s < B; s++)
			if (k < c->steps && next[s] != c->seq[(size_t)s * L + c->T + k]) {
				tok_ok = 0;
				fprintf(stderr, "  %s: step %d sample %d: token %d, transformers %d\n", what, k, s, next[s],
					c->seq[(size_t)s * L + c->T + k]);
			}
		k++;
	}
	CHECKF(tok_ok, "%s: tokens differ from transformers", what);
	CHECKF(k == c->steps && lvd_mllama_gen_count(g) == c->steps, "%s: %d steps, transformers %d", what, k, c->steps);
	CHECK(lvd_mllama_gen_step(g, next, &done, &err) == 0 && done == 1);
	CHECK(lvd_mllama_gen_bytes(g) > 0);
	/* fp32 on both sides, same ops in a different summation order (BLAS vs torch, a
	 * dot-product cache attention vs eager): the 1e-4-of-scale logits tolerance of
	 * test_mllama's forward */
	char name[96];
	snprintf(name, sizeof name, "%s: step logits", what);
	CHECK_CLOSE(name, all, c->logits, (size_t)c->steps * B * V, 0, 1e-4);
	lvd_mllama_gen_free(g);
	return all;
}

static void simple_case(const char *name, int threads)
{
	struct gcase c;
	REQUIRE(case_load(&c, name) == 0);
	struct lvd_mllama *m = load_model(threads);
	REQUIRE(m);
	free(run_case(m, &c, name));
	lvd_mllama_free(m);
	case_free(&c);
}

static void test_single(void) { simple_case("single", 1); }
static void test_eos(void) { simple_case("eos", 1); }

/* no image: the cross layers are skipped, as transformers does without pixel_values */
static void test_text(void)
{
	struct gcase c;
	REQUIRE(case_load(&c, "text") == 0);
	c.b.pixel_values = NULL;
	c.b.M = 0;
	struct lvd_mllama *m = load_model(1);
	REQUIRE(m);
	free(run_case(m, &c, "text"));
	lvd_mllama_free(m);
	case_free(&c);
}

static void test_batch(void)
{
	struct gcase c, s;
	REQUIRE(case_load(&c, "batch") == 0 && case_load(&s, "single") == 0);
	REQUIRE(c.B == 2 && c.am[c.T] == 0 && c.am[0] == 1 && s.B == 1); /* sample 1 left padded */
	struct lvd_mllama *m = load_model(1);
	REQUIRE(m);
	int V = lvd_mllama_cfg(m)->vocab;
	float *lb = run_case(m, &c, "batch"), *ls = run_case(m, &s, "single");
	REQUIRE(lb && ls);
	/* sample 0 of the batch (beside a padded sample) equals its run alone: same ops on
	 * the same rows, the batch's GEMMs see more rows — summation order only, 1e-5 of
	 * scale (the padded sample 1 is checked against transformers above) */
	float *b0 = malloc(sizeof(float) * 8 * V);
	REQUIRE(b0);
	for (int k = 0; k < 8; k++)
		memcpy(b0 + (size_t)k * V, lb + (size_t)k * 2 * V, sizeof(float) * V);
	CHECK_CLOSE("batch sample 0 vs single", b0, ls, (size_t)8 * V, 0, 1e-5);
	free(b0), free(lb), free(ls);
	lvd_mllama_free(m);
	m = load_model(2);
	REQUIRE(m);
	free(run_case(m, &c, "batch, 2 threads"));
	lvd_mllama_free(m);
	case_free(&c), case_free(&s);
}


static void test_lora(void)
{
	struct gcase c;
	REQUIRE(case_load(&c, "lora") == 0);
	struct lvd_mllama *m = load_model(1);
	REQUIRE(m);
	struct lvd_st *lt = NULL;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_st_open(&lt, lvd_test_path(GOLD "/lora.safetensors"), &err) == 0);
	/* dropout set: generation must not apply it (PEFT eval) */
	struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .dropout = 0.3f, .targets = "q_proj,v_proj", .seed = 1 };
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	int matched = 0;
	for (size_t i = 0; i < lvd_st_count(lt); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(lt, i);
		if (strncmp(t->name, "w.", 2) != 0)
			continue;
		char mod[200];
		REQUIRE(lvd_gold_peft_module(mod, sizeof mod, t->name) == 0);
		int isA = strstr(t->name, "lora_A") != NULL;
		for (size_t j = 0; j < lvd_mllama_nlora(m); j++) {
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, j);
			if (strcmp(l->module, mod) == 0) {
				REQUIRE(lvd_tensor_to_f32(t, isA ? l->A : l->B, (size_t)t->numel, &err) == 0);
				matched++;
			}
		}
	}
	CHECK(matched == 28);
	free(run_case(m, &c, "lora"));
	lvd_st_close(lt);
	lvd_mllama_free(m);
	case_free(&c);
}

static void test_nocache(void)
{
	struct gcase c;
	REQUIRE(case_load(&c, "single") == 0);
	struct lvd_mllama *m = load_model(1);
	REQUIRE(m);
	float *steps = run_case(m, &c, "single");
	REQUIRE(steps);
	const struct lvd_mllama_config *cf = lvd_mllama_cfg(m);
	int V = cf->vocab, n = c.steps, T = c.T + n - 1, G = c.TL;
	int *xm = malloc(sizeof(int) * T * G);
	REQUIRE(xm);
	for (int t = 0; t < T; t++)
		memcpy(xm + t * G, c.xm + (t < c.T ? t : c.T - 1) * G, sizeof(int) * G);
	struct lvd_mllama_batch b = c.b;
	b.T = T;
	b.input_ids = c.seq; /* prompt + generated, all but the last */
	b.cross_attention_mask = xm;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	float *want = malloc(sizeof(float) * n * V);
	REQUIRE(want);
	for (int k = 0; k < n; k++)
		memcpy(want + (size_t)k * V, lvd_mllama_logits(m) + (size_t)(c.T - 1 + k) * V, sizeof(float) * V);
	/* both ours in fp32: the cache path (per-row dot-product attention, last rows only)
	 * against the training forward (block GEMM attention) — summation order only */
	CHECK_CLOSE("cached steps vs no-cache forward", steps, want, (size_t)n * V, 0, 1e-5);
	free(want), free(xm), free(steps);
	lvd_mllama_free(m);
	case_free(&c);
}

static void test_bad(void)
{
	struct gcase c;
	REQUIRE(case_load(&c, "batch") == 0);
	struct lvd_mllama *m = load_model(1);
	REQUIRE(m);
	struct lvd_mllama_gen *g = NULL;
	struct lvd_error err = { 0 };
	struct lvd_gen_opts o = { .max_new_tokens = 0, .eos = c.eos, .n_eos = 1, .pad_id = 202 };
	CHECK(lvd_mllama_gen_begin(&g, m, &c.b, c.am, &o, &err) == LVD_ERR_INVALID && !g);
	o.max_new_tokens = 4;
	int *am = malloc(sizeof(int) * c.B * c.T);
	REQUIRE(am);
	memcpy(am, c.am, sizeof(int) * c.B * c.T);
	memset(am + c.T, 0, sizeof(int) * c.T);
	CHECK(lvd_mllama_gen_begin(&g, m, &c.b, am, &o, &err) == LVD_ERR_INVALID && !g);
	CHECK_CONTAINS(err.msg, "sample 1");
	c.ids[3] = 100000;
	CHECK(lvd_mllama_gen_begin(&g, m, &c.b, c.am, &o, &err) == LVD_ERR_INVALID && !g);
	CHECK_CONTAINS(err.msg, "input_ids");
	free(am);
	lvd_mllama_free(m);
	case_free(&c);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_single), TEST(test_batch), TEST(test_eos), TEST(test_text), TEST(test_lora), TEST(test_nocache), TEST(test_bad),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
