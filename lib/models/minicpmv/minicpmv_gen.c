/* lib/models/minicpmv/minicpmv_gen.c — generation with a KV cache for minicpmv
 * (minicpmv_gen.h): the pictures once (mcv_pictures_fwd), the prompt's embeddings with the
 * picture features scattered in, the decoder layers over the cache
 * (lvd_llama_layer_kv_fwd, lib/models/llama_layer.h), the final norm and lm_head on each
 * sample's last row; the choice of the next token is lib/models/gen_loop.h's.
 *
 * Letters: B samples, T0 prompt length, Tc = T0 + max_new cache capacity, Tq rows fed in a
 * step (T0 at prefill, 1 after), D width, KV = kv heads · head dim, It MLP width,
 * V vocabulary, Q queries per picture, r LoRA rank. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_gen.h"
#include "models/minicpmv/minicpmv_train.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/lora.h"
#include "nn/ops/norm.h"

struct lvd_minicpmv_gen {
	struct lvd_minicpmv *m;
	struct lvd_gen_loop loop;
	int t;                       /* cache rows filled; B, T0: loop.B, loop.T0 */
	float **kc, **vc;            /* [t_layers] [B, Tc, KV] (keys after rope) */
	float inv_freq[512];
	struct lvd_llama_layer_a a;  /* workspace for B·T0 rows */
	float *x, *u, *lastx, *normed, *logits;
	int *ids, *pos;
	float *fblock;
	size_t fbytes;
};

/* out[N, OC] = x Wᵀ (+ the LoRA adapter of the site, no dropout) */
struct glin_user {
	struct lvd_minicpmv_gen *g;
	int l;
};
static void glin(void *user, enum lvd_llama_site s, float *out, const float *x, const float *W, int N, int IC, int OC)
{
	struct glin_user *gu = user;
	struct lvd_minicpmv *m = gu->g->m;
	lvd_linear_fwd(m->ctx, out, x, W, NULL, N, IC, OC);
	const struct lvd_minicpmv_lora *l = m->tr ? m->tr->site[(size_t)gu->l * MCV_NSITE + s] : NULL;
	if (l)
		lvd_lora_fwd(m->ctx, out, gu->g->u, x, l->A, l->B, m->tr->lora_s, N, IC, OC, m->tr->lora_r);
}

/* floats of the session block; carves when base != NULL */
static size_t carve(struct lvd_minicpmv_gen *g, float *base)
{
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(g->m);
	size_t off = 0, B = g->loop.B, N = B * g->loop.T0, D = c->t_hidden, KV = (size_t)c->t_kv_heads * c->t_head_dim;
	size_t It = c->t_inter, r = g->m->tr ? (size_t)g->m->tr->lora_r : 0;
	for (int l = 0; l < c->t_layers; l++) {
		g->kc[l] = mcv_take(base, &off, B * g->loop.Tc * KV);
		g->vc[l] = mcv_take(base, &off, B * g->loop.Tc * KV);
	}
	struct lvd_llama_layer_a *a = &g->a;
	g->x = mcv_take(base, &off, N * D);
	a->ln1 = mcv_take(base, &off, N * D);
	a->q = mcv_take(base, &off, N * D);
	a->k = mcv_take(base, &off, N * KV);
	a->v = mcv_take(base, &off, N * KV);
	a->att = mcv_take(base, &off, N * D);
	a->o_out = mcv_take(base, &off, N * D);
	a->ln2 = mcv_take(base, &off, N * D);
	a->g = mcv_take(base, &off, N * It);
	a->up = mcv_take(base, &off, N * It);
	a->act = mcv_take(base, &off, N * It);
	a->m_out = mcv_take(base, &off, N * D);
	g->u = mcv_take(base, &off, N * r + 1);
	g->lastx = mcv_take(base, &off, B * D);
	g->normed = mcv_take(base, &off, B * D);
	g->logits = mcv_take(base, &off, B * c->vocab);
	g->ids = (int *)mcv_take(base, &off, N);
	g->pos = (int *)mcv_take(base, &off, N);
	return off;
}

/* x [B, Tq, D] (embeddings) through the layers at cache rows [t, t + Tq); logits of each
 * sample's last row */
static void text_rows(struct lvd_minicpmv_gen *g, int Tq)
{
	struct lvd_minicpmv *m = g->m;
	const struct lvd_minicpmv_config *c = &m->c;
	struct lvd_ctx *ctx = m->ctx;
	int B = g->loop.B, D = c->t_hidden;
	struct lvd_llama_dims d = {B, Tq, D, c->t_heads, c->t_kv_heads, c->t_head_dim, c->t_inter, c->t_eps};
	for (int l = 0; l < c->t_layers; l++) {
		struct lvd_llama_kvcache kv = {g->kc[l], g->vc[l], g->loop.keep, g->t, g->loop.Tc};
		struct glin_user u = {g, l};
		lvd_llama_layer_kv_fwd(ctx, g->x, &g->a, &m->w.tl[l], g->pos, g->inv_freq, &kv, &d, glin, &u);
	}
	for (int b = 0; b < B; b++)
		memcpy(g->lastx + (size_t)b * D, g->x + ((size_t)b * Tq + Tq - 1) * D, sizeof(float) * D);
	lvd_rmsnorm_fwd(ctx, g->normed, NULL, g->lastx, m->w.norm, B, D, c->t_eps);
	lvd_linear_fwd(ctx, g->logits, g->normed, m->w.lm_head, NULL, B, D, c->vocab);
	g->t += Tq;
}

int lvd_minicpmv_gen_begin(struct lvd_minicpmv_gen **out, struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b,
			   const int *attn_mask, const struct lvd_gen_opts *o, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	*out = NULL;
	if (!b)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: generate: no batch");
	struct lvd_minicpmv_gen *g = calloc(1, sizeof *g);
	if (!g)
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
	g->m = m;
	int rc = lvd_gen_loop_init(&g->loop, b->B, b->T, attn_mask, NULL, o, "minicpmv", err);
	if (rc) {
		free(g);
		return rc;
	}
	/* image rows must be real tokens */
	for (int s = 0, i = 0; attn_mask && s < b->B && b->NI; s++)
		for (int k = 0; k < b->n_images[s]; k++, i++)
			for (int t = b->image_bound[2 * i]; t < b->image_bound[2 * i + 1] && t >= 0 && t < b->T; t++)
				if (!attn_mask[(size_t)s * b->T + t]) {
					lvd_gen_loop_free(&g->loop);
					free(g);
					return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: generate: image_bound[%d] covers pad "
							     "position %d of sample %d", i, t, s);
				}
	if ((rc = mcv_pictures_fwd(m, b, err))) {
		lvd_gen_loop_free(&g->loop);
		free(g);
		return rc;
	}
	g->kc = calloc((size_t)c->t_layers, sizeof *g->kc);
	g->vc = calloc((size_t)c->t_layers, sizeof *g->vc);
	size_t nf = g->kc && g->vc ? carve(g, NULL) : 0;
	g->fblock = nf ? lvd_alloc_aligned(nf, sizeof(float)) : NULL;
	if (!g->fblock) {
		lvd_minicpmv_gen_free(g);
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: generate: cannot allocate %zu floats", nf);
	}
	g->fbytes = nf * sizeof(float);
	carve(g, g->fblock);
	/* positions (the loop's rule) and the prompt's embeddings, pictures scattered in */
	lvd_gen_loop_prompt_pos(&g->loop, g->pos);
	LVD_ASSERT(c->t_head_dim / 2 <= 512);
	lvd_rope_freqs(m->ctx, g->inv_freq, c->t_head_dim, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low,
		       c->rope_high, c->rope_orig_max);
	int B = b->B, T0 = b->T, D = c->t_hidden, Q = c->query_num;
	memcpy(g->ids, b->input_ids, sizeof(int) * (size_t)B * T0);
	lvd_embedding_fwd(m->ctx, g->x, g->ids, m->w.embed, B * T0, D);
	for (int s = 0, i = 0; s < B && b->NI; s++)
		for (int k = 0; k < b->n_images[s]; k++, i++)
			memcpy(g->x + ((size_t)s * T0 + b->image_bound[2 * i]) * D, m->resampled + (size_t)i * Q * D,
			       sizeof(float) * (size_t)Q * D);
	text_rows(g, T0);
	*out = g;
	return 0;
}

int lvd_minicpmv_gen_step(struct lvd_minicpmv_gen *g, int *next, int *done, struct lvd_error *err)
{
	(void)err;
	if (lvd_gen_loop_over(&g->loop)) {
		*done = 1;
		return 0;
	}
	if (g->loop.n_new > 0) {
		lvd_gen_loop_feed(&g->loop, g->t, g->ids, g->pos);
		lvd_embedding_fwd(g->m->ctx, g->x, g->ids, g->m->w.embed, g->loop.B, g->m->c.t_hidden);
		text_rows(g, 1);
	}
	lvd_gen_loop_choose(&g->loop, g->logits, g->m->c.vocab, next);
	*done = 0;
	return 0;
}

const float *lvd_minicpmv_gen_logits(const struct lvd_minicpmv_gen *g) { return g->logits; }
int lvd_minicpmv_gen_count(const struct lvd_minicpmv_gen *g) { return g->loop.n_new; }
size_t lvd_minicpmv_gen_bytes(const struct lvd_minicpmv_gen *g) { return g->fbytes; }

void lvd_minicpmv_gen_free(struct lvd_minicpmv_gen *g)
{
	if (!g)
		return;
	lvd_gen_loop_free(&g->loop);
	free(g->kc);
	free(g->vc);
	free(g->fblock);
	free(g);
}
