/* lib/nn/ops/gemm_cpu.c — CPU GEMM (OpenBLAS, one thread per call) with the pool split
 * of large products, bf16 inputs, nn.Linear, and the naive oracle (contract in gemm.h). */
#include "nn/ops/gemm.h"

#include <cblas.h>
#include <string.h>

#include "nn/ops/cpu_internal.h"
#include "nn/ops/elem.h"

enum { GEMM_UNIT = 16 };                       /* rows or columns of C per work item */
#define GEMM_SPLIT_MACS ((double)(1 << 21))    /* smaller products stay on one thread */
/* A [M, K] times B^T with M up to this many rows runs as M matrix-vector products: the
 * result of a row does not depend on M within that range (batched decode steps equal
 * single ones) */
enum { GEMV_ROWS = 8 };

static void sgemm1(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
		   const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
		return;
	}
	if (!transA && transB && M <= GEMV_ROWS) {
		/* x W^T for a few rows (one decode step per sample): a matrix-vector product
		 * per row reads W once without packing it, which sgemm does on every call */
		for (int i = 0; i < M; i++)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A + (long)i * lda, 1, beta,
				    C + (long)i * ldc, 1);
		return;
	}
	cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
		    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

struct gsplit {
	int transA, transB, M, N, K, lda, ldb, ldc, by_rows;
	float alpha, beta;
	const float *A, *B;
	float *C;
};

static int gsplit_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct gsplit *g = u;
	(void)tid;
	int dim = g->by_rows ? g->M : g->N;
	int a = (int)lo * GEMM_UNIT, b = (int)hi * GEMM_UNIT;
	if (b > dim)
		b = dim;
	if (g->by_rows) {
		const float *A = g->transA ? g->A + a : g->A + (size_t)a * g->lda;
		sgemm1(g->transA, g->transB, b - a, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta,
		       g->C + (size_t)a * g->ldc, g->ldc);
	} else {
		const float *B = g->transB ? g->B + (size_t)a * g->ldb : g->B + a;
		sgemm1(g->transA, g->transB, g->M, b - a, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta,
		       g->C + a, g->ldc);
	}
	return 0;
}

void lvd_gemm_cpu(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_gemm");
	int T = lvd_ops_threads(ctx);
	int by_rows = M >= N, dim = by_rows ? M : N;
	size_t items = ((size_t)(dim > 0 ? dim : 0) + GEMM_UNIT - 1) / GEMM_UNIT;
	if (T == 1 || !ctx->cpu_fast || items < 2 || K <= 0 || (double)M * N * K < GEMM_SPLIT_MACS) {
		sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	struct gsplit g = {.transA = transA, .transB = transB, .M = M, .N = N, .K = K, .lda = lda,
			   .ldb = ldb, .ldc = ldc, .by_rows = by_rows, .alpha = alpha, .beta = beta,
			   .A = A, .B = B, .C = C};
	lvd_ops_run(ctx, items, gsplit_piece, &g);
}

/* bf16 matrix stored as `rows` rows of `cols` values with row stride ld -> packed fp32 */
static float *bf16_unpack(struct lvd_ctx *ctx, const uint16_t *X, int rows, int cols, int ld)
{
	float *f = lvd_ctx_takef(ctx, (size_t)rows * cols);
	for (int r = 0; r < rows; r++)
		lvd_bf16_to_f32_cpu(ctx, f + (size_t)r * cols, X + (size_t)r * ld, (size_t)cols);
	return f;
}

void lvd_gemm_bf16_cpu(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		       const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_gemm_bf16");
	if (M <= 0 || N <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
	float *Af = K > 0 ? bf16_unpack(ctx, A, ar, ac, lda) : NULL;
	float *Bf = K > 0 ? bf16_unpack(ctx, B, br, bc, ldb) : NULL;
	lvd_gemm_cpu(ctx, transA, transB, M, N, K, alpha, Af, ac > 0 ? ac : 1, Bf, bc > 0 ? bc : 1, beta, C, ldc);
	lvd_ctx_release(ctx, mk);
}

void lvd_linear_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
			const float *bias, int N, int IC, int OC)
{
	if (bias)
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
	lvd_gemm_cpu(ctx, 0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, bias ? 1.0f : 0.0f, out, OC);
}

void lvd_linear_fwd_w16_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
			    const float *bias, int N, int IC, int OC)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_linear_fwd_w16");
	if (N <= 0 || OC <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	uint16_t *xb = lvd_ctx_take(ctx, sizeof(uint16_t) * ((size_t)N * IC + 1));
	lvd_f32_to_bf16_cpu(ctx, xb, inp, (size_t)N * IC);
	if (bias)
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
	lvd_gemm_bf16_cpu(ctx, 0, 1, N, OC, IC, 1.0f, xb, IC, w, IC, bias ? 1.0f : 0.0f, out, OC);
	lvd_ctx_release(ctx, mk);
}

void lvd_linear_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias, const float *dout,
			const float *inp, const float *w, int N, int IC, int OC)
{
	if (dinp)
		lvd_gemm_cpu(ctx, 0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
	if (dw)
		lvd_gemm_cpu(ctx, 1, 0, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
	if (dbias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				dbias[o] += dout[(size_t)n * OC + o];
}

void lvd_gemm_naive(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_gemm_naive");
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < K; k++) {
				double a = transA ? A[(long)k * lda + i] : A[(long)i * lda + k];
				double b = transB ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
				s += a * b;
			}
			float *c = &C[(long)i * ldc + j];
			*c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
		}
}

int lvd_ops_cpu_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
	return 0;
#endif
}
