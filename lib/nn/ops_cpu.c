/* lib/nn/ops_cpu.c — CPU reference of the forward ops in ops.h. */
#include "nn/ops.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "nn/gemm.h"

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

static inline float silu1(float x) { return x / (1.0f + expf(-x)); }

void lvd_groupnorm_fwd(float *out, const float *inp, const float *w, const float *b,
		       int C, int HW, int G, float eps, int silu)
{
	LVD_ASSERT(G > 0 && C % G == 0);
	int cg = C / G;
	for (int g = 0; g < G; g++) {
		const float *x = inp + (size_t)g * cg * HW;
		size_t n = (size_t)cg * HW;
		double s = 0, ss = 0;
		for (size_t i = 0; i < n; i++)
			s += x[i];
		double m = s / (double)n;
		for (size_t i = 0; i < n; i++) {
			double d = x[i] - m;
			ss += d * d;
		}
		float r = (float)(1.0 / sqrt(ss / (double)n + eps));
		float mf = (float)m;
		for (int c = g * cg; c < (g + 1) * cg; c++) {
			const float *xc = inp + (size_t)c * HW;
			float *yc = out + (size_t)c * HW;
			float a = r * (w ? w[c] : 1.0f);
			float bb = (b ? b[c] : 0.0f) - mf * a;
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

void lvd_geglu_fwd(float *out, const float *inp, int N, int F)
{
	for (int n = 0; n < N; n++) {
		const float *a = inp + (size_t)n * 2 * F, *g = a + F;
		float *y = out + (size_t)n * F;
		for (int f = 0; f < F; f++)
			y[f] = a[f] * gelu1(g[f]);
	}
}

void lvd_softmax_rows(float *x, int N, int M)
{
	for (int n = 0; n < N; n++) {
		float *r = x + (size_t)n * M;
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

void lvd_attention_fwd(float *out, float *probs_mean, const float *q, int ldq,
		       const float *k, int ldk, const float *v, int ldv,
		       int Sq, int Sk, int H, int D, float scale, int causal,
		       float *scratch, size_t scratch_len)
{
	LVD_ASSERT(!causal || Sq == Sk);
	LVD_ASSERT(scratch && scratch_len >= (size_t)Sk);
	int HD = H * D;
	int bq = (int)(scratch_len / (size_t)Sk);
	if (bq > Sq)
		bq = Sq;
	float invH = 1.0f / (float)H;
	for (int i0 = 0; i0 < Sq; i0 += bq) {
		int r = Sq - i0 < bq ? Sq - i0 : bq;
		for (int h = 0; h < H; h++) {
			float *S = scratch;
			lvd_sgemm(0, 1, r, Sk, D, scale, q + (size_t)i0 * ldq + (size_t)h * D, ldq,
				  k + (size_t)h * D, ldk, 0.0f, S, Sk);
			if (causal)
				for (int i = 0; i < r; i++)
					for (int j = i0 + i + 1; j < Sk; j++)
						S[(size_t)i * Sk + j] = -INFINITY;
			lvd_softmax_rows(S, r, Sk);
			if (probs_mean) {
				float *pm = probs_mean + (size_t)i0 * Sk;
				size_t n = (size_t)r * Sk;
				if (h == 0)
					for (size_t j = 0; j < n; j++)
						pm[j] = S[j] * invH;
				else
					for (size_t j = 0; j < n; j++)
						pm[j] += S[j] * invH;
			}
			lvd_sgemm(0, 0, r, D, Sk, 1.0f, S, Sk, v + (size_t)h * D, ldv, 0.0f,
				  out + (size_t)i0 * HD + (size_t)h * D, HD);
		}
	}
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
