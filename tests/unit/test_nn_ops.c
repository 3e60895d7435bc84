/* tests/unit/test_nn_ops.c — forward ops in lib/nn/ops.h against plain-loop oracles in
 * double precision (and closed-form values), on odd shapes that hit every edge: asymmetric
 * padding, stride 2, chunked im2col, attention blocks smaller than the query count,
 * causal masks, head-averaged probabilities. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/pool.h"
#include "nn/gemm.h"
#include "nn/ops.h"

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

static void conv_case(int C, int H, int W, int OC, int K, int stride, int pt, int pl, int pb, int pr,
		      size_t scratch_len)
{
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * K * K), *b = rand_buf(OC);
	size_t n = (size_t)OC * OH * OW;
	float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
	size_t need = lvd_conv2d_scratch(C, H, W, K, K, stride, pt, pl, pb, pr);
	if (scratch_len < need)
		scratch_len = need;
	float *scratch = scratch_len ? malloc(sizeof(float) * scratch_len) : NULL;
	lvd_conv2d_fwd(got, x, w, b, C, H, W, OC, K, K, stride, pt, pl, pb, pr, scratch, scratch_len);
	lvd_conv2d_naive(want, x, w, b, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	/* fp32 GEMM over C·K·K <= 243 terms of size ~1 vs a double oracle: 1e-5 absolute */
	CHECK_CLOSE("conv2d", got, want, n, 1e-5, 0);
	free(x); free(w); free(b); free(got); free(want); free(scratch);
}

static void test_conv2d(void)
{
	conv_case(3, 7, 9, 5, 3, 1, 1, 1, 1, 1, 0);      /* same padding */
	conv_case(4, 8, 6, 3, 3, 2, 1, 1, 1, 1, 0);      /* UNet downsampler */
	conv_case(4, 8, 10, 3, 3, 2, 0, 0, 1, 1, 0);     /* VAE downsampler: pad right/bottom */
	conv_case(6, 5, 7, 4, 1, 1, 0, 0, 0, 0, 0);      /* pointwise: straight GEMM */
	conv_case(3, 9, 11, 2, 3, 1, 1, 1, 1, 1, 3 * 9 * 11); /* one output row per chunk */
	conv_case(3, 9, 11, 2, 3, 1, 1, 1, 1, 1, 3 * 9 * 11 * 4); /* 4 rows, ragged last chunk */
	conv_case(2, 3, 3, 2, 3, 1, 2, 2, 2, 2, 0);      /* padding wider than the kernel reach */
	/* the scratch bound never exceeds a row when rows are huge */
	CHECK(lvd_conv2d_scratch(1280, 4096, 4096, 3, 3, 1, 1, 1, 1, 1) == (size_t)1280 * 9 * 4096);
	CHECK(lvd_conv2d_scratch(4, 8, 8, 1, 1, 1, 0, 0, 0, 0) == 0);
}

static void attn_case(int Sq, int Sk, int H, int D, int causal, size_t scratch_len, int padded)
{
	int ld = H * D + padded;   /* q/k/v row strides wider than H·D (views into QKV) */
	float *q = rand_buf((size_t)Sq * ld), *k = rand_buf((size_t)Sk * ld), *v = rand_buf((size_t)Sk * ld);
	for (size_t i = 0; i < (size_t)Sq * ld; i++)
		q[i] *= 3.0f;   /* peaky softmax */
	size_t no = (size_t)Sq * H * D, np = (size_t)Sq * Sk;
	float *o1 = malloc(sizeof(float) * no), *o2 = malloc(sizeof(float) * no);
	float *p1 = malloc(sizeof(float) * np), *p2 = malloc(sizeof(float) * np);
	if (scratch_len < (size_t)Sk)
		scratch_len = lvd_attention_scratch(Sq, Sk);
	float *scratch = malloc(sizeof(float) * scratch_len);
	float scale = 1.0f / sqrtf((float)D);
	lvd_attention_fwd(o1, p1, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal, scratch, scratch_len);
	lvd_attention_naive(o2, p2, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	/* fp32 softmax and GEMMs over Sk <= 300 terms vs double: 1e-5 absolute on values
	 * ~1 and on probabilities <= 1 */
	CHECK_CLOSE("attention out", o1, o2, no, 1e-5, 0);
	CHECK_CLOSE("attention probs", p1, p2, np, 1e-6, 0);
	/* without capture: same output */
	lvd_attention_fwd(o1, NULL, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal, scratch, scratch_len);
	CHECK_CLOSE("attention out (no capture)", o1, o2, no, 1e-5, 0);
	if (causal)
		CHECK(p1[1] == 0.0f && p1[(size_t)Sk * 2 + 3] == 0.0f);
	free(q); free(k); free(v); free(o1); free(o2); free(p1); free(p2); free(scratch);
}

static void test_attention(void)
{
	attn_case(37, 77, 3, 8, 0, 0, 0);          /* cross-attention shape, one block */
	attn_case(37, 77, 3, 8, 0, 77 * 5, 5);     /* blocks of 5 query rows, strided views */
	attn_case(77, 77, 2, 16, 1, 77 * 7, 0);    /* CLIP: causal, blocked */
	attn_case(300, 300, 1, 12, 0, 0, 0);       /* > 128 rows: default blocking */
	attn_case(1, 1, 1, 4, 0, 0, 0);
	CHECK(lvd_attention_scratch(4096, 4096) == (size_t)128 * 4096);   /* never [4096, 4096] */
	CHECK(lvd_attention_scratch(10, 77) == 10 * 77);
}

static void test_norms(void)
{
	int C = 12, HW = 17, G = 4;
	float *x = rand_buf((size_t)C * HW), *w = rand_buf(C), *b = rand_buf(C);
	float *y = malloc(sizeof(float) * C * HW), *ys = malloc(sizeof(float) * C * HW);
	for (int i = 0; i < C * HW; i++)
		x[i] = x[i] * 3.0f + 5.0f;   /* mean far from 0 exercises the variance */
	lvd_groupnorm_fwd(y, x, w, b, C, HW, G, 1e-5f, 0);
	lvd_groupnorm_fwd(ys, x, w, b, C, HW, G, 1e-5f, 1);
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
	lvd_layernorm_fwd(a, mean, rstd, a, lw, lb, N, D, 1e-5f);
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
	lvd_silu(y, x, 6);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], x[i] / (1 + exp(-x[i])), 1e-6);
	lvd_gelu(y, x, 6);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))), 1e-6);
	lvd_quick_gelu(y, x, 6);
	for (int i = 0; i < 6; i++)
		CHECK_NEAR(y[i], x[i] / (1 + exp(-1.702 * x[i])), 1e-6);
	/* GEGLU: [a | g] -> a * gelu(g) */
	float in[2 * 6], out[2 * 3];
	for (int i = 0; i < 12; i++)
		in[i] = x[i % 6] * (i < 6 ? 1.0f : -0.5f);
	lvd_geglu_fwd(out, in, 2, 3);
	for (int n = 0; n < 2; n++)
		for (int f = 0; f < 3; f++) {
			double a = in[n * 6 + f], g = in[n * 6 + 3 + f];
			CHECK_NEAR(out[n * 3 + f], a * 0.5 * g * (1 + erf(g / sqrt(2.0))), 1e-6);
		}
	float s[2 * 4] = {1, 2, 3, 4, -1000, 0, 1000, 1000};
	lvd_softmax_rows(s, 2, 4);
	double e = exp(1) + exp(2) + exp(3) + exp(4);
	CHECK_NEAR(s[3], exp(4) / e, 1e-6);
	CHECK_NEAR(s[4], 0.0, 1e-30);
	CHECK_NEAR(s[6], 0.5, 1e-6);
}

static void test_misc(void)
{
	float x[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, up[2 * 4 * 6];
	lvd_upsample_nearest2x(up, x, 2, 2, 3);
	CHECK(up[0] == 1 && up[1] == 1 && up[6] == 1 && up[7] == 1 && up[2] == 2);
	CHECK(up[6 * 2] == 4 && up[6 * 3 + 5] == 6 && up[24 + 6 * 3 + 5] == 12);
	float t[3 * 5], tt[5 * 3];
	for (int i = 0; i < 15; i++)
		t[i] = (float)i;
	lvd_transpose(tt, t, 3, 5);
	CHECK(tt[0] == 0 && tt[1] == 5 && tt[2] == 10 && tt[3] == 1 && tt[14] == 14);
	/* timestep embedding: diffusers formula, flip_sin_to_cos, freq_shift 0 and 1 */
	float emb[8];
	lvd_timestep_embedding(emb, 400.0f, 8, 1, 0.0f, 10000.0f);
	for (int i = 0; i < 4; i++) {
		double f = exp(-log(10000.0) * i / 4.0);
		/* fp32 argument t·f up to 400: rounding of the argument ~2e-5 */
		CHECK_NEAR(emb[i], cos(400.0 * f), 1e-4);
		CHECK_NEAR(emb[4 + i], sin(400.0 * f), 1e-4);
	}
	lvd_timestep_embedding(emb, 3.0f, 8, 0, 1.0f, 10000.0f);
	for (int i = 0; i < 4; i++) {
		double f = exp(-log(10000.0) * i / 3.0);
		CHECK_NEAR(emb[i], sin(3.0 * f), 1e-6);
		CHECK_NEAR(emb[4 + i], cos(3.0 * f), 1e-6);
	}
	float y[6] = {0}, bb[3] = {1, 2, 3};
	lvd_add_bias_rows(y, bb, 2, 3);
	CHECK(y[0] == 1 && y[5] == 3);
	lvd_add_bias_chan(y, bb, 3, 2);
	CHECK(y[0] == 2 && y[1] == 3 && y[5] == 6);
	lvd_add_inplace(y, y, 6);
	CHECK(y[5] == 12);
}

/* ---- pooled variants vs the oracles (3 threads: ragged chunks on any machine) ---- */
static struct lvd_pool *make_pool(int n)
{
	struct lvd_pool *p = NULL;
	struct lvd_error err = {0};
	REQUIRE(lvd_pool_create(&p, n, &err) == 0);
	return p;
}

static void attn_mt_case(struct lvd_pool *pool, int Sq, int Sk, int H, int D, int causal, int per_rows)
{
	int T = lvd_pool_threads(pool), ld = H * D + 3;
	float *q = rand_buf((size_t)Sq * ld), *k = rand_buf((size_t)Sk * ld), *v = rand_buf((size_t)Sk * ld);
	for (size_t i = 0; i < (size_t)Sq * ld; i++)
		q[i] *= 3.0f;
	size_t no = (size_t)Sq * H * D, np = (size_t)Sq * Sk;
	size_t sl = per_rows ? (size_t)T * per_rows * Sk : lvd_attention_scratch_mt(Sq, Sk, T);
	float *o1 = malloc(sizeof(float) * no), *o2 = malloc(sizeof(float) * no);
	float *o3 = malloc(sizeof(float) * no), *p1 = malloc(sizeof(float) * np);
	float *p2 = malloc(sizeof(float) * np), *p3 = malloc(sizeof(float) * np);
	float *scratch = malloc(sizeof(float) * sl);
	float scale = 1.0f / sqrtf((float)D);
	lvd_attention_fwd_mt(o1, p1, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal, scratch, sl, pool);
	lvd_attention_naive(o2, p2, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	/* same bounds as the serial op: fp32 softmax/GEMMs over <= 300 terms vs double */
	CHECK_CLOSE("attention_mt out", o1, o2, no, 1e-5, 0);
	CHECK_CLOSE("attention_mt probs", p1, p2, np, 1e-6, 0);
	/* heads are averaged in one order whatever the split: equal to the serial op bit for bit */
	size_t s1 = lvd_attention_scratch(Sq, Sk);
	float *sc1 = malloc(sizeof(float) * s1);
	lvd_attention_fwd(o3, p3, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal, sc1, s1);
	CHECK(memcmp(p1, p3, sizeof(float) * np) == 0);
	free(q); free(k); free(v); free(o1); free(o2); free(o3); free(p1); free(p2); free(p3);
	free(scratch); free(sc1);
}

static void test_attention_mt(void)
{
	struct lvd_pool *pool = make_pool(3);
	attn_mt_case(pool, 37, 77, 3, 8, 0, 0);     /* cross-attention: 3 blocks of 13/13/11 rows */
	attn_mt_case(pool, 77, 77, 2, 16, 1, 0);    /* causal */
	attn_mt_case(pool, 301, 129, 2, 12, 0, 5);  /* blocks of 5 rows, ragged last block */
	attn_mt_case(pool, 2, 33, 1, 4, 0, 0);      /* fewer blocks than threads */
	attn_mt_case(NULL, 19, 23, 2, 4, 0, 0);     /* no pool: runs on the caller */
	CHECK(lvd_attention_scratch_mt(4096, 4096, 3) == 3 * (size_t)128 * 4096);
	lvd_pool_destroy(pool);
}

static void conv_mt_case(struct lvd_pool *pool, int C, int H, int W, int OC, int K, int stride,
			 int pt, int pl, int pb, int pr, int with_bias)
{
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	float *x = rand_buf((size_t)C * H * W), *w = rand_buf((size_t)OC * C * K * K), *b = rand_buf(OC);
	size_t n = (size_t)OC * OH * OW;
	float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
	size_t need = lvd_conv2d_scratch(C, H, W, K, K, stride, pt, pl, pb, pr);
	float *scratch = need ? malloc(sizeof(float) * need) : NULL;
	lvd_conv2d_fwd_mt(got, x, w, with_bias ? b : NULL, C, H, W, OC, K, K, stride, pt, pl, pb, pr,
			  scratch, need, pool);
	lvd_conv2d_naive(want, x, w, with_bias ? b : NULL, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	/* fp32 GEMM over C·K·K <= 405 terms of size ~1 vs a double oracle */
	CHECK_CLOSE("conv2d_mt", got, want, n, 2e-5, 0);
	free(x); free(w); free(b); free(got); free(want); free(scratch);
}

static void test_conv_linear_mt(void)
{
	struct lvd_pool *pool = make_pool(3);
	conv_mt_case(pool, 5, 4, 3, 101, 3, 1, 1, 1, 1, 1, 1);   /* OC >= pixels: channel split, 34/33/34 */
	conv_mt_case(pool, 5, 6, 4, 97, 3, 2, 1, 1, 1, 1, 0);    /* stride 2, no bias */
	conv_mt_case(pool, 7, 5, 5, 100, 1, 1, 0, 0, 0, 0, 1);   /* pointwise */
	conv_mt_case(pool, 3, 9, 11, 5, 3, 1, 1, 1, 1, 1, 1);    /* few channels: plain path */
	conv_mt_case(NULL, 5, 4, 3, 101, 3, 1, 1, 1, 1, 1, 1);
	/* nn.Linear: out features split when they outnumber the rows */
	int shapes[][3] = {{7, 45, 131}, {1, 16, 96}, {200, 33, 40}};
	for (int i = 0; i < 3; i++) {
		int N = shapes[i][0], IC = shapes[i][1], OC = shapes[i][2];
		float *x = rand_buf((size_t)N * IC), *w = rand_buf((size_t)OC * IC), *b = rand_buf(OC);
		float *got = malloc(sizeof(float) * N * OC), *want = malloc(sizeof(float) * N * OC);
		for (int wb = 0; wb < 2; wb++) {
			lvd_linear_fwd_mt(got, x, w, wb ? b : NULL, N, IC, OC, pool);
			for (int n = 0; n < N; n++)
				for (int o = 0; o < OC; o++)
					want[n * OC + o] = wb ? b[o] : 0.0f;
			lvd_sgemm_naive(0, 1, N, OC, IC, 1.0f, x, IC, w, IC, wb ? 1.0f : 0.0f, want, OC);
			/* fp32 dot products of <= 45 terms ~1 vs double */
			CHECK_CLOSE("linear_mt", got, want, (size_t)N * OC, 1e-5, 0);
		}
		free(x); free(w); free(b); free(got); free(want);
	}
	lvd_pool_destroy(pool);
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
	lvd_softmax_rows(s, N, M);
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
	lvd_geglu_fwd(out, in, R, F);
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
	lvd_groupnorm_fwd(y, x, NULL, NULL, C, HW, 2, 1e-6f, 1);
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
	lvd_conv2d_naive(want, x, w, with_bias ? b : NULL, C, H, W, OC, 3, 3, 1, 1, 1, 1, 1);
	double maxabs = 0;
	for (size_t i = 0; i < n; i++)
		maxabs = fmax(maxabs, fabs(want[i]));
	for (int T = 1; T <= 3; T++) {
		struct lvd_pool *pool = T > 1 ? make_pool(T) : NULL;
		size_t need = lvd_conv2d_winograd_scratch(C, H, W, OC, T);
		float *scratch = malloc(sizeof(float) * need);
		lvd_conv2d_winograd_fwd_m(T == 1 ? got : again, x, w, with_bias ? b : NULL, C, H, W, OC,
					  m, scratch, need, pool);
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
		free(scratch);
		lvd_pool_destroy(pool);
	}
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
	/* the scratch bound grows with each argument */
	CHECK(lvd_conv2d_winograd_scratch(64, 32, 32, 64, 2) <= lvd_conv2d_winograd_scratch(65, 32, 32, 64, 2));
	CHECK(lvd_conv2d_winograd_scratch(64, 32, 32, 64, 2) <= lvd_conv2d_winograd_scratch(64, 33, 32, 65, 2));
	CHECK(lvd_conv2d_winograd_scratch(64, 32, 32, 64, 2) < lvd_conv2d_winograd_scratch(64, 32, 32, 64, 3));
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
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}
