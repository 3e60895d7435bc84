/* tests/unit/test_mcv_maps.c — the MiniCPM map modes (lib/lavender/mcv_maps.h) and the
 * Lavender loss on them (lib/lavender/latt.h, geom.kind = LVD_LATT_GEOM_MINICPM) against
 * tests/golden/mcv_maps/golden.safetensors (tests/ref/gen_mcv_maps.py: float64 PyTorch
 * autograd of the official pseudo-grid and of the rollout, with the loss of
 * gen_lavender.py), tensor by tensor; finite differences of the whole L_att; the maps'
 * exact adjoint in A and in the resampler probabilities; accumulation and NULL rules;
 * the geometry errors.
 *
 * Dimension letters: H heads, R rows, NI pictures, Q tokens per picture, Hr resampler
 * heads, Lmax the resampler's patch axis, L layers, W words, V views, N the grid. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "golden_util.h"
#include "latt_golden.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"
#include "lavender/mcv_maps.h"
#include "nn/ctx.h"

#define M_H 4
#define M_HR 2
#define M_Q 6
#define M_LC 2
#define M_R 3
#define M_NS 3

static struct lvd_st *g_st;

static int gold_load(void)
{
	if (g_st)
		return 1;
	struct lvd_error e;
	return lvd_st_open(&g_st, lvd_test_path("tests/golden/mcv_maps/golden.safetensors"), &e) == LVD_OK;
}

#define NEED_GOLD() \
	do { if (!gold_load()) SKIP("tests/golden/mcv_maps/golden.safetensors missing (make golden)"); } while (0)

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

/* ---- the golden cases ----------------------------------------------------------------- */

struct msample {
	struct lvd_latt_sample s;
	float *A, *Rr;            /* [LC, H, R, n2], [NI, Hr, Q, Lmax] */
	float *Apl[M_LC];
	uint8_t *mask;
	float *targets;
	int *rows, *rows_off, *matched;
	struct lvd_latt_word words[8];
	size_t nA, nR;
};

struct mcase {
	struct lvd_latt_cfg cfg;
	float *params;
	size_t n_params;
	struct msample sm[M_NS];
	double loss;
};

static void free_case(struct mcase *c)
{
	free(c->params);
	for (int b = 0; b < M_NS; b++) {
		struct msample *m = &c->sm[b];
		free(m->A);
		free(m->Rr);
		free(m->mask);
		free(m->targets);
		free(m->rows);
		free(m->rows_off);
		free(m->matched);
	}
}

static int g_lean; /* cfg.lean for the cases loaded next */

static void load_case(struct mcase *c, int ci)
{
	char k[128];
	memset(c, 0, sizeof *c);
	int mode, grid;
	c->loss = lvd_tg_case(g_st, ci, &c->cfg, &c->params, &c->n_params, M_H, M_LC, g_lean, &mode, &grid);
	struct lvd_error e;
	size_t n;
	for (int b = 0; b < M_NS; b++) {
		struct msample *m = &c->sm[b];
		snprintf(k, sizeof k, "s%d.geom", b);
		float *gf = lvd_gold_f32(g_st, k, &n);
		REQUIRE(gf && n >= 6);
		struct lvd_latt_geom *G = &m->s.geom;
		G->kind = LVD_LATT_GEOM_MINICPM;
		G->heads = M_H;
		G->grid = grid;
		G->mcv.mode = (enum lvd_mcv_map)mode;
		G->mcv.n_pics = (int)gf[0];
		G->mcv.cols = (int)gf[1];
		G->mcv.rows = (int)gf[2];
		G->mcv.Lmax = (int)gf[3];
		G->mcv.Q = M_Q;
		G->mcv.Hr = M_HR;
		REQUIRE(n == 4 + 2 * (size_t)G->mcv.n_pics);
		for (int i = 0; i < G->mcv.n_pics; i++) {
			G->mcv.th[i] = (int)gf[4 + 2 * i];
			G->mcv.tw[i] = (int)gf[5 + 2 * i];
		}
		free(gf);
		G->S = G->mcv.n_pics * M_Q;
		REQUIRE(lvd_latt_geom_check(G, &e) == LVD_OK);
		snprintf(k, sizeof k, "s%d.A", b);
		m->A = lvd_gold_f32(g_st, k, &m->nA);
		REQUIRE(m->A && m->nA == (size_t)M_LC * M_H * M_R * G->S);
		for (int i = 0; i < M_LC; i++)
			m->Apl[i] = m->A + (size_t)i * M_H * M_R * G->S;
		snprintf(k, sizeof k, "s%d.Rr", b);
		m->Rr = lvd_gold_f32(g_st, k, &m->nR);
		REQUIRE(m->Rr && m->nR == (size_t)G->mcv.n_pics * M_HR * M_Q * G->mcv.Lmax);
		const size_t hw = (size_t)grid * grid;
		m->mask = malloc(hw);
		lvd_latt_mask(G, m->mask);
		snprintf(k, sizeof k, "s%d.g%d.targets", b, grid);
		m->targets = lvd_gold_f32(g_st, k, NULL);
		snprintf(k, sizeof k, "s%d.rows", b);
		m->rows = lvd_gold_i32(g_st, k);
		snprintf(k, sizeof k, "s%d.rows_off", b);
		float *ro = lvd_gold_f32(g_st, k, &n);
		free(ro);
		m->rows_off = lvd_gold_i32(g_st, k);
		const int W = (int)n - 1;
		snprintf(k, sizeof k, "s%d.matched", b);
		m->matched = lvd_gold_i32(g_st, k);
		REQUIRE(m->targets && m->rows && m->rows_off && m->matched && W >= 1 && W <= 8);
		lvd_tg_words(m->words, W, m->rows, m->rows_off, m->matched, m->targets, hw);
		m->s.R = M_R;
		m->s.probs = (const float *const *)m->Apl;
		m->s.mask = m->mask;
		m->s.W = W;
		m->s.words = m->words;
		m->s.rprobs = m->Rr;
		REQUIRE(lvd_latt_sample_check(&m->s, &c->cfg, &e) == LVD_OK);
	}
}

static int n_pairs(const struct mcase *c)
{
	int n = 0;
	for (int b = 0; b < M_NS; b++)
		for (int w = 0; w < c->sm[b].s.W; w++)
			n += c->sm[b].words[w].target != NULL;
	return n;
}

static void cmp(const char *what, int ci, int b, const float *got, size_t n, double atol, double rtol)
{
	lvd_tg_cmp(g_st, ci, b, what, got, n, atol, rtol);
}

/* Every intermediate, the loss and the gradients of one case.
 * Tolerances (|diff| <= atol + rtol·max|want|), reasons:
 *   maps        rtol 2e-6: rollout = fp32 GEMMs of Q = 6 products with the fp32 head mean
 *               of Rr, then lvd_resample_areaw's fp32 row pass; official = latt's
 *               official path (fp32 interpolation and horizontal pass); the reference
 *               is float64;
 *   aligned, agg, rows, words, word_loss, loss, dparams: as test_lavender.c (the same
 *               Aligner and grouping code on fp32 inputs);
 *   dA, dRr     rtol 5e-5 of the tensor's largest entry: fp32 backward through the two
 *               min-max divisions and the norms, then the GEMMs (order differs). */
static void run_golden_case(int ci, int threads)
{
	NEED_GOLD();
	struct lvd_ctx *ctx = mkctx(threads);
	REQUIRE(ctx);
	struct mcase c;
	load_case(&c, ci);
	const int L = c.cfg.n_layers ? c.cfg.n_layers : c.cfg.n_captured;
	const int before = c.cfg.agg >= LVD_LATT_MEAN_BEFORE;
	float *dparams = calloc(c.n_params, sizeof *dparams);
	double loss = 0;
	const double pairs = n_pairs(&c);
	for (int b = 0; b < M_NS; b++) {
		struct msample *m = &c.sm[b];
		const struct lvd_latt_geom *G = &m->s.geom;
		const int V = lvd_latt_views(G);
		CHECK(V == (G->mcv.mode == LVD_MCV_MAP_ROLLOUT && G->mcv.cols ? 2 : 1));
		const size_t hw = (size_t)G->gh * G->gw, W = (size_t)m->s.W, RV = (size_t)V * M_R;
		float *dA = calloc(m->nA, sizeof *dA), *dRr = calloc(m->nR, sizeof *dRr);
		float *dpl[M_LC];
		for (int l = 0; l < M_LC; l++)
			dpl[l] = dA + (size_t)l * M_H * M_R * G->S;
		m->s.drprobs = dRr;
		struct lvd_latt_trace tr;
		lvd_tg_trace_alloc(&tr, L, before ? 1 : L, RV, V * W, M_H, hw);
		int got_m = lvd_latt_sample_loss(ctx, &loss, dparams, dpl, &m->s, c.params, &c.cfg, pairs, 1.0f, &tr);
		m->s.drprobs = NULL;
		int want_m = 0;
		for (size_t w = 0; w < W; w++)
			want_m += m->matched[w] != 0;
		CHECK(got_m == want_m);
		cmp("maps", ci, b, tr.maps, (size_t)L * RV * M_H * hw, 0, 2e-6);
		cmp("aligned", ci, b, tr.aligned, (size_t)(before ? 1 : L) * RV * hw, 0, 1e-5);
		cmp("agg", ci, b, tr.agg, RV * hw, 0, 1e-5);
		cmp("rows", ci, b, tr.rows, RV * hw, 2e-5, 0);
		cmp("words", ci, b, tr.words, V * W * hw, 2e-5, 0);
		cmp("word_loss", ci, b, tr.word_loss, V * W, 0, 1e-5);
		cmp("dA", ci, b, dA, m->nA, 0, 5e-5);
		cmp("dRr", ci, b, dRr, m->nR, 0, 5e-5);
		/* the padding columns of dRr are never written */
		for (int k = 0; k < G->mcv.n_pics; k++) {
			const int np = G->mcv.th[k] * G->mcv.tw[k];
			for (size_t i = 0; i < (size_t)M_HR * M_Q; i++)
				for (int p = np; p < G->mcv.Lmax; p++)
					CHECK(dRr[((size_t)k * M_HR * M_Q + i) * G->mcv.Lmax + p] == 0.0f);
		}
		/* the evaluation API gives the traced word maps (V·W of them) */
		float *wa = malloc(V * W * hw * sizeof(float)), *wr = malloc(V * W * hw * sizeof(float));
		lvd_latt_word_maps(ctx, wa, wr, &m->s, c.params, &c.cfg);
		CHECK(!memcmp(wa, tr.words, V * W * hw * sizeof(float)));
		CHECK(!memcmp(wr, tr.raw_words, V * W * hw * sizeof(float)));
		lvd_latt_raw_word_maps(ctx, NULL, wa, &m->s, &c.cfg);
		CHECK(!memcmp(wa, tr.raw_words, V * W * hw * sizeof(float)));
		free(wa);
		free(wr);
		lvd_tg_trace_free(&tr);
		free(dA);
		free(dRr);
	}
	CHECK_NEAR(loss, c.loss, 1e-5 * c.loss);
	lvd_tg_check_dparams(g_st, ci, &c.cfg, dparams);
	free(dparams);
	free_case(&c);
	lvd_ctx_destroy(ctx);
}

static void test_golden_rollout(void) { run_golden_case(0, 1); }
static void test_golden_rollout_deep_max_before(void) { run_golden_case(1, 1); }
static void test_golden_official_shrink(void) { run_golden_case(2, 1); }
static void test_golden_official_light_max(void) { run_golden_case(3, 1); }
static void test_golden_threads(void) { run_golden_case(0, 2); }
static void test_golden_lean(void)
{
	g_lean = 1;
	run_golden_case(0, 1);
	run_golden_case(3, 2);
	g_lean = 0;
}

/* ---- finite differences of the whole L_att ---------------------------------------------- */

static double batch_loss(struct lvd_ctx *ctx, struct mcase *c, float *dparams, float *const *const *dprobs)
{
	struct lvd_latt_sample s[M_NS];
	for (int b = 0; b < M_NS; b++)
		s[b] = c->sm[b].s;
	return lvd_latt_loss(ctx, dparams, dprobs, s, M_NS, c->params, &c->cfg, 0, 1.0f, NULL);
}

static double fd_at(struct lvd_ctx *ctx, struct mcase *c, float *x, float h)
{
	const float x0 = *x;
	*x = x0 + h;
	double lp = batch_loss(ctx, c, NULL, NULL);
	*x = x0 - h;
	double lm = batch_loss(ctx, c, NULL, NULL);
	*x = x0;
	return (lp - lm) / (2.0 * (double)h);
}

/* Central differences on the 6 entries of largest |gradient| of x[n] (g the analytic
 * gradient, consumed), each with step h and 10·h, passing within 2% + 2e-3·max|g| as in
 * test_lavender.c. The loss is only piecewise smooth (ReLU6, min-max and max switches):
 * in case 0 the A entry 152 sits within 3e-6 of a kink (central differences give -0.124
 * for every h in [3e-6, 8e-5], the analytic -0.1151, which the float64 autograd golden
 * confirms to 5e-5), so one entry in six may miss; a wrong gradient misses them all. */
static void fd_entries(struct lvd_ctx *ctx, struct mcase *c, float *x, float *g, size_t n, float h,
		       const char *what)
{
	const double gmax = lvd_gold_max_abs(g, n);
	CHECK(gmax > 0);
	int ok = 0;
	for (int rep = 0; rep < 6; rep++) {
		size_t best = 0;
		for (size_t i = 0; i < n; i++)
			if (fabs(g[i]) > fabs(g[best]))
				best = i;
		const double gv = g[best], tol = 0.02 * fabs(gv) + 2e-3 * gmax;
		g[best] = 0;
		double fd = fd_at(ctx, c, &x[best], h);
		if (fabs(fd - gv) > tol)
			fd = fd_at(ctx, c, &x[best], 10 * h);
		if (fabs(fd - gv) <= tol)
			ok++;
		else
			fprintf(stderr, "  note: %s %zu: fd %.6g vs grad %.6g (a kink?)\n", what, best, fd, gv);
	}
	CHECKF(ok >= 5, "%s: %d of 6 entries agree with central differences", what, ok);
}

/* sample 0 (1 source + 2×2 slices): A of both layers and Rr */
static void fd_case(int ci)
{
	NEED_GOLD();
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	struct mcase c;
	load_case(&c, ci);
	struct msample *m = &c.sm[0];
	float *dA = calloc(m->nA, sizeof *dA), *dRr = calloc(m->nR, sizeof *dRr);
	float *dpl[M_LC];
	for (int l = 0; l < M_LC; l++)
		dpl[l] = dA + (size_t)l * M_H * M_R * m->s.geom.S;
	float *const *dp[M_NS] = { dpl, NULL, NULL };
	m->s.drprobs = dRr;
	double L0 = batch_loss(ctx, &c, NULL, dp);
	m->s.drprobs = NULL;
	CHECK_NEAR(L0, c.loss, 1e-5 * c.loss);
	fd_entries(ctx, &c, m->A, dA, m->nA, 3e-5f, "A");
	if (m->s.geom.mcv.mode == LVD_MCV_MAP_ROLLOUT)
		fd_entries(ctx, &c, m->Rr, dRr, m->nR, 3e-5f, "Rr");
	else
		CHECK(lvd_gold_max_abs(dRr, m->nR) == 0);
	free(dA);
	free(dRr);
	free_case(&c);
	lvd_ctx_destroy(ctx);
}

static void test_fd_rollout(void) { fd_case(0); }
static void test_fd_official(void) { fd_case(2); }

/* ---- the maps alone: exact adjoint, accumulation, NULL rules ------------------------- */

static float urand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((*s >> 40) & 0xffffff) / 16777216.0f;
}

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* <maps(A, R̄(Rr)), D> = <A, dA> = <R̄, dR̄> = <Rr, dRr> (the maps are linear in A and in
 * R̄, R̄ linear in Rr, so the backward is exact iff these hold), and dRr's padding columns
 * keep their old values */
static void adjoint_case(enum lvd_mcv_map mode, int cols, int rows, int N)
{
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	struct lvd_mcv_geom g;
	memset(&g, 0, sizeof g);
	g.mode = mode;
	g.heads = 3;
	g.cols = cols;
	g.rows = rows;
	g.n_pics = 1 + cols * rows;
	g.Q = 5;
	g.Hr = 3;
	g.Lmax = 13;
	g.grid = N;
	g.th[0] = 3;
	g.tw[0] = 4;
	for (int k = 1; k < g.n_pics; k++) {
		g.th[k] = 2;
		g.tw[k] = 3;
	}
	struct lvd_error e;
	REQUIRE(lvd_mcv_geom_check(&g, &e) == LVD_OK);
	const int R = 2, V = g.views;
	const size_t nA = (size_t)g.heads * R * g.n2, nR = (size_t)g.n_pics * g.Hr * g.Q * g.Lmax;
	const size_t nO = (size_t)V * R * g.heads * N * N;
	float *A = malloc(nA * 4), *Rr = malloc(nR * 4), *D = malloc(nO * 4), *O = malloc(nO * 4);
	float *dA = calloc(nA, 4), *dRr = malloc(nR * 4), *dA2 = calloc(nA, 4), *dRr2 = calloc(nR, 4);
	const size_t nb = mode == LVD_MCV_MAP_ROLLOUT ? lvd_mcv_rbar_floats(&g) : 1;
	float *rb = calloc(nb, 4), *drb = calloc(nb, 4), *drb2 = calloc(nb, 4);
	uint64_t s = 42;
	for (size_t i = 0; i < nA; i++)
		A[i] = urand(&s);
	for (size_t i = 0; i < nR; i++) {
		Rr[i] = urand(&s);
		dRr[i] = 0;
	}
	for (size_t i = 0; i < nO; i++)
		D[i] = urand(&s) - 0.5f;
	/* padding columns: junk in Rr (ignored) and a sentinel in dRr (kept) */
	for (int k = 0; k < g.n_pics; k++)
		for (int i = 0; i < g.Hr * g.Q; i++)
			for (int p = g.th[k] * g.tw[k]; p < g.Lmax; p++) {
				Rr[((size_t)k * g.Hr * g.Q + i) * g.Lmax + p] = 1e6f;
				dRr[((size_t)k * g.Hr * g.Q + i) * g.Lmax + p] = 7.0f;
			}
	if (mode == LVD_MCV_MAP_ROLLOUT)
		lvd_mcv_rbar_fwd(ctx, rb, Rr, &g);
	lvd_mcv_maps_fwd(ctx, O, A, mode == LVD_MCV_MAP_ROLLOUT ? rb : NULL, &g, R);
	lvd_mcv_maps_bwd(ctx, dA, drb, D, A, rb, &g, R);
	if (mode == LVD_MCV_MAP_ROLLOUT)
		lvd_mcv_rbar_bwd(dRr, drb, &g);
	const double od = dot(O, D, nO);
	if (mode == LVD_MCV_MAP_ROLLOUT)
		CHECKF(fabs(dot(rb, drb, nb) - od) <= 1e-5 * fabs(od) + 1e-6, "<rbar, drbar> %.9g vs <maps, D> %.9g",
		       dot(rb, drb, nb), od);
	else
		CHECK(lvd_gold_max_abs(drb, nb) == 0);
	CHECKF(fabs(dot(A, dA, nA) - od) <= 1e-5 * fabs(od) + 1e-6, "<A, dA> %.9g vs <maps, D> %.9g", dot(A, dA, nA),
	       od);
	double rd = 0;
	int kept = 1;
	for (int k = 0; k < g.n_pics; k++)
		for (int i = 0; i < g.Hr * g.Q; i++)
			for (int p = 0; p < g.Lmax; p++) {
				size_t j = ((size_t)k * g.Hr * g.Q + i) * g.Lmax + p;
				if (p < g.th[k] * g.tw[k])
					rd += (double)Rr[j] * dRr[j];
				else
					kept &= dRr[j] == 7.0f;
			}
	CHECK(kept);
	if (mode == LVD_MCV_MAP_ROLLOUT)
		CHECKF(fabs(rd - od) <= 1e-5 * fabs(od) + 1e-6, "<Rr, dRr> %.9g vs <maps, D> %.9g", rd, od);
	else
		CHECK(rd == 0);
	/* NULL rules and accumulation: dA alone and dR̄ alone give the same; twice doubles */
	lvd_mcv_maps_bwd(ctx, dA2, NULL, D, A, rb, &g, R);
	CHECK(!memcmp(dA, dA2, nA * 4));
	lvd_mcv_maps_bwd(ctx, dA2, NULL, D, A, rb, &g, R);
	int twice = 1;
	for (size_t i = 0; i < nA; i++)
		twice &= fabsf(dA2[i] - 2 * dA[i]) <= 1e-6f * fabsf(dA[i]) + 1e-9f;
	CHECK(twice);
	if (mode == LVD_MCV_MAP_ROLLOUT) {
		lvd_mcv_maps_bwd(ctx, NULL, drb2, D, A, rb, &g, R);
		CHECK(!memcmp(drb, drb2, nb * 4));
		lvd_mcv_rbar_bwd(dRr2, drb2, &g);
		int same = 1;
		for (int k = 0; k < g.n_pics; k++)
			for (int i = 0; i < g.Hr * g.Q; i++)
				for (int p = 0; p < g.th[k] * g.tw[k]; p++) {
					size_t j = ((size_t)k * g.Hr * g.Q + i) * g.Lmax + p;
					same &= dRr2[j] == dRr[j];
				}
		CHECK(same);
	}
	/* the source view alone equals the one-picture geometry's map of picture 0 */
	if (mode == LVD_MCV_MAP_ROLLOUT && V == 2) {
		struct lvd_mcv_geom g1 = g;
		g1.cols = g1.rows = 0;
		g1.n_pics = 1;
		REQUIRE(lvd_mcv_geom_check(&g1, &e) == LVD_OK);
		float *A1 = malloc((size_t)g.heads * R * g.Q * 4), *O1 = malloc(nO / 2 * 4);
		for (size_t hr = 0; hr < (size_t)g.heads * R; hr++)
			memcpy(A1 + hr * g.Q, A + hr * g.n2, (size_t)g.Q * 4);
		lvd_mcv_maps_fwd(ctx, O1, A1, rb, &g1, R);
		CHECK_CLOSE("source view", O1, O, nO / 2, 0, 1e-6);
		free(A1);
		free(O1);
	}
	free(A);
	free(Rr);
	free(D);
	free(O);
	free(dA);
	free(dRr);
	free(dA2);
	free(dRr2);
	free(rb);
	free(drb);
	free(drb2);
	lvd_ctx_destroy(ctx);
}

static void test_adjoint_rollout_slices(void) { adjoint_case(LVD_MCV_MAP_ROLLOUT, 2, 2, 5); }
static void test_adjoint_rollout_source(void) { adjoint_case(LVD_MCV_MAP_ROLLOUT, 0, 0, 7); }
static void test_adjoint_rollout_wide(void) { adjoint_case(LVD_MCV_MAP_ROLLOUT, 3, 1, 4); }
static void test_adjoint_official(void) { adjoint_case(LVD_MCV_MAP_OFFICIAL, 1, 2, 6); }

/* ---- errors ---------------------------------------------------------------------------- */

static void test_geometry_errors(void)
{
	struct lvd_error e;
	struct lvd_mcv_geom g;
	memset(&g, 0, sizeof g);
	g.heads = 4;
	g.Q = 96;
	g.cols = 2;
	g.rows = 2;
	g.n_pics = 5;
	g.Hr = 2;
	g.Lmax = 20;
	g.grid = 32;
	g.th[0] = 4;
	g.tw[0] = 5;
	for (int k = 1; k < 5; k++) {
		g.th[k] = 3;
		g.tw[k] = 3;
	}
	struct lvd_mcv_geom t = g;
	REQUIRE(lvd_mcv_geom_check(&t, &e) == LVD_OK);
	CHECK(t.n2 == 480 && t.views == 2 && t.ores == 22);
	t = g;
	t.n_pics = 4;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "4 pictures");
	t = g;
	t.th[3] = 2;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "slice 3");
	t = g;
	t.tw[0] = 6;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "picture 0");
	t = g;
	t.rows = 0;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "slice grid");
	t = g;
	t.grid = 0;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_ERR_INVALID);
	t = g;
	t.mode = LVD_MCV_MAP_OFFICIAL; /* official needs no tgt sizes */
	t.th[2] = 0;
	CHECK(lvd_mcv_geom_check(&t, &e) == LVD_OK && t.views == 1);
	enum lvd_mcv_map mm;
	CHECK(lvd_mcv_parse_map("official", &mm, &e) == LVD_OK && mm == LVD_MCV_MAP_OFFICIAL);
	CHECK(lvd_mcv_parse_map("rollout", &mm, &e) == LVD_OK && mm == LVD_MCV_MAP_ROLLOUT);
	CHECK(lvd_mcv_parse_map("square", &mm, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "square");

	/* through latt: key length, grid, the resampler probabilities */
	struct lvd_latt_geom lg;
	memset(&lg, 0, sizeof lg);
	lg.kind = LVD_LATT_GEOM_MINICPM;
	lg.heads = 4;
	lg.S = 480;
	lg.grid = 8;
	lg.mcv = g;
	struct lvd_latt_geom u = lg;
	REQUIRE(lvd_latt_geom_check(&u, &e) == LVD_OK);
	CHECK(u.gh == 8 && u.gw == 8 && lvd_latt_views(&u) == 2 && u.mcv.grid == 8 && u.mcv.heads == 4);
	u = lg;
	u.S = 500;
	CHECK(lvd_latt_geom_check(&u, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "key length 500");
	u = lg;
	u.grid = 0;
	CHECK(lvd_latt_geom_check(&u, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "grid");
	u = lg;
	u.kind = (enum lvd_latt_geom_kind)7;
	CHECK(lvd_latt_geom_check(&u, &e) == LVD_ERR_INVALID);
	u = lg;
	REQUIRE(lvd_latt_geom_check(&u, &e) == LVD_OK);
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, 4, 1);
	uint8_t mask[64];
	lvd_latt_mask(&u, mask);
	float a[4];
	const float *pl[1] = { a };
	int row = 0;
	struct lvd_latt_word w = { 1, &row, NULL };
	struct lvd_latt_sample smp = { .geom = u, .R = 1, .probs = pl, .mask = mask, .W = 1, .words = &w };
	CHECK(lvd_latt_sample_check(&smp, &cfg, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "resampler probabilities");
	smp.rprobs = a;
	CHECK(lvd_latt_sample_check(&smp, &cfg, &e) == LVD_OK);
	smp.geom.mcv.views = 1; /* stale */
	CHECK(lvd_latt_sample_check(&smp, &cfg, &e) == LVD_ERR_INVALID);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_golden_rollout),
		TEST(test_golden_rollout_deep_max_before),
		TEST(test_golden_official_shrink),
		TEST(test_golden_official_light_max),
		TEST(test_golden_threads),
		TEST(test_golden_lean),
		TEST(test_fd_rollout),
		TEST(test_fd_official),
		TEST(test_adjoint_rollout_slices),
		TEST(test_adjoint_rollout_source),
		TEST(test_adjoint_rollout_wide),
		TEST(test_adjoint_official),
		TEST(test_geometry_errors),
		{ 0 },
	};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_st_close(g_st);
	return rc;
}
