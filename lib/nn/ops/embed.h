/* lib/nn/ops/embed.h — embeddings and positions (family embed): token embedding rows
 * with backward, non-overlapping patch unfold, rotary embeddings (Llama/Llama-3 inverse
 * frequencies and their application), sinusoidal timestep embedding.
 *
 * CPU functions lvd_<op>_cpu (embed_cpu.c, the oracle), CUDA twins lvd_<op>_cuda
 * (embed.cu: same arguments in device memory, ids and pos included), lvd_<op> picks by
 * ctx->backend. Backwards ACCUMULATE. Nothing allocates. Dimension letters: N rows,
 * C channels, B batch, T length, H heads, D head dim, P patch side. */
#ifndef LVD_NN_OPS_EMBED_H
#define LVD_NN_OPS_EMBED_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[N, C] = table[ids[n]]; ids are checked by the caller. */
void lvd_embedding_fwd_cpu(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N, int C);
/* dtable[ids[n]] += dout[n] (ACCUMULATES), rows n in order (the CUDA twin too: one thread
 * per channel walks n in order, so both agree bit for bit). */
void lvd_embedding_bwd_cpu(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N, int C);

/* Non-overlapping patch unfold (a Conv2d with kernel = stride = P, no padding) of
 * img [C, H, W] into cols [(H/P)·(W/P), C·P·P] in (c, kh, kw) order, patches row-major;
 * the conv is then lvd_linear_fwd(cols, W viewed [OC, C·P·P]). */
void lvd_patch_unfold_cpu(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P);

/* Rotary inverse frequencies inv_freq[D/2] as HF: 1 / theta^(2i/D) in fp32; llama3 != 0
 * applies Llama 3's wavelength-dependent scaling (factor, low/high_freq_factor,
 * orig_max_pos). _host: the same arithmetic into host memory without a context (the
 * CUDA twin computes on the host and uploads). */
void lvd_rope_freqs_host(float *inv_freq, int D, double theta, int llama3, double factor, double low_freq_factor,
			 double high_freq_factor, double orig_max_pos);
void lvd_rope_freqs_cpu(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3, double factor,
			double low_freq_factor, double high_freq_factor, double orig_max_pos);
/* In-place rotation (rotate_half form) of x [B, T, H, D] at positions pos[T]; inverse != 0
 * rotates backwards (the backward of the forward rotation). Angles pos·inv_freq in fp32,
 * cosf/sinf (CUDA's full-range sinf/cosf: within 2 ulp of glibc's). */
void lvd_rope_apply_cpu(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T, int H,
			int D, int inverse);

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding): half = dim/2,
 * f_i = exp(-ln(max_period)·i/(half - freq_shift)), emb = [sin(t f), cos(t f)], or
 * [cos, sin] when flip_sin_to_cos. dim must be even (asserted). fp32, PyTorch's order.
 * _host: into host memory without a context (the CUDA twin computes there, uploads). */
void lvd_timestep_embedding_host(float *out, float t, int dim, int flip_sin_to_cos, float freq_shift,
				 float max_period);
void lvd_timestep_embedding_cpu(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
				float freq_shift, float max_period);

#if LVD_HAVE_CUDA
void lvd_embedding_fwd_cuda(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N, int C);
void lvd_embedding_bwd_cuda(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N, int C);
void lvd_patch_unfold_cuda(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P);
void lvd_rope_freqs_cuda(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3, double factor,
			 double low_freq_factor, double high_freq_factor, double orig_max_pos);
void lvd_rope_apply_cuda(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T, int H,
			 int D, int inverse);
void lvd_timestep_embedding_cuda(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
				 float freq_shift, float max_period);
#define LVD_EMBED_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_EMBED_CUDA(call) do { } while (0)
#endif

static inline void lvd_embedding_fwd(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N,
				     int C)
{
	LVD_EMBED_CUDA(lvd_embedding_fwd_cuda(ctx, out, ids, table, N, C));
	lvd_embedding_fwd_cpu(ctx, out, ids, table, N, C);
}
static inline void lvd_embedding_bwd(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N,
				     int C)
{
	LVD_EMBED_CUDA(lvd_embedding_bwd_cuda(ctx, dtable, dout, ids, N, C));
	lvd_embedding_bwd_cpu(ctx, dtable, dout, ids, N, C);
}
static inline void lvd_patch_unfold(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P)
{
	LVD_EMBED_CUDA(lvd_patch_unfold_cuda(ctx, cols, img, C, H, W, P));
	lvd_patch_unfold_cpu(ctx, cols, img, C, H, W, P);
}
static inline void lvd_rope_freqs(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3,
				  double factor, double low_freq_factor, double high_freq_factor, double orig_max_pos)
{
	LVD_EMBED_CUDA(lvd_rope_freqs_cuda(ctx, inv_freq, D, theta, llama3, factor, low_freq_factor, high_freq_factor,
					   orig_max_pos));
	lvd_rope_freqs_cpu(ctx, inv_freq, D, theta, llama3, factor, low_freq_factor, high_freq_factor, orig_max_pos);
}
static inline void lvd_rope_apply(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T,
				  int H, int D, int inverse)
{
	LVD_EMBED_CUDA(lvd_rope_apply_cuda(ctx, x, pos, inv_freq, B, T, H, D, inverse));
	lvd_rope_apply_cpu(ctx, x, pos, inv_freq, B, T, H, D, inverse);
}
static inline void lvd_timestep_embedding(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
					  float freq_shift, float max_period)
{
	LVD_EMBED_CUDA(lvd_timestep_embedding_cuda(ctx, out, t, dim, flip_sin_to_cos, freq_shift, max_period));
	lvd_timestep_embedding_cpu(ctx, out, t, dim, flip_sin_to_cos, freq_shift, max_period);
}
#undef LVD_EMBED_CUDA

#ifdef __cplusplus
}
#endif
#endif
