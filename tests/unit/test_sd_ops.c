/* tests/unit/test_sd_ops.c — CPU oracles of ops added for SD's CUDA path.
 *
 * lvd_resample_bilinear_tok_add_cpu must equal lvd_attnmap_acc_add (lib/lavender)
 * bit for bit on every layer level, up- and downsampling (its CUDA twin then only has to
 * match it).
 *
 * The bf16-weight forward ops (lvd_linear_fwd_w16_cpu,
 * lvd_conv2d_fwd_w16_cpu: the oracles of the CUDA path's bf16 weights) against plain
 * double loops written here on the bf16-rounded input and the widened weights, on odd
 * shapes: SD's conv kinds (3×3 pad 1, 3×3 stride 2 with the VAE's right/bottom-only pad,
 * 1×1), batch 2, with and without bias, on a one-thread fast context, a plain one and a
 * 3-thread one. The input rounding is checked to happen: the same inputs unrounded give
 * results off by far more than the tolerance. Every op must give its workspace back.
 *
 * u = 2^-24. Tolerance: a sum of K fp32 products (exact bf16·bf16 products, fp32 sums)
 * is within (K + 2)·u·Σ|terms| of the exact value; Winograd (fast path, 3×3 stride 1)
 * adds transform rounding, measured up to 2.6e-6·sqrt(C) of the output scale (conv.h):
 * those cases use 1e-5·Σ|terms|. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_ref.h"
#include "harness.h"
#include "lavender/attnmap.h"
#include "nn/ctx.h"
#include "nn/ops/conv.h"
#include "nn/ops/gemm.h"
#include "nn/ops/resample.h"

#define U32 (1.0 / 16777216.0)

static struct lvd_ctx *make_ctx(int threads, int plain)
{
	struct lvd_ctx *c = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts o = {.threads = threads, .cpu_plain = plain, .ws_bytes = (size_t)1 << 30};
	REQUIRE(lvd_ctx_create(&c, &o, &err) == 0);
	return c;
}

static unsigned rng_state = 777;
static float frand(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (float)((rng_state >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	REQUIRE(p);
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

/* |got − want| <= k·u·bound + tiny for every element; returns the index of the first
 * failure or -1 */
static long first_bad(const float *got, const double *want, const double *bound, size_t n, double tol_rel)
{
	for (size_t i = 0; i < n; i++)
		if (!(fabs((double)got[i] - want[i]) <= tol_rel * bound[i] + 1e-30))
			return (long)i;
	return -1;
}

static void linear_case(struct lvd_ctx *ctx, int N, int IC, int OC, int with_bias)
{
	float *x = rand_buf((size_t)N * IC), *wf = rand_buf((size_t)OC * IC), *b = rand_buf(OC);
	uint16_t *w = malloc(sizeof(uint16_t) * ((size_t)OC * IC + 1));
	REQUIRE(w);
	for (size_t i = 0; i < (size_t)OC * IC; i++)
		w[i] = ref_bf16(wf[i]);
	size_t n = (size_t)N * OC;
	float *got = malloc(sizeof(float) * (n + 1));
	double *want = malloc(sizeof(double) * (n + 1)), *unr = malloc(sizeof(double) * (n + 1));
	double *bound = malloc(sizeof(double) * (n + 1));
	REQUIRE(got && want && unr && bound);
	for (int r = 0; r < N; r++)
		for (int o = 0; o < OC; o++) {
			double s = with_bias ? b[o] : 0, sa = with_bias ? fabs(b[o]) : 0, su = s;
			for (int k = 0; k < IC; k++) {
				double wv = bf16_val(w[(size_t)o * IC + k]);
				double t = bf16_val(ref_bf16(x[(size_t)r * IC + k])) * wv;
				s += t;
				sa += fabs(t);
				su += (double)x[(size_t)r * IC + k] * wv;
			}
			want[(size_t)r * OC + o] = s;
			unr[(size_t)r * OC + o] = su;
			bound[(size_t)r * OC + o] = sa;
		}
	lvd_linear_fwd_w16_cpu(ctx, got, x, w, with_bias ? b : NULL, N, IC, OC);
	double k = (IC + 2) * U32;
	long bad = first_bad(got, want, bound, n, k);
	CHECKF(bad < 0, "linear_w16 N %d IC %d OC %d bias %d: [%ld] = %.9g, want %.9g", N, IC, OC, with_bias, bad,
	       bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : want[bad]);
	/* the input must have been rounded: the unrounded sums miss the tolerance somewhere */
	if (IC >= 8)
		CHECK(first_bad(got, unr, bound, n, k) >= 0);
	CHECK(lvd_ctx_mark(ctx) == 0);
	free(x), free(wf), free(b), free(w), free(got), free(want), free(unr), free(bound);
}

static void conv_case(struct lvd_ctx *ctx, int B, int C, int H, int W, int OC, int K, int stride, int pt, int pl,
		      int pb, int pr, int with_bias)
{
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K, n = (size_t)B * OC * OH * OW;
	float *x = rand_buf(nx), *wf = rand_buf(nw), *b = rand_buf(OC);
	uint16_t *w = malloc(sizeof(uint16_t) * (nw + 1));
	float *got = malloc(sizeof(float) * (n + 1));
	double *want = malloc(sizeof(double) * (n + 1)), *bound = malloc(sizeof(double) * (n + 1));
	REQUIRE(w && got && want && bound);
	for (size_t i = 0; i < nw; i++)
		w[i] = ref_bf16(wf[i]);
	for (int s = 0; s < B; s++)
		for (int o = 0; o < OC; o++)
			for (int oh = 0; oh < OH; oh++)
				for (int ow = 0; ow < OW; ow++) {
					double acc = with_bias ? b[o] : 0, sa = with_bias ? fabs(b[o]) : 0;
					for (int c = 0; c < C; c++)
						for (int kh = 0; kh < K; kh++)
							for (int kw = 0; kw < K; kw++) {
								int ih = oh * stride - pt + kh, iw = ow * stride - pl + kw;
								if (ih < 0 || ih >= H || iw < 0 || iw >= W)
									continue;
								double xv = bf16_val(ref_bf16(
									x[(((size_t)s * C + c) * H + ih) * W + iw]));
								double t = xv * bf16_val(w[(((size_t)o * C + c) * K + kh) * K + kw]);
								acc += t;
								sa += fabs(t);
							}
					size_t i = (((size_t)s * OC + o) * OH + oh) * OW + ow;
					want[i] = acc;
					bound[i] = sa;
				}
	lvd_conv2d_fwd_w16_cpu(ctx, got, x, w, with_bias ? b : NULL, B, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	int wino = ctx->cpu_fast && K == 3 && stride == 1 && C >= 16 && H * W >= 256;
	double k = wino ? 1e-5 : (C * K * K + 2) * U32;
	long bad = first_bad(got, want, bound, n, k);
	CHECKF(bad < 0, "conv_w16 B %d C %d %dx%d OC %d k %d s %d pad %d%d%d%d: [%ld] = %.9g, want %.9g", B, C, H, W,
	       OC, K, stride, pt, pl, pb, pr, bad, bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : want[bad]);
	CHECK(lvd_ctx_mark(ctx) == 0);
	free(x), free(wf), free(b), free(w), free(got), free(want), free(bound);
}

static void run_all(void (*fn)(struct lvd_ctx *))
{
	struct lvd_ctx *c1 = make_ctx(1, 0), *cp = make_ctx(1, 1), *c3 = make_ctx(3, 0);
	fn(c1);
	fn(cp);
	fn(c3);
	lvd_ctx_destroy(c1), lvd_ctx_destroy(cp), lvd_ctx_destroy(c3);
}

static void linear_cases(struct lvd_ctx *c)
{
	linear_case(c, 1, 1, 1, 1);
	linear_case(c, 7, 33, 5, 0);
	linear_case(c, 77, 96, 37, 1);   /* CLIP-like: 77 tokens */
	linear_case(c, 130, 320, 65, 1); /* > 2^21 multiply-adds: the pool split */
}

static void conv_cases(struct lvd_ctx *c)
{
	conv_case(c, 1, 3, 9, 7, 5, 3, 1, 1, 1, 1, 1, 1);     /* conv_in-like, odd sizes */
	conv_case(c, 2, 16, 17, 16, 6, 3, 1, 1, 1, 1, 1, 1);  /* Winograd with cpu_fast */
	conv_case(c, 2, 5, 9, 8, 4, 3, 2, 0, 0, 1, 1, 1);     /* VAE downsampler pad (0,0,1,1) */
	conv_case(c, 1, 4, 10, 10, 3, 3, 2, 1, 1, 1, 1, 0);   /* UNet downsampler */
	conv_case(c, 2, 7, 5, 6, 9, 1, 1, 0, 0, 0, 0, 1);     /* 1×1 (shortcut, proj) */
}

static void test_linear_w16(void) { run_all(linear_cases); }
static void test_conv_w16(void) { run_all(conv_cases); }

/* the attnmap accumulator and the op on the same maps, levels 0-3 of a 64×48 latent
 * into a 32×24 grid (8×6 and 16×12 maps upsample), then a 9×5 grid (all downsample) */
static void tok_add_case(struct lvd_ctx *ctx, int gh, int gw)
{
	const int N = 77, first = 1, T = 12, LH = 64, LW = 48;
	struct lvd_attnmap_acc acc;
	struct lvd_error err = {0};
	REQUIRE(lvd_attnmap_acc_init(&acc, N, first, T, LH, LW, gh, gw, 0xfu, &err) == 0);
	size_t n = (size_t)T * gh * gw;
	float *got = calloc(n, sizeof(float));
	REQUIRE(got);
	for (int k = 0; k < 4; k++) {
		int H = LH >> k, W = LW >> k;
		float *map = rand_buf((size_t)H * W * N);
		for (size_t i = 0; i < (size_t)H * W * N; i++)
			map[i] = map[i] * 0.5f + 0.5f; /* probabilities-like, [0, 1) */
		CHECK(lvd_attnmap_acc_add(&acc, map, H, W) == 1);
		lvd_resample_bilinear_tok_add_cpu(ctx, got, map + first, N, T, H, W, gh, gw);
		free(map);
	}
	CHECKF(memcmp(got, acc.sum, sizeof(float) * n) == 0, "tok_add %dx%d grid: not bit-identical to lvd_attnmap_acc_add",
	       gh, gw);
	CHECK(lvd_ctx_mark(ctx) == 0);
	lvd_attnmap_acc_free(&acc);
	free(got);
}

static void tok_add_cases(struct lvd_ctx *c)
{
	tok_add_case(c, 32, 24);
	tok_add_case(c, 9, 5);
}

static void test_tok_add(void) { run_all(tok_add_cases); }

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_linear_w16), TEST(test_conv_w16), TEST(test_tok_add), {0}};
	return lvd_test_main(argc, argv, tests);
}
