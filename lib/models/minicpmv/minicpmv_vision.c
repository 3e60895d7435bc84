/* lib/models/minicpmv/minicpmv_vision.c — minicpmv vision tower (Idefics2/SigLIP NaViT
 * on patch strips: patch embedding, bucketed position ids, pre-LN layers with padded
 * keys masked, post LayerNorm) and the resampler (learned queries, kv projection, 2-D
 * sin-cos key positions, packed multi-head attention with its probabilities kept,
 * ln_post, proj) on the ops of lib/nn/ops; their training: per-layer activations kept
 * while training, the backward from d(resampled) and d(resampler probabilities) into
 * every vpm.* / resampler.* gradient (the tower's skipped when frozen).
 *
 * Letters: NI pictures, L = Lmax patches per picture (padded), N = NI·L vision rows, Dv
 * vision width, Iv vision MLP width, Hv vision heads, D text width, Q queries, Hr
 * resampler heads, K = C·ps·ps patch features. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/softmax.h"

/* gradients of the vision layer / the whole vision tower + resampler (mirrors mcv_weights) */
struct vgrad_layer {
	float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
	float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};
struct vgrads {
	float *patch_w, *patch_b, *pos, *post_w, *post_b;
	struct vgrad_layer *vl;
	float *query, *kv_proj, *in_w, *in_b, *out_w, *out_b;
	float *lnq_w, *lnq_b, *lnkv_w, *lnkv_b, *lnpost_w, *lnpost_b, *proj;
};

struct mcv_vtrain {
	int tune_vision;
	int np;                          /* parameters */
	struct lvd_minicpmv_vparam *p;
	char (*names)[96];
	float *gblock;                   /* every gradient */
	size_t gn;
	struct vgrads g;
	struct mcv_vlayer_a *vl;         /* [v_layers] activation pointers (carved per forward) */
	float *scr;                      /* backward scratch */
	size_t scap;
};

void mcv_vision_carve(const struct lvd_minicpmv *m, struct mcv_vacts *a, float *base, size_t *off, int NI, int L)
{
	const struct lvd_minicpmv_config *c = &m->c;
	size_t N = (size_t)NI * L, Dv = c->v_hidden, Iv = c->v_inter, D = c->t_hidden, Q = c->query_num;
	size_t K = (size_t)c->v_channels * c->v_patch * c->v_patch;
	a->vl = m->vt ? m->vt->vl : NULL;
	/* the layers' shared buffers: only without per-layer ones (N·(5·Dv + 2·Iv) floats) */
	size_t sD = a->vl ? 0 : N * Dv, sI = a->vl ? 0 : N * Iv;
	a->cols = mcv_take(base, off, N * K);
	a->x = mcv_take(base, off, N * Dv);
	a->tmp = mcv_take(base, off, N * Dv);
	a->ln = mcv_take(base, off, sD);
	a->q = mcv_take(base, off, sD);
	a->k = mcv_take(base, off, sD);
	a->v = mcv_take(base, off, sD);
	a->att = mcv_take(base, off, sD);
	a->h1 = mcv_take(base, off, sI);
	a->h1g = mcv_take(base, off, sI);
	a->vbias = mcv_take(base, off, N * L);
	a->vstats = mcv_take(base, off, (size_t)NI * c->v_heads * L * 2);
	a->vision = mcv_take(base, off, N * Dv);
	a->vpost_m = mcv_take(base, off, N);
	a->vpost_r = mcv_take(base, off, N);
	for (int l = 0; a->vl && l < c->v_layers; l++) {
		struct mcv_vlayer_a *A = &a->vl[l];
		A->x_in = mcv_take(base, off, N * Dv);
		A->ln1 = mcv_take(base, off, N * Dv);
		A->ln1_m = mcv_take(base, off, N);
		A->ln1_r = mcv_take(base, off, N);
		A->q = mcv_take(base, off, N * Dv);
		A->k = mcv_take(base, off, N * Dv);
		A->v = mcv_take(base, off, N * Dv);
		A->stats = mcv_take(base, off, (size_t)NI * c->v_heads * L * 2);
		A->att = mcv_take(base, off, N * Dv);
		A->x_mid = mcv_take(base, off, N * Dv);
		A->ln2 = mcv_take(base, off, N * Dv);
		A->ln2_m = mcv_take(base, off, N);
		A->ln2_r = mcv_take(base, off, N);
		A->h1 = mcv_take(base, off, N * Iv);
		A->h1g = mcv_take(base, off, N * Iv);
	}
	a->kv = mcv_take(base, off, N * D);
	a->kvn = mcv_take(base, off, N * D);
	a->kpos = mcv_take(base, off, N * D);
	a->qn = mcv_take(base, off, Q * D);
	a->qp1 = mcv_take(base, off, Q * D);
	a->rg = mcv_take(base, off, c->r_heads * Q * D);
	a->ru = mcv_take(base, off, NI * c->r_heads * Q * D);
	a->ratt = mcv_take(base, off, NI * Q * D);
	a->rout = mcv_take(base, off, NI * Q * D);
	a->resampled = mcv_take(base, off, NI * Q * D);
	a->probs = mcv_take(base, off, NI * c->r_heads * Q * L);
	a->kv_m = mcv_take(base, off, N);
	a->kv_r = mcv_take(base, off, N);
	a->q_m = mcv_take(base, off, Q);
	a->q_r = mcv_take(base, off, Q);
	a->rpost = mcv_take(base, off, NI * Q * D);
	a->post_m = mcv_take(base, off, NI * Q);
	a->post_r = mcv_take(base, off, NI * Q);
	a->npatch = (int *)mcv_take(base, off, NI);
	a->pos_ids = (int *)mcv_take(base, off, N);
}

/* Idefics2 position ids of strip patch j of an n-patch picture: bucketize(j·(1/n),
 * boundaries, right=True) with boundaries = torch.arange(1/side, 1.0, 1/side) in fp32
 * (values start + k·step computed in double, as torch's CPU arange) */
static void pos_ids(int *out, int n, int L, int side)
{
	double step = 1.0 / side;
	int nb = (int)ceil((1.0 - step) / step);
	float inv = 1.0f / (float)n, top = (float)(1.0 - 1e-6);
	for (int j = 0; j < L; j++) {
		if (j >= n) {
			out[j] = 0;
			continue;
		}
		float f = (float)j * inv;
		if (f > top)
			f = top;
		int k = 0;
		while (k < nb && (float)(step + step * k) <= f)
			k++;
		out[j] = k;
	}
}

/* 2-D sin-cos key position of patch (r, col) into out[D]: column half then row half, each
 * [sin(p·ω_i), cos(p·ω_i)], ω_i = 1/10000^(i/(D/4)) for i < D/4 (fp32 as numpy's) */
static void sincos2d(float *out, int r, int col, int D)
{
	int q = D / 4;
	for (int half = 0; half < 2; half++) {
		float p = (float)(half ? r : col);
		float *o = out + half * (D / 2);
		for (int i = 0; i < q; i++) {
			float w = 1.0f / powf(10000.0f, (float)i / (float)q);
			float x = p * w;
			o[i] = sinf(x);
			o[q + i] = cosf(x);
		}
	}
}

void mcv_vision_fwd(struct lvd_minicpmv *m, struct mcv_vacts *a, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	int NI = b->NI, L = b->Lmax, N = NI * L, Dv = c->v_hidden, Iv = c->v_inter, Hv = c->v_heads, ps = c->v_patch;
	int C = c->v_channels, K = C * ps * ps;
	for (int i = 0; i < NI; i++)
		lvd_patch_unfold(ctx, a->cols + (size_t)i * L * K, b->pixel_values + (size_t)i * C * ps * L * ps, C, ps,
				 L * ps, ps);
	float *x0 = a->vl ? a->vl[0].x_in : a->x;   /* the first layer's input */
	lvd_linear_fwd(ctx, x0, a->cols, w->patch_w, w->patch_b, N, K, Dv);
	for (int i = 0; i < NI; i++) {
		int n = b->tgt_sizes[2 * i] * b->tgt_sizes[2 * i + 1];
		int *pid = a->pos_ids + (size_t)i * L;
		pos_ids(pid, n, L, c->v_side);
		float *bias = a->vbias + (size_t)i * L * L;
		for (int r = 0; r < L; r++)
			for (int j = 0; j < L; j++)
				bias[(size_t)r * L + j] = j < n ? 0.0f : -FLT_MAX;
		for (int j = 0; j < L; j++) {
			float *x = x0 + ((size_t)i * L + j) * Dv;
			const float *p = w->pos + (size_t)pid[j] * Dv;
			for (int d = 0; d < Dv; d++)
				x[d] += p[d];
		}
	}
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = a->vbias };
	float scale = 1.0f / sqrtf((float)(Dv / Hv));
	enum lvd_gelu_kind gk = c->v_gelu_tanh ? LVD_GELU_TANH : LVD_GELU_EXACT;
	/* inference: every layer works in place on the shared buffers */
	struct mcv_vlayer_a sh = { a->x, a->ln, NULL, NULL, a->q, a->k, a->v, a->vstats, a->att, a->x, a->ln, NULL, NULL,
				   a->h1, a->h1g };
	for (int l = 0; l < c->v_layers; l++) {
		const struct mcv_vlayer *W = &w->vl[l];
		const struct mcv_vlayer_a *A = a->vl ? &a->vl[l] : &sh;
		float *out = a->vl && l + 1 < c->v_layers ? a->vl[l + 1].x_in : a->x;
		lvd_layernorm_fwd(ctx, A->ln1, A->ln1_m, A->ln1_r, A->x_in, W->ln1_w, W->ln1_b, N, Dv, c->v_eps);
		lvd_linear_fwd(ctx, A->q, A->ln1, W->q_w, W->q_b, N, Dv, Dv);
		lvd_linear_fwd(ctx, A->k, A->ln1, W->k_w, W->k_b, N, Dv, Dv);
		lvd_linear_fwd(ctx, A->v, A->ln1, W->v_w, W->v_b, N, Dv, Dv);
		lvd_attn_fwd(ctx, A->att, A->stats, NULL, A->q, A->k, A->v, &mk, NULL, scale, NI, L, L, Hv, Hv, Dv / Hv);
		lvd_linear_fwd(ctx, a->tmp, A->att, W->o_w, W->o_b, N, Dv, Dv);
		lvd_gated_residual_fwd(ctx, A->x_mid, A->x_in, a->tmp, NULL, NULL, N, Dv);
		lvd_layernorm_fwd(ctx, A->ln2, A->ln2_m, A->ln2_r, A->x_mid, W->ln2_w, W->ln2_b, N, Dv, c->v_eps);
		lvd_linear_fwd(ctx, A->h1, A->ln2, W->fc1_w, W->fc1_b, N, Dv, Iv);
		lvd_gelu_fwd(ctx, A->h1g, A->h1, (size_t)N * Iv, gk);
		lvd_linear_fwd(ctx, a->tmp, A->h1g, W->fc2_w, W->fc2_b, N, Iv, Dv);
		lvd_gated_residual_fwd(ctx, out, A->x_mid, a->tmp, NULL, NULL, N, Dv);
	}
	lvd_layernorm_fwd(ctx, a->vision, a->vpost_m, a->vpost_r, a->x, w->post_w, w->post_b, N, Dv, c->v_eps);
}

/* resampler (nn.MultiheadAttention, sequence-first in the hub code; here token-major):
 * kv = ln_kv(kv_proj(vision)); q = ln_q(query); out = MHA(q, kv + pos, kv, key padding);
 * resampled = ln_post(out) · proj */
void mcv_resampler_fwd(struct lvd_minicpmv *m, struct mcv_vacts *a, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	int NI = b->NI, L = b->Lmax, N = NI * L, Dv = c->v_hidden, D = c->t_hidden, Q = c->query_num, Hr = c->r_heads;
	size_t DD = (size_t)D * D;
	if (w->kv_proj)
		lvd_linear_fwd(ctx, a->kv, a->vision, w->kv_proj, NULL, N, Dv, D);
	else
		memcpy(a->kv, a->vision, sizeof(float) * (size_t)N * D);
	lvd_layernorm_fwd(ctx, a->kvn, a->kv_m, a->kv_r, a->kv, w->lnkv_w, w->lnkv_b, N, D, 1e-6f);
	for (int i = 0; i < NI; i++) {
		int th = b->tgt_sizes[2 * i], tw = b->tgt_sizes[2 * i + 1], n = th * tw;
		/* the column half depends on the column, the row half on the row: computed on
		 * the first row / column, copied elsewhere (the same values, far fewer sin/cos) */
		for (int j = 0; j < L; j++) {
			float *kp = a->kpos + ((size_t)i * L + j) * D;
			if (j >= n)
				memset(kp, 0, sizeof(float) * D);
			else if (j < tw || j % tw == 0)
				sincos2d(kp, j / tw, j % tw, D);
			else {
				memcpy(kp, kp - (size_t)tw * D, sizeof(float) * (size_t)(D / 2));
				memcpy(kp + D / 2, kp - D + D / 2, sizeof(float) * (size_t)(D / 2));
			}
		}
		for (int j = 0; j < L; j++) {
			float *kp = a->kpos + ((size_t)i * L + j) * D;
			const float *kv = a->kvn + ((size_t)i * L + j) * D;
			for (int d = 0; d < D; d++)
				kp[d] += kv[d];
		}
	}
	/* packed in_proj: rows [0, D) query, [D, 2D) key, [2D, 3D) value. The key and value
	 * projections are folded into the query side (per head h, dh = D/Hr, scale 1/√dh):
	 *   scores_h = scale·q_h·(kpos·Wk_hᵀ + bk_h)ᵀ = G_h·kposᵀ + (a constant per row, which
	 *   the softmax cancels), G_h = scale·q_h·Wk_h   [Q, D], once for every picture;
	 *   out_h = P_h·(kvn·Wv_hᵀ + bv_h) = U_h·Wv_hᵀ + bv_h, U_h = P_h·kvn   [Q, D]
	 * (the rows of P sum to 1). The products cost Q/dh of the projections' (Q = 96 or 64
	 * queries, dh = 128); padded keys (j >= n) get probability 0. */
	lvd_layernorm_fwd(ctx, a->qn, a->q_m, a->q_r, w->query, w->lnq_w, w->lnq_b, Q, D, 1e-6f);
	lvd_linear_fwd(ctx, a->qp1, a->qn, w->in_w, w->in_b, Q, D, D);
	const int dh = D / Hr, HQ = Hr * Q;
	const float *Wk = w->in_w + DD, *Wv = w->in_w + 2 * DD;
	for (int h = 0; h < Hr; h++)
		lvd_gemm(ctx, 0, 0, Q, D, dh, 1.0f / sqrtf((float)dh), a->qp1 + h * dh, D, Wk + (size_t)h * dh * D, D, 0.0f,
			 a->rg + (size_t)h * Q * D, D);
	for (int i = 0; i < NI; i++) {
		int n = a->npatch[i] = b->tgt_sizes[2 * i] * b->tgt_sizes[2 * i + 1];
		float *P = a->probs + (size_t)i * HQ * L, *U = a->ru + (size_t)i * HQ * D;
		lvd_gemm(ctx, 0, 1, HQ, n, D, 1.0f, a->rg, D, a->kpos + (size_t)i * L * D, D, 0.0f, P, L);
		for (int r = 0; r < HQ && n < L; r++)
			for (int j = n; j < L; j++)
				P[(size_t)r * L + j] = -INFINITY;
		lvd_softmax_fwd(ctx, P, P, HQ, L);
		lvd_gemm(ctx, 0, 0, HQ, D, n, 1.0f, P, L, a->kvn + (size_t)i * L * D, D, 0.0f, U, D);
		for (int h = 0; h < Hr; h++)
			lvd_gemm(ctx, 0, 1, Q, dh, D, 1.0f, U + (size_t)h * Q * D, D, Wv + (size_t)h * dh * D, D, 0.0f,
				 a->ratt + (size_t)i * Q * D + h * dh, D);
	}
	lvd_add_bias_rows(ctx, a->ratt, w->in_b + 2 * D, NI * Q, D);
	lvd_linear_fwd(ctx, a->rout, a->ratt, w->out_w, w->out_b, NI * Q, D, D);
	lvd_layernorm_fwd(ctx, a->rpost, a->post_m, a->post_r, a->rout, w->lnpost_w, w->lnpost_b, NI * Q, D, 1e-6f);
	lvd_gemm(ctx, 0, 0, NI * Q, D, D, 1.0f, a->rpost, D, w->proj, D, 0.0f, a->resampled, D);
	m->va = *a;   /* for lvd_minicpmv_vision_backward */
}

/* ---- training -------------------------------------------------------------------- */

/* fills vt->p (names, data, sizes; grad pointers via gp) with every vpm.* / resampler.*
 * parameter (p NULL: counts); gp[i] receives where parameter i's gradient pointer goes */
static int vtable(const struct lvd_minicpmv *m, struct mcv_vtrain *vt, float ***gp)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct vgrads *g = vt ? &vt->g : NULL;
	size_t Dv = c->v_hidden, Iv = c->v_inter, D = c->t_hidden;
	int n = 0;
#define P(wp, gf, cnt, fmt, l)                                                                          \
	do {                                                                                            \
		if (vt) {                                                                               \
			snprintf(vt->names[n], sizeof vt->names[n], fmt, l);                            \
			vt->p[n] = (struct lvd_minicpmv_vparam){ vt->names[n], (wp), NULL, (cnt) };     \
			gp[n] = (gf);                                                                   \
		}                                                                                       \
		n++;                                                                                    \
	} while (0)
	P(w->patch_w, &g->patch_w, Dv * c->v_channels * c->v_patch * c->v_patch,
	  "vpm.embeddings.patch_embedding.weight%.0d", 0);
	P(w->patch_b, &g->patch_b, Dv, "vpm.embeddings.patch_embedding.bias%.0d", 0);
	P(w->pos, &g->pos, (size_t)c->v_side * c->v_side * Dv, "vpm.embeddings.position_embedding.weight%.0d",
	  0);
	for (int l = 0; l < c->v_layers; l++) {
		const struct mcv_vlayer *W = &w->vl[l];
		struct vgrad_layer *G = g ? &g->vl[l] : NULL;
#define PL(f, cnt, nm) P(W->f, &G->f, cnt, "vpm.encoder.layers.%d." nm, l)
		PL(ln1_w, Dv, "layer_norm1.weight");
		PL(ln1_b, Dv, "layer_norm1.bias");
		PL(q_w, Dv * Dv, "self_attn.q_proj.weight");
		PL(q_b, Dv, "self_attn.q_proj.bias");
		PL(k_w, Dv * Dv, "self_attn.k_proj.weight");
		PL(k_b, Dv, "self_attn.k_proj.bias");
		PL(v_w, Dv * Dv, "self_attn.v_proj.weight");
		PL(v_b, Dv, "self_attn.v_proj.bias");
		PL(o_w, Dv * Dv, "self_attn.out_proj.weight");
		PL(o_b, Dv, "self_attn.out_proj.bias");
		PL(ln2_w, Dv, "layer_norm2.weight");
		PL(ln2_b, Dv, "layer_norm2.bias");
		PL(fc1_w, Iv * Dv, "mlp.fc1.weight");
		PL(fc1_b, Iv, "mlp.fc1.bias");
		PL(fc2_w, Dv * Iv, "mlp.fc2.weight");
		PL(fc2_b, Dv, "mlp.fc2.bias");
#undef PL
	}
	P(w->post_w, &g->post_w, Dv, "vpm.post_layernorm.weight%.0d", 0);
	P(w->post_b, &g->post_b, Dv, "vpm.post_layernorm.bias%.0d", 0);
	P(w->query, &g->query, (size_t)c->query_num * D, "resampler.query%.0d", 0);
	if (w->kv_proj)
		P(w->kv_proj, &g->kv_proj, D * Dv, "resampler.kv_proj.weight%.0d", 0);
	P(w->in_w, &g->in_w, 3 * D * D, "resampler.attn.in_proj_weight%.0d", 0);
	P(w->in_b, &g->in_b, 3 * D, "resampler.attn.in_proj_bias%.0d", 0);
	P(w->out_w, &g->out_w, D * D, "resampler.attn.out_proj.weight%.0d", 0);
	P(w->out_b, &g->out_b, D, "resampler.attn.out_proj.bias%.0d", 0);
	P(w->lnq_w, &g->lnq_w, D, "resampler.ln_q.weight%.0d", 0);
	P(w->lnq_b, &g->lnq_b, D, "resampler.ln_q.bias%.0d", 0);
	P(w->lnkv_w, &g->lnkv_w, D, "resampler.ln_kv.weight%.0d", 0);
	P(w->lnkv_b, &g->lnkv_b, D, "resampler.ln_kv.bias%.0d", 0);
	P(w->lnpost_w, &g->lnpost_w, D, "resampler.ln_post.weight%.0d", 0);
	P(w->lnpost_b, &g->lnpost_b, D, "resampler.ln_post.bias%.0d", 0);
	P(w->proj, &g->proj, D * D, "resampler.proj%.0d", 0);
#undef P
	return n;
}

void mcv_vision_train_free(struct lvd_minicpmv *m)
{
	struct mcv_vtrain *vt = m->vt;
	if (!vt)
		return;
	free(vt->p);
	free(vt->names);
	free(vt->gblock);
	free(vt->g.vl);
	free(vt->vl);
	free(vt->scr);
	free(vt);
	m->vt = NULL;
}

int lvd_minicpmv_vision_train(struct lvd_minicpmv *m, int tune_vision, struct lvd_error *err)
{
	if (m->vt) {
		m->vt->tune_vision = tune_vision != 0;
		return 0;
	}
	int n = vtable(m, NULL, NULL), Lv = m->c.v_layers;
	struct mcv_vtrain *vt = calloc(1, sizeof *vt);
	float ***gp = calloc((size_t)n, sizeof *gp);
	if (vt) {
		vt->p = calloc((size_t)n, sizeof *vt->p);
		vt->names = calloc((size_t)n, sizeof *vt->names);
		vt->g.vl = calloc((size_t)Lv, sizeof *vt->g.vl);
		vt->vl = calloc((size_t)Lv, sizeof *vt->vl);
	}
	if (!vt || !gp || !vt->p || !vt->names || !vt->g.vl || !vt->vl)
		goto nomem;
	vt->np = vtable(m, vt, gp);
	size_t off = 0;
	for (int i = 0; i < n; i++)
		mcv_take(NULL, &off, vt->p[i].n);
	vt->gblock = lvd_alloc_aligned(off, sizeof(float));
	if (!vt->gblock)
		goto nomem;
	memset(vt->gblock, 0, sizeof(float) * off);
	vt->gn = off;
	off = 0;
	for (int i = 0; i < n; i++)
		*gp[i] = vt->p[i].grad = mcv_take(vt->gblock, &off, vt->p[i].n);
	vt->tune_vision = tune_vision != 0;
	free(gp);
	m->vt = vt;
	return 0;
nomem:
	free(gp);
	m->vt = vt;
	mcv_vision_train_free(m);
	return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate the vision/resampler gradients");
}

void lvd_minicpmv_vision_zero_grads(struct lvd_minicpmv *m)
{
	if (m->vt)
		memset(m->vt->gblock, 0, sizeof(float) * m->vt->gn);
}

int lvd_minicpmv_vision_params(const struct lvd_minicpmv *m, const struct lvd_minicpmv_vparam **out)
{
	*out = m->vt ? m->vt->p : NULL;
	return m->vt ? m->vt->np : 0;
}

float *lvd_minicpmv_vision_grad_block(struct lvd_minicpmv *m, size_t *n)
{
	*n = m->vt ? m->vt->gn : 0;
	return m->vt ? m->vt->gblock : NULL;
}

/* backward of vision layer l: dx holds d(layer output) on entry, d(layer input) on exit;
 * s: scratch dln, datt, dq, dk, dv [N, Dv], dh1g, dh1 [N, Iv] */
static void vlayer_bwd(struct lvd_minicpmv *m, int l, float *dx, float *const *s)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_vacts *a = &m->va;
	const struct mcv_vlayer_a *A = &a->vl[l];
	const struct mcv_vlayer *W = &m->w.vl[l];
	struct vgrad_layer *G = &m->vt->g.vl[l];
	struct lvd_ctx *ctx = m->ctx;
	int NI = m->NI, L = m->Lmax, N = NI * L, Dv = c->v_hidden, Iv = c->v_inter, Hv = c->v_heads;
	size_t ND = (size_t)N * Dv, NIv = (size_t)N * Iv;
	float *dln = s[0], *datt = s[1], *dq = s[2], *dk = s[3], *dv = s[4], *dh1g = s[5], *dh1 = s[6];
	enum lvd_gelu_kind gk = c->v_gelu_tanh ? LVD_GELU_TANH : LVD_GELU_EXACT;
	/* MLP branch (residual: the branch gets dx as it is) */
	memset(dh1g, 0, NIv * sizeof(float));
	lvd_linear_bwd(ctx, dh1g, G->fc2_w, G->fc2_b, dx, A->h1g, W->fc2_w, N, Iv, Dv);
	memset(dh1, 0, NIv * sizeof(float));
	lvd_gelu_bwd(ctx, dh1, dh1g, A->h1, NIv, gk);
	memset(dln, 0, ND * sizeof(float));
	lvd_linear_bwd(ctx, dln, G->fc1_w, G->fc1_b, dh1, A->ln2, W->fc1_w, N, Dv, Iv);
	lvd_layernorm_bwd(ctx, dx, G->ln2_w, G->ln2_b, dln, A->x_mid, W->ln2_w, A->ln2_m, A->ln2_r, N, Dv);
	/* attention branch */
	memset(datt, 0, ND * sizeof(float));
	lvd_linear_bwd(ctx, datt, G->o_w, G->o_b, dx, A->att, W->o_w, N, Dv, Dv);
	memset(dq, 0, ND * sizeof(float));
	memset(dk, 0, ND * sizeof(float));
	memset(dv, 0, ND * sizeof(float));
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = a->vbias };
	lvd_attn_bwd(ctx, dq, dk, dv, A->stats, datt, NULL, A->q, A->k, A->v, &mk, NULL, 1.0f / sqrtf((float)(Dv / Hv)),
		     NI, L, L, Hv, Hv, Dv / Hv);
	memset(dln, 0, ND * sizeof(float));
	lvd_linear_bwd(ctx, dln, G->q_w, G->q_b, dq, A->ln1, W->q_w, N, Dv, Dv);
	lvd_linear_bwd(ctx, dln, G->k_w, G->k_b, dk, A->ln1, W->k_w, N, Dv, Dv);
	lvd_linear_bwd(ctx, dln, G->v_w, G->v_b, dv, A->ln1, W->v_w, N, Dv, Dv);
	lvd_layernorm_bwd(ctx, dx, G->ln1_w, G->ln1_b, dln, A->x_in, W->ln1_w, A->ln1_m, A->ln1_r, N, Dv);
}

/* carves (base NULL: measures) the backward scratch: resampler [0, 11), the tower's
 * output and running gradients 11, 12, the vision layers' [13, 20) (vlayer_bwd zeroes
 * its own); *zero: the floats before the vision layers' part */
static size_t bwd_carve(const struct lvd_minicpmv *m, float *base, float **s, size_t *zero)
{
	const struct lvd_minicpmv_config *c = &m->c;
	size_t N = (size_t)m->NI * m->Lmax, NQ = (size_t)m->NI * c->query_num, D = c->t_hidden, Dv = c->v_hidden;
	size_t Q = c->query_num, HQ = (size_t)c->r_heads * Q, L = (size_t)m->Lmax, off = 0;
	const size_t n[20] = { NQ * D, NQ * D, NQ * D, HQ * D, Q * D, Q * D, HQ * L, HQ * L, HQ * D, N * D, N * D,
			       N * Dv, N * Dv, N * Dv, N * Dv, N * Dv, N * Dv, N * Dv, N * c->v_inter, N * c->v_inter };
	for (int i = 0; i < 20; i++) {
		if (i == 13)
			*zero = off;
		s[i] = mcv_take(base, &off, n[i]);
	}
	return off;
}

int lvd_minicpmv_vision_backward(struct lvd_minicpmv *m, const float *d_resampled, const float *d_probs,
				 struct lvd_error *err)
{
	struct mcv_vtrain *vt = m->vt;
	if (!vt)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv vision backward: call lvd_minicpmv_vision_train "
				     "first");
	if (!m->NI || !m->va.vl)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv vision backward: the last forward %s",
				     m->NI ? "ran before lvd_minicpmv_vision_train" : "had no pictures");
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	const struct mcv_vacts *a = &m->va;
	struct vgrads *g = &vt->g;
	struct lvd_ctx *ctx = m->ctx;
	int NI = m->NI, L = m->Lmax, N = NI * L, Dv = c->v_hidden, D = c->t_hidden, Q = c->query_num, Hr = c->r_heads;
	int NQ = NI * Q;
	size_t DD = (size_t)D * D;
	float *s[20];
	size_t zero, need = bwd_carve(m, NULL, s, &zero);
	if (need > vt->scap) {
		free(vt->scr);
		vt->scap = 0;
		if (!(vt->scr = lvd_alloc_aligned(need, sizeof(float))))
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv vision backward: cannot allocate %zu floats",
					     need);
		vt->scap = need;
	}
	bwd_carve(m, vt->scr, s, &zero);
	memset(vt->scr, 0, sizeof(float) * zero);
	float *drp = s[0], *drout = s[1], *dratt = s[2], *dG = s[3], *dqp1 = s[4], *dqn = s[5];
	float *dP = s[6], *dS = s[7], *dU = s[8], *dkvn = s[9], *dkv = s[10], *dvis = s[11], *dx = s[12];

	/* resampled = ln_post(out_proj(attn)) · proj */
	if (d_resampled) {
		lvd_gemm(ctx, 0, 1, NQ, D, D, 1.0f, d_resampled, D, w->proj, D, 0.0f, drp, D);
		lvd_gemm(ctx, 1, 0, D, D, NQ, 1.0f, a->rpost, D, d_resampled, D, 1.0f, g->proj, D);
		lvd_layernorm_bwd(ctx, drout, g->lnpost_w, g->lnpost_b, drp, a->rout, w->lnpost_w, a->post_m, a->post_r, NQ,
				  D);
		lvd_linear_bwd(ctx, dratt, g->out_w, g->out_b, drout, a->ratt, w->out_w, NQ, D, D);
	}
	/* the attention in mcv_resampler_fwd's folded form, with the probabilities' own
	 * gradient injected; per picture: dU_h = dO_h·Wv_h, dWv_h += dO_hᵀ·U_h, dP = dU·kvnᵀ
	 * (+ d_probs), d kvn += Pᵀ·dU, dS = softmax backward, dG += dS·kpos, d kvn += dSᵀ·G
	 * (keys = kvn + pos); then dq_h = scale·dG_h·Wk_hᵀ, dWk_h += scale·q_hᵀ·dG_h. The key
	 * bias has no gradient (it shifts each row of scores by a constant). */
	const int dh = D / Hr, HQ = Hr * Q;
	const float scale = 1.0f / sqrtf((float)dh);
	const float *Wk = w->in_w + DD, *Wv = w->in_w + 2 * DD;
	float *gWk = g->in_w + DD, *gWv = g->in_w + 2 * DD;
	for (int i = 0; i < NI; i++) {
		int n = a->npatch[i];
		const float *P = a->probs + (size_t)i * HQ * L, *U = a->ru + (size_t)i * HQ * D;
		const float *dO = dratt + (size_t)i * Q * D, *kin = a->kpos + (size_t)i * L * D;
		const float *vin = a->kvn + (size_t)i * L * D;
		float *dvin = dkvn + (size_t)i * L * D;
		for (int h = 0; h < Hr; h++) {
			lvd_gemm(ctx, 0, 0, Q, D, dh, 1.0f, dO + h * dh, D, Wv + (size_t)h * dh * D, D, 0.0f,
				 dU + (size_t)h * Q * D, D);
			lvd_gemm(ctx, 1, 0, dh, D, Q, 1.0f, dO + h * dh, D, U + (size_t)h * Q * D, D, 1.0f,
				 gWv + (size_t)h * dh * D, D);
		}
		if (d_probs)
			memcpy(dP, d_probs + (size_t)i * HQ * L, sizeof(float) * (size_t)HQ * L);
		else
			memset(dP, 0, sizeof(float) * (size_t)HQ * L);
		lvd_gemm(ctx, 0, 1, HQ, n, D, 1.0f, dU, D, vin, D, 1.0f, dP, L);
		lvd_gemm(ctx, 1, 0, n, D, HQ, 1.0f, P, L, dU, D, 1.0f, dvin, D);
		memset(dS, 0, sizeof(float) * (size_t)HQ * L);
		lvd_softmax_bwd(ctx, dS, dP, P, HQ, L);
		lvd_gemm(ctx, 0, 0, HQ, D, n, 1.0f, dS, L, kin, D, 1.0f, dG, D);
		lvd_gemm(ctx, 1, 0, n, D, HQ, 1.0f, dS, L, a->rg, D, 1.0f, dvin, D);
	}
	lvd_linear_bwd(ctx, NULL, NULL, g->in_b + 2 * D, dratt, NULL, Wv, NQ, D, D);
	for (int h = 0; h < Hr; h++) {
		lvd_gemm(ctx, 0, 1, Q, dh, D, scale, dG + (size_t)h * Q * D, D, Wk + (size_t)h * dh * D, D, 0.0f,
			 dqp1 + h * dh, D);
		lvd_gemm(ctx, 1, 0, dh, D, Q, scale, a->qp1 + h * dh, D, dG + (size_t)h * Q * D, D, 1.0f,
			 gWk + (size_t)h * dh * D, D);
	}
	lvd_linear_bwd(ctx, dqn, g->in_w, g->in_b, dqp1, a->qn, w->in_w, Q, D, D);
	lvd_layernorm_bwd(ctx, g->query, g->lnq_w, g->lnq_b, dqn, w->query, w->lnq_w, a->q_m, a->q_r, Q, D);
	lvd_layernorm_bwd(ctx, dkv, g->lnkv_w, g->lnkv_b, dkvn, a->kv, w->lnkv_w, a->kv_m, a->kv_r, N, D);
	if (w->kv_proj)
		lvd_linear_bwd(ctx, vt->tune_vision ? dvis : NULL, g->kv_proj, NULL, dkv, a->vision, w->kv_proj, N, Dv, D);
	else
		dvis = dkv;
	if (!vt->tune_vision)
		return 0;   /* frozen vision tower: no backward through it */

	/* vision tower: post LayerNorm, the layers top down, position rows, patch embedding */
	lvd_layernorm_bwd(ctx, dx, g->post_w, g->post_b, dvis, a->x, w->post_w, a->vpost_m, a->vpost_r, N, Dv);
	for (int l = c->v_layers - 1; l >= 0; l--)
		vlayer_bwd(m, l, dx, s + 13);
	lvd_embedding_bwd(ctx, g->pos, dx, a->pos_ids, N, Dv);
	int K = c->v_channels * c->v_patch * c->v_patch;
	lvd_linear_bwd(ctx, NULL, g->patch_w, g->patch_b, dx, a->cols, w->patch_w, N, K, Dv);
	return 0;
}
