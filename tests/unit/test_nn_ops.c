/* tests/unit/test_nn_ops.c — forward ops of lib/nn/ops/<family>.h against plain-loop
 * oracles in double precision (and closed-form values), on odd shapes that hit every
 * edge: asymmetric padding, stride 2, attention blocks smaller than the query count,
 * causal masks, head-averaged probabilities. Every op runs on a one-thread context with
 * the fast CPU paths, one with the plain paths only (cpu_fast = 0), and a 3-thread
 * context (ragged pool chunks); each must give the workspace back. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/attention.h"
#include "nn/ops/conv.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/resample.h"
#include "nn/ops/softmax.h"

/* ctx1: 1 thread, fast paths; ctxp: 1 thread, plain paths; ctx3: 3 threads, fast */
static struct lvd_ctx *ctx1, *ctxp, *ctx3;
static struct lvd_ctx *make_ctx(int threads, int plain)
{
	struct lvd_ctx *c = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts o = {.threads = threads, .cpu_plain = plain, .ws_bytes = (size_t)1 << 30};
	REQUIRE(lvd_ctx_create(&c, &o, &err) == 0);
	return c;
}
#define WS_CLEAN(c) CHECK(lvd_ctx_mark(c) == 0)

static unsigned rng_state = 12345;
static float frand(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (float)((rng_state >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
	float *p = malloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

static void conv_case(struct lvd_ctx *ctx, int C, int H, int W, int OC, int K, int stride, int pt, int pl,
		      int pb, int pr)
{
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * K * K), *b = rand_buf(OC);
	size_t n = (size_t)OC * OH * OW;
	float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
	lvd_conv2d_fwd(ctx, got, x, w, b, 1, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	lvd_conv2d_naive(ctx, want, x, w, b, 1, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	/* fp32 GEMM over C·K·K <= 243 terms of size ~1 vs a double oracle: 1e-5 absolute */
	CHECK_CLOSE("conv2d", got, want, n, 1e-5, 0);
	WS_CLEAN(ctx);
	free(x); free(w); free(b); free(got); free(want);
}

static void test_conv2d(void)
{
	struct lvd_ctx *cs[] = {ctx1, ctxp, ctx3};
	for (int i = 0; i < 3; i++) {
		conv_case(cs[i], 3, 7, 9, 5, 3, 1, 1, 1, 1, 1);      /* same padding */
		conv_case(cs[i], 4, 8, 6, 3, 3, 2, 1, 1, 1, 1);      /* UNet downsampler */
		conv_case(cs[i], 4, 8, 10, 3, 3, 2, 0, 0, 1, 1);     /* VAE downsampler: pad right/bottom */
		conv_case(cs[i], 6, 5, 7, 4, 1, 1, 0, 0, 0, 0);      /* pointwise: straight GEMM */
		conv_case(cs[i], 3, 9, 11, 2, 3, 1, 1, 1, 1, 1);
		conv_case(cs[i], 2, 3, 3, 2, 3, 1, 2, 2, 2, 2);      /* padding wider than the kernel reach */
	}
	/* batch 2: each sample as batch 1 */
	int C = 3, H = 6, W = 5, OC = 4;
	float *x = rand_buf((size_t)2 * C * H * W), *w = rand_buf((size_t)OC * C * 9), *b = rand_buf(OC);
	float *y2 = malloc(sizeof(float) * 2 * OC * H * W), *y1 = malloc(sizeof(float) * OC * H * W);
	lvd_conv2d_fwd(ctx1, y2, x, w, b, 2, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	lvd_conv2d_fwd(ctx1, y1, x + C * H * W, w, b, 1, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	CHECK(memcmp(y1, y2 + OC * H * W, sizeof(float) * OC * H * W) == 0);
	free(x); free(w); free(b); free(y2); free(y1);
}

static void attn_case(struct lvd_ctx *ctx, int Sq, int Sk, int H, int D, int causal, int padded)
{
	int ld = H * D + padded;   /* q/k/v row strides wider than H·D (views into QKV) */
	float *q = rand_buf((size_t)Sq * ld), *k = rand_buf((size_t)Sk * ld), *v = rand_buf((size_t)Sk * ld);
	for (size_t i = 0; i < (size_t)Sq * ld; i++)
		q[i] *= 3.0f;   /* peaky softmax */
	size_t no = (size_t)Sq * H * D, np = (size_t)Sq * Sk;
	float *o1 = malloc(sizeof(float) * no), *o2 = malloc(sizeof(float) * no);
	float *p1 = malloc(sizeof(float) * np), *p2 = malloc(sizeof(float) * np);
	float scale = 1.0f / sqrtf((float)D);
	lvd_attention_fwd(ctx, o1, p1, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	lvd_attention_naive(ctx, o2, p2, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	/* fp32 softmax and GEMMs over Sk <= 300 terms vs double: 1e-5 absolute on values
	 * ~1 and on probabilities <= 1 */
	CHECK_CLOSE("attention out", o1, o2, no, 1e-5, 0);
	CHECK_CLOSE("attention probs", p1, p2, np, 1e-6, 0);
	/* without capture: same output */
	lvd_attention_fwd(ctx, o1, NULL, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	CHECK_CLOSE("attention out (no capture)", o1, o2, no, 1e-5, 0);
	if (causal)
		CHECK(p1[1] == 0.0f && p1[(size_t)Sk * 2 + 3] == 0.0f);
	WS_CLEAN(ctx);
	free(q); free(k); free(v); free(o1); free(o2); free(p1); free(p2);
}

static void test_attention(void)
{
	struct lvd_ctx *cs[] = {ctx1, ctxp};
	for (int i = 0; i < 2; i++) {
		attn_case(cs[i], 37, 77, 3, 8, 0, 0);          /* cross-attention shape, one block */
		attn_case(cs[i], 37, 77, 3, 8, 0, 5);          /* strided views */
		attn_case(cs[i], 77, 77, 2, 16, 1, 0);         /* CLIP: causal */
		attn_case(cs[i], 300, 300, 1, 12, 0, 0);       /* > 128 rows: blocks of 128 */
		attn_case(cs[i], 1, 1, 1, 4, 0, 0);
	}
}

static void test_norms(void)
{
	int C = 12, HW = 17, G = 4;
	float *x = rand_buf((size_t)C * HW), *w = rand_buf(C), *b = rand_buf(C);
	float *y = malloc(sizeof(float) * C * HW), *ys = malloc(sizeof(float) * C * HW);
	for (int i = 0; i < C * HW; i++)
		x[i] = x[i] * 3.0f + 5.0f;   /* mean far from 0 exercises the variance */
	float gm[4], gr[4];
	lvd_groupnorm_fwd(ctxp, y, gm, gr, x, w, b, 1, C, HW, G, 1e-5f, 0);
	lvd_groupnorm_fwd(ctxp, ys, NULL, NULL, x, w, b, 1, C, HW, G, 1e-5f, 1);
	double worst = 0, worst_s = 0;
	for (int g = 0; g < G; g++) {
		double m = 0, v = 0;
		int cg = C / G, n = cg * HW;
		for (int i = 0; i < n; i++)
			m += x[g * n + i];
		m /= n;
		for (int i = 0; i < n; i++)
			v += (x[g * n + i] - m) * (x[g * n + i] - m);
		v /= n;
		CHECK_NEAR(gm[g], m, 1e-5);
		CHECK_NEAR(gr[g], 1 / sqrt(v + 1e-5), 1e-4 / sqrt(v + 1e-5));
		for (int c = g * cg; c < (g + 1) * cg; c++)
			for (int p = 0; p < HW; p++) {
				double e = (x[c * HW + p] - m) / sqrt(v + 1e-5) * w[c] + b[c];
				double es = e / (1 + exp(-e));
				worst = fmax(worst, fabs(e - y[c * HW + p]));
				worst_s = fmax(worst_s, fabs(es - ys[c * HW + p]));
			}
	}
	/* normalised values ~1: fp32 affine rounding only */
	CHECK(worst < 1e-5);
	CHECK(worst_s < 1e-5);
	/* LayerNorm with saved statistics, in place */
	int N = 5, D = 24;
	float *a = rand_buf((size_t)N * D), *a0 = malloc(sizeof(float) * N * D), *lw = rand_buf(D), *lb = rand_buf(D);
	float mean[5], rstd[5];
	memcpy(a0, a, sizeof(float) * N * D);
	lvd_layernorm_fwd(ctx1, a, mean, rstd, a, lw, lb, N, D, 1e-5f);
	double wl = 0;
	for (int n = 0; n < N; n++) {
		double m = 0, v = 0;
		for (int d = 0; d < D; d++)
			m += a0[n * D + d];
		m /= D;
		for (int d = 0; d < D; d++)
			v += (a0[n * D + d] - m) * (a0[n * D + d] - m);
		v /= D;
		CHECK_NEAR(mean[n], m, 1e-6);
		CHECK_NEAR(rstd[n], 1 / sqrt(v + 1e-5), 1e-4 / sqrt(v + 1e-5));
		for (int d = 0; d < D; d++)
			wl = fmax(wl, fabs((a0[n * D + d] - m) / sqrt(v + 1e-5) * lw[d] + lb[d] - a[n * D + d]));
	}
	CHECK(wl < 1e-5);
	free(x); free(w); free(b); free(y); free(ys); free(a); free(a0); free(lw); free(lb);
}

static void test_activations(void)
{
	float x[6] = {-3.0f, -1.0f, -0.1f, 0.0f, 0.5f, 2.0f}, y[6];
	lvd_silu_fwd(ctx1, y, x, 6);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], x[i] / (1 + exp(-x[i])), 1e-6);
	lvd_gelu_fwd(ctx1, y, x, 6, LVD_GELU_EXACT);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))), 1e-6);
	lvd_gelu_fwd(ctx1, y, x, 6, LVD_GELU_QUICK);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], x[i] / (1 + exp(-1.702 * x[i])), 1e-6);
	/* GEGLU: [a | g] -> a * gelu(g) */
	float in[2 * 6], out[2 * 3];
	for (int i = 0; i < 12; i++)
		in[i] = x[i % 6] * (i < 6 ? 1.0f : -0.5f);
	lvd_geglu_fwd(ctxp, out, in, 2, 3);
	for (int n = 0; n < 2; n++)
		for (int f = 0; f < 3; f++) {
			double a = in[n * 6 + f], g = in[n * 6 + 3 + f];
			CHECK_NEAR(out[n * 3 + f], a * 0.5 * g * (1 + erf(g / sqrt(2.0))), 1e-6);
		}
	float s[2 * 4] = {1, 2, 3, 4, -1000, 0, 1000, 1000};
	lvd_softmax_fwd(ctxp, s, s, 2, 4);
	double e = exp(1) + exp(2) + exp(3) + exp(4);
	CHECK_NEAR(s[3], exp(4) / e, 1e-6);
	CHECK_NEAR(s[4], 0.0, 1e-30);
	CHECK_NEAR(s[6], 0.5, 1e-6);
}

static void test_misc(void)
{
	float x[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, up[2 * 4 * 6];
	lvd_resample_nearest2x_fwd(ctx1, up, x, 1, 2, 2, 3);
	CHECK(up[0] == 1 && up[1] == 1 && up[6] == 1 && up[7] == 1 && up[2] == 2);
	CHECK(up[6 * 2] == 4 && up[6 * 3 + 5] == 6 && up[24 + 6 * 3 + 5] == 12);
	float t[3 * 5], tt[5 * 3];
	for (int i = 0; i < 15; i++)
		t[i] = (float)i;
	lvd_transpose(ctx1, tt, t, 3, 5);
	CHECK(tt[0] == 0 && tt[1] == 5 && tt[2] == 10 && tt[3] == 1 && tt[14] == 14);
	/* timestep embedding: diffusers formula, flip_sin_to_cos, freq_shift 0 and 1 */
	float emb[8];
	lvd_timestep_embedding(ctx1, emb, 400.0f, 8, 1, 0.0f, 10000.0f);
	for (int i = 0; i < 4; i++) {
		double f = exp(-log(10000.0) * i / 4.0);
		/* fp32 argument t·f up to 400: rounding of the argument ~2e-5 */
		CHECK_NEAR(emb[i], cos(400.0 * f), 1e-4);
		CHECK_NEAR(emb[4 + i], sin(400.0 * f), 1e-4);
	}
	lvd_timestep_embedding(ctx1, emb, 3.0f, 8, 0, 1.0f, 10000.0f);
	for (int i = 0; i < 4; i++) {
		double f = exp(-log(10000.0) * i / 3.0);
		CHECK_NEAR(emb[i], sin(3.0 * f), 1e-6);
		CHECK_NEAR(emb[4 + i], cos(3.0 * f), 1e-6);
	}
	float y[6] = {0}, bb[3] = {1, 2, 3};
	lvd_add_bias_rows(ctx1, y, bb, 2, 3);
	CHECK(y[0] == 1 && y[5] == 3);
	lvd_add_bias_chan(ctx1, y, bb, 3, 2);
	CHECK(y[0] == 2 && y[1] == 3 && y[5] == 6);
	lvd_add(ctx1, y, y, 6);
	CHECK(y[5] == 12);
}

/* ---- pooled ops vs the oracles (3 threads: ragged chunks on any machine) ---- */
static void attn_mt_case(int Sq, int Sk, int H, int D, int causal)
{
	int ld = H * D + 3;
	float *q = rand_buf((size_t)Sq * ld), *k = rand_buf((size_t)Sk * ld), *v = rand_buf((size_t)Sk * ld);
	for (size_t i = 0; i < (size_t)Sq * ld; i++)
		q[i] *= 3.0f;
	size_t no = (size_t)Sq * H * D, np = (size_t)Sq * Sk;
	float *o1 = malloc(sizeof(float) * no), *o2 = malloc(sizeof(float) * no);
	float *o3 = malloc(sizeof(float) * no), *p1 = malloc(sizeof(float) * np);
	float *p2 = malloc(sizeof(float) * np), *p3 = malloc(sizeof(float) * np);
	float scale = 1.0f / sqrtf((float)D);
	lvd_attention_fwd(ctx3, o1, p1, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	lvd_attention_naive(ctx3, o2, p2, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	/* same bounds as the serial op: fp32 softmax/GEMMs over <= 300 terms vs double */
	CHECK_CLOSE("attention 3 threads out", o1, o2, no, 1e-5, 0);
	CHECK_CLOSE("attention 3 threads probs", p1, p2, np, 1e-6, 0);
	/* heads are averaged in one order whatever the split: equal to 1 thread bit for bit */
	lvd_attention_fwd(ctx1, o3, p3, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	CHECK(memcmp(p1, p3, sizeof(float) * np) == 0);
	CHECK(memcmp(o1, o3, sizeof(float) * no) == 0);
	WS_CLEAN(ctx3);
	free(q); free(k); free(v); free(o1); free(o2); free(o3); free(p1); free(p2); free(p3);
}

static void test_attention_mt(void)
{
	attn_mt_case(37, 77, 3, 8, 0);     /* cross-attention: 3 blocks of 13/13/11 rows */
	attn_mt_case(77, 77, 2, 16, 1);    /* causal */
	attn_mt_case(301, 129, 2, 12, 0);  /* ragged last block */
	attn_mt_case(2, 33, 1, 4, 0);      /* fewer blocks than threads */
}

static void conv_mt_case(int C, int H, int W, int OC, int K, int stride, int pt, int pl, int pb, int pr,
			 int with_bias)
{
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * K * K), *b = rand_buf(OC);
	size_t n = (size_t)OC * OH * OW;
	float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
	lvd_conv2d_fwd(ctx3, got, x, w, with_bias ? b : NULL, 1, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	lvd_conv2d_naive(ctx3, want, x, w, with_bias ? b : NULL, 1, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	/* fp32 GEMM over C·K·K <= 405 terms of size ~1 vs a double oracle */
	CHECK_CLOSE("conv2d 3 threads", got, want, n, 2e-5, 0);
	WS_CLEAN(ctx3);
	free(x); free(w); free(b); free(got); free(want);
}

static void test_conv_linear_mt(void)
{
	conv_mt_case(5, 4, 3, 101, 3, 1, 1, 1, 1, 1, 1);    /* OC >= pixels */
	conv_mt_case(5, 6, 4, 97, 3, 2, 1, 1, 1, 1, 0);     /* stride 2, no bias */
	conv_mt_case(7, 5, 5, 100, 1, 1, 0, 0, 0, 0, 1);    /* pointwise */
	conv_mt_case(3, 9, 11, 5, 3, 1, 1, 1, 1, 1, 1);     /* few channels */
	conv_mt_case(64, 40, 40, 96, 3, 2, 1, 1, 1, 1, 1);  /* big enough for the pool split of the GEMM */
	/* nn.Linear and GEMM: split by columns (OC > N) or rows, both transposes */
	int shapes[][3] = {{7, 45, 131}, {1, 16, 96}, {200, 33, 40}, {70, 300, 500}, {500, 200, 70}};
	for (int i = 0; i < 5; i++) {
		int N = shapes[i][0], IC = shapes[i][1], OC = shapes[i][2];
		float *x = rand_buf((size_t)N * IC), *w = rand_buf((size_t)OC * IC), *b = rand_buf(OC);
		float *got = malloc(sizeof(float) * N * OC), *want = malloc(sizeof(float) * N * OC);
		for (int wb = 0; wb < 2; wb++) {
			lvd_linear_fwd(ctx3, got, x, w, wb ? b : NULL, N, IC, OC);
			for (int n = 0; n < N; n++)
				for (int o = 0; o < OC; o++)
					want[n * OC + o] = wb ? b[o] : 0.0f;
			lvd_gemm_naive(ctx3, 0, 1, N, OC, IC, 1.0f, x, IC, w, IC, wb ? 1.0f : 0.0f, want, OC);
			/* fp32 dot products of <= 300 terms ~1 vs double */
			CHECK_CLOSE("linear 3 threads", got, want, (size_t)N * OC, 5e-5, 0);
		}
		/* transposed operands: C[OC, N] = w xᵀ through lvd_gemm(1, 1) on wᵀ's storage */
		float *wt = malloc(sizeof(float) * OC * IC);
		lvd_transpose(ctx1, wt, w, OC, IC);   /* [IC, OC] */
		lvd_gemm(ctx3, 1, 1, OC, N, IC, 0.5f, wt, OC, x, IC, 0.0f, got, N);
		lvd_gemm_naive(ctx3, 1, 1, OC, N, IC, 0.5f, wt, OC, x, IC, 0.0f, want, N);
		CHECK_CLOSE("gemm TT 3 threads", got, want, (size_t)N * OC, 5e-5, 0);
		free(x); free(w); free(b); free(got); free(want); free(wt);
	}
	/* bf16 GEMM: inputs rounded to bf16 exactly as the oracle sees them */
	int M = 33, N = 70, K = 50;
	float *a = rand_buf((size_t)M * K), *bb = rand_buf((size_t)N * K), *c1 = malloc(sizeof(float) * M * N);
	float *c2 = malloc(sizeof(float) * M * N);
	uint16_t *ah = malloc(2 * (size_t)M * K), *bh = malloc(2 * (size_t)N * K);
	lvd_f32_to_bf16(ctx1, ah, a, (size_t)M * K);
	lvd_f32_to_bf16(ctx1, bh, bb, (size_t)N * K);
	lvd_bf16_to_f32(ctx1, a, ah, (size_t)M * K);
	lvd_bf16_to_f32(ctx1, bb, bh, (size_t)N * K);
	lvd_gemm_bf16(ctx3, 0, 1, M, N, K, 1.0f, ah, K, bh, K, 0.0f, c1, N);
	lvd_gemm_naive(ctx3, 0, 1, M, N, K, 1.0f, a, K, bb, K, 0.0f, c2, N);
	CHECK_CLOSE("gemm bf16", c1, c2, (size_t)M * N, 1e-5, 0);
	WS_CLEAN(ctx3);
	float one = 1.0f, r = 1.00390625f + 0.001f;   /* bf16 rounding to nearest even */
	uint16_t h1, h2;
	lvd_f32_to_bf16(ctx1, &h1, &one, 1);
	lvd_f32_to_bf16(ctx1, &h2, &r, 1);
	CHECK(h1 == 0x3f80 && h2 == 0x3f81);
	free(a); free(bb); free(c1); free(c2); free(ah); free(bh);
}

/* The vector paths (softmax exp, GEGLU erf, GroupNorm+SiLU) on long rows with tails. */
static void test_vector_paths(void)
{
	int N = 3, M = 1029;
	float *s = rand_buf((size_t)N * M);
	double *ref = malloc(sizeof(double) * N * M);
	for (int i = 0; i < N * M; i++)
		s[i] *= 40.0f;   /* exp arguments down to -80: the whole useful range */
	s[5] = -INFINITY;    /* masked entry */
	for (int n = 0; n < N; n++) {
		double mx = -INFINITY, sum = 0;
		for (int j = 0; j < M; j++)
			mx = fmax(mx, s[n * M + j]);
		for (int j = 0; j < M; j++)
			sum += (ref[n * M + j] = exp(s[n * M + j] - mx));
		for (int j = 0; j < M; j++)
			ref[n * M + j] /= sum;
	}
	lvd_softmax_fwd(ctx1, s, s, N, M);
	double worst = 0;
	for (int i = 0; i < N * M; i++)
		worst = fmax(worst, fabs(s[i] - ref[i]) / fmax(ref[i], 1e-30) * (ref[i] > 1e-30));
	/* ~1 ulp polynomial exp + fp32 sum of 1029 terms: 1e-5 relative per probability */
	CHECK(worst < 1e-5);
	CHECK(s[5] == 0.0f);
	/* GEGLU on g in [-8, 8], F = 37 (4 vectors + a 5-lane tail) */
	int F = 37, R = 4;
	float *in = malloc(sizeof(float) * R * 2 * F), *out = malloc(sizeof(float) * R * F);
	for (int r = 0; r < R; r++)
		for (int f = 0; f < F; f++) {
			in[r * 2 * F + f] = frand();
			in[r * 2 * F + F + f] = -8.0f + 16.0f * (float)(r * F + f) / (float)(R * F - 1);
		}
	lvd_geglu_fwd(ctx1, out, in, R, F);
	double wg = 0;
	for (int r = 0; r < R; r++)
		for (int f = 0; f < F; f++) {
			double a = in[r * 2 * F + f], g = in[r * 2 * F + F + f];
			wg = fmax(wg, fabs(out[r * F + f] - a * 0.5 * g * (1 + erf(g / sqrt(2.0)))));
		}
	/* A&S 7.1.26 erfc: 1.5e-7 absolute on Φ, times |a·g| <= 8 */
	CHECK(wg < 2e-6);
	/* GroupNorm + SiLU over 2 groups of 3 channels x 1000 values (vector sums + tails) */
	int C = 6, HW = 1000;
	float *x = rand_buf((size_t)C * HW), *y = malloc(sizeof(float) * C * HW);
	for (int i = 0; i < C * HW; i++)
		x[i] = x[i] * 4.0f + 100.0f;   /* mean far from 0 */
	lvd_groupnorm_fwd(ctx1, y, NULL, NULL, x, NULL, NULL, 1, C, HW, 2, 1e-6f, 1);
	double wn = 0;
	for (int g = 0; g < 2; g++) {
		double m = 0, v = 0;
		int n = 3 * HW;
		for (int i = 0; i < n; i++)
			m += x[g * n + i];
		m /= n;
		for (int i = 0; i < n; i++)
			v += (x[g * n + i] - m) * (x[g * n + i] - m);
		v /= n;
		for (int i = 0; i < n; i++) {
			double e = (x[g * n + i] - m) / sqrt(v + 1e-6);
			wn = fmax(wn, fabs(e / (1 + exp(-e)) - y[g * n + i]));
		}
	}
	/* inputs ~100 with spread ~2: fp32 rounding of x - mean (~1e-5 of 100 / 2) dominates */
	CHECK(wn < 3e-5);
	free(s); free(ref); free(in); free(out); free(x); free(y);
}

/* Winograd F(2x2, 3x3) and F(4x4, 3x3) against the double oracle; with pools of 1, 2 and 3 threads the
 * outputs must be bit-identical (the work split into GEMMs depends on the shape only). */
static void wino_case_m(int m, int C, int H, int W, int OC, int with_bias)
{
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * 9), *b = rand_buf(OC);
	size_t n = (size_t)OC * H * W;
	float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
	float *again = malloc(sizeof(float) * n);
	lvd_conv2d_naive(ctx1, want, x, w, with_bias ? b : NULL, 1, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	double maxabs = 0;
	for (size_t i = 0; i < n; i++)
		maxabs = fmax(maxabs, fabs(want[i]));
	for (int T = 1; T <= 3; T++) {
		struct lvd_ctx *ctx = T == 1 ? ctx1 : T == 3 ? ctx3 : make_ctx(T, 0);
		lvd_conv2d_winograd_fwd(ctx, T == 1 ? got : again, x, w, with_bias ? b : NULL, 1, C, H, W, OC, m);
		WS_CLEAN(ctx);
		if (T == 1) {
			/* fp32: each output sums 16·C transformed products whose terms are up to
			 * 4× the direct ones (input transform adds 4 values, ±½ weight sums, output
			 * transform adds 9): relative to the output scale, 2e-6·sqrt(C) covers it
			 * with a margin over the measured ~4e-7·sqrt(C). */
			/* F(4, 3)'s transforms scale terms by up to 25 (Bᵀ) and 1/24 (G) and
			 * its output transform adds 8x terms: measured up to 2.6e-6·sqrt(C) of
			 * the output scale, so 1e-5·sqrt(C). */
			double tol = (m == 2 ? 2e-6 : 1e-5) * sqrt((double)C) * fmax(maxabs, 1.0);
			CHECK_CLOSE(m == 2 ? "winograd F(2,3)" : "winograd F(4,3)", got, want, n, tol, 0);
		} else {
			CHECKF(memcmp(got, again, sizeof(float) * n) == 0,
			       "winograd C=%d %dx%d OC=%d: %d threads differ from 1", C, H, W, OC, T);
		}
		if (T == 2)
			lvd_ctx_destroy(ctx);
	}
	/* cpu_fast = 0: the baseline-ISA transforms, same bound */
	lvd_conv2d_winograd_fwd(ctxp, again, x, w, with_bias ? b : NULL, 1, C, H, W, OC, m);
	CHECK_CLOSE(m == 2 ? "winograd F(2,3) plain" : "winograd F(4,3) plain", again, want, n,
		    (m == 2 ? 2e-6 : 1e-5) * sqrt((double)C) * fmax(maxabs, 1.0), 0);
	free(x); free(w); free(b); free(got); free(want); free(again);
}

static void wino_case(int C, int H, int W, int OC, int with_bias)
{
	wino_case_m(2, C, H, W, OC, with_bias);
	wino_case_m(4, C, H, W, OC, with_bias);
}

static void test_winograd(void)
{
	wino_case(1, 1, 1, 1, 1);       /* one pixel: a single tile, 3 of 4 outputs cut off */
	wino_case(1, 5, 7, 1, 0);       /* odd sides: ragged last tile row and column */
	wino_case(3, 7, 9, 5, 1);       /* OC < 64: two blocks of 2 and 3 rows */
	wino_case(4, 2, 19, 3, 1);      /* 10 tiles per row: a vector of 8 plus a tail of 2 */
	wino_case(150, 6, 5, 130, 1);   /* many channels: C not a multiple of 8, 4 blocks */
	wino_case(2, 67, 127, 128, 1);  /* M cap -> tile blocks of several rows, ragged last */
	wino_case(3, 13, 6, 2, 1);      /* F(4, 3): 4 tile rows, the last one 1 pixel high */
	/* the tile follows the shape: F(2, 3) below 32x32, F(4, 3) from there */
	CHECK(lvd_conv2d_winograd_tile(320, 16, 16, 640) == 2);
	CHECK(lvd_conv2d_winograd_tile(320, 32, 32, 320) == 4);
	/* lvd_conv2d_fwd takes Winograd only with cpu_fast, and only where it measured faster */
	int C = 16, H = 16, W = 16, OC = 8;
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * 9);
	float *y0 = malloc(sizeof(float) * OC * H * W), *y1 = malloc(sizeof(float) * OC * H * W);
	lvd_conv2d_fwd(ctx1, y0, x, w, NULL, 1, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	lvd_conv2d_winograd_fwd(ctx1, y1, x, w, NULL, 1, C, H, W, OC, 0);
	CHECK(memcmp(y0, y1, sizeof(float) * OC * H * W) == 0);
	lvd_conv2d_fwd(ctxp, y0, x, w, NULL, 1, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	lvd_conv2d_im2col_fwd(ctx1, y1, x, w, NULL, 1, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	CHECK(memcmp(y0, y1, sizeof(float) * OC * H * W) == 0);
	free(x); free(w); free(y0); free(y1);
}

/* Plain vs fast paths of softmax, GEGLU and GroupNorm+SiLU agree within the fast paths'
 * documented error (the fast path's oracle is checked in test_vector_paths). */
static void test_plain_vs_fast(void)
{
	int N = 4, M = 517;
	float *a = rand_buf((size_t)N * M), *b = malloc(sizeof(float) * N * M), *c = malloc(sizeof(float) * N * M);
	for (int i = 0; i < N * M; i++)
		a[i] *= 20.0f;
	lvd_softmax_fwd(ctx1, b, a, N, M);
	lvd_softmax_fwd(ctxp, c, a, N, M);
	/* ~1 ulp exp vs expf, fp32 sums of 517 terms: 1e-5 relative of the row max (<= 1) */
	CHECK_CLOSE("softmax fast vs plain", b, c, (size_t)N * M, 1e-6, 1e-5);
	lvd_groupnorm_fwd(ctx1, b, NULL, NULL, a, NULL, NULL, 2, 4, 258, 2, 1e-6f, 1);
	lvd_groupnorm_fwd(ctxp, c, NULL, NULL, a, NULL, NULL, 2, 4, 258, 2, 1e-6f, 1);
	/* normalised values ~1; vector sums reorder the double sums only */
	CHECK_CLOSE("groupnorm fast vs plain", b, c, (size_t)2 * 4 * 258, 1e-5, 0);
	free(a); free(b); free(c);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_conv2d),
		TEST(test_attention),
		TEST(test_norms),
		TEST(test_activations),
		TEST(test_misc),
		TEST(test_attention_mt),
		TEST(test_conv_linear_mt),
		TEST(test_vector_paths),
		TEST(test_winograd),
		TEST(test_plain_vs_fast),
		{0},
	};
	ctx1 = make_ctx(1, 0);
	ctxp = make_ctx(1, 1);
	ctx3 = make_ctx(3, 0);
	int rc = lvd_test_main(argc, argv, tests);
	lvd_ctx_destroy(ctx1);
	lvd_ctx_destroy(ctxp);
	lvd_ctx_destroy(ctx3);
	return rc;
}
