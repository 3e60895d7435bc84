/* lib/nn/ops/norm_fast.c — AVX2 GroupNorm group (fast path of lvd_groupnorm_fwd): sums
 * in double with 4×4 independent lanes, affine + SiLU through the vectorised exp. */
#include <math.h>

#include "nn/ops/cpu_internal.h"
#include "nn/ops/exp_avx2.h"

#if LVD_OPS_X86
/* Σx of n floats in double with 4×4 independent lanes (the sums are latency-bound
 * otherwise); the tail is added in order. */
__attribute__((target("avx2,fma"))) static double sum_avx2(const float *x, size_t n)
{
	__m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
		a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
		a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)));
		a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12)));
	}
	double t[4];
	_mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
	double s = (t[0] + t[1]) + (t[2] + t[3]);
	for (; i < n; i++)
		s += x[i];
	return s;
}

/* Σ(x - m)² likewise. */
__attribute__((target("avx2,fma"))) static double sqdev_avx2(const float *x, size_t n, double m)
{
	__m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, vm = _mm256_set1_pd(m), d;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), vm);
		a0 = _mm256_fmadd_pd(d, d, a0);
		d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)), vm);
		a1 = _mm256_fmadd_pd(d, d, a1);
		d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), vm);
		a2 = _mm256_fmadd_pd(d, d, a2);
		d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 12)), vm);
		a3 = _mm256_fmadd_pd(d, d, a3);
	}
	double t[4];
	_mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
	double s = (t[0] + t[1]) + (t[2] + t[3]);
	for (; i < n; i++) {
		double e = x[i] - m;
		s += e * e;
	}
	return s;
}

/* y = x·a + b, then SiLU when silu: x·σ(x) with σ from e = exp(-|x|):
 * σ = 1/(1+e) for x >= 0, e/(1+e) below. */
__attribute__((target("avx2,fma"))) static void affine_row_avx2(float *y, const float *x, int n, float a,
								  float b, int silu)
{
	__m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), one = _mm256_set1_ps(1.0f);
	__m256 sign = _mm256_set1_ps(-0.0f);
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb);
		if (silu) {
			__m256 e = lvd_exp_neg_avx2(_mm256_or_ps(v, sign));
			__m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
			__m256 sg = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), v);   /* sign bit of v picks */
			v = _mm256_mul_ps(v, sg);
		}
		_mm256_storeu_ps(y + i, v);
	}
	for (; i < n; i++) {
		float v = x[i] * a + b;
		y[i] = silu ? v / (1.0f + expf(-v)) : v;
	}
}

void lvd_groupnorm_group_avx2(float *out, float *mean, float *rstd, const float *inp, const float *w,
			      const float *b, int cg, int HW, float eps, int silu)
{
	size_t n = (size_t)cg * HW;
	double m = sum_avx2(inp, n) / (double)n;
	double ss = sqdev_avx2(inp, n, m);
	float r = (float)(1.0 / sqrt(ss / (double)n + eps));
	float mf = (float)m;
	if (mean)
		*mean = mf;
	if (rstd)
		*rstd = r;
	for (int c = 0; c < cg; c++) {
		float a = r * (w ? w[c] : 1.0f);
		float bb = (b ? b[c] : 0.0f) - mf * a;
		affine_row_avx2(out + (size_t)c * HW, inp + (size_t)c * HW, HW, a, bb, silu);
	}
}
#else
void lvd_groupnorm_group_avx2(float *out, float *mean, float *rstd, const float *inp, const float *w,
			      const float *b, int cg, int HW, float eps, int silu)
{
	(void)out, (void)mean, (void)rstd, (void)inp, (void)w, (void)b, (void)cg, (void)HW, (void)eps, (void)silu;
	LVD_ASSERT(0);
}
#endif
