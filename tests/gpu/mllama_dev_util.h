/* tests/gpu/mllama_dev_util.h — the mllama model moved to a device context
 * (lvd_mllama_to_device) against the same model on the CPU, on the tiny golden checkpoint
 * (tests/golden/mllama: 2 samples of 2 real photos, 3 vision and 4 text layers, one cross
 * layer). Header-only (include after harness.h); used by tests/gpu/test_cuda_mllama.c
 * (a CUDA context, tolerances of the fp32 twins) and tests/unit/test_mllama_dev.c (a CPU
 * context through the same device plumbing: every tolerance 0, bit for bit).
 *
 * Cases:
 *   mdev_check_full   full gradients: logits, loss, vision features, cross states and the
 *                     captured probabilities of every row; every parameter gradient after
 *                     a backward with the golden probability gradient R injected; one
 *                     AdamW step over the whole parameter block on each side from the
 *                     same gradients (the CPU's uploaded: the step alone is compared, bit
 *                     for bit on any backend); the workspace is given back.
 *   mdev_check_train  LoRA r 4 on q_proj/v_proj (the golden adapters, dropout 0.1 so the
 *                     dropout twin runs), frozen (mapped) or full base, fp32 or bf16 base
 *                     weights (lvd_mllama_dev_opts.w16): 5 training steps
 *                     of CE + <R, P> (zero grads, forward with dropout_step = step,
 *                     backward, AdamW over the LoRA block with the model's moment block):
 *                     the loss of every step, the LoRA gradients of the first step and
 *                     the LoRA parameters after the last. */
#ifndef LVD_TEST_MLLAMA_DEV_UTIL_H
#define LVD_TEST_MLLAMA_DEV_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden_util.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "nn/ops/adamw.h"

#define MDEV_GOLD "tests/golden/mllama"

/* Tolerances, |got − want| <= atol + rtol · max|want| (harness CHECK_CLOSE). */
struct mdev_tol {
	double logits_rtol;   /* logits, features, cross states */
	double loss_rel;      /* mean CE */
	double probs_atol;    /* captured probabilities in [0, 1] */
	double grad_atol, grad_rtol;
	double step_loss_rel; /* per-step loss of the 5-step run */
	double param_max_lr;  /* final LoRA params: max |diff| <= param_max_lr · lr */
	double param_rms_lr;  /* and rms diff <= param_rms_lr · lr */
};

struct mdev_gold {
	struct lvd_st *io;
	int B, T, M;
	int *ids, *labels, *arid, *armask, *xmask;
	float *pix, *R;
	int *crows, coff[8];
	struct lvd_mllama_batch b;
};

static inline int mdev_gold_open(struct mdev_gold *g)
{
	struct lvd_error err = { 0 };
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(MDEV_GOLD "/io.safetensors"), &err)) {
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
	g->ids = lvd_gold_i32(g->io, "input_ids");
	g->labels = lvd_gold_i32(g->io, "labels");
	g->arid = lvd_gold_i32(g->io, "aspect_ratio_ids");
	g->armask = lvd_gold_i32(g->io, "aspect_ratio_mask");
	g->xmask = lvd_gold_i32(g->io, "cross_attention_mask");
	g->pix = lvd_gold_f32(g->io, "pixel_values", NULL);
	g->R = lvd_gold_f32(g->io, "xattn_R", NULL);
	g->crows = malloc(sizeof(int) * (size_t)g->B * g->T);
	if (!g->ids || !g->labels || !g->arid || !g->armask || !g->xmask || !g->pix || !g->R || !g->crows || g->B >= 8)
		return -1;
	/* every row captured in order: the probabilities are [B, H, T, S] like R */
	g->coff[0] = 0;
	for (int s = 0; s < g->B; s++) {
		for (int t = 0; t < g->T; t++)
			g->crows[s * g->T + t] = t;
		g->coff[s + 1] = (s + 1) * g->T;
	}
	g->b = (struct lvd_mllama_batch){ .B = g->B, .T = g->T, .M = g->M, .input_ids = g->ids, .labels = g->labels,
					  .pixel_values = g->pix, .aspect_ratio_ids = g->arid,
					  .aspect_ratio_mask = g->armask, .cross_attention_mask = g->xmask,
					  .cap_rows = g->crows, .cap_off = g->coff };
	return 0;
}

static inline void mdev_gold_close(struct mdev_gold *g)
{
	free(g->ids), free(g->labels), free(g->arid), free(g->armask), free(g->xmask), free(g->pix), free(g->R);
	free(g->crows);
	lvd_st_close(g->io);
}

/* host copy (malloc'd) of n floats that live where ctx computes */
static inline float *mdev_down(struct lvd_ctx *ctx, const float *p, size_t n)
{
	float *h = malloc(sizeof(float) * (n ? n : 1));
	if (h && n)
		lvd_buf_download(ctx, h, p, n * sizeof(float));
	return h;
}

static inline int mdev_close(const char *what, const float *got, const float *want, size_t n, double atol,
			     double rtol)
{
	if (getenv("LVD_TEST_VERBOSE")) {
		double worst = 0, scale = 0;
		for (size_t i = 0; i < n; i++) {
			worst = fmax(worst, fabs((double)got[i] - want[i]));
			scale = fmax(scale, fabs((double)want[i]));
		}
		fprintf(stderr, "  %-64s max|diff| %.3g of max|want| %.3g\n", what, worst, scale);
	}
	return CHECK_CLOSE(what, got, want, n, atol, rtol);
}

/* a device buffer against a host one */
static inline int mdev_close_dev(struct lvd_ctx *dev, const char *what, const float *got_dev, const float *want,
				 size_t n, double atol, double rtol)
{
	float *h = mdev_down(dev, got_dev, n);
	int ok = h && mdev_close(what, h, want, n, atol, rtol);
	free(h);
	return ok;
}

static inline struct lvd_mllama *mdev_load(int frozen)
{
	struct lvd_mllama *m = NULL;
	struct lvd_error err = { 0 };
	const char *dir = lvd_test_path(MDEV_GOLD "/model");
	if (frozen ? lvd_mllama_load_frozen(&m, dir, &err) : lvd_mllama_load(&m, dir, &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	return m;
}

static inline void mdev_check_full(struct lvd_ctx *dev, const struct mdev_tol *t)
{
	struct mdev_gold g;
	REQUIRE(mdev_gold_open(&g) == 0);
	struct lvd_mllama *a = mdev_load(0), *d = mdev_load(0);
	REQUIRE(a && d);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_mllama_enable_grads(a, &err) == 0 && lvd_mllama_enable_grads(d, &err) == 0);
	REQUIRE(lvd_mllama_to_device(d, dev, NULL, &err) == 0);
	CHECK(lvd_mllama_on_device(d) && !lvd_mllama_on_device(a) && lvd_mllama_ctx(d) == dev);
	CHECK(lvd_mllama_to_device(d, dev, NULL, &err) == LVD_ERR_INVALID);
	CHECK(lvd_mllama_set_threads(d, 2, &err) == LVD_ERR_INVALID);
	struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .targets = "q_proj", .seed = 1 };
	CHECK(lvd_mllama_add_lora(d, &lc, &err) == LVD_ERR_INVALID);
	REQUIRE(lvd_mllama_forward(a, &g.b, &err) == 0);
	REQUIRE(lvd_mllama_forward(d, &g.b, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(a);
	size_t BT = (size_t)g.B * g.T, P1 = (size_t)(c->v_image_size / c->v_patch) * (c->v_image_size / c->v_patch) + 1;
	size_t rows = (size_t)g.B * g.M * c->v_max_tiles * P1, S = (size_t)g.M * c->v_max_tiles * P1;
	mdev_close("logits", lvd_mllama_logits(d), lvd_mllama_logits(a), BT * c->vocab, 0, t->logits_rtol);
	CHECK(lvd_mllama_logits(d) == lvd_mllama_logits(d)); /* one mirror per forward */
	CHECK_NEAR(lvd_mllama_loss(d), lvd_mllama_loss(a), t->loss_rel * fabs(lvd_mllama_loss(a)));
	CHECK(lvd_mllama_loss_count(d) == lvd_mllama_loss_count(a));
	mdev_close("vision features", lvd_mllama_vision_features(d), lvd_mllama_vision_features(a),
		   rows * c->v_out_dim, 0, t->logits_rtol);
	mdev_close("cross states", lvd_mllama_cross_states(d), lvd_mllama_cross_states(a), rows * c->t_hidden, 0,
		   t->logits_rtol);
	CHECK(lvd_mllama_capture_rows(d) == BT);
	for (int k = 0; k < c->n_cross; k++)
		mdev_close("captured probabilities", lvd_mllama_xattn_probs(d, k), lvd_mllama_xattn_probs(a, k),
			   BT * c->t_heads * S, t->probs_atol, 0);
	const float *dp[LVD_MLLAMA_MAX_LIST] = { g.R };
	REQUIRE(lvd_mllama_backward(a, 1.0f, dp, &err) == 0);
	REQUIRE(lvd_mllama_backward(d, 1.0f, dp, &err) == 0);
	CHECK(lvd_ctx_mark(dev) == 0);   /* scratch and uploaded dprobs given back */
	int bad = 0;
	for (size_t i = 0; i < lvd_mllama_nparams(a); i++) {
		struct lvd_mllama_param *pa = lvd_mllama_param_at(a, i), *pd = lvd_mllama_param_at(d, i);
		char what[200];
		snprintf(what, sizeof what, "grad %s", pa->name);
		bad += !mdev_close_dev(dev, what, pd->grad, pa->grad, pa->numel, t->grad_atol, t->grad_rtol);
	}
	CHECKF(bad == 0, "%d of %zu gradients differ", bad, lvd_mllama_nparams(a));
	/* one AdamW step over the whole block from the same gradients: the CPU's uploaded */
	size_t n, ng;
	float *pa = lvd_mllama_param_block(a, &n), *ga = lvd_mllama_grad_block(a, &ng);
	float *pd = lvd_mllama_param_block(d, &n), *gd = lvd_mllama_grad_block(d, &ng);
	REQUIRE(pa && ga && pd && gd && n == ng);
	lvd_buf_upload(dev, gd, ga, n * sizeof(float));
	float *ma = calloc(2 * n, sizeof(float)), *md = lvd_buf_alloc(dev, 2 * n * sizeof(float));
	REQUIRE(ma && md);
	lvd_buf_zero(dev, md, 2 * n * sizeof(float));
	lvd_adamw_step(lvd_mllama_ctx(a), pa, ma, ma + n, ga, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1);
	lvd_adamw_step(dev, pd, md, md + n, gd, n, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1);
	mdev_close_dev(dev, "parameters after one AdamW step (same gradients)", pd, pa, n, 0, 0);
	mdev_close_dev(dev, "AdamW second moments", md + n, ma + n, n, 0, 0);
	free(ma);
	lvd_buf_free(dev, md);
	lvd_mllama_free(a);
	lvd_mllama_free(d);
	mdev_gold_close(&g);
}

/* the golden LoRA adapters (tests/golden/mllama/lora.safetensors) into m's A and B */
static inline int mdev_lora(struct lvd_mllama *m, float dropout)
{
	struct lvd_error err = { 0 };
	struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .dropout = dropout, .targets = "q_proj,v_proj",
					  .seed = 1 };
	struct lvd_st *lt = NULL;
	if (lvd_mllama_add_lora(m, &lc, &err) || lvd_st_open(&lt, lvd_test_path(MDEV_GOLD "/lora.safetensors"), &err))
		return -1;
	int matched = 0;
	for (size_t i = 0; i < lvd_st_count(lt); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(lt, i);
		char mod[200];
		if (strncmp(t->name, "w.", 2) != 0 || lvd_gold_peft_module(mod, sizeof mod, t->name))
			continue;
		for (size_t j = 0; j < lvd_mllama_nlora(m); j++) {
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, j);
			if (strcmp(l->module, mod) == 0 &&
			    !lvd_tensor_to_f32(t, strstr(t->name, "lora_A") ? l->A : l->B, (size_t)t->numel, &err))
				matched++;
		}
	}
	lvd_st_close(lt);
	return matched == 28 ? 0 : -1;
}

enum { MDEV_STEPS = 5 };

/* ref NULL: the reference is the plain CPU model; else the reference model is moved to ref
 * (a CPU context) with the same w16 option — a CPU run with the same bf16 weights and
 * bf16-rounded product inputs (the CPU twins of the _w16 products) */
static inline void mdev_check_train(struct lvd_ctx *dev, const struct mdev_tol *t, int frozen, int w16,
				    struct lvd_ctx *ref)
{
	const double lr = 1e-3;
	struct mdev_gold g;
	REQUIRE(mdev_gold_open(&g) == 0);
	struct lvd_mllama *a = mdev_load(frozen), *d = mdev_load(frozen);
	REQUIRE(a && d);
	struct lvd_error err = { 0 };
	REQUIRE(mdev_lora(a, 0.1f) == 0 && mdev_lora(d, 0.1f) == 0);
	struct lvd_mllama_dev_opts o = { .w16 = w16 };
	REQUIRE(lvd_mllama_to_device(d, dev, &o, &err) == 0);
	if (ref)
		REQUIRE(lvd_mllama_to_device(a, ref, &o, &err) == 0);
	struct lvd_ctx *actx = lvd_mllama_ctx(a);
	struct lvd_mllama_param *q = lvd_mllama_param_find(d, "language_model.model.layers.0.self_attn.q_proj.weight");
	CHECK(q && q->dtype == (w16 ? LVD_BF16 : LVD_F32));
	size_t n, n2, nd;
	float *pa0 = lvd_mllama_lora_params(a, &n), *ga0 = lvd_mllama_lora_grads(a, &n), *oa = lvd_mllama_lora_opt_state(a, &n2);
	float *pd = lvd_mllama_lora_params(d, &nd), *gd = lvd_mllama_lora_grads(d, &nd), *od = lvd_mllama_lora_opt_state(d, &nd);
	REQUIRE(pa0 && ga0 && oa && pd && gd && od && n2 == 2 * n);
	/* the reference's blocks as host arrays (a copy when the reference is on a context) */
	float *pa = ref ? malloc(n * sizeof(float)) : pa0, *ga = ref ? malloc(n * sizeof(float)) : ga0;
	REQUIRE(pa && ga);
	const float *dp[LVD_MLLAMA_MAX_LIST] = { g.R };
	for (int s = 0; s < MDEV_STEPS; s++) {
		struct lvd_mllama_batch b = g.b;
		b.dropout_step = s;
		lvd_mllama_zero_grads(a);
		lvd_mllama_zero_grads(d);
		REQUIRE(lvd_mllama_forward(a, &b, &err) == 0);
		REQUIRE(lvd_mllama_forward(d, &b, &err) == 0);
		double la = lvd_mllama_loss(a), ld = lvd_mllama_loss(d);
		if (getenv("LVD_TEST_VERBOSE"))
			fprintf(stderr, "  step %d: loss cpu %.9g device %.9g\n", s + 1, la, ld);
		CHECKF(fabs(la - ld) <= t->step_loss_rel * fabs(la), "step %d: loss %.9g vs %.9g", s + 1, ld, la);
		REQUIRE(lvd_mllama_backward(a, 1.0f, dp, &err) == 0);
		REQUIRE(lvd_mllama_backward(d, 1.0f, dp, &err) == 0);
		if (ref)
			lvd_buf_download(actx, ga, ga0, n * sizeof(float));
		if (s == 0)
			mdev_close_dev(dev, "LoRA gradients, step 1", gd, ga, n, t->grad_atol, t->grad_rtol);
		lvd_adamw_step(actx, pa0, oa, oa + n, ga0, n, lr, 0.9, 0.999, 1e-8, 0.01, s + 1);
		lvd_adamw_step(dev, pd, od, od + n, gd, n, lr, 0.9, 0.999, 1e-8, 0.01, s + 1);
	}
	CHECK(lvd_ctx_mark(dev) == 0);
	if (ref)
		lvd_buf_download(actx, pa, pa0, n * sizeof(float));
	float *h = mdev_down(dev, pd, n);
	REQUIRE(h);
	double worst = 0, ss = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)h[i] - pa[i]);
		worst = fmax(worst, e);
		ss += e * e;
	}
	double rms = sqrt(ss / (double)n);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  LoRA params after %d steps: max|diff| %.3g, rms %.3g (lr %g)\n", MDEV_STEPS, worst, rms,
			lr);
	CHECKF(worst <= t->param_max_lr * lr && rms <= t->param_rms_lr * lr,
	       "LoRA params after %d steps: max|diff| %.3g, rms %.3g", MDEV_STEPS, worst, rms);
	free(h);
	if (ref)
		free(pa), free(ga);
	lvd_mllama_free(a);
	lvd_mllama_free(d);
	mdev_gold_close(&g);
}

#endif
