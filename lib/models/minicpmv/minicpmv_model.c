/* lib/models/minicpmv/minicpmv_model.c — minicpmv forward on the ops of lib/nn/ops:
 * batch checks, the vision tower and resampler (minicpmv_vision.c), then the LLM
 * (minicpmv_text.c) with the picture features scattered into its input embeddings.
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
#include "models/minicpmv/minicpmv_train.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"

struct mcv_acts {
	struct mcv_vacts v;   /* vision tower and resampler (minicpmv_vision.c); the LLM's are
			       * minicpmv_text.c's */
};

/* carves (base NULL: measures) the activations of a B×T batch with NI pictures of L patches */
static size_t carve(const struct lvd_minicpmv *m, struct mcv_acts *a, float *base, int B, int T, int NI, int L)
{
	(void)B, (void)T;
	size_t off = 0;
	mcv_vision_carve(m, &a->v, base, &off, NI, L);
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

int mcv_pictures_fwd(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
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
	m->vision = NI ? a.v.vision : NULL;
	m->resampled = NI ? a.v.resampled : NULL;
	m->probs = NI ? a.v.probs : NULL;
	m->pos_ids = NI ? a.v.pos_ids : NULL;
	return 0;
}

int lvd_minicpmv_forward(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	int rc = check_batch(m, b, err);
	if (!rc)
		rc = mcv_text_check(m, b, err);
	if (!rc)
		rc = mcv_pictures_fwd(m, b, err);
	if (rc)
		return rc;
	/* the LLM (minicpmv_text.c) sets m->logits */
	return mcv_text_fwd(m, b, m->resampled, err);
}

/* a labelled forward leaves the unscored rows' logits to this first call (minicpmv_text.c):
 * filling them is a cache fill of m, which callers own non-const */
const float *lvd_minicpmv_logits(const struct lvd_minicpmv *m) { return mcv_text_logits((struct lvd_minicpmv *)m); }
const float *lvd_minicpmv_vision(const struct lvd_minicpmv *m) { return m->vision; }
const float *lvd_minicpmv_resampled(const struct lvd_minicpmv *m) { return m->resampled; }
const float *lvd_minicpmv_resampler_probs(const struct lvd_minicpmv *m) { return m->probs; }
const int *lvd_minicpmv_pos_ids(const struct lvd_minicpmv *m) { return m->pos_ids; }
