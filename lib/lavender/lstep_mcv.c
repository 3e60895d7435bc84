/* One Lavender model+loss step on MiniCPM-Llama3-V-2.5 (see lstep_mcv.h). */
#include "lavender/lstep_mcv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* rows sample s captures: its rows when it has words */
static int sample_rows(const struct lvd_lstep_mcv_sample *s)
{
	return s->W ? s->R : 0;
}

size_t lvd_lstep_mcv_dprobs_floats(const struct lvd_minicpmv *m, const struct lvd_lstep_mcv_in *in)
{
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	const struct lvd_minicpmv_batch *bt = in->batch;
	const int K = in->n_layers ? in->n_layers : c->t_layers;
	size_t n = 0;
	for (int b = 0; b < bt->B; b++)
		n += (size_t)sample_rows(&in->samples[b]) * (bt->n_images ? bt->n_images[b] : 0);
	return (size_t)K * n * c->t_heads * c->query_num;
}

size_t lvd_lstep_mcv_drprobs_floats(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	return (size_t)b->NI * c->r_heads * c->query_num * b->Lmax;
}

/* sample b's geometry from the batch (pictures from pic0 on) and its struct; checked */
static int sample_geom(struct lvd_latt_geom *g, const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *bt,
		       int b, int pic0, const struct lvd_lstep_mcv_sample *s, enum lvd_mcv_map map,
		       struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	const int n = bt->n_images[b];
	memset(g, 0, sizeof *g);
	if (n < 1 || n > LVD_MCV_MAX_PICS)
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: sample %d has words but %d pictures", b, n);
	g->kind = LVD_LATT_GEOM_MINICPM;
	g->heads = c->t_heads;
	g->S = n * c->query_num;
	g->grid = s->grid;
	g->mcv.mode = map;
	g->mcv.n_pics = n;
	g->mcv.Q = c->query_num;
	g->mcv.cols = s->cols;
	g->mcv.rows = s->rows;
	g->mcv.Hr = c->r_heads;
	g->mcv.Lmax = bt->Lmax;
	for (int k = 0; k < n; k++) {
		g->mcv.th[k] = bt->tgt_sizes[2 * (pic0 + k)];
		g->mcv.tw[k] = bt->tgt_sizes[2 * (pic0 + k) + 1];
	}
	if (lvd_latt_geom_check(g, err))
		return lvd_error_prefix(err, "lstep mcv: sample %d: ", b);
	return LVD_OK;
}

/* sample b's rows and targets: rows after all its pictures and inside T, finite targets */
static int sample_check_rows(const struct lvd_minicpmv_batch *bt, int b, int pic0,
			     const struct lvd_lstep_mcv_sample *s, struct lvd_error *err)
{
	if (s->W < 0 || s->R < 0 || (s->W && !s->words))
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: sample %d: %d words, %d rows", b, s->W, s->R);
	if (!s->W)
		return LVD_OK;
	if (s->R < 1 || !s->rows_pos)
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: sample %d has %d words but no capture rows", b,
				     s->W);
	int end = 0;
	for (int k = 0; k < bt->n_images[b]; k++)
		if (bt->image_bound[2 * (pic0 + k) + 1] > end)
			end = bt->image_bound[2 * (pic0 + k) + 1];
	for (int i = 0; i < s->R; i++)
		if (s->rows_pos[i] < (uint32_t)end || s->rows_pos[i] >= (uint32_t)bt->T)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "lstep mcv: sample %d row %d is token %u, outside [%d, %d) (after its pictures, "
					     "inside the sample: rows before a picture see none of it)",
					     b, i, s->rows_pos[i], end, bt->T);
	const size_t hw = (size_t)s->grid * s->grid;
	for (int w = 0; w < s->W; w++) {
		const float *t = s->words[w].target;
		for (size_t i = 0; t && i < hw; i++)
			if (!isfinite(t[i]))
				return lvd_error_set(err, LVD_ERR_INVALID,
						     "lstep mcv: sample %d word %d: target cell (%zu, %zu) is not finite", b,
						     w, i / (size_t)s->grid, i % (size_t)s->grid);
	}
	return LVD_OK;
}

int lvd_lstep_mcv_run(struct lvd_ctx *ctx, struct lvd_minicpmv *m, struct lvd_lstep_out *out, float *dparams,
		      struct lvd_latt_trace *traces, const struct lvd_lstep_mcv_in *in, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	const struct lvd_minicpmv_batch *bt = in->batch;
	const struct lvd_latt_cfg *cfg = in->cfg;
	const int B = bt->B, H = c->t_heads, K = in->n_layers ? in->n_layers : c->t_layers;
	int rc = lvd_latt_cfg_check(cfg, err);
	if (rc)
		return lvd_error_prefix(err, "lstep mcv: ");
	if (K < 1 || K > LVD_LATT_MAX_LAYERS || cfg->n_captured != K || (in->n_layers && !in->layers))
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: %d capture layers, cfg.n_captured %d", K,
				     cfg->n_captured);
	if (cfg->aligner.d_in != H)
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: the Aligner takes %d heads, the model has %d",
				     cfg->aligner.d_in, H);
	if (B < 1 || !in->samples || (bt->NI && (!bt->n_images || !bt->image_bound || !bt->tgt_sizes)))
		return lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: batch of %d samples without samples or pictures", B);
	int layers[LVD_LATT_MAX_LAYERS];
	for (int k = 0; k < K; k++)
		layers[k] = in->n_layers ? in->layers[k] : k;
	int *cap_off = lvd_calloc_array((size_t)B + 1, sizeof *cap_off);
	int *pic0 = lvd_calloc_array((size_t)B + 1, sizeof *pic0);
	size_t ncap = 0;
	for (int b = 0; b < B; b++)
		ncap += (size_t)sample_rows(&in->samples[b]);
	int *cap_rows = lvd_alloc_array(ncap + 1, sizeof *cap_rows);
	struct lvd_latt_geom *geom = lvd_calloc_array((size_t)B, sizeof *geom);
	const float **probs = lvd_calloc_array((size_t)B * K + 1, sizeof *probs);
	float **dprobs_b = lvd_calloc_array((size_t)B * K + 1, sizeof *dprobs_b);
	const float **dprobs_l = lvd_calloc_array((size_t)K + 1, sizeof *dprobs_l);
	float *dprobs = NULL;
	uint8_t *mask = NULL;
	/* the resampler and vision tower train (lvd_minicpmv_vision_train): their backward
	 * runs after the LLM's and needs λ·∂L_att/∂Rr, in the caller's drprobs or our own */
	const struct lvd_minicpmv_vparam *vparams = NULL;
	const int vision = in->backward && lvd_minicpmv_vision_params(m, &vparams) > 0;
	float *drp = in->drprobs;
	if (vision && !drp && bt->NI)
		drp = lvd_alloc_array(lvd_lstep_mcv_drprobs_floats(m, bt), sizeof *drp);
	if (!cap_off || !pic0 || !cap_rows || !geom || !probs || !dprobs_b || !dprobs_l || (vision && bt->NI && !drp)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep mcv: out of memory");
		goto done;
	}
	/* rows, geometry and targets before the model runs */
	int npairs = 0, maxgrid = 1;
	for (int b = 0; b < B; b++) {
		const struct lvd_lstep_mcv_sample *s = &in->samples[b];
		const int nimg = bt->n_images ? bt->n_images[b] : 0;
		pic0[b + 1] = pic0[b] + nimg;
		if (pic0[b + 1] > bt->NI) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: n_images up to sample %d exceed the batch's %d",
					   b, bt->NI);
			goto done;
		}
		if ((rc = sample_check_rows(bt, b, pic0[b], s, err)))
			goto done;
		const int R = sample_rows(s);
		for (int i = 0; i < R; i++)
			cap_rows[cap_off[b] + i] = (int)s->rows_pos[i];
		cap_off[b + 1] = cap_off[b] + R;
		if (!R)
			continue;
		if ((rc = sample_geom(&geom[b], m, bt, b, pic0[b], s, in->map, err)))
			goto done;
		if (s->grid > maxgrid)
			maxgrid = s->grid;
		for (int w = 0; w < s->W; w++)
			npairs += s->words[w].target != NULL;
	}
	mask = malloc((size_t)maxgrid * maxgrid);
	if (!mask) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep mcv: out of memory (mask)");
		goto done;
	}
	memset(mask, 1, (size_t)maxgrid * maxgrid);
	struct lvd_minicpmv_batch fb = *bt;
	fb.n_cap_layers = K;
	fb.cap_layers = layers;
	fb.cap_rows = cap_rows;
	fb.cap_off = cap_off;
	if (!cap_off[B]) {   /* nothing to capture: a plain CE step */
		fb.n_cap_layers = 0;
		fb.cap_layers = NULL;
		fb.cap_rows = fb.cap_off = NULL;
	}
	if ((rc = lvd_minicpmv_forward(m, &fb, err)))
		goto done;
	const double pc = in->pair_count > 0 ? in->pair_count : npairs;
	out->ce = bt->labels ? lvd_minicpmv_loss(m, NULL) : 0.0;
	out->n_pairs = npairs;
	out->pair_count = pc;
	const size_t RC = (size_t)cap_off[B];
	if (RC && npairs) {
		size_t nblk = 0;
		for (int k = 0; k < K; k++) {
			const float *base = lvd_minicpmv_cap_probs(m, k, &nblk);
			if (!base) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "lstep mcv: no probabilities from layer %d", layers[k]);
				goto done;
			}
			for (int b = 0; b < B; b++)
				probs[(size_t)b * K + k] = base + lvd_minicpmv_cap_offset(m, b);
		}
		if (in->backward) {
			dprobs = in->dprobs ? in->dprobs : lvd_alloc_array((size_t)K * nblk + 1, sizeof *dprobs);
			if (!dprobs) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep mcv: out of memory (%zu floats of dprobs)",
						   (size_t)K * nblk);
				goto done;
			}
			memset(dprobs, 0, (size_t)K * nblk * sizeof *dprobs);
			for (int k = 0; k < K; k++) {
				dprobs_l[k] = dprobs + (size_t)k * nblk;
				for (int b = 0; b < B; b++)
					dprobs_b[(size_t)b * K + k] = dprobs + (size_t)k * nblk + lvd_minicpmv_cap_offset(m, b);
			}
		}
		const float *rp = lvd_minicpmv_resampler_probs(m);
		const size_t per_pic = (size_t)c->r_heads * c->query_num * bt->Lmax;
		if (in->backward && drp)
			memset(drp, 0, (size_t)bt->NI * per_pic * sizeof *drp);
		double latt = 0;
		for (int b = 0; b < B; b++) {
			const struct lvd_lstep_mcv_sample *s = &in->samples[b];
			if (!sample_rows(s))
				continue;
			const struct lvd_latt_sample ls = {
				.geom = geom[b], .R = s->R, .probs = probs + (size_t)b * K, .mask = mask, .W = s->W,
				.words = s->words, .rprobs = rp ? rp + (size_t)pic0[b] * per_pic : NULL,
				.drprobs = in->backward && drp ? drp + (size_t)pic0[b] * per_pic : NULL,
			};
			if ((rc = lvd_latt_sample_check(&ls, cfg, err))) {
				lvd_error_prefix(err, "lstep mcv: sample %d: ", b);
				goto done;
			}
			lvd_latt_sample_loss(ctx, &latt, in->backward ? dparams : NULL,
					     dprobs ? dprobs_b + (size_t)b * K : NULL, &ls, in->params, cfg, pc, in->lambda,
					     traces ? &traces[b] : NULL);
		}
		out->latt = latt;
	} else if (in->backward && drp) {
		memset(drp, 0, lvd_lstep_mcv_drprobs_floats(m, bt) * sizeof *drp);
	}
	out->total = (double)in->ce_scale * out->ce + (double)in->lambda * out->latt;
	if (in->backward)
		rc = lvd_minicpmv_backward_scaled(m, in->ce_scale, dprobs ? dprobs_l : NULL, err);
	/* the resampler / vision backward (when training them): the embeddings' gradient at
	 * the pictures' rows and, with the rollout map, λ·∂L_att/∂Rr */
	if (!rc && in->backward && vision && bt->NI)
		rc = lvd_minicpmv_vision_backward(m, lvd_minicpmv_d_resampled(m), drp, err);
done:
	free(cap_off);
	free(pic0);
	free(cap_rows);
	free(geom);
	free(probs);
	free(dprobs_b);
	free(dprobs_l);
	free(mask);
	if (dprobs != in->dprobs)
		free(dprobs);
	if (drp != in->drprobs)
		free(drp);
	return rc;
}
