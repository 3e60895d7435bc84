/* tests/gpu/cases_mllama.h — op-table cases of the mllama training twins (issue #20),
 * included by tests/gpu/test_cuda_ops.c (uses its gpu(), hrand, dupf, down, dalloc,
 * check_rel): each CUDA twin against its CPU function (the oracle, run here on a CPU
 * context with the same inputs), forward and backward, odd shapes, GQA, every attention
 * mask kind and ragged capture rows. Backward gradients start non-zero (the twins
 * accumulate); every case checks the device workspace is given back. Without a device
 * every case SKIPs (gpu()).
 *
 * Tolerances: "tol(rel, frac)" = rel·|want| + frac·max|want| per element, with the
 * reason beside each check. Twins that repeat the CPU's arithmetic in its order (no FMA
 * contraction, IEEE sqrt/div, the same RNG) are checked for equality (tolerance 0). */
#include <float.h>

#include "nn/ops/adamw.h"
#include "nn/ops/attn.h"
#include "nn/ops/conv.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/instnorm.h"
#include "nn/ops/kvattn.h"
#include "nn/ops/lora.h"
#include "nn/ops/resample.h"
#include "nn/ops/vembed.h"
#include "nn/ops/xent.h"

/* A one-thread CPU context for the oracle (plain paths). */
static struct lvd_ctx *ml_cpu(void)
{
	struct lvd_ctx *h = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts o = {.backend = LVD_BACKEND_CPU, .threads = 1, .cpu_plain = 1, .ws_bytes = (size_t)1 << 30};
	REQUIRE(lvd_ctx_create(&h, &o, &err) == 0);
	return h;
}

/* got (float) vs want (float) with tol(rel, frac) */
static int ml_close(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
		    double rel, double frac)
{
	double mx = 0;
	for (size_t i = 0; i < n; i++)
		mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
	double *w = dalloc(n);
	for (size_t i = 0; i < n; i++)
		w[i] = want[i];
	int ok = check_rel(file, line, what, got, w, n, rel, frac * mx);
	free(w);
	return ok;
}
#define ML_CLOSE(what, got, want, n, rel, frac) ml_close(__FILE__, __LINE__, (what), (got), (want), (n), (rel), (frac))
#define ML_EQUAL(what, got, want, n) ml_close(__FILE__, __LINE__, (what), (got), (want), (n), 0.0, 0.0)

/* downloads n floats of device d and compares them with host h */
static void ml_cmp_dev(const char *file, int line, struct lvd_ctx *c, const char *what, const float *d, const float *h,
		       size_t n, double rel, double frac)
{
	float *g = down(c, d, n);
	ml_close(file, line, what, g, h, n, rel, frac);
	free(g);
}
#define ML_CMP(c, what, d, h, n, rel, frac) ml_cmp_dev(__FILE__, __LINE__, (c), (what), (d), (h), (n), (rel), (frac))

static void *ml_dup_bytes(struct lvd_ctx *c, const void *h, size_t bytes) { return dup_dev(c, h, bytes ? bytes : 1); }

/* ---- attention (attn.h) ---- */

struct ml_attn_case {
	const char *name;
	enum lvd_attn_mask_kind kind;
	int B, Tq, Tk, H, KH, D;
	int ncap[3];       /* capture rows per sample (<= 3 samples) */
};

static void ml_attn_run(const struct ml_attn_case *t)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int B = t->B, Tq = t->Tq, Tk = t->Tk, H = t->H, KH = t->KH, D = t->D;
	size_t nq = (size_t)B * Tq * H * D, nk = (size_t)B * Tk * KH * D, ns = (size_t)B * H * Tq * 2;
	float scale = 1.0f / sqrtf((float)D);
	float *q = hrand(nq, 1.5f, 0), *k = hrand(nk, 1.5f, 0), *v = hrand(nk, 1, 0), *dout = hrand(nq, 1, 0);
	float *dq0 = hrand(nq, 0.1f, 0), *dk0 = hrand(nk, 0.1f, 0), *dv0 = hrand(nk, 0.1f, 0);
	/* masks */
	uint8_t *pad = NULL;
	float *bias = NULL;
	int *gm = NULL;
	struct lvd_attn_mask mh = {.kind = t->kind}, md = {.kind = t->kind};
	if (t->kind == LVD_ATTN_MASK_PADPAIR) {
		pad = calloc((size_t)B * Tq, 1);
		REQUIRE(pad);
		for (int b = 0; b < B; b++)
			for (int i = 0; i < Tq; i++) /* sample 0: mixed, 1: all pads, 2: no pads */
				pad[(size_t)b * Tq + i] = b == 1 ? 1 : b == 0 ? (i % 3 == 1 || i > Tq - 5) : 0;
		mh.pad = pad;
		md.pad = ml_dup_bytes(c, pad, (size_t)B * Tq);
	}
	if (t->kind == LVD_ATTN_MASK_BIAS) { /* the cross-attention group bias, groups of 5 keys */
		int G = Tk / 5;
		REQUIRE(G * 5 == Tk);
		gm = calloc((size_t)B * Tq * G, sizeof(int));
		bias = malloc(sizeof(float) * (size_t)B * Tq * Tk);
		float *rm = malloc(sizeof(float) * (size_t)B * Tq);
		REQUIRE(gm && bias && rm);
		for (int r = 0; r < B * Tq; r++)
			for (int g = 0; g < G; g++) /* row 2 of each sample sees no group */
				gm[(size_t)r * G + g] = r % Tq != 2 && (g + r) % 3 != 0;
		lvd_attn_group_bias_cpu(h, bias, rm, gm, B * Tq, G, 5);
		int *dgm = ml_dup_bytes(c, gm, sizeof(int) * (size_t)B * Tq * G);
		float *db = lvd_buf_alloc(c, sizeof(float) * (size_t)B * Tq * Tk), *drm = lvd_buf_alloc(c, 4 * (size_t)B * Tq);
		REQUIRE(db && drm);
		lvd_attn_group_bias(c, db, drm, dgm, B * Tq, G, 5);
		ML_CMP(c, "group bias", db, bias, (size_t)B * Tq * Tk, 0, 0); /* 0 or -FLT_MAX: exact */
		ML_CMP(c, "group rowmask", drm, rm, (size_t)B * Tq, 0, 0);
		mh.bias = bias;
		md.bias = db;
		lvd_buf_free(c, dgm), lvd_buf_free(c, drm);
		free(rm);
	}
	/* ragged capture rows */
	int off[4] = {0}, rows[16];
	for (int b = 0; b < B; b++) {
		off[b + 1] = off[b] + t->ncap[b];
		for (int r = 0; r < t->ncap[b]; r++) /* distinct rows, not in order, first and last included */
			rows[off[b] + r] = r == 0 ? Tq - 1 : r == 1 ? 0 : (r * 7 + b) % Tq;
	}
	int RC = off[B];
	struct lvd_attn_capture ch = {rows, off}, cd = {ml_dup_bytes(c, rows, sizeof(int) * (RC ? RC : 1)),
						       ml_dup_bytes(c, off, sizeof(int) * (B + 1))};
	size_t npc = (size_t)H * RC * Tk;
	float *dcap = hrand(npc + 1, 1.0f, 0);
	/* CPU oracle */
	float *out = malloc(sizeof(float) * nq), *st = malloc(sizeof(float) * ns), *pc = malloc(sizeof(float) * (npc + 1));
	REQUIRE(out && st && pc);
	lvd_attn_fwd_cpu(h, out, st, pc, q, k, v, &mh, &ch, scale, B, Tq, Tk, H, KH, D);
	float *gq = hcopy(dq0, nq), *gk = hcopy(dk0, nk), *gv = hcopy(dv0, nk);
	lvd_attn_bwd_cpu(h, gq, gk, gv, st, dout, dcap, q, k, v, &mh, &ch, scale, B, Tq, Tk, H, KH, D);
	/* CUDA */
	float *dQ = dupf(c, q, nq), *dK = dupf(c, k, nk), *dV = dupf(c, v, nk), *dO = dupf(c, dout, nq);
	float *dOut = lvd_buf_alloc(c, 4 * nq), *dSt = lvd_buf_alloc(c, 4 * ns), *dPc = lvd_buf_alloc(c, 4 * (npc + 1));
	float *dDc = dupf(c, dcap, npc + 1);
	REQUIRE(dOut && dSt && dPc);
	size_t mk = lvd_ctx_mark(c);
	lvd_attn_fwd(c, dOut, dSt, dPc, dQ, dK, dV, &md, &cd, scale, B, Tq, Tk, H, KH, D);
	/* out = Σ p·v: D-long fp32 dots in another order shift the scores by ~D·u·|s|
	 * (|s| <= ~2.3·sqrt(D)·scale), so p by that relative amount; 2e-5 of the largest
	 * value covers it with margin (a wrong mask or scale is off by > 1e-2). */
	ML_CMP(c, "attn out", dOut, out, nq, 1e-4, 2e-5);
	/* stats: the max score moves by the dot's rounding (~sqrt(D)·u·|q||k|·scale, up to ~1e-5
	 * absolute for D = 200), 1/Σ by that and the fp32 online sum (vs double): 1e-5 of the
	 * largest stat plus 1e-4 relative */
	ML_CMP(c, "attn stats", dSt, st, ns, 1e-4, 1e-5);
	/* captured probabilities: as out; masked keys must be exactly 0 (checked below) */
	if (RC) {
		ML_CMP(c, "attn probs_cap", dPc, pc, npc, 1e-4, 2e-6);
		float *g = down(c, dPc, npc);
		size_t bad = 0;
		for (size_t i = 0; i < npc; i++)
			bad += (pc[i] == 0.0f) != (g[i] == 0.0f);
		CHECKF(bad == 0, "%s: %zu captured probabilities zero on one side only", t->name, bad);
		free(g);
	}
	float *dGq = dupf(c, dq0, nq), *dGk = dupf(c, dk0, nk), *dGv = dupf(c, dv0, nk);
	/* backward from the CPU's stats, so both recompute the same probabilities */
	lvd_buf_upload(c, dSt, st, 4 * ns);
	lvd_attn_bwd(c, dGq, dGk, dGv, dSt, dO, dDc, dQ, dK, dV, &md, &cd, scale, B, Tq, Tk, H, KH, D);
	/* dS = p·(dP − D_i) cancels where dP ≈ D_i; sums of Tk (dq) or rep·Tq (dk, dv)
	 * products: 1e-4 of the largest gradient covers fp32 reordering of those sums. */
	ML_CMP(c, "attn dq", dGq, gq, nq, 1e-4, 1e-4);
	ML_CMP(c, "attn dk", dGk, gk, nk, 1e-4, 1e-4);
	ML_CMP(c, "attn dv", dGv, gv, nk, 1e-4, 5e-5);
	/* NULL gradients skipped; dv alone (no D_i pass) */
	lvd_buf_upload(c, dGv, dv0, 4 * nk);
	lvd_attn_bwd(c, NULL, NULL, NULL, dSt, dO, dDc, dQ, dK, dV, &md, &cd, scale, B, Tq, Tk, H, KH, D);
	lvd_attn_bwd(c, NULL, NULL, dGv, dSt, dO, dDc, dQ, dK, dV, &md, &cd, scale, B, Tq, Tk, H, KH, D);
	ML_CMP(c, "attn dv alone", dGv, gv, nk, 1e-4, 5e-5);
	lvd_ctx_sync(c);
	CHECK(lvd_ctx_mark(c) == mk);
	lvd_buf_free(c, dQ), lvd_buf_free(c, dK), lvd_buf_free(c, dV), lvd_buf_free(c, dO), lvd_buf_free(c, dOut);
	lvd_buf_free(c, dSt), lvd_buf_free(c, dPc), lvd_buf_free(c, dDc), lvd_buf_free(c, dGq), lvd_buf_free(c, dGk);
	lvd_buf_free(c, dGv), lvd_buf_free(c, (void *)cd.rows), lvd_buf_free(c, (void *)cd.off);
	if (md.pad)
		lvd_buf_free(c, (void *)md.pad);
	if (md.bias)
		lvd_buf_free(c, (void *)md.bias);
	free(q), free(k), free(v), free(dout), free(dq0), free(dk0), free(dv0), free(pad), free(bias), free(gm);
	free(dcap), free(out), free(st), free(pc), free(gq), free(gk), free(gv);
	lvd_ctx_destroy(h);
}

static void test_ml_attn(void)
{
	static const struct ml_attn_case cases[] = {
		{"none gqa odd", LVD_ATTN_MASK_NONE, 2, 37, 45, 4, 2, 24, {3, 1, 0}},
		{"causal mqa", LVD_ATTN_MASK_CAUSAL, 2, 70, 70, 4, 1, 64, {2, 3, 0}},
		{"padpair", LVD_ATTN_MASK_PADPAIR, 3, 33, 33, 2, 2, 16, {3, 2, 1}},
		{"bias groups", LVD_ATTN_MASK_BIAS, 2, 20, 50, 4, 2, 32, {2, 0, 0}},
		{"head dim 128", LVD_ATTN_MASK_CAUSAL, 1, 65, 65, 2, 2, 128, {1, 0, 0}},
		{"head dim 200 (>48 KiB shared)", LVD_ATTN_MASK_NONE, 1, 40, 33, 2, 1, 200, {0, 0, 0}},
		{"one key", LVD_ATTN_MASK_NONE, 1, 5, 1, 1, 1, 7, {1, 0, 0}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int before = lvd_t_fail_count;
		ml_attn_run(&cases[i]);
		if (lvd_t_fail_count != before)
			fprintf(stderr, "  (attn case \"%s\")\n", cases[i].name);
	}
}

/* ---- kvattn ---- */

static void test_ml_kvattn(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int B = 2, Tq = 3, Tk = 21, Tc = 30, H = 6, KH = 2, D = 40;
	size_t nq = (size_t)B * Tq * H * D, nc = (size_t)B * Tc * KH * D;
	float *q = hrand(nq, 1.5f, 0), *kc = hrand(nc, 1.5f, 0), *vc = hrand(nc, 1, 0);
	uint8_t keep[2 * 30];
	for (int b = 0; b < B; b++) /* sample 1 left-padded: its first 19 keys dropped, so query 0 sees none */
		for (int j = 0; j < Tc; j++)
			keep[b * Tc + j] = b == 0 ? (j % 4 != 2) : j >= 19;
	float *out = malloc(4 * nq);
	REQUIRE(out);
	lvd_kvattn_fwd_cpu(h, out, q, kc, vc, keep, 0.15f, B, Tq, Tk, Tc, H, KH, D);
	float *dQ = dupf(c, q, nq), *dK = dupf(c, kc, nc), *dV = dupf(c, vc, nc), *dO = lvd_buf_alloc(c, 4 * nq);
	uint8_t *dKeep = ml_dup_bytes(c, keep, sizeof keep);
	lvd_kvattn_fwd(c, dO, dQ, dK, dV, dKeep, 0.15f, B, Tq, Tk, Tc, H, KH, D);
	ML_CMP(c, "kvattn out", dO, out, nq, 1e-4, 2e-5); /* as attn out */
	float *g = down(c, dO, nq);
	size_t z = 0;
	for (int hh = 0; hh < H * D; hh++) /* sample 1, query 0: no visible key -> exactly 0 */
		z += g[(size_t)1 * Tq * H * D + hh] != 0.0f;
	CHECK(z == 0);
	lvd_kvattn_fwd(c, dO, dQ, dK, dV, NULL, 0.15f, B, Tq, Tk, Tc, H, KH, D); /* keep NULL: all kept */
	lvd_kvattn_fwd_cpu(h, out, q, kc, vc, NULL, 0.15f, B, Tq, Tk, Tc, H, KH, D);
	ML_CMP(c, "kvattn out, keep NULL", dO, out, nq, 1e-4, 2e-5);
	CHECK(lvd_ctx_mark(c) == 0);
	free(g), free(q), free(kc), free(vc), free(out);
	lvd_buf_free(c, dQ), lvd_buf_free(c, dK), lvd_buf_free(c, dV), lvd_buf_free(c, dO), lvd_buf_free(c, dKeep);
	lvd_ctx_destroy(h);
}

/* ---- embed ---- */

static void test_ml_embed(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int N = 29, C = 67, V = 11;
	int ids[29];
	for (int n = 0; n < N; n++)
		ids[n] = (n * 5 + 3) % V; /* repeats: the backward sums rows in order */
	float *tab = hrand((size_t)V * C, 1, 0), *dout = hrand((size_t)N * C, 1, 0), *dt0 = hrand((size_t)V * C, 1, 0);
	float *out = malloc(4 * (size_t)N * C), *dt = hcopy(dt0, (size_t)V * C);
	REQUIRE(out);
	lvd_embedding_fwd_cpu(h, out, ids, tab, N, C);
	lvd_embedding_bwd_cpu(h, dt, dout, ids, N, C);
	int *dIds = ml_dup_bytes(c, ids, sizeof ids);
	float *dTab = dupf(c, tab, (size_t)V * C), *dOut = lvd_buf_alloc(c, 4 * (size_t)N * C);
	float *dDo = dupf(c, dout, (size_t)N * C), *dDt = dupf(c, dt0, (size_t)V * C);
	lvd_embedding_fwd(c, dOut, dIds, dTab, N, C);
	ML_CMP(c, "embedding fwd", dOut, out, (size_t)N * C, 0, 0);     /* a copy */
	lvd_embedding_bwd(c, dDt, dDo, dIds, N, C);
	ML_CMP(c, "embedding bwd", dDt, dt, (size_t)V * C, 0, 0);       /* same adds, same order */
	/* RoPE: llama3 frequencies (host arithmetic: equal), rotation forward and inverse */
	int B = 2, T = 9, Hh = 3, D = 64, pos[9];
	for (int t = 0; t < T; t++)
		pos[t] = t * 1013 + 7; /* large angles: full-range sin/cos */
	float fr[32], *dFr = lvd_buf_alloc(c, sizeof fr);
	lvd_rope_freqs_cpu(h, fr, D, 500000.0, 1, 8.0, 1.0, 4.0, 8192.0);
	lvd_rope_freqs(c, dFr, D, 500000.0, 1, 8.0, 1.0, 4.0, 8192.0);
	ML_CMP(c, "rope freqs", dFr, fr, 32, 0, 0);
	size_t nx = (size_t)B * T * Hh * D;
	float *x = hrand(nx, 1, 0), *xr = hcopy(x, nx);
	float *dX = dupf(c, x, nx);
	int *dPos = ml_dup_bytes(c, pos, sizeof pos);
	for (int inv = 0; inv < 2; inv++) {
		lvd_rope_apply_cpu(h, xr, pos, fr, B, T, Hh, D, inv);
		lvd_rope_apply(c, dX, dPos, dFr, B, T, Hh, D, inv);
		/* cos/sin within 2 ulp of glibc's, x1·c − x2·s possibly fused: a few ulp of |x| <= 1.5 */
		ML_CMP(c, inv ? "rope inverse" : "rope", dX, xr, nx, 0, 1e-6);
	}
	/* patch unfold and the timestep embedding */
	int PC = 3, PH = 14, PW = 21, P = 7;
	size_t ni = (size_t)PC * PH * PW, ncol = (size_t)(PH / P) * (PW / P) * PC * P * P;
	float *img = hrand(ni, 1, 0), *cols = malloc(4 * ncol), *dImg = dupf(c, img, ni), *dCols = lvd_buf_alloc(c, 4 * ncol);
	REQUIRE(cols);
	lvd_patch_unfold_cpu(h, cols, img, PC, PH, PW, P);
	lvd_patch_unfold(c, dCols, dImg, PC, PH, PW, P);
	ML_CMP(c, "patch unfold", dCols, cols, ncol, 0, 0);
	float te[320], *dTe = lvd_buf_alloc(c, sizeof te);
	lvd_timestep_embedding_cpu(h, te, 981.0f, 320, 1, 0.0f, 10000.0f);
	lvd_timestep_embedding(c, dTe, 981.0f, 320, 1, 0.0f, 10000.0f);
	ML_CMP(c, "timestep embedding", dTe, te, 320, 0, 0);
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dIds), lvd_buf_free(c, dTab), lvd_buf_free(c, dOut), lvd_buf_free(c, dDo), lvd_buf_free(c, dDt);
	lvd_buf_free(c, dFr), lvd_buf_free(c, dX), lvd_buf_free(c, dPos), lvd_buf_free(c, dImg), lvd_buf_free(c, dCols);
	lvd_buf_free(c, dTe);
	free(tab), free(dout), free(dt0), free(out), free(dt), free(x), free(xr), free(img), free(cols);
	lvd_ctx_destroy(h);
}

/* ---- cross-entropy ---- */

static void test_ml_xent(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	static const int Vs[2] = {1000, 5003};
	for (int vi = 0; vi < 2; vi++) {
		int N = 9, V = Vs[vi];
		size_t n = (size_t)N * V;
		float *l = hrand(n, 8, 0), *d0 = hrand(n, 0.01f, 0), *d = hcopy(d0, n);
		int tg[9];
		for (int r = 0; r < N; r++)
			tg[r] = r % 4 == 1 ? -100 : (r * 131 + 17) % V;
		int cnt = 0, gcnt = -1;
		double want = lvd_xent_fwd_cpu(h, &cnt, l, tg, N, V);
		lvd_xent_bwd_cpu(h, d, l, tg, 1.0f / cnt, N, V);
		float *dL = dupf(c, l, n), *dD = dupf(c, d0, n);
		int *dT = ml_dup_bytes(c, tg, sizeof tg);
		double got = lvd_xent_fwd(c, &gcnt, dL, dT, N, V);
		CHECK(gcnt == cnt);
		/* per-row log-sum-exp in double, the exp sum in another order: ~1e-15 relative */
		CHECK_NEAR(got, want, 1e-12 * fabs(want));
		lvd_xent_bwd(c, dD, dL, dT, 1.0f / cnt, N, V);
		/* (float)(e^(l−m)/Σ) with Σ differing in its last double bits: at most 1 ulp of
		 * each probability term, then the same fp32 adds */
		ML_CMP(c, "xent dlogits", dD, d, n, 2.4e-7, 1e-7);
		/* fused: the same loss and, with another scale, the same gradient in one pass */
		float *d2 = hcopy(d0, n);
		int cnt2 = 0, gcnt2 = -1;
		double want2 = lvd_xent_fwd_bwd_cpu(h, d2, &cnt2, l, tg, 0.25f, N, V);
		lvd_buf_upload(c, dD, d0, 4 * n);
		double got2 = lvd_xent_fwd_bwd(c, dD, &gcnt2, dL, dT, 0.25f, N, V);
		CHECK(cnt2 == cnt && gcnt2 == cnt);
		CHECK_NEAR(got2, want2, 1e-12 * fabs(want2)); /* as above */
		ML_CMP(c, "xent fused dlogits", dD, d2, n, 2.4e-7, 1e-7);
		free(d2);
		CHECK(lvd_ctx_mark(c) == 0);
		lvd_buf_free(c, dL), lvd_buf_free(c, dD), lvd_buf_free(c, dT);
		free(l), free(d0), free(d);
	}
	lvd_ctx_destroy(h);
}

/* ---- AdamW, sum of squares ---- */

static void test_ml_adamw(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	size_t n = 70001;
	float *p = hrand(n, 1, 0), *m = hrand(n, 0.01f, 0), *v = hrand(n, 0.001f, 0.001f), *g = hrand(n, 0.1f, 0);
	float *dP = dupf(c, p, n), *dM = dupf(c, m, n), *dV = dupf(c, v, n), *dG = dupf(c, g, n);
	static const double cfg[3][3] = {{0.9, 0.999, 0.01}, {0.3, 0.95, 0.0}, {0.9, 0.999, 0.1}}; /* β1, β2, wd */
	for (int s = 0; s < 3; s++) { /* β1 = 0.3: torch's lerp's other branch (weight >= 0.5) */
		lvd_adamw_step_cpu(h, p, m, v, g, n, 1e-3, cfg[s][0], cfg[s][1], 1e-8, cfg[s][2], s + 1);
		lvd_adamw_step(c, dP, dM, dV, dG, n, 1e-3, cfg[s][0], cfg[s][1], 1e-8, cfg[s][2], s + 1);
	}
	/* the same fp32 operations in the same order (no contraction, IEEE sqrt and /): equal */
	ML_CMP(c, "adamw param", dP, p, n, 0, 0);
	ML_CMP(c, "adamw m", dM, m, n, 0, 0);
	ML_CMP(c, "adamw v", dV, v, n, 0, 0);
	double want = lvd_sumsq_cpu(h, g, n), got = lvd_sumsq(c, dG, n);
	CHECK_NEAR(got, want, 1e-13 * want); /* double sums, other order inside each chunk */
	CHECK(lvd_sumsq(c, dG, 0) == 0.0);
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dP), lvd_buf_free(c, dM), lvd_buf_free(c, dV), lvd_buf_free(c, dG);
	free(p), free(m), free(v), free(g);
	lvd_ctx_destroy(h);
}

/* ---- LoRA ---- */

static void test_ml_lora(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int N = 19, IC = 45, OC = 38, R = 8;
	size_t nx = (size_t)N * IC, no = (size_t)N * OC;
	float *x = hrand(nx, 1, 0), *A = malloc(4 * (size_t)R * IC), *Bw = hrand((size_t)OC * R, 0.5f, 0);
	REQUIRE(A);
	lvd_lora_init_a_cpu(h, A, R, IC, 77);
	float *dA_ = lvd_buf_alloc(c, 4 * (size_t)R * IC);
	lvd_lora_init_a(c, dA_, R, IC, 77);
	ML_CMP(c, "lora init A", dA_, A, (size_t)R * IC, 0, 0); /* same RNG, same double arithmetic */
	float *xd = malloc(4 * nx), *dX = dupf(c, x, nx), *dXd = lvd_buf_alloc(c, 4 * nx);
	REQUIRE(xd);
	lvd_lora_dropout_fwd_cpu(h, xd, x, nx, 0.3f, 5);
	lvd_lora_dropout_fwd(c, dXd, dX, nx, 0.3f, 5);
	ML_CMP(c, "lora dropout fwd", dXd, xd, nx, 0, 0);
	float *out = hrand(no, 1, 0), *u = malloc(4 * (size_t)N * R), *dOut = dupf(c, out, no);
	float *dU = lvd_buf_alloc(c, 4 * (size_t)N * R), *dBw = dupf(c, Bw, (size_t)OC * R);
	REQUIRE(u);
	lvd_lora_fwd(h, out, u, xd, A, Bw, 2.0f, N, IC, OC, R);
	lvd_lora_fwd(c, dOut, dU, dXd, dA_, dBw, 2.0f, N, IC, OC, R);
	/* the same function on both contexts: two fp32 GEMMs (K = IC, then R), cuBLASLt's order vs
	 * OpenBLAS's: (IC + R)·u of the terms */
	ML_CMP(c, "lora u", dU, u, (size_t)N * R, 1e-5, 1e-5);
	ML_CMP(c, "lora out", dOut, out, no, 1e-5, 1e-5);
	float *dy = hrand(no, 1, 0), *gx = hrand(nx, 0.1f, 0), *gA = hrand((size_t)R * IC, 0.1f, 0);
	float *gB = hrand((size_t)OC * R, 0.1f, 0);
	float *dDy = dupf(c, dy, no), *dGx = dupf(c, gx, nx), *dGA = dupf(c, gA, (size_t)R * IC);
	float *dGB = dupf(c, gB, (size_t)OC * R);
	lvd_buf_upload(c, dU, u, 4 * (size_t)N * R);
	lvd_lora_bwd(h, gx, gA, gB, dy, xd, u, A, Bw, 2.0f, N, IC, OC, R);
	lvd_lora_bwd(c, dGx, dGA, dGB, dDy, dXd, dU, dA_, dBw, 2.0f, N, IC, OC, R);
	ML_CMP(c, "lora dxd", dGx, gx, nx, 1e-5, 1e-5); /* GEMM chains of K <= OC + R */
	ML_CMP(c, "lora dA", dGA, gA, (size_t)R * IC, 1e-5, 1e-5);
	ML_CMP(c, "lora dB", dGB, gB, (size_t)OC * R, 1e-5, 1e-5);
	float *gx2 = hrand(nx, 0.1f, 0), *dGx2 = dupf(c, gx2, nx);
	lvd_lora_dropout_bwd_cpu(h, gx2, xd, nx, 0.3f, 5);
	lvd_lora_dropout_bwd(c, dGx2, dXd, nx, 0.3f, 5);
	ML_CMP(c, "lora dropout bwd", dGx2, gx2, nx, 0, 0); /* same mask, same fp32 ops */
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dA_), lvd_buf_free(c, dX), lvd_buf_free(c, dXd), lvd_buf_free(c, dOut), lvd_buf_free(c, dU);
	lvd_buf_free(c, dBw), lvd_buf_free(c, dDy), lvd_buf_free(c, dGx), lvd_buf_free(c, dGA), lvd_buf_free(c, dGB);
	lvd_buf_free(c, dGx2);
	free(x), free(A), free(Bw), free(xd), free(out), free(u), free(dy), free(gx), free(gA), free(gB), free(gx2);
	lvd_ctx_destroy(h);
}

/* ---- gates ---- */

static void test_ml_gate(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int N = 23, C = 301;
	size_t n = (size_t)N * C;
	float *x = hrand(n, 1, 0), *br = hrand(n, 1, 0), *dy = hrand(n, 1, 0), *db0 = hrand(n, 0.1f, 0);
	float gate = 0.7f, dg0 = 0.25f, rs[23];
	for (int r = 0; r < N; r++)
		rs[r] = r % 5 == 0 ? 0.0f : 1.0f;
	float *o = malloc(4 * n), *dbr = hcopy(db0, n), dg = dg0;
	REQUIRE(o);
	float *dX = dupf(c, x, n), *dBr = dupf(c, br, n), *dDy = dupf(c, dy, n), *dO = lvd_buf_alloc(c, 4 * n);
	float *dGate = dupf(c, &gate, 1), *dRs = dupf(c, rs, N), *dDb = dupf(c, db0, n), *dDg = dupf(c, &dg0, 1);
	for (int withrs = 0; withrs < 2; withrs++) {
		const float *hr = withrs ? rs : NULL, *drr = withrs ? dRs : NULL;
		lvd_gated_residual_fwd_cpu(h, o, x, br, &gate, hr, N, C);
		lvd_gated_residual_fwd(c, dO, dX, dBr, dGate, drr, N, C);
		/* tanhf on the device within 2 ulp of glibc's: out differs by ~2u·|branch| */
		ML_CMP(c, "gated residual", dO, o, n, 1e-6, 1e-6);
		lvd_gated_residual_bwd_cpu(h, dbr, &dg, dy, br, &gate, hr, N, C);
		lvd_gated_residual_bwd(c, dDb, dDg, dDy, dBr, dGate, drr, N, C);
		ML_CMP(c, "gated dbranch", dDb, dbr, n, 1e-6, 1e-6);
		/* Σ in double per row then in row order; (1 − g²) with g within 2 ulp */
		ML_CMP(c, "gated dgate", dDg, &dg, 1, 1e-5, 0);
	}
	lvd_gated_residual_fwd_cpu(h, o, x, br, NULL, NULL, N, C); /* no gate: plain residual, exact */
	lvd_gated_residual_fwd(c, dO, dX, dBr, NULL, NULL, N, C);
	ML_CMP(c, "residual", dO, o, n, 0, 0);
	lvd_row_mask_cpu(h, o, rs, N, C);
	lvd_row_mask(c, dO, dRs, N, C);
	ML_CMP(c, "row mask", dO, o, n, 0, 0);
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dX), lvd_buf_free(c, dBr), lvd_buf_free(c, dDy), lvd_buf_free(c, dO), lvd_buf_free(c, dGate);
	lvd_buf_free(c, dRs), lvd_buf_free(c, dDb), lvd_buf_free(c, dDg);
	free(x), free(br), free(dy), free(db0), free(o), free(dbr);
	lvd_ctx_destroy(h);
}

/* ---- vision embeddings ---- */

static void test_ml_vembed(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int NV = 2, TL = 4, np = 9, D = 24, na = 3, P1 = np + 1, Pp = 12, K = 2;
	int ar[2] = {2, 2}; /* the same aspect-ratio row twice: table gradients add up */
	size_t nh = (size_t)NV * TL * P1 * D, npf = (size_t)NV * TL * np * D;
	size_t npre = (size_t)na * TL * D, ntp = (size_t)na * TL * P1 * D, npos = (size_t)P1 * D;
	float *pf = hrand(npf, 1, 0), *cls = hrand(D, 1, 0), *pre = hrand(npre, 1, 0), *pos = hrand(npos, 1, 0);
	float *tp = hrand(ntp, 1, 0), pg = 0.4f, qg = -0.8f;
	float *hh = malloc(4 * nh);
	REQUIRE(hh);
	lvd_vembed_fwd_cpu(h, hh, pf, ar, cls, pre, &pg, pos, tp, &qg, NV, TL, np, D);
	float *dPf = dupf(c, pf, npf), *dCls = dupf(c, cls, D), *dPre = dupf(c, pre, npre), *dPos = dupf(c, pos, npos);
	float *dTp = dupf(c, tp, ntp), *dPg = dupf(c, &pg, 1), *dQg = dupf(c, &qg, 1), *dH = lvd_buf_alloc(c, 4 * nh);
	lvd_vembed_fwd(c, dH, dPf, ar, dCls, dPre, dPg, dPos, dTp, dQg, NV, TL, np, D);
	/* tanhf within 2 ulp: terms of |x| <= 3 move by a few ulp */
	ML_CMP(c, "vembed fwd", dH, hh, nh, 1e-6, 1e-6);
	/* backward, every gradient non-zero at the start */
	float *dh = hrand(nh, 1, 0);
	float *g_pf = hrand(npf, 0.1f, 0), *g_cls = hrand(D, 0.1f, 0), *g_pre = hrand(npre, 0.1f, 0);
	float *g_pos = hrand(npos, 0.1f, 0), *g_tp = hrand(ntp, 0.1f, 0), g_pg = 0.5f, g_qg = -0.5f;
	float *dDh = dupf(c, dh, nh), *dGpf = dupf(c, g_pf, npf), *dGcls = dupf(c, g_cls, D);
	float *dGpre = dupf(c, g_pre, npre), *dGpos = dupf(c, g_pos, npos), *dGtp = dupf(c, g_tp, ntp);
	float *dGpg = dupf(c, &g_pg, 1), *dGqg = dupf(c, &g_qg, 1);
	lvd_vembed_bwd_cpu(h, g_pf, g_cls, g_pre, &g_pg, g_pos, g_tp, &g_qg, dh, ar, pre, &pg, pos, tp, &qg, NV, TL, np, D);
	lvd_vembed_bwd(c, dGpf, dGcls, dGpre, dGpg, dGpos, dGtp, dGqg, dDh, ar, dPre, dPg, dPos, dTp, dQg, NV, TL, np, D);
	ML_CMP(c, "vembed dpf", dGpf, g_pf, npf, 0, 0);       /* plain adds in the CPU's order */
	ML_CMP(c, "vembed dcls", dGcls, g_cls, D, 0, 0);
	ML_CMP(c, "vembed dpre_tile", dGpre, g_pre, npre, 1e-6, 1e-6); /* tanh-scaled: 2 ulp */
	ML_CMP(c, "vembed dpos", dGpos, g_pos, npos, 1e-6, 1e-6);
	ML_CMP(c, "vembed dtile_pos", dGtp, g_tp, ntp, 1e-6, 1e-6);
	/* double sums in another grouping, (1 − tanh²) within a few ulp */
	ML_CMP(c, "vembed dpre_gate", dGpg, &g_pg, 1, 1e-5, 0);
	ML_CMP(c, "vembed dpos_gate", dGqg, &g_qg, 1, 1e-5, 0);
	/* tile add over the padded sequence */
	size_t nx = (size_t)NV * TL * Pp * D;
	float *x = hrand(nx, 1, 0), *dX = dupf(c, x, nx), *dx = hrand(nx, 1, 0), *dDx = dupf(c, dx, nx);
	float *gt = hrand(npre, 0.1f, 0), gg = 0.3f, *dGt = dupf(c, gt, npre), *dGg = dupf(c, &gg, 1);
	lvd_vembed_tile_add_fwd_cpu(h, x, ar, pre, &pg, NV, TL, Pp, D);
	lvd_vembed_tile_add_fwd(c, dX, ar, dPre, dPg, NV, TL, Pp, D);
	ML_CMP(c, "tile add fwd", dX, x, nx, 1e-6, 1e-6);
	lvd_vembed_tile_add_bwd_cpu(h, gt, &gg, dx, ar, pre, &pg, NV, TL, Pp, D);
	lvd_vembed_tile_add_bwd(c, dGt, dGg, dDx, ar, dPre, dPg, NV, TL, Pp, D);
	ML_CMP(c, "tile add dtable", dGt, gt, npre, 1e-6, 1e-6);
	ML_CMP(c, "tile add dgate", dGg, &gg, 1, 1e-5, 0);
	/* gather of the last and K intermediate layers, and its backward per part */
	size_t nseq = (size_t)NV * TL * Pp * D, OD = (size_t)D * (1 + K), nf = (size_t)NV * TL * P1 * OD;
	float *last = hrand(nseq, 1, 0), *i0 = hrand(nseq, 1, 0), *i1 = hrand(nseq, 1, 0), *f = malloc(4 * nf);
	REQUIRE(f);
	const float *inter[2] = {i0, i1};
	lvd_vembed_gather_fwd_cpu(h, f, last, inter, NV, TL, P1, Pp, D, K);
	float *dLast = dupf(c, last, nseq), *dI0 = dupf(c, i0, nseq), *dI1 = dupf(c, i1, nseq);
	float *dF = lvd_buf_alloc(c, 4 * nf);
	const float *dinter[2] = {dI0, dI1};
	lvd_vembed_gather_fwd(c, dF, dLast, dinter, NV, TL, P1, Pp, D, K);
	ML_CMP(c, "gather fwd", dF, f, nf, 0, 0);
	float *df = hrand(nf, 1, 0), *dDf = dupf(c, df, nf);
	for (int part = 0; part <= K; part++) {
		lvd_vembed_gather_bwd_cpu(h, last, df, part, NV, TL, P1, Pp, D, K);
		lvd_vembed_gather_bwd(c, dLast, dDf, part, NV, TL, P1, Pp, D, K);
	}
	ML_CMP(c, "gather bwd (3 parts into one buffer)", dLast, last, nseq, 0, 0);
	/* pad flags */
	int tm[8] = {1, 1, 0, 1, 1, 0, 0, 0};
	size_t npd = (size_t)NV * TL * Pp;
	uint8_t *pd = malloc(npd), *gpd = malloc(npd);
	REQUIRE(pd && gpd);
	lvd_vembed_pad_flags_cpu(h, pd, tm, NV, TL, P1, Pp);
	int *dTm = ml_dup_bytes(c, tm, sizeof tm);
	uint8_t *dPd = lvd_buf_alloc(c, npd);
	lvd_vembed_pad_flags(c, dPd, dTm, NV, TL, P1, Pp);
	lvd_buf_download(c, gpd, dPd, npd);
	CHECK(memcmp(pd, gpd, npd) == 0);
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dPf), lvd_buf_free(c, dCls), lvd_buf_free(c, dPre), lvd_buf_free(c, dPos), lvd_buf_free(c, dTp);
	lvd_buf_free(c, dPg), lvd_buf_free(c, dQg), lvd_buf_free(c, dH), lvd_buf_free(c, dDh), lvd_buf_free(c, dGpf);
	lvd_buf_free(c, dGcls), lvd_buf_free(c, dGpre), lvd_buf_free(c, dGpos), lvd_buf_free(c, dGtp);
	lvd_buf_free(c, dGpg), lvd_buf_free(c, dGqg), lvd_buf_free(c, dX), lvd_buf_free(c, dDx), lvd_buf_free(c, dGt);
	lvd_buf_free(c, dGg), lvd_buf_free(c, dLast), lvd_buf_free(c, dI0), lvd_buf_free(c, dI1), lvd_buf_free(c, dF);
	lvd_buf_free(c, dDf), lvd_buf_free(c, dTm), lvd_buf_free(c, dPd);
	free(pf), free(cls), free(pre), free(pos), free(tp), free(hh), free(dh), free(g_pf), free(g_cls), free(g_pre);
	free(g_pos), free(g_tp), free(x), free(dx), free(gt), free(last), free(i0), free(i1), free(f), free(df);
	free(pd), free(gpd);
	lvd_ctx_destroy(h);
}

/* ---- the Aligner's ops: InstanceNorm, conv backward; map geometry: areaw ---- */

static void test_ml_aligner(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	int B = 2, C = 5, HW = 37 * 3;
	size_t n = (size_t)B * C * HW;
	float *x = hrand(n, 2, 0.5f), *w = hrand(C, 1, 0), *b = hrand(C, 1, 0), *y = malloc(4 * n);
	float mean[10], rstd[10];
	REQUIRE(y);
	lvd_instnorm_fwd_cpu(h, y, mean, rstd, x, w, b, B, C, HW, 1e-5f);
	float *dX = dupf(c, x, n), *dW = dupf(c, w, C), *dB = dupf(c, b, C), *dY = lvd_buf_alloc(c, 4 * n);
	float *dM = lvd_buf_alloc(c, sizeof mean), *dR = lvd_buf_alloc(c, sizeof rstd);
	lvd_instnorm_fwd(c, dY, dM, dR, dX, dW, dB, B, C, HW, 1e-5f);
	/* statistics in double both sides; the affine as x·a + (b − mean·a) vs (x − mean)·a + b:
	 * a few ulp of (|x| + |mean|)·rstd·|w| (as test_groupnorm) */
	ML_CMP(c, "instnorm fwd", dY, y, n, 1e-5, 1e-6);
	ML_CMP(c, "instnorm mean", dM, mean, 10, 1e-6, 1e-7);
	ML_CMP(c, "instnorm rstd", dR, rstd, 10, 1e-6, 0);
	float *dy = hrand(n, 1, 0), *gx = hrand(n, 0.1f, 0), *gw = hrand(C, 0.1f, 0), *gb = hrand(C, 0.1f, 0);
	float *dDy = dupf(c, dy, n), *dGx = dupf(c, gx, n), *dGw = dupf(c, gw, C), *dGb = dupf(c, gb, C);
	lvd_instnorm_bwd_cpu(h, gx, gw, gb, dy, x, w, mean, rstd, B, C, HW);
	lvd_buf_upload(c, dM, mean, sizeof mean), lvd_buf_upload(c, dR, rstd, sizeof rstd);
	lvd_instnorm_bwd(c, dGx, dGw, dGb, dDy, dX, dW, dM, dR, B, C, HW);
	ML_CMP(c, "instnorm dx", dGx, gx, n, 1e-5, 1e-5); /* double reductions, other order */
	ML_CMP(c, "instnorm dw", dGw, gw, C, 1e-5, 1e-6);
	ML_CMP(c, "instnorm db", dGb, gb, C, 1e-6, 1e-7);
	/* conv backward: 3×3 stride 1 pad 1, and 4×4 stride 2 with uneven pads */
	static const int cv[2][8] = {{3, 3, 1, 1, 1, 1, 1, 0}, {4, 4, 2, 1, 0, 2, 1, 1}}; /* KH KW s pt pl pb pr - */
	for (int ci = 0; ci < 2; ci++) {
		int CB = 2, CC = 3, CH = 13, CW = 11, OC = 4, KH = cv[ci][0], KW = cv[ci][1], s = cv[ci][2];
		int pt = cv[ci][3], pl = cv[ci][4], pb = cv[ci][5], pr = cv[ci][6];
		int OH = lvd_conv_out_size(CH, KH, s, pt, pb), OW = lvd_conv_out_size(CW, KW, s, pl, pr);
		size_t ni = (size_t)CB * CC * CH * CW, nw = (size_t)OC * CC * KH * KW, no = (size_t)CB * OC * OH * OW;
		float *ci_ = hrand(ni, 1, 0), *cw = hrand(nw, 0.5f, 0), *cdy = hrand(no, 1, 0);
		float *cgx = hrand(ni, 0.1f, 0), *cgw = hrand(nw, 0.1f, 0), *cgb = hrand(OC, 0.1f, 0);
		float *dCi = dupf(c, ci_, ni), *dCw = dupf(c, cw, nw), *dCdy = dupf(c, cdy, no);
		float *dCgx = dupf(c, cgx, ni), *dCgw = dupf(c, cgw, nw), *dCgb = dupf(c, cgb, OC);
		lvd_conv2d_bwd_cpu(h, cgx, cgw, cgb, cdy, ci_, cw, CB, CC, CH, CW, OC, KH, KW, s, pt, pl, pb, pr);
		lvd_conv2d_bwd(c, dCgx, dCgw, dCgb, dCdy, dCi, dCw, CB, CC, CH, CW, OC, KH, KW, s, pt, pl, pb, pr);
		/* fp32 GEMMs of K = OC (dx) and OH·OW (dw) in another order; db: double sums */
		ML_CMP(c, "conv bwd dx", dCgx, cgx, ni, 1e-5, 1e-5);
		ML_CMP(c, "conv bwd dw", dCgw, cgw, nw, 1e-5, 1e-5);
		ML_CMP(c, "conv bwd db", dCgb, cgb, OC, 1e-6, 1e-7);
		lvd_buf_free(c, dCi), lvd_buf_free(c, dCw), lvd_buf_free(c, dCdy), lvd_buf_free(c, dCgx);
		lvd_buf_free(c, dCgw), lvd_buf_free(c, dCgb);
		free(ci_), free(cw), free(cdy), free(cgx), free(cgw), free(cgb);
	}
	/* areaw: canvas mode (step past the extent: empty footprints) and --grid mode */
	static const double fp[2][4] = {{100, 100.0 / 7, 90, 14}, {100, 10, 75, 7.5}}; /* ext_h step_h ext_w step_w */
	for (int fi = 0; fi < 2; fi++) {
		int AB = 2, AC = 3, AH = 17, AW = 13, AOH = 9, AOW = 10;
		size_t ni = (size_t)AB * AC * AH * AW, no = (size_t)AB * AC * AOH * AOW;
		float *ai = hrand(ni, 1, 0), *ao = malloc(4 * no), *ady = hrand(no, 1, 0), *agx = hrand(ni, 0.1f, 0);
		REQUIRE(ao);
		float *dAi = dupf(c, ai, ni), *dAo = lvd_buf_alloc(c, 4 * no), *dAdy = dupf(c, ady, no), *dAgx = dupf(c, agx, ni);
		lvd_resample_areaw_fwd_cpu(h, ao, ai, AB, AC, AH, AW, AOH, AOW, fp[fi][0], fp[fi][1], fp[fi][2], fp[fi][3]);
		lvd_resample_areaw_fwd(c, dAo, dAi, AB, AC, AH, AW, AOH, AOW, fp[fi][0], fp[fi][1], fp[fi][2], fp[fi][3]);
		ML_CMP(c, "areaw fwd", dAo, ao, no, 0, 0); /* the CPU's double ops in its order */
		lvd_resample_areaw_bwd_cpu(h, agx, ady, AB, AC, AH, AW, AOH, AOW, fp[fi][0], fp[fi][1], fp[fi][2], fp[fi][3]);
		lvd_resample_areaw_bwd(c, dAgx, dAdy, AB, AC, AH, AW, AOH, AOW, fp[fi][0], fp[fi][1], fp[fi][2], fp[fi][3]);
		ML_CMP(c, "areaw bwd", dAgx, agx, ni, 0, 0);
		lvd_buf_free(c, dAi), lvd_buf_free(c, dAo), lvd_buf_free(c, dAdy), lvd_buf_free(c, dAgx);
		free(ai), free(ao), free(ady), free(agx);
	}
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dB), lvd_buf_free(c, dY), lvd_buf_free(c, dM);
	lvd_buf_free(c, dR), lvd_buf_free(c, dDy), lvd_buf_free(c, dGx), lvd_buf_free(c, dGw), lvd_buf_free(c, dGb);
	free(x), free(w), free(b), free(y), free(dy), free(gx), free(gw), free(gb);
	lvd_ctx_destroy(h);
}

/* ---- fused LM head + CE (xent.h lvd_lmhead_xent_*) ----
 * CUDA vs the CPU op on the same inputs: N 37 rows (every 5th ignored), D 64, V 5003 in
 * chunks 2048 (2 full + 907) and one chunk. Loss: the logits from cuBLASLt (fp32, another
 * summation order than OpenBLAS: ~1e-6 relative per logit) through the log-sum-exp:
 * 1e-5 relative. lse: the same, 1e-5 absolute. dh, dW (start non-zero: the twins
 * accumulate): those logits' rounding through exp and two GEMMs: tol(1e-4, 1e-5). */
static void test_ml_lmhead_xent(void)
{
	struct lvd_ctx *c = gpu(), *h = ml_cpu();
	enum { N = 37, D = 64, V = 5003 };
	static const int chunks[2] = {2048, 8192};
	float *x = hrand((size_t)N * D, 1, 0), *w = hrand((size_t)V * D, 0.3f, 0);
	float *gh0 = hrand((size_t)N * D, 0.01f, 0), *gw0 = hrand((size_t)V * D, 0.01f, 0);
	int tg[N];
	for (int r = 0; r < N; r++)
		tg[r] = r % 5 == 3 ? -100 : (r * 977 + 5) % V;
	tg[0] = 2047, tg[1] = 2048, tg[2] = V - 1; /* chunk borders, the last column */
	float *dX = dupf(c, x, (size_t)N * D), *dW = dupf(c, w, (size_t)V * D);
	float *dGh = dupf(c, gh0, (size_t)N * D), *dGw = dupf(c, gw0, (size_t)V * D);
	int *dT = ml_dup_bytes(c, tg, sizeof tg);
	double *dL = lvd_buf_alloc(c, sizeof(double) * N);
	for (int k = 0; k < 2; k++) {
		double lse[N], glse[N];
		int cnt = 0, gcnt = -1;
		double want = lvd_lmhead_xent_fwd(h, lse, &cnt, x, w, tg, N, D, V, chunks[k]);
		double got = lvd_lmhead_xent_fwd(c, dL, &gcnt, dX, dW, dT, N, D, V, chunks[k]);
		CHECK(gcnt == cnt && cnt == 29);
		CHECK_NEAR(got, want, 1e-5 * fabs(want)); /* fp32 logits in another order, see above */
		lvd_buf_download(c, glse, dL, sizeof glse);
		for (int r = 0; r < N; r++)
			CHECK(tg[r] == -100 ? isnan(glse[r]) : fabs(glse[r] - lse[r]) <= 1e-5);
		float *gh = hcopy(gh0, (size_t)N * D), *gw = hcopy(gw0, (size_t)V * D);
		lvd_lmhead_xent_bwd(h, gh, gw, lse, x, w, tg, 1.0f / cnt, N, D, V, chunks[k]);
		lvd_buf_upload(c, dGh, gh0, sizeof(float) * N * D);
		lvd_buf_upload(c, dGw, gw0, sizeof(float) * V * D);
		lvd_lmhead_xent_bwd(c, dGh, dGw, dL, dX, dW, dT, 1.0f / cnt, N, D, V, chunks[k]);
		ML_CMP(c, "lmhead dh", dGh, gh, (size_t)N * D, 1e-4, 1e-5);
		ML_CMP(c, "lmhead dW", dGw, gw, (size_t)V * D, 1e-4, 1e-5);
		free(gh), free(gw);
	}
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dGh), lvd_buf_free(c, dGw), lvd_buf_free(c, dT);
	lvd_buf_free(c, dL);
	free(x), free(w), free(gh0), free(gw0);
	lvd_ctx_destroy(h);
}

#define LVD_CASES_MLLAMA                                                                                     \
	TEST(test_ml_attn), TEST(test_ml_kvattn), TEST(test_ml_embed), TEST(test_ml_xent),                   \
		TEST(test_ml_lmhead_xent), TEST(test_ml_adamw), TEST(test_ml_lora), TEST(test_ml_gate),      \
		TEST(test_ml_vembed), TEST(test_ml_aligner)
