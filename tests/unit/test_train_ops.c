/* tests/unit/test_train_ops.c — every backward of the op families (lib/nn/ops/norm.h,
 * act.h, softmax.h, gemm.h, embed.h, xent.h, lora.h) and of the training attention
 * (lib/nn/ops/attn.h, every row captured so the injected probability gradient is
 * covered too), against central finite differences of its forward (loss = Σ out ⊙ R,
 * R fixed random); the fused LM head + CE against the unfused ops. Ops run on a
 * one-thread CPU context X. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/lora.h"
#include "nn/ops/norm.h"
#include "nn/ops/softmax.h"
#include "nn/ops/xent.h"

static struct lvd_ctx *X;

static unsigned long long rng = 88172645463325252ull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float s)
{
	float *p = malloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = s * frand();
	return p;
}

/* the function under test: writes its output; loss = Σ out·R */
typedef void (*fwd_fn)(float *out, void *ctx);

static double loss_of(fwd_fn f, void *ctx, float *out, const float *R, size_t nout)
{
	f(out, ctx);
	double s = 0;
	for (size_t i = 0; i < nout; i++)
		s += (double)out[i] * R[i];
	return s;
}

/* compares analytic grad g[n] of variable x[n] with central differences; fp32 forward,
 * eps 1e-2 on O(1) values: truncation + rounding ~1e-3 of the gradient scale */
static void fd_check(const char *what, fwd_fn f, void *ctx, float *x, const float *g, size_t n, const float *R,
		     size_t nout)
{
	float *out = malloc(nout * sizeof *out), *num = malloc(n * sizeof *num);
	const float eps = 1e-2f;
	for (size_t i = 0; i < n; i++) {
		float x0 = x[i];
		x[i] = x0 + eps;
		double lp = loss_of(f, ctx, out, R, nout);
		x[i] = x0 - eps;
		double lm = loss_of(f, ctx, out, R, nout);
		x[i] = x0;
		num[i] = (float)((lp - lm) / (2 * eps));
	}
	CHECK_CLOSE(what, g, num, n, 1e-3, 5e-3);
	free(out), free(num);
}

enum { N = 5, C = 12 };

struct norm_ctx { float *x, *w, *b, *s1, *s2; };
static void rms_f(float *out, void *p)
{
	struct norm_ctx *c = p;
	lvd_rmsnorm_fwd(X, out, c->s1, c->x, c->w, N, C, 1e-5f);
}
static void ln_f(float *out, void *p)
{
	struct norm_ctx *c = p;
	lvd_layernorm_fwd(X, out, c->s1, c->s2, c->x, c->w, c->b, N, C, 1e-5f);
}

static void test_norms(void)
{
	struct norm_ctx c = { rnd(N * C, 1.5f), rnd(C, 1), rnd(C, 1), calloc(N, 4), calloc(N, 4) };
	float *R = rnd(N * C, 1), *out = malloc(N * C * 4), *dx = calloc(N * C, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
	rms_f(out, &c);
	lvd_rmsnorm_bwd(X, dx, dw, R, c.x, c.w, c.s1, N, C);
	fd_check("rmsnorm dx", rms_f, &c, c.x, dx, N * C, R, N * C);
	fd_check("rmsnorm dw", rms_f, &c, c.w, dw, C, R, N * C);
	memset(dx, 0, N * C * 4), memset(dw, 0, C * 4);
	ln_f(out, &c);
	lvd_layernorm_bwd(X, dx, dw, db, R, c.x, c.w, c.s1, c.s2, N, C);
	fd_check("layernorm dx", ln_f, &c, c.x, dx, N * C, R, N * C);
	fd_check("layernorm dw", ln_f, &c, c.w, dw, C, R, N * C);
	fd_check("layernorm db", ln_f, &c, c.b, db, C, R, N * C);
	/* accumulation: a second backward doubles the gradient */
	float before = dw[3];
	lvd_layernorm_bwd(X, NULL, dw, NULL, R, c.x, c.w, c.s1, c.s2, N, C);
	CHECK_NEAR(dw[3], 2 * before, 1e-5);
	free(c.x), free(c.w), free(c.b), free(c.s1), free(c.s2), free(R), free(out), free(dx), free(dw), free(db);
}

struct act_ctx { float *x, *y; };
static enum lvd_gelu_kind gelu_kind;
static void gelu_f(float *out, void *p) { lvd_gelu_fwd(X, out, ((struct act_ctx *)p)->x, N * C, gelu_kind); }
static void silu_f(float *out, void *p) { lvd_silu_fwd(X, out, ((struct act_ctx *)p)->x, N * C); }
static void geglu_f(float *out, void *p) { lvd_geglu_fwd(X, out, ((struct act_ctx *)p)->x, N, C / 2); }
static void softmax_f(float *out, void *p) { lvd_softmax_fwd(X, out, ((struct act_ctx *)p)->x, N, C); }
static void swiglu_f(float *out, void *p)
{
	struct act_ctx *c = p;
	lvd_swiglu_fwd(X, out, c->x, c->y, N * C);
}

static void test_activations(void)
{
	struct act_ctx c = { rnd(N * C, 3), rnd(N * C, 2) };
	float *R = rnd(N * C, 1), *dx = calloc(N * C, 4), *dy = calloc(N * C, 4);
	static const char *gname[3] = {"gelu exact", "gelu tanh", "gelu quick"};
	for (int kd = 0; kd < 3; kd++) {
		gelu_kind = (enum lvd_gelu_kind)kd;
		memset(dx, 0, N * C * 4);
		lvd_gelu_bwd(X, dx, R, c.x, N * C, gelu_kind);
		fd_check(gname[kd], gelu_f, &c, c.x, dx, N * C, R, N * C);
	}
	float o;
	lvd_gelu_fwd(X, &o, (float[]){ 1.0f }, 1, LVD_GELU_EXACT);
	CHECK_NEAR(o, 0.8413447460685429, 1e-6); /* Φ(1), exact erf GELU */
	lvd_gelu_fwd(X, &o, (float[]){ 1.0f }, 1, LVD_GELU_TANH);
	CHECK_NEAR(o, 0.8411919906082768, 1e-6); /* ½(1 + tanh(√(2/π)·1.044715)) */
	lvd_gelu_fwd(X, &o, (float[]){ 1.0f }, 1, LVD_GELU_QUICK);
	CHECK_NEAR(o, 1.0 / (1.0 + exp(-1.702)), 1e-6);
	memset(dx, 0, N * C * 4);
	lvd_silu_bwd(X, dx, R, c.x, N * C);
	fd_check("silu", silu_f, &c, c.x, dx, N * C, R, N * C);
	memset(dx, 0, N * C * 4);
	lvd_geglu_bwd(X, dx, R, c.x, N, C / 2);
	fd_check("geglu", geglu_f, &c, c.x, dx, N * C, R, N * C / 2);
	memset(dx, 0, N * C * 4);
	float *sm = malloc(N * C * 4);
	softmax_f(sm, &c);
	lvd_softmax_bwd(X, dx, R, sm, N, C);
	fd_check("softmax", softmax_f, &c, c.x, dx, N * C, R, N * C);
	free(sm);
	memset(dx, 0, N * C * 4);
	lvd_swiglu_bwd(X, dx, dy, R, c.x, c.y, N * C);
	fd_check("swiglu dgate", swiglu_f, &c, c.x, dx, N * C, R, N * C);
	fd_check("swiglu dup", swiglu_f, &c, c.y, dy, N * C, R, N * C);
	free(c.x), free(c.y), free(R), free(dx), free(dy);
}

static void test_rope(void)
{
	float f[8];
	lvd_rope_freqs(X, f, 16, 500000.0, 1, 8.0, 1.0, 4.0, 8192);
	/* i = 0: wavelength 2π < 2048, unchanged; i = 5: > 8192 -> /8; i = 4: smoothed */
	CHECK_NEAR(f[0], 1.0, 1e-7);
	CHECK_NEAR(f[5], pow(500000.0, -10.0 / 16) / 8, 1e-9);
	double f4 = pow(500000.0, -8.0 / 16), wl = 2 * M_PI / f4, s = (8192 / wl - 1) / 3;
	CHECK_NEAR(f[4], (1 - s) * f4 / 8 + s * f4, 1e-9);
	int pos[3] = { 0, 7, 19 };
	float *x = rnd(2 * 3 * 2 * 16, 1), *y = malloc(sizeof(float) * 192);
	memcpy(y, x, sizeof(float) * 192);
	lvd_rope_apply(X, y, pos, f, 2, 3, 2, 16, 0);
	CHECK(fabsf(y[40] - x[40]) > 1e-6f && y[0] == x[0]); /* t = 1 rotates, t = 0 (pos 0) does not */
	CHECK_NEAR(lvd_dot(X, y, y, 192), lvd_dot(X, x, x, 192), 1e-4); /* rotation keeps norms */
	lvd_rope_apply(X, y, pos, f, 2, 3, 2, 16, 1);
	CHECK_CLOSE("rope inverse", y, x, 192, 1e-6, 0);
	free(x), free(y);
}

enum { AB = 2, TQ = 4, TK = 6, AD = 3 };
static const int att_rows[AB * TQ] = { 0, 1, 2, 3, 0, 1, 2, 3 };
static const int att_off[AB + 1] = { 0, TQ, 2 * TQ };
struct att_ctx {
	float *q, *k, *v, *stats;
	struct lvd_attn_mask mask;
	int tk, h, kh;
};
/* out = [attention out | probabilities of every row, [B, H, TQ, tk]] so R covers both
 * (tests the injected probability gradient) */
static void att_f(float *out, void *p)
{
	struct att_ctx *c = p;
	struct lvd_attn_capture cp = { att_rows, att_off };
	lvd_attn_fwd(X, out, c->stats, out + AB * TQ * c->h * AD, c->q, c->k, c->v, &c->mask, &cp, 0.7f, AB, TQ,
		     c->tk, c->h, c->kh, AD);
}

static void att_case(const char *name, enum lvd_attn_mask_kind kind, int tk, int h, int kh)
{
	struct att_ctx c = { rnd(AB * TQ * h * AD, 1), rnd(AB * tk * kh * AD, 1), rnd(AB * tk * kh * AD, 1),
			     malloc(sizeof(float) * 2 * AB * h * TQ), { kind, NULL, NULL }, tk, h, kh };
	uint8_t pad[AB * TQ] = { 0, 0, 1, 1, 0, 1, 0, 1 };
	float *bias = rnd(AB * TQ * tk, 2);
	bias[3] = -3.4e38f;
	c.mask.pad = pad;
	c.mask.bias = bias;
	size_t no = (size_t)AB * TQ * h * AD, np = (size_t)AB * h * TQ * tk, nk = (size_t)AB * tk * kh * AD;
	float *R = rnd(no + np, 1), *out = malloc(sizeof(float) * (no + np));
	float *dq = calloc(no, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
	att_f(out, &c);
	if (kind == LVD_ATTN_MASK_CAUSAL)
		CHECK(out[no + 1] == 0.0f && out[no + tk] != 0.0f);
	struct lvd_attn_capture cp = { att_rows, att_off };
	lvd_attn_bwd(X, dq, dk, dv, c.stats, R, R + no, c.q, c.k, c.v, &c.mask, &cp, 0.7f, AB, TQ, tk, h, kh, AD);
	char w[64];
	snprintf(w, sizeof w, "%s dq", name);
	fd_check(w, att_f, &c, c.q, dq, no, R, no + np);
	snprintf(w, sizeof w, "%s dk", name);
	fd_check(w, att_f, &c, c.k, dk, nk, R, no + np);
	snprintf(w, sizeof w, "%s dv", name);
	fd_check(w, att_f, &c, c.v, dv, nk, R, no + np);
	free(c.q), free(c.k), free(c.v), free(c.stats), free(bias), free(R), free(out), free(dq), free(dk), free(dv);
}

static void test_attention(void)
{
	att_case("plain", LVD_ATTN_MASK_NONE, TK, 4, 2);
	att_case("causal", LVD_ATTN_MASK_CAUSAL, TQ, 4, 2);
	att_case("padpair", LVD_ATTN_MASK_PADPAIR, TQ, 2, 2);
	att_case("bias", LVD_ATTN_MASK_BIAS, TK, 4, 2);
}

static void test_xent(void)
{
	enum { XN = 4, XV = 7 };
	float *l = rnd(XN * XV, 3), *d = calloc(XN * XV, 4);
	int tg[XN] = { 2, -100, 6, 0 }, cnt;
	double s = lvd_xent_fwd(X, &cnt, l, tg, XN, XV);
	CHECK(cnt == 3);
	lvd_xent_bwd(X, d, l, tg, 1.0f / cnt, XN, XV);
	const float eps = 1e-2f;
	for (int i = 0; i < XN * XV; i++) {
		float x0 = l[i];
		l[i] = x0 + eps;
		double p = lvd_xent_fwd(X, &cnt, l, tg, XN, XV) / cnt;
		l[i] = x0 - eps;
		double m = lvd_xent_fwd(X, &cnt, l, tg, XN, XV) / cnt;
		l[i] = x0;
		CHECK_NEAR(d[i], (p - m) / (2 * eps), 1e-3); /* central difference, eps² ~ 1e-4 */
	}
	CHECK(d[XV] == 0.0f); /* ignored row */
	CHECK(s > 0);
	free(l), free(d);
}

/* The AVX2 rows (cpu_fast: float exps, double sums) against the plain ones (exp in
 * double) on rows of 8192 (the vector body) and 13 (body + tail) logits of scale 8, one
 * row with -inf logits: the loss to 1e-6 relative, the gradient to 1e-7 absolute (its
 * entries are probabilities · scale), both fused-head row kernels likewise; a NaN logit
 * gives a NaN loss and gradient on both paths. */
static void test_xent_fast(void)
{
	struct lvd_error err = {0};
	struct lvd_ctx_opts po = {.threads = 1, .ws_bytes = (size_t)1 << 24, .cpu_plain = 1};
	struct lvd_ctx *P = NULL;
	CHECK(lvd_ctx_create(&P, &po, &err) == 0);
	CHECK(X->cpu_fast == 1 && P->cpu_fast == 0);
	static const int Vs[2] = { 8192, 13 };
	for (int k = 0; k < 2; k++) {
		enum { N = 5 };
		const int V = Vs[k];
		float *l = rnd((size_t)N * V, 8);
		l[(size_t)2 * V + 1] = -INFINITY, l[(size_t)2 * V + V - 1] = -INFINITY;
		int tg[N] = { 0, V - 1, 3, -100, V / 2 }, cf, cp;
		float *df = calloc((size_t)N * V, 4), *dp = calloc((size_t)N * V, 4);
		double sf = lvd_xent_fwd(X, &cf, l, tg, N, V), sp = lvd_xent_fwd(P, &cp, l, tg, N, V);
		CHECKF(cf == 4 && cp == 4 && fabs(sf - sp) <= 1e-6 * fabs(sp), "V %d: %.17g vs %.17g", V, sf, sp);
		lvd_xent_bwd(X, df, l, tg, 0.25f, N, V);
		lvd_xent_bwd(P, dp, l, tg, 0.25f, N, V);
		CHECK_CLOSE("xent fast grad", df, dp, (size_t)N * V, 1e-7, 0);
		/* the fused head's row kernels: statistics over the row, then the gradient */
		float mf[N], mp[N], tf[N], tp[N];
		double ef[N], ep[N], lf[N], lp[N];
		lvd_xent_chunk_fwd_cpu(X, mf, ef, tf, l, tg, N, V, 0);
		lvd_xent_chunk_fwd_cpu(P, mp, ep, tp, l, tg, N, V, 0);
		double zf = lvd_xent_chunk_end_cpu(X, lf, &cf, mf, ef, tf, tg, N, V);
		double zp = lvd_xent_chunk_end_cpu(P, lp, &cp, mp, ep, tp, tg, N, V);
		CHECKF(fabs(zf - zp) <= 1e-6 * fabs(zp), "chunk V %d: %.17g vs %.17g", V, zf, zp);
		memcpy(df, l, sizeof(float) * N * V), memcpy(dp, l, sizeof(float) * N * V);
		lvd_xent_chunk_bwd_cpu(X, df, lp, tg, 0.25f, N, V, 0);
		lvd_xent_chunk_bwd_cpu(P, dp, lp, tg, 0.25f, N, V, 0);
		CHECK_CLOSE("xent chunk fast grad", df, dp, (size_t)N * V, 1e-7, 0);
		l[(size_t)4 * V + 1] = NAN;
		memset(df, 0, sizeof(float) * N * V);
		CHECK(isnan(lvd_xent_fwd(X, &cf, l, tg, N, V)) && isnan(lvd_xent_fwd(P, &cp, l, tg, N, V)));
		lvd_xent_bwd(X, df, l, tg, 0.25f, N, V);
		CHECK(isnan(df[(size_t)4 * V]) && !isnan(df[0]));
		free(l), free(df), free(dp);
	}
	lvd_ctx_destroy(P);
}

/* The fused LM head + CE (lvd_lmhead_xent_*) against lvd_linear_* + lvd_xent_* on the
 * whole logits: N 13 rows (3 ignored), D 24, V 1000 in chunks 1000 (one), 256 (3 full +
 * 232) and 7; loss to 1e-6 relative (the chunk GEMMs' fp32 logits; the log-sum-exp in
 * double), dh and dW to 1e-5 of their scale (fp32 rounding: per-chunk GEMMs, dh summed
 * over the chunks); dh and dW accumulate (a second backward doubles them); dW NULL
 * leaves dh unchanged; the row statistic equals max + log Σ exp of the full row. */
static void test_lmhead_xent(void)
{
	enum { N = 13, D = 24, V = 1000 };
	float *h = rnd(N * D, 1), *W = rnd((size_t)V * D, 0.5f);
	int tg[N];
	for (int n = 0; n < N; n++)
		tg[n] = n % 5 == 2 ? -100 : (n * 331 + 17) % V;
	tg[0] = V - 1, tg[1] = 0, tg[3] = 255, tg[4] = 256; /* the first/last column, chunk borders */
	float *lg = malloc(sizeof(float) * N * V), *dl = calloc((size_t)N * V, sizeof(float));
	float *dh0 = calloc(N * D, sizeof(float)), *dW0 = calloc((size_t)V * D, sizeof(float));
	lvd_linear_fwd(X, lg, h, W, NULL, N, D, V);
	int c0;
	double s0 = lvd_xent_fwd(X, &c0, lg, tg, N, V);
	lvd_xent_bwd(X, dl, lg, tg, 0.5f / c0, N, V);
	lvd_linear_bwd(X, dh0, dW0, NULL, dl, h, W, N, D, V);
	static const int chunks[3] = { V, 256, 7 };
	for (int k = 0; k < 3; k++) {
		double lse[N];
		int c1 = -1;
		double s1 = lvd_lmhead_xent_fwd(X, lse, &c1, h, W, tg, N, D, V, chunks[k]);
		CHECKF(c1 == c0 && c1 == 10 && fabs(s1 - s0) <= 1e-6 * fabs(s0), "chunk %d: %.17g vs %.17g", chunks[k], s1,
		       s0);
		for (int n = 0; n < N; n++) {
			if (tg[n] == -100) {
				CHECK(isnan(lse[n]));
				continue;
			}
			double mx = -INFINITY, se = 0;
			for (int j = 0; j < V; j++)
				mx = fmax(mx, lg[(size_t)n * V + j]);
			for (int j = 0; j < V; j++)
				se += exp(lg[(size_t)n * V + j] - mx);
			CHECK_NEAR(lse[n], mx + log(se), 1e-5);
		}
		float *dh = calloc(N * D, sizeof(float)), *dW = calloc((size_t)V * D, sizeof(float));
		lvd_lmhead_xent_bwd(X, dh, dW, lse, h, W, tg, 0.5f / c1, N, D, V, chunks[k]);
		CHECK_CLOSE("fused dh", dh, dh0, N * D, 0, 1e-5);
		CHECK_CLOSE("fused dW", dW, dW0, (size_t)V * D, 0, 1e-5);
		lvd_lmhead_xent_bwd(X, dh, dW, lse, h, W, tg, 0.5f / c1, N, D, V, chunks[k]);
		for (int i = 0; i < N * D; i++)
			dh0[i] *= 2;
		for (size_t i = 0; i < (size_t)V * D; i++)
			dW0[i] *= 2;
		CHECK_CLOSE("fused dh accumulates", dh, dh0, N * D, 0, 1e-5);
		CHECK_CLOSE("fused dW accumulates", dW, dW0, (size_t)V * D, 0, 1e-5);
		for (int i = 0; i < N * D; i++)
			dh0[i] /= 2;
		for (size_t i = 0; i < (size_t)V * D; i++)
			dW0[i] /= 2;
		memset(dh, 0, sizeof(float) * N * D);
		lvd_lmhead_xent_bwd(X, dh, NULL, lse, h, W, tg, 0.5f / c1, N, D, V, chunks[k]);
		CHECK_CLOSE("fused dh without dW", dh, dh0, N * D, 0, 1e-5);
		free(dh), free(dW);
	}
	CHECK(lvd_ctx_mark(X) == 0);
	free(h), free(W), free(lg), free(dl), free(dh0), free(dW0);
}

enum { LN = 3, LIC = 5, LOC = 4, LR = 2 };
struct lora_ctx { float *x, *A, *B, *u; };
static void lora_f(float *out, void *p)
{
	struct lora_ctx *c = p;
	memset(out, 0, sizeof(float) * LN * LOC);
	lvd_lora_fwd(X, out, c->u, c->x, c->A, c->B, 2.0f, LN, LIC, LOC, LR);
}

static void test_lora_ops(void)
{
	CHECK(lvd_lora_matches("vision_model.transformer.layers.0.self_attn.q_proj", "q_proj,v_proj"));
	CHECK(lvd_lora_matches("language_model.model.layers.1.cross_attn.v_proj", "q_proj,v_proj"));
	CHECK(!lvd_lora_matches("language_model.model.layers.1.cross_attn.o_proj", "q_proj,v_proj"));
	CHECK(!lvd_lora_matches("x.xq_proj", "q_proj"));
	CHECK(lvd_lora_matches("q_proj", "k_proj,q_proj"));
	struct lora_ctx c = { rnd(LN * LIC, 1), rnd(LR * LIC, 1), rnd(LOC * LR, 1), malloc(sizeof(float) * LN * LR) };
	float *R = rnd(LN * LOC, 1), *out = malloc(sizeof(float) * LN * LOC);
	float *dx = calloc(LN * LIC, 4), *dA = calloc(LR * LIC, 4), *dB = calloc(LOC * LR, 4);
	lora_f(out, &c);
	lvd_lora_bwd(X, dx, dA, dB, R, c.x, c.u, c.A, c.B, 2.0f, LN, LIC, LOC, LR);
	fd_check("lora dx", lora_f, &c, c.x, dx, LN * LIC, R, LN * LOC);
	fd_check("lora dA", lora_f, &c, c.A, dA, LR * LIC, R, LN * LOC);
	fd_check("lora dB", lora_f, &c, c.B, dB, LOC * LR, R, LN * LOC);
	/* init bound 1/sqrt(IC) and dropout: inverted scaling, same mask in backward */
	float A[64];
	lvd_lora_init_a(X, A, 4, 16, 9);
	int inside = 1;
	for (int i = 0; i < 64; i++)
		inside &= fabsf(A[i]) <= 0.25f;
	CHECK(inside && A[0] != A[1]);
	float x[1000], xd[1000], g[1000] = { 0 }, one[1000];
	for (int i = 0; i < 1000; i++)
		x[i] = 1.0f, one[i] = 1.0f;
	lvd_lora_dropout_fwd(X, xd, x, 1000, 0.25f, 5);
	lvd_lora_dropout_bwd(X, g, one, 1000, 0.25f, 5);
	int kept = 0, same = 1;
	for (int i = 0; i < 1000; i++) {
		kept += xd[i] != 0.0f;
		same &= xd[i] == g[i];
	}
	CHECK(kept > 700 && kept < 800); /* Binomial(1000, 0.75): ±50 is > 6 sigma */
	CHECK(same);
	CHECK_NEAR(xd[kept ? 0 : 1] == 0.0f ? 4.0f / 3 : xd[0], 4.0f / 3, 1e-6);
	free(c.x), free(c.A), free(c.B), free(c.u), free(R), free(out), free(dx), free(dA), free(dB);
	CHECK(lvd_ctx_mark(X) == 0);
}

static void test_embedding_patch(void)
{
	float table[4 * 3] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, out[6], dt[12] = { 0 };
	int ids[2] = { 3, 1 };
	lvd_embedding_fwd(X, out, ids, table, 2, 3);
	CHECK(out[0] == 9 && out[5] == 5);
	lvd_embedding_bwd(X, dt, out, ids, 2, 3);
	CHECK(dt[9] == 9 && dt[3] == 3 && dt[0] == 0);
	/* 2 channels, 4x4 image, patch 2: patch (0,1), channel 1, (ky,kx) = (1,0) */
	float img[32], cols[4 * 8];
	for (int i = 0; i < 32; i++)
		img[i] = (float)i;
	lvd_patch_unfold(X, cols, img, 2, 4, 4, 2);
	CHECK(cols[1 * 8 + (1 * 2 + 1) * 2 + 0] == img[16 + 1 * 4 + 2]);
	CHECK(cols[3 * 8 + 7] == img[16 + 3 * 4 + 3]);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_norms), TEST(test_activations), TEST(test_rope), TEST(test_attention),
		TEST(test_xent), TEST(test_xent_fast), TEST(test_lmhead_xent), TEST(test_lora_ops), TEST(test_embedding_patch), { 0 },
	};
	struct lvd_error err = {0};
	struct lvd_ctx_opts o = {.threads = 1, .ws_bytes = (size_t)1 << 28};
	if (lvd_ctx_create(&X, &o, &err)) {
		fprintf(stderr, "test_train_ops: %s\n", err.msg);
		return 1;
	}
	int rc = lvd_test_main(argc, argv, tests);
	lvd_ctx_destroy(X);
	return rc;
}
