/* One Lavender model+loss step on mllama (see lstep.h). */
#include "lavender/lstep.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "lavender/packrec.h"

int lvd_lstep_plan(struct lvd_latt_plan *p, const struct lvd_mllama *m, const struct lvd_packrec *rec, int M,
		   int img, int official, struct lvd_error *err)
{
	memset(p, 0, sizeof *p);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	if (M < 1 || img < 0 || img >= M)
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep plan: image %d of %d", img, M);
	const int side = c->v_image_size / c->v_patch;
	const int tile_tok = side * side + 1, tl = c->v_max_tiles;
	return lvd_latt_plan_from_packrec(p, rec, c->t_heads, M * tl * tile_tok, img * tl * tile_tok, tile_tok, tl,
					  official, err);
}

static int matched_words(const struct lvd_latt_plan *p)
{
	int n = 0;
	for (int w = 0; w < p->W; w++)
		n += p->words[w].target != NULL;
	return n;
}

size_t lvd_lstep_dprobs_floats(const struct lvd_mllama *m, const struct lvd_latt_plan *plans, int B, int M)
{
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const int side = c->v_image_size / c->v_patch;
	size_t rc = 0;
	for (int b = 0; b < B; b++)
		rc += plans[b].W ? (size_t)plans[b].R : 0;
	return (size_t)c->n_cross * rc * c->t_heads * ((size_t)M * c->v_max_tiles * (side * side + 1));
}

int lvd_lstep_run(struct lvd_ctx *ctx, struct lvd_mllama *m, struct lvd_lstep_out *out, float *dparams,
		  struct lvd_latt_trace *traces, const struct lvd_lstep_in *in, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const struct lvd_mllama_batch *bt = in->batch;
	const struct lvd_latt_cfg *cfg = in->cfg;
	const int B = bt->B, Lc = c->n_cross, H = c->t_heads;
	const int side = c->v_image_size / c->v_patch;
	const size_t S = (size_t)bt->M * c->v_max_tiles * (side * side + 1);
	int rc = lvd_latt_cfg_check(cfg, err);
	if (rc)
		return lvd_error_prefix(err, "lstep: ");
	if (cfg->n_captured != Lc)
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep: cfg.n_captured %d, the model has %d cross layers",
				     cfg->n_captured, Lc);
	int *cap_off = lvd_calloc_array((size_t)B + 1, sizeof *cap_off);
	size_t ncap = 0;
	for (int b = 0; b < B; b++)
		ncap += in->plans[b].W ? (size_t)in->plans[b].R : 0;
	int *cap_rows = lvd_alloc_array(ncap + 1, sizeof *cap_rows);
	const float **probs = lvd_calloc_array((size_t)B * Lc + 1, sizeof *probs);
	float **dprobs_b = lvd_calloc_array((size_t)B * Lc + 1, sizeof *dprobs_b);
	const float **dprobs_l = lvd_calloc_array((size_t)Lc + 1, sizeof *dprobs_l);
	float *dprobs = NULL;
	if (!cap_off || !cap_rows || !probs || !dprobs_b || !dprobs_l) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep: out of memory");
		goto done;
	}
	/* capture rows from the plans */
	int npairs = 0;
	for (int b = 0; b < B; b++) {
		const struct lvd_latt_plan *p = &in->plans[b];
		const int R = p->W ? p->R : 0;
		for (int i = 0; i < R; i++) {
			if (p->rows_pos[i] >= (uint32_t)bt->T) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "lstep: sample %d captures row %u of %d tokens", b,
						   p->rows_pos[i], bt->T);
				goto done;
			}
			cap_rows[cap_off[b] + i] = (int)p->rows_pos[i];
		}
		cap_off[b + 1] = cap_off[b] + R;
		if (R && (p->geom.heads != H || (size_t)p->geom.S != S)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "lstep: sample %d's plan has %d heads and %d keys, the model gives %d and %zu", b,
					   p->geom.heads, p->geom.S, H, S);
			goto done;
		}
		if (R)
			npairs += matched_words(p);
	}
	const double pc = in->pair_count > 0 ? in->pair_count : npairs;
	struct lvd_mllama_batch fb = *bt;
	fb.cap_rows = cap_rows;
	fb.cap_off = cap_off;
	if ((rc = lvd_mllama_forward(m, &fb, err)))
		goto done;
	out->ce = bt->labels ? lvd_mllama_loss(m) : 0.0;
	out->n_pairs = npairs;
	out->pair_count = pc;
	const size_t RC = (size_t)cap_off[B];
	if (RC && npairs) {
		if (in->backward && in->dprobs) {
			dprobs = in->dprobs;
			memset(dprobs, 0, (size_t)Lc * RC * H * S * sizeof *dprobs);
		} else if (in->backward) {
			dprobs = lvd_calloc_array((size_t)Lc * RC * H * S, sizeof *dprobs);
			if (!dprobs) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep: out of memory (%zu floats of dprobs)",
						   (size_t)Lc * RC * H * S);
				goto done;
			}
		}
		for (int k = 0; k < Lc; k++) {
			const float *base = lvd_mllama_xattn_probs(m, k);
			if (!base) {
				rc = lvd_error_set(err, LVD_ERR_INVALID,
						   "lstep: no probabilities from cross layer %d (no pixel values?)", k);
				goto done;
			}
			if (dprobs)
				dprobs_l[k] = dprobs + (size_t)k * RC * H * S;
			for (int b = 0; b < B; b++) {
				probs[(size_t)b * Lc + k] = base + (size_t)H * cap_off[b] * S;
				if (dprobs)
					dprobs_b[(size_t)b * Lc + k] = dprobs + ((size_t)k * RC + (size_t)cap_off[b]) * H * S;
			}
		}
		double latt = 0;
		for (int b = 0; b < B; b++) {
			const struct lvd_latt_plan *p = &in->plans[b];
			if (cap_off[b + 1] == cap_off[b])
				continue;
			struct lvd_latt_sample s = lvd_latt_plan_sample(p, probs + (size_t)b * Lc);
			if ((rc = lvd_latt_sample_check(&s, cfg, err))) {
				lvd_error_prefix(err, "lstep: sample %d: ", b);
				goto done;
			}
			lvd_latt_sample_loss(ctx, &latt, in->backward ? dparams : NULL,
					     dprobs ? dprobs_b + (size_t)b * Lc : NULL, &s, in->params, cfg, pc, in->lambda,
					     traces ? &traces[b] : NULL);
		}
		out->latt = latt;
	}
	out->total = (double)in->ce_scale * out->ce + (double)in->lambda * out->latt;
	if (in->backward)
		rc = lvd_mllama_backward(m, in->ce_scale, dprobs ? dprobs_l : NULL, err);
done:
	free(cap_off);
	free(cap_rows);
	free(probs);
	free(dprobs_b);
	free(dprobs_l);
	if (dprobs != in->dprobs)
		free(dprobs);
	return rc;
}
