/* lib/nn/ops/exp_avx2.h — the one vectorised exp of the CPU fast paths (softmax, SiLU
 * inside GroupNorm, GELU), private to lib/nn/ops (not a public header). Include only
 * from files compiled with the x86-64 AVX2 paths (LVD_OPS_X86). */
#ifndef LVD_NN_OPS_EXP_AVX2_H
#define LVD_NN_OPS_EXP_AVX2_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LVD_OPS_X86 1

/* exp(x) for x <= 0 (8 lanes): Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, and the
 * Cephes expf polynomial (about 1 ulp); x < -87 (including -inf) gives exactly 0. */
__attribute__((target("avx2,fma"))) static inline __m256 lvd_exp_neg_avx2(__m256 x)
{
	const __m256 lo = _mm256_set1_ps(-87.0f);
	__m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
	x = _mm256_max_ps(x, lo);
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
#else
#define LVD_OPS_X86 0
#endif

#endif
