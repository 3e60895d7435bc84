/* lib/nn/ops/gemm.h — dense matrix products (family gemm): GEMM in fp32 and with bf16
 * inputs, nn.Linear forward/backward, and the naive oracle.
 *
 * Row-major, PyTorch shape order. C[M, N] = alpha·op(A)·op(B) + beta·C with op(X) = X or
 * Xᵀ (trans != 0): A is [M, K] (or [K, M] when transA), B is [K, N] (or [N, K] when
 * transB); beta = 0 overwrites C (its old values are never read), beta = 1 accumulates.
 * Dimension letters: N rows (tokens), IC input features, OC output features.
 *
 * CPU: OpenBLAS runs single-threaded (lvd_ctx_create's BLAS policy). With ctx->cpu_fast
 * and a pool, lvd_gemm cuts a product of >= 2^21 multiply-adds into blocks of 16 rows of
 * C (when M >= N) or 16 columns (otherwise), spread over ctx->pool: the cut depends only
 * on the shape and the thread count, every element is the same K-long dot product as
 * unsplit, but OpenBLAS may pick another kernel for a block, so the last bits can differ
 * from the unsplit product (measured 3e-7 of the output scale; test_ops, entry gemm).
 * A [M, K] times Bᵀ with M <= 8 (nn.Linear on a decode step's rows) runs as M OpenBLAS
 * matrix-vector products instead of one sgemm, which would pack B on every call (most of
 * a decode step's time); a row's result then does not depend on M up to 8 (a batched
 * decode step equals the single one bit for bit), in another summation order than
 * sgemm's. Inside a parallel_for chunk (lvd_ctx_in_parallel) it runs single-threaded on
 * the calling thread, so it may be called from pool workers. Nothing here allocates
 * except lvd_gemm_bf16_cpu, which converts its inputs in the ctx workspace. */
#ifndef LVD_NN_OPS_GEMM_H
#define LVD_NN_OPS_GEMM_H

#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_gemm_cpu(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* bf16 A and B (raw bfloat16 bits), fp32 accumulation and output. */
void lvd_gemm_bf16_cpu(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		       const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
/* nn.Linear: out[N, OC] = inp[N, IC] @ w[OC, IC]ᵀ + bias[OC] (bias may be NULL). */
void lvd_linear_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
			const float *bias, int N, int IC, int OC);
/* Backward of lvd_linear_fwd. ACCUMULATES into dinp, dw and dbias (each may be NULL):
 * dinp += dout @ w, dw += doutᵀ @ inp, dbias += Σ_rows dout. */
void lvd_linear_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias, const float *dout,
			const float *inp, const float *w, int N, int IC, int OC);
/* nn.Linear with bf16 weights (the CUDA path's storage: weights uploaded once as bf16):
 * out[N, OC] = bf16(inp)[N, IC] @ w[OC, IC]ᵀ + bias[OC] (bias fp32, may be NULL): the
 * input is rounded to bf16 (nearest even), products and sums in fp32, fp32 output. CPU
 * (the oracle): inp converted in the ctx workspace, then lvd_gemm_bf16_cpu; CUDA: inp
 * converted in the device workspace, then lvd_gemm_bf16_cuda (cuBLASLt, fp32 compute). */
void lvd_linear_fwd_w16_cpu(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
			    const float *bias, int N, int IC, int OC);
/* Input gradient of lvd_linear_fwd_w16 (frozen bf16 weights: no weight gradient):
 * dinp[N, IC] += bf16(dout)[N, OC] @ w[OC, IC], dout rounded to bf16 (nearest even),
 * products and sums in fp32. Composed of the dispatching ops (lvd_f32_to_bf16 into the
 * ctx workspace, then lvd_gemm_bf16 accumulating), so it runs on either backend
 * (gemm_w16.c). */
void lvd_linear_bwd_w16(struct lvd_ctx *ctx, float *dinp, const float *dout, const uint16_t *w, int N, int IC,
			int OC);
/* lvd_gemm with plain loops in double precision: the oracle for tests (CPU only). */
void lvd_gemm_naive(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#if LVD_HAVE_CUDA
void lvd_gemm_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
void lvd_gemm_bf16_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
			const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
void lvd_linear_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
			 const float *bias, int N, int IC, int OC);
void lvd_linear_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias, const float *dout,
			 const float *inp, const float *w, int N, int IC, int OC);
void lvd_linear_fwd_w16_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
			     const float *bias, int N, int IC, int OC);
#endif

static inline void lvd_gemm(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
			    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_gemm_cuda(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	lvd_gemm_cpu(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static inline void lvd_gemm_bf16(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K,
				 float alpha, const uint16_t *A, int lda, const uint16_t *B, int ldb,
				 float beta, float *C, int ldc)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_gemm_bf16_cuda(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	lvd_gemm_bf16_cpu(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static inline void lvd_linear_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
				  const float *bias, int N, int IC, int OC)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_linear_fwd_cuda(ctx, out, inp, w, bias, N, IC, OC);
		return;
	}
#endif
	lvd_linear_fwd_cpu(ctx, out, inp, w, bias, N, IC, OC);
}

static inline void lvd_linear_fwd_w16(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
				      const float *bias, int N, int IC, int OC)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_linear_fwd_w16_cuda(ctx, out, inp, w, bias, N, IC, OC);
		return;
	}
#endif
	lvd_linear_fwd_w16_cpu(ctx, out, inp, w, bias, N, IC, OC);
}

static inline void lvd_linear_bwd(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias,
				  const float *dout, const float *inp, const float *w, int N, int IC, int OC)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_linear_bwd_cuda(ctx, dinp, dw, dbias, dout, inp, w, N, IC, OC);
		return;
	}
#endif
	lvd_linear_bwd_cpu(ctx, dinp, dw, dbias, dout, inp, w, N, IC, OC);
}

#ifdef __cplusplus
}
#endif
#endif
