// lib/nn/ops/gemm.cu — CUDA twins of family gemm (ops/gemm.h): lvd_gemm (fp32),
// lvd_gemm_bf16 (bf16 A/B, fp32 accumulate and C), lvd_linear_fwd/bwd and
// lvd_linear_fwd_w16, on cuBLASLt with ctx->blas, its workspace ctx->blas_ws and
// ctx->stream.
//
// Row-major through a column-major library: a row-major [R, C] matrix with leading
// dimension ld is the column-major [C, R] matrix with the same ld, i.e. its transpose.
// So row-major C = op(A)·op(B) is computed as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's
// first operand is our B, its second our A, each with our own transpose flag, and the
// output is [N, M] column-major with leading dimension ldc. The heuristic's algorithm is
// cached per GEMM signature in the context (see algo_slot).
#include <string.h>

#include <cublasLt.h>

#include "nn/ops/cuda_cache.cuh"
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"

namespace {

// Largest power of two (<= 256) dividing the address: cuBLASLt's heuristics assume
// 256-byte aligned operands unless told otherwise, and sub-views (a head's columns, a
// row offset) are often less aligned.
uint32_t ptr_align(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t al = 256;
	while (al > 1 && (a & (al - 1)))
		al >>= 1;
	return al;
}

// The heuristic's algorithm per GEMM signature (shape, leading dimensions, type,
// alignments, device, workspace size) in the context's cache (ops/cuda_cache.cuh), so
// repeated shapes (every layer of a model pass) skip cublasLtMatmulAlgoGetHeuristic.
// Open addressing over GEMM_SLOTS; the table starts over when half full.
size_t algo_hash(const int *key, size_t ws)
{
	size_t h = ws * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 13; i++)
		h = (h ^ (size_t)(unsigned)key[i]) * 0x100000001b3ull;
	return h;
}

lvd_cu::gemm_algo *algo_slot(lvd_cu::cache *c, const int *key, size_t ws)
{
	const size_t n = lvd_cu::cache::GEMM_SLOTS;
	size_t i = algo_hash(key, ws) % n;
	while (c->gemm[i].used && !(c->gemm[i].ws == ws && !memcmp(c->gemm[i].key, key, sizeof c->gemm[i].key)))
		i = (i + 1) % n;
	return &c->gemm[i];
}

// C = beta·C over an [M, N] row-major block (K == 0 products); beta == 0 writes 0.
__global__ void scale_block_kernel(float *C, int ldc, int M, int N, float beta)
{
	size_t total = (size_t)M * N;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
		size_t r = i / (size_t)N, c = i % (size_t)N;
		float *p = C + r * (size_t)ldc + c;
		*p = beta == 0.0f ? 0.0f : beta * *p;
	}
}

// One cuBLASLt matmul: row-major C[M,N] = alpha·op(A)·op(B) + beta·C, A and B of type
// `ab` (CUDA_R_32F or CUDA_R_16BF), C fp32, fp32 compute (CUBLAS_COMPUTE_32F: no TF32).
void lt_matmul(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
	       const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc, cudaDataType_t ab)
{
	if (M <= 0 || N <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	if (K <= 0) {
		if (beta != 1.0f) {
			scale_block_kernel<<<lvd_cu::elem_blocks((size_t)M * N), 256, 0, st>>>(C, ldc, M, N, beta);
			LVD_CU_LAUNCHED();
		}
		return;
	}
	LVD_ASSERTF(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N,
		    "lvd_gemm_cuda: leading dimensions too small (M %d N %d K %d lda %d ldb %d ldc %d)",
		    M, N, K, lda, ldb, ldc);
	cublasLtHandle_t h = (cublasLtHandle_t)ctx->blas;
	cublasLtMatmulDesc_t op;
	CUBLASLT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	// library operand 1 = our B, operand 2 = our A (see the file comment)
	cublasOperation_t t1 = transB ? CUBLAS_OP_T : CUBLAS_OP_N, t2 = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
	CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t1, sizeof t1));
	CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &t2, sizeof t2));
	// stored (pre-op) column-major shapes: our B is [N,K] (or [K,N] when transB) col-major
	cublasLtMatrixLayout_t l1, l2, lc;
	CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l1, ab, transB ? K : N, transB ? N : K, ldb));
	CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l2, ab, transA ? M : K, transA ? K : M, lda));
	CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, ldc));
	cublasLtMatmulPreference_t pref;
	CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
	size_t wsb = ctx->blas_ws_bytes;
	CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb));
	uint32_t a1 = ptr_align(B), a2 = ptr_align(A), ac = ptr_align(C);
	CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a1, sizeof a1));
	CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a2, sizeof a2));
	CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac));
	CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac));
	const int key[13] = {transA, transB, M, N, K, lda, ldb, ldc, (int)ab, (int)a1, (int)a2, (int)ac, ctx->device};
	lvd_cu::cache *cache = lvd_cu::get_cache(ctx);
	lvd_cu::gemm_algo *slot = algo_slot(cache, key, ctx->blas_ws_bytes);
	if (!slot->used) {
		cublasLtMatmulHeuristicResult_t res;
		int found = 0;
		CUBLASLT_CHECK(cublasLtMatmulAlgoGetHeuristic(h, op, l1, l2, lc, lc, pref, 1, &res, &found));
		LVD_ASSERTF(found > 0, "cuBLASLt: no algorithm for %s GEMM M %d N %d K %d (trans %d%d, ld %d %d %d)",
			    ab == CUDA_R_16BF ? "bf16" : "fp32", M, N, K, transA, transB, lda, ldb, ldc);
		if (cache->gemm_n >= lvd_cu::cache::GEMM_SLOTS / 2) { // keep probes short: start over
			memset(cache->gemm, 0, sizeof cache->gemm);
			cache->gemm_n = 0;
			slot = algo_slot(cache, key, ctx->blas_ws_bytes);
		}
		slot->used = 1;
		memcpy(slot->key, key, sizeof slot->key);
		slot->ws = ctx->blas_ws_bytes;
		slot->algo = res.algo;
		cache->gemm_n++;
	}
	CUBLASLT_CHECK(cublasLtMatmul(h, op, &alpha, B, l1, A, l2, &beta, C, lc, C, lc, &slot->algo,
				      ctx->blas_ws, ctx->blas_ws_bytes, st));
	cublasLtMatmulPreferenceDestroy(pref);
	cublasLtMatrixLayoutDestroy(lc);
	cublasLtMatrixLayoutDestroy(l2);
	cublasLtMatrixLayoutDestroy(l1);
	cublasLtMatmulDescDestroy(op);
}

// y[N, C] += b[C]
__global__ void bias_rows_kernel(float *y, const float *b, int N, int C)
{
	size_t total = (size_t)N * C;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
		y[i] += b[i % (size_t)C];
}

struct dout_term {
	const float *dout;
	int C;
	__device__ float operator()(int n, int c) const { return dout[(size_t)n * C + c]; }
};

} // namespace

extern "C" void lvd_gemm_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
			      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	lt_matmul(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, CUDA_R_32F);
}

extern "C" void lvd_gemm_bf16_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
				   const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc)
{
	lt_matmul(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, CUDA_R_16BF);
}

extern "C" void lvd_linear_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const float *w,
				    const float *bias, int N, int IC, int OC)
{
	lt_matmul(ctx, 0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC, CUDA_R_32F);
	if (bias && N > 0 && OC > 0) {
		bias_rows_kernel<<<lvd_cu::elem_blocks((size_t)N * OC), 256, 0, lvd_cu::stream(ctx)>>>(out, bias, N, OC);
		LVD_CU_LAUNCHED();
	}
}

extern "C" void lvd_linear_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias, const float *dout,
				    const float *inp, const float *w, int N, int IC, int OC)
{
	if (dinp)
		lt_matmul(ctx, 0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC, CUDA_R_32F);
	if (dw)
		lt_matmul(ctx, 1, 0, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC, CUDA_R_32F);
	if (dbias)
		lvd_cu::colsum_add(ctx, dbias, dout_term{dout, OC}, N, OC);
}

extern "C" void lvd_linear_fwd_w16_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
					const float *bias, int N, int IC, int OC)
{
	if (N <= 0 || OC <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	uint16_t *xb = (uint16_t *)lvd_ctx_take(ctx, sizeof(uint16_t) * ((size_t)N * IC + 1));
	if (IC > 0)
		lvd_f32_to_bf16_cuda(ctx, xb, inp, (size_t)N * IC);
	lt_matmul(ctx, 0, 1, N, OC, IC, 1.0f, xb, IC, w, IC, 0.0f, out, OC, CUDA_R_16BF);
	if (bias) {
		bias_rows_kernel<<<lvd_cu::elem_blocks((size_t)N * OC), 256, 0, lvd_cu::stream(ctx)>>>(out, bias, N, OC);
		LVD_CU_LAUNCHED();
	}
	lvd_ctx_release(ctx, mk);
}
