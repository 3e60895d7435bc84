/* lib/models/mllama/mllama_text.c — mllama text decoder tower (embedding, self- and gated
 * cross-attention layers, final norm, lm_head), forward and backward; a leaf called by
 * mllama_model.c.
 *
 * Letters: B batch, T text tokens, S = M·TL·P1 vision tokens per sample, Dt width,
 * H query heads, KH kv heads, hd head dim, It MLP width, V vocabulary. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/llama_layer.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/xent.h"

/* ---- activations -------------------------------------------------------------------- */

static const struct lvd_mllama_lora *tsite(const struct lvd_mllama *m, int l, int s)
{
	return m->tsite ? m->tsite[(size_t)l * L_NSITE + s].l : NULL;
}
static struct lvd_mllama_lora *tsite_mut(struct lvd_mllama *m, int l, int s)
{
	return m->tsite ? m->tsite[(size_t)l * L_NSITE + s].l : NULL;
}
static uint64_t tseed(const struct lvd_mllama *m, int l, int s)
{
	return m->lora_seed * 1000003u + (uint64_t)m->batch.dropout_step * 7919u + 0x100000u + (uint64_t)l * 16 + s;
}

/* Whether layer l keeps only its input (and captured probabilities) and is recomputed
 * before its backward (lvd_mllama_set_recompute). */
static int trecomp(const struct lvd_mllama *m, int l)
{
	int r = m->recompute & LVD_MLLAMA_RECOMPUTE_TEXT;
	return r == LVD_MLLAMA_RECOMPUTE_ALL || (r == LVD_MLLAMA_RECOMPUTE_XATTN && m->w.tl[l].cross);
}

/* One layer's activations other than x_in and capp, carved at *off. */
static void tlayer_carve(struct lvd_mllama *m, struct tlayer_a *A, int l, float *base, size_t *off)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t B = m->batch.B, T = m->batch.T, BT = B * T, S = m->S, Dt = c->t_hidden;
	size_t H = c->t_heads, KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter, r = m->lora_r;
	int cross = m->w.tl[l].cross;
	size_t Tk = cross ? S : T;
	A->ln1 = mllama_take(base, off, BT * Dt);
	A->ln1_r = mllama_take(base, off, BT);
	A->q = mllama_take(base, off, BT * Dt);
	A->k = mllama_take(base, off, B * Tk * KV);
	A->v = mllama_take(base, off, B * Tk * KV);
	if (cross) {
		A->qraw = mllama_take(base, off, BT * Dt);
		A->q_r = mllama_take(base, off, BT * H);
		A->kraw = mllama_take(base, off, B * S * KV);
		A->k_r = mllama_take(base, off, B * S * c->t_kv_heads);
	}
	A->stats = mllama_take(base, off, B * H * T * 2);
	A->att = mllama_take(base, off, BT * Dt);
	A->o_out = mllama_take(base, off, BT * Dt);
	A->x_mid = mllama_take(base, off, BT * Dt);
	A->ln2 = mllama_take(base, off, BT * Dt);
	A->ln2_r = mllama_take(base, off, BT);
	A->g = mllama_take(base, off, BT * It);
	A->up = mllama_take(base, off, BT * It);
	A->act = mllama_take(base, off, BT * It);
	A->m_out = mllama_take(base, off, BT * Dt);
	for (int s = 0; s < L_NSITE; s++) {
		const struct lvd_mllama_lora *ls = tsite(m, l, s);
		if (!ls)
			continue;
		size_t rows = (cross && (s == L_K || s == L_V)) ? B * S : BT;
		A->u[s] = mllama_take(base, off, rows * r);
		if (m->lora_p > 0)
			A->xd[s] = mllama_take(base, off, rows * ls->in);
	}
}

size_t mllama_text_acts(struct lvd_mllama *m, struct mllama_acts *a, float *base)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t off = 0, B = m->batch.B, T = m->batch.T, BT = B * T, S = m->S, Dt = c->t_hidden, H = c->t_heads;
	a->x0 = mllama_take(base, &off, BT * Dt);
	a->norm_in = mllama_take(base, &off, BT * Dt);
	a->norm_r = mllama_take(base, &off, BT);
	a->normed = mllama_take(base, &off, BT * Dt);
	a->logits = m->xent_chunk ? NULL : mllama_take(base, &off, BT * c->vocab);
	a->lse = m->xent_chunk ? (double *)mllama_take(base, &off, 2 * BT) : NULL;
	a->xbias = m->have_image ? mllama_take(base, &off, BT * S) : NULL;
	a->rowmask = mllama_take(base, &off, BT);
	a->pos = (int *)mllama_take(base, &off, T);
	a->ids = (int *)mllama_take(base, &off, BT);
	a->targets = (int *)mllama_take(base, &off, BT);
	a->cap_off = m->batch.cap_off ? (int *)mllama_take(base, &off, B + 1) : NULL;
	a->ncap = m->batch.cap_off ? (size_t)m->batch.cap_off[B] : 0;
	a->cap_rows = (int *)mllama_take(base, &off, a->ncap);
	for (int l = 0; l < c->t_layers; l++) {
		struct tlayer_a *A = &a->tl[l];
		int cross = m->w.tl[l].cross;
		memset(A, 0, sizeof *A);
		A->x_in = mllama_take(base, &off, BT * Dt);
		if (cross && !m->have_image)
			continue;
		A->capp = cross ? mllama_take(base, &off, H * a->ncap * S) : NULL;
		if (!trecomp(m, l))
			tlayer_carve(m, A, l, base, &off);
	}
	/* the recomputed layers share one region as large as the largest of them: a layer's
	 * buffers hold data from its (re)computation to the next layer's only */
	size_t end = off;
	for (int l = 0; l < c->t_layers; l++) {
		size_t o = off;
		if (trecomp(m, l) && !(m->w.tl[l].cross && !m->have_image))
			tlayer_carve(m, &a->tl[l], l, base, &o);
		if (o > end)
			end = o;
	}
	return end;
}

static float *tlayer_out(struct lvd_mllama *m, int l)
{
	return l + 1 < m->c.t_layers ? m->a.tl[l + 1].x_in : m->a.norm_in;
}

/* the self-attention layers' linears: mllama's LoRA linear on the layer's site */
struct tlin_user {
	struct lvd_mllama *m;
	int l;
};
_Static_assert((int)LVD_LLAMA_Q == L_Q && (int)LVD_LLAMA_K == L_K && (int)LVD_LLAMA_V == L_V &&
	       (int)LVD_LLAMA_O == L_O && (int)LVD_LLAMA_GATE == L_M1 && (int)LVD_LLAMA_UP == L_M2 &&
	       (int)LVD_LLAMA_DOWN == L_M3, "site order");
static void tlin(void *user, enum lvd_llama_site s, float *out, const float *x, const float *W, int N, int IC, int OC)
{
	struct tlin_user *u = user;
	struct tlayer_a *A = &u->m->a.tl[u->l];
	mllama_lin_fwd(u->m, out, A->u[s], A->xd[s], x, W, NULL, tsite(u->m, u->l, (int)s), N, IC, OC,
		       tseed(u->m, u->l, (int)s));
}

/* a self-attention layer as lib/models/llama_layer.h takes it */
struct self_layer {
	struct lvd_llama_layer_a a;
	struct lvd_llama_layer_w w;
	struct lvd_llama_dims d;
	struct tlin_user u;
	float inv_freq[512];
	const float *freq;   /* inv_freq, or the device copy on a device model */
};
static void self_layer(struct lvd_mllama *m, int l, struct self_layer *sl)
{
	const struct lvd_mllama_config *c = &m->c;
	struct tlayer_a *A = &m->a.tl[l];
	const struct tlayer_w *W = &m->w.tl[l];
	LVD_ASSERT(c->t_head_dim / 2 <= 512);
	sl->freq = mllama_dev_freq(m);
	if (!sl->freq) {
		lvd_rope_freqs(m->ctx, sl->inv_freq, c->t_head_dim, c->rope_theta, c->rope_llama3, c->rope_factor,
			       c->rope_low, c->rope_high, c->rope_orig_max);
		sl->freq = sl->inv_freq;
	}
	sl->a = (struct lvd_llama_layer_a){ A->ln1, A->ln1_r, A->q, A->k, A->v, A->stats, A->att, A->o_out, A->x_mid,
					    A->ln2, A->ln2_r, A->g, A->up, A->act, A->m_out, NULL, NULL };
	sl->w = (struct lvd_llama_layer_w){ W->ln1, W->q, W->k, W->v, W->o, W->ln2, W->gate, W->up, W->down };
	sl->d = (struct lvd_llama_dims){ m->batch.B, m->batch.T, c->t_hidden, c->t_heads, c->t_kv_heads, c->t_head_dim,
					 c->t_inter, c->t_eps };
	sl->u = (struct tlin_user){ m, l };
}

/* Layer l's forward from A->x_in into the next layer's input (or norm_in); the capture
 * rows' probabilities into capp. */
static void tlayer_fwd(struct lvd_mllama *m, int l, float *capp)
{
	const struct lvd_mllama_config *c = &m->c;
	struct tlayer_a *A = &m->a.tl[l];
	const struct tlayer_w *W = &m->w.tl[l];
	int B = m->batch.B, T = m->batch.T, BT = B * T, S = m->S, Dt = c->t_hidden, H = c->t_heads;
	int KH = c->t_kv_heads, hd = c->t_head_dim, KV = KH * hd, It = c->t_inter;
	float *out = tlayer_out(m, l);
	size_t BTD = (size_t)BT * Dt;
	if (W->cross && !m->have_image) {
		lvd_copy(m->ctx, out, A->x_in, BTD);
		return;
	}
	if (!W->cross) {
		/* the Llama self-attention layer shared with minicpmv (lib/models/llama_layer.c) */
		struct self_layer sl;
		self_layer(m, l, &sl);
		lvd_llama_layer_fwd(m->ctx, out, &sl.a, A->x_in, &sl.w, m->a.pos, sl.freq, &sl.d, tlin, &sl.u);
		return;
	}
	/* gated cross-attention layer */
	lvd_rmsnorm_fwd(m->ctx, A->ln1, A->ln1_r, A->x_in, W->ln1, BT, Dt, c->t_eps);
	float scale = 1.0f / sqrtf((float)hd);
	mllama_lin_fwd(m, A->qraw, A->u[L_Q], A->xd[L_Q], A->ln1, W->q, NULL, tsite(m, l, L_Q), BT, Dt, Dt,
		       tseed(m, l, L_Q));
	lvd_rmsnorm_fwd(m->ctx, A->q, A->q_r, A->qraw, W->q_norm, BT * H, hd, c->t_eps);
	mllama_lin_fwd(m, A->kraw, A->u[L_K], A->xd[L_K], m->a.cross, W->k, NULL, tsite(m, l, L_K), B * S, Dt, KV,
		       tseed(m, l, L_K));
	lvd_rmsnorm_fwd(m->ctx, A->k, A->k_r, A->kraw, W->k_norm, B * S * KH, hd, c->t_eps);
	mllama_lin_fwd(m, A->v, A->u[L_V], A->xd[L_V], m->a.cross, W->v, NULL, tsite(m, l, L_V), B * S, Dt, KV,
		       tseed(m, l, L_V));
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = m->a.xbias };
	struct lvd_attn_capture cp = { m->a.cap_rows, m->a.cap_off };
	lvd_attn_fwd(m->ctx, A->att, A->stats, capp, A->q, A->k, A->v, &mk, &cp, scale, B, T, S, H, KH, hd);
	if (m->batch.meta_row_mask)
		lvd_row_mask(m->ctx, A->att, m->a.rowmask, BT, Dt);
	mllama_lin_fwd(m, A->o_out, A->u[L_O], A->xd[L_O], A->att, W->o, NULL, tsite(m, l, L_O), BT, Dt, Dt,
		       tseed(m, l, L_O));
	lvd_gated_residual_fwd(m->ctx, A->x_mid, A->x_in, A->o_out, W->attn_gate, NULL, BT, Dt);
	lvd_rmsnorm_fwd(m->ctx, A->ln2, A->ln2_r, A->x_mid, W->ln2, BT, Dt, c->t_eps);
	mllama_lin_fwd(m, A->g, A->u[L_M1], A->xd[L_M1], A->ln2, W->gate, NULL, tsite(m, l, L_M1), BT, Dt, It,
		       tseed(m, l, L_M1));
	mllama_lin_fwd(m, A->up, A->u[L_M2], A->xd[L_M2], A->ln2, W->up, NULL, tsite(m, l, L_M2), BT, Dt, It,
		       tseed(m, l, L_M2));
	lvd_swiglu_fwd(m->ctx, A->act, A->g, A->up, (size_t)BT * It);
	mllama_lin_fwd(m, A->m_out, A->u[L_M3], A->xd[L_M3], A->act, W->down, NULL, tsite(m, l, L_M3), BT, It, Dt,
		       tseed(m, l, L_M3));
	/* HF: the cross layer's MLP branch only on rows that see an image */
	lvd_gated_residual_fwd(m->ctx, out, A->x_mid, A->m_out, W->mlp_gate, m->a.rowmask, BT, Dt);
}

void mllama_text_fwd(struct lvd_mllama *m)
{
	const struct lvd_mllama_config *c = &m->c;
	struct mllama_acts *a = &m->a;
	int BT = m->batch.B * m->batch.T, Dt = c->t_hidden;
	lvd_embedding_fwd(m->ctx, a->tl[0].x_in, a->ids, m->w.embed, BT, Dt);
	for (int l = 0; l < c->t_layers; l++) {
		mllama_hook(m, LVD_MLLAMA_FWD_BEGIN, l);
		tlayer_fwd(m, l, a->tl[l].capp);
		mllama_hook(m, LVD_MLLAMA_FWD_END, l);
	}
	lvd_rmsnorm_fwd(m->ctx, a->normed, a->norm_r, a->norm_in, m->w.norm, BT, Dt, c->t_eps);
	if (a->logits) /* else the fused head runs with the loss (mllama_model.c) */
		mllama_lin_fwd(m, a->logits, NULL, NULL, a->normed, m->w.lm_head, NULL, NULL, BT, Dt, c->vocab, 0);
}

/* ---- backward ------------------------------------------------------------------------- */

struct tscratch {
	float *dx, *dln, *dm, *datt, *dq, *dqraw, *dk, *dv, *dkraw, *dg, *du, *dact, *dcross;
	float *capp;   /* a recomputed cross layer's captured probabilities (NULL: none recomputed) */
};

static size_t text_scratch(const struct lvd_mllama *m, float *base, struct tscratch *s)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t off = 0, B = m->batch.B, T = m->batch.T, BT = B * T, BS = B * (size_t)m->S, Dt = c->t_hidden;
	size_t KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter;
	size_t BK = BT > BS ? BT : BS;
	s->dx = mllama_take(base, &off, BT * Dt);
	s->dln = mllama_take(base, &off, BT * Dt);
	s->dm = mllama_take(base, &off, BT * Dt);
	s->datt = mllama_take(base, &off, BT * Dt);
	s->dq = mllama_take(base, &off, BT * Dt);
	s->dqraw = mllama_take(base, &off, BT * Dt);
	s->dk = mllama_take(base, &off, BK * KV);
	s->dv = mllama_take(base, &off, BK * KV);
	s->dkraw = mllama_take(base, &off, BS * KV + 1);
	s->dg = mllama_take(base, &off, BT * It);
	s->du = mllama_take(base, &off, BT * It);
	s->dact = mllama_take(base, &off, BT * It);
	s->dcross = mllama_take(base, &off, BS * Dt + 1);
	int any = 0;
	size_t ncap = m->batch.cap_off ? (size_t)m->batch.cap_off[B] : 0;
	for (int l = 0; l < c->t_layers; l++)
		any |= trecomp(m, l) && m->w.tl[l].cross;
	s->capp = any && m->have_image && ncap ? mllama_take(base, &off, (size_t)c->t_heads * ncap * m->S) : NULL;
	return off;
}

static void tlin_bwd(void *user, enum lvd_llama_site s, float *dx, float *dW, const float *dout, const float *x,
		     const float *W, int N, int IC, int OC)
{
	struct tlin_user *u = user;
	struct tlayer_a *A = &u->m->a.tl[u->l];
	mllama_lin_bwd(u->m, dx, dW, NULL, dout, x, W, A->u[s], A->xd[s], tsite_mut(u->m, u->l, (int)s), N, IC, OC,
		       tseed(u->m, u->l, (int)s));
}

static void tlayer_bwd(struct lvd_mllama *m, int l, struct tscratch *s, const float *dprobs)
{
	const struct lvd_mllama_config *c = &m->c;
	struct tlayer_a *A = &m->a.tl[l];
	const struct tlayer_w *W = &m->w.tl[l];
	/* a frozen layer (lvd_mllama_freeze) passes no weight-gradient pointers: the ops
	 * then compute the input gradients only */
	static const struct tlayer_w none;
	int lfrozen = (m->frozen_groups & (W->cross ? LVD_MLLAMA_CROSS : LVD_MLLAMA_TEXT)) != 0;
	const struct tlayer_w *G = lfrozen ? &none : &m->g.tl[l];
	int base = mllama_train_base(m) && !lfrozen;
	int B = m->batch.B, T = m->batch.T, BT = B * T, S = m->S, Dt = c->t_hidden, H = c->t_heads;
	int KH = c->t_kv_heads, hd = c->t_head_dim, KV = KH * hd, It = c->t_inter;
	size_t BTD = (size_t)BT * Dt, BTI = (size_t)BT * It;
	float *dx = s->dx;
	if (W->cross && !m->have_image)
		return;
	if (!W->cross) {
		/* the Llama self-attention layer's backward (lib/models/llama_layer.c); linear
		 * weight gradients are gated inside mllama_lin_bwd, the norms' here */
		struct self_layer sl;
		self_layer(m, l, &sl);
		struct lvd_llama_layer_g lg = { base ? G->ln1 : NULL, G->q, G->k, G->v, G->o, base ? G->ln2 : NULL,
						G->gate, G->up, G->down };
		struct lvd_llama_layer_s ls = { s->dln, s->dm, s->datt, s->dq, s->dk, s->dv, s->dg, s->du, s->dact };
		lvd_llama_layer_bwd(m->ctx, dx, &ls, &sl.a, A->x_in, &sl.w, &lg, NULL, m->a.pos, sl.freq, &sl.d, tlin_bwd,
				    &sl.u);
		return;
	}
	/* gated cross-attention layer. MLP branch: out = x_mid + tanh(mlp_gate)·rowmask·m_out */
	lvd_buf_zero(m->ctx, s->dm, BTD * sizeof(float));
	lvd_gated_residual_bwd(m->ctx, s->dm, base ? G->mlp_gate : NULL, dx, A->m_out, W->mlp_gate, m->a.rowmask, BT,
			       Dt);
	lvd_buf_zero(m->ctx, s->dact, BTI * sizeof(float));
	mllama_lin_bwd(m, s->dact, G->down, NULL, s->dm, A->act, W->down, A->u[L_M3], A->xd[L_M3],
		       tsite_mut(m, l, L_M3), BT, It, Dt, tseed(m, l, L_M3));
	lvd_buf_zero(m->ctx, s->dg, BTI * sizeof(float));
	lvd_buf_zero(m->ctx, s->du, BTI * sizeof(float));
	lvd_swiglu_bwd(m->ctx, s->dg, s->du, s->dact, A->g, A->up, BTI);
	lvd_buf_zero(m->ctx, s->dln, BTD * sizeof(float));
	mllama_lin_bwd(m, s->dln, G->gate, NULL, s->dg, A->ln2, W->gate, A->u[L_M1], A->xd[L_M1],
		       tsite_mut(m, l, L_M1), BT, Dt, It, tseed(m, l, L_M1));
	mllama_lin_bwd(m, s->dln, G->up, NULL, s->du, A->ln2, W->up, A->u[L_M2], A->xd[L_M2],
		       tsite_mut(m, l, L_M2), BT, Dt, It, tseed(m, l, L_M2));
	lvd_rmsnorm_bwd(m->ctx, dx, base ? G->ln2 : NULL, s->dln, A->x_mid, W->ln2, A->ln2_r, BT, Dt);
	/* attention branch: x_mid = x_in + tanh(attn_gate)·o_out */
	lvd_buf_zero(m->ctx, s->dm, BTD * sizeof(float));
	lvd_gated_residual_bwd(m->ctx, s->dm, base ? G->attn_gate : NULL, dx, A->o_out, W->attn_gate, NULL, BT, Dt);
	lvd_buf_zero(m->ctx, s->datt, BTD * sizeof(float));
	mllama_lin_bwd(m, s->datt, G->o, NULL, s->dm, A->att, W->o, A->u[L_O], A->xd[L_O],
		       tsite_mut(m, l, L_O), BT, Dt, Dt, tseed(m, l, L_O));
	size_t BKV = (size_t)B * S * KV;
	lvd_buf_zero(m->ctx, s->dq, BTD * sizeof(float));
	lvd_buf_zero(m->ctx, s->dk, BKV * sizeof(float));
	lvd_buf_zero(m->ctx, s->dv, BKV * sizeof(float));
	float scale = 1.0f / sqrtf((float)hd);
	lvd_buf_zero(m->ctx, s->dln, BTD * sizeof(float));
	if (m->batch.meta_row_mask)
		lvd_row_mask(m->ctx, s->datt, m->a.rowmask, BT, Dt);
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = m->a.xbias };
	struct lvd_attn_capture cp = { m->a.cap_rows, m->a.cap_off };
	lvd_attn_bwd(m->ctx, s->dq, s->dk, s->dv, A->stats, s->datt, dprobs, A->q, A->k, A->v, &mk, &cp, scale, B, T, S,
		     H, KH, hd);
	lvd_buf_zero(m->ctx, s->dqraw, BTD * sizeof(float));
	lvd_rmsnorm_bwd(m->ctx, s->dqraw, base ? G->q_norm : NULL, s->dq, A->qraw, W->q_norm, A->q_r, BT * H, hd);
	lvd_buf_zero(m->ctx, s->dkraw, BKV * sizeof(float));
	lvd_rmsnorm_bwd(m->ctx, s->dkraw, base ? G->k_norm : NULL, s->dk, A->kraw, W->k_norm, A->k_r, B * S * KH, hd);
	mllama_lin_bwd(m, s->dln, G->q, NULL, s->dqraw, A->ln1, W->q, A->u[L_Q], A->xd[L_Q],
		       tsite_mut(m, l, L_Q), BT, Dt, Dt, tseed(m, l, L_Q));
	mllama_lin_bwd(m, s->dcross, G->k, NULL, s->dkraw, m->a.cross, W->k, A->u[L_K], A->xd[L_K],
		       tsite_mut(m, l, L_K), B * S, Dt, KV, tseed(m, l, L_K));
	mllama_lin_bwd(m, s->dcross, G->v, NULL, s->dv, m->a.cross, W->v, A->u[L_V], A->xd[L_V],
		       tsite_mut(m, l, L_V), B * S, Dt, KV, tseed(m, l, L_V));
	lvd_rmsnorm_bwd(m->ctx, dx, base ? G->ln1 : NULL, s->dln, A->x_in, W->ln1, A->ln1_r, BT, Dt);
}

/* Layer l's forward again from its kept input (lvd_mllama_set_recompute), into the
 * shared region, right before its backward: the same ops on the same inputs give the
 * same bits. Its output (the next layer's input or norm_in, not read any more) is
 * rewritten with the values it holds; the captured probabilities go to scratch and, where
 * the host can read them, must equal the forward's bit for bit — those are what the
 * caller's loss on the maps saw, and the backward differentiates these. */
static void tlayer_recompute(struct lvd_mllama *m, int l, float *capp)
{
	const struct tlayer_a *A = &m->a.tl[l];
	tlayer_fwd(m, l, A->capp ? capp : NULL);
	size_t n = (size_t)m->c.t_heads * m->a.ncap * m->S;
	if (A->capp && n && m->ctx->backend == LVD_BACKEND_CPU) {
		LVD_ASSERTF(!memcmp(capp, A->capp, n * sizeof(float)),
			    "mllama: layer %d: the recomputed cross-attention probabilities differ from the forward's", l);
	}
}

size_t mllama_text_bwd_scratch(const struct lvd_mllama *m)
{
	struct tscratch s;
	return text_scratch(m, NULL, &s);
}

const float *mllama_text_bwd(struct lvd_mllama *m, const float *dlogits, float hscale, const float *const *dprobs,
			     float *scratch)
{
	const struct lvd_mllama_config *c = &m->c;
	struct tscratch s;
	text_scratch(m, scratch, &s);
	struct mllama_acts *a = &m->a;
	int base = mllama_train_base(m) && !(m->frozen_groups & LVD_MLLAMA_TEXT);   /* lm_head, norm, embeddings */
	int B = m->batch.B, T = m->batch.T, BT = B * T, Dt = c->t_hidden, V = c->vocab;
	lvd_buf_zero(m->ctx, s.dln, sizeof(float) * (size_t)BT * Dt);
	if (dlogits)
		mllama_lin_bwd(m, s.dln, base ? m->g.lm_head : NULL, NULL, dlogits, a->normed, m->w.lm_head, NULL, NULL,
			       NULL, BT, Dt, V, 0);
	else if (hscale != 0.0f)
		lvd_lmhead_xent_bwd(m->ctx, s.dln, base ? m->g.lm_head : NULL, a->lse, a->normed, m->w.lm_head,
				    a->targets, hscale, BT, Dt, V, m->xent_chunk);
	lvd_buf_zero(m->ctx, s.dx, sizeof(float) * (size_t)BT * Dt);
	lvd_rmsnorm_bwd(m->ctx, s.dx, base ? m->g.norm : NULL, s.dln, a->norm_in, m->w.norm, a->norm_r, BT, Dt);
	if (m->have_image)
		lvd_buf_zero(m->ctx, s.dcross, sizeof(float) * (size_t)B * m->S * Dt);
	for (int l = c->t_layers - 1; l >= 0; l--) {
		const float *dp = NULL;
		if (dprobs && m->w.tl[l].cross)
			for (int k = 0; k < c->n_cross; k++)
				if (c->cross_layers[k] == l)
					dp = dprobs[k];
		mllama_hook(m, LVD_MLLAMA_BWD_BEGIN, l); /* before a recompute: it needs the weights */
		if (trecomp(m, l) && !(m->w.tl[l].cross && !m->have_image))
			tlayer_recompute(m, l, s.capp);
		tlayer_bwd(m, l, &s, dp);
		mllama_hook(m, LVD_MLLAMA_BWD_END, l);
	}
	if (base) {
		/* nn.Embedding(padding_idx = pad_token_id): that row gets no gradient. One op
		 * call per run of rows without a pad (the ids read from the host copy); the
		 * rows are still added in order */
		const int *hid = mllama_dev_host_ids(m);
		for (int r = 0; r < BT;) {
			int e = r;
			while (e < BT && hid[e] != c->pad_token_id)
				e++;
			if (e > r)
				lvd_embedding_bwd(m->ctx, m->g.embed, s.dx + (size_t)r * Dt, a->ids + r, e - r, Dt);
			r = e + 1;
		}
	}
	return m->have_image ? s.dcross : NULL;
}
