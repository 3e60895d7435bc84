/* tests/unit/test_optim.c — the optimiser (lib/nn/ops/adamw.h, lib/train/optim.h,
 * lib/train/sched.h) against PyTorch (tests/golden/optim/golden.safetensors, written by
 * tests/ref/gen_optim.py: torch.optim.AdamW, clip_grad_norm_, StepLR and transformers'
 * warm-up schedules), plus properties: thread-count invariance, step-1 bias
 * correction, zero gradients, weight decay alone, clipping, schedule parsing.
 *
 * Tolerances and why:
 *   - moments after the last golden step: bit-exact without clipping (case b). The
 *     kernel performs torch's fp32 operations in torch's order, fma where torch's AVX2
 *     lerp and addcmul use one, and m, v depend on nothing else. With clipping (case a)
 *     1e-6 of the tensor's scale: the gradients carry the clip coefficient's error.
 *   - parameters after each golden step, continuing from torch's parameters each step
 *     (teacher forcing, so one-ulp flips do not random-walk): one ulp of the parameter
 *     plus two ulps of lr. The one operation we cannot reproduce is torch's CPU sqrt,
 *     which goes through MKL VML and is not correctly rounded (measured: 17% of values
 *     one ulp away from the IEEE sqrt); that moves the update by an ulp of the update
 *     (≈ lr), which shows as one ulp of a large parameter or several ulps of a small
 *     one. Measured: 14 + 4 of 6660 values differ, none beyond the bound.
 *   - total gradient norm: relative 1e-6 (~8 ulps): torch sums squares in fp32 lanes
 *     (machine-dependent vector width), we sum in double.
 *   - learning rates: relative 1e-15 (double; same formulas, libm cos/pow may differ by
 *     an ulp between C libraries). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "nn/ctx.h"
#include "nn/ops/adamw.h"
#include "train/optim.h"
#include "train/sched.h"

static struct lvd_ctx *make_ctx(int threads)
{
	struct lvd_ctx_opts o = {.threads = threads, .ws_bytes = 64u << 20};
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = {0};
	if (lvd_ctx_create(&ctx, &o, &err))
		return NULL;
	return ctx;
}

/* distance in representable fp32 values (0 for equal, also +0/-0) */
static int64_t ulp_dist(float a, float b)
{
	int32_t ia, ib;
	memcpy(&ia, &a, 4);
	memcpy(&ib, &b, 4);
	int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
	int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
	return oa > ob ? oa - ob : ob - oa;
}

static int64_t max_ulp(const float *a, const float *b, size_t n)
{
	int64_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(a[i]) || isnan(b[i]))
			return INT64_MAX;
		int64_t d = ulp_dist(a[i], b[i]);
		if (d > w)
			w = d;
	}
	return w;
}

/* one unit in the last place of |x| (fp32); 0 counts as the smallest normal */
static double ulp_of(float x)
{
	double a = fabs((double)x);
	if (a < 1.17549435e-38)
		a = 1.17549435e-38;
	return ldexp(1.0, ilogb(a) - 23);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)   /* uniform (-1, 1), splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ---- golden ------------------------------------------------------------------- */

static struct lvd_st *gold;

static int gold_open(void)
{
	if (gold)
		return 1;
	struct lvd_error err = {0};
	if (lvd_st_open(&gold, lvd_test_path("tests/golden/optim/golden.safetensors"), &err)) {
		gold = NULL;
		return 0;
	}
	return 1;
}
#define NEED_GOLD() do { if (!gold_open()) SKIP("tests/golden/optim/golden.safetensors missing (make golden)"); } while (0)

/* Copies the tensor into dst (n values of dtype F32 or F64 as asked); REQUIREs it. */
static const struct lvd_tensor_view *gget(const char *name, enum lvd_st_dtype dt, void *dst, size_t n)
{
	const struct lvd_tensor_view *t = lvd_st_find(gold, name);
	CHECKF(t != NULL, "golden tensor %s missing", name);
	if (!t)
		return NULL;
	CHECKF(t->dtype == dt && (size_t)t->numel == n, "golden tensor %s: dtype/size", name);
	if (t->dtype != dt || (size_t)t->numel != n)
		return NULL;
	memcpy(dst, t->data, t->nbytes);
	return t;
}

static void sched_from(struct lvd_sched *s, double lr, double kind, double warmup, double total, double gamma)
{
	memset(s, 0, sizeof *s);
	s->kind = (enum lvd_sched_kind)(int)kind;
	s->lr = lr;
	s->warmup = (int64_t)warmup;
	s->total = (int64_t)total;
	s->step_size = 1;
	s->gamma = gamma;
}

enum { NT = 3 };
static const size_t TSIZE[NT] = {37, 65, 231};

static void golden_case(const char *c)
{
	NEED_GOLD();
	char name[128];
	double cfg[12];
	snprintf(name, sizeof name, "%s.cfg", c);
	REQUIRE(gget(name, LVD_DT_F64, cfg, 12));
	const int T = (int)cfg[9], spe = (int)cfg[10];
	double max_norm = cfg[6];
	struct lvd_sched s;
	sched_from(&s, cfg[0], cfg[7], cfg[8], cfg[9], cfg[11]);
	struct lvd_error err = {0};
	REQUIRE(lvd_sched_check(&s, &err) == 0);

	struct lvd_ctx *ctx = make_ctx(2);
	REQUIRE(ctx);
	/* block 0 = group 0 = tensors 0 and 1 laid end to end; block 1 = group 1 = tensor 2 */
	size_t n0 = TSIZE[0] + TSIZE[1], n1 = TSIZE[2];
	float *p0 = lvd_buf_alloc(ctx, n0 * 4), *g0 = lvd_buf_alloc(ctx, n0 * 4);
	float *p1 = lvd_buf_alloc(ctx, n1 * 4), *g1 = lvd_buf_alloc(ctx, n1 * 4);
	float *want = malloc(n1 * 4);
	REQUIRE(p0 && g0 && p1 && g1 && want);
	float *pt[NT] = {p0, p0 + TSIZE[0], p1}, *gt[NT] = {g0, g0 + TSIZE[0], g1};
	for (int i = 0; i < NT; i++) {
		snprintf(name, sizeof name, "%s.init.%d", c, i);
		REQUIRE(gget(name, LVD_DT_F32, pt[i], TSIZE[i]));
	}
	static const size_t off0[3] = {0, 37, 102};
	struct lvd_param_block blocks[2] = {
		{.name = "g0", .param = p0, .grad = g0, .n = n0, .wd = cfg[4], .tensor_off = off0, .n_tensors = 2},
		{.name = "g1", .param = p1, .grad = g1, .n = n1, .wd = cfg[5]},
	};
	struct lvd_optim_cfg oc = {.beta1 = cfg[1], .beta2 = cfg[2], .eps = cfg[3]};
	struct lvd_optim *opt = NULL;
	REQUIRE(lvd_optim_create(&opt, ctx, blocks, 2, &oc, &err) == 0);

	double lrs[64];
	float norms[64];
	REQUIRE(T <= 64);
	snprintf(name, sizeof name, "%s.lr", c);
	REQUIRE(gget(name, LVD_DT_F64, lrs, (size_t)T));
	snprintf(name, sizeof name, "%s.norm", c);
	REQUIRE(gget(name, LVD_DT_F32, norms, (size_t)T));

	int64_t worst = 0;
	double worst_norm = 0;
	int clipped = 0;
	size_t differ = 0;
	for (int k = 0; k < T; k++) {
		for (int i = 0; i < NT; i++) {
			snprintf(name, sizeof name, "%s.s%d.grad.%d", c, k, i);
			REQUIRE(gget(name, LVD_DT_F32, gt[i], TSIZE[i]));
		}
		double lr = lvd_sched_lr(&s, opt->step, k / spe);
		CHECK_NEAR(lr, lrs[k], 1e-15 * fabs(lrs[k]));
		float before = g1[0];
		float nrm = lvd_optim_clip(ctx, opt, max_norm);
		clipped += g1[0] != before;
		CHECK_NEAR(nrm, norms[k], 1e-6 * norms[k]);
		double rel = fabs((double)nrm - norms[k]) / norms[k];
		if (rel > worst_norm)
			worst_norm = rel;
		lvd_optim_step(ctx, opt, lr);
		/* compare, then continue from torch's parameters (teacher forcing): each step is
		 * measured on its own instead of letting one-ulp flips random-walk */
		for (int i = 0; i < NT; i++) {
			snprintf(name, sizeof name, "%s.s%d.param.%d", c, k, i);
			REQUIRE(gget(name, LVD_DT_F32, want, TSIZE[i]));
			int64_t u = max_ulp(pt[i], want, TSIZE[i]);
			for (size_t e = 0; e < TSIZE[i]; e++) {
				double tol = ulp_of(want[e]) + 2 * ulp_of((float)lr);
				CHECKF(fabs((double)pt[i][e] - want[e]) <= tol,
				       "case %s step %d tensor %d [%zu]: %.9g vs torch %.9g (tol %.3g)",
				       c, k, i, e, pt[i][e], want[e], tol);
			}
			if (u > worst)
				worst = u;
			for (size_t e = 0; e < TSIZE[i]; e++)
				differ += pt[i][e] != want[e];
			memcpy(pt[i], want, TSIZE[i] * 4);
		}
	}
	CHECK(opt->step == T);
	/* moments: they depend on the gradients only, through torch's exact fp32 operations
	 * (lerp and addcmul as fma), so without clipping they must match bit for bit. With
	 * clipping each step's gradients carry the clip coefficient's relative error (that of
	 * the norm, ~1e-7), and m, a sum of cancelling terms, gets it relative to the
	 * gradients' scale, not its own: 1e-6 of the tensor's largest |value|. */
	int64_t mv_worst = 0;
	for (int i = 0; i < NT; i++) {
		size_t o = i == 1 ? TSIZE[0] : 0;
		const float *mv[2] = {opt->m[i == 2] + o, opt->v[i == 2] + o};
		for (int q = 0; q < 2; q++) {
			snprintf(name, sizeof name, "%s.%c.%d", c, q ? 'v' : 'm', i);
			REQUIRE(gget(name, LVD_DT_F32, want, TSIZE[i]));
			int64_t u = max_ulp(mv[q], want, TSIZE[i]);
			if (max_norm > 0)
				CHECK_CLOSE(name, mv[q], want, TSIZE[i], 0.0, 1e-6);
			else
				CHECKF(u == 0, "%s: %lld ulps from torch (must be bit-exact)", name, (long long)u);
			mv_worst = u > mv_worst ? u : mv_worst;
		}
	}
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  golden %s: params max %lld ulp (%zu of %zu values differ), moments max %lld ulp, norm max rel %.2g, clipped %d/%d\n",
			c, (long long)worst, differ, (size_t)T * (n0 + n1), (long long)mv_worst, worst_norm, clipped, T);
	lvd_optim_destroy(ctx, opt);
	lvd_buf_free(ctx, p0);
	lvd_buf_free(ctx, g0);
	lvd_buf_free(ctx, p1);
	lvd_buf_free(ctx, g1);
	free(want);
	lvd_ctx_destroy(ctx);
}

static void test_golden_cosine_clip(void) { golden_case("a"); }
static void test_golden_steplr_noclip(void) { golden_case("b"); }

static void test_golden_schedules(void)
{
	NEED_GOLD();
	static const char *names[] = {"constant_w5", "step_g085", "cosine_w0", "cosine_w4", "linear_w4", "linear_w0"};
	int seen = 0;
	for (size_t q = 0; q < sizeof names / sizeof *names; q++) {
		char name[64];
		double cfg[6], lrs[64];
		snprintf(name, sizeof name, "lr.%s.cfg", names[q]);
		REQUIRE(gget(name, LVD_DT_F64, cfg, 6));
		snprintf(name, sizeof name, "lr.%s", names[q]);
		const struct lvd_tensor_view *t = lvd_st_find(gold, name);
		REQUIRE(t && t->numel <= 64);
		REQUIRE(gget(name, LVD_DT_F64, lrs, (size_t)t->numel));
		struct lvd_sched s;
		sched_from(&s, cfg[0], cfg[1], cfg[2], cfg[3], cfg[5]);
		struct lvd_error err = {0};
		CHECK(lvd_sched_check(&s, &err) == 0);
		int spe = (int)cfg[4];
		for (int64_t k = 0; k < t->numel; k++) {
			double lr = lvd_sched_lr(&s, k, k / spe);
			CHECKF(fabs(lr - lrs[k]) <= 1e-15 * fabs(lrs[k]), "%s step %lld: %.17g vs torch %.17g",
			       names[q], (long long)k, lr, lrs[k]);
			seen++;
		}
	}
	CHECK(seen > 100);
}

/* ---- properties ------------------------------------------------------------------ */

/* The same three clipped steps on 1 and 4 threads (sizes above the split threshold):
 * parameters, moments and norms bit-identical. */
static void test_thread_invariance(void)
{
	struct lvd_ctx *c1 = make_ctx(1), *c4 = make_ctx(4);
	REQUIRE(c1 && c4);
	const size_t n[2] = {300001, 77777};
	float *buf[2][4];
	for (int b = 0; b < 2; b++)
		for (int k = 0; k < 4; k++)
			REQUIRE((buf[b][k] = malloc(n[b] * 4)));
	rng_state = 1;
	for (int b = 0; b < 2; b++)
		for (size_t i = 0; i < n[b]; i++) {
			buf[b][0][i] = buf[b][2][i] = frand();
		}
	struct lvd_optim *o1 = NULL, *o4 = NULL;
	struct lvd_param_block b1[2] = {
		{.name = "big", .param = buf[0][0], .grad = buf[0][1], .n = n[0], .wd = 0.01},
		{.name = "small", .param = buf[1][0], .grad = buf[1][1], .n = n[1], .wd = 0.0},
	};
	struct lvd_param_block b4[2] = {
		{.name = "big", .param = buf[0][2], .grad = buf[0][3], .n = n[0], .wd = 0.01},
		{.name = "small", .param = buf[1][2], .grad = buf[1][3], .n = n[1], .wd = 0.0},
	};
	struct lvd_optim_cfg oc = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
	struct lvd_error err = {0};
	REQUIRE(lvd_optim_create(&o1, c1, b1, 2, &oc, &err) == 0);
	REQUIRE(lvd_optim_create(&o4, c4, b4, 2, &oc, &err) == 0);
	for (int step = 0; step < 3; step++) {
		for (int b = 0; b < 2; b++)
			for (size_t i = 0; i < n[b]; i++)
				buf[b][1][i] = buf[b][3][i] = frand() * (step + 1);
		double s1 = lvd_sumsq(c1, buf[0][1], n[0]), s4 = lvd_sumsq(c4, buf[0][3], n[0]);
		CHECK(s1 == s4);
		float nr1 = lvd_optim_clip(c1, o1, 100.0), nr4 = lvd_optim_clip(c4, o4, 100.0);
		CHECK(nr1 == nr4);
		CHECK(nr1 > 100.0f);   /* clipping active */
		lvd_optim_step(c1, o1, 1e-3);
		lvd_optim_step(c4, o4, 1e-3);
	}
	for (int b = 0; b < 2; b++) {
		CHECK(memcmp(buf[b][0], buf[b][2], n[b] * 4) == 0);
		CHECK(memcmp(o1->m[b], o4->m[b], n[b] * 4) == 0);
		CHECK(memcmp(o1->v[b], o4->v[b], n[b] * 4) == 0);
	}
	/* the double sum is close to a plain serial one */
	double ref = 0;
	for (size_t i = 0; i < n[0]; i++)
		ref += (double)buf[0][1][i] * buf[0][1][i];
	CHECK_NEAR(lvd_sumsq(c4, buf[0][1], n[0]), ref, 1e-12 * ref);
	lvd_optim_destroy(c1, o1);
	lvd_optim_destroy(c4, o4);
	for (int b = 0; b < 2; b++)
		for (int k = 0; k < 4; k++)
			free(buf[b][k]);
	lvd_ctx_destroy(c1);
	lvd_ctx_destroy(c4);
}

/* Step 1 against the AdamW equations in double: with bias correction m̂ = g and
 * v̂ = g², so p1 = p0·(1 − lr·wd) − lr·g/(|g| + eps) — about lr·sign(g) for large |g|,
 * smaller where |g| ~ eps. Without the correction the update would be 10× off. */
static void test_step1_bias_correction(void)
{
	struct lvd_ctx *ctx = make_ctx(1);
	REQUIRE(ctx);
	enum { N = 64 };
	float p[N], g[N], m[N] = {0}, v[N] = {0};
	double p0[N];
	const double lr = 1e-3, eps = 1e-8, wd = 0.05;
	rng_state = 7;
	for (int i = 0; i < N; i++) {
		p0[i] = p[i] = frand();
		/* magnitudes from 1e-10 (eps dominates) to 10 */
		g[i] = frand() * powf(10.0f, (float)(i % 12) - 10.0f);
	}
	lvd_adamw_step(ctx, p, m, v, g, N, lr, 0.9, 0.999, eps, wd, 1);
	for (int i = 0; i < N; i++) {
		double gi = g[i];
		double ref = (double)(float)(p0[i] * (float)(1.0 - lr * wd)) - lr * gi / (fabs(gi) + eps);
		double upd = lr * fabs(gi) / (fabs(gi) + eps);
		/* fp32 update error (a few ulps of it) + one ulp of p */
		double tol = 1e-6 * upd + ldexp(1.0, ilogb(ref) - 23);
		CHECKF(fabs(p[i] - ref) <= tol, "i %d g %g: %.9g vs %.9g", i, gi, p[i], ref);
		CHECK_NEAR(m[i], 0.1 * gi, 1e-6 * fabs(gi));
		CHECK_NEAR(v[i], 0.001 * gi * gi, 1e-6 * gi * gi);
	}
	/* the large gradients moved p by lr (sign step), not lr·(1−β1) */
	CHECK_NEAR(p0[11] * (float)(1.0 - lr * wd) - p[11], lr * (g[11] > 0 ? 1 : -1), 1.2e-7);   /* 2 ulps of p (|p| < 1) */
	lvd_ctx_destroy(ctx);
}

/* Zero gradients from zero moments leave the parameters exactly where they are
 * (no decay), and moments stay zero. */
static void test_zero_grad(void)
{
	struct lvd_ctx *ctx = make_ctx(1);
	REQUIRE(ctx);
	enum { N = 33 };
	float p[N], p0[N], g[N] = {0};
	rng_state = 3;
	for (int i = 0; i < N; i++)
		p0[i] = p[i] = frand();
	struct lvd_param_block b = {.name = "z", .param = p, .grad = g, .n = N, .wd = 0.0};
	struct lvd_optim_cfg oc = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
	struct lvd_optim *o = NULL;
	struct lvd_error err = {0};
	REQUIRE(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == 0);
	for (int s = 0; s < 5; s++) {
		CHECK(lvd_optim_clip(ctx, o, 1.0) == 0.0f);
		lvd_optim_step(ctx, o, 1e-2);
	}
	CHECK(memcmp(p, p0, sizeof p) == 0);
	for (int i = 0; i < N; i++)
		CHECK(o->m[0][i] == 0.0f && o->v[0][i] == 0.0f);
	CHECK(o->step == 5);
	lvd_optim_destroy(ctx, o);
	lvd_ctx_destroy(ctx);
}

/* Weight decay alone (zero gradients): each step multiplies by fp32(1 − lr·wd) exactly,
 * and a block with wd 0 beside it does not move (groups keep their own wd). */
static void test_wd_only(void)
{
	struct lvd_ctx *ctx = make_ctx(1);
	REQUIRE(ctx);
	enum { N = 21 };
	float pa[N], pb[N], ga[N] = {0}, gb[N] = {0}, ref[N], pb0[N];
	rng_state = 5;
	for (int i = 0; i < N; i++) {
		ref[i] = pa[i] = frand();
		pb0[i] = pb[i] = frand();
	}
	struct lvd_param_block b[2] = {
		{.name = "decay", .param = pa, .grad = ga, .n = N, .wd = 0.1},
		{.name = "nodecay", .param = pb, .grad = gb, .n = N, .wd = 0.0},
	};
	struct lvd_optim_cfg oc = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
	struct lvd_optim *o = NULL;
	struct lvd_error err = {0};
	REQUIRE(lvd_optim_create(&o, ctx, b, 2, &oc, &err) == 0);
	const double lrs[3] = {0.5, 0.25, 1e-3};
	for (int s = 0; s < 3; s++) {
		lvd_optim_step(ctx, o, lrs[s]);
		float f = (float)(1.0 - lrs[s] * 0.1);
		for (int i = 0; i < N; i++)
			ref[i] = ref[i] * f;
		CHECK(memcmp(pa, ref, sizeof pa) == 0);
	}
	CHECK(memcmp(pb, pb0, sizeof pb) == 0);
	lvd_optim_destroy(ctx, o);
	lvd_ctx_destroy(ctx);
}

static void test_clip(void)
{
	struct lvd_ctx *ctx = make_ctx(1);
	REQUIRE(ctx);
	enum { N = 10 };
	float p[N] = {0}, g[N], g0[N];
	for (int i = 0; i < N; i++)
		g0[i] = g[i] = i % 2 ? -0.75f : 1.25f;
	double want = 0;
	for (int i = 0; i < N; i++)
		want += (double)g[i] * g[i];
	want = sqrt(want);
	static const size_t off[4] = {0, 3, 3, 10};   /* an empty tensor in the middle */
	struct lvd_param_block b = {.name = "c", .param = p, .grad = g, .n = N, .tensor_off = off, .n_tensors = 3};
	struct lvd_optim_cfg oc = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
	struct lvd_optim *o = NULL;
	struct lvd_error err = {0};
	REQUIRE(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == 0);
	/* off: norm only */
	CHECK_NEAR(lvd_optim_clip(ctx, o, 0.0), want, 1e-6 * want);
	CHECK(memcmp(g, g0, sizeof g) == 0);
	/* above the norm: untouched */
	CHECK_NEAR(lvd_optim_clip(ctx, o, 100.0), want, 1e-6 * want);
	CHECK(memcmp(g, g0, sizeof g) == 0);
	/* below: scaled to max_norm / (norm + 1e-6) */
	float nr = lvd_optim_clip(ctx, o, 1.0);
	CHECK_NEAR(nr, want, 1e-6 * want);
	float coef = (1.0f / (nr + 1e-6f)) * 1.0f;
	for (int i = 0; i < N; i++)
		CHECK(g[i] == g0[i] * coef);
	CHECK_NEAR(lvd_optim_grad_norm(ctx, o), 1.0, 2e-6);
	/* NaN propagates to the returned norm */
	g[4] = NAN;
	CHECK(isnan(lvd_optim_clip(ctx, o, 1.0)));
	lvd_optim_destroy(ctx, o);
	lvd_ctx_destroy(ctx);
}

static void test_create_errors(void)
{
	struct lvd_ctx *ctx = make_ctx(1);
	REQUIRE(ctx);
	float p[4] = {0}, g[4] = {0};
	struct lvd_optim_cfg oc = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
	struct lvd_optim *o = NULL;
	struct lvd_error err = {0};
	static const size_t bad_off[3] = {0, 3, 2};
	static const size_t short_off[2] = {0, 3};
	struct lvd_param_block b = {.name = "lora", .param = p, .grad = g, .n = 4};
	CHECK(lvd_optim_create(&o, ctx, &b, 0, &oc, &err) == LVD_ERR_INVALID);
	b.wd = -1;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "'lora'");
	b.wd = 0;
	b.tensor_off = bad_off;
	b.n_tensors = 2;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == LVD_ERR_INVALID);
	b.tensor_off = short_off;
	b.n_tensors = 1;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == LVD_ERR_INVALID);
	b.tensor_off = NULL;
	b.grad = NULL;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == LVD_ERR_INVALID);
	b.grad = g;
	oc.beta2 = 1.0;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "betas");
	CHECK(o == NULL);
	oc.beta2 = 0.999;
	CHECK(lvd_optim_create(&o, ctx, &b, 1, &oc, &err) == 0);
	CHECK(o && o->state_floats == 8 && o->m[0] + 4 == o->v[0]);
	lvd_optim_destroy(ctx, o);
	lvd_ctx_destroy(ctx);
}

static void test_sched_parse(void)
{
	struct lvd_sched s = {.lr = 1e-4, .warmup = 0, .total = 0};
	struct lvd_error err = {0};
	CHECK(lvd_sched_parse(&s, "constant", &err) == 0 && s.kind == LVD_SCHED_CONSTANT);
	CHECK(lvd_sched_parse(&s, "cosine", &err) == 0 && s.kind == LVD_SCHED_COSINE);
	CHECK(lvd_sched_check(&s, &err) == LVD_ERR_INVALID);   /* needs total */
	CHECK_CONTAINS(err.msg, "total");
	s.total = 10;
	CHECK(lvd_sched_check(&s, &err) == 0);
	CHECK(lvd_sched_parse(&s, "linear", &err) == 0 && s.kind == LVD_SCHED_LINEAR);
	CHECK(lvd_sched_parse(&s, "step", &err) == 0 && s.kind == LVD_SCHED_STEP && s.gamma == 0.85 && s.step_size == 1);
	CHECK(lvd_sched_parse(&s, "step:0.5", &err) == 0 && s.gamma == 0.5 && s.step_size == 1);
	CHECK(lvd_sched_parse(&s, "step:0.9:2", &err) == 0 && s.gamma == 0.9 && s.step_size == 2);
	CHECK(lvd_sched_check(&s, &err) == 0);
	static const char *bad[] = {"", "cos", "step:", "step:x", "step:0", "step:-1", "step:0.5:0", "step:0.5:", "stepx", "constant "};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct lvd_sched t = s;
		CHECKF(lvd_sched_parse(&t, bad[i], &err) == LVD_ERR_INVALID, "'%s' accepted", bad[i]);
	}
	s.warmup = -1;
	CHECK(lvd_sched_check(&s, &err) == LVD_ERR_INVALID);
	CHECK_STR(lvd_sched_name(LVD_SCHED_STEP), "step");
}

static void test_sched_values(void)
{
	/* StepLR per epoch with warm-up (our composition) and step size 2 */
	struct lvd_sched s = {.kind = LVD_SCHED_STEP, .lr = 1.0, .warmup = 4, .step_size = 2, .gamma = 0.5};
	CHECK(lvd_sched_lr(&s, 0, 0) == 0.0);
	CHECK(lvd_sched_lr(&s, 2, 0) == 0.5);
	CHECK(lvd_sched_lr(&s, 4, 1) == 1.0);
	CHECK(lvd_sched_lr(&s, 5, 2) == 0.5);
	CHECK(lvd_sched_lr(&s, 9, 5) == 0.25);
	/* cosine and linear end at 0 on the last step; half way is lr/2 */
	struct lvd_sched c = {.kind = LVD_SCHED_COSINE, .lr = 2.0, .warmup = 2, .total = 12};
	CHECK(lvd_sched_lr(&c, 1, 0) == 1.0);
	CHECK_NEAR(lvd_sched_lr(&c, 7, 0), 1.0, 1e-15);
	CHECK_NEAR(lvd_sched_lr(&c, 12, 0), 0.0, 1e-15);
	struct lvd_sched l = {.kind = LVD_SCHED_LINEAR, .lr = 2.0, .warmup = 2, .total = 12};
	CHECK(lvd_sched_lr(&l, 7, 0) == 1.0);
	CHECK(lvd_sched_lr(&l, 12, 0) == 0.0);
	CHECK(lvd_sched_lr(&l, 30, 0) == 0.0);
	struct lvd_sched k = {.kind = LVD_SCHED_CONSTANT, .lr = 3.0};
	CHECK(lvd_sched_lr(&k, 0, 0) == 3.0 && lvd_sched_lr(&k, 1000, 9) == 3.0);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_golden_cosine_clip),
		TEST(test_golden_steplr_noclip),
		TEST(test_golden_schedules),
		TEST(test_thread_invariance),
		TEST(test_step1_bias_correction),
		TEST(test_zero_grad),
		TEST(test_wd_only),
		TEST(test_clip),
		TEST(test_create_errors),
		TEST(test_sched_parse),
		TEST(test_sched_values),
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	if (gold)
		lvd_st_close(gold);
	return rc;
}
