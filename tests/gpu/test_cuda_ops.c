/* tests/gpu/test_cuda_ops.c — every CUDA twin (lib/nn/ops/<family>.cu, declared in
 * its family header lib/nn/ops/<family>.h) against a plain C reference written here with double loops,
 * on random inputs, with the tolerance's reason beside each check. Built only when
 * CUDA=1 (as $(BUILD)/tests/test_cuda_ops, so tests/run.sh runs it); without a visible
 * device every case ends as SKIP with the reason.
 *
 * Also checked: accumulation (backward gradients start non-zero), NULL gradients are
 * skipped, in-place forward ops, -inf softmax entries give exactly 0, GEMM leaves the
 * padding between ldc and N alone, and every op gives its workspace back.
 *
 * u = 2^-24 is the fp32 unit roundoff. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_ref.h"
#include "harness.h"
#include "gpu/gpu_ctx.h"
#include "core/device.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/softmax.h"

#define U32 (1.0 / 16777216.0)

/* The CUDA context, or SKIP with the reason (no device / no driver / context failure). */
static struct lvd_ctx *gpu(void) { return lvd_test_gpu((size_t)256 << 20); }

/* ---- host helpers ---- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return (float)((double)((g_rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *hrand(size_t n, float scale, float offset)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	REQUIRE(p);
	for (size_t i = 0; i < n; i++)
		p[i] = offset + scale * frand();
	return p;
}
static float *hcopy(const float *x, size_t n)
{
	float *p = malloc(sizeof(float) * (n ? n : 1));
	REQUIRE(p);
	memcpy(p, x, sizeof(float) * n);
	return p;
}
static void *dup_dev(struct lvd_ctx *c, const void *h, size_t bytes)
{
	void *d = lvd_buf_alloc(c, bytes);
	REQUIRE(d);
	lvd_buf_upload(c, d, h, bytes);
	return d;
}
static float *dupf(struct lvd_ctx *c, const float *h, size_t n) { return dup_dev(c, h, sizeof(float) * n); }
static float *down(struct lvd_ctx *c, const float *d, size_t n)
{
	float *h = malloc(sizeof(float) * (n ? n : 1));
	REQUIRE(h);
	lvd_buf_download(c, h, d, sizeof(float) * n);
	return h;
}

/* Every element: |got − want| <= abs + rel·|want| (NaN fails). */
static int check_rel(const char *file, int line, const char *what, const float *got, const double *want, size_t n,
		     double rel, double abs)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]), tol = abs + rel * fabs(want[i]);
		if (!(d <= tol)) {
			lvd_t_fail_count++;
			fprintf(stderr, "  FAIL %s:%d: %s[%zu] = %.9g, want %.9g, |diff| %.3g > tol %.3g\n", file, line,
				what, i, (double)got[i], want[i], d, tol);
			return 0;
		}
	}
	return 1;
}
#define CHECK_REL(what, got, want, n, rel, abs) check_rel(__FILE__, __LINE__, (what), (got), (want), (n), (rel), (abs))

/* Every element: |got − want| <= k·u·bound[i] + tiny (bound = Σ|terms| of that value). */
static int check_bound(const char *file, int line, const char *what, const float *got, const double *want,
		       const double *bound, size_t n, double k)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]), tol = k * U32 * bound[i] + 1e-30;
		if (!(d <= tol)) {
			lvd_t_fail_count++;
			fprintf(stderr, "  FAIL %s:%d: %s[%zu] = %.9g, want %.9g, |diff| %.3g > %g·u·Σ|terms| = %.3g\n",
				file, line, what, i, (double)got[i], want[i], d, k, tol);
			return 0;
		}
	}
	return 1;
}
#define CHECK_BOUND(what, got, want, bound, n, k) check_bound(__FILE__, __LINE__, (what), (got), (want), (bound), (n), (k))

static double *dalloc(size_t n)
{
	double *p = calloc(n ? n : 1, sizeof(double));
	REQUIRE(p);
	return p;
}

/* ---- GEMM ---- */

/* want[i·N + j] = alpha·Σ op(A)op(B) + beta·C0 (beta 0: C0 ignored), bound = Σ|terms|. */
static void ref_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
		     int ldb, float beta, const float *C0, int ldc, double *want, double *bound)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0, sa = 0;
			for (int k = 0; k < K; k++) {
				double a = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
				double b = tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
				s += a * b;
				sa += fabs(a * b);
			}
			double c = beta == 0.0f ? 0.0 : (double)beta * C0[(size_t)i * ldc + j];
			want[(size_t)i * N + j] = alpha * s + c;
			bound[(size_t)i * N + j] = fabs(alpha) * sa + fabs(c);
		}
}

/* One GEMM case, fp32 or bf16 (A, B rounded to bf16 first). Leading dimensions are
 * padded by 3 (odd); C's padding holds a sentinel that must survive. off = 1 puts every
 * operand one element past the start of its buffer (4- or 2-byte alignment, which
 * cuBLASLt must be told about). */
static void gemm_case(struct lvd_ctx *c, int bf16, int off, int tA, int tB, int M, int N, int K, float alpha,
		      float beta)
{
	int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 3, ldc = N + 3;
	size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb, nc = (size_t)M * ldc;
	float *A = hrand(na + 1, 1.0f, 0.0f), *B = hrand(nb + 1, 1.0f, 0.0f), *C0 = hrand(nc + 1, 1.0f, 0.0f);
	const float SENT = 12345.0f;
	for (int i = 0; i < M; i++)
		for (int j = N; j < ldc; j++)
			C0[off + (size_t)i * ldc + j] = SENT;
	if (beta == 0.0f) /* beta 0 must ignore C, NaN included */
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C0[off + (size_t)i * ldc + j] = NAN;
	uint16_t *Ab = malloc(2 * (na + 1)), *Bb = malloc(2 * (nb + 1));
	REQUIRE(Ab && Bb);
	float *Ar = hcopy(A, na + 1), *Br = hcopy(B, nb + 1); /* what the product sees */
	if (bf16) {
		for (size_t i = 0; i < na + 1; i++)
			Ar[i] = bf16_val(Ab[i] = ref_bf16(A[i]));
		for (size_t i = 0; i < nb + 1; i++)
			Br[i] = bf16_val(Bb[i] = ref_bf16(B[i]));
	}
	float *dC = dupf(c, C0, nc + 1);
	size_t mk = lvd_ctx_mark(c);
	if (bf16) {
		uint16_t *dA = dup_dev(c, Ab, 2 * (na + 1)), *dB = dup_dev(c, Bb, 2 * (nb + 1));
		lvd_gemm_bf16_cuda(c, tA, tB, M, N, K, alpha, dA + off, lda, dB + off, ldb, beta, dC + off, ldc);
		lvd_ctx_sync(c);
		lvd_buf_free(c, dA);
		lvd_buf_free(c, dB);
	} else {
		float *dA = dupf(c, A, na + 1), *dB = dupf(c, B, nb + 1);
		lvd_gemm_cuda(c, tA, tB, M, N, K, alpha, dA + off, lda, dB + off, ldb, beta, dC + off, ldc);
		lvd_ctx_sync(c);
		lvd_buf_free(c, dA);
		lvd_buf_free(c, dB);
	}
	CHECK(lvd_ctx_mark(c) == mk);
	float *C = down(c, dC, nc + 1);
	double *want = dalloc((size_t)M * N), *bound = dalloc((size_t)M * N);
	float *got = malloc(sizeof(float) * ((size_t)M * N + 1));
	REQUIRE(got);
	for (int i = 0; i < M; i++)
		memcpy(got + (size_t)i * N, C + off + (size_t)i * ldc, sizeof(float) * N);
	char what[96];
	snprintf(what, sizeof what, "%s gemm t%d%d %dx%dx%d beta %g%s", bf16 ? "bf16" : "fp32", tA, tB, M, N, K, beta,
		 off ? " unaligned" : "");
	ref_gemm(tA, tB, M, N, K, alpha, Ar + off, lda, Br + off, ldb, beta, C0 + off, ldc, want, bound);
	/* fp32: any summation order of K products plus alpha, beta terms is within
	 * (K+4)·u·Σ|terms| (the γ_n bound). bf16 inputs: products of bf16 values are exact in
	 * fp32; tensor-core accumulators may truncate rather than round, so 2u per add. */
	CHECK_BOUND(what, got, want, bound, (size_t)M * N, bf16 ? 2.0 * (K + 4) : (double)(K + 4));
	if (bf16) {
		/* against the unrounded fp32 inputs: bf16 keeps 8 significant bits, so each input
		 * moved by <= 2^-8 relative and a product by <= 2^-7 + 2^-16: bound
		 * (2^-7 + 2^-16)·Σ|a b| plus the accumulation above */
		ref_gemm(tA, tB, M, N, K, alpha, A + off, lda, B + off, ldb, beta, C0 + off, ldc, want, bound);
		double k = (1.0 / 128 + 1.0 / 65536) / U32 * 1.01 + 2.0 * (K + 4);
		CHECK_BOUND(what, got, want, bound, (size_t)M * N, k);
	}
	int pad_ok = 1;
	for (int i = 0; i < M; i++)
		for (int j = N; j < ldc; j++)
			pad_ok &= C[off + (size_t)i * ldc + j] == SENT;
	CHECKF(pad_ok, "%s: wrote into the padding between N and ldc", what);
	lvd_buf_free(c, dC);
	free(A), free(B), free(C0), free(Ab), free(Bb), free(Ar), free(Br), free(C), free(want), free(bound), free(got);
}

static void test_gemm_fp32(void)
{
	struct lvd_ctx *c = gpu();
	static const int shapes[][3] = {{1, 1, 1}, {17, 33, 65}, {128, 96, 64}, {257, 130, 300}, {5, 700, 3}};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (int t = 0; t < 4; t++) {
			gemm_case(c, 0, 0, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 0.7f, 1.3f);
			gemm_case(c, 0, 0, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], -1.0f, 0.0f);
		}
}

static void test_gemm_bf16(void)
{
	struct lvd_ctx *c = gpu();
	static const int shapes[][3] = {{1, 1, 1}, {17, 33, 65}, {128, 96, 64}, {257, 130, 300}};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
		for (int t = 0; t < 4; t++) {
			gemm_case(c, 1, 0, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 0.7f, 1.3f);
			gemm_case(c, 1, 0, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f);
		}
}

/* Operands at 4-byte (fp32) and 2-byte (bf16) alignment. Last in the table: if
 * cuBLASLt had no algorithm for them the op aborts, and every other case has run. */
static void test_gemm_unaligned(void)
{
	struct lvd_ctx *c = gpu();
	for (int bf16 = 0; bf16 < 2; bf16++)
		for (int t = 0; t < 4; t++) {
			gemm_case(c, bf16, 1, t & 1, t >> 1, 17, 33, 65, 0.7f, 1.3f);
			gemm_case(c, bf16, 1, t & 1, t >> 1, 128, 96, 64, 1.0f, 0.0f);
		}
}

/* K = 0: C = beta·C, and beta = 0 writes zeros (the CPU op's rule). */
static void test_gemm_k0(void)
{
	struct lvd_ctx *c = gpu();
	float C0[6] = {1, 2, 3, 4, NAN, 6}, *dC = dupf(c, C0, 6);
	lvd_gemm_cuda(c, 0, 0, 2, 2, 0, 1.0f, dC, 1, dC, 2, 0.5f, dC, 3);
	float *C = down(c, dC, 6);
	CHECK(C[0] == 0.5f && C[1] == 1.0f && C[2] == 3.0f && C[3] == 2.0f && isnan(C[4]));
	lvd_gemm_cuda(c, 0, 0, 2, 2, 0, 1.0f, dC, 1, dC, 2, 0.0f, dC, 3);
	free(C);
	C = down(c, dC, 6);
	CHECK(C[0] == 0.0f && C[1] == 0.0f && C[3] == 0.0f && C[4] == 0.0f && C[2] == 3.0f);
	lvd_buf_free(c, dC);
	free(C);
}

static void test_linear(void)
{
	struct lvd_ctx *c = gpu();
	int N = 37, IC = 70, OC = 50;
	float *x = hrand((size_t)N * IC, 1, 0), *w = hrand((size_t)OC * IC, 0.5f, 0), *b = hrand(OC, 1, 0);
	float *dy = hrand((size_t)N * OC, 1, 0), *dx0 = hrand((size_t)N * IC, 1, 0);
	float *dw0 = hrand((size_t)OC * IC, 1, 0), *db0 = hrand(OC, 1, 0);
	float *dX = dupf(c, x, (size_t)N * IC), *dW = dupf(c, w, (size_t)OC * IC), *dB = dupf(c, b, OC);
	float *dY = lvd_buf_alloc(c, sizeof(float) * N * OC), *dDY = dupf(c, dy, (size_t)N * OC);
	float *ddx = dupf(c, dx0, (size_t)N * IC), *ddw = dupf(c, dw0, (size_t)OC * IC), *ddb = dupf(c, db0, OC);
	double *want = dalloc((size_t)OC * IC), *bound = dalloc((size_t)OC * IC);
	for (int withb = 0; withb < 2; withb++) {
		lvd_linear_fwd_cuda(c, dY, dX, dW, withb ? dB : NULL, N, IC, OC);
		float *y = down(c, dY, (size_t)N * OC);
		ref_gemm(0, 1, N, OC, IC, 1.0f, x, IC, w, IC, 0.0f, NULL, 0, want, bound);
		if (withb)
			for (int n = 0; n < N; n++)
				for (int o = 0; o < OC; o++) {
					want[(size_t)n * OC + o] += b[o];
					bound[(size_t)n * OC + o] += fabs(b[o]);
				}
		/* GEMM bound (IC + 4)·u·Σ|terms|, one more rounding for the bias add */
		CHECK_BOUND(withb ? "linear fwd +bias" : "linear fwd", y, want, bound, (size_t)N * OC, IC + 6);
		free(y);
	}
	size_t mk = lvd_ctx_mark(c);
	lvd_linear_bwd_cuda(c, ddx, ddw, ddb, dDY, dX, dW, N, IC, OC);
	lvd_linear_bwd_cuda(c, NULL, NULL, NULL, dDY, dX, dW, N, IC, OC); /* all skipped */
	lvd_ctx_sync(c);
	CHECK(lvd_ctx_mark(c) == mk);
	float *gx = down(c, ddx, (size_t)N * IC), *gw = down(c, ddw, (size_t)OC * IC), *gb = down(c, ddb, OC);
	/* accumulated: beta = 1 onto the old gradient */
	ref_gemm(0, 0, N, IC, OC, 1.0f, dy, OC, w, IC, 1.0f, dx0, IC, want, bound);
	CHECK_BOUND("linear dinp", gx, want, bound, (size_t)N * IC, OC + 4);
	ref_gemm(1, 0, OC, IC, N, 1.0f, dy, OC, x, IC, 1.0f, dw0, IC, want, bound);
	CHECK_BOUND("linear dw", gw, want, bound, (size_t)OC * IC, N + 4);
	for (int o = 0; o < OC; o++) {
		double s = db0[o], sa = fabs(db0[o]);
		for (int n = 0; n < N; n++) {
			s += dy[(size_t)n * OC + o];
			sa += fabs(dy[(size_t)n * OC + o]);
		}
		want[o] = s;
		bound[o] = sa;
	}
	/* summed in double, rounded once, added once: 2u·Σ|terms| */
	CHECK_BOUND("linear dbias", gb, want, bound, OC, 3);
	lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dB), lvd_buf_free(c, dY), lvd_buf_free(c, dDY);
	lvd_buf_free(c, ddx), lvd_buf_free(c, ddw), lvd_buf_free(c, ddb);
	free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0), free(gx), free(gw), free(gb);
	free(want), free(bound);
}

/* ---- softmax ---- */

static void test_softmax(void)
{
	struct lvd_ctx *c = gpu();
	static const int Ms[] = {1, 7, 100, 1000, 3000};
	int N = 33;
	for (size_t t = 0; t < sizeof Ms / sizeof Ms[0]; t++) {
		int M = Ms[t];
		size_t n = (size_t)N * M;
		float *x = hrand(n, 8.0f, 0.0f);
		for (int r = 0; r < N; r++) /* mask some entries, never a whole row */
			for (int j = 1; j < M; j += 3)
				x[(size_t)r * M + j] = -INFINITY;
		float *dx = dupf(c, x, n);
		lvd_softmax_fwd_cuda(c, dx, dx, N, M); /* in place */
		float *y = down(c, dx, n);
		double *want = dalloc(n), *bound = dalloc(n);
		int zeros_ok = 1;
		for (int r = 0; r < N; r++) {
			const float *xr = x + (size_t)r * M;
			double mx = -INFINITY, s = 0;
			for (int j = 0; j < M; j++)
				mx = xr[j] > mx ? xr[j] : mx;
			for (int j = 0; j < M; j++)
				s += exp(xr[j] - mx);
			for (int j = 0; j < M; j++) {
				size_t i = (size_t)r * M + j;
				want[i] = exp(xr[j] - mx) / s;
				/* x − max rounded in fp32 moves the exponent by <= u·|x − max| (relative
				 * error of the exp), expf <= 2 ulp, the fp32 sum (per-thread runs, then a
				 * tree) <= (M/32 + 2·log2 M)·u, the reciprocal and product 2u */
				bound[i] = xr[j] == -INFINITY ? 0.0 : want[i] * (fabs(xr[j] - mx) + M / 32.0 + 2 * log2(M) + 8);
				if (xr[j] == -INFINITY)
					zeros_ok &= y[i] == 0.0f;
			}
		}
		CHECKF(zeros_ok, "M %d: -inf entries must give exactly 0", M);
		CHECK_BOUND("softmax fwd", y, want, bound, n, 1);
		/* backward, accumulating */
		float *dy = hrand(n, 1, 0), *g0 = hrand(n, 1, 0);
		float *ddy = dupf(c, dy, n), *dg = dupf(c, g0, n);
		lvd_softmax_bwd_cuda(c, dg, ddy, dx, N, M);
		lvd_softmax_bwd_cuda(c, NULL, ddy, dx, N, M);
		float *g = down(c, dg, n);
		for (int r = 0; r < N; r++) {
			const float *p = y + (size_t)r * M, *d = dy + (size_t)r * M;
			double ds = 0, da = 0;
			for (int j = 0; j < M; j++) {
				ds += (double)p[j] * d[j];
				da += fabs((double)p[j] * d[j]);
			}
			for (int j = 0; j < M; j++) {
				size_t i = (size_t)r * M + j;
				want[i] = g0[i] + p[j] * (d[j] - ds);
				bound[i] = fabs(g0[i]) + fabs(p[j]) * (fabs(d[j]) + da);
			}
		}
		/* dot in double rounded to fp32 (u), then a subtraction, a product, an add */
		CHECK_BOUND("softmax bwd", g, want, bound, n, 6);
		lvd_buf_free(c, dx), lvd_buf_free(c, ddy), lvd_buf_free(c, dg);
		free(x), free(y), free(want), free(dy), free(g0), free(g), free(bound);
	}
}

/* ---- norms ---- */

static void test_layernorm(void)
{
	struct lvd_ctx *c = gpu();
	static const int Cs[] = {1, 64, 769, 2048};
	int N = 19;
	float eps = 1e-5f;
	for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++)
		for (int affine = 0; affine < 2; affine++) {
			int C = Cs[t];
			size_t n = (size_t)N * C;
			float *x = hrand(n, 2.0f, 3.0f), *w = hrand(C, 1, 0.5f), *b = hrand(C, 1, 0);
			float *dX = dupf(c, x, n), *dW = dupf(c, w, C), *dB = dupf(c, b, C);
			float *dY = lvd_buf_alloc(c, sizeof(float) * n), *dM = lvd_buf_alloc(c, 4 * N), *dR = lvd_buf_alloc(c, 4 * N);
			lvd_layernorm_fwd_cuda(c, dY, dM, dR, dX, affine ? dW : NULL, affine ? dB : NULL, N, C, eps);
			float *y = down(c, dY, n), *m = down(c, dM, N), *r = down(c, dR, N);
			double *want = dalloc(n), *wm = dalloc(N), *wr = dalloc(N), *bnd = dalloc(n);
			for (int i = 0; i < N; i++) {
				const float *xr = x + (size_t)i * C;
				double s = 0, ss = 0;
				for (int j = 0; j < C; j++)
					s += xr[j];
				double mu = s / C;
				for (int j = 0; j < C; j++)
					ss += (xr[j] - mu) * (xr[j] - mu);
				double rs = 1.0 / sqrt(ss / C + eps);
				wm[i] = mu;
				wr[i] = rs;
				for (int j = 0; j < C; j++) {
					double wj = affine ? w[j] : 1.0, bj = affine ? b[j] : 0.0, xh = (xr[j] - mu) * rs;
					want[(size_t)i * C + j] = xh * wj + bj;
					bnd[(size_t)i * C + j] = rs * (fabs(xr[j]) + fabs(mu)) * fabs(wj) + fabs(xh * wj) + fabs(bj);
				}
			}
			/* statistics in double, rounded to fp32 once */
			CHECK_REL("layernorm mean", m, wm, N, 2 * U32, 1e-37);
			CHECK_REL("layernorm rstd", r, wr, N, 2 * U32, 1e-37);
			/* y = (x − mean)·rstd·w + b in fp32 with the rounded mean and rstd: the mean's
			 * rounding costs u·|mean|·rstd·|w|, then about four roundings of the terms */
			CHECK_BOUND("layernorm fwd", y, want, bnd, n, 8);
			/* backward (accumulating into random gradients) */
			float *dy = hrand(n, 1, 0), *gx0 = hrand(n, 1, 0), *gw0 = hrand(C, 1, 0), *gb0 = hrand(C, 1, 0);
			float *ddy = dupf(c, dy, n), *dgx = dupf(c, gx0, n), *dgw = dupf(c, gw0, C), *dgb = dupf(c, gb0, C);
			size_t mk = lvd_ctx_mark(c);
			lvd_layernorm_bwd_cuda(c, dgx, affine ? dgw : NULL, affine ? dgb : NULL, ddy, dX, affine ? dW : NULL,
					       dM, dR, N, C);
			lvd_ctx_sync(c);
			CHECK(lvd_ctx_mark(c) == mk);
			float *gx = down(c, dgx, n), *gw = down(c, dgw, C), *gb = down(c, dgb, C);
			double *wgw = dalloc(C), *wgb = dalloc(C), *bgw = dalloc(C), *bgb = dalloc(C), *bgx = dalloc(n);
			for (int j = 0; j < C; j++) {
				wgw[j] = gw0[j], wgb[j] = gb0[j];
				bgw[j] = fabs(gw0[j]), bgb[j] = fabs(gb0[j]);
			}
			for (int i = 0; i < N; i++) {
				const float *xr = x + (size_t)i * C, *d = dy + (size_t)i * C;
				double mu = m[i], rs = r[i], sg = 0, sgx = 0, ag = 0, agx = 0;
				for (int j = 0; j < C; j++) {
					double xh = (xr[j] - mu) * rs, g = d[j] * (affine ? w[j] : 1.0);
					sg += g, sgx += g * xh, ag += fabs(g), agx += fabs(g * xh);
					wgw[j] += d[j] * xh, bgw[j] += fabs(d[j] * xh) + fabs(d[j]) * rs * (fabs(xr[j]) + fabs(mu));
					wgb[j] += d[j], bgb[j] += fabs(d[j]);
				}
				for (int j = 0; j < C; j++) {
					size_t k = (size_t)i * C + j;
					double xh = (xr[j] - mu) * rs, g = d[j] * (affine ? w[j] : 1.0);
					want[k] = gx0[k] + rs * (g - sg / C - xh * sgx / C);
					bgx[k] = fabs(gx0[k]) + rs * (fabs(g) + ag / C + fabs(xh) * agx / C +
								     rs * (fabs(xr[j]) + fabs(mu)) * (ag / C) * (1 + fabs(xh)));
				}
			}
			/* x̂ is recomputed in fp32 from x ~ 3 ± 2 and the saved mean: absolute error
			 * ~u·rstd·(|x| + |mean|), carried into both row sums (the last bound term);
			 * 16u covers the dozen roundings per element */
			CHECK_BOUND("layernorm dinp", gx, want, bgx, n, 16);
			if (affine) {
				CHECK_BOUND("layernorm dw", gw, wgw, bgw, C, 8);
				CHECK_BOUND("layernorm db", gb, wgb, bgb, C, 3);
			} else {
				/* NULL dw/db: untouched */
				CHECK(memcmp(gw, gw0, 4 * C) == 0 && memcmp(gb, gb0, 4 * C) == 0);
			}
			lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dB), lvd_buf_free(c, dY);
			lvd_buf_free(c, dM), lvd_buf_free(c, dR), lvd_buf_free(c, ddy), lvd_buf_free(c, dgx);
			lvd_buf_free(c, dgw), lvd_buf_free(c, dgb);
			free(x), free(w), free(b), free(y), free(m), free(r), free(want), free(wm), free(wr), free(bnd);
			free(dy), free(gx0), free(gw0), free(gb0), free(gx), free(gw), free(gb);
			free(wgw), free(wgb), free(bgw), free(bgb), free(bgx);
		}
}

static void test_rmsnorm(void)
{
	struct lvd_ctx *c = gpu();
	static const int Cs[] = {1, 64, 769, 4096};
	int N = 21;
	float eps = 1e-6f;
	for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++) {
		int C = Cs[t];
		size_t n = (size_t)N * C;
		float *x = hrand(n, 2.0f, 0.5f), *w = hrand(C, 1, 0.5f);
		float *dX = dupf(c, x, n), *dW = dupf(c, w, C);
		float *dY = lvd_buf_alloc(c, sizeof(float) * n), *dR = lvd_buf_alloc(c, 4 * N);
		lvd_rmsnorm_fwd_cuda(c, dY, dR, dX, dW, N, C, eps);
		float *y = down(c, dY, n), *r = down(c, dR, N);
		double *want = dalloc(n), *wr = dalloc(N), *bnd = dalloc(n);
		for (int i = 0; i < N; i++) {
			const float *xr = x + (size_t)i * C;
			double ss = 0;
			for (int j = 0; j < C; j++)
				ss += (double)xr[j] * xr[j];
			wr[i] = 1.0 / sqrt(ss / C + eps);
			for (int j = 0; j < C; j++) {
				want[(size_t)i * C + j] = w[j] * (xr[j] * wr[i]);
				bnd[(size_t)i * C + j] = fabs(want[(size_t)i * C + j]);
			}
		}
		CHECK_REL("rmsnorm rstd", r, wr, N, 2 * U32, 1e-37); /* double sum, one rounding */
		CHECK_BOUND("rmsnorm fwd", y, want, bnd, n, 4);        /* rstd rounding + two products */
		float *dy = hrand(n, 1, 0), *gx0 = hrand(n, 1, 0), *gw0 = hrand(C, 1, 0);
		float *ddy = dupf(c, dy, n), *dgx = dupf(c, gx0, n), *dgw = dupf(c, gw0, C);
		size_t mk = lvd_ctx_mark(c);
		lvd_rmsnorm_bwd_cuda(c, dgx, dgw, ddy, dX, dW, dR, N, C);
		lvd_rmsnorm_bwd_cuda(c, NULL, NULL, ddy, dX, dW, dR, N, C);
		lvd_ctx_sync(c);
		CHECK(lvd_ctx_mark(c) == mk);
		float *gx = down(c, dgx, n), *gw = down(c, dgw, C);
		double *wgw = dalloc(C), *bgw = dalloc(C), *bgx = dalloc(n);
		for (int j = 0; j < C; j++)
			wgw[j] = gw0[j], bgw[j] = fabs(gw0[j]);
		for (int i = 0; i < N; i++) {
			const float *xr = x + (size_t)i * C, *d = dy + (size_t)i * C;
			double rs = r[i], dot = 0, adot = 0;
			for (int j = 0; j < C; j++) {
				dot += (double)d[j] * w[j] * xr[j];
				adot += fabs((double)d[j] * w[j] * xr[j]);
				wgw[j] += (double)d[j] * xr[j] * rs;
				bgw[j] += fabs((double)d[j] * xr[j] * rs);
			}
			for (int j = 0; j < C; j++) {
				size_t k = (size_t)i * C + j;
				want[k] = gx0[k] + d[j] * w[j] * rs - dot * rs * rs * rs / C * xr[j];
				bgx[k] = fabs(gx0[k]) + fabs(d[j] * w[j] * rs) + adot * rs * rs * rs / C * fabs(xr[j]);
			}
		}
		/* a handful of fp32 roundings per term (k ≈ r³·dot/C rounded once, products, adds) */
		CHECK_BOUND("rmsnorm dinp", gx, want, bgx, n, 8);
		/* column sums in double of fp32 products (2 roundings each), rounded, added */
		CHECK_BOUND("rmsnorm dw", gw, wgw, bgw, C, 4);
		lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dY), lvd_buf_free(c, dR);
		lvd_buf_free(c, ddy), lvd_buf_free(c, dgx), lvd_buf_free(c, dgw);
		free(x), free(w), free(y), free(r), free(want), free(wr), free(bnd), free(dy), free(gx0), free(gw0);
		free(gx), free(gw), free(wgw), free(bgw), free(bgx);
	}
}

static void test_groupnorm(void)
{
	struct lvd_ctx *c = gpu();
	/* B, C, HW, G: tiny groups, one group, and groups of 36000 values (5 chunks of 8192,
	 * the last partial) so the chunk merge is exercised */
	static const int cases[][4] = {{2, 12, 1, 12}, {2, 12, 17, 4}, {1, 6, 50, 1}, {3, 8, 9000, 2}, {1, 64, 256, 32}};
	float eps = 1e-6f;
	for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++)
		for (int mode = 0; mode < 3; mode++) { /* 0 affine, 1 affine + SiLU in place, 2 no affine */
			int B = cases[t][0], C = cases[t][1], HW = cases[t][2], G = cases[t][3], cg = C / G;
			size_t n = (size_t)B * C * HW;
			float *x = hrand(n, 1.5f, 4.0f), *w = hrand(C, 1, 0.5f), *b = hrand(C, 1, 0);
			float *dX = dupf(c, x, n), *dW = dupf(c, w, C), *dB = dupf(c, b, C);
			float *dY = mode == 1 ? dX : lvd_buf_alloc(c, sizeof(float) * n);
			float *dM = lvd_buf_alloc(c, 4 * B * G), *dR = lvd_buf_alloc(c, 4 * B * G);
			size_t mk = lvd_ctx_mark(c);
			lvd_groupnorm_fwd_cuda(c, dY, dM, dR, dX, mode == 2 ? NULL : dW, mode == 2 ? NULL : dB, B, C, HW, G,
					       eps, mode == 1);
			lvd_ctx_sync(c);
			CHECK(lvd_ctx_mark(c) == mk);
			float *y = down(c, dY, n), *m = down(c, dM, B * G), *r = down(c, dR, B * G);
			double *want = dalloc(n), *bnd = dalloc(n), *wm = dalloc(B * G), *wr = dalloc(B * G);
			for (int bb = 0; bb < B; bb++)
				for (int g = 0; g < G; g++) {
					const float *xg = x + ((size_t)bb * C + (size_t)g * cg) * HW;
					size_t L = (size_t)cg * HW;
					double s = 0, ss = 0;
					for (size_t i = 0; i < L; i++)
						s += xg[i];
					double mu = s / L;
					for (size_t i = 0; i < L; i++)
						ss += (xg[i] - mu) * (xg[i] - mu);
					double rs = 1.0 / sqrt(ss / L + eps);
					wm[bb * G + g] = mu, wr[bb * G + g] = rs;
					for (int ch = g * cg; ch < (g + 1) * cg; ch++)
						for (int p = 0; p < HW; p++) {
							size_t k = ((size_t)bb * C + ch) * HW + p;
							double wc = mode == 2 ? 1.0 : w[ch], bc = mode == 2 ? 0.0 : b[ch];
							double v = (x[k] - mu) * rs * wc + bc;
							want[k] = mode == 1 ? v / (1.0 + exp(-v)) : v;
							/* y = x·a + (b − mean·a): the mean·a term cancels against x·a */
							bnd[k] = (fabs(x[k]) + fabs(mu)) * rs * fabs(wc) + fabs(bc);
						}
				}
			CHECK_REL("groupnorm mean", m, wm, B * G, 2 * U32, 1e-37); /* double, one rounding */
			CHECK_REL("groupnorm rstd", r, wr, B * G, 2 * U32, 1e-37);
			/* a = rstd·w and b − mean·a rounded, then x·a + b': ~5 roundings on terms of size
			 * (|x| + |mean|)·rstd·|w| (SiLU's slope is <= 1.1; expf adds 2 ulp of v·σ) */
			CHECK_BOUND(mode == 1 ? "groupnorm+silu fwd" : "groupnorm fwd", y, want, bnd, n, 12);
			if (mode != 1) { /* backward (no SiLU), accumulating, with the saved statistics */
				float *dy = hrand(n, 1, 0), *gx0 = hrand(n, 1, 0), *gw0 = hrand(C, 1, 0), *gb0 = hrand(C, 1, 0);
				float *ddy = dupf(c, dy, n), *dgx = dupf(c, gx0, n), *dgw = dupf(c, gw0, C), *dgb = dupf(c, gb0, C);
				int affine = mode == 0;
				lvd_groupnorm_bwd_cuda(c, dgx, affine ? dgw : NULL, affine ? dgb : NULL, ddy, dX, affine ? dW : NULL,
						       dM, dR, B, C, HW, G);
				lvd_groupnorm_bwd_cuda(c, NULL, NULL, NULL, ddy, dX, dW, dM, dR, B, C, HW, G);
				lvd_ctx_sync(c);
				CHECK(lvd_ctx_mark(c) == mk);
				float *gx = down(c, dgx, n), *gw = down(c, dgw, C), *gb = down(c, dgb, C);
				double *wgw = dalloc(C), *wgb = dalloc(C), *bgw = dalloc(C), *bgb = dalloc(C);
				for (int ch = 0; ch < C; ch++)
					wgw[ch] = gw0[ch], wgb[ch] = gb0[ch], bgw[ch] = fabs(gw0[ch]), bgb[ch] = fabs(gb0[ch]);
				for (int bb = 0; bb < B; bb++)
					for (int g = 0; g < G; g++) {
						double mu = m[bb * G + g], rs = r[bb * G + g], sg = 0, sgx = 0, ag = 0, agx = 0;
						size_t L = (size_t)cg * HW, o = ((size_t)bb * C + (size_t)g * cg) * HW;
						for (size_t i = 0; i < L; i++) {
							int ch = g * cg + (int)(i / HW);
							double xh = (x[o + i] - mu) * rs, gi = dy[o + i] * (affine ? w[ch] : 1.0);
							sg += gi, sgx += gi * xh, ag += fabs(gi), agx += fabs(gi * xh);
							wgw[ch] += dy[o + i] * xh;
							bgw[ch] += fabs(dy[o + i] * xh) + fabs(dy[o + i]) * rs * (fabs(x[o + i]) + fabs(mu));
							wgb[ch] += dy[o + i], bgb[ch] += fabs(dy[o + i]);
						}
						for (size_t i = 0; i < L; i++) {
							int ch = g * cg + (int)(i / HW);
							double xh = (x[o + i] - mu) * rs, gi = dy[o + i] * (affine ? w[ch] : 1.0);
							want[o + i] = gx0[o + i] + rs * (gi - sg / L - xh * sgx / L);
							bnd[o + i] = fabs(gx0[o + i]) + rs * (fabs(gi) + ag / L + fabs(xh) * agx / L +
											      rs * (fabs(x[o + i]) + fabs(mu)) * (ag / L) * (1 + fabs(xh)));
						}
					}
				/* as LayerNorm's backward: x̂ recomputed in fp32 from x ~ 4 ± 1.5 and the saved
				 * mean (error ~u·rstd·(|x| + |mean|), last bound term), a dozen roundings */
				CHECK_BOUND("groupnorm dinp", gx, want, bnd, n, 16);
				if (affine) {
					CHECK_BOUND("groupnorm dw", gw, wgw, bgw, C, 8);
					CHECK_BOUND("groupnorm db", gb, wgb, bgb, C, 3);
				} else {
					CHECK(memcmp(gw, gw0, 4 * C) == 0 && memcmp(gb, gb0, 4 * C) == 0);
				}
				lvd_buf_free(c, ddy), lvd_buf_free(c, dgx), lvd_buf_free(c, dgw), lvd_buf_free(c, dgb);
				free(dy), free(gx0), free(gw0), free(gb0), free(gx), free(gw), free(gb);
				free(wgw), free(wgb), free(bgw), free(bgb);
			}
			if (mode != 1)
				lvd_buf_free(c, dY);
			lvd_buf_free(c, dX), lvd_buf_free(c, dW), lvd_buf_free(c, dB), lvd_buf_free(c, dM), lvd_buf_free(c, dR);
			free(x), free(w), free(b), free(y), free(m), free(r), free(want), free(bnd), free(wm), free(wr);
		}
}

/* ---- activations ---- */

static double ref_gelu(double x, int kind, double *deriv)
{
	const double k = sqrt(2.0 / M_PI), a = 0.044715;
	if (kind == LVD_GELU_TANH) {
		double t = tanh(k * (x + a * x * x * x));
		*deriv = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * a * x * x);
		return 0.5 * x * (1 + t);
	}
	if (kind == LVD_GELU_QUICK) {
		double s = 1.0 / (1.0 + exp(-1.702 * x));
		*deriv = s + 1.702 * x * s * (1 - s);
		return x * s;
	}
	double phi = 0.5 * erfc(-x / sqrt(2.0));
	*deriv = phi + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
	return x * phi;
}

static void test_act(void)
{
	struct lvd_ctx *c = gpu();
	size_t n = 10007;
	float *x = hrand(n, 6.0f, 0.0f), *dy = hrand(n, 1, 0), *g0 = hrand(n, 1, 0), *u = hrand(n, 2, 0);
	float *dX = dupf(c, x, n), *dDY = dupf(c, dy, n), *dU = dupf(c, u, n);
	float *dY = lvd_buf_alloc(c, 4 * n), *dG = lvd_buf_alloc(c, 4 * n), *dG2 = lvd_buf_alloc(c, 4 * n);
	double *want = dalloc(n), *wd = dalloc(n), *bnd = dalloc(n), *bd = dalloc(n);
	static const char *names[] = {"gelu exact", "gelu tanh", "gelu quick"};
	for (int kind = 0; kind < 3; kind++) {
		lvd_gelu_fwd_cuda(c, dY, dX, n, (enum lvd_gelu_kind)kind);
		lvd_buf_upload(c, dG, g0, 4 * n);
		lvd_gelu_bwd_cuda(c, dG, dDY, dX, n, (enum lvd_gelu_kind)kind);
		float *y = down(c, dY, n), *g = down(c, dG, n);
		for (size_t i = 0; i < n; i++) {
			double d;
			want[i] = ref_gelu(x[i], kind, &d);
			bnd[i] = fabs(x[i]);
			wd[i] = g0[i] + dy[i] * d;
			bd[i] = fabs(g0[i]) + fabs(dy[i]) * (1.0 + fabs(x[i]));
		}
		/* erff/tanhf/expf <= 2 ulp plus ~4 roundings, on terms of size |x| (the factor
		 * multiplying Φ or σ); 16u of |x| also covers the cancellation in the left tail */
		CHECK_BOUND(names[kind], y, want, bnd, n, 16);
		CHECK_BOUND(names[kind], g, wd, bd, n, 16);
		free(y), free(g);
	}
	/* in place */
	lvd_buf_upload(c, dY, x, 4 * n);
	lvd_gelu_fwd_cuda(c, dY, dY, n, LVD_GELU_EXACT);
	float *yi = down(c, dY, n);
	for (size_t i = 0; i < n; i++) {
		double d;
		want[i] = ref_gelu(x[i], LVD_GELU_EXACT, &d);
		bnd[i] = fabs(x[i]);
	}
	CHECK_BOUND("gelu in place", yi, want, bnd, n, 16);
	free(yi);
	/* SiLU and SwiGLU (gate x, up u) */
	lvd_silu_fwd_cuda(c, dY, dX, n);
	lvd_buf_upload(c, dG, g0, 4 * n);
	lvd_silu_bwd_cuda(c, dG, dDY, dX, n);
	float *y = down(c, dY, n), *g = down(c, dG, n);
	for (size_t i = 0; i < n; i++) {
		double s = 1.0 / (1.0 + exp(-(double)x[i]));
		want[i] = x[i] * s, bnd[i] = fabs(x[i]);
		wd[i] = g0[i] + dy[i] * s * (1 + x[i] * (1 - s));
		bd[i] = fabs(g0[i]) + fabs(dy[i]) * (1.0 + fabs(x[i]));
	}
	CHECK_BOUND("silu fwd", y, want, bnd, n, 8);
	CHECK_BOUND("silu bwd", g, wd, bd, n, 16);
	free(y), free(g);
	lvd_swiglu_fwd_cuda(c, dY, dX, dU, n);
	lvd_buf_upload(c, dG, g0, 4 * n);
	lvd_buf_upload(c, dG2, dy, 4 * n);
	lvd_swiglu_bwd_cuda(c, dG, dG2, dDY, dX, dU, n);
	lvd_swiglu_bwd_cuda(c, NULL, NULL, dDY, dX, dU, n);
	y = down(c, dY, n), g = down(c, dG, n);
	float *g2 = down(c, dG2, n);
	double *wu = dalloc(n), *bu = dalloc(n);
	for (size_t i = 0; i < n; i++) {
		double s = 1.0 / (1.0 + exp(-(double)x[i]));
		want[i] = x[i] * s * u[i], bnd[i] = fabs(x[i] * u[i]);
		wd[i] = g0[i] + dy[i] * u[i] * s * (1 + x[i] * (1 - s));
		bd[i] = fabs(g0[i]) + fabs(dy[i] * u[i]) * (1.0 + fabs(x[i]));
		wu[i] = dy[i] + dy[i] * x[i] * s; /* dup started as a copy of dy */
		bu[i] = fabs(dy[i]) + fabs(dy[i] * x[i]);
	}
	CHECK_BOUND("swiglu fwd", y, want, bnd, n, 8);
	CHECK_BOUND("swiglu dgate", g, wd, bd, n, 16);
	CHECK_BOUND("swiglu dup", g2, wu, bu, n, 8);
	free(y), free(g), free(g2), free(wu), free(bu);
	/* only dup requested: dgate stays */
	lvd_buf_upload(c, dG, g0, 4 * n);
	lvd_swiglu_bwd_cuda(c, NULL, dG2, dDY, dX, dU, n);
	g = down(c, dG, n);
	CHECK(memcmp(g, g0, 4 * n) == 0);
	free(g);
	/* GEGLU: [N, 2F] = [a | g] */
	int N = 13, F = 333;
	size_t nf = (size_t)N * F;
	float *in = hrand(2 * nf, 4.0f, 0.0f), *gdy = hrand(nf, 1, 0), *gd0 = hrand(2 * nf, 1, 0);
	float *dIn = dupf(c, in, 2 * nf), *dGdy = dupf(c, gdy, nf), *dGd = dupf(c, gd0, 2 * nf);
	float *dGo = lvd_buf_alloc(c, 4 * nf);
	lvd_geglu_fwd_cuda(c, dGo, dIn, N, F);
	lvd_geglu_bwd_cuda(c, dGd, dGdy, dIn, N, F);
	float *go = down(c, dGo, nf), *gd = down(c, dGd, 2 * nf);
	double *gw = dalloc(nf), *gb = dalloc(nf), *dw2 = dalloc(2 * nf), *db2 = dalloc(2 * nf);
	for (int r = 0; r < N; r++)
		for (int f = 0; f < F; f++) {
			size_t i = (size_t)r * F + f, ia = (size_t)r * 2 * F + f, ig = ia + F;
			double d, ge = ref_gelu(in[ig], LVD_GELU_EXACT, &d);
			gw[i] = in[ia] * ge, gb[i] = fabs(in[ia] * in[ig]);
			dw2[ia] = gd0[ia] + gdy[i] * ge, db2[ia] = fabs(gd0[ia]) + fabs(gdy[i] * in[ig]);
			dw2[ig] = gd0[ig] + gdy[i] * in[ia] * d;
			db2[ig] = fabs(gd0[ig]) + fabs(gdy[i] * in[ia]) * (1.0 + fabs(in[ig]));
		}
	CHECK_BOUND("geglu fwd", go, gw, gb, nf, 16);
	CHECK_BOUND("geglu bwd", gd, dw2, db2, 2 * nf, 16);
	lvd_buf_free(c, dIn), lvd_buf_free(c, dGdy), lvd_buf_free(c, dGd), lvd_buf_free(c, dGo);
	free(in), free(gdy), free(gd0), free(go), free(gd), free(gw), free(gb), free(dw2), free(db2);
	lvd_buf_free(c, dX), lvd_buf_free(c, dDY), lvd_buf_free(c, dU), lvd_buf_free(c, dY), lvd_buf_free(c, dG);
	lvd_buf_free(c, dG2);
	free(x), free(dy), free(g0), free(u), free(want), free(wd), free(bnd), free(bd);
}

/* ---- elementwise ---- */

static void test_elem(void)
{
	struct lvd_ctx *c = gpu();
	int N = 29, C = 301, HW = 517;
	size_t n = (size_t)N * C;
	float *x = hrand(n, 1, 0), *y0 = hrand(n, 1, 0), *b = hrand(C, 1, 0);
	float *dX = dupf(c, x, n), *dY = dupf(c, y0, n), *dB = dupf(c, b, C);
	double *want = dalloc(n);
	/* one fp32 operation each (axpy may be fused into an fma): exact or within 1 rounding */
	lvd_add_cuda(c, dY, dX, n);
	float *y = down(c, dY, n);
	for (size_t i = 0; i < n; i++)
		want[i] = (float)(y0[i] + x[i]);
	CHECK_REL("add", y, want, n, 0, 0);
	free(y);
	lvd_axpy_cuda(c, dY, -0.37f, dX, n);
	y = down(c, dY, n);
	for (size_t i = 0; i < n; i++)
		want[i] = (double)(float)(y0[i] + x[i]) - 0.37f * (double)x[i];
	CHECK_REL("axpy", y, want, n, 2 * U32, 2 * U32 * 2);
	for (size_t i = 0; i < n; i++)
		want[i] = (double)y[i] * 1.5f;
	free(y);
	lvd_scale_cuda(c, dY, 1.5f, n);
	y = down(c, dY, n);
	CHECK_REL("scale", y, want, n, U32, 1e-37);
	free(y);
	lvd_buf_upload(c, dY, y0, 4 * n);
	lvd_add_bias_rows_cuda(c, dY, dB, N, C);
	y = down(c, dY, n);
	for (int r = 0; r < N; r++)
		for (int j = 0; j < C; j++)
			want[(size_t)r * C + j] = (float)(y0[(size_t)r * C + j] + b[j]);
	CHECK_REL("add_bias_rows", y, want, n, 0, 0);
	free(y);
	/* channels: y[C, HW] += b[C] */
	size_t nc = (size_t)C * HW;
	float *z0 = hrand(nc, 1, 0), *dZ = dupf(c, z0, nc);
	double *wz = dalloc(nc);
	lvd_add_bias_chan_cuda(c, dZ, dB, C, HW);
	float *z = down(c, dZ, nc);
	for (int ch = 0; ch < C; ch++)
		for (int p = 0; p < HW; p++)
			wz[(size_t)ch * HW + p] = (float)(z0[(size_t)ch * HW + p] + b[ch]);
	CHECK_REL("add_bias_chan", z, wz, nc, 0, 0);
	lvd_buf_free(c, dX), lvd_buf_free(c, dY), lvd_buf_free(c, dB), lvd_buf_free(c, dZ);
	free(x), free(y0), free(b), free(want), free(z0), free(z), free(wz);
}

/* fp32 -> bf16 bit-exact against the independent reference, specials included; bf16 ->
 * fp32 exact. */
static void test_bf16(void)
{
	struct lvd_ctx *c = gpu();
	size_t n = 100000;
	float *x = hrand(n, 100.0f, 0.0f);
	uint32_t specials[] = {
		0x3f808000u, 0x3f818000u, /* exact ties: to even (down), to even (up) */
		0x3f808001u, 0x3f817fffu, /* just above / below a tie */
		0x7f7fffffu, 0xff7fffffu, /* FLT_MAX rounds to ±inf */
		0x7f7f7fffu,              /* largest value that stays finite */
		0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u, /* inf, NaNs (one signalling) */
		0x00000001u, 0x807fffffu, 0x00008000u, 0x00018000u, /* denormals, denormal ties */
		0x00000000u, 0x80000000u, 0x3f800000u,
	};
	size_t ns = sizeof specials / sizeof specials[0];
	for (size_t i = 0; i < ns; i++)
		memcpy(&x[i], &specials[i], 4);
	for (size_t i = ns; i < 2000; i++) /* exact ties at random magnitudes */
		{ uint32_t u; memcpy(&u, &x[i], 4); u = (u & 0xffff0000u) | 0x8000u; memcpy(&x[i], &u, 4); }
	float *dX = dupf(c, x, n);
	uint16_t *dH = lvd_buf_alloc(c, 2 * n), *h = malloc(2 * n);
	REQUIRE(dH && h);
	lvd_f32_to_bf16_cuda(c, dH, dX, n);
	lvd_buf_download(c, h, dH, 2 * n);
	size_t bad = 0, first = n;
	for (size_t i = 0; i < n; i++) {
		uint16_t want = ref_bf16(x[i]);
		int same = h[i] == want || (isnan(x[i]) && (h[i] & 0x7f80) == 0x7f80 && (h[i] & 0x7f));
		if (!same && !bad++)
			first = i;
	}
	CHECKF(bad == 0, "%zu of %zu conversions differ; first [%zu] %a -> 0x%04x, want 0x%04x", bad, n, first,
	       first < n ? (double)x[first] : 0.0, first < n ? h[first] : 0, first < n ? ref_bf16(x[first]) : 0);
	float *back = lvd_buf_alloc(c, 4 * n);
	lvd_bf16_to_f32_cuda(c, back, dH, n);
	float *hb = down(c, back, n);
	bad = 0;
	for (size_t i = 0; i < n; i++) {
		float want = bf16_val(h[i]);
		bad += memcmp(&hb[i], &want, 4) != 0;
	}
	CHECKF(bad == 0, "%zu bf16 -> fp32 conversions differ", bad);
	lvd_buf_free(c, dX), lvd_buf_free(c, dH), lvd_buf_free(c, back);
	free(x), free(h), free(hb);
}

/* Launch-shape paths the small cases never reach: grid-stride loops past one grid
 * (> 132·16·256 elements), row loops past gridDim.y's 65535, softmax over 70000 rows,
 * and the column reduction with many row splits (N = 5000 rows: 79 splits of 64). */
static void test_large_shapes(void)
{
	struct lvd_ctx *c = gpu();
	size_t n = (size_t)3 << 20;
	float *x = hrand(n, 3, 0), *y0 = hrand(n, 1, 0);
	float *dX = dupf(c, x, n), *dY = dupf(c, y0, n);
	double *want = dalloc(n), *bnd = dalloc(n);
	lvd_add_cuda(c, dY, dX, n);
	float *y = down(c, dY, n);
	for (size_t i = 0; i < n; i++)
		want[i] = (float)(y0[i] + x[i]);
	CHECK_REL("add 3M", y, want, n, 0, 0); /* one fp32 add, as the reference */
	free(y);
	lvd_gelu_fwd_cuda(c, dY, dX, n, LVD_GELU_EXACT);
	y = down(c, dY, n);
	for (size_t i = 0; i < n; i++) {
		double d;
		want[i] = ref_gelu(x[i], LVD_GELU_EXACT, &d), bnd[i] = fabs(x[i]);
	}
	CHECK_BOUND("gelu 3M", y, want, bnd, n, 16); /* as test_act */
	free(y);
	/* rows past 65535: bias rows [70000, 3], bias channels [70000, 5], softmax [70000, 5] */
	int R = 70000;
	float *b = hrand(R, 1, 0), *dB = dupf(c, b, R);
	lvd_buf_upload(c, dY, y0, 4 * (size_t)R * 5);
	lvd_add_bias_rows_cuda(c, dY, dB, R, 5); /* [70000, 5] += b[0..4] */
	lvd_add_bias_chan_cuda(c, dY, dB, R, 5);              /* then [70000, 5] += b[c] */
	y = down(c, dY, (size_t)R * 5);
	for (int r = 0; r < R; r++)
		for (int j = 0; j < 5; j++) {
			size_t i = (size_t)r * 5 + j;
			float t = y0[i] + b[j];
			want[i] = (float)(t + b[r]);
		}
	CHECK_REL("bias rows/chan 70000 rows", y, want, (size_t)R * 5, 0, 0); /* same fp32 adds */
	free(y);
	lvd_buf_upload(c, dY, x, 4 * (size_t)R * 5);
	lvd_softmax_fwd_cuda(c, dY, dY, R, 5);
	y = down(c, dY, (size_t)R * 5);
	for (int r = 0; r < R; r++) {
		const float *xr = x + (size_t)r * 5;
		double mx = -INFINITY, s = 0;
		for (int j = 0; j < 5; j++)
			mx = xr[j] > mx ? xr[j] : mx;
		for (int j = 0; j < 5; j++)
			s += exp(xr[j] - mx);
		for (int j = 0; j < 5; j++) {
			size_t i = (size_t)r * 5 + j;
			want[i] = exp(xr[j] - mx) / s;
			bnd[i] = want[i] * (fabs(xr[j] - mx) + 16); /* as test_softmax */
		}
	}
	CHECK_BOUND("softmax 70000 rows", y, want, bnd, (size_t)R * 5, 1);
	free(y);
	/* GroupNorm with B·C = 70000 rows of HW = 2, G = 7 */
	int C = 70000, G = 7, HW = 2, cg = C / G;
	size_t ng = (size_t)C * HW;
	float *dM = lvd_buf_alloc(c, 4 * G), *dR = lvd_buf_alloc(c, 4 * G);
	lvd_groupnorm_fwd_cuda(c, dY, dM, dR, dX, dB, NULL, 1, C, HW, G, 1e-5f, 0);
	y = down(c, dY, ng);
	for (int g = 0; g < G; g++) {
		const float *xg = x + (size_t)g * cg * HW;
		size_t L = (size_t)cg * HW;
		double s = 0, ss = 0;
		for (size_t i = 0; i < L; i++)
			s += xg[i];
		double mu = s / L;
		for (size_t i = 0; i < L; i++)
			ss += (xg[i] - mu) * (xg[i] - mu);
		double rs = 1.0 / sqrt(ss / L + 1e-5f);
		for (size_t i = 0; i < L; i++) {
			size_t k = (size_t)g * L + i;
			int ch = (int)(k / HW);
			want[k] = (xg[i] - mu) * rs * b[ch];
			bnd[k] = (fabs(xg[i]) + fabs(mu)) * rs * fabs(b[ch]);
		}
	}
	CHECK_BOUND("groupnorm 70000 rows", y, want, bnd, ng, 12); /* as test_groupnorm */
	free(y);
	/* column reductions over N = 5000 rows: linear dbias, layernorm db, rmsnorm dw */
	int N = 5000, K = 40;
	size_t nk = (size_t)N * K;
	float *g0 = hrand(K, 1, 0), *dG = dupf(c, g0, K);
	lvd_linear_bwd_cuda(c, NULL, NULL, dG, dX, dX, dX, N, K, K); /* dbias += Σ_rows x[N, K] */
	float *gb = down(c, dG, K);
	double *wk = dalloc(K), *bk = dalloc(K);
	for (int j = 0; j < K; j++) {
		wk[j] = g0[j], bk[j] = fabs(g0[j]);
		for (int r = 0; r < N; r++)
			wk[j] += x[(size_t)r * K + j], bk[j] += fabs(x[(size_t)r * K + j]);
	}
	CHECK_BOUND("dbias over 5000 rows", gb, wk, bk, K, 3); /* double sums, two roundings */
	free(gb);
	float *rs = hrand(N, 0.5f, 1.0f), *dRs = dupf(c, rs, N);
	lvd_buf_upload(c, dG, g0, 4 * K);
	lvd_rmsnorm_bwd_cuda(c, NULL, dG, dY, dX, NULL, dRs, N, K); /* dw += Σ dout·x·rstd */
	float *dout = down(c, dY, nk);
	gb = down(c, dG, K);
	for (int j = 0; j < K; j++) {
		wk[j] = g0[j], bk[j] = fabs(g0[j]);
		for (int r = 0; r < N; r++) {
			double t = (double)dout[(size_t)r * K + j] * x[(size_t)r * K + j] * rs[r];
			wk[j] += t, bk[j] += fabs(t);
		}
	}
	CHECK_BOUND("rmsnorm dw over 5000 rows", gb, wk, bk, K, 4); /* as test_rmsnorm */
	free(gb), free(dout);
	CHECK(lvd_ctx_mark(c) == 0);
	lvd_buf_free(c, dX), lvd_buf_free(c, dY), lvd_buf_free(c, dB), lvd_buf_free(c, dM), lvd_buf_free(c, dR);
	lvd_buf_free(c, dG), lvd_buf_free(c, dRs);
	free(x), free(y0), free(want), free(bnd), free(b), free(g0), free(wk), free(bk), free(rs);
}

#include "cases_sd.h"
#include "cases_mllama.h"

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_gemm_fp32), TEST(test_gemm_bf16), TEST(test_gemm_k0), TEST(test_linear),
		TEST(test_softmax), TEST(test_layernorm), TEST(test_rmsnorm), TEST(test_groupnorm),
		TEST(test_act), TEST(test_elem), TEST(test_bf16), TEST(test_large_shapes),
		TEST(test_gemm_unaligned),
		LVD_SD_CASES
		LVD_CASES_MLLAMA,
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_test_gpu_release();
	return rc;
}
