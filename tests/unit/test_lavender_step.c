/* tests/unit/test_lavender_step.c — one Lavender training step on the real model path
 * (lib/lavender/lstep.h: mllama forward with the pack plan's capture rows, L_att, the
 * injected probability gradient, the model backward) against
 * tests/golden/lavender/mllama/ (tests/ref/gen_lavender_mllama.py: a tiny random mllama
 * with PEFT LoRA on three real photos of 1, 2×1 and 2×2 tiles, lvd-pack records written
 * in the pack's byte layout, canvas and --grid 6 targets, and a float64 PyTorch reference
 * of the loss on the fp32 probabilities the model captures).
 *
 * Compared: the decoded records' plans (capture rows), CE, L_att, the total, every
 * intermediate per sample (maps per layer after the geometry, after the Aligner, the
 * layer mean, per-row and per-word maps, per-word MSE), the Aligner gradient, the
 * injected λ·∂L_att/∂P on the captured rows, and the LoRA gradients of the total;
 * also that a forward-only call (eval) leaves the gradients alone and gives the same
 * losses, that pair_count divides L_att, cfg.lean gives the same loss, a sample without
 * words captures and adds nothing, and misfit plans are refused; and the official
 * geometry for the --grid record (test_step_official), and the official word keys
 * (test_step_keys: rows by argmax prediction; test_key_table: the key table of the real
 * Llama-3 vocabulary).
 *
 * Dimension letters: B batch, T tokens, H heads, R_b capture rows, S keys, Lc cross
 * layers, GH×GW the grid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/lstep.h"
#include "lavender/packrec.h"
#include "nn/ctx.h"
#include "text/llama_tok.h"
#include "text/tokens.h"

#define GOLD "tests/golden/lavender/mllama"
#define NB 3
#define TL 4
#define TILE 56

static struct lvd_st *g_st;


static int *geti(const char *name, size_t *n)
{
	const struct lvd_tensor_view *t = lvd_st_find(g_st, name);
	if (!t || t->dtype != LVD_DT_I32)
		return NULL;
	int *p = malloc(t->nbytes + 4);
	memcpy(p, t->data, t->nbytes);
	if (n)
		*n = (size_t)t->numel;
	return p;
}

/* |got - want| <= atol + rtol·max|want| over the tensor; LVD_TEST_VERBOSE prints the
 * worst error relative to max|want| (how the tolerances below were chosen) */
static void cmp(const char *name, const float *got, size_t n, double atol, double rtol)
{
	size_t m = 0;
	float *want = lvd_gold_f32(g_st, name, &m);
	CHECKF(want && m == n, "%s: missing or %zu elements, expected %zu", name, m, n);
	if (want && m == n) {
		if (getenv("LVD_TEST_VERBOSE")) {
			double worst = 0, scale = 0;
			for (size_t i = 0; i < n; i++) {
				worst = fmax(worst, fabs((double)got[i] - want[i]));
				scale = fmax(scale, fabs((double)want[i]));
			}
			fprintf(stderr, "  %-40s max|diff| %.3g, max|want| %.3g, rel %.3g\n", name, worst, scale,
				scale > 0 ? worst / scale : worst);
		}
		CHECK_CLOSE(name, got, want, n, atol, rtol);
	}
	free(want);
}


struct fixture {
	struct lvd_mllama *m;
	int T;
	int *ids, *labels, *arid, *armask, *xmask;
	float *pix;                          /* [B, 1, TL, 3, TILE, TILE] */
	struct lvd_packrec rec[NB];
	struct lvd_latt_plan plan[NB];
	struct lvd_latt_cfg cfg;
	struct lvd_aligner_layout lay;
	float *params, *dparams;
	struct lvd_mllama_batch batch;
	double scal[5];                      /* ce_scale, lambda, ce, l_att, total */
};

static void fixture_free(struct fixture *f)
{
	for (int b = 0; b < NB; b++) {
		lvd_latt_plan_free(&f->plan[b]);
		lvd_packrec_free(&f->rec[b]);
	}
	free(f->ids), free(f->labels), free(f->arid), free(f->armask), free(f->xmask), free(f->pix);
	free(f->params), free(f->dparams);
	lvd_mllama_free(f->m);
	memset(f, 0, sizeof *f);
}

/* Set by the *_device cases: fixture_load then moves the model to this CPU context with
 * lvd_mllama_to_device, so the step runs through the device path's uploads, host mirrors
 * (probabilities, logits) and dprobs uploads (the Lavender split of docs/gpu.md) and must
 * meet the same golden bounds (it is the same arithmetic, bit for bit). */
static struct lvd_ctx *g_dev;

/* loads everything (REQUIREs inside); threads for the model */
static void fixture_load(struct fixture *f, int threads)
{
	memset(f, 0, sizeof *f);
	struct lvd_error err = { 0 };
	if (!g_st && lvd_st_open(&g_st, lvd_test_path(GOLD "/step.safetensors"), &err))
		SKIP(GOLD "/step.safetensors missing (make golden)");
	REQUIRE(lvd_mllama_load(&f->m, lvd_test_path(GOLD "/model"), &err) == 0);
	REQUIRE(lvd_mllama_set_threads(f->m, threads, &err) == 0);
	struct lvd_mllama_lora_cfg lc = { .r = 4, .alpha = 8, .dropout = 0, .targets = "q_proj,v_proj", .seed = 1 };
	REQUIRE(lvd_mllama_add_lora(f->m, &lc, &err) == 0);
	int matched = 0;
	for (size_t i = 0; i < lvd_st_count(g_st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(g_st, i);
		if (strncmp(t->name, "w.", 2) != 0)
			continue;
		char mod[200];
		REQUIRE(lvd_gold_peft_module(mod, sizeof mod, t->name) == 0);
		int isA = strstr(t->name, "lora_A") != NULL;
		for (size_t j = 0; j < lvd_mllama_nlora(f->m); j++) {
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(f->m, j);
			if (strcmp(l->module, mod) == 0) {
				REQUIRE(lvd_tensor_to_f32(t, isA ? l->A : l->B, (size_t)t->numel, &err) == 0);
				matched++;
			}
		}
	}
	/* q, v of 3 vision and 4 text layers, as PEFT's suffix match */
	REQUIRE(matched == 28 && lvd_mllama_nlora(f->m) == 14);
	size_t n = 0;
	f->ids = geti("input_ids", &n);
	REQUIRE(f->ids && n % NB == 0);
	f->T = (int)(n / NB);
	f->labels = geti("labels", NULL);
	f->arid = geti("aspect_ratio_ids", NULL);
	f->armask = geti("aspect_ratio_mask", NULL);
	f->xmask = geti("cross_attention_mask", NULL);
	int *nt = geti("num_tiles", NULL);
	float *valid = lvd_gold_f32(g_st, "pixel_values", &n);
	REQUIRE(f->labels && f->arid && f->armask && f->xmask && nt && valid);
	const size_t tile = (size_t)3 * TILE * TILE;
	f->pix = calloc((size_t)NB * TL * tile, sizeof *f->pix);
	size_t k = 0;
	for (int b = 0; b < NB; b++)
		for (int t = 0; t < nt[b]; t++, k++)
			memcpy(f->pix + ((size_t)b * TL + t) * tile, valid + k * tile, tile * sizeof *f->pix);
	REQUIRE(k * tile == n);
	free(nt), free(valid);
	f->batch = (struct lvd_mllama_batch){ .B = NB, .T = f->T, .M = 1, .input_ids = f->ids, .labels = f->labels,
					      .pixel_values = f->pix, .aspect_ratio_ids = f->arid,
					      .aspect_ratio_mask = f->armask, .cross_attention_mask = f->xmask };
	/* the pack records and their plans */
	for (int b = 0; b < NB; b++) {
		char key[32], where[64];
		snprintf(key, sizeof key, "rec%d", b);
		snprintf(where, sizeof where, "golden record %d", b);
		const struct lvd_tensor_view *t = lvd_st_find(g_st, key);
		REQUIRE(t && t->dtype == LVD_DT_U8);
		REQUIRE(lvd_packrec_decode(&f->rec[b], t->data, t->nbytes, where, &err) == 0);
		CHECKF(lvd_lstep_plan(&f->plan[b], f->m, &f->rec[b], 1, 0, 0, &err) == 0, "%s", err.msg);
		snprintf(key, sizeof key, "s%d.rows", b);
		int *rows = geti(key, &n);
		REQUIRE(rows && (int)n == f->plan[b].R);
		int same = 1;
		for (size_t i = 0; i < n; i++)
			same &= (int)f->plan[b].rows_pos[i] == rows[i];
		CHECKF(same, "sample %d: capture rows differ from the reference's", b);
		free(rows);
	}
	CHECK(f->plan[1].geom.grid == 6 && f->plan[0].geom.grid == 0 && f->plan[2].geom.tiles_h == 2 &&
	      f->plan[2].geom.tiles_w == 2 && f->plan[1].geom.tiles_h == 2 && f->plan[1].geom.tiles_w == 1);
	/* the Aligner: sim / instance / relu6, d_h 6, mean over both cross layers after it */
	lvd_latt_cfg_default(&f->cfg, lvd_mllama_cfg(f->m)->t_heads, lvd_mllama_cfg(f->m)->n_cross);
	f->cfg.aligner.d_h = 6;
	lvd_aligner_layout(&f->lay, &f->cfg.aligner);
	f->params = calloc(f->lay.n_params, sizeof *f->params);
	f->dparams = calloc(f->lay.n_params, sizeof *f->dparams);
	for (int i = 0; i < LVD_ALIGNER_MAX_TENSORS; i++) {
		const struct lvd_aligner_tensor *t = &f->lay.t[i];
		if (!t->n)
			continue;
		char key[128];
		snprintf(key, sizeof key, "p.%s", t->name);
		float *v = lvd_gold_f32(g_st, key, &n);
		REQUIRE(v && n == t->n);
		memcpy(f->params + t->off, v, n * sizeof *v);
		free(v);
	}
	const struct lvd_tensor_view *sc = lvd_st_find(g_st, "scal");
	REQUIRE(sc && sc->dtype == LVD_DT_F64 && sc->numel == 5);
	memcpy(f->scal, sc->data, sizeof f->scal);
	if (g_dev)
		REQUIRE(lvd_mllama_to_device(f->m, g_dev, NULL, &err) == 0);
}

static struct lvd_ctx *mkctx(int threads)
{
	struct lvd_ctx_opts o = { 0 };
	o.threads = threads;
	o.ws_bytes = (size_t)1 << 28;
	struct lvd_ctx *ctx = NULL;
	struct lvd_error e;
	if (lvd_ctx_create(&ctx, &o, &e))
		return NULL;
	return ctx;
}

struct traces {
	struct lvd_latt_trace tr[NB];
	float *buf[NB][6];
};

static void traces_alloc(struct traces *t, const struct fixture *f)
{
	memset(t, 0, sizeof *t);
	for (int b = 0; b < NB; b++) {
		const struct lvd_latt_plan *p = &f->plan[b];
		const size_t hw = (size_t)p->geom.gh * p->geom.gw, R = (size_t)p->R, W = (size_t)p->W;
		const size_t Lc = (size_t)f->cfg.n_captured, H = (size_t)p->geom.heads;
		const size_t n[6] = { Lc * R * H * hw, Lc * R * hw, R * hw, R * hw, W * hw, W };
		for (int i = 0; i < 6; i++)
			t->buf[b][i] = calloc(n[i], sizeof(float));
		t->tr[b].maps = t->buf[b][0];
		t->tr[b].aligned = t->buf[b][1];
		t->tr[b].agg = t->buf[b][2];
		t->tr[b].rows = t->buf[b][3];
		t->tr[b].words = t->buf[b][4];
		t->tr[b].word_loss = t->buf[b][5];
	}
}

static void traces_free(struct traces *t)
{
	for (int b = 0; b < NB; b++)
		for (int i = 0; i < 6; i++)
			free(t->buf[b][i]);
}

/* The Aligner gradient against the golden tensors <prefix><name>. conv_last.bias: exactly
 * 0 in both (min-max removes a shift); the reference's is float64 noise (~1e-18). */
static void cmp_aligner_grads(const struct fixture *f, const char *prefix)
{
	for (int i = 0; i < LVD_ALIGNER_MAX_TENSORS; i++) {
		const struct lvd_aligner_tensor *t = &f->lay.t[i];
		if (!t->n)
			continue;
		char key[128];
		snprintf(key, sizeof key, "%s%s", prefix, t->name);
		cmp(key, f->dparams + t->off, t->n, i == LVD_AL_LAST_B ? 1e-6 : 0, 5e-4);
	}
}

/* Every LoRA gradient against the golden tensors <prefix><peft key> (the PEFT keys of the
 * golden's w.* tensors): 28 tensors, q and v of 3 vision and 4 text layers. */
static void cmp_lora_grads(const struct fixture *f, const char *prefix)
{
	int nlora = 0;
	for (size_t i = 0; i < lvd_st_count(g_st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(g_st, i);
		if (strncmp(t->name, "w.", 2) != 0)
			continue;
		char mod[200], gname[256];
		REQUIRE(lvd_gold_peft_module(mod, sizeof mod, t->name) == 0);
		int isA = strstr(t->name, "lora_A") != NULL;
		snprintf(gname, sizeof gname, "%s%s", prefix, t->name + 2);
		for (size_t j = 0; j < lvd_mllama_nlora(f->m); j++) {
			struct lvd_mllama_lora *l = lvd_mllama_lora_at(f->m, j);
			if (strcmp(l->module, mod) == 0) {
				cmp(gname, isA ? l->dA : l->dB, (size_t)t->numel, 1e-7, 1e-3);
				nlora++;
			}
		}
	}
	CHECK(nlora == 28);
}

/* One step against the golden file.
 * Tolerances (|diff| <= atol + rtol·max|want|), reasons; [worst seen, relative to
 * max|want|, over both thread counts; LVD_TEST_VERBOSE=1 prints them]:
 *   ce, total       rel 1e-5: fp32 model forward vs PyTorch's fp32 (test_mllama's bound)
 *                   [8e-7];
 *   maps            rtol 2e-4: a permutation (canvas) or the fp32 area resampling
 *                   (--grid) of the captured probabilities, which carry the fp32
 *                   model's rounding through 3 vision and 1-4 text layers with LoRA:
 *                   a logit error δ moves a probability by ~δ relative [4.8e-5];
 *   aligned, agg    rtol 5e-4: that error through three 3×3 convs and instance norms
 *                   on 4×4..8×8 maps, whose small variances amplify it [7.2e-5];
 *   vrows, words    atol 5e-4: min-max divides by (max - min + 1e-6); values in [0, 1]
 *                   [3.6e-5];
 *   word_loss       rtol 2e-4 (+ 1e-6): squared differences of the above [2.1e-5];
 *   latt            rel 1e-4 (+ 1e-6) [5e-7];
 *   dparams         rtol 5e-4: the fp32 Aligner backward through min-max (scaling
 *                   with 1/(max - min)) on inputs carrying the forward's error [5.9e-5];
 *                   conv_last.bias: 0 in both up to rounding (min-max removes a shift):
 *                   atol 1e-6, the fp32 rounding of a sum of ~600 terms that cancel
 *                   [1.3e-8];
 *   dprobs          rtol 5e-4: the same chain down to the probabilities [4.5e-5];
 *   LoRA grads      rtol 1e-3 (+ 1e-7): test_mllama's bound for LoRA gradients (fp32
 *                   backward vs PyTorch), here with the injected gradient added [1e-4].
 * The reference's Aligner seed keeps every ReLU6 input >= 1e-3 from a kink (see the
 * generator): closer, the fp32 error could flip a unit and its gradient. */
static void run_step(int threads)
{
	struct fixture f;
	fixture_load(&f, threads);
	struct lvd_ctx *ctx = mkctx(threads);
	REQUIRE(ctx);
	struct lvd_error err = { 0 };
	struct traces tr;
	traces_alloc(&tr, &f);
	const size_t ndp = lvd_lstep_dprobs_floats(f.m, f.plan, NB, 1, 0);
	float *dprobs = calloc(ndp, sizeof *dprobs);
	struct lvd_lstep_in in = { .batch = &f.batch, .plans = f.plan, .params = f.params, .cfg = &f.cfg,
				   .pair_count = 0, .lambda = (float)f.scal[1], .ce_scale = (float)f.scal[0],
				   .backward = 1, .dprobs = dprobs };
	struct lvd_lstep_out out;
	lvd_mllama_zero_grads(f.m);
	CHECKF(lvd_lstep_run(ctx, f.m, &out, f.dparams, tr.tr, &in, &err) == 0, "%s", err.msg);
	CHECK(out.n_pairs == 7 && out.pair_count == 7.0);
	CHECK_NEAR(out.ce, f.scal[2], 1e-5 * f.scal[2]);
	CHECK_NEAR(out.latt, f.scal[3], 1e-4 * f.scal[3] + 1e-6);
	CHECK_NEAR(out.total, f.scal[4], 1e-5 * f.scal[4] + 1e-4 * f.scal[1] * f.scal[3]);
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  ce %.9g (%.9g) latt %.9g (%.9g) total %.9g (%.9g)\n", out.ce, f.scal[2], out.latt,
			f.scal[3], out.total, f.scal[4]);
	const int Lc = f.cfg.n_captured, H = f.plan[0].geom.heads, S = f.plan[0].geom.S;
	size_t RC = 0;
	for (int b = 0; b < NB; b++)
		RC += (size_t)f.plan[b].R;
	size_t off = 0;
	for (int b = 0; b < NB; b++) {
		const struct lvd_latt_plan *p = &f.plan[b];
		const size_t hw = (size_t)p->geom.gh * p->geom.gw, R = (size_t)p->R, W = (size_t)p->W;
		const size_t n[6] = { Lc * R * H * hw, Lc * R * hw, R * hw, R * hw, W * hw, W };
		static const char *names[6] = { "maps", "aligned", "agg", "vrows", "words", "word_loss" };
		static const double atol[6] = { 0, 0, 0, 5e-4, 5e-4, 1e-6 };
		static const double rtol[6] = { 2e-4, 5e-4, 5e-4, 0, 0, 2e-4 };
		for (int i = 0; i < 6; i++) {
			char key[64];
			snprintf(key, sizeof key, "s%d.%s", b, names[i]);
			cmp(key, tr.buf[b][i], n[i], atol[i], rtol[i]);
		}
		/* dprobs: [Lc, H, R, S] in the golden, [Lc] ragged blocks here */
		float *d = malloc((size_t)Lc * H * R * S * sizeof *d);
		for (int k = 0; k < Lc; k++)
			memcpy(d + (size_t)k * H * R * S, dprobs + ((size_t)k * RC + off) * H * S,
			       (size_t)H * R * S * sizeof *d);
		char key[64];
		snprintf(key, sizeof key, "s%d.dprobs", b);
		cmp(key, d, (size_t)Lc * H * R * S, 0, 5e-4);
		free(d);
		off += R;
	}
	cmp_aligner_grads(&f, "dp.");
	cmp_lora_grads(&f, "grad.");

	/* eval: forward only; same losses, gradients untouched; pair_count divides L_att */
	size_t ng = 0;
	float *G = lvd_mllama_lora_grads(f.m, &ng);
	float *g0 = malloc(ng * sizeof *g0), *dp0 = malloc(f.lay.n_params * sizeof *dp0);
	memcpy(g0, G, ng * sizeof *g0);
	memcpy(dp0, f.dparams, f.lay.n_params * sizeof *dp0);
	struct lvd_lstep_in ev = in;
	ev.backward = 0;
	ev.dprobs = NULL;
	ev.pair_count = 14;
	struct lvd_lstep_out o2;
	CHECKF(lvd_lstep_run(ctx, f.m, &o2, f.dparams, NULL, &ev, &err) == 0, "%s", err.msg);
	CHECK(o2.ce == out.ce && o2.pair_count == 14.0);
	CHECK_NEAR(o2.latt, out.latt / 2, 1e-6 * out.latt);
	CHECK(!memcmp(g0, G, ng * sizeof *g0) && !memcmp(dp0, f.dparams, f.lay.n_params * sizeof *dp0));
	free(g0), free(dp0);

	/* cfg.lean (one layer at a time, recomputed Aligner forward): the same loss */
	ev.pair_count = 0;
	f.cfg.lean = 1;
	CHECKF(lvd_lstep_run(ctx, f.m, &o2, NULL, NULL, &ev, &err) == 0, "%s", err.msg);
	CHECK_NEAR(o2.latt, out.latt, 1e-6 * out.latt);
	f.cfg.lean = 0;

	/* a sample without words captures nothing and adds nothing: L_att is the other
	 * samples' word losses over their 4 pairs */
	const int W1 = f.plan[1].W;
	f.plan[1].W = 0;
	CHECKF(lvd_lstep_run(ctx, f.m, &o2, NULL, NULL, &ev, &err) == 0, "%s", err.msg);
	CHECK(o2.n_pairs == 4 && lvd_mllama_capture_rows(f.m) == (size_t)(f.plan[0].R + f.plan[2].R));
	double want = 0;
	for (int b = 0; b < NB; b += 2) {
		char key[64];
		snprintf(key, sizeof key, "s%d.word_loss", b);
		size_t nw = 0;
		float *wl = lvd_gold_f32(g_st, key, &nw);
		REQUIRE(wl);
		for (size_t i = 0; i < nw; i++)
			want += wl[i] / 4.0;
		free(wl);
	}
	CHECK_NEAR(o2.latt, want, 1e-4 * want);
	CHECK(o2.ce == out.ce);
	f.plan[1].W = W1;

	/* a plan that does not fit the model: errors name it */
	f.plan[1].geom.heads = 8;
	CHECK(lvd_lstep_run(ctx, f.m, &o2, NULL, NULL, &ev, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 1");
	f.plan[1].geom.heads = H;
	f.plan[0].rows_pos[0] = (uint32_t)f.T;
	CHECK(lvd_lstep_run(ctx, f.m, &o2, NULL, NULL, &ev, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "row");

	free(dprobs);
	traces_free(&tr);
	lvd_ctx_destroy(ctx);
	fixture_free(&f);
}

/* Sample 1 (the --grid 6 record, 2×1 tiles) in the official geometry (lvd_lstep_plan with
 * official = 1: 17 tokens per tile, CLS included, interpolated to 5×5, the two tiles side
 * by side, antialiased to 6×6), the other samples as before, with the reference's own
 * Aligner (o.p.*): L_att, sample 1's maps, its injected gradient and the Aligner
 * gradient, tolerances as run_step's (seen: maps 4.5e-5, dprobs 4.5e-5, dparams 8.2e-5). */
static void test_step_official(void)
{
	struct fixture f;
	fixture_load(&f, 1);
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	struct lvd_error err = { 0 };
	lvd_latt_plan_free(&f.plan[1]);
	REQUIRE(lvd_lstep_plan(&f.plan[1], f.m, &f.rec[1], 1, 0, 1, &err) == 0);
	CHECK(f.plan[1].geom.official == 1 && f.plan[1].geom.gh == 6 && f.plan[1].geom.och == 5 &&
	      f.plan[1].geom.ocw == 10);
	size_t n = 0;
	for (int i = 0; i < LVD_ALIGNER_MAX_TENSORS; i++) {
		const struct lvd_aligner_tensor *t = &f.lay.t[i];
		if (!t->n)
			continue;
		char key[128];
		snprintf(key, sizeof key, "o.p.%s", t->name);
		float *v = lvd_gold_f32(g_st, key, &n);
		REQUIRE(v && n == t->n);
		memcpy(f.params + t->off, v, n * sizeof *v);
		free(v);
	}
	struct traces tr;
	traces_alloc(&tr, &f);
	float *dprobs = calloc(lvd_lstep_dprobs_floats(f.m, f.plan, NB, 1, 0), sizeof *dprobs);
	struct lvd_lstep_in in = { .batch = &f.batch, .plans = f.plan, .params = f.params, .cfg = &f.cfg,
				   .lambda = (float)f.scal[1], .ce_scale = (float)f.scal[0], .backward = 1,
				   .dprobs = dprobs };
	struct lvd_lstep_out out;
	lvd_mllama_zero_grads(f.m);
	CHECKF(lvd_lstep_run(ctx, f.m, &out, f.dparams, tr.tr, &in, &err) == 0, "%s", err.msg);
	const struct lvd_tensor_view *lt = lvd_st_find(g_st, "o.latt");
	REQUIRE(lt && lt->dtype == LVD_DT_F64);
	double want;
	memcpy(&want, lt->data, sizeof want);
	CHECK_NEAR(out.latt, want, 1e-4 * want + 1e-6);
	CHECK(fabs(out.latt - f.scal[3]) > 1e-3); /* not the default geometry's loss */
	const int Lc = f.cfg.n_captured, H = f.plan[1].geom.heads, S = f.plan[1].geom.S, R = f.plan[1].R;
	const size_t RC = (size_t)(f.plan[0].R + f.plan[1].R + f.plan[2].R), off = (size_t)f.plan[0].R;
	cmp("o.s1.maps", tr.buf[1][0], (size_t)Lc * R * H * 36, 0, 2e-4);
	float *d = malloc((size_t)Lc * H * R * S * sizeof *d);
	for (int k = 0; k < Lc; k++)
		memcpy(d + (size_t)k * H * R * S, dprobs + ((size_t)k * RC + off) * H * S, (size_t)H * R * S * sizeof *d);
	cmp("o.s1.dprobs", d, (size_t)Lc * H * R * S, 0, 5e-4);
	free(d);
	cmp_aligner_grads(&f, "o.dp.");
	free(dprobs);
	traces_free(&tr);
	lvd_ctx_destroy(ctx);
	fixture_free(&f);
}


/* Official word keys (lstep key_str): the k.rec* records (the same words with keys chosen
 * from what the model predicts: word 0 the string predicted at its first query row,
 * word 1 "zz", predicted nowhere, so dropped), the golden's key table (five strings
 * shared by many ids, "" for the specials), every row captured, the reference's own
 * Aligner (k.p.*): L_att, the pair count, the injected gradient on every row, the Aligner
 * and LoRA gradients; tolerances as run_step's. */
static void test_step_keys(void)
{
	struct fixture f;
	fixture_load(&f, 1);
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	struct lvd_error err = { 0 };
	size_t n = 0;
	for (int b = 0; b < NB; b++) {
		char key[32], where[64];
		snprintf(key, sizeof key, "k.rec%d", b);
		snprintf(where, sizeof where, "golden keyed record %d", b);
		const struct lvd_tensor_view *t = lvd_st_find(g_st, key);
		REQUIRE(t && t->dtype == LVD_DT_U8);
		lvd_latt_plan_free(&f.plan[b]);
		lvd_packrec_free(&f.rec[b]);
		REQUIRE(lvd_packrec_decode(&f.rec[b], t->data, t->nbytes, where, &err) == 0);
		REQUIRE(lvd_lstep_plan(&f.plan[b], f.m, &f.rec[b], 1, 0, 0, &err) == 0);
		CHECK(f.plan[b].T == f.T && f.plan[b].keys && !strcmp(f.plan[b].keys[1], "zz"));
	}
	for (int i = 0; i < LVD_ALIGNER_MAX_TENSORS; i++) {
		const struct lvd_aligner_tensor *t = &f.lay.t[i];
		if (!t->n)
			continue;
		char key[128];
		snprintf(key, sizeof key, "k.p.%s", t->name);
		float *v = lvd_gold_f32(g_st, key, &n);
		REQUIRE(v && n == t->n);
		memcpy(f.params + t->off, v, n * sizeof *v);
		free(v);
	}
	/* the key table: "k.keys" is the strings joined by newlines */
	const struct lvd_tensor_view *kt = lvd_st_find(g_st, "k.keys");
	REQUIRE(kt && kt->dtype == LVD_DT_U8);
	char *kbuf = malloc(kt->nbytes + 1);
	memcpy(kbuf, kt->data, kt->nbytes);
	kbuf[kt->nbytes] = 0;
	const char *keys[256];
	int nk = 0;
	for (char *p = kbuf;; p++) {
		keys[nk++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = 0;
		p = nl;
		REQUIRE(nk < 256);
	}
	REQUIRE(nk == lvd_mllama_cfg(f.m)->vocab);
	const struct lvd_tensor_view *sc = lvd_st_find(g_st, "k.scal");
	REQUIRE(sc && sc->dtype == LVD_DT_F64 && sc->numel == 3);
	double ks[3];
	memcpy(ks, sc->data, sizeof ks);
	float *dprobs = calloc(lvd_lstep_dprobs_floats(f.m, f.plan, NB, 1, 1), sizeof *dprobs);
	struct lvd_lstep_in in = { .batch = &f.batch, .plans = f.plan, .params = f.params, .cfg = &f.cfg,
				   .lambda = (float)f.scal[1], .ce_scale = (float)f.scal[0], .backward = 1,
				   .key_str = keys, .key_n = nk, .dprobs = dprobs };
	struct lvd_lstep_out out;
	lvd_mllama_zero_grads(f.m);
	CHECKF(lvd_lstep_run(ctx, f.m, &out, f.dparams, NULL, &in, &err) == 0, "%s", err.msg);
	CHECKF(out.n_pairs == (int)ks[2] && out.pair_count == ks[2], "pairs %d, the reference's %g", out.n_pairs,
	       ks[2]);
	CHECK(lvd_mllama_capture_rows(f.m) == (size_t)NB * f.T);
	CHECK_NEAR(out.latt, ks[0], 1e-4 * ks[0] + 1e-6);
	CHECK_NEAR(out.total, ks[1], 1e-5 * ks[1] + 1e-4 * f.scal[1] * ks[0]);
	CHECK(fabs(out.latt - f.scal[3]) > 1e-3); /* not the pack rows' loss */
	const int Lc = f.cfg.n_captured, H = f.plan[0].geom.heads, S = f.plan[0].geom.S, T = f.T;
	const size_t RC = (size_t)NB * T;
	float *d = malloc((size_t)Lc * H * T * S * sizeof *d);
	for (int b = 0; b < NB; b++) {
		for (int k = 0; k < Lc; k++)
			memcpy(d + (size_t)k * H * T * S, dprobs + ((size_t)k * RC + (size_t)b * T) * H * S,
			       (size_t)H * T * S * sizeof *d);
		char key[64];
		snprintf(key, sizeof key, "k.s%d.dprobs", b);
		cmp(key, d, (size_t)Lc * H * T * S, 0, 5e-4);
	}
	free(d);
	cmp_aligner_grads(&f, "k.dp.");
	cmp_lora_grads(&f, "k.grad.");
	/* a key table shorter than the vocabulary is refused */
	in.key_n = 10;
	in.backward = 0;
	in.dprobs = NULL;
	CHECK(lvd_lstep_run(ctx, f.m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "key table");
	free(dprobs);
	free(kbuf);
	lvd_ctx_destroy(ctx);
	fixture_free(&f);
}


/* lvd_lstep_key_table on the real Llama-3 vocabulary: each id decoded alone, specials
 * skipped, whitespace stripped (tokenizer.decode([id], skip_special_tokens=True).strip()):
 * " dog" -> "dog", " Dog" -> "Dog" (case kept), "\n\n" -> "", the chat specials -> "". */
static void test_key_table(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent (the Llama-3 vocabulary)");
	char path[4096];
	snprintf(path, sizeof path, "%s/llama3/tokenizer.model", sd);
	struct lvd_llama_tok *tok = NULL;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_MLLAMA, &err) == 0);
	char **tab = NULL;
	int n = 0;
	REQUIRE(lvd_lstep_key_table(tok, &tab, &n, &err) == 0);
	CHECK(n == lvd_llama_vocab_size(tok) && n == 128257);
	static const struct {
		const char *text, *key;
	} cases[] = { { " dog", "dog" }, { " Dog", "Dog" }, { "\n\n", "" }, { " the", "the" }, { "cat", "cat" } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct lvd_tokens t = { 0 };
		REQUIRE(lvd_llama_encode(tok, cases[i].text, strlen(cases[i].text), 0, &t, &err) == 0);
		CHECKF(t.n == 1, "'%s' is %zu tokens", cases[i].text, t.n);
		if (t.n == 1)
			CHECKF(!strcmp(tab[t.ids[0]], cases[i].key), "id %d ('%s'): key '%s', expected '%s'",
			       (int)t.ids[0], cases[i].text, tab[t.ids[0]], cases[i].key);
		lvd_tokens_free(&t);
	}
	static const char *specials[] = { "<|begin_of_text|>", "<|eot_id|>", "<|image|>", "<|start_header_id|>" };
	for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
		int32_t id = lvd_llama_special_id(tok, specials[i]);
		CHECK(id >= 0 && id < n && tab[id][0] == 0);
	}
	lvd_lstep_key_table_free(tab, n);
	lvd_llama_tok_free(tok);
}

/* --recompute none | xattn | all | all,vision (lvd_mllama_set_recompute) under the whole
 * Lavender step, with the fused LM head and without: CE, L_att, the total, the injected
 * λ·∂L_att/∂P, the Aligner gradient and every LoRA gradient bit for bit equal to the
 * step without recompute (the same ops on the same inputs; the recomputation asserts its
 * captured probabilities equal the forward's, which L_att read: no stale maps); the
 * fused head changes CE and the LoRA gradients only by fp32 rounding (1e-6 relative,
 * 1e-5 of the gradients' scale). 2 threads. */
static void test_step_recompute(void)
{
	struct fixture f;
	fixture_load(&f, 2);
	struct lvd_ctx *ctx = mkctx(2);
	REQUIRE(ctx);
	struct lvd_error err = { 0 };
	const size_t ndp = lvd_lstep_dprobs_floats(f.m, f.plan, NB, 1, 0);
	size_t ng = 0;
	lvd_mllama_lora_grads(f.m, &ng);
	float *dprobs[2], *dal[2], *dl[2];
	double sc[2][3];
	for (int fused = 0; fused < 2; fused++) {
		lvd_mllama_set_xent_chunk(f.m, fused ? 100 : 0);
		static const int modes[4] = { 0, 1, 2, LVD_MLLAMA_RECOMPUTE_ALL | LVD_MLLAMA_RECOMPUTE_VISION };
		for (int k = 0; k < 4; k++) {
			const int r = modes[k];
			float *dp = calloc(ndp, sizeof *dp);
			REQUIRE(dp);
			memset(f.dparams, 0, f.lay.n_params * sizeof *f.dparams);
			lvd_mllama_set_recompute(f.m, (enum lvd_mllama_recompute)r);
			lvd_mllama_zero_grads(f.m);
			struct lvd_lstep_in in = { .batch = &f.batch, .plans = f.plan, .params = f.params, .cfg = &f.cfg,
						   .lambda = (float)f.scal[1], .ce_scale = (float)f.scal[0], .backward = 1,
						   .dprobs = dp };
			struct lvd_lstep_out out;
			CHECKF(lvd_lstep_run(ctx, f.m, &out, f.dparams, NULL, &in, &err) == 0, "%s", err.msg);
			float *a = malloc(f.lay.n_params * sizeof *a), *l = malloc(ng * sizeof *l);
			REQUIRE(a && l);
			memcpy(a, f.dparams, f.lay.n_params * sizeof *a);
			memcpy(l, lvd_mllama_lora_grads(f.m, &ng), ng * sizeof *l);
			if (r == 0) {
				dprobs[fused] = dp, dal[fused] = a, dl[fused] = l;
				sc[fused][0] = out.ce, sc[fused][1] = out.latt, sc[fused][2] = out.total;
				CHECK(out.latt > 0 && out.n_pairs == 7);
				continue;
			}
			const char *nm = lvd_mllama_recompute_name(r);
			CHECKF(out.ce == sc[fused][0] && out.latt == sc[fused][1] && out.total == sc[fused][2],
			       "fused %d recompute %s: losses %.17g %.17g vs %.17g %.17g", fused, nm, out.ce, out.latt,
			       sc[fused][0], sc[fused][1]);
			CHECKF(!memcmp(dp, dprobs[fused], ndp * sizeof *dp), "fused %d recompute %s: dprobs differ", fused, nm);
			CHECKF(!memcmp(a, dal[fused], f.lay.n_params * sizeof *a), "fused %d recompute %s: Aligner gradient",
			       fused, nm);
			CHECKF(!memcmp(l, dl[fused], ng * sizeof *l), "fused %d recompute %s: LoRA gradients", fused, nm);
			free(dp), free(a), free(l);
		}
	}
	CHECK_NEAR(sc[1][0], sc[0][0], 1e-6 * sc[0][0]);
	CHECK(sc[1][1] == sc[0][1] && !memcmp(dprobs[1], dprobs[0], ndp * sizeof(float)));
	double gs = 0;
	for (size_t i = 0; i < ng; i++)
		gs = fmax(gs, fabs(dl[0][i]));
	CHECK_CLOSE("LoRA gradients, fused head", dl[1], dl[0], ng, 1e-5 * gs, 0);
	for (int k = 0; k < 2; k++)
		free(dprobs[k]), free(dal[k]), free(dl[k]);
	lvd_ctx_destroy(ctx);
	fixture_free(&f);
}

static void test_step_golden(void) { run_step(1); }
static void test_step_golden_threads(void) { run_step(3); }

/* the step and the keyed step with the model on a (CPU) device context: g_dev */
static void on_device(void (*fn)(void))
{
	g_dev = mkctx(1);
	REQUIRE(g_dev);
	fn();
	lvd_ctx_destroy(g_dev);
	g_dev = NULL;
}
static void step1(void) { run_step(1); }
static void test_step_golden_device(void) { on_device(step1); }
static void test_step_keys_device(void) { on_device(test_step_keys); }

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_step_golden),
		TEST(test_step_golden_threads),
		TEST(test_step_official),
		TEST(test_step_recompute),
		TEST(test_step_keys),
		TEST(test_key_table),
		TEST(test_step_golden_device),
		TEST(test_step_keys_device),
		{ 0 },
	};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_ctx_destroy(g_dev);   /* left set when a device case stopped early */
	lvd_st_close(g_st);
	return rc;
}
