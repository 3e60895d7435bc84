/* lib/models/llama_layer.h — the Llama(-3) self-attention decoder layer forward on the op
 * set, shared by the models with a Llama decoder (mllama's self-attention layers,
 * minicpmv's LLM): x_mid = x + o(attn(rope(q, k), v)) on rmsnorm(x) with a causal mask,
 * out = x_mid + down(silu(gate(h))·up(h)) on h = rmsnorm(x_mid). Nothing allocates.
 *
 * Letters: B batch, T tokens, D width, H query heads, KH kv heads, hd head dim
 * (D = H·hd), KV = KH·hd, It MLP width. Tensors row-major [B·T, ·]. */
#ifndef LVD_MODELS_LLAMA_LAYER_H
#define LVD_MODELS_LLAMA_LAYER_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the linear sites of a layer, in the order of mllama's LoRA sites */
enum lvd_llama_site {
	LVD_LLAMA_Q, LVD_LLAMA_K, LVD_LLAMA_V, LVD_LLAMA_O, LVD_LLAMA_GATE, LVD_LLAMA_UP, LVD_LLAMA_DOWN,
};

struct lvd_llama_layer_w {
	const float *ln1, *q, *k, *v, *o, *ln2, *gate, *up, *down;   /* HF shapes, no biases */
};

/* Buffers the forward writes (what a backward needs is kept there): ln1/ln2 [B·T, D],
 * ln1_r/ln2_r [B·T] (may be NULL), q/att/o_out/x_mid/m_out [B·T, D], k/v [B·T, KV],
 * stats [B, H, T, 2], g/up/act [B·T, It]. */
struct lvd_llama_layer_a {
	float *ln1, *ln1_r, *q, *k, *v, *stats, *att, *o_out, *x_mid, *ln2, *ln2_r, *g, *up, *act, *m_out;
};

struct lvd_llama_dims {
	int B, T, D, H, KH, hd, It;
	float eps;
};

/* A linear without bias out[N, OC] = x[N, IC]·Wᵀ (+ whatever the model adds, e.g. LoRA);
 * NULL in lvd_llama_layer_fwd means lvd_linear_fwd. */
typedef void (*lvd_llama_lin_fn)(void *user, enum lvd_llama_site site, float *out, const float *x, const float *W,
				 int N, int IC, int OC);

/* One layer: out [B·T, D] from x [B·T, D] (out must not alias x or the buffers of a);
 * rotary positions pos[T] with inv_freq[hd/2] (lvd_rope_freqs). */
void lvd_llama_layer_fwd(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			 const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_fn lin, void *user);

#ifdef __cplusplus
}
#endif
#endif
