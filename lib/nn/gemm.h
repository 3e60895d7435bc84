/* lib/nn/gemm.h — dense matrix products on the CPU (OpenBLAS through cblas), plus the
 * naive oracles the fast paths are tested against.
 *
 * Row-major, PyTorch shape order. Dimension letters: N rows (tokens), IC input
 * features, OC output features. Nothing here allocates. */
#ifndef LVD_NN_GEMM_H
#define LVD_NN_GEMM_H

/* Phase-1 leftover (issue #10): lib/nn/ops/gemm.h owns lvd_gemm and lvd_linear_*; the
 * ctx-less nn.Linear here links as lvd_legacy_linear_* so lib/models/mllama keeps
 * building until it moves over. Do not include together with nn/ops/gemm.h. Deleted in
 * phase 2 (lvd_gemm_quiet_workers / lvd_gemm_set_threads stay for the BLAS policy). */
#define lvd_linear_fwd lvd_legacy_linear_fwd
#define lvd_linear_bwd lvd_legacy_linear_bwd

/* C[M,N] = alpha * op(A) @ op(B) + beta * C, op(X) = X or Xᵀ (trans != 0).
 * A is [M,K] (or [K,M] when transA), B is [K,N] (or [N,K] when transB). beta = 1
 * accumulates into C. */
void lvd_sgemm(int transA, int transB, int M, int N, int K, float alpha,
	       const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The same computed with plain loops in double precision: the oracle for tests. */
void lvd_sgemm_naive(int transA, int transB, int M, int N, int K, float alpha,
		     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* nn.Linear: out[N,OC] = inp[N,IC] @ w[OC,IC]ᵀ + bias[OC] (bias may be NULL). */
void lvd_linear_fwd(float *out, const float *inp, const float *w, const float *bias,
		    int N, int IC, int OC);

/* Backward of lvd_linear_fwd. ACCUMULATES into dinp, dw and dbias (each may be NULL
 * when not needed): dinp += dout @ w, dw += doutᵀ @ inp, dbias += Σ_rows dout. */
void lvd_linear_bwd(float *dinp, float *dw, float *dbias, const float *dout,
		    const float *inp, const float *w, int N, int IC, int OC);

/* Makes OpenBLAS's idle worker threads sleep almost at once after a GEMM instead of
 * spinning for ~2^28 cycles (OpenBLAS's default), which otherwise steals the cores from
 * our own thread pool between GEMMs (measured: SD UNet at 2 threads 1.37-1.55 s -> 1.08 s).
 * Sets OPENBLAS_THREAD_TIMEOUT=4 unless the user set it, and restarts OpenBLAS's thread
 * server so the value takes effect. Call once at program start, before other threads
 * exist (it calls setenv). A no-op with a BLAS that lacks these OpenBLAS entry points. */
void lvd_gemm_quiet_workers(void);

/* Threads OpenBLAS may use (0 = leave as is). Returns the previous setting. */
int lvd_gemm_set_threads(int n);

#endif
