/* lib/nn/gemm.c — leftover shim, see gemm.h (deleted when nn2 merges). */
#include "nn/gemm.h"

#include <cblas.h>

#include "nn/ctx.h"

void lvd_sgemm(int transA, int transB, int M, int N, int K, float alpha,
	       const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
		return;
	}
	cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
		    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void lvd_gemm_quiet_workers(void)
{
	lvd_blas_policy_init();
}
