/* lib/models/llama_layer.c — the Llama self-attention decoder layer forward and backward
 * (see llama_layer.h). */
#include <math.h>
#include <string.h>

#include "models/llama_layer.h"
#include "core/error.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/kvattn.h"
#include "nn/ops/lora.h"
#include "nn/ops/norm.h"

static void lin_call(struct lvd_ctx *ctx, lvd_llama_lin_fn lin, void *user, enum lvd_llama_site s, float *out,
		     const float *x, const float *W, int N, int IC, int OC)
{
	if (lin)
		lin(user, s, out, x, W, N, IC, OC);
	else
		lvd_linear_fwd(ctx, out, x, W, NULL, N, IC, OC);
}

/* rows [r0, T) of each of the B samples of src [B·T, W] as a compact [B·(T − r0), W]
 * array: src itself (shifted) when r0 is 0 or B is 1, else a copy in ctx's workspace (host
 * copies, like the r0 > 0 loops of the backward: only the CPU MiniCPM-V path passes r0 > 0;
 * mllama, the device model included, runs r0 = 0) */
static const float *tail_rows(struct lvd_ctx *ctx, const float *src, int B, int T, int r0, size_t W)
{
	if (r0 == 0 || B == 1)
		return src + (size_t)r0 * W;
	size_t n = (size_t)(T - r0) * W;
	float *t = lvd_ctx_takef(ctx, (size_t)B * n);
	for (int b = 0; b < B; b++)
		memcpy(t + b * n, src + ((size_t)b * T + r0) * W, n * sizeof(float));
	return t;
}

void lvd_llama_layer_fwd(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			 const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_fn lin, void *user)
{
	lvd_llama_layer_fwd_tail(ctx, out, a, x, w, pos, inv_freq, d, 0, lin, user);
}

void lvd_llama_layer_fwd_tail(struct lvd_ctx *ctx, float *out, const struct lvd_llama_layer_a *a, const float *x,
			      const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			      const struct lvd_llama_dims *d, int r0, lvd_llama_lin_fn lin, void *user)
{
	int B = d->B, T = d->T, BT = B * T, D = d->D, H = d->H, KH = d->KH, hd = d->hd, KV = KH * hd, It = d->It;
	int Ts = T - r0, BTs = B * Ts;   /* the rows whose output is wanted */
	LVD_ASSERT(r0 >= 0 && r0 < T);
	size_t mk = lvd_ctx_mark(ctx);
	lvd_rmsnorm_fwd(ctx, a->ln1, a->ln1_r, x, w->ln1, BT, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_Q, a->q, tail_rows(ctx, a->ln1, B, T, r0, D), w->q, BTs, D, D);
	lin_call(ctx, lin, user, LVD_LLAMA_K, a->k, a->ln1, w->k, BT, D, KV);
	lin_call(ctx, lin, user, LVD_LLAMA_V, a->v, a->ln1, w->v, BT, D, KV);
	lvd_rope_apply(ctx, a->q, pos + r0, inv_freq, B, Ts, H, hd, 0);
	lvd_rope_apply(ctx, a->k, pos, inv_freq, B, T, KH, hd, 0);
	struct lvd_attn_mask am = { .kind = LVD_ATTN_MASK_CAUSAL };
	lvd_attn_fwd(ctx, a->att, a->stats, a->probs, a->q, a->k, a->v, &am, a->cap, 1.0f / sqrtf((float)hd), B, Ts, T, H,
		     KH, hd);
	lin_call(ctx, lin, user, LVD_LLAMA_O, a->o_out, a->att, w->o, BTs, D, D);
	lvd_gated_residual_fwd(ctx, a->x_mid, tail_rows(ctx, x, B, T, r0, D), a->o_out, NULL, NULL, BTs, D);
	lvd_ctx_release(ctx, mk);
	lvd_rmsnorm_fwd(ctx, a->ln2, a->ln2_r, a->x_mid, w->ln2, BTs, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_GATE, a->g, a->ln2, w->gate, BTs, D, It);
	lin_call(ctx, lin, user, LVD_LLAMA_UP, a->up, a->ln2, w->up, BTs, D, It);
	lvd_swiglu_fwd(ctx, a->act, a->g, a->up, (size_t)BTs * It);
	lin_call(ctx, lin, user, LVD_LLAMA_DOWN, a->m_out, a->act, w->down, BTs, It, D);
	lvd_gated_residual_fwd(ctx, out, a->x_mid, a->m_out, NULL, NULL, BTs, D);
}

void lvd_llama_layer_kv_fwd(struct lvd_ctx *ctx, float *x, const struct lvd_llama_layer_a *a,
			    const struct lvd_llama_layer_w *w, const int *pos, const float *inv_freq,
			    const struct lvd_llama_kvcache *kv, const struct lvd_llama_dims *d, lvd_llama_lin_fn lin,
			    void *user)
{
	int B = d->B, Tq = d->T, N = B * Tq, D = d->D, H = d->H, KH = d->KH, hd = d->hd, KV = KH * hd, It = d->It;
	lvd_rmsnorm_fwd(ctx, a->ln1, NULL, x, w->ln1, N, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_Q, a->q, a->ln1, w->q, N, D, D);
	lin_call(ctx, lin, user, LVD_LLAMA_K, a->k, a->ln1, w->k, N, D, KV);
	lin_call(ctx, lin, user, LVD_LLAMA_V, a->v, a->ln1, w->v, N, D, KV);
	for (int b = 0; b < B; b++) {
		size_t r0 = (size_t)b * Tq, c0 = ((size_t)b * kv->Tc + kv->t) * KV;
		lvd_rope_apply(ctx, a->q + r0 * D, pos + r0, inv_freq, 1, Tq, H, hd, 0);
		lvd_rope_apply(ctx, a->k + r0 * KV, pos + r0, inv_freq, 1, Tq, KH, hd, 0);
		memcpy(kv->kc + c0, a->k + r0 * KV, sizeof(float) * (size_t)Tq * KV);
		memcpy(kv->vc + c0, a->v + r0 * KV, sizeof(float) * (size_t)Tq * KV);
	}
	lvd_kvattn_fwd(ctx, a->att, a->q, kv->kc, kv->vc, kv->keep, 1.0f / sqrtf((float)hd), B, Tq, kv->t + Tq, kv->Tc, H,
		       KH, hd);
	lin_call(ctx, lin, user, LVD_LLAMA_O, a->o_out, a->att, w->o, N, D, D);
	lvd_gated_residual_fwd(ctx, x, x, a->o_out, NULL, NULL, N, D);
	lvd_rmsnorm_fwd(ctx, a->ln2, NULL, x, w->ln2, N, D, d->eps);
	lin_call(ctx, lin, user, LVD_LLAMA_GATE, a->g, a->ln2, w->gate, N, D, It);
	lin_call(ctx, lin, user, LVD_LLAMA_UP, a->up, a->ln2, w->up, N, D, It);
	lvd_swiglu_fwd(ctx, a->act, a->g, a->up, (size_t)N * It);
	lin_call(ctx, lin, user, LVD_LLAMA_DOWN, a->m_out, a->act, w->down, N, It, D);
	lvd_gated_residual_fwd(ctx, x, x, a->m_out, NULL, NULL, N, D);
}

static void lin_bwd_call(struct lvd_ctx *ctx, lvd_llama_lin_bwd_fn lb, void *user, enum lvd_llama_site st, float *dx,
			 float *dW, const float *dout, const float *x, const float *W, int N, int IC, int OC)
{
	if (lb)
		lb(user, st, dx, dW, dout, x, W, N, IC, OC);
	else
		lvd_linear_bwd(ctx, dx, dW, NULL, dout, x, W, N, IC, OC);
}

void lvd_llama_layer_bwd(struct lvd_ctx *ctx, float *dx, const struct lvd_llama_layer_s *s,
			 const struct lvd_llama_layer_a *a, const float *x, const struct lvd_llama_layer_w *w,
			 const struct lvd_llama_layer_g *g, const float *dprobs, const int *pos, const float *inv_freq,
			 const struct lvd_llama_dims *d, lvd_llama_lin_bwd_fn lb, void *user)
{
	lvd_llama_layer_bwd_tail(ctx, dx, s, a, x, w, g, dprobs, pos, inv_freq, d, 0, lb, user);
}

void lvd_llama_layer_bwd_tail(struct lvd_ctx *ctx, float *dx, const struct lvd_llama_layer_s *s,
			      const struct lvd_llama_layer_a *a, const float *x, const struct lvd_llama_layer_w *w,
			      const struct lvd_llama_layer_g *g, const float *dprobs, const int *pos,
			      const float *inv_freq, const struct lvd_llama_dims *d, int r0, lvd_llama_lin_bwd_fn lb,
			      void *user)
{
	static const struct lvd_llama_layer_g none;
	if (!g)
		g = &none;
	int B = d->B, T = d->T, BT = B * T, D = d->D, H = d->H, KH = d->KH, hd = d->hd, KV = KH * hd, It = d->It;
	int Ts = T - r0, BTs = B * Ts;   /* the tail rows the forward computed */
	LVD_ASSERT(r0 >= 0 && r0 < T);
	size_t BTD = (size_t)BT * D, BTsD = (size_t)BTs * D, BTsI = (size_t)BTs * It, BKV = (size_t)BT * KV;
	size_t mk = lvd_ctx_mark(ctx);
	/* dxs: d(out), then d(x_mid), of the tail rows (dx itself when r0 is 0) */
	float *dxs = dx;
	if (r0) {
		dxs = lvd_ctx_takef(ctx, BTsD);
		memcpy(dxs, tail_rows(ctx, dx, B, T, r0, D), BTsD * sizeof(float));
	}
	/* MLP branch: out = x_mid + m_out */
	lvd_buf_zero(ctx, s->dm, BTsD * sizeof(float));
	lvd_gated_residual_bwd(ctx, s->dm, NULL, dxs, a->m_out, NULL, NULL, BTs, D);
	lvd_buf_zero(ctx, s->dact, BTsI * sizeof(float));
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_DOWN, s->dact, g->down, s->dm, a->act, w->down, BTs, It, D);
	lvd_buf_zero(ctx, s->dg, BTsI * sizeof(float));
	lvd_buf_zero(ctx, s->du, BTsI * sizeof(float));
	lvd_swiglu_bwd(ctx, s->dg, s->du, s->dact, a->g, a->up, BTsI);
	lvd_buf_zero(ctx, s->dln, BTsD * sizeof(float));
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_GATE, s->dln, g->gate, s->dg, a->ln2, w->gate, BTs, D, It);
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_UP, s->dln, g->up, s->du, a->ln2, w->up, BTs, D, It);
	lvd_rmsnorm_bwd(ctx, dxs, g->ln2, s->dln, a->x_mid, w->ln2, a->ln2_r, BTs, D);
	/* attention branch: x_mid = x + o_out */
	lvd_buf_zero(ctx, s->dm, BTsD * sizeof(float));
	lvd_gated_residual_bwd(ctx, s->dm, NULL, dxs, a->o_out, NULL, NULL, BTs, D);
	lvd_buf_zero(ctx, s->datt, BTsD * sizeof(float));
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_O, s->datt, g->o, s->dm, a->att, w->o, BTs, D, D);
	lvd_buf_zero(ctx, s->dq, BTsD * sizeof(float));
	lvd_buf_zero(ctx, s->dk, BKV * sizeof(float));
	lvd_buf_zero(ctx, s->dv, BKV * sizeof(float));
	struct lvd_attn_mask am = { .kind = LVD_ATTN_MASK_CAUSAL };
	lvd_attn_bwd(ctx, s->dq, s->dk, s->dv, a->stats, s->datt, a->cap ? dprobs : NULL, a->q, a->k, a->v, &am,
		     a->cap, 1.0f / sqrtf((float)hd), B, Ts, T, H, KH, hd);
	lvd_rope_apply(ctx, s->dq, pos + r0, inv_freq, B, Ts, H, hd, 1);
	lvd_rope_apply(ctx, s->dk, pos, inv_freq, B, T, KH, hd, 1);
	lvd_buf_zero(ctx, s->dln, BTD * sizeof(float));
	if (r0 == 0 || B == 1) {
		lin_bwd_call(ctx, lb, user, LVD_LLAMA_Q, s->dln + (size_t)r0 * D, g->q, s->dq, a->ln1 + (size_t)r0 * D,
			     w->q, BTs, D, D);
	} else { /* the tail rows' d(ln1) gathered, then added back at their rows */
		float *dls = lvd_ctx_takef(ctx, BTsD);
		lvd_buf_zero(ctx, dls, BTsD * sizeof(float));
		lin_bwd_call(ctx, lb, user, LVD_LLAMA_Q, dls, g->q, s->dq, tail_rows(ctx, a->ln1, B, T, r0, D), w->q, BTs,
			     D, D);
		for (int b = 0; b < B; b++)
			memcpy(s->dln + ((size_t)b * T + r0) * D, dls + (size_t)b * Ts * D, (size_t)Ts * D * sizeof(float));
	}
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_K, s->dln, g->k, s->dk, a->ln1, w->k, BT, D, KV);
	lin_bwd_call(ctx, lb, user, LVD_LLAMA_V, s->dln, g->v, s->dv, a->ln1, w->v, BT, D, KV);
	if (r0) { /* d(x) = the residual's d(x_mid) on the tail rows, 0 above, + the ln1 path */
		for (int b = 0; b < B; b++) {
			memset(dx + (size_t)b * T * D, 0, (size_t)r0 * D * sizeof(float));
			memcpy(dx + ((size_t)b * T + r0) * D, dxs + (size_t)b * Ts * D, (size_t)Ts * D * sizeof(float));
		}
	}
	lvd_rmsnorm_bwd(ctx, dx, g->ln1, s->dln, x, w->ln1, a->ln1_r, BT, D);
	lvd_ctx_release(ctx, mk);
}

void lvd_llama_lora_lin_fwd(struct lvd_ctx *ctx, float *out, float *u, float *xd, const float *x, const float *W,
			    const float *b, const struct lvd_llama_lora *l, int N, int IC, int OC, uint64_t seed)
{
	if (W)
		lvd_linear_fwd(ctx, out, x, W, b, N, IC, OC);
	if (!l)
		return;
	const float *xin = x;
	if (l->p > 0) {
		lvd_lora_dropout_fwd(ctx, xd, x, (size_t)N * IC, l->p, seed);
		xin = xd;
	}
	lvd_lora_fwd(ctx, out, u, xin, l->A, l->B, l->s, N, IC, OC, l->r);
}

void lvd_llama_lora_lin_bwd(struct lvd_ctx *ctx, float *dx, float *dW, float *db, const float *dout, const float *x,
			    const float *W, const float *u, const float *xd, const struct lvd_llama_lora *l, int N,
			    int IC, int OC, uint64_t seed)
{
	if (W)
		lvd_linear_bwd(ctx, dx, dW, db, dout, x, W, N, IC, OC);
	if (!l)
		return;
	if (l->p > 0) {
		size_t mk = lvd_ctx_mark(ctx);
		float *dxd = dx ? lvd_ctx_takef(ctx, (size_t)N * IC) : NULL;
		if (dxd)
			lvd_buf_zero(ctx, dxd, sizeof(float) * (size_t)N * IC);
		lvd_lora_bwd(ctx, dxd, l->dA, l->dB, dout, xd, u, l->A, l->B, l->s, N, IC, OC, l->r);
		if (dx)
			lvd_lora_dropout_bwd(ctx, dx, dxd, (size_t)N * IC, l->p, seed);
		lvd_ctx_release(ctx, mk);
	} else {
		lvd_lora_bwd(ctx, dx, l->dA, l->dB, dout, x, u, l->A, l->B, l->s, N, IC, OC, l->r);
	}
}
