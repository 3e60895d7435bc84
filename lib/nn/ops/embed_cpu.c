/* lib/nn/ops/embed_cpu.c — CPU embeddings, patch unfold, RoPE, timestep embedding
 * (contract in embed.h). */
#include "nn/ops/embed.h"

#include <math.h>
#include <string.h>

void lvd_embedding_fwd_cpu(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_embedding_fwd");
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * C);
}

void lvd_embedding_bwd_cpu(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_embedding_bwd");
	for (int n = 0; n < N; n++) {
		float *d = dtable + (size_t)ids[n] * C;
		const float *g = dout + (size_t)n * C;
		for (int c = 0; c < C; c++)
			d[c] += g[c];
	}
}

void lvd_patch_unfold_cpu(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_patch_unfold");
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

void lvd_rope_freqs_host(float *inv_freq, int D, double theta, int llama3, double factor, double low_freq_factor,
			 double high_freq_factor, double orig_max_pos)
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

void lvd_rope_freqs_cpu(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3, double factor,
			double low_freq_factor, double high_freq_factor, double orig_max_pos)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_rope_freqs");
	lvd_rope_freqs_host(inv_freq, D, theta, llama3, factor, low_freq_factor, high_freq_factor, orig_max_pos);
}

void lvd_rope_apply_cpu(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T, int H,
		    int D, int inverse)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_rope_apply");
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

void lvd_timestep_embedding_host(float *out, float t, int dim, int flip_sin_to_cos, float freq_shift,
				 float max_period)
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

void lvd_timestep_embedding_cpu(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
				float freq_shift, float max_period)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_timestep_embedding");
	lvd_timestep_embedding_host(out, t, dim, flip_sin_to_cos, freq_shift, max_period);
}
