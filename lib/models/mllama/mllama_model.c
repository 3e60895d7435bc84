/* lib/models/mllama/mllama_model.c — the model level: batch checks and copies, the
 * cross-attention mask, the two towers in order (vision, then text; they are leaves that
 * never call each other), the loss, and the buffers of the last forward (activations in
 * the model; backward scratch from the context workspace). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ops/attn.h"
#include "nn/ops/xent.h"

static int check_batch(struct lvd_mllama *m, const struct lvd_mllama_batch *b, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	if (b->B < 1 || b->T < 1 || !b->input_ids)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: B, T >= 1 and input_ids required");
	for (int i = 0; i < b->B * b->T; i++) {
		if (b->input_ids[i] < 0 || b->input_ids[i] >= c->n_embed)
			return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: input_ids[%d] = %d out of [0, %d)", i,
					     b->input_ids[i], c->n_embed);
		if (b->labels && b->labels[i] != -100 && (b->labels[i] < 0 || b->labels[i] >= c->vocab))
			return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: labels[%d] = %d out of [0, %d)", i,
					     b->labels[i], c->vocab);
	}
	if (b->cap_off) {
		if (b->cap_off[0] != 0 || !b->cap_rows)
			return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: cap_off[0] must be 0 and cap_rows set");
		for (int s = 0; s < b->B; s++) {
			if (b->cap_off[s + 1] < b->cap_off[s])
				return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: cap_off[%d] < cap_off[%d]", s + 1,
						     s);
			for (int i = b->cap_off[s]; i < b->cap_off[s + 1]; i++) {
				if (b->cap_rows[i] < 0 || b->cap_rows[i] >= b->T)
					return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: cap_rows[%d] = %d out of "
						"[0, %d)", i, b->cap_rows[i], b->T);
				for (int j = b->cap_off[s]; j < i; j++)
					if (b->cap_rows[j] == b->cap_rows[i])
						return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: sample %d captures "
							"row %d twice", s, b->cap_rows[i]);
			}
		}
	}
	if (b->pixel_values) {
		if (b->M < 1 || !b->aspect_ratio_ids || !b->aspect_ratio_mask || !b->cross_attention_mask)
			return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: images need M >= 1, aspect_ratio_ids, "
				"aspect_ratio_mask and cross_attention_mask");
		for (int i = 0; i < b->B * b->M; i++)
			if (b->aspect_ratio_ids[i] < 0 || b->aspect_ratio_ids[i] > c->n_aspect)
				return lvd_error_set(err, LVD_ERR_INVALID, "mllama: batch: aspect_ratio_ids[%d] = %d out of "
					"[0, %d]", i, b->aspect_ratio_ids[i], c->n_aspect);
	}
	return 0;
}


/* batch shape and the derived token counts */
static void set_shape(struct lvd_mllama *m, const struct lvd_mllama_batch *b)
{
	const struct lvd_mllama_config *c = &m->c;
	m->batch = *b;
	m->have_image = b->pixel_values != NULL;
	int gs = c->v_image_size / c->v_patch, TL = c->v_max_tiles;
	m->np = gs * gs;
	m->P1 = m->np + 1;
	m->Pp = (m->P1 + 7) / 8 * 8;
	m->L = TL * m->Pp;
	m->NV = m->have_image ? b->B * b->M : 0;
	m->S = m->have_image ? b->M * TL * m->P1 : 0;
}

/* THE activation carving of both towers for the current shape (text, then vision);
 * measures with base NULL. */
static size_t carve_acts(struct lvd_mllama *m, struct mllama_acts *a, float *base)
{
	size_t t = mllama_text_acts(m, a, base);
	return t + (m->have_image ? mllama_vision_acts(m, a, base ? base + t : NULL) : 0);
}

/* backward scratch: dlogits (not with the fused head), the text tower's, the vision
 * tower's (offsets out) */
static size_t bwd_floats(const struct lvd_mllama *m, size_t *toff, size_t *voff)
{
	size_t off = 0;
	if (!m->xent_chunk)
		mllama_take(NULL, &off, (size_t)m->batch.B * m->batch.T * m->c.vocab);
	*toff = off;
	off += mllama_text_bwd_scratch(m);
	*voff = off;
	return off + (m->have_image ? mllama_vision_bwd_scratch(m) : 0);
}

/* the backward's peak workspace: its scratch block, then the fused head's blocks on top */
static size_t bwd_peak(const struct lvd_mllama *m, size_t block)
{
	int BT = m->batch.B * m->batch.T;
	return block + (m->xent_chunk ? lvd_lmhead_xent_ws_floats(BT, m->c.vocab, m->xent_chunk) : 0);
}

static size_t trainable_floats(const struct lvd_mllama *m, size_t *base_floats)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nparams; i++)
		n += m->params[i].numel;
	*base_floats = n;
	return m->nlora ? m->lsize : n;
}

int lvd_mllama_measure(struct lvd_mllama *m, int B, int T, int M, int ncap, struct lvd_mllama_mem *out,
		       struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	if (B < 1 || T < 1 || M < 0 || ncap < 0 || ncap > B * T)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: measure: B, T >= 1, M >= 0, 0 <= ncap <= B·T required");
	struct lvd_mllama_batch saved = m->batch;
	int sv[7] = { m->have_image, m->np, m->P1, m->Pp, m->L, m->NV, m->S };
	static const float no_pixels;
	int *off = calloc((size_t)B + 1, sizeof(int));
	struct mllama_acts tmp = { 0 };
	tmp.vl = calloc((size_t)c->v_layers + c->v_global_layers, sizeof *tmp.vl);
	tmp.tl = calloc(c->t_layers, sizeof *tmp.tl);
	int rc = 0;
	if (!off || !tmp.vl || !tmp.tl) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
		goto out;
	}
	off[B] = ncap;
	struct lvd_mllama_batch b = { .B = B, .T = T, .M = M, .pixel_values = M ? &no_pixels : NULL,
				      .cap_off = ncap ? off : NULL };
	set_shape(m, &b);
	size_t base_floats, train = trainable_floats(m, &base_floats), toff, voff;
	out->params = base_floats * sizeof(float);
	out->lora = m->lsize * sizeof(float);
	out->grads = train * sizeof(float);
	out->opt = 2 * train * sizeof(float);
	out->acts = carve_acts(m, &tmp, NULL) * sizeof(float);
	out->scratch = bwd_peak(m, bwd_floats(m, &toff, &voff)) * sizeof(float);
	m->batch = saved;
	m->have_image = sv[0], m->np = sv[1], m->P1 = sv[2], m->Pp = sv[3], m->L = sv[4], m->NV = sv[5], m->S = sv[6];
out:
	free(off);
	free(tmp.vl);
	free(tmp.tl);
	return rc;
}

void lvd_mllama_mem_used(const struct lvd_mllama *m, struct lvd_mllama_mem *out)
{
	size_t base_floats, train = trainable_floats(m, &base_floats);
	out->params = base_floats * sizeof(float);
	out->lora = m->lsize * sizeof(float);
	out->grads = (m->nlora ? m->lsize : m->gblock ? base_floats : 0) * sizeof(float);
	out->opt = m->nlora ? 2 * train * sizeof(float) : 0;
	out->acts = m->acap * sizeof(float);
	out->scratch = m->a.bwd_len * sizeof(float);
}

/* The per-layer activation tables, allocated once (carving writes into them). */
static int acts_tables(struct lvd_mllama *m, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	if (!m->a.vl) {
		m->a.vl = calloc((size_t)c->v_layers + c->v_global_layers, sizeof *m->a.vl);
		m->a.tl = calloc(c->t_layers, sizeof *m->a.tl);
		if (!m->a.vl || !m->a.tl)
			return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	}
	return 0;
}

void mllama_acts_free(struct lvd_mllama *m)
{
	if (m->ablock)
		lvd_buf_free(m->ctx, m->ablock);
	m->ablock = NULL;
	m->acap = 0;
}

/* An activation block of at least `need` floats where m->ctx computes (grown, never
 * shrunk; contents not kept). */
static int acts_reserve(struct lvd_mllama *m, size_t need, struct lvd_error *err)
{
	if (need > m->acap) {
		mllama_acts_free(m);
		m->ablock = lvd_buf_alloc(m->ctx, need * sizeof(float));
		m->acap = m->ablock ? need : 0;
		if (!m->ablock)
			return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: cannot allocate %zu floats of activations", need);
	}
	return 0;
}

int lvd_mllama_forward(struct lvd_mllama *m, const struct lvd_mllama_batch *b, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	int rc = check_batch(m, b, err);
	if (rc)
		return rc;
	if (m->xent_chunk && mllama_dev_w16(m, m->w.lm_head))
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "mllama: the fused LM head needs an fp32 lm_head; this "
				     "device model keeps it in bf16 (lvd_mllama_set_xent_chunk(m, 0))");
	m->fwd_done = 0;
	set_shape(m, b);
	int TL = c->v_max_tiles;
	if ((rc = acts_tables(m, err)) || (rc = acts_reserve(m, carve_acts(m, &m->a, NULL), err)) ||
	    (rc = mllama_dev_batch(m, err)))
		return rc;
	carve_acts(m, &m->a, m->ablock);
	struct mllama_acts *a = &m->a;
	int B = b->B, T = b->T, BT = B * T;
	/* host metadata, uploaded once per forward on a device model */
	int *h = mllama_dev_stage_i(m, a->pos, T);
	for (int t = 0; t < T; t++)
		h[t] = t;
	mllama_dev_put_i(m, a->pos, h, T);
	mllama_dev_put_i(m, a->ids, b->input_ids, BT);
	if (a->cap_off) {
		mllama_dev_put_i(m, a->cap_off, b->cap_off, B + 1);
		mllama_dev_put_i(m, a->cap_rows, b->cap_rows, a->ncap);
	}
	h = mllama_dev_stage_i(m, a->targets, BT);
	for (int bb = 0; bb < B; bb++)
		for (int t = 0; t < T; t++)
			h[bb * T + t] = (b->labels && t + 1 < T) ? b->labels[bb * T + t + 1] : -100;
	mllama_dev_put_i(m, a->targets, h, BT);
	b = &m->batch;   /* pixels and masks: device copies on a device model */
	if (m->have_image) {
		mllama_vision_fwd(m);
		/* HF _prepare_cross_attention_mask: min_float where masked, rows without any
		 * visible tile get an all-zero bias and row mask 0 */
		lvd_attn_group_bias(m->ctx, a->xbias, a->rowmask, b->cross_attention_mask, BT, b->M * TL, m->P1);
	} else {
		lvd_buf_zero(m->ctx, a->rowmask, sizeof(float) * BT);
	}
	mllama_text_fwd(m);
	m->loss = NAN;
	m->loss_count = 0;
	if (b->labels) {
		double sum = m->xent_chunk ? lvd_lmhead_xent_fwd(m->ctx, a->lse, &m->loss_count, a->normed, m->w.lm_head,
								 a->targets, BT, c->t_hidden, c->vocab, m->xent_chunk)
					   : lvd_xent_fwd(m->ctx, &m->loss_count, a->logits, a->targets, BT, c->vocab);
		m->loss = m->loss_count ? sum / m->loss_count : NAN;
	}
	m->fwd_recompute = m->recompute;
	m->fwd_xent_chunk = m->xent_chunk;
	m->fwd_done = 1;
	return 0;
}


/* Generation hook (mllama_gen.c): checks the batch, takes its shape and runs only the
 * vision tower (into the activation block, as lvd_mllama_forward would), leaving
 * m->a.cross [B·S, Dt] valid; no text activations, no backward possible afterwards.
 * LoRA dropout is off for this inference pass (PEFT eval mode). */
int mllama_vision_prepare(struct lvd_mllama *m, const struct lvd_mllama_batch *b, struct lvd_error *err)
{
	int rc = check_batch(m, b, err);
	if (rc)
		return rc;
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: generation on a device model is not written yet");
	m->fwd_done = 0;
	set_shape(m, b);
	if (!m->have_image)
		return 0;
	if ((rc = acts_tables(m, err)) || (rc = acts_reserve(m, mllama_vision_acts(m, &m->a, NULL), err)))
		return rc;
	mllama_vision_acts(m, &m->a, m->ablock);
	float p = m->lora_p;
	m->lora_p = 0.0f;
	mllama_vision_fwd(m);
	m->lora_p = p;
	return 0;
}

const float *lvd_mllama_logits(const struct lvd_mllama *m)
{
	if (!m->a.logits) /* the fused LM head keeps none */
		return NULL;
	return mllama_dev_mirror(m, MLLAMA_MIRROR_LOGITS, m->a.logits, (size_t)m->batch.B * m->batch.T * m->c.vocab);
}

static int recompute_valid(int r)
{
	return r >= 0 && (r & ~(LVD_MLLAMA_RECOMPUTE_TEXT | LVD_MLLAMA_RECOMPUTE_VISION)) == 0 &&
	       (r & LVD_MLLAMA_RECOMPUTE_TEXT) <= LVD_MLLAMA_RECOMPUTE_ALL;
}
void lvd_mllama_set_recompute(struct lvd_mllama *m, enum lvd_mllama_recompute r)
{
	LVD_ASSERT(recompute_valid((int)r));
	m->recompute = r;
}
enum lvd_mllama_recompute lvd_mllama_recompute_mode(const struct lvd_mllama *m) { return m->recompute; }
/* indexed by the mode's value (3 and 7 are not modes) */
static const char *const RECOMPUTE_NAMES[7] = {"none", "xattn", "all", NULL, "vision", "xattn,vision", "all,vision"};
const char *lvd_mllama_recompute_name(enum lvd_mllama_recompute r)
{
	return recompute_valid((int)r) ? RECOMPUTE_NAMES[r] : "?";
}
int lvd_mllama_recompute_parse(const char *s)
{
	if (!s || !*s)
		return -1;
	int r = 0, text = 0, vision = 0;
	while (*s) {
		size_t n = strcspn(s, ",");
		int i = 0;
		while (i < 3 && !(strlen(RECOMPUTE_NAMES[i]) == n && !strncmp(s, RECOMPUTE_NAMES[i], n)))
			i++;
		if (i < 3 && !text++)
			r |= i;
		else if (n == 6 && !strncmp(s, "vision", 6) && !vision++)
			r |= LVD_MLLAMA_RECOMPUTE_VISION;
		else
			return -1;  /* unknown, repeated, or two text modes */
		s += n;
		if (*s == ',' && !*++s)
			return -1;  /* a trailing comma */
	}
	return r;
}
void lvd_mllama_set_xent_chunk(struct lvd_mllama *m, int chunk)
{
	LVD_ASSERT(chunk >= 0);
	m->xent_chunk = chunk;
}
int lvd_mllama_xent_chunk(const struct lvd_mllama *m) { return m->xent_chunk; }
double lvd_mllama_loss(const struct lvd_mllama *m) { return m->loss; }
int lvd_mllama_loss_count(const struct lvd_mllama *m) { return m->loss_count; }
const float *lvd_mllama_vision_features(const struct lvd_mllama *m)
{
	size_t rows = (size_t)m->NV * m->c.v_max_tiles * m->P1;
	return m->have_image ? mllama_dev_mirror(m, MLLAMA_MIRROR_FEATS, m->a.feats, rows * m->c.v_out_dim) : NULL;
}
const float *lvd_mllama_cross_states(const struct lvd_mllama *m)
{
	size_t rows = (size_t)m->NV * m->c.v_max_tiles * m->P1;
	return m->have_image ? mllama_dev_mirror(m, MLLAMA_MIRROR_CROSS, m->a.cross, rows * m->c.t_hidden) : NULL;
}
size_t lvd_mllama_capture_rows(const struct lvd_mllama *m) { return m->a.ncap; }
const float *lvd_mllama_xattn_probs(const struct lvd_mllama *m, int k)
{
	if (k < 0 || k >= m->c.n_cross || !m->have_image || !m->a.ncap)
		return NULL;
	return mllama_dev_mirror(m, MLLAMA_MIRROR_PROBS + k, m->a.tl[m->c.cross_layers[k]].capp,
				 (size_t)m->c.t_heads * m->a.ncap * m->S);
}

int lvd_mllama_backward(struct lvd_mllama *m, float loss_scale, const float *const *dprobs, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	if (!m->fwd_done)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: backward without a forward");
	if (!m->gblock && !m->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: backward needs gradients (enable_grads or LoRA)");
	if (m->recompute != m->fwd_recompute || m->xent_chunk != m->fwd_xent_chunk)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: backward: the recompute mode or LM head changed "
				     "since the forward (they set its activation layout)");
	size_t BT = (size_t)m->batch.B * m->batch.T, V = c->vocab, toff, voff;
	size_t off = bwd_floats(m, &toff, &voff);
	if (bwd_peak(m, off) > m->a.bwd_len)
		m->a.bwd_len = bwd_peak(m, off);
	size_t mk = lvd_ctx_mark(m->ctx);
	float *scratch = lvd_ctx_takef(m->ctx, off);
	float hscale = m->loss_count > 0 && loss_scale != 0.0f ? loss_scale / (float)m->loss_count : 0.0f;
	float *dlogits = NULL;
	dprobs = mllama_dev_dprobs(m, dprobs);   /* device copies in the workspace (device model) */
	if (!m->xent_chunk) {
		dlogits = scratch;
		lvd_buf_zero(m->ctx, dlogits, sizeof(float) * BT * V);
		if (hscale != 0.0f)
			lvd_xent_bwd(m->ctx, dlogits, m->a.logits, m->a.targets, hscale, (int)BT, (int)V);
	}
	const float *dcross = mllama_text_bwd(m, dlogits, hscale, dprobs, scratch + toff);
	unsigned vp = LVD_MLLAMA_VISION | LVD_MLLAMA_PROJECTOR;
	if (m->have_image && ((mllama_train_base(m) && (m->frozen_groups & vp) != vp) || m->vsite))
		mllama_vision_bwd(m, dcross, scratch + voff);
	lvd_ctx_release(m->ctx, mk);
	return 0;
}

/* ---- layer hook (mllama.h) ---------------------------------------------------------- */

void lvd_mllama_set_layer_hook(struct lvd_mllama *m, lvd_mllama_layer_hook fn, void *user)
{
	m->layer_hook = fn;
	m->layer_hook_user = user;
}

int lvd_mllama_text_layer_weights(struct lvd_mllama *m, int l, float **slot[], size_t numel[],
				  struct lvd_mllama_param *table[])
{
	if (l < 0 || l >= m->c.t_layers)
		return -1;
	struct tlayer_w *W = &m->w.tl[l];
	char pre[96], at[128], name[192];
	snprintf(pre, sizeof pre, "language_model.model.layers.%d.", l);
	snprintf(at, sizeof at, "%s%s.", pre, W->cross ? "cross_attn" : "self_attn");
	struct {
		float **p;
		const char *base, *suffix;
	} t[] = {
		{&W->ln1, pre, "input_layernorm.weight"}, {&W->q, at, "q_proj.weight"}, {&W->k, at, "k_proj.weight"},
		{&W->v, at, "v_proj.weight"}, {&W->o, at, "o_proj.weight"}, {&W->q_norm, at, "q_norm.weight"},
		{&W->k_norm, at, "k_norm.weight"}, {&W->attn_gate, pre, "cross_attn_attn_gate"},
		{&W->mlp_gate, pre, "cross_attn_mlp_gate"}, {&W->ln2, pre, "post_attention_layernorm.weight"},
		{&W->gate, pre, "mlp.gate_proj.weight"}, {&W->up, pre, "mlp.up_proj.weight"},
		{&W->down, pre, "mlp.down_proj.weight"},
	};
	int n = 0;
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		if (!W->cross && i >= 5 && i <= 8)
			continue;
		snprintf(name, sizeof name, "%s%s", t[i].base, t[i].suffix);
		struct lvd_mllama_param *p = lvd_mllama_param_find(m, name);
		LVD_ASSERT(p && n < LVD_MLLAMA_LAYER_TENSORS);
		slot[n] = t[i].p;
		numel[n] = p->numel;
		table[n] = p;
		n++;
	}
	return n;
}
