/* tests/unit/test_minicpmv_train.c — the minicpmv LLM's training path against
 * tests/ref/gen_minicpmv_train.py (tests/golden/minicpmv/train.safetensors): CE on labels
 * aligned with the logits, the captured text->image probabilities, and with a fixed dP on
 * them the gradients of every llm.* parameter and of the resampled features; the same with
 * PEFT LoRA on q/k/v/o (logits, LoRA gradients, d_resampled); the PEFT export (keys,
 * config, and — when .venv-ref exists — PEFT loading it back to the same logits); the
 * error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"

#define GOLD "tests/golden/minicpmv"

struct gold {
	struct lvd_st *io, *tr;
	int B, T, NI, Lmax, K;
	int *ids, *tgt, *nimg, *bound, *labels, *cap_layers, *cap_rows, *cap_off;
	float *pix, *dprobs[4];
	struct lvd_minicpmv_batch b;
};

static void gold_close(struct gold *g)
{
	free(g->ids), free(g->tgt), free(g->nimg), free(g->bound), free(g->pix), free(g->labels);
	free(g->cap_layers), free(g->cap_rows), free(g->cap_off);
	for (int k = 0; k < 4; k++)
		free(g->dprobs[k]);
	lvd_st_close(g->io);
	lvd_st_close(g->tr);
}

/* 0 ok, 1 golden absent, -1 broken */
static int gold_open(struct gold *g)
{
	struct lvd_error err = { 0 };
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(GOLD "/io.safetensors"), &err) ||
	    lvd_st_open(&g->tr, lvd_test_path(GOLD "/train.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return 1;
	}
	const struct lvd_tensor_view *pv = lvd_st_find(g->io, "pixel_values");
	const struct lvd_tensor_view *ii = lvd_st_find(g->io, "input_ids");
	const struct lvd_tensor_view *cl = lvd_st_find(g->tr, "cap_layers");
	if (!pv || !ii || !cl)
		return -1;
	g->B = (int)ii->shape[0], g->T = (int)ii->shape[1], g->NI = (int)pv->shape[0];
	g->Lmax = (int)(pv->shape[3] / pv->shape[2]);
	g->K = (int)cl->shape[0];
	g->ids = lvd_gold_i32(g->io, "input_ids");
	g->tgt = lvd_gold_i32(g->io, "tgt_sizes");
	g->nimg = lvd_gold_i32(g->io, "n_images");
	g->pix = lvd_gold_f32(g->io, "pixel_values", NULL);
	g->labels = lvd_gold_i32(g->tr, "labels");
	g->cap_layers = lvd_gold_i32(g->tr, "cap_layers");
	g->cap_rows = lvd_gold_i32(g->tr, "cap_rows");
	g->cap_off = lvd_gold_i32(g->tr, "cap_off");
	int *bd = lvd_gold_i32(g->io, "image_bound");
	g->bound = malloc(sizeof(int) * 2 * (size_t)g->NI);
	if (!bd || !g->bound || !g->ids || !g->tgt || !g->nimg || !g->pix || !g->labels || !g->cap_layers ||
	    !g->cap_rows || !g->cap_off || g->K > 4) {
		free(bd);
		return -1;
	}
	for (int s = 0, i = 0; s < g->B; s++)
		for (int k = 0; k < g->nimg[s]; k++, i++)
			g->bound[2 * i] = bd[(s * 2 + k) * 2], g->bound[2 * i + 1] = bd[(s * 2 + k) * 2 + 1];
	free(bd);
	for (int k = 0; k < g->K; k++) {
		char nm[32];
		snprintf(nm, sizeof nm, "dprobs.%d", k);
		if (!(g->dprobs[k] = lvd_gold_f32(g->tr, nm, NULL)))
			return -1;
	}
	struct lvd_minicpmv_batch b = { .B = g->B, .T = g->T, .input_ids = g->ids, .NI = g->NI, .Lmax = g->Lmax,
					.pixel_values = g->pix, .tgt_sizes = g->tgt, .n_images = g->nimg,
					.image_bound = g->bound, .labels = g->labels, .n_cap_layers = g->K,
					.cap_layers = g->cap_layers, .cap_rows = g->cap_rows, .cap_off = g->cap_off };
	g->b = b;
	return 0;
}

#define OPEN_OR_SKIP(g)                                                                        \
	do {                                                                                   \
		int rc_ = gold_open(g);                                                        \
		if (rc_ > 0) {                                                                 \
			gold_close(g);                                                         \
			SKIP("golden missing (.venv-ref/bin/python tests/ref/gen_minicpmv_train.py)"); \
		}                                                                              \
		REQUIRE(rc_ == 0);                                                             \
	} while (0)

static struct lvd_minicpmv *load_model(void)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_minicpmv_load(&m, lvd_test_path(GOLD "/model"), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	return m;
}

static const float *const *dprobs_of(const struct gold *g) { return (const float *const *)g->dprobs; }

/* compares golden tensor `name` with got[n] */
static int cmp(const struct gold *g, const char *name, const float *got, size_t n, double atol, double rtol)
{
	size_t gn = 0;
	float *want = lvd_gold_f32(g->tr, name, &gn);
	if (!want || gn != n || !got) {
		fprintf(stderr, "  FAIL %s: golden %zu floats, got %zu (%s)\n", name, gn, n, got ? "set" : "NULL");
		free(want);
		CHECK(0);
		return 0;
	}
	int ok = CHECK_CLOSE(name, got, want, n, atol, rtol);
	free(want);
	return ok;
}

/* full fine-tuning: loss, captured probabilities, every llm.* gradient, d_resampled */
static void test_full_grads(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_enable_grads(m, &err) == 0);
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	/* fp32 on both sides, same bf16-exact weights: the logits agree to ~5e-6 (test_minicpmv);
	 * captured probabilities measured 5e-7 (values up to 0.5), allowed 2e-6 + 1e-5·scale */
	int count = 0;
	float loss = (float)lvd_minicpmv_loss(m, &count), *wl = lvd_gold_f32(g.tr, "loss", NULL);
	REQUIRE(wl);
	CHECK_NEAR(loss, wl[0], 2e-5);
	free(wl);
	int kept = 0;
	for (int i = 0; i < g.B * g.T; i++)
		kept += g.labels[i] != -100;
	CHECK(count == kept);
	for (int k = 0; k < g.K; k++) {
		char nm[32];
		size_t n = 0;
		const float *p = lvd_minicpmv_cap_probs(m, k, &n);
		snprintf(nm, sizeof nm, "cap_probs.%d", k);
		cmp(&g, nm, p, n, 2e-6, 1e-5);
	}
	/* sample 1's block starts after sample 0's H·R_0·NQ_0 floats */
	CHECK(lvd_minicpmv_cap_offset(m, 1) ==
	      (size_t)c->t_heads * (g.cap_off[1] - g.cap_off[0]) * g.nimg[0] * c->query_num);
	REQUIRE(lvd_minicpmv_backward(m, dprobs_of(&g), &err) == 0);
	/* Tolerances relative to each tensor's max |value| (the scale). d_resampled (stored
	 * fp32): measured 1.2e-6 of the scale, allowed 2e-5. Parameter gradients are stored
	 * fp16 to keep the golden small: their rounding (<= 2^-11 = 4.9e-4 of a value) is what
	 * remains, measured <= 2.5e-4 of the scale, allowed 1e-3. A missing dP, a wrong row,
	 * head or column moves them by O(0.1..1) of the scale. */
	size_t QD = (size_t)c->query_num * c->t_hidden;
	cmp(&g, "d_resampled", lvd_minicpmv_d_resampled(m), (size_t)g.NI * QD, 1e-6, 2e-5);
	static const char *const lw[] = { "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
					  "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
					  "mlp.down_proj" };
	char name[160], gname[170];
	int checked = 0;
	for (int l = 0; l < c->t_layers; l++)
		for (int i = 0; i < 9; i++) {
			snprintf(name, sizeof name, "llm.model.layers.%d.%s.weight", l, lw[i]);
			snprintf(gname, sizeof gname, "grad.%s", name);
			size_t n = 0;
			const float *gr = lvd_minicpmv_llm_grad(m, name, &n);
			checked += cmp(&g, gname, gr, n, 1e-6, 1e-3);
		}
	static const char *const top[] = { "llm.model.embed_tokens.weight", "llm.model.norm.weight", "llm.lm_head.weight" };
	for (int i = 0; i < 3; i++) {
		size_t n = 0;
		snprintf(gname, sizeof gname, "grad.%s", top[i]);
		const float *gr = lvd_minicpmv_llm_grad(m, top[i], &n);
		checked += cmp(&g, gname, gr, n, 1e-6, 1e-3);
	}
	CHECK(checked == 9 * c->t_layers + 3);
	CHECK(lvd_minicpmv_llm_grad(m, "llm.model.layers.9.self_attn.q_proj.weight", NULL) == NULL);
	CHECK(lvd_minicpmv_llm_grad(m, "resampler.query", NULL) == NULL);
	/* gradients accumulate: a second backward doubles them */
	size_t nq = 0;
	const float *gq = lvd_minicpmv_llm_grad(m, "llm.model.layers.1.self_attn.q_proj.weight", &nq);
	float *twice = malloc(sizeof(float) * nq);
	REQUIRE(twice);
	for (size_t i = 0; i < nq; i++)
		twice[i] = 2.0f * gq[i];
	REQUIRE(lvd_minicpmv_backward(m, dprobs_of(&g), &err) == 0);
	CHECK_CLOSE("accumulated grad", gq, twice, nq, 1e-7, 1e-6);
	free(twice);
	/* without dP: d_resampled moves far outside the tolerance (the seam is exercised) */
	lvd_minicpmv_zero_grads(m);
	REQUIRE(lvd_minicpmv_backward(m, NULL, &err) == 0);
	float *want = lvd_gold_f32(g.tr, "d_resampled", NULL);
	REQUIRE(want);
	double worst = 0, scale = 0;
	for (size_t i = 0; i < (size_t)g.NI * QD; i++) {
		worst = fmax(worst, fabs(lvd_minicpmv_d_resampled(m)[i] - want[i]));
		scale = fmax(scale, fabs(want[i]));
	}
	CHECKF(worst > 0.05 * scale, "dP changes d_resampled by only %.3g (scale %.3g)", worst, scale);
	free(want);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* fills the model's adapters from the golden A/B; returns the number filled */
static int fill_lora(struct lvd_minicpmv *m, const struct gold *g)
{
	int filled = 0;
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, i);
		char nm[160];
		size_t n = 0;
		snprintf(nm, sizeof nm, "lora.%s.A", L->module);
		float *A = lvd_gold_f32(g->tr, nm, &n);
		if (A && n == (size_t)4 * L->in)
			memcpy(L->A, A, sizeof(float) * n), filled++;
		free(A);
		snprintf(nm, sizeof nm, "lora.%s.B", L->module);
		float *Bm = lvd_gold_f32(g->tr, nm, &n);
		if (Bm && n == (size_t)4 * L->out)
			memcpy(L->B, Bm, sizeof(float) * n), filled++;
		free(Bm);
	}
	return filled;
}

static struct lvd_minicpmv *lora_model(const struct gold *g)
{
	struct lvd_minicpmv *m = load_model();
	struct lvd_error err = { 0 };
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.0f, 0, "q_proj,k_proj,v_proj,o_proj", 1 };
	if (!m || lvd_minicpmv_add_lora(m, &lc, &err)) {
		fprintf(stderr, "  lora: %s\n", err.msg);
		lvd_minicpmv_free(m);
		return NULL;
	}
	int want = 2 * (int)lvd_minicpmv_nlora(m);
	if (fill_lora(m, g) != want) {
		lvd_minicpmv_free(m);
		return NULL;
	}
	return m;
}

static void test_lora(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = lora_model(&g);
	REQUIRE(m);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_error err = { 0 };
	CHECK(lvd_minicpmv_nlora(m) == (size_t)4 * c->t_layers);
	CHECK_STR(lvd_minicpmv_lora_at(m, 0)->module, "llm.model.layers.0.self_attn.q_proj");
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	cmp(&g, "lora_logits", lvd_minicpmv_logits(m), (size_t)g.B * g.T * c->vocab, 5e-5, 1e-5);
	REQUIRE(lvd_minicpmv_backward(m, dprobs_of(&g), &err) == 0);
	CHECK(lvd_minicpmv_llm_grad(m, "llm.lm_head.weight", NULL) == NULL);   /* no base gradients */
	/* all fp32: measured d_resampled 2.2e-6, LoRA gradients <= 3.8e-6 of their scale */
	cmp(&g, "lora_d_resampled", lvd_minicpmv_d_resampled(m), (size_t)g.NI * c->query_num * c->t_hidden, 1e-6, 2e-5);
	int n = 0;
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, i);
		char nm[160];
		snprintf(nm, sizeof nm, "lora_grad.%s.A", L->module);
		n += cmp(&g, nm, L->dA, (size_t)4 * L->in, 1e-6, 5e-5);
		snprintf(nm, sizeof nm, "lora_grad.%s.B", L->module);
		n += cmp(&g, nm, L->dB, (size_t)4 * L->out, 1e-6, 5e-5);
	}
	CHECK(n == 2 * (int)lvd_minicpmv_nlora(m));
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.0f, 0, "q_proj", 1 };
	CHECK(lvd_minicpmv_add_lora(m, &lc, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "already");
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* dropout: forward and backward agree on the mask (finite differences of the LoRA B
 * gradient along a random direction, in double-checked float) */
static void test_lora_dropout_fd(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.3f, 0, "v_proj", 5 };
	REQUIRE(lvd_minicpmv_add_lora(m, &lc, &err) == 0);
	REQUIRE(fill_lora(m, &g) == 2 * (int)lvd_minicpmv_nlora(m));
	struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, 1);   /* layer 1 v_proj */
	REQUIRE(L && L->layer == 1);
	g.b.n_cap_layers = 0;
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	REQUIRE(lvd_minicpmv_backward(m, NULL, &err) == 0);
	size_t nb = (size_t)4 * L->out;
	double dot = 0;
	float *dir = malloc(sizeof(float) * nb), *b0 = malloc(sizeof(float) * nb);
	REQUIRE(dir && b0);
	memcpy(b0, L->B, sizeof(float) * nb);
	for (size_t i = 0; i < nb; i++)
		dir[i] = (float)((i * 2654435761u % 1000) / 500.0 - 1.0), dot += dir[i] * L->dB[i];
	double h = 1e-2, lp, lm;
	for (size_t i = 0; i < nb; i++)
		L->B[i] = b0[i] + (float)h * dir[i];
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	lp = lvd_minicpmv_loss(m, NULL);
	for (size_t i = 0; i < nb; i++)
		L->B[i] = b0[i] - (float)h * dir[i];
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	lm = lvd_minicpmv_loss(m, NULL);
	double fd = (lp - lm) / (2 * h);
	CHECKF(fabs(fd - dot) <= 2e-2 * fabs(dot) + 1e-4, "finite difference %.6g vs gradient %.6g", fd, dot);
	/* eval mode: no dropout, so the forward differs */
	memcpy(L->B, b0, sizeof(float) * nb);
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	double ltrain = lvd_minicpmv_loss(m, NULL);
	lvd_minicpmv_set_eval(m, 1);
	REQUIRE(lvd_minicpmv_forward(m, &g.b, &err) == 0);
	CHECK(fabs(lvd_minicpmv_loss(m, NULL) - ltrain) > 1e-6);
	free(dir), free(b0);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* the export's files (keys, shapes, config), written into a fresh temp folder `dir` */
static void peft_export_checked(struct lvd_minicpmv *m, char *dir)
{
	struct lvd_error err = { 0 };
	char path[600];
	REQUIRE(mkdtemp(dir));
	CHECK(lvd_minicpmv_lora_save(m, dir, "tiny", "embed_tokens,vpm", &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "vpm");
	REQUIRE(lvd_minicpmv_lora_save(m, dir, "tiny", "embed_tokens,resampler", &err) == 0);
	struct lvd_st *st = NULL;
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	REQUIRE(lvd_st_open(&st, path, &err) == 0);
	const struct lvd_tensor_view *t = lvd_st_find(st, "base_model.model.llm.model.layers.1.self_attn.k_proj.lora_B.weight");
	CHECK(t && t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 4);
	CHECK(lvd_st_find(st, "base_model.model.llm.model.embed_tokens.weight") != NULL);
	CHECK(lvd_st_find(st, "base_model.model.resampler.attn.in_proj_weight") != NULL);
	CHECK(lvd_st_find(st, "base_model.model.resampler.query") != NULL);
	CHECK(lvd_st_count(st) == 2 * lvd_minicpmv_nlora(m) + 14);
	lvd_st_close(st);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	FILE *f = fopen(path, "r");
	REQUIRE(f);
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	CHECK_CONTAINS(buf, "\"modules_to_save\": [\n    \"embed_tokens\",\n    \"resampler\"\n  ]");
	CHECK_CONTAINS(buf, "\"target_modules\": \"(llm\\\\..*\\\\.)?(q_proj|k_proj|v_proj|o_proj)\"");
}

static void rm_dir(const char *dir)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
}

static void test_peft_export(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = lora_model(&g);
	REQUIRE(m);
	char dir[] = "/tmp/lvd_minicpmv_peft_XXXXXX";
	peft_export_checked(m, dir);
	rm_dir(dir);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* PEFT itself loads the export back (only with the reference environment) */
static void test_peft_loadback(void)
{
	char py[4200], cmd[9000];
	snprintf(py, sizeof py, "%s", lvd_test_path(".venv-ref/bin/python"));
	if (access(py, X_OK) != 0)
		SKIP("PEFT load-back check: %s absent", py);
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = lora_model(&g);
	REQUIRE(m);
	char dir[] = "/tmp/lvd_minicpmv_peft_XXXXXX";
	peft_export_checked(m, dir);
	snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' >&2", py, lvd_test_path("tests/ref/check_minicpmv_peft.py"), dir);
	CHECKF(system(cmd) == 0, "PEFT did not reproduce the LoRA logits from the export (%s)", cmd);
	rm_dir(dir);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

static void test_errors(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	/* an inference forward keeps nothing for backward */
	struct lvd_minicpmv_batch inf = g.b;
	inf.labels = NULL, inf.n_cap_layers = 0;
	REQUIRE(lvd_minicpmv_forward(m, &inf, &err) == 0);
	CHECK(lvd_minicpmv_backward(m, NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "training forward");
	CHECK(lvd_minicpmv_cap_probs(m, 0, NULL) == NULL);
	struct lvd_minicpmv_batch b = g.b;
	g.labels[7] = 128;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "labels[0][7]");
	g.labels[7] = -100;
	int save = g.cap_layers[1];
	g.cap_layers[1] = 2;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "cap_layers[1]");
	g.cap_layers[1] = g.cap_layers[0];
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "repeats");
	g.cap_layers[1] = save;
	save = g.cap_rows[1];
	g.cap_rows[1] = g.cap_rows[0];
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "cap_rows[1]");
	g.cap_rows[1] = 24;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "outside");
	g.cap_rows[1] = save;
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.0f, 0, "fc1", 1 };
	CHECK(lvd_minicpmv_add_lora(m, &lc, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "match no module");
	CHECK(lvd_minicpmv_lora_save(m, "/tmp", NULL, NULL, &err) == LVD_ERR_INVALID);
	/* a labelled forward then works, and backward without grads or LoRA still gives d_resampled */
	REQUIRE(lvd_minicpmv_forward(m, &b, &err) == 0);
	REQUIRE(lvd_minicpmv_backward(m, dprobs_of(&g), &err) == 0);
	cmp(&g, "d_resampled", lvd_minicpmv_d_resampled(m),
	    (size_t)g.NI * lvd_minicpmv_cfg(m)->query_num * lvd_minicpmv_cfg(m)->t_hidden, 1e-6, 2e-5);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_full_grads), TEST(test_lora), TEST(test_lora_dropout_fd), TEST(test_peft_export), TEST(test_peft_loadback),
		TEST(test_errors), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
