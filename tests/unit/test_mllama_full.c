/* tests/unit/test_mllama_full.c — what lvd-sft's --full and export --merge use, on the
 * tiny golden mllama (tests/golden/mllama):
 *  - lvd_mllama_freeze: frozen groups get no gradient, the others exactly the gradients
 *    of an unfrozen backward;
 *  - lvd_mllama_save_hf: a LoRA-merged F32 folder loaded back by our loader gives the
 *    logits of base + LoRA within fp32 rounding, a BF16 folder within bf16 rounding;
 *    shards, index, copied files, the dtype in config.json, the refusal of a non-empty
 *    folder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "core/rng.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"

#define GOLD "tests/golden/mllama"

static char g_tmp[256];

struct io {
	struct lvd_st *st;
	int B, T, M;
	int *ids, *labels, *arid, *armask, *xmask;
	float *pix;
};

static int io_open(struct io *g)
{
	struct lvd_error err = {0};
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->st, lvd_test_path(GOLD "/io.safetensors"), &err))
		return -1;
	const struct lvd_tensor_view *pv = lvd_st_find(g->st, "pixel_values"), *ii = lvd_st_find(g->st, "input_ids");
	if (!pv || !ii)
		return -1;
	g->B = (int)ii->shape[0], g->T = (int)ii->shape[1], g->M = (int)pv->shape[1];
	g->ids = lvd_gold_i32(g->st, "input_ids"), g->labels = lvd_gold_i32(g->st, "labels"), g->arid = lvd_gold_i32(g->st, "aspect_ratio_ids");
	g->armask = lvd_gold_i32(g->st, "aspect_ratio_mask"), g->xmask = lvd_gold_i32(g->st, "cross_attention_mask");
	g->pix = lvd_gold_f32(g->st, "pixel_values", NULL);
	return g->ids && g->labels && g->arid && g->armask && g->xmask && g->pix ? 0 : -1;
}

static void io_close(struct io *g)
{
	free(g->ids), free(g->labels), free(g->arid), free(g->armask), free(g->xmask), free(g->pix);
	lvd_st_close(g->st);
}

static struct lvd_mllama_batch io_batch(const struct io *g, int labels)
{
	struct lvd_mllama_batch b = {.B = g->B, .T = g->T, .M = g->M, .input_ids = g->ids,
				     .labels = labels ? g->labels : NULL, .pixel_values = g->pix,
				     .aspect_ratio_ids = g->arid, .aspect_ratio_mask = g->armask,
				     .cross_attention_mask = g->xmask};
	return b;
}

static float *logits_of(struct lvd_mllama *m, const struct io *g, size_t *n)
{
	struct lvd_error err = {0};
	struct lvd_mllama_batch b = io_batch(g, 0);
	if (lvd_mllama_forward(m, &b, &err)) {
		fprintf(stderr, "  forward: %s\n", err.msg);
		return NULL;
	}
	*n = (size_t)g->B * g->T * lvd_mllama_cfg(m)->vocab;
	float *l = malloc(*n * sizeof *l);
	if (l)
		memcpy(l, lvd_mllama_logits(m), *n * sizeof *l);
	return l;
}

static double max_diff(const float *a, const float *b, size_t n, double *amax)
{
	double d = 0;
	*amax = 0;
	for (size_t i = 0; i < n; i++) {
		double x = fabs((double)a[i] - b[i]);
		d = x > d || isnan(x) ? x : d;
		*amax = fabs(a[i]) > *amax ? fabs(a[i]) : *amax;
	}
	return d;
}

static float *logits_of_folder(const char *dir, const struct io *g, size_t *n)
{
	struct lvd_error err = {0};
	struct lvd_mllama *m = NULL;
	if (lvd_mllama_load_frozen(&m, dir, &err)) {
		fprintf(stderr, "  load %s: %s\n", dir, err.msg);
		return NULL;
	}
	float *l = logits_of(m, g, n);
	lvd_mllama_free(m);
	return l;
}

/* Every frozen set: frozen groups' gradients stay zero, the others are bitwise those of
 * an unfrozen backward (CE of the golden batch). */
static void test_freeze(void)
{
	struct lvd_error err = {0};
	struct io g;
	REQUIRE(io_open(&g) == 0);
	struct lvd_mllama *m = NULL;
	REQUIRE(lvd_mllama_load(&m, lvd_test_path(GOLD "/model"), &err) == 0);
	REQUIRE(lvd_mllama_enable_grads(m, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	size_t np = lvd_mllama_nparams(m), total = 0, npb = 0, ngb = 0, outside = 0;
	float *pb = lvd_mllama_param_block(m, &npb), *gb = lvd_mllama_grad_block(m, &ngb);
	CHECK(pb && gb && npb == ngb);
	for (size_t i = 0; i < np; i++) {
		const struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
		total += p->numel;
		outside += p->data < pb || p->data + p->numel > pb + npb || p->grad - gb != p->data - pb;
	}
	CHECK(outside == 0 && npb >= total && npb < total + 16 * np);
	float *ref = malloc(total * sizeof *ref);
	REQUIRE(ref != NULL);
	struct lvd_mllama_batch b = io_batch(&g, 1);
	static const unsigned sets[] = {0, LVD_MLLAMA_VISION, LVD_MLLAMA_VISION | LVD_MLLAMA_PROJECTOR,
					LVD_MLLAMA_TEXT, LVD_MLLAMA_CROSS | LVD_MLLAMA_VISION,
					LVD_MLLAMA_ALL_GROUPS & ~LVD_MLLAMA_CROSS};
	for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		lvd_mllama_zero_grads(m);
		lvd_mllama_freeze(m, sets[s]);
		REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
		REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
		size_t off = 0, bad_frozen = 0, bad_trained = 0, nonzero = 0;
		unsigned seen = 0;
		for (size_t i = 0; i < np; i++) {
			const struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
			unsigned grp = lvd_mllama_param_group(c, p->name);
			seen |= grp;
			for (size_t j = 0; j < p->numel; j++) {
				if (s == 0)
					ref[off + j] = p->grad[j];
				else if (sets[s] & grp)
					bad_frozen += p->grad[j] != 0.0f;
				else
					bad_trained += memcmp(&p->grad[j], &ref[off + j], sizeof(float)) != 0;
				nonzero += p->grad[j] != 0.0f;
			}
			off += p->numel;
		}
		CHECK(seen == LVD_MLLAMA_ALL_GROUPS);
		if (bad_frozen || bad_trained)
			fprintf(stderr, "  frozen 0x%x: %zu frozen gradients not zero, %zu trained ones differ\n", sets[s],
				bad_frozen, bad_trained);
		CHECK(bad_frozen == 0 && bad_trained == 0);
		CHECK(nonzero > 0);
	}
	CHECK(lvd_mllama_param_group(c, "language_model.model.layers.1.mlp.up_proj.weight") == LVD_MLLAMA_CROSS);
	CHECK(lvd_mllama_param_group(c, "language_model.model.layers.0.mlp.up_proj.weight") == LVD_MLLAMA_TEXT);
	CHECK(lvd_mllama_param_group(c, "language_model.lm_head.weight") == LVD_MLLAMA_TEXT);
	free(ref);
	lvd_mllama_free(m);
	io_close(&g);
}

static void test_save_merged(void)
{
	struct lvd_error err = {0};
	struct io g;
	char model[400];
	snprintf(model, sizeof model, "%s", lvd_test_path(GOLD "/model"));
	REQUIRE(io_open(&g) == 0);

	struct lvd_mllama *m = NULL;
	REQUIRE(lvd_mllama_load_frozen(&m, model, &err) == 0);
	size_t n = 0, n2 = 0;
	float *base = logits_of(m, &g, &n);
	REQUIRE(base != NULL);
	struct lvd_mllama_lora_cfg lc = {4, 8.0f, 0.0f, 0, "q_proj,v_proj,fc1,down_proj", 3};
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	for (size_t i = 0; i < lvd_mllama_nlora(m); i++) {   /* B = 0 at init: give it values */
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 4; j++)
			l->B[j] = 0.05f * (float)((int)((j * 2654435761u + i * 40503u) % 2001) - 1000) / 1000.0f;
	}
	float *ref = logits_of(m, &g, &n);
	REQUIRE(ref != NULL);
	double amax = 0;
	CHECK(max_diff(ref, base, n, &amax) > 1e-3);   /* the adapters change the logits */

	char dir[400], dir16[400], p[500];
	snprintf(dir, sizeof dir, "%s/f32", g_tmp);
	snprintf(dir16, sizeof dir16, "%s/bf16", g_tmp);
	struct lvd_mllama_save_opts so = {model, 0, 200000, 0};
	CHECK(lvd_mllama_save_hf(m, dir, &so, &err) == 0);
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	CHECK(lvd_path_is_file(p));
	/* several shards at 200 kB: the second exists */
	int found = 0;
	for (int k = 2; k < 100 && !found; k++) {
		snprintf(p, sizeof p, "%s/model-00002-of-%05d.safetensors", dir, k);
		found = lvd_path_is_file(p);
	}
	CHECK(found);
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	CHECK(lvd_path_is_file(p));
	float *got = logits_of_folder(dir, &g, &n2);
	REQUIRE(got != NULL && n2 == n);
	double d = max_diff(ref, got, n, &amax);
	fprintf(stderr, "  f32 merged: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d <= 1e-4 * (1 + amax));
	free(got);

	so.bf16 = 1;
	so.max_shard_bytes = 0;
	CHECK(lvd_mllama_save_hf(m, dir16, &so, &err) == 0);
	snprintf(p, sizeof p, "%s/model-00001-of-00001.safetensors", dir16);
	struct lvd_st *st = NULL;
	REQUIRE(lvd_st_open(&st, p, &err) == 0);
	const struct lvd_tensor_view *t = lvd_st_find(st, "model.language_model.embed_tokens.weight");
	CHECK(t && t->dtype == LVD_DT_BF16);
	CHECK(lvd_st_find(st, "lm_head.weight") != NULL);
	CHECK(lvd_st_find(st, "model.multi_modal_projector.weight") != NULL);
	lvd_st_close(st);
	char *cfg = NULL;
	size_t cl = 0;
	snprintf(p, sizeof p, "%s/config.json", dir16);
	REQUIRE(lvd_file_read_all(p, 1 << 20, &cfg, &cl, &err) == 0);
	CHECK(strstr(cfg, "\"bfloat16\"") != NULL);
	free(cfg);
	got = logits_of_folder(dir16, &g, &n2);
	REQUIRE(got != NULL && n2 == n);
	d = max_diff(ref, got, n, &amax);
	fprintf(stderr, "  bf16 merged: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d > 0 && d <= 2e-2 * (1 + amax));
	free(got);

	/* an existing non-empty folder is refused; replace swaps it */
	so.bf16 = 0;
	CHECK(lvd_mllama_save_hf(m, dir16, &so, &err) == LVD_ERR_INVALID);
	CHECK(strstr(err.msg, "not empty") != NULL);
	so.replace = 1;
	CHECK(lvd_mllama_save_hf(m, dir16, &so, &err) == 0);
	snprintf(p, sizeof p, "%s.tmp", dir16);
	CHECK(access(p, F_OK) != 0);
	got = logits_of_folder(dir16, &g, &n2);
	REQUIRE(got != NULL);
	CHECK(max_diff(ref, got, n, &amax) <= 1e-4 * (1 + amax));
	free(got);

	free(base), free(ref);
	lvd_mllama_free(m);
	io_close(&g);
}

int main(int argc, char **argv)
{
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_test_mllama_full.XXXXXX");
	LVD_ASSERT(mkdtemp(g_tmp));
	static const struct lvd_test tests[] = {TEST(test_freeze), TEST(test_save_merged), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd)) {
	}
	return rc;
}
