/* One Lavender model+loss step on mllama (see lstep.h). */
#include "lavender/lstep.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "lavender/packrec.h"
#include "text/llama_tok.h"

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

/* rows sample b captures: its plan's query rows, or with official keys all its rows */
static int plan_rows(const struct lvd_latt_plan *p, int keys)
{
	if (!p->W)
		return 0;
	return keys ? p->T : p->R;
}

size_t lvd_lstep_dprobs_floats(const struct lvd_mllama *m, const struct lvd_latt_plan *plans, int B, int M,
			       int keys)
{
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const int side = c->v_image_size / c->v_patch;
	size_t rc = 0;
	for (int b = 0; b < B; b++)
		rc += (size_t)plan_rows(&plans[b], keys);
	return (size_t)c->n_cross * rc * c->t_heads * ((size_t)M * c->v_max_tiles * (side * side + 1));
}

/* Python's str.isspace() for one code point */
static int py_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
	       c == 0x3000;
}

/* decodes the UTF-8 code point at s[i] (valid UTF-8, as lvd_llama_decode writes), its length in *n */
static uint32_t utf8_at(const unsigned char *s, size_t i, size_t len, size_t *n)
{
	unsigned char c = s[i];
	int k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (i + (size_t)k > len)
		k = 1;
	uint32_t v = k == 1 ? c : k == 2 ? c & 0x1fu : k == 3 ? c & 0x0fu : c & 0x07u;
	for (int j = 1; j < k; j++)
		v = (v << 6) | (s[i + (size_t)j] & 0x3fu);
	*n = (size_t)k;
	return v;
}

/* str.strip() in place */
static void py_strip(char *t, size_t len)
{
	const unsigned char *u = (const unsigned char *)t;
	size_t b = 0, e = 0, i = 0, n;
	int seen = 0;
	while (i < len) {
		uint32_t c = utf8_at(u, i, len, &n);
		if (!py_space(c)) {
			if (!seen)
				b = i;
			seen = 1;
			e = i + n;
		}
		i += n;
	}
	if (!seen) {
		t[0] = 0;
		return;
	}
	memmove(t, t + b, e - b);
	t[e - b] = 0;
}

void lvd_lstep_key_table_free(char **t, int n)
{
	if (!t)
		return;
	for (int i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

int lvd_lstep_key_table(const struct lvd_llama_tok *tok, char ***out, int *n, struct lvd_error *err)
{
	const int32_t V = lvd_llama_vocab_size(tok);
	char **t = lvd_calloc_array((size_t)V + 1, sizeof *t);
	if (!t)
		return lvd_error_set(err, LVD_ERR_NOMEM, "key table: out of memory (%d ids)", (int)V);
	for (int32_t id = 0; id < V; id++) {
		char *s = NULL;
		size_t len = 0;
		struct lvd_error e2;
		if (lvd_llama_decode(tok, &id, 1, LVD_LLAMA_SKIP_SPECIAL, &s, &len, &e2) != LVD_OK) {
			s = NULL;   /* an id the vocabulary does not have: never a key */
			len = 0;
		}
		if (!s && !(s = lvd_strdup(""))) {
			lvd_lstep_key_table_free(t, id);
			return lvd_error_set(err, LVD_ERR_NOMEM, "key table: out of memory");
		}
		py_strip(s, len);
		t[id] = s;
	}
	*out = t;
	*n = V;
	return LVD_OK;
}

/* Official keys: *d = src with every row t < src.T captured (rows_pos = 0..T-1) and only
 * the words some row predicts, row t belonging to the word whose key equals
 * key_str[argmax logits[t]]. d's words and row lists are owned (free_keyed); targets,
 * mask and geometry are borrowed from src. */
static int keyed_plan(struct lvd_latt_plan *d, const struct lvd_latt_plan *src, const float *logits, int V,
		      const char *const *key_str, int key_n, struct lvd_error *err)
{
	memset(d, 0, sizeof *d);
	d->geom = src->geom;
	d->mask = src->mask;
	d->R = src->T;
	d->T = src->T;
	const int T = src->T;
	d->rows_pos = lvd_alloc_array((size_t)T + 1, sizeof *d->rows_pos);
	d->row_idx = lvd_alloc_array((size_t)T + 1, sizeof *d->row_idx);
	d->words = lvd_calloc_array((size_t)src->W + 1, sizeof *d->words);
	int *word_of = lvd_alloc_array((size_t)T + 1, sizeof *word_of);
	if (!d->rows_pos || !d->row_idx || !d->words || !word_of) {
		free(word_of);
		return lvd_error_set(err, LVD_ERR_NOMEM, "lstep: out of memory (keyed plan)");
	}
	for (int t = 0; t < T; t++) {
		d->rows_pos[t] = (uint32_t)t;
		const float *l = logits + (size_t)t * V;
		int best = 0;
		for (int v = 1; v < V; v++)
			if (l[v] > l[best])
				best = v;
		word_of[t] = -1;
		if (best >= key_n)
			return free(word_of), lvd_error_set(err, LVD_ERR_INVALID,
							    "lstep: predicted id %d is beyond the key table (%d ids)",
							    best, key_n);
		const char *ks = key_str[best];
		if (!ks || !ks[0])
			continue;
		for (int w = 0; w < src->W; w++)
			if (strcmp(ks, src->keys[w]) == 0) {
				word_of[t] = w;
				break;
			}
	}
	int k = 0;
	for (int w = 0; w < src->W; w++) {
		int n = 0;
		for (int t = 0; t < T; t++)
			if (word_of[t] == w)
				d->row_idx[k + n++] = t;
		if (!n)
			continue;
		d->words[d->W].n_rows = n;
		d->words[d->W].rows = d->row_idx + k;
		d->words[d->W].target = src->words[w].target;
		d->W++;
		k += n;
	}
	free(word_of);
	return LVD_OK;
}

static void free_keyed(struct lvd_latt_plan *d)
{
	free(d->rows_pos);
	free(d->row_idx);
	free(d->words);
	memset(d, 0, sizeof *d);
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
	const int keys = in->key_str != NULL;
	int *cap_off = lvd_calloc_array((size_t)B + 1, sizeof *cap_off);
	size_t ncap = 0;
	for (int b = 0; b < B; b++)
		ncap += (size_t)plan_rows(&in->plans[b], keys);
	int *cap_rows = lvd_alloc_array(ncap + 1, sizeof *cap_rows);
	const float **probs = lvd_calloc_array((size_t)B * Lc + 1, sizeof *probs);
	float **dprobs_b = lvd_calloc_array((size_t)B * Lc + 1, sizeof *dprobs_b);
	const float **dprobs_l = lvd_calloc_array((size_t)Lc + 1, sizeof *dprobs_l);
	struct lvd_latt_plan *kp = keys ? lvd_calloc_array((size_t)B, sizeof *kp) : NULL;
	float *dprobs = NULL;
	if (!cap_off || !cap_rows || !probs || !dprobs_b || !dprobs_l || (keys && !kp)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "lstep: out of memory");
		goto done;
	}
	/* capture rows from the plans (official keys: every row of the sample) */
	int npairs = 0;
	for (int b = 0; b < B; b++) {
		const struct lvd_latt_plan *p = &in->plans[b];
		const int R = plan_rows(p, keys);
		if (keys && p->W && (!p->keys || p->T < 1 || p->T > bt->T)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "lstep: sample %d: official keys need a plan from a pack record with %d "
					   "tokens at most (plan T %d%s)", b, bt->T, p->T, p->keys ? "" : ", no keys");
			goto done;
		}
		for (int i = 0; i < R; i++) {
			const uint32_t row = keys ? (uint32_t)i : p->rows_pos[i];
			if (row >= (uint32_t)bt->T) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "lstep: sample %d captures row %u of %d tokens", b,
						   row, bt->T);
				goto done;
			}
			cap_rows[cap_off[b] + i] = (int)row;
		}
		cap_off[b + 1] = cap_off[b] + R;
		if (R && (p->geom.heads != H || (size_t)p->geom.S != S)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "lstep: sample %d's plan has %d heads and %d keys, the model gives %d and %zu", b,
					   p->geom.heads, p->geom.S, H, S);
			goto done;
		}
		if (R && !keys)
			npairs += matched_words(p);
	}
	struct lvd_mllama_batch fb = *bt;
	fb.cap_rows = cap_rows;
	fb.cap_off = cap_off;
	if ((rc = lvd_mllama_forward(m, &fb, err)))
		goto done;
	const struct lvd_latt_plan *plans = in->plans;
	if (keys) {
		/* the words each row predicts (the logits of this forward) */
		const int V = lvd_mllama_cfg(m)->vocab;
		const float *logits = lvd_mllama_logits(m);
		for (int b = 0; b < B; b++) {
			if (cap_off[b + 1] == cap_off[b])
				continue;
			if ((rc = keyed_plan(&kp[b], &in->plans[b], logits + (size_t)b * bt->T * V, V, in->key_str,
					     in->key_n, err)))
				goto done;
			npairs += kp[b].W;
		}
		plans = kp;
	}
	const double pc = in->pair_count > 0 ? in->pair_count : npairs;
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
			const struct lvd_latt_plan *p = &plans[b];
			if (cap_off[b + 1] == cap_off[b] || !p->W)
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
	if (kp)
		for (int b = 0; b < B; b++)
			free_keyed(&kp[b]);
	free(kp);
	if (dprobs != in->dprobs)
		free(dprobs);
	return rc;
}
