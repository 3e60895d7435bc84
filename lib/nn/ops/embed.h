/* lib/nn/ops/embed.h — embeddings and positions (family embed): token embedding rows
 * with backward, non-overlapping patch unfold, rotary embeddings (Llama/Llama-3 inverse
 * frequencies and their application), sinusoidal timestep embedding.
 *
 * CPU only for now: every op asserts a CPU context. Backwards ACCUMULATE. Nothing
 * allocates. Dimension letters: N rows, C channels, B batch, T length, H heads, D head dim,
 * P patch side. */
#ifndef LVD_NN_OPS_EMBED_H
#define LVD_NN_OPS_EMBED_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[N, C] = table[ids[n]]; ids are checked by the caller. */
void lvd_embedding_fwd(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N, int C);
/* dtable[ids[n]] += dout[n] (ACCUMULATES). */
void lvd_embedding_bwd(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N, int C);

/* Non-overlapping patch unfold (a Conv2d with kernel = stride = P, no padding) of
 * img [C, H, W] into cols [(H/P)·(W/P), C·P·P] in (c, kh, kw) order, patches row-major;
 * the conv is then lvd_linear_fwd(cols, W viewed [OC, C·P·P]). */
void lvd_patch_unfold(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P);

/* Rotary inverse frequencies inv_freq[D/2] as HF: 1 / theta^(2i/D) in fp32; llama3 != 0
 * applies Llama 3's wavelength-dependent scaling (factor, low/high_freq_factor,
 * orig_max_pos). */
void lvd_rope_freqs(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3, double factor,
		    double low_freq_factor, double high_freq_factor, double orig_max_pos);
/* In-place rotation (rotate_half form) of x [B, T, H, D] at positions pos[T]; inverse != 0
 * rotates backwards (the backward of the forward rotation). */
void lvd_rope_apply(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T, int H,
		    int D, int inverse);

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding): half = dim/2,
 * f_i = exp(-ln(max_period)·i/(half - freq_shift)), emb = [sin(t f), cos(t f)], or
 * [cos, sin] when flip_sin_to_cos. dim must be even (asserted). fp32, PyTorch's order. */
void lvd_timestep_embedding(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
			    float freq_shift, float max_period);

#ifdef __cplusplus
}
#endif
#endif
