/* tests/gpu/cases_sd.h — op-table cases of the SD CUDA twins (issue 19), included by
 * tests/gpu/test_cuda_ops.c after its helpers (gpu(), hrand, dupf, down, dalloc,
 * ref_bf16, bf16_val, CHECK_BOUND, CHECK_REL, U32): each twin against its CPU function
 * (the oracle) run on a plain-path CPU context (cpu_fast = 0: im2col, never Winograd),
 * on SD-like shapes with odd sizes. LVD_SD_CASES lists the cases for main's table.
 *
 * Tolerances, with Σ|terms| the sum of the absolute products of an output value (its
 * bias included), computed here in double:
 *   linear_w16, conv, conv_w16: both sides sum K products (exact: bf16·bf16 products
 *     are exact in fp32; fp32·fp32 ones round once) in fp32 in some order, each within
 *     (K + 2)·u·Σ|terms| of the exact value, so they differ by at most twice that.
 *     The bf16 rounding of the input happens identically on both sides (nearest even),
 *     so no bf16-sized term enters the tolerance.
 *   attention: 3e-5 absolute + 1e-5 relative: scores are fp32 dot products over D <= 512
 *     terms of inputs in [-1, 1) (typical error sqrt(D)·u·Σ|terms| <= ~8e-6 at D = 512),
 *     the probabilities inherit that relative error, the output is a convex combination
 *     of values in [-1, 1). probs_mean: 1e-5 absolute (probabilities <= 1). A missed key
 *     block or a wrong rescale gives errors ~1e-2.
 *   resample: nearest2x exact (a copy); bilinear and bilinear_tok_add 1e-6 absolute on inputs in [-1, 1)
 *     (the same fp32 operations in the same order without FMA contraction: expected
 *     bit-identical, the slack only absorbs a rounding we do not expect); area 1e-6
 *     (double sums rounded once on both sides). */
#ifndef TESTS_GPU_CASES_SD_H
#define TESTS_GPU_CASES_SD_H

#include "nn/ops/attention.h"
#include "nn/ops/conv.h"
#include "nn/ops/resample.h"

static struct lvd_ctx *g_sd_cpu;
static void sd_cpu_destroy(void) { lvd_ctx_destroy(g_sd_cpu); }
/* The plain-path one-thread CPU context the CUDA results are compared with. */
static struct lvd_ctx *sd_cpu(void)
{
	if (!g_sd_cpu) {
		struct lvd_error err = {0};
		struct lvd_ctx_opts o = {.threads = 1, .cpu_plain = 1, .ws_bytes = (size_t)1 << 30};
		REQUIRE(lvd_ctx_create(&g_sd_cpu, &o, &err) == 0);
		atexit(sd_cpu_destroy);
	}
	return g_sd_cpu;
}

static uint16_t *sd_to_bf16(const float *x, size_t n)
{
	uint16_t *p = malloc(sizeof(uint16_t) * (n ? n : 1));
	REQUIRE(p);
	for (size_t i = 0; i < n; i++)
		p[i] = ref_bf16(x[i]);
	return p;
}

/* Σ|terms| of each conv output: |x| ⊛ |w| + |b| in double (x, w as given). */
static void sd_conv_bound(double *bound, const float *x, const float *w, const float *b, int B, int C, int H, int W,
			  int OC, int K, int stride, int pt, int pl, int OH, int OW)
{
	for (int s = 0; s < B; s++)
		for (int o = 0; o < OC; o++)
			for (int oh = 0; oh < OH; oh++)
				for (int ow = 0; ow < OW; ow++) {
					double a = b ? fabs(b[o]) : 0;
					for (int c = 0; c < C; c++)
						for (int kh = 0; kh < K; kh++)
							for (int kw = 0; kw < K; kw++) {
								int ih = oh * stride - pt + kh, iw = ow * stride - pl + kw;
								if (ih >= 0 && ih < H && iw >= 0 && iw < W)
									a += fabs((double)x[(((size_t)s * C + c) * H + ih) * W + iw] *
										  w[(((size_t)o * C + c) * K + kh) * K + kw]);
							}
					bound[(((size_t)s * OC + o) * OH + oh) * OW + ow] = a;
				}
}

static void sd_linear_w16_case(struct lvd_ctx *c, int N, int IC, int OC, int with_bias)
{
	struct lvd_ctx *cpu = sd_cpu();
	float *x = hrand((size_t)N * IC, 1, 0), *wf = hrand((size_t)OC * IC, 0.5f, 0), *b = hrand(OC, 1, 0);
	uint16_t *w = sd_to_bf16(wf, (size_t)OC * IC);
	size_t n = (size_t)N * OC;
	float *want = malloc(sizeof(float) * (n + 1));
	double *wantd = dalloc(n), *bound = dalloc(n);
	REQUIRE(want);
	lvd_linear_fwd_w16_cpu(cpu, want, x, w, with_bias ? b : NULL, N, IC, OC);
	for (int r = 0; r < N; r++)
		for (int o = 0; o < OC; o++) {
			double a = with_bias ? fabs(b[o]) : 0;
			for (int k = 0; k < IC; k++)
				a += fabs(bf16_val(ref_bf16(x[(size_t)r * IC + k])) * bf16_val(w[(size_t)o * IC + k]));
			bound[(size_t)r * OC + o] = a;
			wantd[(size_t)r * OC + o] = want[(size_t)r * OC + o];
		}
	float *dX = dupf(c, x, (size_t)N * IC), *dB = dupf(c, b, OC), *dY = lvd_buf_alloc(c, sizeof(float) * (n + 1));
	uint16_t *dW = dup_dev(c, w, sizeof(uint16_t) * (size_t)OC * IC);
	size_t mk = lvd_ctx_mark(c);
	lvd_linear_fwd_w16_cuda(c, dY, dX, dW, with_bias ? dB : NULL, N, IC, OC);
	CHECK(lvd_ctx_mark(c) == mk);
	float *got = down(c, dY, n);
	CHECK_BOUND(with_bias ? "linear_w16 +bias" : "linear_w16", got, wantd, bound, n, 2.0 * (IC + 2));
	lvd_buf_free(c, dX), lvd_buf_free(c, dB), lvd_buf_free(c, dY), lvd_buf_free(c, dW);
	free(x), free(wf), free(b), free(w), free(want), free(wantd), free(bound), free(got);
}

static void test_sd_linear_w16(void)
{
	struct lvd_ctx *c = gpu();
	sd_linear_w16_case(c, 1, 1, 1, 1);
	sd_linear_w16_case(c, 5, 33, 7, 0);
	sd_linear_w16_case(c, 77, 768, 320, 1);  /* attn2 to_k: CLIP states -> 320 */
	sd_linear_w16_case(c, 257, 320, 1280, 1); /* time/ff-like, odd row count */
}

/* One conv case, fp32 weights (w16 = 0) or bf16 weights (w16 = 1). */
static void sd_conv_case(struct lvd_ctx *c, int w16, int B, int C, int H, int W, int OC, int K, int stride, int pt,
			 int pl, int pb, int pr, int with_bias)
{
	struct lvd_ctx *cpu = sd_cpu();
	int OH = lvd_conv_out_size(H, K, stride, pt, pb), OW = lvd_conv_out_size(W, K, stride, pl, pr);
	size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K, n = (size_t)B * OC * OH * OW;
	float *x = hrand(nx, 1, 0), *wf = hrand(nw, 0.5f, 0), *b = hrand(OC, 1, 0);
	uint16_t *wb = sd_to_bf16(wf, nw);
	float *want = malloc(sizeof(float) * (n + 1));
	double *wantd = dalloc(n), *bound = dalloc(n);
	REQUIRE(want);
	const float *bb = with_bias ? b : NULL;
	if (w16) {
		lvd_conv2d_fwd_w16_cpu(cpu, want, x, wb, bb, B, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
		float *xr = malloc(sizeof(float) * (nx + 1)), *wr = malloc(sizeof(float) * (nw + 1));
		REQUIRE(xr && wr);
		for (size_t i = 0; i < nx; i++)
			xr[i] = bf16_val(ref_bf16(x[i]));
		for (size_t i = 0; i < nw; i++)
			wr[i] = bf16_val(wb[i]);
		sd_conv_bound(bound, xr, wr, bb, B, C, H, W, OC, K, stride, pt, pl, OH, OW);
		free(xr), free(wr);
	} else {
		lvd_conv2d_fwd_cpu(cpu, want, x, wf, bb, B, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
		sd_conv_bound(bound, x, wf, bb, B, C, H, W, OC, K, stride, pt, pl, OH, OW);
	}
	for (size_t i = 0; i < n; i++)
		wantd[i] = want[i];
	float *dX = dupf(c, x, nx), *dWf = dupf(c, wf, nw), *dB = dupf(c, b, OC);
	uint16_t *dWb = dup_dev(c, wb, sizeof(uint16_t) * nw);
	float *dY = lvd_buf_alloc(c, sizeof(float) * (n + 1));
	REQUIRE(dY);
	size_t mk = lvd_ctx_mark(c);
	if (w16)
		lvd_conv2d_fwd_w16_cuda(c, dY, dX, dWb, with_bias ? dB : NULL, B, C, H, W, OC, K, K, stride, pt, pl, pb,
					pr);
	else
		lvd_conv2d_fwd_cuda(c, dY, dX, dWf, with_bias ? dB : NULL, B, C, H, W, OC, K, K, stride, pt, pl, pb, pr);
	CHECK(lvd_ctx_mark(c) == mk);
	float *got = down(c, dY, n);
	char what[160];
	snprintf(what, sizeof what, "conv%s B%d C%d %dx%d OC%d k%d s%d pad %d%d%d%d bias %d", w16 ? "_w16" : "", B, C, H,
		 W, OC, K, stride, pt, pl, pb, pr, with_bias);
	CHECK_BOUND(what, got, wantd, bound, n, 2.0 * (C * K * K + 2));
	lvd_buf_free(c, dX), lvd_buf_free(c, dWf), lvd_buf_free(c, dB), lvd_buf_free(c, dWb), lvd_buf_free(c, dY);
	free(x), free(wf), free(b), free(wb), free(want), free(wantd), free(bound), free(got);
}

/* SD's conv kinds on odd sizes: 3×3 pad 1 (conv_in with 3-4 channels, resnet convs),
 * 3×3 stride 2 with the VAE's right/bottom-only pad and the UNet's pad 1, 1×1 (the
 * shortcut and proj_in/out), batch 1-3, with and without bias; both im2col schedules
 * (images sharing GEMMs below 4096 output pixels, per image above). */
static void sd_conv_all(struct lvd_ctx *c, int w16)
{
	sd_conv_case(c, w16, 2, 4, 9, 7, 5, 3, 1, 1, 1, 1, 1, 1);
	sd_conv_case(c, w16, 1, 3, 33, 31, 16, 3, 1, 1, 1, 1, 1, 0);
	sd_conv_case(c, w16, 2, 64, 17, 16, 40, 3, 1, 1, 1, 1, 1, 1);
	sd_conv_case(c, w16, 2, 8, 9, 10, 6, 3, 2, 0, 0, 1, 1, 1);
	sd_conv_case(c, w16, 1, 32, 16, 16, 32, 3, 2, 0, 0, 1, 1, 0);
	sd_conv_case(c, w16, 2, 12, 11, 9, 7, 3, 2, 1, 1, 1, 1, 1);
	sd_conv_case(c, w16, 2, 12, 5, 6, 7, 1, 1, 0, 0, 0, 0, 1);
	sd_conv_case(c, w16, 1, 320, 8, 8, 64, 1, 1, 0, 0, 0, 0, 0);
	/* >= 4096 output pixels: one GEMM per image and row slab (smaller: images share) */
	sd_conv_case(c, w16, 2, 4, 64, 65, 8, 3, 1, 1, 1, 1, 1, 1);
	sd_conv_case(c, w16, 2, 6, 64, 64, 5, 1, 1, 0, 0, 0, 0, 1);
	sd_conv_case(c, w16, 3, 16, 8, 8, 24, 3, 1, 1, 1, 1, 1, 1);
}

static void test_sd_conv(void) { sd_conv_all(gpu(), 0); }
static void test_sd_conv_w16(void) { sd_conv_all(gpu(), 1); }

/* q, k, v as rows of one [S, 3·(HD + 3)] buffer (strided heads, odd leading dimension,
 * as the UNet's fused projections would give). */
static void sd_attention_case(struct lvd_ctx *c, int Sq, int Sk, int H, int D, int causal, int with_probs)
{
	struct lvd_ctx *cpu = sd_cpu();
	int HD = H * D, ld = HD + 3;
	float scale = 1.0f / sqrtf((float)D);
	float *q = hrand((size_t)Sq * ld, 1, 0), *k = hrand((size_t)Sk * ld, 1, 0), *v = hrand((size_t)Sk * ld, 1, 0);
	size_t no = (size_t)Sq * HD, np = (size_t)Sq * Sk;
	float *want = malloc(sizeof(float) * no), *pwant = malloc(sizeof(float) * np);
	double *wd = dalloc(no), *pd = dalloc(np);
	REQUIRE(want && pwant);
	lvd_attention_fwd_cpu(cpu, want, with_probs ? pwant : NULL, q, ld, k, ld, v, ld, Sq, Sk, H, D, scale, causal);
	for (size_t i = 0; i < no; i++)
		wd[i] = want[i];
	for (size_t i = 0; i < np; i++)
		pd[i] = with_probs ? pwant[i] : 0;
	float *dQ = dupf(c, q, (size_t)Sq * ld), *dK = dupf(c, k, (size_t)Sk * ld), *dV = dupf(c, v, (size_t)Sk * ld);
	float *dO = lvd_buf_alloc(c, sizeof(float) * no), *dP = lvd_buf_alloc(c, sizeof(float) * np);
	REQUIRE(dO && dP);
	size_t mk = lvd_ctx_mark(c);
	lvd_attention_fwd_cuda(c, dO, with_probs ? dP : NULL, dQ, ld, dK, ld, dV, ld, Sq, Sk, H, D, scale, causal);
	CHECK(lvd_ctx_mark(c) == mk);
	float *got = down(c, dO, no);
	char what[120];
	snprintf(what, sizeof what, "attention Sq%d Sk%d H%d D%d causal %d probs %d", Sq, Sk, H, D, causal, with_probs);
	CHECK_REL(what, got, wd, no, 1e-5, 3e-5);
	if (with_probs) {
		float *pg = down(c, dP, np);
		CHECK_REL("attention probs_mean", pg, pd, np, 0, 1e-5);
		free(pg);
	}
	lvd_buf_free(c, dQ), lvd_buf_free(c, dK), lvd_buf_free(c, dV), lvd_buf_free(c, dO), lvd_buf_free(c, dP);
	free(q), free(k), free(v), free(want), free(pwant), free(wd), free(pd), free(got);
}

static void test_sd_attention(void)
{
	struct lvd_ctx *c = gpu();
	sd_attention_case(c, 300, 300, 2, 40, 0, 0);  /* attn1 SD 1.5 (D 40), fused, ragged blocks */
	sd_attention_case(c, 77, 77, 3, 64, 1, 0);    /* CLIP, causal, fused */
	sd_attention_case(c, 161, 161, 2, 80, 0, 0);  /* D 80 (3 lane chunks) */
	sd_attention_case(c, 70, 70, 1, 128, 1, 0);   /* D 128, causal */
	sd_attention_case(c, 33, 47, 1, 20, 0, 0);    /* D < 32, Sq != Sk */
	sd_attention_case(c, 64, 64, 2, 160, 0, 0);   /* D 160: explicit path */
	sd_attention_case(c, 100, 100, 1, 512, 0, 0); /* VAE mid-block: H 1, D 512 */
	sd_attention_case(c, 257, 77, 8, 40, 0, 1);   /* attn2 with the head mean */
	sd_attention_case(c, 77, 77, 3, 64, 1, 1);    /* causal with the head mean */
}

/* kind 0 nearest2x, 1 bilinear, 2 area, through the dispatcher: ctx picks CPU or CUDA */
static void sd_resample_run(struct lvd_ctx *x, int kind, float *out, const float *in, int B, int C, int H, int W,
			    int OH, int OW, int ac)
{
	if (kind == 0)
		lvd_resample_nearest2x_fwd(x, out, in, B, C, H, W);
	else if (kind == 1)
		lvd_resample_bilinear_fwd(x, out, in, B, C, H, W, OH, OW, ac);
	else
		lvd_resample_area_fwd(x, out, in, B, C, H, W, OH, OW);
}

static void sd_resample_case(struct lvd_ctx *c, int kind, int B, int C, int H, int W, int OH, int OW, int ac)
{
	size_t nx = (size_t)B * C * H * W, n = (size_t)B * C * OH * OW;
	float *x = hrand(nx, 1, 0), *want = malloc(sizeof(float) * n);
	double *wd = dalloc(n);
	REQUIRE(want);
	sd_resample_run(sd_cpu(), kind, want, x, B, C, H, W, OH, OW, ac);
	for (size_t i = 0; i < n; i++)
		wd[i] = want[i];
	float *dX = dupf(c, x, nx), *dY = lvd_buf_alloc(c, sizeof(float) * n);
	REQUIRE(dY);
	sd_resample_run(c, kind, dY, dX, B, C, H, W, OH, OW, ac);
	float *got = down(c, dY, n);
	char what[120];
	snprintf(what, sizeof what, "resample %s %dx%d -> %dx%d ac %d", kind == 0 ? "nearest2x" : kind == 1 ? "bilinear" : "area",
		 H, W, OH, OW, ac);
	CHECK_REL(what, got, wd, n, 0, kind == 0 ? 0 : 1e-6);
	lvd_buf_free(c, dX), lvd_buf_free(c, dY);
	free(x), free(want), free(wd), free(got);
}

static void test_sd_resample(void)
{
	struct lvd_ctx *c = gpu();
	sd_resample_case(c, 0, 2, 3, 5, 7, 10, 14, 0);
	sd_resample_case(c, 0, 1, 320, 8, 8, 16, 16, 0);
	for (int ac = 0; ac < 2; ac++) {
		sd_resample_case(c, 1, 2, 3, 7, 5, 16, 11, ac); /* up, odd */
		sd_resample_case(c, 1, 1, 4, 64, 48, 24, 17, ac); /* down to a map grid */
		sd_resample_case(c, 1, 1, 2, 9, 9, 9, 9, ac);   /* identity */
		sd_resample_case(c, 1, 1, 2, 1, 6, 3, 1, ac);   /* size-1 axes */
	}
	sd_resample_case(c, 2, 2, 3, 17, 13, 5, 4, 0);
	sd_resample_case(c, 2, 1, 2, 64, 64, 24, 24, 0);
}

/* The accumulating token-last bilinear (attention maps onto the output grid): a [H·W, 77]
 * map, tokens 1..12, added twice onto a random start so accumulation shows. */
static void sd_tok_add_case(struct lvd_ctx *c, int H, int W, int OH, int OW)
{
	struct lvd_ctx *cpu = sd_cpu();
	const int N = 77, T = 12;
	size_t nm = (size_t)H * W * N, n = (size_t)T * OH * OW;
	float *map = hrand(nm, 0.5f, 0.5f), *start = hrand(n, 1, 0), *want = hcopy(start, n);
	double *wd = dalloc(n);
	lvd_resample_bilinear_tok_add_cpu(cpu, want, map + 1, N, T, H, W, OH, OW);
	lvd_resample_bilinear_tok_add_cpu(cpu, want, map + 1, N, T, H, W, OH, OW);
	for (size_t i = 0; i < n; i++)
		wd[i] = want[i];
	float *dM = dupf(c, map, nm), *dO = dupf(c, start, n);
	lvd_resample_bilinear_tok_add_cuda(c, dO, dM + 1, N, T, H, W, OH, OW);
	lvd_resample_bilinear_tok_add_cuda(c, dO, dM + 1, N, T, H, W, OH, OW);
	float *got = down(c, dO, n);
	char what[96];
	snprintf(what, sizeof what, "bilinear_tok_add %dx%d -> %dx%d", H, W, OH, OW);
	/* the CPU's fp32 operations without contraction: expected bit-identical; 1e-6 on sums
	 * <= ~3 only absorbs a rounding we do not expect */
	CHECK_REL(what, got, wd, n, 0, 1e-6);
	lvd_buf_free(c, dM), lvd_buf_free(c, dO);
	free(map), free(start), free(want), free(wd), free(got);
}

static void test_sd_tok_add(void)
{
	struct lvd_ctx *c = gpu();
	sd_tok_add_case(c, 64, 48, 32, 24);
	sd_tok_add_case(c, 8, 6, 32, 24);
	sd_tok_add_case(c, 17, 9, 5, 7);
}

#define LVD_SD_CASES \
	TEST(test_sd_linear_w16), TEST(test_sd_conv), TEST(test_sd_conv_w16), TEST(test_sd_attention), \
	TEST(test_sd_resample), TEST(test_sd_tok_add),

#endif
