/* lib/models/minicpmv/minicpmv_text.c — the minicpmv LLM (the Llama-3 decoder of
 * lib/models/llama_layer.c) forward and backward: the picture features scattered into the
 * input embeddings, CE on labels aligned with the logits, the capture of the text->image
 * probabilities at chosen layers and rows, gradients of every llm.* parameter (full
 * fine-tuning) or of the LoRA adapters, and the gradient of the scattered features.
 *
 * Letters: B samples, T tokens, BT = B·T, D width, H/KH query/kv heads, hd head dim,
 * KV = KH·hd, It MLP width, V vocabulary, Q queries per picture, NI pictures, R_b capture
 * rows of sample b, NQ_b = n_images[b]·Q image-token columns of sample b. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_train.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"
#include "nn/ops/xent.h"

struct mcv_train *mcv_train_get(struct lvd_minicpmv *m)
{
	if (!m->tr) {
		m->tr = calloc(1, sizeof *m->tr);
		if (m->tr) {
			m->tr->site = calloc((size_t)m->c.t_layers * MCV_NSITE, sizeof *m->tr->site);
			m->tr->tl = calloc((size_t)m->c.t_layers, sizeof *m->tr->tl);
			if (!m->tr->site || !m->tr->tl) {
				free(m->tr->site), free(m->tr->tl), free(m->tr);
				m->tr = NULL;
			}
		}
	}
	return m->tr;
}

void mcv_train_free(struct lvd_minicpmv *m)
{
	struct mcv_train *tr = m->tr;
	if (!tr)
		return;
	free(tr->tblock), free(tr->tl), free(tr->d_res), free(tr->gblock), free(tr->gtl);
	free(tr->lora), free(tr->site), free(tr->lparams), free(tr->lgrads);
	free(tr);
	m->tr = NULL;
}

void mcv_site_module(char *out, size_t n, int layer, int site)
{
	static const char *const nm[MCV_NSITE] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
						   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
						   "mlp.down_proj" };
	snprintf(out, n, "llm.model.layers.%d.%s", layer, nm[site]);
}

/* ---- checks ----------------------------------------------------------------------------- */

int mcv_text_check(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	if (b->labels)
		for (size_t i = 0; i < (size_t)b->B * b->T; i++)
			if (b->labels[i] != -100 && (b->labels[i] < 0 || b->labels[i] >= c->vocab))
				return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: labels[%zu][%zu] = %d is neither "
						     "-100 nor in [0, %d)", i / b->T, i % b->T, b->labels[i], c->vocab);
	if (b->n_cap_layers == 0)
		return 0;
	if (b->n_cap_layers < 0 || b->n_cap_layers > MCV_MAX_CAP || !b->cap_layers || !b->cap_rows || !b->cap_off)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: capture needs 1..%d cap_layers, cap_rows and "
				     "cap_off", MCV_MAX_CAP);
	for (int k = 0; k < b->n_cap_layers; k++) {
		if (b->cap_layers[k] < 0 || b->cap_layers[k] >= c->t_layers)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_layers[%d] = %d outside [0, %d)", k,
					     b->cap_layers[k], c->t_layers);
		for (int j = 0; j < k; j++)
			if (b->cap_layers[j] == b->cap_layers[k])
				return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_layers[%d] repeats layer %d", k,
						     b->cap_layers[k]);
	}
	if (b->cap_off[0] != 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_off[0] = %d, must be 0", b->cap_off[0]);
	for (int s = 0; s < b->B; s++) {
		if (b->cap_off[s + 1] < b->cap_off[s])
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_off[%d] < cap_off[%d]", s + 1, s);
		for (int i = b->cap_off[s]; i < b->cap_off[s + 1]; i++) {
			if (b->cap_rows[i] < 0 || b->cap_rows[i] >= b->T)
				return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_rows[%d] = %d outside [0, %d)", i,
						     b->cap_rows[i], b->T);
			for (int j = b->cap_off[s]; j < i; j++)
				if (b->cap_rows[j] == b->cap_rows[i])
					return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: cap_rows[%d] repeats row %d "
							     "of sample %d", i, b->cap_rows[i], s);
		}
	}
	return 0;
}

/* ---- activations ---------------------------------------------------------------------- */

static size_t carve(struct lvd_minicpmv *m, struct mcv_train *tr, float *base, const struct lvd_minicpmv_batch *b,
		    int keep)
{
	const struct lvd_minicpmv_config *c = &m->c;
	size_t off = 0, B = b->B, T = b->T, BT = B * T, D = c->t_hidden, H = c->t_heads;
	size_t KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter, r = tr->lora_r, NI = b->NI;
	size_t ncr = b->n_cap_layers ? (size_t)b->cap_off[b->B] : 0;
	tr->norm_in = mcv_take(base, &off, BT * D);
	tr->norm_r = mcv_take(base, &off, BT);
	tr->normed = mcv_take(base, &off, BT * D);
	tr->logits = mcv_take(base, &off, BT * c->vocab);
	size_t S = 0;
	for (size_t i = 0; b->labels && i < BT; i++)
		S += b->labels[i] != -100;
	tr->srows = (int *)mcv_take(base, &off, S + 1);
	tr->slabels = (int *)mcv_take(base, &off, S + 1);
	tr->normed_s = mcv_take(base, &off, S * D + 1);
	tr->logits_s = mcv_take(base, &off, S * c->vocab + 1);
	tr->ids = (int *)mcv_take(base, &off, BT);
	tr->pos = (int *)mcv_take(base, &off, T);
	tr->labels = (int *)mcv_take(base, &off, BT);
	tr->bound = (int *)mcv_take(base, &off, 2 * NI + 1);
	tr->nimg = (int *)mcv_take(base, &off, B);
	tr->cap_rows = (int *)mcv_take(base, &off, ncr + 1);
	tr->cap_rows_t = (int *)mcv_take(base, &off, ncr + 1);
	tr->cap_off = (int *)mcv_take(base, &off, B + 1);
	tr->cpoff = (size_t *)mcv_take(base, &off, 2 * (B + 1));
	/* compact capture: Σ_b H·R_b·NQ_b floats per layer */
	size_t ncomp = 0;
	for (int s = 0; s < b->B && b->n_cap_layers; s++)
		ncomp += H * (size_t)(b->cap_off[s + 1] - b->cap_off[s]) * (size_t)(b->NI ? b->n_images[s] : 0) *
			 c->query_num;
	for (int k = 0; k < b->n_cap_layers; k++)
		tr->cprobs[k] = mcv_take(base, &off, ncomp + 1);
	float *xs[2] = { NULL, NULL };
	if (!keep) {
		xs[0] = mcv_take(base, &off, BT * D);
		xs[1] = mcv_take(base, &off, BT * D);
	}
	struct lvd_llama_layer_a shared = { 0 };
	for (int l = 0; l < c->t_layers; l++) {
		struct mcv_tlayer *L = &tr->tl[l];
		struct lvd_llama_layer_a *a = &L->a;
		L->x_in = keep ? mcv_take(base, &off, BT * D) : xs[l & 1];
		L->capk = -1;
		for (int k = 0; k < b->n_cap_layers; k++)
			if (b->cap_layers[k] == l)
				L->capk = k;
		if (keep || l == 0) {
			a->ln1 = mcv_take(base, &off, BT * D);
			a->ln1_r = mcv_take(base, &off, BT);
			a->q = mcv_take(base, &off, BT * D);
			a->k = mcv_take(base, &off, BT * KV);
			a->v = mcv_take(base, &off, BT * KV);
			a->stats = mcv_take(base, &off, BT * H * 2);
			a->att = mcv_take(base, &off, BT * D);
			a->o_out = mcv_take(base, &off, BT * D);
			a->x_mid = mcv_take(base, &off, BT * D);
			a->ln2 = mcv_take(base, &off, BT * D);
			a->ln2_r = mcv_take(base, &off, BT);
			a->g = mcv_take(base, &off, BT * It);
			a->up = mcv_take(base, &off, BT * It);
			a->act = mcv_take(base, &off, BT * It);
			a->m_out = mcv_take(base, &off, BT * D);
			shared = *a;
		} else {
			*a = shared;
		}
		a->cap = NULL;
		a->probs = NULL;
		L->pfull = NULL;
		if (L->capk >= 0) {
			L->pfull = mcv_take(base, &off, H * ncr * T + 1);
			a->cap = &tr->cap;
			a->probs = L->pfull;
		}
		for (int s = 0; s < MCV_NSITE; s++) {
			const struct lvd_minicpmv_lora *ls = tr->site[(size_t)l * MCV_NSITE + s];
			L->u[s] = L->xd[s] = NULL;
			if (!ls || !(keep || l == 0))
				continue;
			L->u[s] = mcv_take(base, &off, BT * r);
			if (tr->p_fwd > 0)
				L->xd[s] = mcv_take(base, &off, BT * ls->in);
		}
		if (!keep && l > 0)
			for (int s = 0; s < MCV_NSITE; s++)
				L->u[s] = tr->tl[0].u[s], L->xd[s] = tr->tl[0].xd[s];
	}
	return off;
}

/* ---- the LoRA-aware linears of the shared layer ------------------------------------------ */

struct tlin_user {
	struct lvd_minicpmv *m;
	int l;
	float *u;   /* NULL, or where a recomputing forward puts the LoRA saves (no dropout) */
};

static uint64_t site_seed(const struct mcv_train *tr, int l, int s)
{
	return tr->lora_seed * 1000003u + (uint64_t)tr->dropout_step * 7919u + (uint64_t)l * 16 + (uint64_t)s;
}

static const struct lvd_llama_lora *site_glue(const struct mcv_train *tr, int l, int s, struct lvd_llama_lora *g)
{
	const struct lvd_minicpmv_lora *ls = tr->site[(size_t)l * MCV_NSITE + s];
	if (!ls)
		return NULL;
	*g = (struct lvd_llama_lora){ ls->A, ls->B, ls->dA, ls->dB, tr->lora_r, tr->lora_s, tr->p_fwd };
	return g;
}

static void tlin(void *user, enum lvd_llama_site s, float *out, const float *x, const float *W, int N, int IC, int OC)
{
	struct tlin_user *u = user;
	struct mcv_train *tr = u->m->tr;
	struct mcv_tlayer *L = &tr->tl[u->l];
	struct lvd_llama_lora g;
	lvd_llama_lora_lin_fwd(u->m->ctx, out, u->u ? u->u : L->u[s], L->xd[s], x, W, NULL, site_glue(tr, u->l, (int)s, &g),
			       N, IC, OC, site_seed(tr, u->l, (int)s));
}

static void tlin_bwd(void *user, enum lvd_llama_site s, float *dx, float *dW, const float *dout, const float *x,
		     const float *W, int N, int IC, int OC)
{
	struct tlin_user *u = user;
	struct mcv_train *tr = u->m->tr;
	struct mcv_tlayer *L = &tr->tl[u->l];
	struct lvd_llama_lora g;
	lvd_llama_lora_lin_bwd(u->m->ctx, dx, dW, NULL, dout, x, W, L->u[s], L->xd[s], site_glue(tr, u->l, (int)s, &g), N,
			       IC, OC, site_seed(tr, u->l, (int)s));
}

/* ---- forward ---------------------------------------------------------------------------- */

/* row i of [B·T] in the last layer's computed rows [B·(T − r0)] (i % T >= r0) */
static size_t tail_row(const struct mcv_train *tr, int i)
{
	return (size_t)(i / tr->T) * (tr->T - tr->r0) + (size_t)(i % tr->T - tr->r0);
}

static void rope_freqs(const struct lvd_minicpmv *m, float *inv_freq)
{
	const struct lvd_minicpmv_config *c = &m->c;
	LVD_ASSERT(c->t_head_dim / 2 <= 512);
	lvd_rope_freqs(m->ctx, inv_freq, c->t_head_dim, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low,
		       c->rope_high, c->rope_orig_max);
}

static struct lvd_llama_dims dims(const struct lvd_minicpmv *m)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct lvd_llama_dims d = { m->tr->B, m->tr->T, c->t_hidden, c->t_heads, c->t_kv_heads, c->t_head_dim,
				    c->t_inter, c->t_eps };
	return d;
}

int mcv_text_fwd(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, const float *resampled,
		 struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	struct mcv_train *tr = mcv_train_get(m);
	if (!tr)
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
	int rc = mcv_text_check(m, b, err);
	if (rc)
		return rc;
	int keep = b->labels || b->n_cap_layers || tr->gblock || tr->nlora;
	tr->keep = 0;   /* until this forward is complete */
	tr->p_fwd = tr->eval ? 0.0f : tr->lora_p;   /* the backward uses the forward's dropout */
	size_t need = carve(m, tr, NULL, b, keep);
	if (need > tr->tcap) {
		free(tr->tblock);
		tr->tcap = 0;
		tr->tblock = lvd_alloc_aligned(need, sizeof(float));
		if (!tr->tblock)
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate %zu LLM activation floats", need);
		tr->tcap = need;
	}
	carve(m, tr, tr->tblock, b, keep);
	int B = b->B, T = b->T, BT = B * T, D = c->t_hidden, H = c->t_heads, Q = c->query_num, NI = b->NI;
	tr->B = B, tr->T = T, tr->NI = NI, tr->dropout_step = b->dropout_step;
	tr->resampled = (float *)resampled;
	memcpy(tr->ids, b->input_ids, sizeof(int) * (size_t)BT);
	for (int i = 0; i < BT; i++)
		tr->labels[i] = b->labels ? b->labels[i] : -100;
	for (int s = 0; s < B; s++)
		tr->nimg[s] = NI ? b->n_images[s] : 0;
	if (NI)
		memcpy(tr->bound, b->image_bound, sizeof(int) * 2 * (size_t)NI);
	for (int t = 0; t < T; t++)
		tr->pos[t] = t;
	/* capture lists */
	tr->ncap = b->n_cap_layers;
	memcpy(tr->cap_layers, b->cap_layers ? b->cap_layers : tr->cap_layers, sizeof(int) * (size_t)tr->ncap);
	tr->ncap_rows = tr->ncap ? (size_t)b->cap_off[B] : 0;
	if (tr->ncap) {
		memcpy(tr->cap_rows, b->cap_rows, sizeof(int) * tr->ncap_rows);
		memcpy(tr->cap_off, b->cap_off, sizeof(int) * (size_t)(B + 1));
	}
	tr->cap = (struct lvd_attn_capture){ tr->cap_rows, tr->ncap ? tr->cap_off : NULL };
	tr->cpoff[0] = 0;
	for (int s = 0; s < B; s++)
		tr->cpoff[s + 1] = tr->cpoff[s] + (tr->ncap ? (size_t)H * (size_t)(tr->cap_off[s + 1] - tr->cap_off[s]) *
									(size_t)tr->nimg[s] * Q
							    : 0);
	/* embeddings, the picture features scattered in */
	lvd_embedding_fwd(ctx, tr->tl[0].x_in, tr->ids, w->embed, BT, D);
	for (int s = 0, i = 0; s < B && NI; s++)
		for (int k = 0; k < b->n_images[s]; k++, i++)
			memcpy(tr->tl[0].x_in + ((size_t)s * T + b->image_bound[2 * i]) * D, resampled + (size_t)i * Q * D,
			       sizeof(float) * (size_t)Q * D);
	float inv_freq[512];
	rope_freqs(m, inv_freq);
	struct lvd_llama_dims d = dims(m);
	/* the last layer's output feeds only the logits: with labels it runs from the first
	 * row any sample scores (or captures there) on; rows above still give their keys */
	int last = c->t_layers - 1;
	tr->r0 = 0;
	if (b->labels && tr->p_fwd == 0.0f) {
		int r0 = T;
		for (int i = 0; i < BT; i++)
			if (tr->labels[i] != -100 && i % T < r0)
				r0 = i % T;
		for (size_t i = 0; tr->tl[last].capk >= 0 && i < tr->ncap_rows; i++)
			r0 = tr->cap_rows[i] < r0 ? tr->cap_rows[i] : r0;
		tr->r0 = r0 < T ? r0 : 0;
	}
	if (tr->r0 && tr->tl[last].capk >= 0) {
		for (size_t i = 0; i < tr->ncap_rows; i++)
			tr->cap_rows_t[i] = tr->cap_rows[i] - tr->r0;
		tr->cap_t = (struct lvd_attn_capture){ tr->cap_rows_t, tr->cap_off };
		tr->tl[last].a.cap = &tr->cap_t;
	}
	for (int l = 0; l < c->t_layers; l++) {
		float *out = l + 1 < c->t_layers ? tr->tl[l + 1].x_in : tr->norm_in;
		struct tlin_user u = { m, l, NULL };
		lvd_llama_layer_fwd_tail(ctx, out, &tr->tl[l].a, tr->tl[l].x_in, &w->tl[l], tr->pos, inv_freq, &d,
					 l == last ? tr->r0 : 0, tlin, &u);
		/* the capture rows' probabilities over the sample's image-token columns */
		int k = tr->tl[l].capk;
		if (k < 0)
			continue;
		for (int s = 0, i0 = 0; s < B; i0 += tr->nimg[s], s++) {
			int R = tr->cap_off[s + 1] - tr->cap_off[s], NQ = tr->nimg[s] * Q;
			for (int h = 0; h < H; h++)
				for (int r = 0; r < R; r++) {
					const float *src = tr->tl[l].pfull + ((size_t)H * tr->cap_off[s] + (size_t)h * R + r) * T;
					float *dst = tr->cprobs[k] + tr->cpoff[s] + ((size_t)h * R + r) * NQ;
					for (int p = 0; p < tr->nimg[s]; p++)
						memcpy(dst + (size_t)p * Q, src + tr->bound[2 * (i0 + p)], sizeof(float) * Q);
				}
		}
	}
	int Ts = T - tr->r0;   /* rows of norm_in/normed per sample */
	lvd_rmsnorm_fwd(ctx, tr->normed, tr->norm_r, tr->norm_in, w->norm, B * Ts, D, c->t_eps);
	tr->loss = 0.0;
	tr->count = 0;
	tr->S = 0;
	tr->lpend = 0;
	if (b->labels) {
		/* the LM head and CE on the scored rows; the other rows' logits on demand */
		for (int i = 0; i < BT; i++)
			if (tr->labels[i] != -100) {
				tr->srows[tr->S] = i;
				tr->slabels[tr->S] = tr->labels[i];
				memcpy(tr->normed_s + (size_t)tr->S * D, tr->normed + tail_row(tr, i) * D, sizeof(float) * D);
				tr->S++;
			}
		lvd_linear_fwd(ctx, tr->logits_s, tr->normed_s, w->lm_head, NULL, tr->S, D, c->vocab);
		double sum = lvd_xent_fwd(ctx, &tr->count, tr->logits_s, tr->slabels, tr->S, c->vocab);
		tr->loss = tr->count ? sum / tr->count : 0.0;
		tr->lpend = 1;
	} else {
		lvd_linear_fwd(ctx, tr->logits, tr->normed, w->lm_head, NULL, BT, D, c->vocab);
	}
	m->logits = tr->logits;
	tr->keep = keep;
	return 0;
}

const float *mcv_text_logits(struct lvd_minicpmv *m)
{
	struct mcv_train *tr = m->tr;
	if (!tr || !tr->lpend)
		return m->logits;
	const struct lvd_minicpmv_config *c = &m->c;
	struct lvd_ctx *ctx = m->ctx;
	int B = tr->B, T = tr->T, BT = B * T, D = c->t_hidden, V = c->vocab, n = BT - tr->S, r0 = tr->r0;
	size_t mk = lvd_ctx_mark(ctx);
	float *xs = lvd_ctx_takef(ctx, (size_t)n * D + 1), *ls = lvd_ctx_takef(ctx, (size_t)n * V + 1);
	float *np = NULL;   /* normed rows [0, r0) of each sample [B·r0, D] */
	if (r0) { /* the last layer again on the rows above r0 (causal: they see only keys < r0) */
		int l = c->t_layers - 1, BP = B * r0, KV = c->t_kv_heads * c->t_head_dim, It = c->t_inter;
		size_t P = (size_t)BP;
		float *xp = lvd_ctx_takef(ctx, P * D), *op = lvd_ctx_takef(ctx, P * D), *nr = lvd_ctx_takef(ctx, P);
		for (int s = 0; s < B; s++)
			memcpy(xp + (size_t)s * r0 * D, tr->tl[l].x_in + (size_t)s * T * D, sizeof(float) * r0 * D);
		struct lvd_llama_layer_a a = { lvd_ctx_takef(ctx, P * D), lvd_ctx_takef(ctx, P),
					       lvd_ctx_takef(ctx, P * D), lvd_ctx_takef(ctx, P * KV),
					       lvd_ctx_takef(ctx, P * KV), lvd_ctx_takef(ctx, P * c->t_heads * 2),
					       lvd_ctx_takef(ctx, P * D), lvd_ctx_takef(ctx, P * D),
					       lvd_ctx_takef(ctx, P * D), lvd_ctx_takef(ctx, P * D),
					       lvd_ctx_takef(ctx, P), lvd_ctx_takef(ctx, P * It),
					       lvd_ctx_takef(ctx, P * It), lvd_ctx_takef(ctx, P * It),
					       lvd_ctx_takef(ctx, P * D), NULL, NULL };
		struct tlin_user u = { m, l, lvd_ctx_takef(ctx, P * (tr->lora_r > 0 ? tr->lora_r : 1)) };
		float inv_freq[512];
		rope_freqs(m, inv_freq);
		struct lvd_llama_dims d = dims(m);
		d.T = r0;
		lvd_llama_layer_fwd(ctx, op, &a, xp, &m->w.tl[l], tr->pos, inv_freq, &d, tlin, &u);
		np = lvd_ctx_takef(ctx, P * D);
		lvd_rmsnorm_fwd(ctx, np, nr, op, m->w.norm, BP, D, c->t_eps);
	}
	for (int i = 0, j = 0, k = 0; i < BT; i++) {
		if (j < tr->S && tr->srows[j] == i)
			memcpy(tr->logits + (size_t)i * V, tr->logits_s + (size_t)j++ * V, sizeof(float) * V);
		else if (i % T < r0)
			memcpy(xs + (size_t)k++ * D, np + ((size_t)(i / T) * r0 + i % T) * D, sizeof(float) * D);
		else
			memcpy(xs + (size_t)k++ * D, tr->normed + tail_row(tr, i) * D, sizeof(float) * D);
	}
	lvd_linear_fwd(ctx, ls, xs, m->w.lm_head, NULL, n, D, V);
	for (int i = 0, j = 0, k = 0; i < BT; i++) {
		if (j < tr->S && tr->srows[j] == i)
			j++;
		else
			memcpy(tr->logits + (size_t)i * V, ls + (size_t)k++ * V, sizeof(float) * V);
	}
	lvd_ctx_release(ctx, mk);
	tr->lpend = 0;
	return m->logits;
}

double lvd_minicpmv_loss(const struct lvd_minicpmv *m, int *count)
{
	if (count)
		*count = m->tr ? m->tr->count : 0;
	return m->tr ? m->tr->loss : 0.0;
}

const float *lvd_minicpmv_cap_probs(const struct lvd_minicpmv *m, int k, size_t *n)
{
	const struct mcv_train *tr = m->tr;
	if (!tr || k < 0 || k >= tr->ncap)
		return NULL;
	if (n)
		*n = tr->cpoff[tr->B];
	return tr->cprobs[k];
}

size_t lvd_minicpmv_cap_offset(const struct lvd_minicpmv *m, int b)
{
	const struct mcv_train *tr = m->tr;
	return tr && tr->ncap && b >= 0 && b <= tr->B ? tr->cpoff[b] : 0;
}

/* ---- gradients -------------------------------------------------------------------------- */

int lvd_minicpmv_enable_grads(struct lvd_minicpmv *m, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct mcv_train *tr = mcv_train_get(m);
	if (!tr)
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
	if (tr->gblock)
		return 0;
	size_t D = c->t_hidden, KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter, V = c->vocab;
	size_t per = 2 * D + 2 * D * D + 2 * KV * D + 3 * It * D;
	size_t n = 2 * V * D + D + per * c->t_layers;
	tr->gblock = calloc(n, sizeof(float));
	tr->gtl = calloc((size_t)c->t_layers, sizeof *tr->gtl);
	if (!tr->gblock || !tr->gtl) {
		free(tr->gblock), free(tr->gtl);
		tr->gblock = NULL, tr->gtl = NULL;
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate %zu gradient floats", n);
	}
	tr->gsize = n;
	float *p = tr->gblock;
	tr->g_embed = p, p += V * D;
	for (int l = 0; l < c->t_layers; l++) {
		struct lvd_llama_layer_g *g = &tr->gtl[l];
		g->ln1 = p, p += D;
		g->q = p, p += D * D;
		g->k = p, p += KV * D;
		g->v = p, p += KV * D;
		g->o = p, p += D * D;
		g->ln2 = p, p += D;
		g->gate = p, p += It * D;
		g->up = p, p += It * D;
		g->down = p, p += It * D;
	}
	tr->g_norm = p, p += D;
	tr->g_lm_head = p, p += V * D;
	LVD_ASSERT((size_t)(p - tr->gblock) == n);
	return 0;
}

void lvd_minicpmv_zero_grads(struct lvd_minicpmv *m)
{
	struct mcv_train *tr = m->tr;
	if (!tr)
		return;
	if (tr->gblock)
		memset(tr->gblock, 0, sizeof(float) * tr->gsize);
	if (tr->lgrads)
		memset(tr->lgrads, 0, sizeof(float) * tr->lsize);
}

float *lvd_minicpmv_llm_grad(struct lvd_minicpmv *m, const char *name, size_t *n)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct mcv_train *tr = m->tr;
	if (!tr || !tr->gblock || strncmp(name, "llm.", 4))
		return NULL;
	size_t D = c->t_hidden, KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter, V = c->vocab, sz = 0;
	float *g = NULL;
	int l, used = 0;
	char rest[96];
	if (!strcmp(name, "llm.model.embed_tokens.weight"))
		g = tr->g_embed, sz = V * D;
	else if (!strcmp(name, "llm.model.norm.weight"))
		g = tr->g_norm, sz = D;
	else if (!strcmp(name, "llm.lm_head.weight"))
		g = tr->g_lm_head, sz = V * D;
	else if (sscanf(name, "llm.model.layers.%d.%95s%n", &l, rest, &used) == 2 && name[used] == 0 && l >= 0 &&
		 l < c->t_layers) {
		const struct lvd_llama_layer_g *G = &tr->gtl[l];
		static const char *const nm[9] = { "input_layernorm.weight", "self_attn.q_proj.weight",
						   "self_attn.k_proj.weight", "self_attn.v_proj.weight",
						   "self_attn.o_proj.weight", "post_attention_layernorm.weight",
						   "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight" };
		float *const ptr[9] = { G->ln1, G->q, G->k, G->v, G->o, G->ln2, G->gate, G->up, G->down };
		const size_t szs[9] = { D, D * D, KV * D, KV * D, D * D, D, It * D, It * D, It * D };
		for (int i = 0; i < 9; i++)
			if (!strcmp(rest, nm[i]))
				g = ptr[i], sz = szs[i];
	}
	if (g && n)
		*n = sz;
	return g;
}

/* ---- backward --------------------------------------------------------------------------- */

int lvd_minicpmv_backward(struct lvd_minicpmv *m, const float *const *dprobs, struct lvd_error *err)
{
	return lvd_minicpmv_backward_scaled(m, 1.0f, dprobs, err);
}

int lvd_minicpmv_backward_scaled(struct lvd_minicpmv *m, float ce_scale, const float *const *dprobs,
				 struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct mcv_train *tr = m->tr;
	struct lvd_ctx *ctx = m->ctx;
	if (!tr || !tr->keep)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: backward needs a training forward before it (labels, "
				     "capture, enabled gradients or LoRA)");
	int B = tr->B, T = tr->T, BT = B * T, D = c->t_hidden, H = c->t_heads, V = c->vocab, Q = c->query_num;
	size_t KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter, NI = (size_t)tr->NI;
	if (NI * Q * D > tr->d_res_cap) {
		free(tr->d_res);
		tr->d_res_cap = 0;
		tr->d_res = malloc(sizeof(float) * (NI * Q * D + 1));
		if (!tr->d_res)
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
		tr->d_res_cap = NI * Q * D;
	}
	int base = tr->gblock && !tr->nlora;
	size_t mk = lvd_ctx_mark(ctx);
	size_t BTD = (size_t)BT * D;
	int S = tr->S;
	float *dlogits = lvd_ctx_takef(ctx, (size_t)S * V + 1), *dln_s = lvd_ctx_takef(ctx, (size_t)S * D + 1);
	float *dx = lvd_ctx_takef(ctx, BTD);
	struct lvd_llama_layer_s s = { lvd_ctx_takef(ctx, BTD), lvd_ctx_takef(ctx, BTD), lvd_ctx_takef(ctx, BTD),
				       lvd_ctx_takef(ctx, BTD), lvd_ctx_takef(ctx, BT * KV), lvd_ctx_takef(ctx, BT * KV),
				       lvd_ctx_takef(ctx, BT * It), lvd_ctx_takef(ctx, BT * It), lvd_ctx_takef(ctx, BT * It) };
	float *dpfull = tr->ncap ? lvd_ctx_takef(ctx, (size_t)H * tr->ncap_rows * T + 1) : NULL;
	/* CE and the LM head on the scored rows (the others' logits have no gradient) */
	memset(dlogits, 0, sizeof(float) * (size_t)S * V);
	if (tr->count)
		lvd_xent_bwd(ctx, dlogits, tr->logits_s, tr->slabels, ce_scale / (float)tr->count, S, V);
	memset(dln_s, 0, sizeof(float) * (size_t)S * D);
	lvd_linear_bwd(ctx, dln_s, base ? tr->g_lm_head : NULL, NULL, dlogits, tr->normed_s, w->lm_head, S, D, V);
	/* the final norm over the last layer's computed rows (all, or the tail rows of each
	 * sample), its gradient put back at their rows of dx */
	int Ts = T - tr->r0;
	size_t BTsD = (size_t)B * Ts * D;
	float *dxs = tr->r0 ? lvd_ctx_takef(ctx, BTsD) : dx;
	memset(s.dln, 0, sizeof(float) * BTsD);
	for (int j = 0; j < S; j++)
		memcpy(s.dln + tail_row(tr, tr->srows[j]) * D, dln_s + (size_t)j * D, sizeof(float) * D);
	memset(dxs, 0, sizeof(float) * BTsD);
	lvd_rmsnorm_bwd(ctx, dxs, base ? tr->g_norm : NULL, s.dln, tr->norm_in, w->norm, tr->norm_r, B * Ts, D);
	if (tr->r0) {
		memset(dx, 0, sizeof(float) * BTD);
		for (int sm = 0; sm < B; sm++)
			memcpy(dx + ((size_t)sm * T + tr->r0) * D, dxs + (size_t)sm * Ts * D, sizeof(float) * (size_t)Ts * D);
	}
	float inv_freq[512];
	rope_freqs(m, inv_freq);
	struct lvd_llama_dims d = dims(m);
	for (int l = c->t_layers - 1; l >= 0; l--) {
		struct mcv_tlayer *L = &tr->tl[l];
		const float *dp = NULL;
		int k = L->capk;
		if (k >= 0 && dprobs && dprobs[k]) {
			/* the compact gradient back onto the full rows (0 on text columns) */
			memset(dpfull, 0, sizeof(float) * (size_t)H * tr->ncap_rows * T);
			for (int sm = 0, i0 = 0; sm < B; i0 += tr->nimg[sm], sm++) {
				int R = tr->cap_off[sm + 1] - tr->cap_off[sm], NQ = tr->nimg[sm] * Q;
				for (int h = 0; h < H; h++)
					for (int r = 0; r < R; r++) {
						float *dst = dpfull + ((size_t)H * tr->cap_off[sm] + (size_t)h * R + r) * T;
						const float *src = dprobs[k] + tr->cpoff[sm] + ((size_t)h * R + r) * NQ;
						for (int p = 0; p < tr->nimg[sm]; p++)
							memcpy(dst + tr->bound[2 * (i0 + p)], src + (size_t)p * Q, sizeof(float) * Q);
					}
			}
			dp = dpfull;
		}
		struct tlin_user u = { m, l, NULL };
		lvd_llama_layer_bwd_tail(ctx, dx, &s, &L->a, L->x_in, &w->tl[l], base ? &tr->gtl[l] : NULL, dp, tr->pos,
					 inv_freq, &d, l == c->t_layers - 1 ? tr->r0 : 0, tlin_bwd, &u);
	}
	/* the picture rows go to the resampled features, the others to the embedding table */
	unsigned char *pic = (unsigned char *)lvd_ctx_takef(ctx, (size_t)BT / 4 + 1);
	memset(pic, 0, (size_t)BT);
	for (int sm = 0, i = 0; sm < B; sm++)
		for (int p = 0; p < tr->nimg[sm]; p++, i++) {
			size_t r0 = (size_t)sm * T + tr->bound[2 * i];
			memcpy(tr->d_res + (size_t)i * Q * D, dx + r0 * D, sizeof(float) * (size_t)Q * D);
			memset(pic + r0, 1, (size_t)Q);
		}
	if (base)
		for (int r = 0; r < BT; r++)
			if (!pic[r])
				lvd_embedding_bwd(ctx, tr->g_embed, dx + (size_t)r * D, tr->ids + r, 1, D);
	lvd_ctx_release(ctx, mk);
	return 0;
}

const float *lvd_minicpmv_d_resampled(const struct lvd_minicpmv *m)
{
	return m->tr && m->tr->NI ? m->tr->d_res : NULL;
}

float *lvd_minicpmv_llm_grad_block(struct lvd_minicpmv *m, size_t *n)
{
	*n = m->tr && m->tr->gblock ? m->tr->gsize : 0;
	return *n ? m->tr->gblock : NULL;
}
