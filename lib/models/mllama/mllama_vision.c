/* lib/models/mllama/mllama_vision.c — mllama vision encoder + projector, forward and
 * backward (HF MllamaVisionModel numerics, transformers 5.x).
 *
 * Letters: NV = B·M images, TL tiles, P1 = patches + CLS, Pp = P1 padded to a multiple
 * of 8, L = TL·Pp tokens per image, D vision width, I MLP width, K = #intermediates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/mllama/mllama_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/vembed.h"

/* Whether vision layer l keeps only its input and is recomputed before its backward
 * (LVD_MLLAMA_RECOMPUTE_VISION): every layer of the tower, local and global. */
static int vrecomp(const struct lvd_mllama *m, int l)
{
	(void)l;
	return (m->recompute & LVD_MLLAMA_RECOMPUTE_VISION) != 0;
}

/* Vision layer l's activations other than x_in, carved at *off. */
static void vlayer_carve(struct lvd_mllama *m, struct vlayer_a *v, int l, float *base, size_t *off)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t N = (size_t)m->NV * m->L, D = c->v_hidden, I = c->v_inter, H = c->v_heads, r = m->lora_r;
	v->ln1 = mllama_take(base, off, N * D);
	v->ln1_m = mllama_take(base, off, N);
	v->ln1_r = mllama_take(base, off, N);
	v->q = mllama_take(base, off, N * D);
	v->k = mllama_take(base, off, N * D);
	v->v = mllama_take(base, off, N * D);
	v->stats = mllama_take(base, off, (size_t)m->NV * H * m->L * 2);
	v->att = mllama_take(base, off, N * D);
	v->o_out = mllama_take(base, off, N * D);
	v->x_mid = mllama_take(base, off, N * D);
	v->ln2 = mllama_take(base, off, N * D);
	v->ln2_m = mllama_take(base, off, N);
	v->ln2_r = mllama_take(base, off, N);
	v->h1 = mllama_take(base, off, N * I);
	v->h1g = mllama_take(base, off, N * I);
	v->m_out = mllama_take(base, off, N * D);
	for (int s = 0; s < L_NSITE; s++) {
		const struct mllama_lora_site *st = m->vsite ? &m->vsite[(size_t)l * L_NSITE + s] : NULL;
		v->u[s] = v->xd[s] = NULL;
		if (st && st->l) {
			v->u[s] = mllama_take(base, off, N * r);
			if (m->lora_p > 0)
				v->xd[s] = mllama_take(base, off, N * st->l->in);
		}
	}
}

size_t mllama_vision_acts(struct lvd_mllama *m, struct mllama_acts *a, float *base)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t off = 0, NV = m->NV, TL = c->v_max_tiles, D = c->v_hidden;
	size_t N = NV * m->L, np = m->np, K = (size_t)c->v_channels * c->v_patch * c->v_patch;
	int nl = c->v_layers + c->v_global_layers;
	a->cols = mllama_take(base, &off, NV * TL * np * K);
	a->patch_out = mllama_take(base, &off, NV * TL * np * D);
	a->h0 = mllama_take(base, &off, NV * TL * m->P1 * D);
	a->lnpre_m = mllama_take(base, &off, NV * TL * m->P1);
	a->lnpre_r = mllama_take(base, &off, NV * TL * m->P1);
	a->local_out = mllama_take(base, &off, N * D);
	a->lnpost_m = mllama_take(base, &off, N);
	a->lnpost_r = mllama_take(base, &off, N);
	a->g_out = mllama_take(base, &off, N * D);
	a->feats = mllama_take(base, &off, NV * TL * m->P1 * c->v_out_dim);
	a->cross = mllama_take(base, &off, NV * TL * m->P1 * c->t_hidden);
	a->pad = (uint8_t *)mllama_take(base, &off, (N + 3) / 4);
	for (int l = 0; l < nl; l++) {
		a->vl[l].x_in = mllama_take(base, &off, N * D);
		if (!vrecomp(m, l))
			vlayer_carve(m, &a->vl[l], l, base, &off);
	}
	/* the recomputed layers share one region as large as the largest of them: a layer's
	 * buffers hold data from its (re)computation to the next layer's only */
	size_t end = off;
	for (int l = 0; l < nl; l++) {
		size_t o = off;
		if (vrecomp(m, l))
			vlayer_carve(m, &a->vl[l], l, base, &o);
		if (o > end)
			end = o;
	}
	return end;
}

static const struct lvd_mllama_lora *vsite(const struct lvd_mllama *m, int l, int s)
{
	return m->vsite ? m->vsite[(size_t)l * L_NSITE + s].l : NULL;
}

static uint64_t vseed(const struct lvd_mllama *m, int l, int s)
{
	return m->lora_seed * 1000003u + (uint64_t)m->batch.dropout_step * 7919u + (uint64_t)l * 16 + s;
}

static void vlayer_fwd(struct lvd_mllama *m, int l, float *x_out)
{
	const struct lvd_mllama_config *c = &m->c;
	struct vlayer_a *A = &m->a.vl[l];
	const struct vlayer_w *W = &m->w.vl[l];
	int D = c->v_hidden, I = c->v_inter, H = c->v_heads, N = m->NV * m->L;
	lvd_layernorm_fwd(m->ctx, A->ln1, A->ln1_m, A->ln1_r, A->x_in, W->ln1_w, W->ln1_b, N, D, c->v_eps);
	mllama_lin_fwd(m, A->q, A->u[L_Q], A->xd[L_Q], A->ln1, W->q, NULL, vsite(m, l, L_Q), N, D, D, vseed(m, l, L_Q));
	mllama_lin_fwd(m, A->k, A->u[L_K], A->xd[L_K], A->ln1, W->k, NULL, vsite(m, l, L_K), N, D, D, vseed(m, l, L_K));
	mllama_lin_fwd(m, A->v, A->u[L_V], A->xd[L_V], A->ln1, W->v, NULL, vsite(m, l, L_V), N, D, D, vseed(m, l, L_V));
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_PADPAIR, .pad = m->a.pad };
	lvd_attn_fwd(m->ctx, A->att, A->stats, NULL, A->q, A->k, A->v, &mk, NULL, 1.0f / sqrtf((float)(D / H)), m->NV,
			m->L, m->L, H, H, D / H);
	mllama_lin_fwd(m, A->o_out, A->u[L_O], A->xd[L_O], A->att, W->o, NULL, vsite(m, l, L_O), N, D, D,
		       vseed(m, l, L_O));
	lvd_gated_residual_fwd(m->ctx, A->x_mid, A->x_in, A->o_out, W->gate_attn, NULL, N, D);
	lvd_layernorm_fwd(m->ctx, A->ln2, A->ln2_m, A->ln2_r, A->x_mid, W->ln2_w, W->ln2_b, N, D, c->v_eps);
	mllama_lin_fwd(m, A->h1, A->u[L_M1], A->xd[L_M1], A->ln2, W->fc1_w, W->fc1_b, vsite(m, l, L_M1), N, D, I,
		       vseed(m, l, L_M1));
	lvd_gelu_fwd(m->ctx, A->h1g, A->h1, (size_t)N * I, LVD_GELU_EXACT);
	mllama_lin_fwd(m, A->m_out, A->u[L_M2], A->xd[L_M2], A->h1g, W->fc2_w, W->fc2_b, vsite(m, l, L_M2), N, I, D,
		       vseed(m, l, L_M2));
	lvd_gated_residual_fwd(m->ctx, x_out, A->x_mid, A->m_out, W->gate_ffn, NULL, N, D);
}

/* output buffer of vision layer l (input of the next, or the stack outputs) */
static float *vlayer_out(struct lvd_mllama *m, int l)
{
	const struct lvd_mllama_config *c = &m->c;
	if (l == c->v_layers - 1)
		return m->a.local_out;
	if (l == c->v_layers + c->v_global_layers - 1)
		return m->a.g_out;
	return m->a.vl[l + 1].x_in;
}

void mllama_vision_fwd(struct lvd_mllama *m)
{
	const struct lvd_mllama_config *c = &m->c;
	struct mllama_acts *a = &m->a;
	const struct mllama_w *w = &m->w;
	const struct lvd_mllama_batch *b = &m->batch;
	int NV = m->NV, TL = c->v_max_tiles, D = c->v_hidden, P1 = m->P1, Pp = m->Pp, L = m->L, np = m->np;
	int C = c->v_channels, ps = c->v_patch, HW = c->v_image_size;
	size_t K = (size_t)C * ps * ps, tile_px = (size_t)C * HW * HW;
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			lvd_patch_unfold(m->ctx, a->cols + ((size_t)n * TL + t) * np * K,
					    b->pixel_values + ((size_t)n * TL + t) * tile_px, C, HW, HW, ps);
	mllama_lin_fwd(m, a->patch_out, NULL, NULL, a->cols, w->patch, NULL, NULL, NV * TL * np, (int)K, D, 0);
	lvd_vembed_fwd(m->ctx, a->h0, a->patch_out, b->aspect_ratio_ids, w->cls, w->pre_tile, w->pre_gate, w->pos,
		       w->tile_pos, w->pos_gate, NV, TL, np, D);
	float *x = a->vl[0].x_in;
	lvd_buf_zero(m->ctx, x, sizeof(float) * (size_t)NV * L * D);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++) {
			size_t r = (size_t)n * TL + t;
			lvd_layernorm_fwd(m->ctx, x + r * Pp * D, a->lnpre_m + r * P1, a->lnpre_r + r * P1, a->h0 + r * P1 * D,
					     w->ln_pre_w, w->ln_pre_b, P1, D, c->v_eps);
		}
	lvd_vembed_pad_flags(m->ctx, a->pad, b->aspect_ratio_mask, NV, TL, P1, Pp);
	for (int l = 0; l < c->v_layers; l++)
		vlayer_fwd(m, l, vlayer_out(m, l));
	float *post = c->v_global_layers ? a->vl[c->v_layers].x_in : a->g_out;
	lvd_layernorm_fwd(m->ctx, post, a->lnpost_m, a->lnpost_r, a->local_out, w->ln_post_w, w->ln_post_b, NV * L, D,
			     c->v_eps);
	lvd_vembed_tile_add_fwd(m->ctx, post, b->aspect_ratio_ids, w->post_tile, w->post_gate, NV, TL, Pp, D);
	for (int l = c->v_layers; l < c->v_layers + c->v_global_layers; l++)
		vlayer_fwd(m, l, vlayer_out(m, l));
	const float *inter[LVD_MLLAMA_MAX_LIST];
	for (int k = 0; k < c->v_n_inter; k++)
		inter[k] = vlayer_out(m, c->v_inter_idx[k]);
	LVD_ASSERT(c->v_out_dim == D * (1 + c->v_n_inter));
	lvd_vembed_gather_fwd(m->ctx, a->feats, a->g_out, inter, NV, TL, P1, Pp, D, c->v_n_inter);
	mllama_lin_fwd(m, a->cross, NULL, NULL, a->feats, w->proj_w, w->proj_b, NULL, NV * TL * P1, c->v_out_dim,
		       c->t_hidden, 0);
}

size_t mllama_vision_bwd_scratch(const struct lvd_mllama *m)
{
	const struct lvd_mllama_config *c = &m->c;
	size_t N = (size_t)m->NV * m->L, D = c->v_hidden, I = c->v_inter, off = 0;
	size_t rows = (size_t)m->NV * c->v_max_tiles * m->P1;
	mllama_take(NULL, &off, rows * c->v_out_dim);            /* dfeats */
	mllama_take(NULL, &off, N * D);                          /* dx */
	mllama_take(NULL, &off, N * D);                          /* dx2 */
	for (int i = 0; i < 6; i++)
		mllama_take(NULL, &off, N * D);                  /* dm dln datt dq dk dv */
	mllama_take(NULL, &off, N * I);                          /* dh1g */
	mllama_take(NULL, &off, N * I);                          /* dh1 */
	mllama_take(NULL, &off, rows * D);                       /* dh0 */
	mllama_take(NULL, &off, (size_t)m->NV * c->v_max_tiles * m->np * D); /* dpatch */
	return off;
}

/* Whether the backward goes below the projector: the tower is not frozen
 * (lvd_mllama_freeze) and has gradients to take — its parameters' (full fine-tuning) or
 * a LoRA site in its layers (a LoRA model whose targets match only text modules has
 * none: its vision backward would compute input gradients nobody reads). */
static int vlayers_grad(const struct lvd_mllama *m)
{
	if (m->frozen_groups & LVD_MLLAMA_VISION)
		return 0;
	if (mllama_train_base(m))
		return 1;
	size_t n = m->vsite ? (size_t)(m->c.v_layers + m->c.v_global_layers) * L_NSITE : 0;
	for (size_t i = 0; i < n; i++)
		if (m->vsite[i].l)
			return 1;
	return 0;
}

/* Layer l's forward again from its kept input (LVD_MLLAMA_RECOMPUTE_VISION), into the
 * shared region, right before its backward: the same ops on the same inputs (LoRA
 * dropout seeded per step and site) give the same bits. Its output (the next layer's
 * input, local_out or g_out: not read by the backward any more) is rewritten with the
 * values it holds. */
static void vlayer_recompute(struct lvd_mllama *m, int l)
{
	if (vrecomp(m, l))
		vlayer_fwd(m, l, vlayer_out(m, l));
}

static void vlayer_bwd(struct lvd_mllama *m, int l, float *dx, float **s)
{
	const struct lvd_mllama_config *c = &m->c;
	struct vlayer_a *A = &m->a.vl[l];
	const struct vlayer_w *W = &m->w.vl[l];
	struct vlayer_w *G = &m->g.vl[l];
	int base = mllama_train_base(m);
	int D = c->v_hidden, I = c->v_inter, H = c->v_heads, N = m->NV * m->L;
	size_t ND = (size_t)N * D, NI = (size_t)N * I;
	float *dm = s[0], *dln = s[1], *datt = s[2], *dq = s[3], *dk = s[4], *dv = s[5], *dh1g = s[6], *dh1 = s[7];
	/* MLP branch */
	lvd_buf_zero(m->ctx, dm, ND * sizeof(float));
	lvd_gated_residual_bwd(m->ctx, dm, base ? G->gate_ffn : NULL, dx, A->m_out, W->gate_ffn, NULL, N, D);
	lvd_buf_zero(m->ctx, dh1g, NI * sizeof(float));
	mllama_lin_bwd(m, dh1g, G->fc2_w, G->fc2_b, dm, A->h1g, W->fc2_w, A->u[L_M2], A->xd[L_M2],
		       m->vsite ? m->vsite[(size_t)l * L_NSITE + L_M2].l : NULL, N, I, D, vseed(m, l, L_M2));
	lvd_buf_zero(m->ctx, dh1, NI * sizeof(float));
	lvd_gelu_bwd(m->ctx, dh1, dh1g, A->h1, NI, LVD_GELU_EXACT);
	lvd_buf_zero(m->ctx, dln, ND * sizeof(float));
	mllama_lin_bwd(m, dln, G->fc1_w, G->fc1_b, dh1, A->ln2, W->fc1_w, A->u[L_M1], A->xd[L_M1],
		       m->vsite ? m->vsite[(size_t)l * L_NSITE + L_M1].l : NULL, N, D, I, vseed(m, l, L_M1));
	lvd_layernorm_bwd(m->ctx, dx, base ? G->ln2_w : NULL, base ? G->ln2_b : NULL, dln, A->x_mid, W->ln2_w, A->ln2_m,
			     A->ln2_r, N, D);
	/* attention branch */
	lvd_buf_zero(m->ctx, dm, ND * sizeof(float));
	lvd_gated_residual_bwd(m->ctx, dm, base ? G->gate_attn : NULL, dx, A->o_out, W->gate_attn, NULL, N, D);
	lvd_buf_zero(m->ctx, datt, ND * sizeof(float));
	mllama_lin_bwd(m, datt, G->o, NULL, dm, A->att, W->o, A->u[L_O], A->xd[L_O],
		       m->vsite ? m->vsite[(size_t)l * L_NSITE + L_O].l : NULL, N, D, D, vseed(m, l, L_O));
	lvd_buf_zero(m->ctx, dq, ND * sizeof(float));
	lvd_buf_zero(m->ctx, dk, ND * sizeof(float));
	lvd_buf_zero(m->ctx, dv, ND * sizeof(float));
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_PADPAIR, .pad = m->a.pad };
	lvd_attn_bwd(m->ctx, dq, dk, dv, A->stats, datt, NULL, A->q, A->k, A->v, &mk, NULL, 1.0f / sqrtf((float)(D / H)),
			m->NV, m->L, m->L, H, H, D / H);
	lvd_buf_zero(m->ctx, dln, ND * sizeof(float));
	static const int sites[3] = { L_Q, L_K, L_V };
	float *dsrc[3] = { dq, dk, dv };
	const float *Ws[3] = { W->q, W->k, W->v };
	float *Gs[3] = { G->q, G->k, G->v };
	for (int j = 0; j < 3; j++)
		mllama_lin_bwd(m, dln, Gs[j], NULL, dsrc[j], A->ln1, Ws[j], A->u[sites[j]], A->xd[sites[j]],
			       m->vsite ? m->vsite[(size_t)l * L_NSITE + sites[j]].l : NULL, N, D, D,
			       vseed(m, l, sites[j]));
	lvd_layernorm_bwd(m->ctx, dx, base ? G->ln1_w : NULL, base ? G->ln1_b : NULL, dln, A->x_in, W->ln1_w, A->ln1_m,
			     A->ln1_r, N, D);
}

void mllama_vision_bwd(struct lvd_mllama *m, const float *dcross, float *scratch)
{
	const struct lvd_mllama_config *c = &m->c;
	struct mllama_acts *a = &m->a;
	const struct mllama_w *w = &m->w;
	struct mllama_w *g = &m->g;
	const struct lvd_mllama_batch *b = &m->batch;
	int base = mllama_train_base(m);
	int NV = m->NV, TL = c->v_max_tiles, D = c->v_hidden, P1 = m->P1, Pp = m->Pp, L = m->L, np = m->np;
	int OD = c->v_out_dim, K5 = c->v_n_inter, rows = NV * TL * P1;
	size_t N = (size_t)NV * L, off = 0;
	float *dfeats = mllama_take(scratch, &off, (size_t)rows * OD);
	float *dx = mllama_take(scratch, &off, N * D);
	float *dx2 = mllama_take(scratch, &off, N * D);
	float *s[8];
	for (int i = 0; i < 6; i++)
		s[i] = mllama_take(scratch, &off, N * D);
	s[6] = mllama_take(scratch, &off, N * c->v_inter);
	s[7] = mllama_take(scratch, &off, N * c->v_inter);
	float *dh0 = mllama_take(scratch, &off, (size_t)rows * D);
	float *dpatch = mllama_take(scratch, &off, (size_t)NV * TL * np * D);

	lvd_buf_zero(m->ctx, dfeats, sizeof(float) * rows * OD);
	int vgrad = vlayers_grad(m);
	int pbase = base && !(m->frozen_groups & LVD_MLLAMA_PROJECTOR);
	mllama_lin_bwd(m, vgrad ? dfeats : NULL, pbase ? g->proj_w : NULL, pbase ? g->proj_b : NULL, dcross,
		       a->feats, w->proj_w, NULL, NULL, NULL, rows, OD, c->t_hidden, 0);
	if (!vgrad)
		return;   /* no gradient of the tower wanted: nothing below the projector runs */
	/* scatter the final-output part of the features */
	lvd_buf_zero(m->ctx, dx, sizeof(float) * N * D);
	lvd_vembed_gather_bwd(m->ctx, dx, dfeats, 0, NV, TL, P1, Pp, D, K5);
	for (int l = c->v_layers + c->v_global_layers - 1; l >= c->v_layers; l--) {
		vlayer_recompute(m, l);
		vlayer_bwd(m, l, dx, s);
	}
	/* post-tile embedding, then layernorm_post */
	if (base)
		lvd_vembed_tile_add_bwd(m->ctx, g->post_tile, g->post_gate, dx, b->aspect_ratio_ids, w->post_tile,
					w->post_gate, NV, TL, Pp, D);
	lvd_buf_zero(m->ctx, dx2, sizeof(float) * N * D);
	lvd_layernorm_bwd(m->ctx, dx2, base ? g->ln_post_w : NULL, base ? g->ln_post_b : NULL, dx, a->local_out,
			     w->ln_post_w, a->lnpost_m, a->lnpost_r, (int)N, D);
	dx = dx2;
	for (int l = c->v_layers - 1; l >= 0; l--) {
		for (int k = 0; k < K5; k++)
			if (c->v_inter_idx[k] == l)
				lvd_vembed_gather_bwd(m->ctx, dx, dfeats, 1 + k, NV, TL, P1, Pp, D, K5);
		vlayer_recompute(m, l);
		vlayer_bwd(m, l, dx, s);
	}
	if (!base)
		return;
	/* layernorm_pre on real tokens */
	lvd_buf_zero(m->ctx, dh0, sizeof(float) * (size_t)rows * D);
	for (int r = 0; r < NV * TL; r++)
		lvd_layernorm_bwd(m->ctx, dh0 + (size_t)r * P1 * D, g->ln_pre_w, g->ln_pre_b, dx + (size_t)r * Pp * D,
				     a->h0 + (size_t)r * P1 * D, w->ln_pre_w, a->lnpre_m + (size_t)r * P1,
				     a->lnpre_r + (size_t)r * P1, P1, D);
	lvd_buf_zero(m->ctx, dpatch, sizeof(float) * (size_t)NV * TL * np * D);
	lvd_vembed_bwd(m->ctx, dpatch, g->cls, g->pre_tile, g->pre_gate, g->pos, g->tile_pos, g->pos_gate, dh0,
		       b->aspect_ratio_ids, w->pre_tile, w->pre_gate, w->pos, w->tile_pos, w->pos_gate, NV, TL, np, D);
	size_t K = (size_t)c->v_channels * c->v_patch * c->v_patch;
	mllama_lin_bwd(m, NULL, g->patch, NULL, dpatch, a->cols, w->patch, NULL, NULL, NULL, NV * TL * np, (int)K, D, 0);
}
