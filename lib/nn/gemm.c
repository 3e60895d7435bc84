#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>

/* OpenBLAS extensions (declared by its cblas.h, but not by the netlib header that the
 * alternatives system may select). */
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);

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

void lvd_sgemm_naive(int transA, int transB, int M, int N, int K, float alpha,
		     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
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

void lvd_linear_fwd(float *out, const float *inp, const float *w, const float *bias,
		    int N, int IC, int OC)
{
	if (bias) {
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				out[(long)n * OC + o] = bias[o];
	}
	lvd_sgemm(0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, bias ? 1.0f : 0.0f, out, OC);
}

void lvd_linear_bwd(float *dinp, float *dw, float *dbias, const float *dout,
		    const float *inp, const float *w, int N, int IC, int OC)
{
	if (dinp)
		lvd_sgemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
	if (dw)
		lvd_sgemm(1, 0, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
	if (dbias)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < OC; o++)
				dbias[o] += dout[(long)n * OC + o];
}

/* OpenBLAS entry points outside cblas (exported by libopenblas); weak so that another
 * BLAS still links, and the quieting is then skipped. */
extern void openblas_read_env(void) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));

void lvd_gemm_quiet_workers(void)
{
	if (getenv("OPENBLAS_THREAD_TIMEOUT") || !openblas_read_env || !blas_thread_shutdown_)
		return;
	setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
	openblas_read_env();
	blas_thread_shutdown_(); /* the next parallel GEMM restarts the workers with it */
}

int lvd_gemm_set_threads(int n)
{
	int prev = openblas_get_num_threads();
	if (n > 0)
		openblas_set_num_threads(n);
	return prev;
}
