/* lib/nn/ops/act_fast.c — AVX2 GEGLU row (fast path of lvd_geglu_fwd). */
#include "nn/ops/cpu_internal.h"
#include "nn/ops/exp_avx2.h"

#if LVD_OPS_X86
/* GELU(x) = x·Φ(x) with Φ from Abramowitz & Stegun 7.1.26: erfc(z) ≈ poly(t)·t·e^{-z²},
 * t = 1/(1 + p·z), |error| <= 1.5e-7 absolute. Φ(x) = erfc(|x|/√2)/2 for x < 0 (no
 * cancellation in the left tail) and 1 - erfc(x/√2)/2 for x >= 0. */
__attribute__((target("avx2,fma"))) static inline __m256 gelu_avx2(__m256 x)
{
	__m256 z = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
	__m256 one = _mm256_set1_ps(1.0f);
	__m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), z, one));
	__m256 p = _mm256_set1_ps(1.061405429f);
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
	__m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(p, t), _mm256_set1_ps(0.5f)),
					 lvd_exp_neg_avx2(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z)));
	__m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
	__m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, neg);
	return _mm256_mul_ps(x, phi);
}

__attribute__((target("avx2,fma"))) void lvd_geglu_row_avx2(float *y, const float *a, const float *g, int F)
{
	int f = 0;
	for (; f + 8 <= F; f += 8)
		_mm256_storeu_ps(y + f, _mm256_mul_ps(_mm256_loadu_ps(a + f), gelu_avx2(_mm256_loadu_ps(g + f))));
	if (f < F) {
		__m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(F - f), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
		__m256 gv = _mm256_maskload_ps(g + f, m), av = _mm256_maskload_ps(a + f, m);
		_mm256_maskstore_ps(y + f, m, _mm256_mul_ps(av, gelu_avx2(gv)));
	}
}
#else
void lvd_geglu_row_avx2(float *y, const float *a, const float *g, int F)
{
	(void)y, (void)a, (void)g, (void)F;
	LVD_ASSERT(0);
}
#endif
