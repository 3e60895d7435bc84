/* lib/nn/ops_cpu.c — CPU reference of the forward ops in ops.h. */
#include "nn/ops.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/pool.h"
#include "nn/gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LVD_OPS_X86 1
#else
#define LVD_OPS_X86 0
#endif

void lvd_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
		       const float *w, const float *b, int N, int C, float eps)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *y = out + (size_t)n * C;
		double s = 0, ss = 0;
		for (int c = 0; c < C; c++)
			s += x[c];
		double m = s / C;
		for (int c = 0; c < C; c++) {
			double d = x[c] - m;
			ss += d * d;
		}
		double r = 1.0 / sqrt(ss / C + eps);
		for (int c = 0; c < C; c++)
			y[c] = (float)((x[c] - m) * r) * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
		if (mean)
			mean[n] = (float)m;
		if (rstd)
			rstd[n] = (float)r;
	}
}


#if LVD_OPS_X86
static inline __m256 exp_neg_avx2(__m256 x);

/* Σx and Σ(x - m)² of n floats in double with 4×4 independent lanes (the sums are
 * latency-bound otherwise); the tail is added in order. */
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
			__m256 e = exp_neg_avx2(_mm256_or_ps(v, sign));
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
static int have_avx2(void);
#endif

static inline float silu1(float x) { return x / (1.0f + expf(-x)); }

void lvd_groupnorm_fwd(float *out, const float *inp, const float *w, const float *b,
		       int C, int HW, int G, float eps, int silu)
{
	LVD_ASSERT(G > 0 && C % G == 0);
	int cg = C / G;
#if LVD_OPS_X86
	int vec = have_avx2();
#endif
	for (int g = 0; g < G; g++) {
		const float *x = inp + (size_t)g * cg * HW;
		size_t n = (size_t)cg * HW;
		double s = 0, ss = 0, m;
#if LVD_OPS_X86
		if (vec) {
			m = sum_avx2(x, n) / (double)n;
			ss = sqdev_avx2(x, n, m);
		} else
#endif
		{
			for (size_t i = 0; i < n; i++)
				s += x[i];
			m = s / (double)n;
			for (size_t i = 0; i < n; i++) {
				double d = x[i] - m;
				ss += d * d;
			}
		}
		float r = (float)(1.0 / sqrt(ss / (double)n + eps));
		float mf = (float)m;
		for (int c = g * cg; c < (g + 1) * cg; c++) {
			const float *xc = inp + (size_t)c * HW;
			float *yc = out + (size_t)c * HW;
			float a = r * (w ? w[c] : 1.0f);
			float bb = (b ? b[c] : 0.0f) - mf * a;
#if LVD_OPS_X86
			if (vec) {
				affine_row_avx2(yc, xc, HW, a, bb, silu);
				continue;
			}
#endif
			if (silu)
				for (int p = 0; p < HW; p++)
					yc[p] = silu1(xc[p] * a + bb);
			else
				for (int p = 0; p < HW; p++)
					yc[p] = xc[p] * a + bb;
		}
	}
}

#define CONV_SLAB_FLOATS ((size_t)8 << 20)

static int conv_is_pointwise(int KH, int KW, int stride, int pt, int pl, int pb, int pr)
{
	return KH == 1 && KW == 1 && stride == 1 && !pt && !pl && !pb && !pr;
}

static int conv_rows_per_chunk(int C, int KH, int KW, int OW, int OH, size_t cap)
{
	size_t per_row = (size_t)C * KH * KW * OW;
	size_t rows = per_row ? cap / per_row : (size_t)OH;
	if (rows < 1)
		rows = 1;
	if (rows > (size_t)OH)
		rows = (size_t)OH;
	return (int)rows;
}

size_t lvd_conv2d_scratch(int C, int H, int W, int KH, int KW, int stride,
			  int pad_t, int pad_l, int pad_b, int pad_r)
{
	if (conv_is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r))
		return 0;
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	int rows = conv_rows_per_chunk(C, KH, KW, OW, OH, CONV_SLAB_FLOATS);
	return (size_t)C * KH * KW * OW * rows;
}

/* col[(c·KH + kh)·KW + kw][r·OW + ow] for output rows [oh0, oh0 + rows). */
static void im2col_rows(float *col, const float *inp, int C, int H, int W, int KH, int KW,
			int stride, int pad_t, int pad_l, int OW, int oh0, int rows)
{
	size_t ncol = (size_t)rows * OW;
	for (int c = 0; c < C; c++)
		for (int kh = 0; kh < KH; kh++)
			for (int kw = 0; kw < KW; kw++) {
				float *dst = col + ((size_t)(c * KH + kh) * KW + kw) * ncol;
				const float *src = inp + (size_t)c * H * W;
				/* valid ow range: 0 <= ow·stride - pad_l + kw < W */
				int lo = 0, hi = OW;  /* [lo, hi) */
				while (lo < OW && lo * stride - pad_l + kw < 0)
					lo++;
				while (hi > lo && (hi - 1) * stride - pad_l + kw >= W)
					hi--;
				for (int r = 0; r < rows; r++) {
					float *d = dst + (size_t)r * OW;
					int ih = (oh0 + r) * stride - pad_t + kh;
					if (ih < 0 || ih >= H) {
						memset(d, 0, sizeof(float) * OW);
						continue;
					}
					const float *s = src + (size_t)ih * W;
					for (int ow = 0; ow < lo; ow++)
						d[ow] = 0.0f;
					if (stride == 1) {
						if (hi > lo)
							memcpy(d + lo, s + lo - pad_l + kw, sizeof(float) * (hi - lo));
					} else {
						for (int ow = lo; ow < hi; ow++)
							d[ow] = s[ow * stride - pad_l + kw];
					}
					for (int ow = hi > lo ? hi : lo; ow < OW; ow++)
						d[ow] = 0.0f;
				}
			}
}

void lvd_conv2d_fwd(float *out, const float *inp, const float *w, const float *b,
		    int C, int H, int W, int OC, int KH, int KW, int stride,
		    int pad_t, int pad_l, int pad_b, int pad_r, float *scratch, size_t scratch_len)
{
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	LVD_ASSERT(OH > 0 && OW > 0 && out != inp);
	int P = OH * OW;
	int K = C * KH * KW;
	if (b)
		for (int o = 0; o < OC; o++)
			for (int p = 0; p < P; p++)
				out[(size_t)o * P + p] = b[o];
	float beta = b ? 1.0f : 0.0f;
	if (conv_is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r)) {
		lvd_sgemm(0, 0, OC, P, C, 1.0f, w, C, inp, P, beta, out, P);
		return;
	}
	LVD_ASSERT(scratch && scratch_len >= (size_t)K * OW);
	int rows = conv_rows_per_chunk(C, KH, KW, OW, OH, scratch_len);
	for (int oh0 = 0; oh0 < OH; oh0 += rows) {
		int r = OH - oh0 < rows ? OH - oh0 : rows;
		im2col_rows(scratch, inp, C, H, W, KH, KW, stride, pad_t, pad_l, OW, oh0, r);
		lvd_sgemm(0, 0, OC, r * OW, K, 1.0f, w, K, scratch, r * OW, beta,
			  out + (size_t)oh0 * OW, P);
	}
}

/* ---- GEMMs split over a pool along the weight rows ------------------------------------
 * When the weight matrix is the larger operand (few pixels or tokens, many output
 * channels: the low-resolution UNet levels) OpenBLAS's own threading packs the small
 * activation operand once but leaves the weight stream poorly shared; giving each thread
 * its own block of output channels (OpenBLAS single-threaded inside) measured 20-30 %
 * faster there. Elsewhere OpenBLAS's threading is kept. */
struct wsplit_job {
	float *out;
	const float *w, *b, *x;
	int M, K, P, ldo, rowmajor_x;   /* out rows [o, o+1) of length P, ldo = row stride */
};

/* Rows [lo, hi) of out[M, P] = w[M, K] @ x (x [K, P], or [P, K] when rowmajor_x = 0: the
 * nn.Linear layout where out is [P, M] and rows are columns). */
static int wsplit_piece(void *ctx, size_t lo, size_t hi, int tid)
{
	const struct wsplit_job *j = ctx;
	(void)tid;
	int n = (int)(hi - lo);
	if (j->rowmajor_x) {   /* conv: out[o, p] (bias already written when b) */
		lvd_sgemm(0, 0, n, j->P, j->K, 1.0f, j->w + lo * (size_t)j->K, j->K, j->x, j->P,
			  j->b ? 1.0f : 0.0f, j->out + lo * (size_t)j->ldo, j->ldo);
	} else {               /* linear: out[p, o] for o in [lo, hi) */
		lvd_sgemm(0, 1, j->P, n, j->K, 1.0f, j->x, j->K, j->w + lo * (size_t)j->K, j->K,
			  j->b ? 1.0f : 0.0f, j->out + lo, j->ldo);
	}
	return 0;
}

static int use_wsplit(struct lvd_pool *pool, int M, int P)
{
	int T = lvd_pool_threads(pool);
	return T > 1 && M >= P && M >= 32 * T;
}

static void wsplit_run(struct lvd_pool *pool, struct wsplit_job *j)
{
	int prev = lvd_gemm_set_threads(1);
	lvd_pool_parallel_for(pool, (size_t)j->M, wsplit_piece, j);
	lvd_gemm_set_threads(prev);
}

void lvd_linear_fwd_mt(float *out, const float *inp, const float *w, const float *bias,
		       int N, int IC, int OC, struct lvd_pool *pool)
{
	if (!use_wsplit(pool, OC, N)) {
		lvd_linear_fwd(out, inp, w, bias, N, IC, OC);
		return;
	}
	if (bias)
		for (int n = 0; n < N; n++)
			memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
	struct wsplit_job j = {.out = out, .w = w, .b = bias, .x = inp, .M = OC, .K = IC, .P = N,
			       .ldo = OC, .rowmajor_x = 0};
	wsplit_run(pool, &j);
}

void lvd_conv2d_fwd_mt(float *out, const float *inp, const float *w, const float *b,
		       int C, int H, int W, int OC, int KH, int KW, int stride,
		       int pad_t, int pad_l, int pad_b, int pad_r, float *scratch, size_t scratch_len,
		       struct lvd_pool *pool)
{
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	LVD_ASSERT(OH > 0 && OW > 0 && out != inp);
	int P = OH * OW, K = C * KH * KW;
	int rows = conv_is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r)
			   ? OH : conv_rows_per_chunk(C, KH, KW, OW, OH, scratch_len);
	/* the weight split pays when one im2col chunk covers the whole output */
	if (!use_wsplit(pool, OC, P) || rows < OH) {
		lvd_conv2d_fwd(out, inp, w, b, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r,
			       scratch, scratch_len);
		return;
	}
	if (b)
		for (int o = 0; o < OC; o++)
			for (int p = 0; p < P; p++)
				out[(size_t)o * P + p] = b[o];
	const float *x = inp;
	if (!conv_is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r)) {
		LVD_ASSERT(scratch && scratch_len >= (size_t)K * P);
		im2col_rows(scratch, inp, C, H, W, KH, KW, stride, pad_t, pad_l, OW, 0, OH);
		x = scratch;
	}
	struct wsplit_job j = {.out = out, .w = w, .b = b, .x = x, .M = OC, .K = K, .P = P,
			       .ldo = P, .rowmajor_x = 1};
	wsplit_run(pool, &j);
}

void lvd_conv2d_naive(float *out, const float *inp, const float *w, const float *b,
		      int C, int H, int W, int OC, int KH, int KW, int stride,
		      int pad_t, int pad_l, int pad_b, int pad_r)
{
	int OH = lvd_conv_out_size(H, KH, stride, pad_t, pad_b);
	int OW = lvd_conv_out_size(W, KW, stride, pad_l, pad_r);
	for (int o = 0; o < OC; o++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				double s = b ? b[o] : 0.0;
				for (int c = 0; c < C; c++)
					for (int kh = 0; kh < KH; kh++)
						for (int kw = 0; kw < KW; kw++) {
							int ih = oh * stride - pad_t + kh, iw = ow * stride - pad_l + kw;
							if (ih < 0 || ih >= H || iw < 0 || iw >= W)
								continue;
							s += (double)w[((size_t)(o * C + c) * KH + kh) * KW + kw] *
							     inp[((size_t)c * H + ih) * W + iw];
						}
				out[((size_t)o * OH + oh) * OW + ow] = (float)s;
			}
}

void lvd_silu(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = silu1(inp[i]);
}

static inline float gelu1(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

void lvd_gelu(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = gelu1(inp[i]);
}

void lvd_quick_gelu(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] / (1.0f + expf(-1.702f * inp[i]));
}

#if LVD_OPS_X86
static inline __m256 exp_neg_avx2(__m256 x);

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
					 exp_neg_avx2(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z)));
	__m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
	__m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, neg);
	return _mm256_mul_ps(x, phi);
}

__attribute__((target("avx2,fma"))) static void geglu_row_avx2(float *y, const float *a, const float *g, int F)
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
static int have_avx2(void);
#endif

void lvd_geglu_fwd(float *out, const float *inp, int N, int F)
{
#if LVD_OPS_X86
	if (have_avx2()) {
		for (int n = 0; n < N; n++)
			geglu_row_avx2(out + (size_t)n * F, inp + (size_t)n * 2 * F, inp + (size_t)n * 2 * F + F, F);
		return;
	}
#endif
	for (int n = 0; n < N; n++) {
		const float *a = inp + (size_t)n * 2 * F, *g = a + F;
		float *y = out + (size_t)n * F;
		for (int f = 0; f < F; f++)
			y[f] = a[f] * gelu1(g[f]);
	}
}

static void softmax_row_scalar(float *r, int M)
{
	float mx = -INFINITY;
	for (int j = 0; j < M; j++)
		mx = r[j] > mx ? r[j] : mx;
	float s = 0.0f;
	for (int j = 0; j < M; j++) {
		r[j] = expf(r[j] - mx);
		s += r[j];
	}
	float inv = 1.0f / s;
	for (int j = 0; j < M; j++)
		r[j] *= inv;
}

#if LVD_OPS_X86
/* exp(x) for x <= 0 (8 lanes): Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, and the
 * Cephes expf polynomial (about 1 ulp); x < -87 (including -inf) gives exactly 0. */
__attribute__((target("avx2,fma"))) static inline __m256 exp_neg_avx2(__m256 x)
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
 * same exp. */
__attribute__((target("avx2,fma"))) static void softmax_row_avx2(float *r, int M)
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
	if (m == -INFINITY) {   /* fully masked row: same NaNs as the scalar path */
		softmax_row_scalar(r, M);
		return;
	}
	__m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
	for (int j = 0; j < M8; j += 8) {
		__m256 e = exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(r + j), vm));
		_mm256_storeu_ps(r + j, e);
		acc = _mm256_add_ps(acc, e);
	}
	if (rem) {
		__m256 x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(r + M8, tail), _mm256_castsi256_ps(tail));
		__m256 e = exp_neg_avx2(_mm256_sub_ps(x, vm));
		_mm256_maskstore_ps(r + M8, tail, e);
		acc = _mm256_add_ps(acc, e);
	}
	__m256 inv = _mm256_set1_ps(1.0f / hsum256(acc));
	for (int j = 0; j < M8; j += 8)
		_mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), inv));
	if (rem)
		_mm256_maskstore_ps(r + M8, tail, _mm256_mul_ps(_mm256_maskload_ps(r + M8, tail), inv));
}

static int have_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

void lvd_softmax_rows(float *x, int N, int M)
{
#if LVD_OPS_X86
	if (have_avx2()) {
		for (int n = 0; n < N; n++)
			softmax_row_avx2(x + (size_t)n * M, M);
		return;
	}
#endif
	for (int n = 0; n < N; n++)
		softmax_row_scalar(x + (size_t)n * M, M);
}

#define ATTN_BLOCK_ROWS 128
#define ATTN_BLOCK_FLOATS ((size_t)4 << 20)

size_t lvd_attention_scratch(int Sq, int Sk)
{
	size_t rows = ATTN_BLOCK_ROWS;
	if (rows * (size_t)Sk > ATTN_BLOCK_FLOATS)
		rows = ATTN_BLOCK_FLOATS / (size_t)Sk;
	if (rows < 1)
		rows = 1;
	if (rows > (size_t)Sq)
		rows = (size_t)Sq;
	return rows * (size_t)Sk;
}

size_t lvd_attention_scratch_mt(int Sq, int Sk, int T)
{
	if (T < 1)
		T = 1;
	return (size_t)T * lvd_attention_scratch(Sq, Sk);
}

struct attn_job {
	float *out, *probs_mean, *scratch;
	const float *q, *k, *v;
	int ldq, ldk, ldv, Sq, Sk, H, D, causal, bq;
	size_t per_thread;
	float scale;
};

/* Query blocks [begin, end) of bq rows, every head of a block in head order (so the
 * head average is accumulated in one fixed order whatever the thread count). */
static int attn_blocks(void *ctx, size_t begin, size_t end, int tid)
{
	const struct attn_job *j = ctx;
	int Sk = j->Sk, D = j->D, HD = j->H * j->D;
	float invH = 1.0f / (float)j->H;
	float *S = j->scratch + (size_t)tid * j->per_thread;
	for (size_t blk = begin; blk < end; blk++) {
		int i0 = (int)blk * j->bq;
		int r = j->Sq - i0 < j->bq ? j->Sq - i0 : j->bq;
		for (int h = 0; h < j->H; h++) {
			lvd_sgemm(0, 1, r, Sk, D, j->scale, j->q + (size_t)i0 * j->ldq + (size_t)h * D, j->ldq,
				  j->k + (size_t)h * D, j->ldk, 0.0f, S, Sk);
			if (j->causal)
				for (int i = 0; i < r; i++)
					for (int c = i0 + i + 1; c < Sk; c++)
						S[(size_t)i * Sk + c] = -INFINITY;
			lvd_softmax_rows(S, r, Sk);
			if (j->probs_mean) {
				float *pm = j->probs_mean + (size_t)i0 * Sk;
				size_t n = (size_t)r * Sk;
				if (h == 0)
					for (size_t c = 0; c < n; c++)
						pm[c] = S[c] * invH;
				else
					for (size_t c = 0; c < n; c++)
						pm[c] += S[c] * invH;
			}
			lvd_sgemm(0, 0, r, D, Sk, 1.0f, S, Sk, j->v + (size_t)h * D, j->ldv, 0.0f,
				  j->out + (size_t)i0 * HD + (size_t)h * D, HD);
		}
	}
	return 0;
}

void lvd_attention_fwd_mt(float *out, float *probs_mean, const float *q, int ldq,
			  const float *k, int ldk, const float *v, int ldv,
			  int Sq, int Sk, int H, int D, float scale, int causal,
			  float *scratch, size_t scratch_len, struct lvd_pool *pool)
{
	LVD_ASSERT(!causal || Sq == Sk);
	int T = lvd_pool_threads(pool);
	size_t per = scratch_len / (size_t)T;
	LVD_ASSERT(scratch && per >= (size_t)Sk);
	int bq = (int)(per / (size_t)Sk);
	int fair = (Sq + T - 1) / T;   /* at least T blocks when the rows allow it */
	if (bq > fair)
		bq = fair;
	struct attn_job j = {
		.out = out, .probs_mean = probs_mean, .scratch = scratch, .q = q, .k = k, .v = v,
		.ldq = ldq, .ldk = ldk, .ldv = ldv, .Sq = Sq, .Sk = Sk, .H = H, .D = D,
		.causal = causal, .bq = bq, .per_thread = per, .scale = scale,
	};
	size_t nblk = (size_t)((Sq + bq - 1) / bq);
	if (T == 1 || nblk == 1) {
		attn_blocks(&j, 0, nblk, 0);
		return;
	}
	/* one GEMM thread per pool thread: OpenBLAS's own threads would oversubscribe */
	int prev = lvd_gemm_set_threads(1);
	lvd_pool_parallel_for(pool, nblk, attn_blocks, &j);
	lvd_gemm_set_threads(prev);
}

void lvd_attention_fwd(float *out, float *probs_mean, const float *q, int ldq,
		       const float *k, int ldk, const float *v, int ldv,
		       int Sq, int Sk, int H, int D, float scale, int causal,
		       float *scratch, size_t scratch_len)
{
	lvd_attention_fwd_mt(out, probs_mean, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal,
			     scratch, scratch_len, NULL);
}

void lvd_attention_naive(float *out, float *probs_mean, const float *q, int ldq,
			 const float *k, int ldk, const float *v, int ldv,
			 int Sq, int Sk, int H, int D, float scale, int causal)
{
	int HD = H * D;
	if (probs_mean)
		memset(probs_mean, 0, sizeof(float) * (size_t)Sq * Sk);
	for (int h = 0; h < H; h++)
		for (int i = 0; i < Sq; i++) {
			double mx = -INFINITY, s = 0;
			int n = causal ? i + 1 : Sk;
			double p[n > 0 ? n : 1];
			for (int j = 0; j < n; j++) {
				double d = 0;
				for (int e = 0; e < D; e++)
					d += (double)q[(size_t)i * ldq + h * D + e] * k[(size_t)j * ldk + h * D + e];
				p[j] = d * scale;
				mx = p[j] > mx ? p[j] : mx;
			}
			for (int j = 0; j < n; j++) {
				p[j] = exp(p[j] - mx);
				s += p[j];
			}
			for (int j = 0; j < n; j++) {
				p[j] /= s;
				if (probs_mean)
					probs_mean[(size_t)i * Sk + j] += (float)(p[j] / H);
			}
			for (int e = 0; e < D; e++) {
				double o = 0;
				for (int j = 0; j < n; j++)
					o += p[j] * v[(size_t)j * ldv + h * D + e];
				out[(size_t)i * HD + h * D + e] = (float)o;
			}
		}
}

void lvd_upsample_nearest2x(float *out, const float *inp, int C, int H, int W)
{
	int W2 = 2 * W;
	for (int c = 0; c < C; c++)
		for (int y = 0; y < H; y++) {
			const float *s = inp + ((size_t)c * H + y) * W;
			float *d = out + ((size_t)c * 2 * H + 2 * y) * W2;
			for (int x = 0; x < W; x++)
				d[2 * x] = d[2 * x + 1] = s[x];
			memcpy(d + W2, d, sizeof(float) * W2);
		}
}

void lvd_timestep_embedding(float *out, float t, int dim, int flip_sin_to_cos,
			    float freq_shift, float max_period)
{
	LVD_ASSERT(dim > 0 && dim % 2 == 0);
	int half = dim / 2;
	float lmp = logf(max_period);
	for (int i = 0; i < half; i++) {
		/* PyTorch: exponent = -log(max_period) * arange(half) / (half - shift); exp; t * f */
		float e = -lmp * (float)i;
		e = e / ((float)half - freq_shift);
		float a = t * expf(e);
		float s = sinf(a), c = cosf(a);
		if (flip_sin_to_cos) {
			out[i] = c;
			out[half + i] = s;
		} else {
			out[i] = s;
			out[half + i] = c;
		}
	}
}

void lvd_transpose(float *out, const float *inp, int R, int C)
{
	enum { TB = 32 };
	for (int r0 = 0; r0 < R; r0 += TB)
		for (int c0 = 0; c0 < C; c0 += TB) {
			int r1 = r0 + TB < R ? r0 + TB : R, c1 = c0 + TB < C ? c0 + TB : C;
			for (int r = r0; r < r1; r++)
				for (int c = c0; c < c1; c++)
					out[(size_t)c * R + r] = inp[(size_t)r * C + c];
		}
}

void lvd_add_inplace(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += x[i];
}

void lvd_add_bias_rows(float *y, const float *b, int N, int C)
{
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			y[(size_t)n * C + c] += b[c];
}

void lvd_add_bias_chan(float *y, const float *b, int C, int HW)
{
	for (int c = 0; c < C; c++) {
		float bc = b[c];
		float *r = y + (size_t)c * HW;
		for (int p = 0; p < HW; p++)
			r[p] += bc;
	}
}
