/* lib/nn/ops/act_fast.c — AVX2 fast paths of the activations: the GEGLU row
 * (lvd_geglu_fwd) and the spans of lvd_gelu_fwd/_bwd (tanh form) and lvd_swiglu_fwd/_bwd,
 * all through the vectorised exp of exp_avx2.h. */
#include <string.h>

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

/* σ(x) = 1/(1 + e^{-x}) from e = e^{-|x|} (no overflow): 1/(1+e) for x >= 0, e/(1+e) below */
__attribute__((target("avx2,fma"))) static inline __m256 sigm_avx2(__m256 x)
{
	__m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
	__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_setzero_ps(), ax));
	__m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
	return _mm256_blendv_ps(r, _mm256_mul_ps(e, r), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}

/* tanh(u) = sign(u)·(1 - e)/(1 + e), e = e^{-2|u|}: ~2 ulp of 1 absolute */
__attribute__((target("avx2,fma"))) static inline __m256 tanh_avx2(__m256 u)
{
	__m256 sgn = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
	__m256 au = _mm256_andnot_ps(sgn, u);
	__m256 e = lvd_exp_neg_avx2(_mm256_mul_ps(au, _mm256_set1_ps(-2.0f)));
	__m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
	return _mm256_or_ps(t, _mm256_and_ps(sgn, u));
}

/* 8 lanes of one op: o0/o1 outputs (accumulated in the backwards), a/b/c inputs */
__attribute__((target("avx2,fma"))) static inline void act8(enum lvd_act_fast op, float *o0, float *o1,
							   const float *a, const float *b, const float *c)
{
	const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
	const __m256 k0 = _mm256_set1_ps(0.7978845608028654f), k1 = _mm256_set1_ps(0.044715f);
	switch (op) {
	case LVD_ACT_GELU_TANH_FWD: { /* o0 = gelu(a) */
		__m256 x = _mm256_loadu_ps(a);
		__m256 u = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, x), _mm256_mul_ps(x, x), x));
		_mm256_storeu_ps(o0, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, tanh_avx2(u))));
		break;
	}
	case LVD_ACT_GELU_TANH_BWD: { /* o0 += a · gelu'(b) */
		__m256 x = _mm256_loadu_ps(b), x2 = _mm256_mul_ps(x, x);
		__m256 u = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, x), x2, x));
		__m256 t = tanh_avx2(u);
		__m256 du = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_set1_ps(3.0f * 0.044715f), x2, one));
		__m256 g = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_fnmadd_ps(t, t, one)), du,
					   _mm256_mul_ps(half, _mm256_add_ps(one, t)));
		_mm256_storeu_ps(o0, _mm256_fmadd_ps(_mm256_loadu_ps(a), g, _mm256_loadu_ps(o0)));
		break;
	}
	case LVD_ACT_SWIGLU_FWD: { /* o0 = silu(a) · b */
		__m256 g = _mm256_loadu_ps(a);
		_mm256_storeu_ps(o0, _mm256_mul_ps(_mm256_mul_ps(g, sigm_avx2(g)), _mm256_loadu_ps(b)));
		break;
	}
	case LVD_ACT_SWIGLU_BWD: { /* dgate o0 += c·up·σ(1 + g(1 - σ)), dup o1 += c·g·σ; a gate, b up */
		__m256 g = _mm256_loadu_ps(a), s = sigm_avx2(g), dy = _mm256_loadu_ps(c);
		if (o1)
			_mm256_storeu_ps(o1, _mm256_fmadd_ps(dy, _mm256_mul_ps(g, s), _mm256_loadu_ps(o1)));
		if (o0) {
			__m256 q = _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one);
			_mm256_storeu_ps(o0, _mm256_fmadd_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(b)), _mm256_mul_ps(s, q),
							     _mm256_loadu_ps(o0)));
		}
		break;
	}
	}
}

__attribute__((target("avx2,fma"))) void lvd_act_span_avx2(enum lvd_act_fast op, float *o0, float *o1,
							    const float *a, const float *b, const float *c, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		act8(op, o0 ? o0 + i : NULL, o1 ? o1 + i : NULL, a + i, b ? b + i : NULL, c ? c + i : NULL);
	if (i == n)
		return;
	/* the tail through zero-padded lanes, so every value takes the same vector code */
	float t0[8] = { 0 }, t1[8] = { 0 }, ta[8] = { 0 }, tb[8] = { 0 }, tc[8] = { 0 };
	size_t r = n - i, sz = r * sizeof(float);
	memcpy(ta, a + i, sz);
	if (b)
		memcpy(tb, b + i, sz);
	if (c)
		memcpy(tc, c + i, sz);
	if (o0)
		memcpy(t0, o0 + i, sz);
	if (o1)
		memcpy(t1, o1 + i, sz);
	act8(op, o0 ? t0 : NULL, o1 ? t1 : NULL, ta, tb, tc);
	if (o0)
		memcpy(o0 + i, t0, sz);
	if (o1)
		memcpy(o1 + i, t1, sz);
}
#else
void lvd_geglu_row_avx2(float *y, const float *a, const float *g, int F)
{
	(void)y, (void)a, (void)g, (void)F;
	LVD_ASSERT(0);
}

void lvd_act_span_avx2(enum lvd_act_fast op, float *o0, float *o1, const float *a, const float *b, const float *c,
		       size_t n)
{
	(void)op, (void)o0, (void)o1, (void)a, (void)b, (void)c, (void)n;
	LVD_ASSERT(0);
}
#endif
