/* lib/nn/train_ops.h — CPU fp32 layer ops with their backward passes, for training
 * (Llama-style decoders and ViT encoders: mllama first).
 *
 * Conventions (STYLE.md): outputs first, then saved-for-backward, then inputs, then
 * weights, then sizes. Nothing here allocates; scratch buffers are passed in. Every
 * backward ACCUMULATES (+=) into every gradient it writes (inputs and parameters), so
 * callers zero gradient buffers once and sum contributions of several branches for
 * free. Any gradient pointer may be NULL when it is not needed.
 *
 * Dimension letters: N rows (tokens), C channels, B batch, H query heads, KH key/value
 * heads, D head dim, Tq query length, Tk key length, V vocabulary, I intermediate. */
#ifndef LVD_NN_TRAIN_OPS_H
#define LVD_NN_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_pool; /* core/pool.h */

/* RMSNorm as Llama/HF: out = w * x * rsqrt(mean(x²) + eps). rstd[N] is saved. */
void lvd_tr_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
void lvd_tr_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
			const float *rstd, int N, int C);

/* LayerNorm with affine weight and bias (bias may be NULL); mean[N], rstd[N] saved. */
void lvd_tr_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w,
			  const float *b, int N, int C, float eps);
void lvd_tr_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
			  const float *w, const float *mean, const float *rstd, int N, int C);

/* GELU, exact erf form (torch "gelu"). */
void lvd_tr_gelu_fwd(float *out, const float *inp, size_t n);
void lvd_tr_gelu_bwd(float *dinp, const float *dout, const float *inp, size_t n);

/* SwiGLU gating: out = silu(gate) * up (elementwise, n values). */
void lvd_tr_swiglu_fwd(float *out, const float *gate, const float *up, size_t n);
void lvd_tr_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* out[i] += g * x[i] and its backward: dx += g * dout, returns Σ dout·x (the gate's
 * gradient is that times d tanh). */
double lvd_tr_dot(const float *a, const float *b, size_t n);
void lvd_tr_axpy(float *y, float a, const float *x, size_t n);

/* Rotary embedding frequencies. rope_type "default" or "llama3" (factor, low/high freq
 * factors, original max positions as HF's _compute_llama3_parameters). inv_freq[D/2]. */
void lvd_tr_rope_freqs(float *inv_freq, int D, double theta, int llama3, double factor,
		       double low_freq_factor, double high_freq_factor, double orig_max_pos);
/* In-place rotate-half RoPE on x[B, T, H, D] (token-major rows of H·D) at positions
 * pos[T] (same for every batch row). inverse = 1 applies the transpose rotation, which
 * is the backward of the forward rotation (use it on gradients). */
void lvd_tr_rope_apply(float *x, const int *pos, const float *inv_freq, int B, int T, int H, int D, int inverse);

/* Attention masks. */
enum lvd_tr_mask {
	LVD_TR_MASK_NONE,
	LVD_TR_MASK_CAUSAL,   /* key j visible to query i iff j <= i (Tq == Tk) */
	LVD_TR_MASK_PADPAIR,  /* pad[B, T] flags (uint8): masked iff query AND key are pads (mllama vision) */
	LVD_TR_MASK_BIAS,     /* bias[B, Tq, Tk] added to the scaled scores (HF additive mask) */
};
struct lvd_tr_attn_mask {
	enum lvd_tr_mask kind;
	const uint8_t *pad;   /* PADPAIR */
	const float *bias;    /* BIAS */
};

/* Softmax attention with grouped K/V heads (H % KH == 0; query head h uses kv head h/(H/KH)).
 *   q [B, Tq, H·D], k,v [B, Tk, KH·D] (row-major token-major, as the projections produce)
 *   probs [B, H, Tq, Tk] saved softmax(scale·q kᵀ + mask) (masked entries exactly 0)
 *   out [B, Tq, H·D] overwritten.
 * Backward: dq, dk, dv accumulate; dprobs_extra [B, H, Tq, Tk] (may be NULL) is added to
 * the gradient flowing into the probabilities (gradient injection for losses on the
 * attention maps); scratch [Tq·Tk] floats. */
void lvd_tr_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
			  const struct lvd_tr_attn_mask *mask, float scale, int B, int Tq, int Tk,
			  int H, int KH, int D);
void lvd_tr_attention_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
			  const float *dprobs_extra, const float *probs, const float *q, const float *k,
			  const float *v, float scale, int B, int Tq, int Tk, int H, int KH, int D);

/* Pad-pair attention (LVD_TR_MASK_PADPAIR, H = KH) computed in block form: per batch row
 * the T tokens split into R real ones (pad 0) and T − R pads; real queries see every key,
 * pad queries see the real keys only, so only those blocks are multiplied (R·T + (T−R)·R
 * scores instead of T²). Same results as lvd_tr_attention_fwd/bwd with that mask up to
 * summation order. A batch row without real tokens attends uniformly over all T keys (what
 * HF's min-float mask gives; its q/k gradients are 0).
 *   q, k, v, out [B, T, H·D]; pad [B, T]; probs: B·H·T·T floats of capacity, holding per
 *   (b, h) the R×T real-query block then the (T−R)×R pad-query block, keys in "real first"
 *   order (opaque: only the backward reads it).
 * scratch: lvd_tr_attention_pp_scratch(T, H, D, threads of pool) floats (fwd and bwd).
 * Backward accumulates into dq, dk, dv (none may be NULL). pool (NULL: one thread) runs
 * the heads in parallel with single-threaded GEMMs (OpenBLAS is set to 1 thread for
 * that and restored); results do not depend on the thread count. */
size_t lvd_tr_attention_pp_scratch(int T, int H, int D, int threads);
void lvd_tr_attention_pp_fwd(float *out, float *probs, float *scratch, const float *q, const float *k,
			     const float *v, const uint8_t *pad, float scale, int B, int T, int H, int D,
			     struct lvd_pool *pool);
void lvd_tr_attention_pp_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
			     const float *probs, const float *q, const float *k, const float *v,
			     const uint8_t *pad, float scale, int B, int T, int H, int D, struct lvd_pool *pool);

/* Mean token cross-entropy as torch (ignore_index -100, mean over kept rows):
 * logits [N, V], targets [N]. Returns the summed loss; *count = kept rows. */
double lvd_tr_xent_fwd(int *count, const float *logits, const int *targets, int N, int V);
/* dlogits += scale · (softmax(logits) − onehot(target)) for kept rows (scale = 1/count
 * for the mean). */
void lvd_tr_xent_bwd(float *dlogits, const float *logits, const int *targets, float scale, int N, int V);

/* Embedding rows: out[N, C] = table[ids[n]]; ids are checked by the caller. */
void lvd_tr_embedding_fwd(float *out, const int *ids, const float *table, int N, int C);
void lvd_tr_embedding_bwd(float *dtable, const float *dout, const int *ids, int N, int C);

/* Non-overlapping patch unfold (a Conv2d with kernel = stride = P, no padding) of
 * img [C, H, W] into cols [(H/P)·(W/P), C·P·P] in (c, kh, kw) order, patches row-major;
 * the conv is then lvd_linear_fwd(cols, W viewed [OC, C·P·P]). */
void lvd_tr_patch_unfold(float *cols, const float *img, int C, int H, int W, int P);

#ifdef __cplusplus
}
#endif
#endif
