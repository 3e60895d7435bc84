/* lib/nn/ops/softmax_fast.c — AVX2 softmax row (fast path of lvd_softmax_fwd) and the
 * cross-entropy rows of lvd_xent_* (xent_cpu.c), used when ctx->cpu_fast and the CPU has
 * AVX2+FMA. */
#include <math.h>

#include "nn/ops/cpu_internal.h"
#include "nn/ops/exp_avx2.h"

#if LVD_OPS_X86
__attribute__((target("avx2,fma"))) static float hmax256(__m256 v)
{
	__m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	a = _mm_max_ps(a, _mm_movehl_ps(a, a));
	a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
	return _mm_cvtss_f32(a);
}

__attribute__((target("avx2,fma"))) static float hsum256(__m256 v)
{
	__m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	a = _mm_add_ps(a, _mm_movehl_ps(a, a));
	a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
	return _mm_cvtss_f32(a);
}

/* The tail (M % 8 values) is handled with a masked load so every value goes through the
 * same exp. A fully masked row gives the scalar path's NaNs. */
__attribute__((target("avx2,fma"))) void lvd_softmax_row_avx2(float *r, int M)
{
	int M8 = M & ~7, rem = M - M8;
	__m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 ninf = _mm256_set1_ps(-INFINITY);
	__m256 mx = ninf;
	for (int j = 0; j < M8; j += 8)
		mx = _mm256_max_ps(mx, _mm256_loadu_ps(r + j));
	if (rem)
		mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_maskload_ps(r + M8, tail),
							 _mm256_castsi256_ps(tail)));
	float m = hmax256(mx);
	if (m == -INFINITY) {
		for (int j = 0; j < M; j++)
			r[j] = NAN;
		return;
	}
	__m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
	for (int j = 0; j < M8; j += 8) {
		__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(r + j), vm));
		_mm256_storeu_ps(r + j, e);
		acc = _mm256_add_ps(acc, e);
	}
	if (rem) {
		__m256 x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(r + M8, tail), _mm256_castsi256_ps(tail));
		__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(x, vm));
		_mm256_maskstore_ps(r + M8, tail, e);
		acc = _mm256_add_ps(acc, e);
	}
	__m256 inv = _mm256_set1_ps(1.0f / hsum256(acc));
	for (int j = 0; j < M8; j += 8)
		_mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), inv));
	if (rem)
		_mm256_maskstore_ps(r + M8, tail, _mm256_mul_ps(_mm256_maskload_ps(r + M8, tail), inv));
}

/* The cross-entropy rows (xent_cpu.c): the exps in float (l − max is exact where it
 * matters, near the max), summed 8 at a time into double lanes. A NaN anywhere returns
 * -1 (the caller then takes the scalar path, which propagates it). */
__attribute__((target("avx2,fma"))) double lvd_xent_sumexp_avx2(const float *l, int V, float *mx_out)
{
	int V8 = V & ~7, rem = V - V8;
	__m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 ninf = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
	__m256 mx = ninf, xt = ninf;
	if (rem)
		xt = _mm256_blendv_ps(ninf, _mm256_maskload_ps(l + V8, tail), _mm256_castsi256_ps(tail));
	for (int j = 0; j < V8; j += 8) {
		__m256 x = _mm256_loadu_ps(l + j);
		nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
		mx = _mm256_max_ps(mx, x);
	}
	nan = _mm256_or_ps(nan, _mm256_cmp_ps(xt, xt, _CMP_UNORD_Q));
	mx = _mm256_max_ps(mx, xt);
	float m = hmax256(mx);
	if (_mm256_movemask_ps(nan) || !isfinite(m))
		return -1.0;
	__m256 vm = _mm256_set1_ps(m);
	__m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
	for (int j = 0; j < V8; j += 8) {
		__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(l + j), vm));
		a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	if (rem) {
		__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(xt, vm)); /* -inf lanes give 0 */
		a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	double t[4];
	_mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
	*mx_out = m;
	return (t[0] + t[1]) + (t[2] + t[3]);
}

/* d[j] = (acc ? d[j] : 0) + s·exp(l[j] − z), z = zh + zl (a double split in two floats:
 * l − zh is exact near the top of the row, the small zl is subtracted after) */
__attribute__((target("avx2,fma"))) void lvd_xent_expscale_avx2(float *d, const float *l, int V, float zh,
								 float zl, float s, int acc)
{
	int V8 = V & ~7, rem = V - V8;
	__m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256 vh = _mm256_set1_ps(zh), vl = _mm256_set1_ps(zl), vs = _mm256_set1_ps(s);
	for (int j = 0; j < V8; j += 8) {
		__m256 e = lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(l + j), vh), vl));
		__m256 y = _mm256_mul_ps(vs, e);
		_mm256_storeu_ps(d + j, acc ? _mm256_add_ps(_mm256_loadu_ps(d + j), y) : y);
	}
	if (rem) {
		__m256 x = _mm256_maskload_ps(l + V8, tail);
		__m256 y = _mm256_mul_ps(vs, lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_sub_ps(x, vh), vl)));
		_mm256_maskstore_ps(d + V8, tail, acc ? _mm256_add_ps(_mm256_maskload_ps(d + V8, tail), y) : y);
	}
}
#else
void lvd_softmax_row_avx2(float *r, int M)
{
	(void)r, (void)M;
	LVD_ASSERT(0);
}
double lvd_xent_sumexp_avx2(const float *l, int V, float *mx_out)
{
	(void)l, (void)V, (void)mx_out;
	LVD_ASSERT(0);
	return -1.0;
}
void lvd_xent_expscale_avx2(float *d, const float *l, int V, float zh, float zl, float s, int acc)
{
	(void)d, (void)l, (void)V, (void)zh, (void)zl, (void)s, (void)acc;
	LVD_ASSERT(0);
}
#endif
