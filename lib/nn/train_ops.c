/* lib/nn/train_ops.c — CPU fp32 training ops (see train_ops.h). Reductions run in
 * double where a row is summed, so results do not drift with width. */
#include "nn/train_ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/pool.h"
#include "nn/gemm.h"

/* Hot elementwise loops are written without libm calls so the compiler vectorises them;
 * on x86-64 with GCC they are also built for AVX2+FMA and AVX-512 and picked at load
 * time (ifunc), since the default build targets x86-64-v2. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VEC_CLONES \
	__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define VEC_CLONES
#endif

/* e^x, relative error < 2e-7 (Cody-Waite reduction, degree-6 Taylor polynomial on
 * |r| <= ln2/2); exactly 0 below -87.33 (masked scores stay 0), +inf above 88.72. */
static inline float vexpf(float x)
{
	float xc = x < -87.33f ? -87.33f : x > 88.72f ? 88.72f : x;
	float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
	float r = xc - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
	float p = 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	union { int32_t i; float f; } sc = { .i = ((int32_t)n + 127) << 23 };
	float y = p * sc.f;
	y = x < -87.33f ? 0.0f : y;
	return x > 88.72f ? INFINITY : y;
}

/* Φ(x) = ½ erfc(−x/√2) with Numerical Recipes' erfc (fractional error < 1.2e-7 on the
 * whole line, so the far negative tail of GELU stays relatively accurate). */
static inline float vnormcdf(float x)
{
	float z = x * -(float)M_SQRT1_2, az = z < 0 ? -z : z;
	float t = 1.0f / (1.0f + 0.5f * az);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	float e = t * vexpf(-az * az + p); /* erfc(|z|) */
	float c = z >= 0 ? e : 2.0f - e;   /* erfc(z) */
	return 0.5f * c;
}

void lvd_tr_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C;
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = (float)(1.0 / sqrt(ss / C + eps));
		rstd[n] = r;
		for (int c = 0; c < C; c++)
			o[c] = w[c] * (x[c] * r);
	}
}

void lvd_tr_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
			const float *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
		float r = rstd[n];
		double dot = 0;
		for (int c = 0; c < C; c++) {
			dot += (double)dy[c] * w[c] * x[c];
			if (dw)
				dw[c] += dy[c] * x[c] * r;
		}
		if (!dinp)
			continue;
		float k = (float)(dot * r * r * r / C);
		float *dx = dinp + (size_t)n * C;
		for (int c = 0; c < C; c++)
			dx[c] += dy[c] * w[c] * r - k * x[c];
	}
}

void lvd_tr_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w,
			  const float *b, int N, int C, float eps)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C;
		double s = 0, ss = 0;
		for (int c = 0; c < C; c++)
			s += x[c];
		double mu = s / C;
		for (int c = 0; c < C; c++)
			ss += (x[c] - mu) * (x[c] - mu);
		float r = (float)(1.0 / sqrt(ss / C + eps));
		float m = (float)mu;
		mean[n] = m;
		rstd[n] = r;
		for (int c = 0; c < C; c++)
			o[c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0f);
	}
}

void lvd_tr_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
			  const float *w, const float *mean, const float *rstd, int N, int C)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
		float m = mean[n], r = rstd[n];
		double sg = 0, sgx = 0;
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * r;
			float g = dy[c] * w[c];
			sg += g;
			sgx += (double)g * xh;
			if (dw)
				dw[c] += dy[c] * xh;
			if (db)
				db[c] += dy[c];
		}
		if (!dinp)
			continue;
		float a = (float)(sg / C), bb = (float)(sgx / C);
		float *dx = dinp + (size_t)n * C;
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * r;
			dx[c] += r * (dy[c] * w[c] - a - xh * bb);
		}
	}
}

VEC_CLONES void lvd_tr_gelu_fwd(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] * vnormcdf(inp[i]);
}

VEC_CLONES void lvd_tr_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n)
{
	const float k = (float)(1.0 / sqrt(2.0 * M_PI));
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float pdf = k * vexpf(-0.5f * x * x);
		dinp[i] += dout[i] * (vnormcdf(x) + x * pdf);
	}
}

void lvd_tr_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void lvd_tr_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		float s = 1.0f / (1.0f + expf(-g));
		if (dup)
			dup[i] += dout[i] * g * s;
		if (dgate)
			dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
	}
}

double lvd_tr_dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

void lvd_tr_axpy(float *y, float a, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

void lvd_tr_rope_freqs(float *inv_freq, int D, double theta, int llama3, double factor,
		       double low_freq_factor, double high_freq_factor, double orig_max_pos)
{
	for (int i = 0; i < D / 2; i++) {
		/* HF computes base ** (2i/D) in fp32 then the reciprocal */
		float e = (float)(2 * i) / (float)D;
		float f = 1.0f / powf((float)theta, e);
		if (llama3) {
			double low_wl = orig_max_pos / low_freq_factor, high_wl = orig_max_pos / high_freq_factor;
			double wl = 2.0 * M_PI / f;
			double g = f;
			if (wl > low_wl)
				g = f / factor;
			else if (!(wl < high_wl)) {
				double s = (orig_max_pos / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
				g = (1.0 - s) * f / factor + s * f;
			}
			f = (float)g;
		}
		inv_freq[i] = f;
	}
}

void lvd_tr_rope_apply(float *x, const int *pos, const float *inv_freq, int B, int T, int H, int D, int inverse)
{
	int half = D / 2;
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < half; i++) {
			float ang = (float)pos[t] * inv_freq[i];
			float c = cosf(ang), s = sinf(ang);
			if (inverse)
				s = -s;
			for (int b = 0; b < B; b++)
				for (int h = 0; h < H; h++) {
					float *v = x + (((size_t)b * T + t) * H + h) * D;
					float x1 = v[i], x2 = v[i + half];
					v[i] = x1 * c - x2 * s;
					v[i + half] = x2 * c + x1 * s;
				}
		}
	}
}

void lvd_tr_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
			  const struct lvd_tr_attn_mask *mask, float scale, int B, int Tq, int Tk,
			  int H, int KH, int D)
{
	LVD_ASSERT(H % KH == 0);
	LVD_ASSERT(mask == NULL || mask->kind != LVD_TR_MASK_CAUSAL || Tq == Tk);
	enum lvd_tr_mask kind = mask ? mask->kind : LVD_TR_MASK_NONE;
	int rep = H / KH;
	size_t qs = (size_t)H * D, ks = (size_t)KH * D;
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			const float *qh = q + (size_t)b * Tq * qs + (size_t)h * D;
			const float *kh = k + (size_t)b * Tk * ks + (size_t)(h / rep) * D;
			const float *vh = v + (size_t)b * Tk * ks + (size_t)(h / rep) * D;
			float *P = probs + ((size_t)b * H + h) * Tq * Tk;
			lvd_sgemm(0, 1, Tq, Tk, D, scale, qh, (int)qs, kh, (int)ks, 0.0f, P, Tk);
			for (int i = 0; i < Tq; i++) {
				float *row = P + (size_t)i * Tk;
				if (kind == LVD_TR_MASK_BIAS) {
					const float *br = mask->bias + ((size_t)b * Tq + i) * Tk;
					for (int j = 0; j < Tk; j++)
						row[j] += br[j];
				}
				/* keys [0, jend) are candidates; with a pad-pair mask a pad query
				 * skips pad keys */
				int jend = kind == LVD_TR_MASK_CAUSAL ? i + 1 : Tk;
				const uint8_t *kpad = (kind == LVD_TR_MASK_PADPAIR && mask->pad[(size_t)b * Tq + i])
							      ? mask->pad + (size_t)b * Tk : NULL;
				float mx = -INFINITY;
				double sum = 0; /* double: keeps gate gradients (long reductions) near 1e-5 */
				if (!kpad) {
					/* branch-free loops */
					for (int j = 0; j < jend; j++)
						mx = row[j] > mx ? row[j] : mx;
					for (int j = 0; j < jend; j++) {
						row[j] = expf(row[j] - mx);
						sum += row[j];
					}
				} else {
					for (int j = 0; j < jend; j++)
						if (!kpad[j] && row[j] > mx)
							mx = row[j];
					for (int j = 0; j < jend; j++) {
						row[j] = kpad[j] ? 0.0f : expf(row[j] - mx);
						sum += row[j];
					}
				}
				for (int j = jend; j < Tk; j++)
					row[j] = 0.0f;
				float inv = (float)(1.0 / sum);
				for (int j = 0; j < jend; j++)
					row[j] *= inv;
			}
			lvd_sgemm(0, 0, Tq, D, Tk, 1.0f, P, Tk, vh, (int)ks, 0.0f,
				  out + (size_t)b * Tq * qs + (size_t)h * D, (int)qs);
		}
}

void lvd_tr_attention_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
			  const float *dprobs_extra, const float *probs, const float *q, const float *k,
			  const float *v, float scale, int B, int Tq, int Tk, int H, int KH, int D)
{
	int rep = H / KH;
	size_t qs = (size_t)H * D, ks = (size_t)KH * D;
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			size_t qo = (size_t)b * Tq * qs + (size_t)h * D;
			size_t ko = (size_t)b * Tk * ks + (size_t)(h / rep) * D;
			const float *P = probs + ((size_t)b * H + h) * Tq * Tk;
			float *dP = scratch;
			lvd_sgemm(0, 1, Tq, Tk, D, 1.0f, dout + qo, (int)qs, v + ko, (int)ks, 0.0f, dP, Tk);
			if (dprobs_extra) {
				const float *e = dprobs_extra + ((size_t)b * H + h) * Tq * Tk;
				for (size_t i = 0; i < (size_t)Tq * Tk; i++)
					dP[i] += e[i];
			}
			if (dv)
				lvd_sgemm(1, 0, Tk, D, Tq, 1.0f, P, Tk, dout + qo, (int)qs, 1.0f, dv + ko, (int)ks);
			for (int i = 0; i < Tq; i++) {
				const float *pr = P + (size_t)i * Tk;
				float *dr = dP + (size_t)i * Tk;
				double ds = 0; /* double: this row sum cancels, and feeds gate gradients */
				for (int j = 0; j < Tk; j++)
					ds += (double)pr[j] * dr[j];
				float fs = (float)ds;
				for (int j = 0; j < Tk; j++)
					dr[j] = pr[j] * (dr[j] - fs);
			}
			if (dq)
				lvd_sgemm(0, 0, Tq, D, Tk, scale, dP, Tk, k + ko, (int)ks, 1.0f, dq + qo, (int)qs);
			if (dk)
				lvd_sgemm(1, 0, Tk, D, Tq, scale, dP, Tk, q + qo, (int)qs, 1.0f, dk + ko, (int)ks);
		}
}

double lvd_tr_xent_fwd(int *count, const float *logits, const int *targets, int N, int V)
{
	double total = 0;
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		LVD_ASSERT(targets[n] >= 0 && targets[n] < V);
		const float *l = logits + (size_t)n * V;
		float mx = l[0];
		for (int j = 1; j < V; j++)
			if (l[j] > mx)
				mx = l[j];
		double s = 0;
		for (int j = 0; j < V; j++)
			s += exp((double)l[j] - mx);
		total += log(s) + mx - l[targets[n]];
		cnt++;
	}
	*count = cnt;
	return total;
}

void lvd_tr_xent_bwd(float *dlogits, const float *logits, const int *targets, float scale, int N, int V)
{
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		const float *l = logits + (size_t)n * V;
		float *d = dlogits + (size_t)n * V;
		float mx = l[0];
		for (int j = 1; j < V; j++)
			if (l[j] > mx)
				mx = l[j];
		double s = 0;
		for (int j = 0; j < V; j++)
			s += exp((double)l[j] - mx);
		double inv = 1.0 / s;
		for (int j = 0; j < V; j++)
			d[j] += scale * (float)(exp((double)l[j] - mx) * inv);
		d[targets[n]] -= scale;
	}
}

void lvd_tr_embedding_fwd(float *out, const int *ids, const float *table, int N, int C)
{
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * C);
}

void lvd_tr_embedding_bwd(float *dtable, const float *dout, const int *ids, int N, int C)
{
	for (int n = 0; n < N; n++)
		lvd_tr_axpy(dtable + (size_t)ids[n] * C, 1.0f, dout + (size_t)n * C, C);
}

void lvd_tr_patch_unfold(float *cols, const float *img, int C, int H, int W, int P)
{
	int gh = H / P, gw = W / P;
	size_t K = (size_t)C * P * P;
	for (int py = 0; py < gh; py++)
		for (int px = 0; px < gw; px++) {
			float *o = cols + ((size_t)py * gw + px) * K;
			for (int c = 0; c < C; c++)
				for (int ky = 0; ky < P; ky++) {
					const float *src = img + ((size_t)c * H + py * P + ky) * W + px * P;
					memcpy(o + ((size_t)c * P + ky) * P, src, sizeof(float) * P);
				}
		}
}

/* ---- pad-pair attention in block form ------------------------------------------------ */

/* row[j] = e^(row[j] − mx) */
VEC_CLONES static void exp_shift(float *row, int n, float mx)
{
	for (int j = 0; j < n; j++)
		row[j] = vexpf(row[j] - mx);
}

/* softmax over a fully visible row, in place (sum in double as lvd_tr_attention_fwd) */
static void softmax_row(float *row, int n)
{
	float mx = -INFINITY;
	for (int j = 0; j < n; j++)
		mx = row[j] > mx ? row[j] : mx;
	exp_shift(row, n, mx);
	double sum = 0;
	for (int j = 0; j < n; j++)
		sum += row[j];
	float inv = (float)(1.0 / sum);
	for (int j = 0; j < n; j++)
		row[j] *= inv;
}

/* dP ← P ⊙ (dP − rowsum(P ⊙ dP)) for rows×n */
static void softmax_bwd_rows(float *dP, const float *P, int rows, int n)
{
	for (int i = 0; i < rows; i++) {
		const float *pr = P + (size_t)i * n;
		float *dr = dP + (size_t)i * n;
		double ds = 0;
		for (int j = 0; j < n; j++)
			ds += (double)pr[j] * dr[j];
		float fs = (float)ds;
		for (int j = 0; j < n; j++)
			dr[j] = pr[j] * (dr[j] - fs);
	}
}

/* real tokens first, then pads (both in token order); returns R */
static int pp_perm(int *perm, const uint8_t *pad, int T)
{
	int r = 0;
	for (int t = 0; t < T; t++)
		if (!pad[t])
			perm[r++] = t;
	int R = r;
	for (int t = 0; t < T; t++)
		if (pad[t])
			perm[r++] = t;
	return R;
}

static void pp_gather(float *dst, const float *src, const int *perm, int T, size_t w)
{
	for (int i = 0; i < T; i++)
		memcpy(dst + (size_t)i * w, src + (size_t)perm[i] * w, w * sizeof(float));
}

size_t lvd_tr_attention_pp_scratch(int T, int H, int D, int threads)
{
	return (size_t)7 * T * H * D + (size_t)(threads < 1 ? 1 : threads) * T * T + (size_t)T;
}

struct pp_job {
	float *probs, *qg, *kg, *vg, *og, *dqg, *dkg, *dvg, *dP;
	int b, T, R, H, D;
	float sc;
};

static int pp_fwd_heads(void *ctx, size_t h0, size_t h1, int tid)
{
	const struct pp_job *j = ctx;
	int T = j->T, R = j->R, D = j->D;
	size_t W = (size_t)j->H * D;
	(void)tid;
	for (size_t h = h0; h < h1; h++) {
		float *P = j->probs + ((size_t)j->b * j->H + h) * T * T;
		const float *qh = j->qg + h * D, *kh = j->kg + h * D, *vh = j->vg + h * D;
		lvd_sgemm(0, 1, R, T, D, j->sc, qh, (int)W, kh, (int)W, 0.0f, P, T);
		for (int i = 0; i < R; i++)
			softmax_row(P + (size_t)i * T, T);
		lvd_sgemm(0, 0, R, D, T, 1.0f, P, T, vh, (int)W, 0.0f, j->og + h * D, (int)W);
		if (R == T)
			continue;
		float *P2 = P + (size_t)R * T;
		lvd_sgemm(0, 1, T - R, R, D, j->sc, qh + R * W, (int)W, kh, (int)W, 0.0f, P2, R);
		for (int i = 0; i < T - R; i++)
			softmax_row(P2 + (size_t)i * R, R);
		lvd_sgemm(0, 0, T - R, D, R, 1.0f, P2, R, vh, (int)W, 0.0f, j->og + R * W + h * D, (int)W);
	}
	return 0;
}

static int pp_bwd_heads(void *ctx, size_t h0, size_t h1, int tid)
{
	const struct pp_job *j = ctx;
	int T = j->T, R = j->R, D = j->D, Wi = j->H * D;
	size_t W = (size_t)Wi;
	float *dP = j->dP + (size_t)tid * T * T, sc = j->sc;
	for (size_t h = h0; h < h1; h++) {
		const float *P = j->probs + ((size_t)j->b * j->H + h) * T * T;
		const float *qh = j->qg + h * D, *kh = j->kg + h * D, *vh = j->vg + h * D, *doh = j->og + h * D;
		float *dqh = j->dqg + h * D, *dkh = j->dkg + h * D, *dvh = j->dvg + h * D;
		/* real queries × all keys (first writers: beta 0) */
		lvd_sgemm(0, 1, R, T, D, 1.0f, doh, Wi, vh, Wi, 0.0f, dP, T);
		lvd_sgemm(1, 0, T, D, R, 1.0f, P, T, doh, Wi, 0.0f, dvh, Wi);
		softmax_bwd_rows(dP, P, R, T);
		lvd_sgemm(0, 0, R, D, T, sc, dP, T, kh, Wi, 0.0f, dqh, Wi);
		lvd_sgemm(1, 0, T, D, R, sc, dP, T, qh, Wi, 0.0f, dkh, Wi);
		if (R == T)
			continue;
		/* pad queries × real keys */
		const float *P2 = P + (size_t)R * T, *do2 = doh + R * W, *q2 = qh + R * W;
		lvd_sgemm(0, 1, T - R, R, D, 1.0f, do2, Wi, vh, Wi, 0.0f, dP, R);
		lvd_sgemm(1, 0, R, D, T - R, 1.0f, P2, R, do2, Wi, 1.0f, dvh, Wi);
		softmax_bwd_rows(dP, P2, T - R, R);
		lvd_sgemm(0, 0, T - R, D, R, sc, dP, R, kh, Wi, 0.0f, dqh + R * W, Wi);
		lvd_sgemm(1, 0, R, D, T - R, sc, dP, R, q2, Wi, 1.0f, dkh, Wi);
	}
	return 0;
}

/* heads in parallel, each with single-threaded GEMMs */
static void pp_run(struct lvd_pool *pool, int H, lvd_pool_fn fn, struct pp_job *j)
{
	int T = lvd_pool_threads(pool);
	int prev = T > 1 ? lvd_gemm_set_threads(1) : 0;
	int rc = lvd_pool_parallel_for(pool, (size_t)H, fn, j);
	LVD_ASSERT(rc == 0);
	if (T > 1)
		lvd_gemm_set_threads(prev);
}

void lvd_tr_attention_pp_fwd(float *out, float *probs, float *scratch, const float *q, const float *k,
			     const float *v, const uint8_t *pad, float scale, int B, int T, int H, int D,
			     struct lvd_pool *pool)
{
	size_t W = (size_t)H * D, TW = (size_t)T * W;
	struct pp_job j = { .probs = probs, .qg = scratch, .T = T, .H = H, .D = D };
	j.kg = j.qg + TW, j.vg = j.kg + TW, j.og = j.vg + TW;
	int *perm = (int *)(scratch + 7 * TW + (size_t)lvd_pool_threads(pool) * T * T);
	for (int b = 0; b < B; b++) {
		int R = pp_perm(perm, pad + (size_t)b * T, T);
		j.b = b;
		j.sc = scale;
		if (R == 0) { /* nothing visible: HF's min-float mask gives uniform rows */
			R = T;
			j.sc = 0.0f;
		}
		j.R = R;
		pp_gather(j.qg, q + b * TW, perm, T, W);
		pp_gather(j.kg, k + b * TW, perm, T, W);
		pp_gather(j.vg, v + b * TW, perm, T, W);
		pp_run(pool, H, pp_fwd_heads, &j);
		for (int i = 0; i < T; i++)
			memcpy(out + b * TW + (size_t)perm[i] * W, j.og + (size_t)i * W, W * sizeof(float));
	}
}

void lvd_tr_attention_pp_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
			     const float *probs, const float *q, const float *k, const float *v,
			     const uint8_t *pad, float scale, int B, int T, int H, int D, struct lvd_pool *pool)
{
	size_t W = (size_t)H * D, TW = (size_t)T * W;
	struct pp_job j = { .probs = (float *)(uintptr_t)probs, .qg = scratch, .T = T, .H = H, .D = D };
	j.kg = j.qg + TW, j.vg = j.kg + TW, j.og = j.vg + TW, j.dqg = j.og + TW, j.dkg = j.dqg + TW;
	j.dvg = j.dkg + TW, j.dP = j.dvg + TW;
	int *perm = (int *)(scratch + 7 * TW + (size_t)lvd_pool_threads(pool) * T * T);
	for (int b = 0; b < B; b++) {
		int R = pp_perm(perm, pad + (size_t)b * T, T);
		j.b = b;
		j.sc = scale;
		if (R == 0) {
			R = T;
			j.sc = 0.0f;
		}
		j.R = R;
		pp_gather(j.qg, q + b * TW, perm, T, W);
		pp_gather(j.kg, k + b * TW, perm, T, W);
		pp_gather(j.vg, v + b * TW, perm, T, W);
		pp_gather(j.og, dout + b * TW, perm, T, W); /* og holds the gathered dout here */
		pp_run(pool, H, pp_bwd_heads, &j);
		for (int i = 0; i < T; i++) {
			size_t o = b * TW + (size_t)perm[i] * W, g = (size_t)i * W;
			lvd_tr_axpy(dq + o, 1.0f, j.dqg + g, W);
			lvd_tr_axpy(dk + o, 1.0f, j.dkg + g, W);
			lvd_tr_axpy(dv + o, 1.0f, j.dvg + g, W);
		}
	}
}
