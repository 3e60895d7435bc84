/* tests/unit/test_mllama.c — mllama against transformers 5.x on the tiny random config
 * written by tests/ref/gen_mllama.py (tests/golden/mllama/). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"
#include "nn/ops/xent.h"

#define GOLD "tests/golden/mllama"

struct gold {
	struct lvd_st *io;
	int B, T, M, TL;
	int *ids, *labels, *arid, *armask, *xmask, *ntiles;
	float *pix;
};


static int *geti(struct lvd_st *st, const char *name)
{
	size_t n;
	float *f = lvd_gold_f32(st, name, &n);
	if (!f)
		return NULL;
	int *p = malloc(sizeof(int) * n);
	for (size_t i = 0; p && i < n; i++)
		p[i] = (int)f[i];
	free(f);
	return p;
}

static int gold_open(struct gold *g)
{
	struct lvd_error err = { 0 };
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(GOLD "/io.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	const struct lvd_tensor_view *pv = lvd_st_find(g->io, "pixel_values");
	const struct lvd_tensor_view *ii = lvd_st_find(g->io, "input_ids");
	if (!pv || !ii)
		return -1;
	g->B = (int)ii->shape[0];
	g->T = (int)ii->shape[1];
	g->M = (int)pv->shape[1];
	g->TL = (int)pv->shape[2];
	g->ids = geti(g->io, "input_ids");
	g->labels = geti(g->io, "labels");
	g->arid = geti(g->io, "aspect_ratio_ids");
	g->armask = geti(g->io, "aspect_ratio_mask");
	g->xmask = geti(g->io, "cross_attention_mask");
	g->ntiles = geti(g->io, "num_tiles");
	g->pix = lvd_gold_f32(g->io, "pixel_values", NULL);
	return g->ids && g->labels && g->arid && g->armask && g->xmask && g->pix && g->ntiles ? 0 : -1;
}

static void gold_close(struct gold *g)
{
	free(g->ids), free(g->labels), free(g->arid), free(g->armask), free(g->xmask), free(g->pix), free(g->ntiles);
	lvd_st_close(g->io);
}

static struct lvd_mllama_batch gold_batch(const struct gold *g)
{
	struct lvd_mllama_batch b = { .B = g->B, .T = g->T, .M = g->M, .input_ids = g->ids, .labels = g->labels,
				      .pixel_values = g->pix, .aspect_ratio_ids = g->arid,
				      .aspect_ratio_mask = g->armask, .cross_attention_mask = g->xmask };
	return b;
}

/* capture lists naming every text row of every sample, in order: the captured
 * probabilities are then laid out [B, H, T, S] like the golden full tensor */
static void capture_all(struct lvd_mllama_batch *b, int *rows, int *off)
{
	off[0] = 0;
	for (int s = 0; s < b->B; s++) {
		for (int t = 0; t < b->T; t++)
			rows[s * b->T + t] = t;
		off[s + 1] = (s + 1) * b->T;
	}
	b->cap_rows = rows;
	b->cap_off = off;
}

static struct lvd_mllama *load_model(void)
{
	struct lvd_mllama *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_mllama_load(&m, lvd_test_path(GOLD "/model"), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	return m;
}

/* compares against a golden tensor; returns 1 when close */
static int cmp(struct lvd_st *st, const char *name, const float *got, size_t n, double atol, double rtol)
{
	size_t gn = 0;
	float *want = lvd_gold_f32(st, name, &gn);
	if (!want) {
		CHECKF(0, "golden tensor %s missing", name);
		return 0;
	}
	CHECKF(gn == n, "%s: %zu values, golden %zu", name, n, gn);
	int ok = gn == n && CHECK_CLOSE(name, got, want, n, atol, rtol);
	free(want);
	return ok;
}

static void test_config(void)
{
	struct lvd_mllama_config c;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_config_load(&c, lvd_test_path(GOLD "/model/config.json"), &err) == 0);
	CHECK(c.v_hidden == 32 && c.v_layers == 2 && c.v_global_layers == 1 && c.v_image_size == 56);
	CHECK(c.v_n_inter == 2 && c.v_out_dim == 96 && c.n_aspect == 8);
	CHECK(c.aspect[1][0] == 1 && c.aspect[1][1] == 2 && c.aspect[4][0] == 2 && c.aspect[4][1] == 1);
	CHECK(c.t_layers == 4 && c.n_cross == 1 && c.cross_layers[0] == 1 && c.t_head_dim == 16);
	CHECK(c.rope_llama3 == 1 && c.rope_theta == 500000.0 && c.rope_orig_max == 8192);
	CHECK(c.vocab == 256 && c.n_embed == 264 && c.image_token_index == 256);
	CHECK(lvd_mllama_config_load(&c, lvd_test_path(GOLD "/no-such.json"), &err) != 0);
	CHECK_CONTAINS(err.msg, "no-such.json");
}

static void test_forward(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	CHECK(lvd_mllama_param_find(m, "vision_model.global_transformer.layers.0.gate_attn") != NULL);
	struct lvd_mllama_batch b = gold_batch(&g);
	struct lvd_error err = { 0 };
	int *crows = malloc(sizeof(int) * g.B * g.T), coff[8];
	REQUIRE(crows && g.B < 8);
	capture_all(&b, crows, coff);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	size_t P1 = 17, rows = (size_t)g.B * g.M * g.TL * P1;
	CHECK(lvd_mllama_capture_rows(m) == (size_t)g.B * g.T);
	/* fp32 both sides, different summation orders (BLAS vs torch): ~1e-6 relative per op,
	 * a few ops deep -> 1e-5 of the tensor's scale */
	cmp(g.io, "vision_features", lvd_mllama_vision_features(m), rows * c->v_out_dim, 1e-6, 1e-5);
	cmp(g.io, "projector_out", lvd_mllama_cross_states(m), rows * c->t_hidden, 1e-6, 1e-5);
	size_t S = (size_t)g.M * g.TL * P1;
	/* probabilities in [0, 1]: absolute 1e-6 after two towers of fp32 */
	cmp(g.io, "xattn_probs", lvd_mllama_xattn_probs(m, 0), (size_t)g.B * c->t_heads * g.T * S, 2e-6, 0);
	/* a ragged subset, out of order (sample 0: 3 rows, sample 1: 1), against the same
	 * golden rows; and no capture at all */
	int H = c->t_heads, sub_rows[4] = { g.T - 1, 0, 5, 7 }, sub_off[3] = { 0, 3, 4 };
	REQUIRE(g.B == 2 && g.T > 7);
	b.cap_rows = sub_rows;
	b.cap_off = sub_off;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	CHECK(lvd_mllama_capture_rows(m) == 4);
	float *full = lvd_gold_f32(g.io, "xattn_probs", NULL), *want = malloc(sizeof(float) * 4 * H * S);
	REQUIRE(full && want);
	for (int s = 0; s < 2; s++) {
		int Rb = sub_off[s + 1] - sub_off[s];
		for (int h = 0; h < H; h++)
			for (int i = 0; i < Rb; i++)
				memcpy(want + ((size_t)H * sub_off[s] + (size_t)h * Rb + i) * S,
				       full + (((size_t)s * H + h) * g.T + sub_rows[sub_off[s] + i]) * S, sizeof(float) * S);
	}
	CHECK_CLOSE("xattn_probs (4 captured rows)", lvd_mllama_xattn_probs(m, 0), want, 4 * H * S, 2e-6, 0);
	free(full), free(want);
	b.cap_off = NULL;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	CHECK(lvd_mllama_xattn_probs(m, 0) == NULL && lvd_mllama_capture_rows(m) == 0);
	sub_rows[1] = g.T - 1; /* repeated row: rejected */
	b.cap_off = sub_off;
	CHECK(lvd_mllama_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "twice");
	b.cap_rows = crows;
	capture_all(&b, crows, coff);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	/* issue target: <= 1e-4 relative on logits (fp32 throughout) */
	cmp(g.io, "logits", lvd_mllama_logits(m), (size_t)g.B * g.T * c->vocab, 0, 1e-4);
	size_t n;
	float *loss = lvd_gold_f32(g.io, "loss", &n);
	REQUIRE(loss);
	CHECK_NEAR(lvd_mllama_loss(m), loss[0], 1e-5 * fabs(loss[0])); /* mean CE, fp32 logits */
	free(loss);
	free(crows);
	lvd_mllama_free(m);
	gold_close(&g);
}

/* grad names in the golden file are the transformers-5 module names */
static void golden_grad_name(char *out, size_t n, const char *canon)
{
	if (strncmp(canon, "language_model.model.", 21) == 0)
		snprintf(out, n, "grad.model.language_model.%s", canon + 21);
	else if (strncmp(canon, "language_model.lm_head.", 23) == 0)
		snprintf(out, n, "grad.lm_head.%s", canon + 23);
	else
		snprintf(out, n, "grad.model.%s", canon);
}

static void test_backward(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_enable_grads(m, &err) == 0);
	REQUIRE(lvd_mllama_set_threads(m, 2, &err) == 0); /* the pooled paths (forward runs 1 thread elsewhere) */
	CHECK(lvd_mllama_set_threads(m, 0, &err) == LVD_ERR_INVALID);
	struct lvd_mllama_batch b = gold_batch(&g);
	int *crows = malloc(sizeof(int) * g.B * g.T), coff[8];
	REQUIRE(crows && g.B < 8);
	capture_all(&b, crows, coff); /* the golden R covers every row */
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	float *R = lvd_gold_f32(g.io, "xattn_R", NULL);
	REQUIRE(R);
	const float *dp[1] = { R };
	REQUIRE(lvd_mllama_backward(m, 1.0f, dp, &err) == 0);
	int bad = 0;
	for (size_t i = 0; i < lvd_mllama_nparams(m); i++) {
		struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
		char nm[200];
		golden_grad_name(nm, sizeof nm, p->name);
		/* issue target: <= 1e-3 relative to each gradient's scale (fp32; long chains
		 * through softmax, norms and both towers) */
		if (!cmp(g.io, nm, p->grad, p->numel, 1e-7, 1e-3))
			bad++;
	}
	CHECKF(bad == 0, "%d of %zu parameter gradients differ", bad, lvd_mllama_nparams(m));
	/* capturing only some rows with their part of R == capturing all rows with R zero
	 * elsewhere (same ops, same order: bitwise) */
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	size_t S = (size_t)g.M * g.TL * 17, H = c->t_heads, ng = 0;
	for (size_t i = 0; i < lvd_mllama_nparams(m); i++)
		ng += lvd_mllama_param_at(m, i)->numel;
	int sub_rows[3] = { 9, 2, 4 }, sub_off[3] = { 0, 2, 3 };
	float *Rz = calloc((size_t)g.B * H * g.T * S, sizeof(float)), *Rs = malloc(sizeof(float) * 3 * H * S);
	float *g_all = malloc(sizeof(float) * ng);
	REQUIRE(Rz && Rs && g_all && g.B == 2 && g.T > 9);
	for (int s = 0; s < 2; s++) {
		int Rb = sub_off[s + 1] - sub_off[s];
		for (size_t h = 0; h < H; h++)
			for (int i = 0; i < Rb; i++) {
				size_t o = (((size_t)s * H + h) * g.T + sub_rows[sub_off[s] + i]) * S;
				memcpy(Rz + o, R + o, sizeof(float) * S);
				memcpy(Rs + ((size_t)H * sub_off[s] + h * Rb + i) * S, R + o, sizeof(float) * S);
			}
	}
	lvd_mllama_zero_grads(m);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	dp[0] = Rz;
	REQUIRE(lvd_mllama_backward(m, 1.0f, dp, &err) == 0);
	for (size_t i = 0, o = 0; i < lvd_mllama_nparams(m); o += lvd_mllama_param_at(m, i)->numel, i++)
		memcpy(g_all + o, lvd_mllama_param_at(m, i)->grad, sizeof(float) * lvd_mllama_param_at(m, i)->numel);
	lvd_mllama_zero_grads(m);
	b.cap_rows = sub_rows;
	b.cap_off = sub_off;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	dp[0] = Rs;
	REQUIRE(lvd_mllama_backward(m, 1.0f, dp, &err) == 0);
	int same = 1;
	for (size_t i = 0, o = 0; i < lvd_mllama_nparams(m); o += lvd_mllama_param_at(m, i)->numel, i++)
		same &= memcmp(g_all + o, lvd_mllama_param_at(m, i)->grad,
			       sizeof(float) * lvd_mllama_param_at(m, i)->numel) == 0;
	CHECKF(same, "gradients with 3 captured rows differ from all rows with R zero elsewhere");
	/* sizing: measure mode of the same carving == what forward/backward allocated, and
	 * measuring leaves the last forward's results alone */
	struct lvd_mllama_mem want, got, got0;
	const float *xp = lvd_mllama_xattn_probs(m, 0);
	float x0 = xp[5];
	REQUIRE(lvd_mllama_measure(m, g.B, g.T, g.M, g.B * g.T, &want, &err) == 0); /* the largest forward */
	lvd_mllama_mem_used(m, &got);
	CHECK(want.acts == got.acts && want.scratch == got.scratch && want.params == got.params);
	CHECK(want.grads == got.grads && got.grads == want.params && want.opt == 2 * want.grads);
	CHECK(lvd_mllama_xattn_probs(m, 0) == xp && xp[5] == x0 && lvd_mllama_capture_rows(m) == 3);
	REQUIRE(lvd_mllama_measure(m, g.B, g.T, g.M, 3, &want, &err) == 0);
	REQUIRE(lvd_mllama_measure(m, g.B, g.T, g.M, 0, &got0, &err) == 0);
	/* 3 captured rows of the one cross layer: H·3·S floats, plus the copied lists (each
	 * carve in 64-byte granules) */
	CHECK(want.acts - got0.acts == (((H * 3 * S + 15) & ~(size_t)15) + 32) * sizeof(float));
	REQUIRE(lvd_mllama_measure(m, 1, 4, 0, 0, &got0, &err) == 0);
	CHECK(got0.acts < want.acts / 4);
	CHECK(lvd_mllama_measure(m, 0, 4, 0, 0, &got0, &err) == LVD_ERR_INVALID);
	free(Rz), free(Rs), free(g_all), free(crows);
	free(R);
	lvd_mllama_free(m);
	gold_close(&g);
}


/* frozen: base weights mapped from the file (lvd_mllama_load_frozen); threads: pool size */
static void lora_case(int frozen, int threads)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_st *lt = NULL;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_st_open(&lt, lvd_test_path(GOLD "/lora.safetensors"), &err) == 0);
	struct lvd_mllama *m = NULL;
	if (frozen) {
		REQUIRE(lvd_mllama_load_frozen(&m, lvd_test_path(GOLD "/model"), &err) == 0);
		CHECK(lvd_mllama_enable_grads(m, &err) == LVD_ERR_INVALID); /* base is read-only */
	} else {
		m = load_model();
	}
	REQUIRE(m);
	REQUIRE(lvd_mllama_set_threads(m, threads, &err) == 0);
	struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .dropout = 0, .targets = "q_proj,v_proj", .seed = 1 };
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	/* q,v in 3 vision layers + 4 text layers = 14 adapters, as PEFT's suffix match */
	CHECK(lvd_mllama_nlora(m) == 14);
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
			if (strcmp(l->module, mod) != 0)
				continue;
			REQUIRE(lvd_tensor_to_f32(t, isA ? l->A : l->B, (size_t)t->numel, &err) == 0);
			matched++;
		}
	}
	CHECK(matched == 28);
	/* PEFT adapter folder round trip */
	char dir[] = "/tmp/lvd-mllama-lora-XXXXXX", path[256];
	REQUIRE(mkdtemp(dir));
	CHECKF(lvd_mllama_lora_save(m, dir, "tiny-mllama", 0, &err) == 0, "%s", err.msg);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	struct lvd_st *ad = NULL;
	if (lvd_st_open(&ad, path, &err) == 0) {
		CHECK(lvd_st_count(ad) == 28);
		const struct lvd_tensor_view *t =
			lvd_st_find(ad, "base_model.model.model.vision_model.global_transformer.layers.0.self_attn.v_proj.lora_B.weight");
		CHECK(t && t->dtype == LVD_DT_F32 && t->shape[0] == 32 && t->shape[1] == 4);
		struct lvd_mllama_lora *l0 = lvd_mllama_lora_at(m, 0);
		char key[256];
		snprintf(key, sizeof key, "base_model.model.model.%s.lora_A.weight", l0->module); /* a vision module */
		t = lvd_st_find(ad, key);
		CHECK(t && memcmp(t->data, l0->A, sizeof(float) * 4 * l0->in) == 0);
		lvd_st_close(ad);
	} else {
		CHECKF(0, "%s", err.msg);
	}
	unlink(path);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	FILE *f = fopen(path, "rb");
	char js[4096] = { 0 };
	if (f) {
		CHECK(fread(js, 1, sizeof js - 1, f) > 0);
		fclose(f);
	}
	CHECK_CONTAINS(js, "\"peft_type\": \"LORA\"");
	CHECK_CONTAINS(js, "\"q_proj\"");
	CHECK_CONTAINS(js, "\"r\": 4");
	unlink(path);
	rmdir(dir);
	struct lvd_mllama_batch b = gold_batch(&g);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	cmp(lt, "logits", lvd_mllama_logits(m), (size_t)g.B * g.T * c->vocab, 0, 1e-4); /* as the base logits */
	float *loss = lvd_gold_f32(lt, "loss", NULL);
	REQUIRE(loss);
	CHECK_NEAR(lvd_mllama_loss(m), loss[0], 1e-5 * fabs(loss[0]));
	free(loss);
	lvd_mllama_zero_grads(m);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	for (size_t i = 0; i < lvd_st_count(lt); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(lt, i);
		if (strncmp(t->name, "w.", 2) != 0)
			continue;
		char mod[200], gname[256];
		REQUIRE(lvd_gold_peft_module(mod, sizeof mod, t->name) == 0);
		int isA = strstr(t->name, "lora_A") != NULL;
		snprintf(gname, sizeof gname, "grad.%s", t->name + 2);
		for (size_t j = 0; j < lvd_mllama_nlora(m); j++) {
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, j);
			if (strcmp(l->module, mod) == 0)
				/* 1e-3 of scale: same reasoning as full gradients */
				cmp(lt, gname, isA ? l->dA : l->dB, (size_t)t->numel, 1e-7, 1e-3);
		}
	}
	/* one parameter block and one gradient block with the same layout, adapters in
	 * order, A before B; the optimizer state is two moments per float */
	size_t np = 0, ng = 0, no = 0;
	float *P = lvd_mllama_lora_params(m, &np), *G = lvd_mllama_lora_grads(m, &ng);
	CHECK(P && G && np == ng && lvd_mllama_lora_opt_state(m, &no) && no == 2 * np);
	int layout_ok = 1;
	const float *prev = P;
	double gsum_adapters = 0, gsum_block = 0;
	for (size_t j = 0; j < lvd_mllama_nlora(m); j++) {
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, j);
		layout_ok &= l->dtype == LVD_F32 && l->A >= prev && l->B >= l->A + (size_t)4 * l->in &&
			     l->B + (size_t)4 * l->out <= P + np && l->dA - G == l->A - P && l->dB - G == l->B - P;
		prev = l->B + (size_t)4 * l->out;
		for (size_t i = 0; i < (size_t)4 * l->in; i++)
			gsum_adapters += l->dA[i];
		for (size_t i = 0; i < (size_t)4 * l->out; i++)
			gsum_adapters += l->dB[i];
	}
	for (size_t i = 0; i < ng; i++)
		gsum_block += G[i]; /* padding floats are 0 */
	CHECK(layout_ok);
	CHECK(gsum_block == gsum_adapters);
	lvd_mllama_zero_grads(m);
	int zero = 1;
	for (size_t i = 0; i < ng; i++)
		zero &= G[i] == 0.0f;
	CHECK(zero);
	lvd_mllama_free(m);
	lvd_st_close(lt);
	gold_close(&g);
}

static void test_lora(void)
{
	lora_case(0, 1);
	lora_case(1, 2);
}

/* Meta's row masking makes image-less rows skip the cross layer entirely, so those rows
 * must equal a text-only forward (causal: rows before the image see only themselves). */
static void test_meta_row_mask(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	size_t V = c->vocab;
	struct lvd_mllama_batch b = gold_batch(&g);
	b.B = 1;
	b.meta_row_mask = 1;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	float *meta = malloc(sizeof(float) * g.T * V);
	memcpy(meta, lvd_mllama_logits(m), sizeof(float) * g.T * V);
	b.meta_row_mask = 0;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	int first = 0;
	while (first < g.T && g.ids[first] != c->image_token_index)
		first++;
	REQUIRE(first > 0 && first < g.T);
	double hf_diff = 0;
	for (size_t i = 0; i < (size_t)first * V; i++)
		hf_diff = fmax(hf_diff, fabs(meta[i] - lvd_mllama_logits(m)[i]));
	CHECK(hf_diff > 1e-4); /* HF lets the attention branch through on those rows */
	b.pixel_values = NULL;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	/* same ops in the same order: equal up to rounding */
	CHECK_CLOSE("meta rows = text-only rows", meta, lvd_mllama_logits(m), (size_t)first * V, 1e-6, 0);
	free(meta);
	lvd_mllama_free(m);
	gold_close(&g);
}

static void test_bad_inputs(void)
{
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	int ids[2] = { 5, 9999 };
	struct lvd_mllama_batch b = { .B = 1, .T = 2, .input_ids = ids };
	CHECK(lvd_mllama_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "input_ids[1]");
	CHECK(lvd_mllama_backward(m, 1.0f, NULL, &err) != 0);
	struct lvd_mllama *m2 = NULL;
	CHECK(lvd_mllama_load(&m2, lvd_test_path(GOLD "/missing-dir"), &err) != 0);
	CHECK(m2 == NULL);
	struct lvd_mllama_lora_cfg lc = { .r = 2, .alpha = 4, .targets = "nothing_here" };
	CHECK(lvd_mllama_add_lora(m, &lc, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "match no module");
	lvd_mllama_free(m);
}

static void test_processor(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data not present");
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	static const char *imgs[2] = { "COCO_val2014_000000038678.png", "skimage_page.png" };
	struct lvd_mllama_image_cfg ic;
	lvd_mllama_image_cfg_default(&ic);
	ic.tile = 56;
	size_t tile = (size_t)3 * 56 * 56;
	float *pix = malloc(sizeof(float) * tile * 4);
	for (int i = 0; i < 2; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/images/%s", sd, imgs[i]);
		struct lvd_image im = { 0 };
		struct lvd_error err = { 0 };
		REQUIRE(lvd_image_load(&im, path, LVD_ALPHA_WHITE, &err) == 0);
		int arid, mask[4], nt;
		REQUIRE(lvd_mllama_image_process(pix, &arid, mask, &nt, &ic, im.px, im.h, im.w, &err) == 0);
		CHECK(arid == g.arid[i]);
		CHECK(nt == g.ntiles[i]);
		for (int t = 0; t < 4; t++)
			CHECK(mask[t] == g.armask[i * 4 + t]);
		/* PIL-compatible resize "within one gray level" (lib/io/image.h): one level is
		 * 1/255/std ~ 0.015 after normalisation */
		CHECK_CLOSE(imgs[i], pix, g.pix + (size_t)i * 4 * tile, 4 * tile, 0.016, 0);
		lvd_image_free(&im);
		int xm[20 * 4];
		lvd_mllama_cross_mask(xm, g.ids + i * g.T, g.T, 256, 1, 4, &nt);
		for (int k = 0; k < g.T * 4; k++)
			CHECK(xm[k] == g.xmask[i * g.T * 4 + k]);
	}
	free(pix);
	gold_close(&g);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* hostile or inconsistent config.json -> error naming the file and the field */
static void test_bad_configs(void)
{
	char dir[] = "/tmp/lvd-mllama-cfg-XXXXXX", path[256];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/config.json", dir);
	static const struct { const char *json, *want; int code; } cases[] = {
		{ "{\"vision_config\": {", "config.json:", LVD_ERR_FORMAT },
		{ "{\"text_config\": {}}", "vision_config and text_config", LVD_ERR_INVALID },
		{ "{\"model_type\": \"llava\", \"vision_config\": {}, \"text_config\": {}}", "model_type", LVD_ERR_UNSUPPORTED },
		{ "{\"vision_config\": {\"hidden_size\": 33, \"attention_heads\": 2}, \"text_config\": {}}",
		  "vision_config: inconsistent", LVD_ERR_INVALID },
		{ "{\"vision_config\": {}, \"text_config\": {\"num_hidden_layers\": \"four\"}}",
		  "text_config.num_hidden_layers", LVD_ERR_INVALID },
		{ "{\"vision_config\": {}, \"text_config\": {\"num_hidden_layers\": 4, \"cross_attention_layers\": [1, 9]}}",
		  "cross_attention_layers': element 1 is 9", LVD_ERR_INVALID },
		{ "{\"vision_config\": {}, \"text_config\": {\"rope_parameters\": {\"rope_type\": \"yarn\"}}}",
		  "rope type 'yarn'", LVD_ERR_UNSUPPORTED },
		{ "{\"vision_config\": {}, \"text_config\": {\"rms_norm_eps\": -1}}", "rms_norm_eps", LVD_ERR_INVALID },
		{ "{\"vision_config\": {\"supported_aspect_ratios\": [[1, 1], [2, 3]]}, \"text_config\": {}}",
		  "supported_aspect_ratios': element 1", LVD_ERR_INVALID },
		{ "{\"vision_config\": {\"supported_aspect_ratios\": [[1, 1], [2]]}, \"text_config\": {}}",
		  "supported_aspect_ratios': element 1", LVD_ERR_INVALID },
		{ "{\"vision_config\": {\"supported_aspect_ratios\": []}, \"text_config\": {}}",
		  "supported_aspect_ratios': 0 pairs", LVD_ERR_INVALID },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		REQUIRE(write_file(path, cases[i].json) == 0);
		struct lvd_mllama_config c;
		struct lvd_error err = { 0 };
		int rc = lvd_mllama_config_load(&c, path, &err);
		CHECKF(rc == cases[i].code, "case %zu: rc %d, want %d (%s)", i, rc, cases[i].code, err.msg);
		CHECK_CONTAINS(err.msg, cases[i].want);
		CHECK_CONTAINS(err.msg, "config.json");
	}
	/* defaults are the 11B checkpoint's values */
	REQUIRE(write_file(path, "{\"vision_config\": {\"image_size\": 560}, \"text_config\": {}}") == 0);
	struct lvd_mllama_config c;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_config_load(&c, path, &err) == 0);
	CHECK(c.v_hidden == 1280 && c.v_out_dim == 7680 && c.t_hidden == 4096 && c.t_kv_heads == 8);
	CHECK(c.n_cross == 8 && c.cross_layers[7] == 38 && c.n_embed == 128264 && c.image_token_index == 128256);
	int want[LVD_MLLAMA_MAX_LIST][2];
	CHECK(c.n_aspect == lvd_mllama_aspect_ratios(4, want) && c.n_aspect == 8 &&
	      memcmp(c.aspect, want, sizeof(int) * 2 * 8) == 0);
	/* supported_aspect_ratios from the file wins over the computed list (issue #12) */
	REQUIRE(write_file(path, "{\"vision_config\": {\"supported_aspect_ratios\": [[1, 1], [2, 1], [1, 2]]}, "
			   "\"text_config\": {}}") == 0);
	REQUIRE(lvd_mllama_config_load(&c, path, &err) == 0);
	CHECK(c.n_aspect == 3 && c.aspect[1][0] == 2 && c.aspect[1][1] == 1 && c.aspect[2][0] == 1 && c.aspect[2][1] == 2);
	unlink(path);
	rmdir(dir);
}

/* the newer on-disk names (model.language_model.*, model.vision_model.*, lm_head.*) load
 * into the same parameters */
static void test_new_key_scheme(void)
{
	char dir[] = "/tmp/lvd-mllama-keys-XXXXXX", path[256];
	REQUIRE(mkdtemp(dir));
	struct lvd_error err = { 0 };
	struct lvd_st *st = NULL;
	REQUIRE(lvd_st_open(&st, lvd_test_path(GOLD "/model/model.safetensors"), &err) == 0);
	struct lvd_st_writer *w = lvd_st_writer_new();
	REQUIRE(w);
	static char names[512][200];
	REQUIRE(lvd_st_count(st) <= 512);
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		const char *n = t->name;
		if (strncmp(n, "language_model.model.", 21) == 0)
			snprintf(names[i], sizeof names[i], "model.language_model.%s", n + 21);
		else if (strncmp(n, "language_model.lm_head.", 23) == 0)
			snprintf(names[i], sizeof names[i], "lm_head.%s", n + 23);
		else
			snprintf(names[i], sizeof names[i], "model.%s", n);
		REQUIRE(lvd_st_writer_add(w, names[i], t->dtype, t->ndim, t->shape, t->data, &err) == 0);
	}
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	REQUIRE(lvd_st_writer_write(w, path, &err) == 0);
	lvd_st_writer_free(w);
	lvd_st_close(st);
	FILE *in = fopen(lvd_test_path(GOLD "/model/config.json"), "rb");
	REQUIRE(in);
	static char cfg[1 << 16];
	size_t n = fread(cfg, 1, sizeof cfg - 1, in);
	fclose(in);
	cfg[n] = 0;
	snprintf(path, sizeof path, "%s/config.json", dir);
	REQUIRE(write_file(path, cfg) == 0);
	struct lvd_mllama *a = load_model(), *b = NULL;
	REQUIRE(a);
	int rc = lvd_mllama_load(&b, dir, &err);
	CHECKF(rc == 0, "%s", err.msg);
	if (b) {
		CHECK(lvd_mllama_nparams(a) == lvd_mllama_nparams(b));
		int same = 1;
		for (size_t i = 0; i < lvd_mllama_nparams(a); i++) {
			struct lvd_mllama_param *p = lvd_mllama_param_at(a, i), *q = lvd_mllama_param_at(b, i);
			same &= p->numel == q->numel && memcmp(p->data, q->data, p->numel * sizeof(float)) == 0;
		}
		CHECK(same);
	}
	lvd_mllama_free(a);
	lvd_mllama_free(b);
	unlink(path);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	unlink(path);
	rmdir(dir);
}

/* LoRA with dropout on more module kinds: backward vs central differences of the loss
 * (same dropout masks on every forward, because they derive from (seed, step)) */
static void test_lora_dropout_fd(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	struct lvd_mllama_lora_cfg lc = { .r = 2, .alpha = 4, .dropout = 0.2f, .targets = "v_proj,fc1,down_proj,k_proj",
					  .seed = 5 };
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	size_t nl = lvd_mllama_nlora(m);
	CHECK(nl == 3 * 3 + 4 * 3); /* vision v,k,fc1 x3 layers; text v,k,down x4 layers */
	unsigned s = 12345;
	for (size_t i = 0; i < nl; i++) {
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, i);
		for (int j = 0; j < 2 * l->out; j++) {
			s = s * 1103515245u + 12345u;
			l->B[j] = ((int)((s >> 8) % 2001) - 1000) * 2e-4f;
		}
	}
	struct lvd_mllama_batch b = gold_batch(&g);
	b.dropout_step = 3;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	lvd_mllama_zero_grads(m);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	/* probe a vision adapter (first) and a text one (last), A and B entries */
	struct lvd_mllama_lora *probe[2] = { lvd_mllama_lora_at(m, 0), lvd_mllama_lora_at(m, nl - 1) };
	for (int k = 0; k < 2; k++)
		for (int which = 0; which < 2; which++) {
			float *w = which ? probe[k]->B : probe[k]->A, *gw = which ? probe[k]->dB : probe[k]->dA;
			int idx = 1;
			float w0 = w[idx], eps = 1e-2f;
			w[idx] = w0 + eps;
			REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
			double lp = lvd_mllama_loss(m);
			w[idx] = w0 - eps;
			REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
			double lm = lvd_mllama_loss(m);
			w[idx] = w0;
			/* central difference in fp32: loss rounding ~5e-7 / 2eps = 2.5e-5, O(eps²) truncation */
			CHECKF(fabs(gw[idx] - (lp - lm) / (2 * eps)) <= 2e-4 + 5e-3 * fabs(gw[idx]),
			       "%s %c: analytic %.6g numeric %.6g", probe[k]->module, which ? 'B' : 'A', gw[idx],
			       (lp - lm) / (2 * eps));
		}
	lvd_mllama_free(m);
	gold_close(&g);
}

/* a borrowed context (lvd_mllama_set_ctx): every op runs on it (plain CPU paths, three
 * threads here), the backward scratch comes from its workspace, NULL returns to the
 * model's own one; logits agree with the own context's (fast paths, one thread) */
static void test_borrowed_ctx(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_mllama *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_enable_grads(m, &err) == 0);
	struct lvd_mllama_batch b = gold_batch(&g);
	struct lvd_ctx *own = lvd_mllama_ctx(m), *ctx = NULL;
	struct lvd_ctx_opts o = { .threads = 3, .cpu_plain = 1, .ws_bytes = (size_t)1 << 30 };
	REQUIRE(own && lvd_ctx_create(&ctx, &o, &err) == 0);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	size_t nl = (size_t)g.B * g.T * lvd_mllama_cfg(m)->vocab;
	float *ref = malloc(sizeof(float) * nl);
	REQUIRE(ref);
	memcpy(ref, lvd_mllama_logits(m), sizeof(float) * nl);
	double loss = lvd_mllama_loss(m);
	lvd_mllama_set_ctx(m, ctx);
	CHECK(lvd_mllama_ctx(m) == ctx);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	/* plain vs fast CPU paths (expf vs the AVX2 exp, summation orders) on O(1) logits */
	CHECK_CLOSE("logits on a borrowed plain ctx", lvd_mllama_logits(m), ref, nl, 1e-4, 1e-4);
	CHECK_NEAR(lvd_mllama_loss(m), loss, 1e-5);
	lvd_ctx_ws_reset_peak(ctx);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	struct lvd_mllama_mem mem;
	lvd_mllama_mem_used(m, &mem);
	CHECKF(mem.scratch > 0 && lvd_ctx_ws_peak(ctx) >= mem.scratch, "ws peak %zu < backward scratch %zu",
	       lvd_ctx_ws_peak(ctx), mem.scratch);
	lvd_mllama_set_ctx(m, NULL);
	CHECK(lvd_mllama_ctx(m) == own);
	lvd_mllama_free(m);
	lvd_ctx_destroy(ctx); /* borrowed: the model did not free it */
	free(ref);
	gold_close(&g);
}

/* ---- training memory: activation checkpointing and the fused LM head ---- */

/* The gradients the model trains, as one copy: the full gradient block, or LoRA's. */
static float *grads_copy(struct lvd_mllama *m, size_t *n)
{
	float *g = lvd_mllama_nlora(m) ? lvd_mllama_lora_grads(m, n) : lvd_mllama_grad_block(m, n);
	float *c = malloc(*n * sizeof *c);
	if (c)
		memcpy(c, g, *n * sizeof *c);
	return c;
}

/* One step at recompute mode r: zeroed gradients, forward (3 captured rows), backward of
 * 0.7·CE + Σ Rs ⊙ P; the loss, the captured probabilities and the gradients out. */
struct rc_out {
	double loss;
	float *probs, *grads;
	size_t np, ng;
	struct lvd_mllama_mem used, want;
};
static void rc_step(struct lvd_mllama *m, struct lvd_mllama_batch *b, const float *Rs, int r, struct rc_out *o)
{
	struct lvd_error err = { 0 };
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	static int rows[3] = { 9, 2, 4 }, off[3] = { 0, 2, 3 };
	b->cap_rows = rows;
	b->cap_off = off;
	b->dropout_step = 5;
	lvd_mllama_set_recompute(m, (enum lvd_mllama_recompute)r);
	lvd_mllama_zero_grads(m);
	REQUIRE(lvd_mllama_forward(m, b, &err) == 0);
	o->loss = lvd_mllama_loss(m);
	size_t S = (size_t)b->M * c->v_max_tiles * 17;
	o->np = (size_t)c->t_heads * 3 * S;
	o->probs = malloc(o->np * sizeof(float));
	REQUIRE(o->probs && lvd_mllama_xattn_probs(m, 0));
	memcpy(o->probs, lvd_mllama_xattn_probs(m, 0), o->np * sizeof(float));
	const float *dp[1] = { Rs };
	REQUIRE(lvd_mllama_backward(m, 0.7f, dp, &err) == 0);
	CHECKF(!memcmp(o->probs, lvd_mllama_xattn_probs(m, 0), o->np * sizeof(float)),
	       "recompute %d: the backward changed the captured probabilities", r);
	o->grads = grads_copy(m, &o->ng);
	REQUIRE(o->grads);
	lvd_mllama_mem_used(m, &o->used);
	REQUIRE(lvd_mllama_measure(m, b->B, b->T, b->M, 3, &o->want, &err) == 0);
}

/* --recompute none | xattn | all, each with and without vision: the loss, the captured
 * probabilities and every gradient bit for bit equal — full fine-tuning (every
 * parameter, lm_head and the vision tower included) and LoRA on every linear of both
 * towers with dropout (the recomputed masks come from the same seeds) — with an injected
 * gradient on 3 captured rows (the dprobs path); the activations shrink (none >= xattn >
 * all; vision below the same text mode) and measure mode predicts them exactly. */
enum { RC_NMODES = 6 };
static const int RC_MODES[RC_NMODES] = { 0, 1, 2, 4, 5, 6 };
static void rc_case(int lora)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_error err = { 0 };
	struct lvd_mllama *m = NULL;
	if (lora) {
		REQUIRE(lvd_mllama_load_frozen(&m, lvd_test_path(GOLD "/model"), &err) == 0);
		struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .dropout = 0.1f, .seed = 3,
						  .targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,fc1,fc2" };
		REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
		for (size_t j = 0; j < lvd_mllama_nlora(m); j++) { /* B != 0: A gets gradients too */
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, j);
			for (size_t i = 0; i < (size_t)l->out * 4; i++)
				l->B[i] = 0.01f * sinf((float)(i + 7 * j));
		}
	} else {
		m = load_model();
		REQUIRE(m && lvd_mllama_enable_grads(m, &err) == 0);
	}
	REQUIRE(lvd_mllama_set_threads(m, 2, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	struct lvd_mllama_batch b = gold_batch(&g);
	size_t n = (size_t)c->t_heads * 3 * g.M * g.TL * 17;
	float *Rs = malloc(n * sizeof *Rs);
	REQUIRE(Rs);
	for (size_t i = 0; i < n; i++)
		Rs[i] = 0.05f * cosf(0.37f * (float)i);
	/* growing activations: the carved capacity is then each forward's own */
	struct lvd_mllama_mem want[RC_NMODES];
	int order[RC_NMODES];
	for (int i = 0; i < RC_NMODES; i++) {
		lvd_mllama_set_recompute(m, (enum lvd_mllama_recompute)RC_MODES[i]);
		REQUIRE(lvd_mllama_measure(m, b.B, b.T, b.M, 3, &want[i], &err) == 0);
		int j = i;
		for (; j > 0 && want[order[j - 1]].acts > want[i].acts; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	struct rc_out o[RC_NMODES];
	for (int k = 0; k < RC_NMODES; k++)
		rc_step(m, &b, Rs, RC_MODES[order[k]], &o[order[k]]);
	double gmax = 0;
	for (size_t i = 0; i < o[0].ng; i++)
		gmax = fmax(gmax, fabs(o[0].grads[i]));
	CHECK(isfinite(o[0].loss) && gmax > 0);
	for (int r = 1; r < RC_NMODES; r++) {
		const char *nm = lvd_mllama_recompute_name(RC_MODES[r]);
		CHECKF(o[r].loss == o[0].loss, "recompute %s: loss %.17g vs %.17g", nm, o[r].loss, o[0].loss);
		CHECKF(!memcmp(o[r].probs, o[0].probs, n * sizeof(float)), "recompute %s: captured probabilities differ",
		       nm);
		size_t diff = 0;
		for (size_t i = 0; i < o[0].ng; i++)
			diff += memcmp(&o[r].grads[i], &o[0].grads[i], sizeof(float)) != 0;
		CHECKF(diff == 0, "recompute %s: %zu of %zu gradient floats differ", nm, diff, o[0].ng);
	}
	/* scratch: the first (all,vision) holds the recomputed cross layer's probabilities,
	 * the others keep its capacity; the vision recompute adds none */
	size_t smax = 0;
	for (int r = 0; r < RC_NMODES; r++)
		smax = o[r].want.scratch > smax ? o[r].want.scratch : smax;
	for (int r = 0; r < RC_NMODES; r++)
		CHECKF(o[r].used.acts == o[r].want.acts && o[r].want.acts == want[r].acts && o[r].used.scratch == smax,
		       "recompute %s: measured %zu/%zu, carved %zu/%zu", lvd_mllama_recompute_name(RC_MODES[r]),
		       o[r].want.acts, o[r].want.scratch, o[r].used.acts, o[r].used.scratch);
	CHECK(o[3].want.scratch == o[0].want.scratch && o[5].want.scratch == o[2].want.scratch);
	/* the tiny model has one cross layer: xattn's shared region is that layer, no saving
	 * (test_plan shows the 11B configuration's); vision (3 layers, one shared) saves two
	 * layers' activations in every text mode */
	CHECK(o[0].want.acts >= o[1].want.acts && o[1].want.acts > o[2].want.acts);
	size_t sv = o[0].want.acts - o[3].want.acts;
	CHECK(o[3].want.acts < o[0].want.acts);
	for (int r = 0; r < 3; r++)
		CHECKF(o[r + 3].want.acts + sv == o[r].want.acts, "recompute %s: the vision saving differs from vision's",
		       lvd_mllama_recompute_name(RC_MODES[r]));
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  acts none %zu, xattn %zu, all %zu, vision %zu, xattn,vision %zu, all,vision %zu bytes\n",
			o[0].want.acts, o[1].want.acts, o[2].want.acts, o[3].want.acts, o[4].want.acts, o[5].want.acts);
	for (int r = 0; r < RC_NMODES; r++)
		free(o[r].probs), free(o[r].grads);
	free(Rs);
	lvd_mllama_free(m);
	gold_close(&g);
}
static void test_recompute_full(void) { rc_case(0); }
static void test_recompute_lora(void) { rc_case(1); }

/* A frozen vision tower (lvd_mllama_freeze; the backward stops at the projector, so no
 * vision layer is recomputed): vision gives the same loss and gradients bit for bit
 * with the smaller activation block. */
static void test_recompute_frozen(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_error err = { 0 };
	struct lvd_mllama *m = load_model();
	REQUIRE(m && lvd_mllama_enable_grads(m, &err) == 0);
	lvd_mllama_freeze(m, LVD_MLLAMA_VISION);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	struct lvd_mllama_batch b = gold_batch(&g);
	size_t n = (size_t)c->t_heads * 3 * g.M * g.TL * 17;
	float *Rs = malloc(n * sizeof *Rs);
	REQUIRE(Rs);
	for (size_t i = 0; i < n; i++)
		Rs[i] = 0.05f * sinf(0.29f * (float)i);
	struct rc_out o[2];
	rc_step(m, &b, Rs, LVD_MLLAMA_RECOMPUTE_VISION, &o[1]);
	rc_step(m, &b, Rs, LVD_MLLAMA_RECOMPUTE_NONE, &o[0]);
	CHECK(o[1].loss == o[0].loss && o[1].ng == o[0].ng && !memcmp(o[1].grads, o[0].grads, o[0].ng * sizeof(float)));
	CHECK(o[1].want.acts < o[0].want.acts);
	for (int r = 0; r < 2; r++)
		free(o[r].probs), free(o[r].grads);
	free(Rs);
	lvd_mllama_free(m);
	gold_close(&g);
}

/* The fused LM head + CE (lvd_mllama_set_xent_chunk) against the logits path, full
 * gradients: loss to double rounding of the reassociated log-sum-exp with one chunk
 * (1e-12 relative), to the logits' fp32 rounding with several (1e-6); every gradient to
 * fp32 rounding (chunked head GEMMs, dh summed per chunk: 1e-5 of each gradient's
 * scale), with chunks 100 (256 = 100 + 100 + 56) and one chunk; no logits; the
 * activations lose the [B·T, V] logits and the scratch its dlogits, as measured;
 * recompute all with the fused head equals the fused head alone bit for bit. */
static void test_fused_xent(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_error err = { 0 };
	struct lvd_mllama *m = load_model();
	REQUIRE(m && lvd_mllama_enable_grads(m, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	struct lvd_mllama_batch b = gold_batch(&g);
	struct lvd_mllama_mem m0, m1;
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	double l0 = lvd_mllama_loss(m);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	size_t ng = 0;
	float *g0 = grads_copy(m, &ng);
	REQUIRE(g0 && lvd_mllama_measure(m, g.B, g.T, g.M, 0, &m0, &err) == 0);
	static const int chunks[2] = { 100, 8192 };
	float *g1 = NULL;
	for (int k = 0; k < 2; k++) {
		lvd_mllama_set_xent_chunk(m, chunks[k]);
		CHECK(lvd_mllama_xent_chunk(m) == chunks[k]);
		lvd_mllama_zero_grads(m);
		REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
		CHECK(lvd_mllama_logits(m) == NULL);
		double l1 = lvd_mllama_loss(m);
		/* one chunk: the same logits GEMM, the log-sum-exp reassociated in double; chunks:
		 * the block GEMMs' logits carry their own fp32 rounding */
		double tol = chunks[k] >= c->vocab ? 1e-12 : 1e-6;
		CHECKF(fabs(l1 - l0) <= tol * fabs(l0), "chunk %d: loss %.17g vs %.17g", chunks[k], l1, l0);
		REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
		free(g1);
		g1 = grads_copy(m, &ng);
		REQUIRE(g1);
		int bad = 0;
		for (size_t i = 0, o = 0; i < lvd_mllama_nparams(m); o += lvd_mllama_param_at(m, i)->numel, i++) {
			const struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
			double sc = 0, d = 0;
			for (size_t j = 0; j < p->numel; j++) {
				sc = fmax(sc, fabs(g0[o + j]));
				d = fmax(d, fabs((double)g1[o + j] - g0[o + j]));
			}
			if (d > 1e-5 * sc + 1e-12) {
				bad++;
				fprintf(stderr, "  %s: max|diff| %.3g, scale %.3g\n", p->name, d, sc);
			}
		}
		CHECKF(bad == 0, "chunk %d: %d gradients differ beyond fp32 rounding", chunks[k], bad);
	}
	REQUIRE(lvd_mllama_measure(m, g.B, g.T, g.M, 0, &m1, &err) == 0);
	size_t BT = (size_t)g.B * g.T, V = (size_t)c->vocab;
	CHECK(m0.acts - m1.acts == (((BT * V + 15) & ~(size_t)15) - ((2 * BT + 15) & ~(size_t)15)) * sizeof(float));
	CHECK(m0.scratch - m1.scratch ==
	      (((BT * V + 15) & ~(size_t)15) - lvd_lmhead_xent_ws_floats((int)BT, (int)V, 8192)) * sizeof(float));
	/* recompute on top: the same bits */
	lvd_mllama_set_recompute(m, LVD_MLLAMA_RECOMPUTE_ALL);
	lvd_mllama_zero_grads(m);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	double l2 = lvd_mllama_loss(m);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	float *g2 = grads_copy(m, &ng);
	REQUIRE(g2);
	CHECK(l2 == lvd_mllama_loss(m) && !memcmp(g1, g2, ng * sizeof *g2));
	/* a mode changed between forward and backward: refused (the layout is the forward's) */
	lvd_mllama_set_recompute(m, LVD_MLLAMA_RECOMPUTE_XATTN);
	CHECK(lvd_mllama_backward(m, 1.0f, NULL, &err) == LVD_ERR_INVALID);
	CHECK(strstr(err.msg, "changed since the forward") != NULL);
	/* names */
	CHECK(lvd_mllama_recompute_parse("xattn") == LVD_MLLAMA_RECOMPUTE_XATTN &&
	      lvd_mllama_recompute_parse("some") == -1 && !strcmp(lvd_mllama_recompute_name(2), "all"));
	/* the vision flag: comma lists, either order, each name at most once, one text mode */
	CHECK(lvd_mllama_recompute_parse("vision") == LVD_MLLAMA_RECOMPUTE_VISION &&
	      lvd_mllama_recompute_parse("all,vision") == (LVD_MLLAMA_RECOMPUTE_ALL | LVD_MLLAMA_RECOMPUTE_VISION) &&
	      lvd_mllama_recompute_parse("vision,xattn") == (LVD_MLLAMA_RECOMPUTE_XATTN | LVD_MLLAMA_RECOMPUTE_VISION) &&
	      lvd_mllama_recompute_parse("none,vision") == LVD_MLLAMA_RECOMPUTE_VISION);
	static const char *const bad[] = { "", "all,", ",all", "all,xattn", "vision,vision", "all,,vision", "visio",
					   "all vision", "ALL" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECKF(lvd_mllama_recompute_parse(bad[i]) == -1, "'%s' parsed", bad[i]);
	for (int r = 0; r < 7; r++)
		CHECKF(r == 3 ? !strcmp(lvd_mllama_recompute_name(r), "?")
			      : lvd_mllama_recompute_parse(lvd_mllama_recompute_name(r)) == r,
		       "mode %d: name '%s'", r, lvd_mllama_recompute_name(r));
	free(g0), free(g1), free(g2);
	lvd_mllama_free(m);
	gold_close(&g);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_config), TEST(test_forward), TEST(test_backward), TEST(test_lora),
		TEST(test_meta_row_mask), TEST(test_bad_inputs), TEST(test_processor),
		TEST(test_bad_configs), TEST(test_new_key_scheme), TEST(test_lora_dropout_fd), TEST(test_borrowed_ctx),
		TEST(test_recompute_full), TEST(test_recompute_lora), TEST(test_recompute_frozen), TEST(test_fused_xent), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
