/* lib/models/minicpmv/minicpmv_model.c — minicpmv inference forward on the ops of
 * lib/nn/ops: batch checks, the Llama decoder with the picture features scattered into
 * its input embeddings (the vision tower and resampler: minicpmv_vision.c).
 *
 * Letters: B samples, T tokens, NI pictures, L = Lmax patches per picture (padded),
 * N = NI·L vision rows, Dv vision width, Iv vision MLP width, Hv vision heads, D text
 * width, Q queries, Hr resampler heads, H/KH text query/kv heads, hd text head dim,
 * It text MLP width, V vocabulary, K = C·ps·ps patch features. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"

struct mcv_acts {
	struct mcv_vacts v;   /* vision tower and resampler (minicpmv_vision.c) */
	/* text */
	float *tx, *tx2, *tln, *tln2, *tq, *tk, *tv, *tatt, *to, *tmid, *tm, *tg, *tup, *tact, *tstats, *logits;
	int *ids, *tpos;
};

/* carves (base NULL: measures) the activations of a B×T batch with NI pictures of L patches */
static size_t carve(const struct lvd_minicpmv *m, struct mcv_acts *a, float *base, int B, int T, int NI, int L)
{
	const struct lvd_minicpmv_config *c = &m->c;
	size_t off = 0, D = c->t_hidden, BT = (size_t)B * T;
	size_t KV = (size_t)c->t_kv_heads * c->t_head_dim, It = c->t_inter;
	mcv_vision_carve(m, &a->v, base, &off, NI, L);
	a->tx = mcv_take(base, &off, BT * D);
	a->tx2 = mcv_take(base, &off, BT * D);
	a->tln = mcv_take(base, &off, BT * D);
	a->tln2 = mcv_take(base, &off, BT * D);
	a->tmid = mcv_take(base, &off, BT * D);
	a->tm = mcv_take(base, &off, BT * D);
	a->tq = mcv_take(base, &off, BT * D);
	a->tk = mcv_take(base, &off, BT * KV);
	a->tv = mcv_take(base, &off, BT * KV);
	a->tatt = mcv_take(base, &off, BT * D);
	a->to = mcv_take(base, &off, BT * D);
	a->tg = mcv_take(base, &off, BT * It);
	a->tup = mcv_take(base, &off, BT * It);
	a->tact = mcv_take(base, &off, BT * It);
	a->tstats = mcv_take(base, &off, BT * c->t_heads * 2);
	a->logits = mcv_take(base, &off, BT * c->vocab);
	a->ids = (int *)mcv_take(base, &off, BT);
	a->tpos = (int *)mcv_take(base, &off, T);
	return off;
}

static int check_batch(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	if (b->B < 1 || b->T < 1 || !b->input_ids || b->NI < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: B, T >= 1 and input_ids required");
	for (size_t i = 0; i < (size_t)b->B * b->T; i++)
		if (b->input_ids[i] < 0 || b->input_ids[i] >= c->vocab)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: input_ids[%zu][%zu] = %d outside [0, %d)",
					     i / b->T, i % b->T, b->input_ids[i], c->vocab);
	if (b->NI == 0)
		return 0;
	if (!b->pixel_values || !b->tgt_sizes || !b->n_images || !b->image_bound || b->Lmax < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: pictures need pixel_values, tgt_sizes, "
				     "n_images, image_bound and Lmax >= 1");
	int sum = 0;
	for (int s = 0; s < b->B; s++) {
		if (b->n_images[s] < 0)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: n_images[%d] < 0", s);
		sum += b->n_images[s];
	}
	if (sum != b->NI)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: n_images sum to %d, NI = %d", sum, b->NI);
	for (int i = 0; i < b->NI; i++) {
		int th = b->tgt_sizes[2 * i], tw = b->tgt_sizes[2 * i + 1];
		if (th < 1 || tw < 1 || (long)th * tw > b->Lmax)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: tgt_sizes[%d] = (%d, %d) outside 1..Lmax "
					     "(%d) patches", i, th, tw, b->Lmax);
	}
	/* ranges: Q long, inside the sample, disjoint */
	for (int s = 0, i0 = 0; s < b->B; i0 += b->n_images[s], s++)
		for (int i = i0; i < i0 + b->n_images[s]; i++) {
			int st = b->image_bound[2 * i], en = b->image_bound[2 * i + 1];
			if (st < 0 || en > b->T || en - st != c->query_num)
				return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: image_bound[%d] = [%d, %d) must be "
						     "%d tokens inside [0, %d)", i, st, en, c->query_num, b->T);
			for (int j = i0; j < i; j++)
				if (st < b->image_bound[2 * j + 1] && b->image_bound[2 * j] < en)
					return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: image_bound[%d] overlaps "
							     "image_bound[%d]", i, j);
		}
	return 0;
}

/* Llama decoder: embeddings (picture features scattered in), layers, norm, lm_head */
static void text_fwd(struct lvd_minicpmv *m, struct mcv_acts *a, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	int B = b->B, T = b->T, BT = B * T, D = c->t_hidden, H = c->t_heads, KH = c->t_kv_heads, hd = c->t_head_dim;
	int It = c->t_inter, Q = c->query_num;
	memcpy(a->ids, b->input_ids, sizeof(int) * (size_t)BT);
	lvd_embedding_fwd(ctx, a->tx, a->ids, w->embed, BT, D);
	for (int s = 0, i = 0; s < B && b->NI; s++)
		for (int k = 0; k < b->n_images[s]; k++, i++)
			memcpy(a->tx + ((size_t)s * T + b->image_bound[2 * i]) * D, a->v.resampled + (size_t)i * Q * D,
			       sizeof(float) * (size_t)Q * D);
	for (int t = 0; t < T; t++)
		a->tpos[t] = t;
	float inv_freq[512];
	LVD_ASSERT(hd / 2 <= 512);
	lvd_rope_freqs(ctx, inv_freq, hd, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low, c->rope_high,
		       c->rope_orig_max);
	/* the decoder layer shared with mllama (lib/models/llama_layer.c), ping-ponging x */
	struct lvd_llama_layer_a la = { a->tln, NULL, a->tq, a->tk, a->tv, a->tstats, a->tatt, a->to, a->tmid,
					a->tln2, NULL, a->tg, a->tup, a->tact, a->tm };
	struct lvd_llama_dims d = { B, T, D, H, KH, hd, It, c->t_eps };
	float *x = a->tx, *y = a->tx2;
	for (int l = 0; l < c->t_layers; l++) {
		lvd_llama_layer_fwd(ctx, y, &la, x, &w->tl[l], a->tpos, inv_freq, &d, NULL, NULL);
		float *t = x;
		x = y, y = t;
	}
	lvd_rmsnorm_fwd(ctx, a->tln, NULL, x, w->norm, BT, D, c->t_eps);
	lvd_linear_fwd(ctx, a->logits, a->tln, w->lm_head, NULL, BT, D, c->vocab);
}

int lvd_minicpmv_forward(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	int rc = check_batch(m, b, err);
	if (rc)
		return rc;
	int NI = b->NI, L = NI ? b->Lmax : 0;
	struct mcv_acts a;
	size_t need = carve(m, &a, NULL, b->B, b->T, NI, L);
	if (need > m->acap) {
		free(m->ablock);
		m->acap = 0;
		m->ablock = lvd_alloc_aligned(need, sizeof(float));
		if (!m->ablock)
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate %zu activation floats", need);
		m->acap = need;
	}
	carve(m, &a, m->ablock, b->B, b->T, NI, L);
	m->B = b->B, m->T = b->T, m->NI = NI, m->Lmax = L;
	if (NI) {
		mcv_vision_fwd(m, &a.v, b);
		mcv_resampler_fwd(m, &a.v, b);
	}
	text_fwd(m, &a, b);
	m->vision = NI ? a.v.vision : NULL;
	m->resampled = NI ? a.v.resampled : NULL;
	m->probs = NI ? a.v.probs : NULL;
	m->pos_ids = NI ? a.v.pos_ids : NULL;
	m->logits = a.logits;
	return 0;
}

const float *lvd_minicpmv_logits(const struct lvd_minicpmv *m) { return m->logits; }
const float *lvd_minicpmv_vision(const struct lvd_minicpmv *m) { return m->vision; }
const float *lvd_minicpmv_resampled(const struct lvd_minicpmv *m) { return m->resampled; }
const float *lvd_minicpmv_resampler_probs(const struct lvd_minicpmv *m) { return m->probs; }
const int *lvd_minicpmv_pos_ids(const struct lvd_minicpmv *m) { return m->pos_ids; }
