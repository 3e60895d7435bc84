/* tests/unit/test_mops.c — the model-glue ops that replaced inline loops in
 * lib/models/mllama (lib/nn/ops/gate.h, vembed.h, lvd_attn_group_bias): forward and
 * backward against the loops they replace (kept here as the oracle, bitwise or to
 * double-sum rounding), and gate gradients against central finite differences. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/ctx.h"
#include "nn/ops/attn.h"
#include "nn/ops/gate.h"
#include "nn/ops/vembed.h"

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

/* tanhf at run time, as the ops call it (a constant argument would be folded by the
 * compiler with correct rounding, which may differ from libm by 1 ulp) */
static float rt_tanhf(float x)
{
	volatile float v = x;
	return tanhf(v);
}

static struct lvd_ctx *mkctx(int threads)
{
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = { 0 };
	struct lvd_ctx_opts o = { .threads = threads, .ws_bytes = (size_t)1 << 26 };
	return lvd_ctx_create(&ctx, &o, &err) ? NULL : ctx;
}

/* the mllama text loop: out = x + gm·rowmask·m (cross MLP branch) */
static void test_gate(void)
{
	enum { N = 300, C = 130 };   /* N·C above the parallel threshold */
	struct lvd_ctx *c1 = mkctx(1), *c2 = mkctx(2);
	REQUIRE(c1 && c2);
	float *x = rnd(N * C, 1), *br = rnd(N * C, 1), *dout = rnd(N * C, 1), gate = 0.4f;
	float *rows = malloc(sizeof(float) * N), *o1 = malloc(4 * N * C), *o2 = malloc(4 * N * C), *want = malloc(4 * N * C);
	for (int r = 0; r < N; r++)
		rows[r] = (r % 3) ? 1.0f : 0.0f;
	float gm = rt_tanhf(gate);
	for (int r = 0; r < N; r++)
		for (int d = 0; d < C; d++) {
			size_t i = (size_t)r * C + d;
			want[i] = x[i] + gm * rows[r] * br[i];
		}
	lvd_gated_residual_fwd(c1, o1, x, br, &gate, rows, N, C);
	lvd_gated_residual_fwd(c2, o2, x, br, &gate, rows, N, C);
	CHECK(memcmp(o1, want, 4 * N * C) == 0 && memcmp(o2, want, 4 * N * C) == 0);
	lvd_gated_residual_fwd(c1, o1, x, br, NULL, NULL, N, C); /* plain residual */
	int plain = 1;
	for (size_t i = 0; i < (size_t)N * C; i++)
		plain &= o1[i] == x[i] + br[i];
	CHECK(plain);
	/* backward: the old loops */
	double gsum = 0;
	for (int r = 0; r < N; r++)
		for (int d = 0; d < C; d++) {
			size_t i = (size_t)r * C + d;
			want[i] = 0.5f + gm * rows[r] * dout[i];
			if (rows[r] != 0.0f)
				gsum += (double)dout[i] * br[i];
		}
	float gwant = 0.25f + (1.0f - gm * gm) * (float)gsum, dgate = 0.25f;
	for (size_t i = 0; i < (size_t)N * C; i++)
		o2[i] = 0.5f;
	lvd_gated_residual_bwd(c2, o2, &dgate, dout, br, &gate, rows, N, C);
	CHECK(memcmp(o2, want, 4 * N * C) == 0); /* accumulates */
	CHECK_NEAR(dgate, gwant, 1e-6 * fabs(gwant));
	/* dgate against central differences of loss = Σ out·dout (double loss) */
	double l[2];
	for (int s = 0; s < 2; s++) {
		float g2 = gate + (s ? -1e-3f : 1e-3f);
		lvd_gated_residual_fwd(c1, o1, x, br, &g2, rows, N, C);
		l[s] = 0;
		for (size_t i = 0; i < (size_t)N * C; i++)
			l[s] += (double)o1[i] * dout[i];
	}
	/* fp32 outputs ~1e-7 relative of O(100) sums over 2e-3: ~1e-2 of a gradient ~100 */
	CHECK_NEAR(dgate - 0.25f, (l[0] - l[1]) / 2e-3, 1e-3 * fabs(dgate) + 0.05);
	/* row mask: the mllama Meta row-masking loop */
	memcpy(o1, x, 4 * N * C);
	memcpy(want, x, 4 * N * C);
	for (int r = 0; r < N; r++)
		if (rows[r] == 0.0f)
			memset(want + (size_t)r * C, 0, sizeof(float) * C);
	lvd_row_mask(c1, o1, rows, N, C);
	CHECK(memcmp(o1, want, 4 * N * C) == 0 && o1[C] == x[C] && o1[0] == 0.0f);
	lvd_ctx_destroy(c1), lvd_ctx_destroy(c2);
	free(x), free(br), free(dout), free(rows), free(o1), free(o2), free(want);
}

/* the mllama vision loops (tile/position embeddings, post-tile embedding, features) */
static void test_vembed(void)
{
	enum { NV = 2, TL = 3, np = 4, P1 = np + 1, Pp = 8, D = 5, NA = 4, K = 2, L = TL * Pp };
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	int ar[NV] = { 3, 1 };
	float *pf = rnd(NV * TL * np * D, 1), *cls = rnd(D, 1), *pre = rnd(NA * TL * D, 1), pre_g = 0.3f;
	float *pos = rnd(P1 * D, 1), *tpos = rnd(NA * TL * P1 * D, 1), pos_g = -0.6f;
	float *h = malloc(4 * NV * TL * P1 * D), *want = malloc(4 * NV * TL * P1 * D);
	float tpre = rt_tanhf(pre_g), tp_ = rt_tanhf(pos_g);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++) {
			float *hh = want + ((size_t)n * TL + t) * P1 * D;
			const float *pr = pre + ((size_t)ar[n] * TL + t) * D;
			memcpy(hh, cls, sizeof(float) * D);
			for (int p = 0; p < np; p++)
				for (int d = 0; d < D; d++)
					hh[(p + 1) * D + d] = pf[(((size_t)n * TL + t) * np + p) * D + d] + pr[d] * tpre;
			const float *tt = tpos + (((size_t)ar[n] * TL + t) * P1) * D;
			for (int i = 0; i < P1 * D; i++)
				hh[i] = hh[i] + (1.0f - tp_) * pos[i] + tp_ * tt[i];
		}
	lvd_vembed_fwd(ctx, h, pf, ar, cls, pre, &pre_g, pos, tpos, &pos_g, NV, TL, np, D);
	CHECK_CLOSE("vembed fwd (bitwise)", h, want, NV * TL * P1 * D, 0, 0);
	/* backward: every gradient against finite differences of Σ h·R (linear in all but
	 * the gates, so exact up to fp32 rounding; gates: eps 1e-3) */
	float *R = rnd(NV * TL * P1 * D, 1);
	float *dpf = calloc(NV * TL * np * D, 4), *dcls = calloc(D, 4), *dpre = calloc(NA * TL * D, 4), dpre_g = 0;
	float *dpos = calloc(P1 * D, 4), *dtpos = calloc(NA * TL * P1 * D, 4), dpos_g = 0;
	lvd_vembed_bwd(ctx, dpf, dcls, dpre, &dpre_g, dpos, dtpos, &dpos_g, R, ar, pre, &pre_g, pos, tpos, &pos_g, NV, TL,
		       np, D);
	float *vars[7] = { pf, cls, pre, &pre_g, pos, tpos, &pos_g };
	float *grads[7] = { dpf, dcls, dpre, &dpre_g, dpos, dtpos, &dpos_g };
	size_t ns[7] = { NV * TL * np * D, D, NA * TL * D, 1, P1 * D, NA * TL * P1 * D, 1 };
	const char *names[7] = { "dpf", "dcls", "dpre_tile", "dpre_gate", "dpos", "dtile_pos", "dpos_gate" };
	for (int v = 0; v < 7; v++) {
		float *num = malloc(4 * ns[v]);
		for (size_t i = 0; i < ns[v]; i++) {
			float x0 = vars[v][i];
			double l[2];
			for (int s = 0; s < 2; s++) {
				vars[v][i] = x0 + (s ? -1e-3f : 1e-3f);
				lvd_vembed_fwd(ctx, h, pf, ar, cls, pre, &pre_g, pos, tpos, &pos_g, NV, TL, np, D);
				l[s] = 0;
				for (size_t j = 0; j < (size_t)NV * TL * P1 * D; j++)
					l[s] += (double)h[j] * R[j];
			}
			vars[v][i] = x0;
			num[i] = (float)((l[0] - l[1]) / 2e-3);
		}
		/* fp32 h of O(1) over eps 1e-3: ~1e-4 absolute per value, summed ~1e-3 */
		CHECK_CLOSE(names[v], grads[v], num, ns[v], 2e-3, 2e-3);
		free(num);
	}
	/* post-tile embedding: in place on the padded sequence */
	float *x = rnd(NV * L * D, 1), *x2 = malloc(4 * NV * L * D), post_g = 0.7f;
	memcpy(x2, x, 4 * NV * L * D);
	float tpost = rt_tanhf(post_g);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < Pp; p++)
				for (int d = 0; d < D; d++)
					x2[((size_t)n * L + t * Pp + p) * D + d] += tpost * pre[((size_t)ar[n] * TL + t) * D + d];
	lvd_vembed_tile_add_fwd(ctx, x, ar, pre, &post_g, NV, TL, Pp, D);
	CHECK_CLOSE("tile_add fwd (bitwise)", x, x2, NV * L * D, 0, 0);
	float *dtab = calloc(NA * TL * D, 4), dg = 0, *dx = rnd(NV * L * D, 1), *tw = calloc(NA * TL * D, 4);
	double gs = 0;
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < Pp; p++)
				for (int d = 0; d < D; d++) {
					float g = dx[((size_t)n * L + t * Pp + p) * D + d];
					gs += (double)g * pre[((size_t)ar[n] * TL + t) * D + d];
					tw[((size_t)ar[n] * TL + t) * D + d] += tpost * g;
				}
	lvd_vembed_tile_add_bwd(ctx, dtab, &dg, dx, ar, pre, &post_g, NV, TL, Pp, D);
	CHECK_CLOSE("tile_add dtable", dtab, tw, NA * TL * D, 1e-6, 1e-6);
	CHECK_NEAR(dg, (1.0f - tpost * tpost) * gs, 1e-5 * fabs(gs) + 1e-6);
	/* features: [last | interleaved intermediates], pads dropped; backward = scatter */
	float *last = rnd(NV * L * D, 1), *i0 = rnd(NV * L * D, 1), *i1 = rnd(NV * L * D, 1);
	const float *inter[2] = { i0, i1 };
	size_t OD = D * (1 + K), nf = (size_t)NV * TL * P1 * OD;
	float *f = malloc(4 * nf);
	lvd_vembed_gather_fwd(ctx, f, last, inter, NV, TL, P1, Pp, D, K);
	int ok = 1;
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < P1; p++) {
				size_t row = (size_t)n * L + t * Pp + p;
				const float *fr = f + (((size_t)n * TL + t) * P1 + p) * OD;
				for (int d = 0; d < D; d++)
					ok &= fr[d] == last[row * D + d] && fr[D + d * K] == i0[row * D + d] &&
					      fr[D + d * K + 1] == i1[row * D + d];
			}
	CHECK(ok);
	float *dl = calloc(NV * L * D, 4), *di1 = calloc(NV * L * D, 4);
	lvd_vembed_gather_bwd(ctx, dl, f, 0, NV, TL, P1, Pp, D, K);
	lvd_vembed_gather_bwd(ctx, di1, f, 2, NV, TL, P1, Pp, D, K);
	ok = 1;
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < Pp; p++) {
				size_t row = (size_t)n * L + t * Pp + p;
				for (int d = 0; d < D; d++)
					ok &= p < P1 ? dl[row * D + d] == last[row * D + d] && di1[row * D + d] == i1[row * D + d]
						     : dl[row * D + d] == 0 && di1[row * D + d] == 0;
			}
	CHECK(ok);
	/* pad flags: padding tokens and unused tiles */
	int tmask[NV * TL] = { 1, 0, 1, 1, 1, 0 };
	uint8_t pad[NV * L];
	lvd_vembed_pad_flags(ctx, pad, tmask, NV, TL, P1, Pp);
	ok = 1;
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < Pp; p++)
				ok &= pad[(size_t)n * L + t * Pp + p] == ((p >= P1) || !tmask[n * TL + t]);
	CHECK(ok && pad[0] == 0 && pad[P1] == 1 && pad[Pp] == 1);
	lvd_ctx_destroy(ctx);
	free(pf), free(cls), free(pre), free(pos), free(tpos), free(h), free(want), free(R), free(dpf), free(dcls);
	free(dpre), free(dpos), free(dtpos), free(x), free(x2), free(dtab), free(dx), free(tw), free(last), free(i0);
	free(i1), free(f), free(dl), free(di1);
}

/* the mllama cross-attention mask loop (HF _prepare_cross_attention_mask) */
static void test_group_bias(void)
{
	enum { N = 4, G = 3, P = 2 };
	int gm[N * G] = { 1, 0, 1, /* */ 0, 0, 0, /* */ 0, 1, 0, /* */ 1, 1, 1 };
	float bias[N * G * P], rm[N];
	struct lvd_ctx *ctx = mkctx(1);
	REQUIRE(ctx);
	lvd_attn_group_bias(ctx, bias, rm, gm, N, G, P);
	CHECK(rm[0] == 1 && rm[1] == 0 && rm[2] == 1 && rm[3] == 1);
	CHECK(bias[0] == 0 && bias[1] == 0 && bias[2] == -FLT_MAX && bias[3] == -FLT_MAX && bias[4] == 0);
	int zero = 1;
	for (int j = 0; j < G * P; j++)
		zero &= bias[G * P + j] == 0.0f; /* image-less row: plain softmax over all keys */
	CHECK(zero);
	CHECK(bias[2 * G * P] == -FLT_MAX && bias[2 * G * P + 2] == 0);
	lvd_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_gate), TEST(test_vembed), TEST(test_group_bias), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
