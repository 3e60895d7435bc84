/* lib/models/llama_layer.c — the Llama self-attention decoder layer forward (see
 * llama_layer.h). */
#include <math.h>

#include "models/llama_layer.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"

static void lin_call(struct lvd_ctx *ctx, lvd_llama_lin_fn lin, void *user, enum lvd_llama_site s, float *out,
		     const float *x, const float *W, int N, int IC, int OC)
{
	if (lin)
		lin(user, s, out, x, W, N, IC, OC);
	else
		lvd_linear_fwd(ctx, out, x, W, NULL, N, IC, OC);
}

void lvd_llama_layer_fwd(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			 const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_fn lin, void *user)
{
	int B = d->B, T = d->T, BT = B * T, D = d->D, H = d->H, KH = d->KH, hd = d->hd, KV = KH * hd, It = d->It;
	lvd_rmsnorm_fwd(ctx, a->ln1, a->ln1_r, x, w->ln1, BT, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_Q, a->q, a->ln1, w->q, BT, D, D);
	lin_call(ctx, lin, user, LVD_LLAMA_K, a->k, a->ln1, w->k, BT, D, KV);
	lin_call(ctx, lin, user, LVD_LLAMA_V, a->v, a->ln1, w->v, BT, D, KV);
	lvd_rope_apply(ctx, a->q, pos, inv_freq, B, T, H, hd, 0);
	lvd_rope_apply(ctx, a->k, pos, inv_freq, B, T, KH, hd, 0);
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_CAUSAL };
	lvd_attn_fwd(ctx, a->att, a->stats, NULL, a->q, a->k, a->v, &mk, NULL, 1.0f / sqrtf((float)hd), B, T, T, H, KH,
		     hd);
	lin_call(ctx, lin, user, LVD_LLAMA_O, a->o_out, a->att, w->o, BT, D, D);
	lvd_gated_residual_fwd(ctx, a->x_mid, x, a->o_out, NULL, NULL, BT, D);
	lvd_rmsnorm_fwd(ctx, a->ln2, a->ln2_r, a->x_mid, w->ln2, BT, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_GATE, a->g, a->ln2, w->gate, BT, D, It);
	lin_call(ctx, lin, user, LVD_LLAMA_UP, a->up, a->ln2, w->up, BT, D, It);
	lvd_swiglu_fwd(ctx, a->act, a->g, a->up, (size_t)BT * It);
	lin_call(ctx, lin, user, LVD_LLAMA_DOWN, a->m_out, a->act, w->down, BT, It, D);
	lvd_gated_residual_fwd(ctx, out, a->x_mid, a->m_out, NULL, NULL, BT, D);
}
