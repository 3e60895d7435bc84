/* lib/nn/train_ops.c — CPU fp32 training ops (see train_ops.h). Reductions run in
 * double where a row is summed, so results do not drift with width. */
#include "nn/train_ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "nn/gemm.h"

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

void lvd_tr_gelu_fwd(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * (float)M_SQRT1_2));
}

void lvd_tr_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n)
{
	const float k = (float)(1.0 / sqrt(2.0 * M_PI));
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
		float pdf = k * expf(-0.5f * x * x);
		dinp[i] += dout[i] * (cdf + x * pdf);
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
