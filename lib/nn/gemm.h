/* lib/nn/gemm.h — LEFTOVER SHIM (issue #10 phase 2), to be deleted by the lead when
 * branch nn2 merges: two callers outside the mllama helper's files still use it on this
 * branch, lib/nn/ops/conv_bwd_cpu.c (lvd_sgemm; nn2 moves it to lvd_gemm(ctx, ...)) and
 * tools/common/cli.c (lvd_gemm_quiet_workers; nn2 calls lvd_blas_policy_init). New code
 * uses lib/nn/ops/gemm.h and lib/nn/ctx.h. */
#ifndef LVD_NN_GEMM_H
#define LVD_NN_GEMM_H

/* C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major, one cblas_sgemm (OpenBLAS
 * single-threaded by the ctx policy). Use lvd_gemm(ctx, ...) instead. */
void lvd_sgemm(int transA, int transB, int M, int N, int K, float alpha,
	       const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The process-wide BLAS policy: same as lvd_blas_policy_init (lib/nn/ctx.h). */
void lvd_gemm_quiet_workers(void);

#endif
