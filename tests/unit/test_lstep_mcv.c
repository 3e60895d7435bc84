/* tests/unit/test_lstep_mcv.c — the MiniCPM Lavender step (lib/lavender/lstep_mcv.h) on
 * the tiny golden MiniCPM model (tests/golden/minicpmv: two samples, one with a source
 * picture and one slice, one with a source picture alone): (a) plumbing — L_att, dA, dRr
 * and the Aligner gradient equal lvd_latt_sample_loss called by hand on the captured
 * probabilities, the CE and total, and the model's gradients equal a hand-run backward with
 * the scaled CE and that dA; (b) finite differences of total = ce_scale·CE + λ·L_att
 * w.r.t. a few LLM weights (full fine-tuning), LoRA parameters and resampler / vision
 * weights (the step runs their backward when they train) vs the analytic gradients, both
 * map modes; (c) the error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "lavender/lstep_mcv.h"
#include "models/minicpmv/minicpmv_internal.h"
#include "nn/ctx.h"

#define GOLD "tests/golden/minicpmv"
#define NG 5   /* target grid */

struct fix {
	struct lvd_st *io, *tr;
	int B, T, NI, Lmax;
	int *ids, *tgt, *nimg, *bound, *labels;
	float *pix;
	struct lvd_minicpmv_batch b;
	/* Lavender inputs */
	uint32_t rows0[3], rows1[3];
	int wr[8];
	struct lvd_latt_word w0[3], w1[2];
	float targets[5][NG * NG];
	struct lvd_lstep_mcv_sample s[2];
	int layers[2];
	struct lvd_latt_cfg cfg;
	struct lvd_aligner_layout lay;
	float *params, *dparams;
	struct lvd_lstep_mcv_in in;
	struct lvd_ctx *ctx;
};

static void fix_close(struct fix *f)
{
	free(f->ids), free(f->tgt), free(f->nimg), free(f->bound), free(f->labels), free(f->pix);
	free(f->params), free(f->dparams);
	lvd_st_close(f->io);
	lvd_st_close(f->tr);
	if (f->ctx)
		lvd_ctx_destroy(f->ctx);
}

static float urand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) * (1.0 / 16777216.0));
}

/* 0 ok, 1 golden absent, -1 broken */
static int fix_open(struct fix *f, enum lvd_mcv_map map)
{
	struct lvd_error err = { 0 };
	memset(f, 0, sizeof *f);
	if (lvd_st_open(&f->io, lvd_test_path(GOLD "/io.safetensors"), &err) ||
	    lvd_st_open(&f->tr, lvd_test_path(GOLD "/train.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return 1;
	}
	const struct lvd_tensor_view *pv = lvd_st_find(f->io, "pixel_values");
	const struct lvd_tensor_view *ii = lvd_st_find(f->io, "input_ids");
	if (!pv || !ii)
		return -1;
	f->B = (int)ii->shape[0], f->T = (int)ii->shape[1], f->NI = (int)pv->shape[0];
	f->Lmax = (int)(pv->shape[3] / pv->shape[2]);
	f->ids = lvd_gold_i32(f->io, "input_ids");
	f->tgt = lvd_gold_i32(f->io, "tgt_sizes");
	f->nimg = lvd_gold_i32(f->io, "n_images");
	f->pix = lvd_gold_f32(f->io, "pixel_values", NULL);
	f->labels = lvd_gold_i32(f->tr, "labels");
	int *bd = lvd_gold_i32(f->io, "image_bound");
	f->bound = malloc(sizeof(int) * 2 * (size_t)f->NI);
	/* the layout this test's rows assume: sample 0 pictures end at 20, sample 1's at 13 */
	if (!bd || !f->bound || !f->ids || !f->tgt || !f->nimg || !f->pix || !f->labels || f->B != 2 ||
	    f->T != 24 || f->nimg[0] != 2 || f->nimg[1] != 1) {
		free(bd);
		return -1;
	}
	for (int s = 0, i = 0; s < f->B; s++)
		for (int k = 0; k < f->nimg[s]; k++, i++)
			f->bound[2 * i] = bd[(s * 2 + k) * 2], f->bound[2 * i + 1] = bd[(s * 2 + k) * 2 + 1];
	free(bd);
	struct lvd_minicpmv_batch b = { .B = f->B, .T = f->T, .input_ids = f->ids, .NI = f->NI, .Lmax = f->Lmax,
					.pixel_values = f->pix, .tgt_sizes = f->tgt, .n_images = f->nimg,
					.image_bound = f->bound, .labels = f->labels };
	f->b = b;
	/* sample 0 (source + 1 slice): rows 20, 22, 23; words {0,1}, {2}, and {1} unmatched.
	 * sample 1 (source alone): rows 14, 17, 21; words {0,2}, {1}. */
	const uint32_t r0[3] = { 20, 22, 23 }, r1[3] = { 14, 17, 21 };
	memcpy(f->rows0, r0, sizeof r0);
	memcpy(f->rows1, r1, sizeof r1);
	const int wr[8] = { 0, 1, 2, 1, 0, 2, 1, 0 };
	memcpy(f->wr, wr, sizeof wr);
	uint32_t seed = 12345;
	for (int w = 0; w < 5; w++)
		for (int i = 0; i < NG * NG; i++)
			f->targets[w][i] = urand(&seed);
	f->w0[0] = (struct lvd_latt_word){ 2, f->wr + 0, f->targets[0] };
	f->w0[1] = (struct lvd_latt_word){ 1, f->wr + 2, f->targets[1] };
	f->w0[2] = (struct lvd_latt_word){ 1, f->wr + 3, NULL };
	f->w1[0] = (struct lvd_latt_word){ 2, f->wr + 4, f->targets[2] };
	f->w1[1] = (struct lvd_latt_word){ 1, f->wr + 6, f->targets[3] };
	f->s[0] = (struct lvd_lstep_mcv_sample){ 1, 1, NG, 3, f->rows0, 3, f->w0 };
	f->s[1] = (struct lvd_lstep_mcv_sample){ 0, 0, NG, 3, f->rows1, 2, f->w1 };
	f->layers[0] = 1, f->layers[1] = 0;
	/* Aligner: sim / instance / relu6, d_h 6, Kaiming-initialised; mean over both layers */
	lvd_latt_cfg_default(&f->cfg, 4, 2);
	f->cfg.aligner.d_h = 6;
	lvd_aligner_layout(&f->lay, &f->cfg.aligner);
	f->params = calloc(f->lay.n_params, sizeof *f->params);
	f->dparams = calloc(f->lay.n_params, sizeof *f->dparams);
	if (!f->params || !f->dparams)
		return -1;
	lvd_aligner_init(&f->cfg.aligner, f->params, 7, LVD_ALIGNER_INIT_KAIMING, 0.0f);
	struct lvd_lstep_mcv_in in = { .batch = &f->b, .samples = f->s, .n_layers = 2, .layers = f->layers,
				       .map = map, .params = f->params, .cfg = &f->cfg, .lambda = 10.0f,
				       .ce_scale = 0.5f, .backward = 1 };
	f->in = in;
	struct lvd_ctx_opts o = { 0 };
	o.threads = 1;
	o.ws_bytes = (size_t)1 << 26;
	if (lvd_ctx_create(&f->ctx, &o, &err))
		return -1;
	return 0;
}

#define OPEN_OR_SKIP(f, map)                                                                   \
	do {                                                                                   \
		int rc_ = fix_open(f, map);                                                    \
		if (rc_ > 0) {                                                                 \
			fix_close(f);                                                          \
			SKIP("golden missing (.venv-ref/bin/python tests/ref/gen_minicpmv.py)"); \
		}                                                                              \
		REQUIRE(rc_ == 0);                                                             \
	} while (0)

static struct lvd_minicpmv *load_model(struct fix *f)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_minicpmv_load(&m, lvd_test_path(GOLD "/model"), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	lvd_minicpmv_set_ctx(m, f->ctx);
	return m;
}

/* the sample's geometry, written out by hand (not by the step's code) */
static struct lvd_latt_geom hand_geom(const struct fix *f, int b, enum lvd_mcv_map map)
{
	struct lvd_latt_geom g;
	memset(&g, 0, sizeof g);
	g.kind = LVD_LATT_GEOM_MINICPM;
	g.heads = 4;
	g.grid = NG;
	g.mcv.mode = map;
	g.mcv.n_pics = b ? 1 : 2;
	g.mcv.Q = 8;
	g.S = g.mcv.n_pics * 8;
	g.mcv.cols = g.mcv.rows = b ? 0 : 1;
	g.mcv.Hr = 2;
	g.mcv.Lmax = f->Lmax;
	for (int k = 0; k < g.mcv.n_pics; k++) {
		g.mcv.th[k] = f->tgt[2 * (k + (b ? 2 : 0))];
		g.mcv.tw[k] = f->tgt[2 * (k + (b ? 2 : 0)) + 1];
	}
	struct lvd_error e;
	LVD_ASSERTF(lvd_latt_geom_check(&g, &e) == LVD_OK, "%s", e.msg);
	return g;
}

/* (a) the step's L_att, dA, dRr, dparams, CE and model gradients against the pieces run by hand */
static void plumbing(enum lvd_mcv_map map)
{
	struct fix f;
	OPEN_OR_SKIP(&f, map);
	struct lvd_minicpmv *m = load_model(&f);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_enable_grads(m, &err) == 0);
	const size_t nd = lvd_lstep_mcv_dprobs_floats(m, &f.in), nr = lvd_lstep_mcv_drprobs_floats(m, &f.b);
	CHECK(nd == (size_t)2 * 4 * (3 * 2 * 8 + 3 * 1 * 8));
	CHECK(nr == (size_t)3 * 2 * 8 * f.Lmax);
	float *dprobs = malloc(nd * sizeof(float)), *drprobs = malloc(nr * sizeof(float));
	float *hdp = calloc(nd, sizeof(float)), *hdr = calloc(nr, sizeof(float));
	float *hpar = calloc(f.lay.n_params, sizeof(float));
	REQUIRE(dprobs && drprobs && hdp && hdr && hpar);
	for (size_t i = 0; i < nr; i++)
		drprobs[i] = 99.0f;   /* overwritten */
	f.in.dprobs = dprobs;
	f.in.drprobs = drprobs;
	struct lvd_lstep_out out;
	REQUIRE(lvd_lstep_mcv_run(f.ctx, m, &out, f.dparams, NULL, &f.in, &err) == 0);
	CHECK(out.n_pairs == 4 && out.pair_count == 4.0);
	CHECKF(out.latt > 0 && isfinite(out.latt), "L_att %g", out.latt);
	CHECK(fabs(out.total - (0.5 * out.ce + 10.0 * out.latt)) < 1e-9 * fabs(out.total));
	/* copies of the step's model gradients, then the same by hand */
	static const char *const gnames[] = { "llm.model.layers.0.self_attn.q_proj.weight",
					      "llm.model.layers.1.self_attn.k_proj.weight", "llm.lm_head.weight" };
	float *gstep[3];
	size_t gn[3];
	for (int i = 0; i < 3; i++) {
		const float *g = lvd_minicpmv_llm_grad(m, gnames[i], &gn[i]);
		REQUIRE(g && (gstep[i] = malloc(gn[i] * sizeof(float))));
		memcpy(gstep[i], g, gn[i] * sizeof(float));
	}
	lvd_minicpmv_zero_grads(m);
	int cap_rows[6] = { 20, 22, 23, 14, 17, 21 }, cap_off[3] = { 0, 3, 6 };
	struct lvd_minicpmv_batch hb = f.b;
	hb.n_cap_layers = 2, hb.cap_layers = f.layers, hb.cap_rows = cap_rows, hb.cap_off = cap_off;
	REQUIRE(lvd_minicpmv_forward(m, &hb, &err) == 0);
	CHECK(lvd_minicpmv_loss(m, NULL) == out.ce);
	size_t nblk = 0;
	const float *P[2] = { lvd_minicpmv_cap_probs(m, 0, &nblk), lvd_minicpmv_cap_probs(m, 1, NULL) };
	REQUIRE(P[0] && P[1] && 2 * nblk == nd);
	const float *rp = lvd_minicpmv_resampler_probs(m);
	const size_t pp = (size_t)2 * 8 * f.Lmax;
	uint8_t mask[NG * NG];
	memset(mask, 1, sizeof mask);
	double latt = 0;
	for (int b = 0; b < 2; b++) {
		const size_t off = lvd_minicpmv_cap_offset(m, b);
		const float *pb[2] = { P[0] + off, P[1] + off };
		float *db[2] = { hdp + off, hdp + nblk + off };
		struct lvd_latt_sample s = { .geom = hand_geom(&f, b, map), .R = 3, .probs = pb, .mask = mask,
					     .W = b ? 2 : 3, .words = b ? f.w1 : f.w0, .rprobs = rp + (b ? 2 : 0) * pp,
					     .drprobs = hdr + (b ? 2 : 0) * pp };
		REQUIRE(lvd_latt_sample_check(&s, &f.cfg, &err) == 0);
		lvd_latt_sample_loss(f.ctx, &latt, hpar, db, &s, f.params, &f.cfg, 4.0, 10.0f, NULL);
	}
	CHECKF(latt == out.latt, "L_att by hand %.17g, step %.17g", latt, out.latt);
	CHECK(!memcmp(hdp, dprobs, nd * sizeof(float)));
	CHECK(!memcmp(hdr, drprobs, nr * sizeof(float)));
	CHECK(!memcmp(hpar, f.dparams, f.lay.n_params * sizeof(float)));
	double sa = 0, sr = 0;
	for (size_t i = 0; i < nd; i++)
		sa += fabs(dprobs[i]);
	for (size_t i = 0; i < nr; i++)
		sr += fabs(drprobs[i]);
	CHECKF(sa > 0, "dA all zero");
	CHECKF(map == LVD_MCV_MAP_OFFICIAL ? sr == 0 : sr > 0, "dRr sum %g (map %d)", sr, (int)map);
	const float *dl[2] = { hdp, hdp + nblk };
	REQUIRE(lvd_minicpmv_backward_scaled(m, 0.5f, dl, &err) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK_CLOSE(gnames[i], lvd_minicpmv_llm_grad(m, gnames[i], NULL), gstep[i], gn[i], 0, 0);
		free(gstep[i]);
	}
	free(dprobs), free(drprobs), free(hdp), free(hdr), free(hpar);
	lvd_minicpmv_free(m);
	fix_close(&f);
}

static void test_plumbing_rollout(void) { plumbing(LVD_MCV_MAP_ROLLOUT); }
static void test_plumbing_official(void) { plumbing(LVD_MCV_MAP_OFFICIAL); }

/* total = ce_scale·CE + λ·L_att of the current parameters (forward only) */
static double total_of(struct fix *f, struct lvd_minicpmv *m)
{
	struct lvd_lstep_mcv_in in = f->in;
	in.backward = 0;
	struct lvd_lstep_out out;
	struct lvd_error err = { 0 };
	LVD_ASSERTF(lvd_lstep_mcv_run(f->ctx, m, &out, NULL, NULL, &in, &err) == 0, "%s", err.msg);
	return out.total;
}

/* central difference of total along sign(g) on the 6 largest |g| of x[n] vs Σ|g_i|;
 * with `att` the gradient of the same step at λ = 0 (CE alone) must differ there */
static void fd_check(struct fix *f, struct lvd_minicpmv *m, const char *what, float *x, const float *g,
		     const float *g_ce, size_t n)
{
	enum { NP = 6 };
	size_t idx[NP];
	for (int k = 0; k < NP; k++) {
		size_t best = 0;
		double bv = -1;
		for (size_t i = 0; i < n; i++) {
			int used = 0;
			for (int j = 0; j < k; j++)
				used |= idx[j] == i;
			if (!used && fabs(g[i]) > bv)
				bv = fabs(g[i]), best = i;
		}
		idx[k] = best;
	}
	double an = 0, an_ce = 0, h = 1e-3;
	float x0[NP];
	for (int k = 0; k < NP; k++) {
		const double s = g[idx[k]] >= 0 ? 1.0 : -1.0;
		an += s * g[idx[k]];
		an_ce += s * g_ce[idx[k]];
		x0[k] = x[idx[k]];
	}
	for (int k = 0; k < NP; k++)
		x[idx[k]] = x0[k] + (float)(h * (g[idx[k]] >= 0 ? 1 : -1));
	double jp = total_of(f, m);
	for (int k = 0; k < NP; k++)
		x[idx[k]] = x0[k] - (float)(h * (g[idx[k]] >= 0 ? 1 : -1));
	double jm = total_of(f, m);
	for (int k = 0; k < NP; k++)
		x[idx[k]] = x0[k];
	const double fd = (jp - jm) / (2 * h);
	fprintf(stderr, "  %-48s fd %.6g analytic %.6g (CE part %.6g)\n", what, fd, an, an_ce);
	CHECKF(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-4, "%s: finite difference %.6g vs gradient %.6g", what, fd, an);
	/* the Lavender term moves these gradients: the test would see a missing dA */
	CHECKF(fabs(an - an_ce) > 0.1 * fabs(an), "%s: the L_att part is negligible (%.6g of %.6g)", what, an - an_ce,
	       an);
}

/* runs the step with backward (λ as given) on zeroed gradients */
static void step_grads(struct fix *f, struct lvd_minicpmv *m, float lambda)
{
	struct lvd_lstep_mcv_in in = f->in;
	in.lambda = lambda;
	struct lvd_lstep_out out;
	struct lvd_error err = { 0 };
	lvd_minicpmv_zero_grads(m);
	lvd_minicpmv_vision_zero_grads(m);
	LVD_ASSERTF(lvd_lstep_mcv_run(f->ctx, m, &out, NULL, NULL, &in, &err) == 0, "%s", err.msg);
}

/* parameter x[n] with gradient array grad[n] (kept by the model across steps): its
 * gradient at λ = 0 (CE alone) and at λ = 10, then fd_check */
static void fd_param(struct fix *f, struct lvd_minicpmv *m, const char *what, float *x, const float *grad, size_t n)
{
	float *gce = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
	REQUIRE(gce && g);
	step_grads(f, m, 0.0f);
	memcpy(gce, grad, n * sizeof(float));
	step_grads(f, m, 10.0f);
	memcpy(g, grad, n * sizeof(float));
	fd_check(f, m, what, x, g, gce, n);
	free(gce), free(g);
}

/* (b) full fine-tuning: a few LLM weights of the attention (the only path from the LLM
 * weights into L_att) */
static void fd_full(enum lvd_mcv_map map)
{
	struct fix f;
	OPEN_OR_SKIP(&f, map);
	struct lvd_minicpmv *m = load_model(&f);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_enable_grads(m, &err) == 0);
	static const char *const names[] = { "llm.model.layers.0.self_attn.q_proj.weight",
					     "llm.model.layers.1.self_attn.k_proj.weight",
					     "llm.model.layers.0.self_attn.v_proj.weight" };
	for (int i = 0; i < 3; i++) {
		const int l = names[i][17] - '0';
		const struct lvd_llama_layer_w *w = &m->w.tl[l];
		float *x = (float *)(i == 0 ? w->q : i == 1 ? w->k : w->v);   /* the converted (bf16) block: writable */
		size_t n = 0;
		const float *gp = lvd_minicpmv_llm_grad(m, names[i], &n);
		REQUIRE(gp);
		fd_param(&f, m, names[i], x, gp, n);
	}
	lvd_minicpmv_free(m);
	fix_close(&f);
}

/* (b) LoRA on q, k, v, o (no dropout): A and B of two adapters, B made non-zero */
static void fd_lora(enum lvd_mcv_map map)
{
	struct fix f;
	OPEN_OR_SKIP(&f, map);
	struct lvd_minicpmv *m = load_model(&f);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.0f, 0, "q_proj,k_proj,v_proj,o_proj", 3 };
	REQUIRE(lvd_minicpmv_add_lora(m, &lc, &err) == 0);
	uint32_t seed = 99;
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, i);
		for (size_t j = 0; j < (size_t)4 * L->out; j++)
			L->B[j] = 0.05f * (urand(&seed) - 0.5f);
	}
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, i);
		if (!((L->layer == 0 && L->site == 0) || (L->layer == 1 && L->site == 1)))
			continue;   /* layer 0 q_proj, layer 1 k_proj */
		for (int ab = 0; ab < 2; ab++) {
			const size_t n = ab ? (size_t)L->out * 4 : (size_t)4 * L->in;
			char what[128];
			snprintf(what, sizeof what, "%s.lora_%c", L->module, ab ? 'B' : 'A');
			fd_param(&f, m, what, ab ? L->B : L->A, ab ? L->dB : L->dA, n);
		}
	}
	lvd_minicpmv_free(m);
	fix_close(&f);
}

/* (b) the resampler and vision tower training (lvd_minicpmv_vision_train): the step runs
 * their backward from the embeddings' gradient and, with the rollout map, λ·∂L_att/∂Rr —
 * a few resampler weights and one vision weight */
static void fd_vision(enum lvd_mcv_map map)
{
	struct fix f;
	OPEN_OR_SKIP(&f, map);
	struct lvd_minicpmv *m = load_model(&f);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_vision_train(m, 1, &err) == 0);
	const struct lvd_minicpmv_vparam *vp = NULL;
	const int np = lvd_minicpmv_vision_params(m, &vp);
	REQUIRE(np > 0 && vp);
	static const char *const names[] = { "resampler.query", "resampler.kv_proj.weight", "resampler.attn.in_proj_weight",
					     "vpm.encoder.layers.0.self_attn.k_proj.weight" };
	for (int i = 0; i < 4; i++) {
		const struct lvd_minicpmv_vparam *p = NULL;
		for (int j = 0; j < np; j++)
			if (!strcmp(vp[j].name, names[i]))
				p = &vp[j];
		CHECKF(p != NULL, "no parameter %s", names[i]);
		if (!p)
			continue;
		fd_param(&f, m, names[i], (float *)p->data, p->grad, p->n);   /* the converted (bf16) block: writable */
	}
	lvd_minicpmv_free(m);
	fix_close(&f);
}

static void test_fd_vision_rollout(void) { fd_vision(LVD_MCV_MAP_ROLLOUT); }
static void test_fd_vision_official(void) { fd_vision(LVD_MCV_MAP_OFFICIAL); }
static void test_fd_full_rollout(void) { fd_full(LVD_MCV_MAP_ROLLOUT); }
static void test_fd_full_official(void) { fd_full(LVD_MCV_MAP_OFFICIAL); }
static void test_fd_lora_rollout(void) { fd_lora(LVD_MCV_MAP_ROLLOUT); }
static void test_fd_lora_official(void) { fd_lora(LVD_MCV_MAP_OFFICIAL); }

/* (c) error paths: each a clear LVD_ERR_INVALID naming the sample */
static void test_errors(void)
{
	struct fix f;
	OPEN_OR_SKIP(&f, LVD_MCV_MAP_ROLLOUT);
	struct lvd_minicpmv *m = load_model(&f);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	struct lvd_lstep_out out;
	struct lvd_lstep_mcv_in in = f.in;
	in.backward = 0;
	/* words but no rows */
	f.s[1].R = 0;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 1 has 2 words but no capture rows");
	f.s[1].R = 3;
	/* a matched word whose target is not a valid map */
	f.targets[2][7] = NAN;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 1 word 0: target cell (1, 2) is not finite");
	f.targets[2][7] = 0.5f;
	/* a row inside the pictures (sees only part of them) */
	f.rows0[0] = 15;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 0 row 0 is token 15, outside [20, 24)");
	f.rows0[0] = 20;
	/* a word row beyond the sample's rows (latt's check, prefixed) */
	f.wr[6] = 3;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 1");
	CHECK_CONTAINS(err.msg, "row 3 out of range");
	f.wr[6] = 1;
	/* a slice grid that does not match the pictures */
	f.s[1].cols = f.s[1].rows = 1;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 1");
	f.s[1].cols = f.s[1].rows = 0;
	/* layers vs cfg */
	in.n_layers = 1;
	CHECK(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "cfg.n_captured 2");
	in.n_layers = 2;
	/* fixed again: it runs; a sample without words adds nothing */
	REQUIRE(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == 0);
	CHECK(out.n_pairs == 4);
	f.s[0].W = 0;
	REQUIRE(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == 0);
	CHECK(out.n_pairs == 2 && out.latt > 0);
	f.s[1].W = 0;
	REQUIRE(lvd_lstep_mcv_run(f.ctx, m, &out, NULL, NULL, &in, &err) == 0);
	CHECK(out.n_pairs == 0 && out.latt == 0 && out.total == 0.5 * out.ce && out.ce > 0);
	lvd_minicpmv_free(m);
	fix_close(&f);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_plumbing_rollout), TEST(test_plumbing_official), TEST(test_fd_full_rollout),
		TEST(test_fd_full_official), TEST(test_fd_lora_rollout), TEST(test_fd_lora_official),
		TEST(test_fd_vision_rollout), TEST(test_fd_vision_official),
		TEST(test_errors), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
