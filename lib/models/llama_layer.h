/* lib/models/llama_layer.h — the Llama(-3) self-attention decoder layer, forward and
 * backward on the op set, shared by the models with a Llama decoder (mllama's
 * self-attention layers, minicpmv's LLM): x_mid = x + o(attn(rope(q, k), v)) on
 * rmsnorm(x) with a causal mask, out = x_mid + down(silu(gate(h))·up(h)) on
 * h = rmsnorm(x_mid). Optionally the softmax probabilities of chosen query rows are kept
 * (capture) and their gradient accepted in backward. Nothing allocates.
 *
 * Letters: B batch, T tokens, D width, H query heads, KH kv heads, hd head dim
 * (D = H·hd), KV = KH·hd, It MLP width. Tensors row-major [B·T, ·]. */
#ifndef LVD_MODELS_LLAMA_LAYER_H
#define LVD_MODELS_LLAMA_LAYER_H

#include <stdint.h>

#include "nn/ctx.h"
#include "nn/ops/attn.h"

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
 * ln1_r/ln2_r [B·T] (may be NULL for inference; required by backward), q/att/o_out/x_mid/
 * m_out [B·T, D], k/v [B·T, KV], stats [B, H, T, 2], g/up/act [B·T, It].
 * cap (may be NULL): query rows per sample whose probabilities the attention keeps in
 * probs [B, H, R_b, T] (ragged as lib/nn/ops/attn.h; masked keys exactly 0). */
struct lvd_llama_layer_a {
	float *ln1, *ln1_r, *q, *k, *v, *stats, *att, *o_out, *x_mid, *ln2, *ln2_r, *g, *up, *act, *m_out;
	const struct lvd_attn_capture *cap;
	float *probs;
};

/* Weight gradients of a layer (same shapes as lvd_llama_layer_w); a NULL entry is not
 * computed. */
struct lvd_llama_layer_g {
	float *ln1, *q, *k, *v, *o, *ln2, *gate, *up, *down;
};

/* Backward working memory: dln/dm/datt/dq [B·T, D], dk/dv [B·T, KV], dg/du/dact [B·T, It]
 * (contents on entry do not matter). */
struct lvd_llama_layer_s {
	float *dln, *dm, *datt, *dq, *dk, *dv, *dg, *du, *dact;
};

struct lvd_llama_dims {
	int B, T, D, H, KH, hd, It;
	float eps;
};

/* A linear without bias out[N, OC] = x[N, IC]·Wᵀ (+ whatever the model adds, e.g. LoRA);
 * NULL in lvd_llama_layer_fwd means lvd_linear_fwd. */
typedef void (*lvd_llama_lin_fn)(void *user, enum lvd_llama_site site, float *out, const float *x, const float *W,
				 int N, int IC, int OC);

/* The backward of a linear site: dx[N, IC] += dout·W (dx NULL: skipped) and, when dW is
 * not NULL, dW[OC, IC] += doutᵀ·x (plus whatever the model adds, e.g. LoRA gradients);
 * NULL in lvd_llama_layer_bwd means lvd_linear_bwd. */
typedef void (*lvd_llama_lin_bwd_fn)(void *user, enum lvd_llama_site site, float *dx, float *dW, const float *dout,
				     const float *x, const float *W, int N, int IC, int OC);

/* One layer: out [B·T, D] from x [B·T, D] (out must not alias x or the buffers of a);
 * rotary positions pos[T] with inv_freq[hd/2] (lvd_rope_freqs). */
void lvd_llama_layer_fwd(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			 const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_fn lin, void *user);

/* Its backward: dx [B·T, D] holds d(out) on entry and d(x) on return (in place); a, x and
 * w as the forward left / used them; g receives the weight gradients (ACCUMULATES; g may be
 * NULL: no weight gradients). dprobs (may be NULL) is the gradient of a->probs, added to
 * the attention backward of the capture rows (a->cap). s is working memory. */
void lvd_llama_layer_bwd(struct lvd_ctx *ctx, float *dx, const struct lvd_llama_layer_s *s,
			 const struct lvd_llama_layer_a *a, const float *x, const struct lvd_llama_layer_w *w,
			 const struct lvd_llama_layer_g *g, const float *dprobs, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_bwd_fn lin_bwd, void *user);

/* The same layer computing only the outputs of rows [r0, T) of each sample (0 <= r0 < T;
 * r0 = 0 is the pair above): a last layer whose other rows feed nothing but unscored
 * logits. ln1, ln1_r, k and v still cover all B·T rows (every key stays visible), while
 * q, att, o_out, x_mid, ln2, ln2_r, g, up, act, m_out, stats and out hold the B·(T − r0)
 * tail rows only, sample after sample, and the capture rows of a->cap count from r0. The
 * backward takes d(out) at the tail rows of dx [B·T, D] (rows < r0 ignored) and returns
 * d(x) for all rows. Linear sites see N = B·(T − r0) for q, o, gate, up and down. */
void lvd_llama_layer_fwd_tail(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			      const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			      const struct lvd_llama_dims *d, int r0, lvd_llama_lin_fn lin, void *user);
void lvd_llama_layer_bwd_tail(struct lvd_ctx *ctx, float *dx, const struct lvd_llama_layer_s *s,
			      const struct lvd_llama_layer_a *a, const float *x, const struct lvd_llama_layer_w *w,
			      const struct lvd_llama_layer_g *g, const float *dprobs, const int *pos,
			      const float *inv_freq, const struct lvd_llama_dims *d, int r0, lvd_llama_lin_bwd_fn lin_bwd,
			      void *user);

/* Inference over a key/value cache (generation): Tq = d->T new rows per sample run
 * through the layer, x [B·Tq, D] updated in place (x += attention branch, then x += MLP
 * branch: the same ops in the same order as lvd_llama_layer_fwd). The rows' rotated keys
 * and values are written to cache rows [t, t + Tq) of kc/vc [B, Tc, KV]; the attention is
 * lib/nn/ops/kvattn.h over cache rows [0, t + Tq) with keep [B, Tc] (NULL: all kept).
 * pos [B, Tq]: each sample's rotary positions (left padding shifts them). Workspace
 * from a: ln1, q, k, v, att, o_out, ln2, g, up, act, m_out (ln1_r, ln2_r, stats, x_mid,
 * cap, probs unused). Nothing is kept for backward. */
struct lvd_llama_kvcache {
	float *kc, *vc;
	const uint8_t *keep;
	int t, Tc;
};
void lvd_llama_layer_kv_fwd(struct lvd_ctx *ctx, float *x, const struct lvd_llama_layer_a *a,
			    const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			    const struct lvd_llama_kvcache *kv, const struct lvd_llama_dims *d, lvd_llama_lin_fn lin,
			    void *user);

/* A linear with an optional PEFT LoRA adapter (lib/nn/ops/lora.h), the glue shared by the
 * models' LoRA sites: out = x·Wᵀ (+ b) + s·(dropout(x)·Aᵀ)·Bᵀ. A [r, IC], B [OC, r];
 * dA/dB their gradients (ACCUMULATE; may be NULL). u [N, r] and, with p > 0, xd [N, IC]
 * (the dropped-out input) are saved by the forward for the backward; the dropout mask
 * comes from seed. */
struct lvd_llama_lora {
	const float *A, *B;
	float *dA, *dB;
	int r;
	float s, p;
};
/* l NULL: a plain linear. W NULL: the LoRA path alone (the caller computed the base
 * product, e.g. with bf16 weights: lvd_linear_fwd_w16 / lvd_linear_bwd_w16). */
void lvd_llama_lora_lin_fwd(struct lvd_ctx *ctx, float *out, float *u, float *xd, const float *x, const float *W,
			    const float *b, const struct lvd_llama_lora *l, int N, int IC, int OC, uint64_t seed);
/* dx += dout·W (+ the LoRA path), dW/db += the base gradients when not NULL, dA/dB of l. */
void lvd_llama_lora_lin_bwd(struct lvd_ctx *ctx, float *dx, float *dW, float *db, const float *dout, const float *x,
			    const float *W, const float *u, const float *xd, const struct lvd_llama_lora *l, int N,
			    int IC, int OC, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
