/* lib/models/mllama/mllama_gen.c — greedy generation with a KV cache (lvd_mllama_gen_*,
 * mllama.h): vision tower once (mllama_vision_prepare), cross-attention K/V once per
 * cross layer, prompt prefill into the self-attention cache, then one row per sample
 * and step. A forward-only twin of the text tower of mllama_text.c (same ops, same
 * order) that keeps no activations; the choice of the next token, the stop ids and the
 * cache's key mask are lib/models/gen_loop.h's (shared with minicpmv).
 *
 * Letters: B batch, T0 prompt length, Tc = T0 + max_new cache capacity, Tq rows fed in
 * a step (T0 at prefill, 1 after), S = M·TL·P1 vision tokens per sample, Dt width,
 * H query heads, KH kv heads, hd head dim, KV = KH·hd, It MLP width, V vocabulary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/kvattn.h"
#include "nn/ops/lora.h"
#include "nn/ops/norm.h"

struct lvd_mllama_gen {
	struct lvd_mllama *m;
	struct lvd_gen_loop loop;    /* B, T0, Tc, stop ids, key mask [B, Tc], choice */
	int t, S, G, have_image, meta_row_mask;   /* B, T0: loop.B, loop.T0 */
	float **kc, **vc;            /* [t_layers]: self layers [B, Tc, KV] (post-rope), cross [B, S, KV] */
	float inv_freq[512];
	/* workspace for Tq <= T0 rows (N = B·Tq) */
	float *x, *ln, *rr, *q, *k, *v, *att, *o, *gt, *up, *act, *u, *xbias, *rowmask, *stats;
	float *lastx, *normed, *logits;
	int *ids, *pos, *lastrow, *gm;
	float *fblock;
	size_t fbytes;
	void *iblock;
};

static const struct lvd_mllama_lora *site(const struct lvd_mllama *m, int l, int s)
{
	return m->tsite ? m->tsite[(size_t)l * L_NSITE + s].l : NULL;
}

/* out[N, OC] = x W^T (+ LoRA, no dropout: inference) */
static void lin(struct lvd_mllama_gen *g, float *out, const float *x, const float *W, const struct lvd_mllama_lora *l,
		int N, int IC, int OC)
{
	struct lvd_mllama *m = g->m;
	lvd_linear_fwd(m->ctx, out, x, W, NULL, N, IC, OC);
	if (l)
		lvd_lora_fwd(m->ctx, out, g->u, x, l->A, l->B, m->lora_s, N, IC, OC, m->lora_r);
}

/* runs Tq rows per sample (ids[B, Tq], pos[B, Tq]) through the text tower, appending
 * their keys/values at cache rows [t, t + Tq); logits of each sample's last row */
static void text_rows(struct lvd_mllama_gen *g, int Tq)
{
	struct lvd_mllama *m = g->m;
	const struct lvd_mllama_config *c = &m->c;
	struct lvd_ctx *ctx = m->ctx;
	int B = g->loop.B, N = B * Tq, Dt = c->t_hidden, H = c->t_heads, KH = c->t_kv_heads, hd = c->t_head_dim;
	int KV = KH * hd, It = c->t_inter;
	float scale = 1.0f / sqrtf((float)hd);
	lvd_embedding_fwd(ctx, g->x, g->ids, m->w.embed, N, Dt);
	for (int l = 0; l < c->t_layers; l++) {
		const struct tlayer_w *W = &m->w.tl[l];
		if (W->cross && !g->have_image)
			continue;
		lvd_rmsnorm_fwd(ctx, g->ln, NULL, g->x, W->ln1, N, Dt, c->t_eps);
		if (W->cross) {
			lin(g, g->o, g->ln, W->q, site(m, l, L_Q), N, Dt, Dt);
			lvd_rmsnorm_fwd(ctx, g->q, NULL, g->o, W->q_norm, N * H, hd, c->t_eps);
			struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = g->xbias };
			lvd_attn_fwd(ctx, g->att, g->stats, NULL, g->q, g->kc[l], g->vc[l], &mk, NULL, scale, B, Tq, g->S, H,
				     KH, hd);
			if (g->meta_row_mask)
				lvd_row_mask(ctx, g->att, g->rowmask, N, Dt);
		} else {
			lin(g, g->q, g->ln, W->q, site(m, l, L_Q), N, Dt, Dt);
			lin(g, g->k, g->ln, W->k, site(m, l, L_K), N, Dt, KV);
			lin(g, g->v, g->ln, W->v, site(m, l, L_V), N, Dt, KV);
			for (int b = 0; b < B; b++) {
				size_t r0 = (size_t)b * Tq;
				lvd_rope_apply(ctx, g->q + r0 * Dt, g->pos + r0, g->inv_freq, 1, Tq, H, hd, 0);
				lvd_rope_apply(ctx, g->k + r0 * KV, g->pos + r0, g->inv_freq, 1, Tq, KH, hd, 0);
				size_t c0 = ((size_t)b * g->loop.Tc + g->t) * KV;
				memcpy(g->kc[l] + c0, g->k + r0 * KV, sizeof(float) * (size_t)Tq * KV);
				memcpy(g->vc[l] + c0, g->v + r0 * KV, sizeof(float) * (size_t)Tq * KV);
			}
			lvd_kvattn_fwd(ctx, g->att, g->q, g->kc[l], g->vc[l], g->loop.keep, scale, B, Tq, g->t + Tq,
				       g->loop.Tc, H, KH, hd);
		}
		lin(g, g->o, g->att, W->o, site(m, l, L_O), N, Dt, Dt);
		lvd_gated_residual_fwd(ctx, g->x, g->x, g->o, W->cross ? W->attn_gate : NULL, NULL, N, Dt);
		lvd_rmsnorm_fwd(ctx, g->ln, NULL, g->x, W->ln2, N, Dt, c->t_eps);
		lin(g, g->gt, g->ln, W->gate, site(m, l, L_M1), N, Dt, It);
		lin(g, g->up, g->ln, W->up, site(m, l, L_M2), N, Dt, It);
		lvd_swiglu_fwd(ctx, g->act, g->gt, g->up, (size_t)N * It);
		lin(g, g->o, g->act, W->down, site(m, l, L_M3), N, It, Dt);
		/* HF: the cross layer's MLP branch only on rows that see an image */
		lvd_gated_residual_fwd(ctx, g->x, g->x, g->o, W->cross ? W->mlp_gate : NULL, W->cross ? g->rowmask : NULL,
				       N, Dt);
	}
	for (int b = 0; b < B; b++)
		memcpy(g->lastx + (size_t)b * Dt, g->x + ((size_t)b * Tq + Tq - 1) * Dt, sizeof(float) * Dt);
	lvd_rmsnorm_fwd(ctx, g->normed, NULL, g->lastx, m->w.norm, B, Dt, c->t_eps);
	lvd_linear_fwd(ctx, g->logits, g->normed, m->w.lm_head, NULL, B, Dt, c->vocab);
	g->t += Tq;
}

/* floats of the session block; carves when base != NULL */
static size_t carve(struct lvd_mllama_gen *g, float *base)
{
	const struct lvd_mllama *m = g->m;
	const struct lvd_mllama_config *c = &m->c;
	size_t off = 0, B = g->loop.B, N = B * g->loop.T0, Dt = c->t_hidden, H = c->t_heads, S = g->S;
	size_t KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter;
	size_t un = (N > B * S ? N : B * S) * (size_t)(m->lora_r > 0 ? m->lora_r : 0);
	for (int l = 0; l < c->t_layers; l++) {
		int cross = m->w.tl[l].cross;
		size_t rows = cross ? (g->have_image ? B * S : 0) : B * g->loop.Tc;
		g->kc[l] = rows ? mllama_take(base, &off, rows * KV) : NULL;
		g->vc[l] = rows ? mllama_take(base, &off, rows * KV) : NULL;
	}
	g->x = mllama_take(base, &off, N * Dt);
	g->ln = mllama_take(base, &off, N * Dt);
	g->q = mllama_take(base, &off, N * Dt);
	g->k = mllama_take(base, &off, N * KV);
	g->v = mllama_take(base, &off, N * KV);
	g->att = mllama_take(base, &off, N * Dt);
	g->o = mllama_take(base, &off, N * Dt);
	g->gt = mllama_take(base, &off, N * It);
	g->up = mllama_take(base, &off, N * It);
	g->act = mllama_take(base, &off, N * It);
	g->u = mllama_take(base, &off, un + 1);
	/* cross K before its norm, on B·S rows (begin only) */
	g->rr = mllama_take(base, &off, g->have_image ? B * S * KV : 1);
	g->xbias = mllama_take(base, &off, g->have_image ? N * S : 1);
	g->rowmask = mllama_take(base, &off, N);
	g->stats = mllama_take(base, &off, B * H * g->loop.T0 * 2);
	g->lastx = mllama_take(base, &off, B * Dt);
	g->normed = mllama_take(base, &off, B * Dt);
	g->logits = mllama_take(base, &off, B * c->vocab);
	return off;
}

/* cross-attention bias and row mask for rows with the given mask rows gm [N, G] */
static void cross_bias(struct lvd_mllama_gen *g, const int *gm, int N)
{
	struct lvd_mllama *m = g->m;
	if (g->have_image)
		lvd_attn_group_bias(m->ctx, g->xbias, g->rowmask, gm, N, g->G, m->P1);
	else
		memset(g->rowmask, 0, sizeof(float) * (size_t)N);
}

int lvd_mllama_gen_begin(struct lvd_mllama_gen **out, struct lvd_mllama *m, const struct lvd_mllama_batch *b,
			 const int *attn_mask, const struct lvd_gen_opts *o, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	*out = NULL;
	if (!b)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: generate: no batch");
	struct lvd_gen_loop loop;
	int rc = lvd_gen_loop_init(&loop, b->B, b->T, attn_mask, NULL, o, "mllama", err);
	if (!rc)
		rc = mllama_vision_prepare(m, b, err);
	if (rc) {
		lvd_gen_loop_free(&loop);
		return rc;
	}
	struct lvd_mllama_gen *g = calloc(1, sizeof *g);
	if (!g) {
		lvd_gen_loop_free(&loop);
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	}
	g->m = m;
	g->loop = loop;
	g->have_image = m->have_image;
	g->S = m->S;
	g->G = b->M * c->v_max_tiles;
	g->meta_row_mask = b->meta_row_mask;
	g->kc = calloc((size_t)c->t_layers, sizeof *g->kc);
	g->vc = calloc((size_t)c->t_layers, sizeof *g->vc);
	int B = g->loop.B, T0 = g->loop.T0, G = g->G;
	size_t nints = (size_t)B * T0 * 2 + (size_t)B * G * (T0 + 1);
	g->iblock = calloc(nints, sizeof(int));
	size_t nf = carve(g, NULL);
	g->fblock = lvd_alloc_aligned(nf, sizeof(float));
	if (!g->kc || !g->vc || !g->iblock || !g->fblock) {
		lvd_mllama_gen_free(g);
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: generate: cannot allocate %zu floats", nf);
	}
	g->fbytes = nf * sizeof(float) + nints * sizeof(int) + (size_t)B * g->loop.Tc;
	carve(g, g->fblock);
	int *ip = g->iblock;
	g->ids = ip, ip += (size_t)B * T0;
	g->pos = ip, ip += (size_t)B * T0;
	g->lastrow = ip, ip += (size_t)B * G;
	g->gm = ip;
	LVD_ASSERT(c->t_head_dim / 2 <= 512);
	lvd_rope_freqs(m->ctx, g->inv_freq, c->t_head_dim, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low,
		       c->rope_high, c->rope_orig_max);
	/* cross-attention keys/values of every cross layer, once */
	int KH = c->t_kv_heads, hd = c->t_head_dim, KV = KH * hd, Dt = c->t_hidden;
	if (g->have_image)
		for (int l = 0; l < c->t_layers; l++) {
			const struct tlayer_w *W = &m->w.tl[l];
			if (!W->cross)
				continue;
			lin(g, g->rr, m->a.cross, W->k, site(m, l, L_K), B * g->S, Dt, KV);
			lvd_rmsnorm_fwd(m->ctx, g->kc[l], NULL, g->rr, W->k_norm, B * g->S * KH, hd, c->t_eps);
			lin(g, g->vc[l], m->a.cross, W->v, site(m, l, L_V), B * g->S, Dt, KV);
		}
	/* prompt: positions (the loop's rule: HF's cumsum(mask) − 1, pads 0), cross rows */
	lvd_gen_loop_prompt_pos(&g->loop, g->pos);
	memcpy(g->ids, b->input_ids, sizeof(int) * (size_t)B * T0);
	if (g->have_image) {
		memcpy(g->gm, b->cross_attention_mask, sizeof(int) * (size_t)B * T0 * G);
		for (int s = 0; s < B; s++)
			memcpy(g->lastrow + (size_t)s * G, g->gm + ((size_t)s * T0 + T0 - 1) * G, sizeof(int) * G);
	}
	cross_bias(g, g->gm, B * T0);
	text_rows(g, T0);
	*out = g;
	return 0;
}

int lvd_mllama_gen_step(struct lvd_mllama_gen *g, int *next, int *done, struct lvd_error *err)
{
	(void)err;
	if (lvd_gen_loop_over(&g->loop)) {
		*done = 1;
		return 0;
	}
	if (g->loop.n_new > 0) {
		/* feed the previous tokens: one row per sample; the new row sees the images the
		 * prompt's last row saw (HF repeats the last cross-mask row) */
		lvd_gen_loop_feed(&g->loop, g->t, g->ids, g->pos);
		cross_bias(g, g->lastrow, g->loop.B);
		text_rows(g, 1);
	}
	lvd_gen_loop_choose(&g->loop, g->logits, g->m->c.vocab, next);
	*done = 0;
	return 0;
}

const float *lvd_mllama_gen_logits(const struct lvd_mllama_gen *g) { return g->logits; }
int lvd_mllama_gen_count(const struct lvd_mllama_gen *g) { return g->loop.n_new; }
size_t lvd_mllama_gen_bytes(const struct lvd_mllama_gen *g) { return g->fbytes; }

void lvd_mllama_gen_free(struct lvd_mllama_gen *g)
{
	if (!g)
		return;
	lvd_gen_loop_free(&g->loop);
	free(g->kc);
	free(g->vc);
	free(g->fblock);
	free(g->iblock);
	free(g);
}
