/* lib/models/mllama/mllama_dev.c — the mllama model on a device context
 * (lvd_mllama_to_device): every parameter, gradient, LoRA block and optimizer moment is
 * copied into ctx memory (lvd_buf_*) and the model's pointers are repointed, so the
 * forward, the loss and the backward run through the dispatching ops on that context
 * unchanged. Weights are fp32 there, except with opts->w16 under LoRA training: every
 * base linear weight is then converted to bf16 on the device (through an fp32 staging
 * copy in the workspace) and kept only in bf16; mllama_lin_* take the bf16-weight
 * products for them (mllama_dev_w16 tells a bf16 weight by its address in the block).
 *
 * What stays on the host: the batch's integer metadata is built there and uploaded
 * once per forward (positions, ids, shifted targets, capture lists; aspect_ratio_ids
 * and the capture offsets the ops read from the host), a host copy of the ids (the
 * embedding backward skips the pad rows by host runs), and host mirrors of the
 * results the API returns as host arrays (logits, vision features, cross states,
 * captured probabilities), downloaded at most once per forward when asked. The
 * Lavender loss therefore runs on the host: the caller reads the captured
 * probabilities (one download of n_cross·H·RC·S floats per step) and passes host
 * dprobs to lvd_mllama_backward, which uploads them into the ctx workspace.
 *
 * A CPU context is accepted too: the "device" is then a second host copy reached through
 * the same staging, uploads and mirrors, which is how tests/unit/test_mllama_dev.c checks
 * this plumbing bit for bit without a GPU. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ctx.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"

struct mirror {
	float *host;
	size_t cap;       /* floats */
	unsigned long id; /* forward it was downloaded for (0: none) */
	const float *src;
};

struct mllama_dev {
	struct lvd_ctx *ctx;
	float *pblock;        /* every parameter, table order, 64-byte granules */
	float *gblock;        /* full gradients (same offsets) or NULL */
	float *lblock;        /* LoRA: params, grads, two moments (4·lsize floats) or NULL */
	uint16_t *w16;        /* the bf16 weights (opts->w16), or NULL */
	size_t n16;           /* uint16 values in w16 (with padding) */
	float *freq;          /* RoPE inverse frequencies [t_head_dim / 2] */
	float *in;            /* the batch's device copies (pixels, tile mask, cross mask) */
	size_t in_cap;        /* bytes */
	int *stage;           /* host staging for int uploads */
	size_t stage_cap;     /* ints */
	int *h_ids;           /* host copy of the last forward's input ids */
	size_t h_ids_cap;
	unsigned long fwd_id; /* counts forwards (mirror freshness) */
	struct mirror *mir;   /* MLLAMA_MIRROR_PROBS + n_cross */
	size_t nmir;
	const float *dl[LVD_MLLAMA_MAX_LIST];   /* device dprobs of the running backward */
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	void *q = realloc(*p, need * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = need;
	return 0;
}

/* a linear weight matrix (the bf16 candidates: every product through mllama_lin_*) */
static int linear_weight(const char *name)
{
	static const char *const ends[] = { "_proj.weight", "mlp.fc1.weight", "mlp.fc2.weight", "lm_head.weight",
					    "multi_modal_projector.weight", "patch_embedding.weight" };
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
		size_t k = strlen(ends[i]);
		if (n >= k && strcmp(name + n - k, ends[i]) == 0)
			return 1;
	}
	return 0;
}

/* uint16 values of one bf16 weight in the block (64-byte granules) */
static size_t take16(uint16_t *base, size_t *off, size_t n, uint16_t **out)
{
	size_t o = *off;
	*off += (n + 31) & ~(size_t)31;
	*out = base ? base + o : NULL;
	return o;
}

int lvd_mllama_to_device(struct lvd_mllama *m, struct lvd_ctx *ctx, const struct lvd_mllama_dev_opts *opts,
			 struct lvd_error *err)
{
	const struct lvd_mllama_config *c = &m->c;
	if (!ctx)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: to_device needs a context");
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: the model is already on a device");
	if (m->nparams && !m->params[0].data)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: a shape-only model (lvd_mllama_create_shape) "
				     "has no weights to move");
	struct mllama_dev *d = calloc(1, sizeof *d);
	if (!d)
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	d->ctx = ctx;
	d->nmir = MLLAMA_MIRROR_PROBS + (size_t)c->n_cross;
	d->mir = calloc(d->nmir, sizeof *d->mir);
	/* bf16 only while every base weight is frozen (LoRA without full gradients) */
	int w16 = opts && opts->w16 && m->nlora && !m->gblock;
	size_t total = 0, n16 = 0;
	uint16_t *dummy;
	for (size_t i = 0; i < m->nparams; i++) {
		if (w16 && linear_weight(m->params[i].name))
			take16(NULL, &n16, m->params[i].numel, &dummy);
		else
			mllama_take(NULL, &total, m->params[i].numel);
	}
	d->pblock = lvd_buf_alloc(ctx, (total ? total : 1) * sizeof(float));
	d->w16 = n16 ? lvd_buf_alloc(ctx, n16 * sizeof(uint16_t)) : NULL;
	d->n16 = n16;
	d->gblock = m->gblock ? lvd_buf_alloc(ctx, (total ? total : 1) * sizeof(float)) : NULL;
	d->lblock = m->nlora ? lvd_buf_alloc(ctx, 4 * m->lsize * sizeof(float)) : NULL;
	d->freq = lvd_buf_alloc(ctx, sizeof(float) * (size_t)(c->t_head_dim / 2 + 1));
	if (!d->mir || !d->pblock || (m->gblock && !d->gblock) || (m->nlora && !d->lblock) || !d->freq ||
	    (n16 && !d->w16)) {
		m->dev = d;
		mllama_dev_free(m);
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: cannot allocate %zu floats of parameters on the device",
				     total);
	}
	/* parameters (and gradients) in table order, one upload each; a bf16 weight through an
	 * fp32 staging copy in the workspace, converted there */
	size_t off = 0, off16 = 0;
	for (size_t i = 0; i < m->nparams; i++) {
		struct lvd_mllama_param *p = &m->params[i];
		if (w16 && linear_weight(p->name)) {
			uint16_t *dst;
			take16(d->w16, &off16, p->numel, &dst);
			size_t mk = lvd_ctx_mark(ctx);
			float *stage = lvd_ctx_takef(ctx, p->numel);
			lvd_buf_upload(ctx, stage, p->data, p->numel * sizeof(float));
			lvd_f32_to_bf16(ctx, dst, stage, p->numel);
			lvd_ctx_sync(ctx);   /* the stage is reused by the next weight */
			lvd_ctx_release(ctx, mk);
			p->data = (float *)(void *)dst;
			p->dtype = LVD_BF16;
			continue;
		}
		float *dst = mllama_take(d->pblock, &off, p->numel);
		lvd_buf_upload(ctx, dst, p->data, p->numel * sizeof(float));
		if (d->gblock) {
			float *g = d->gblock + (dst - d->pblock);
			lvd_buf_upload(ctx, g, p->grad, p->numel * sizeof(float));
			p->grad = g;
		}
		p->data = dst;
	}
	/* LoRA: the three host blocks into one device block at the same offsets */
	if (m->nlora) {
		float *lp = d->lblock, *lg = lp + m->lsize, *lo = lg + m->lsize;
		lvd_buf_upload(ctx, lp, m->lparams, m->lsize * sizeof(float));
		lvd_buf_upload(ctx, lg, m->lgrads, m->lsize * sizeof(float));
		lvd_buf_upload(ctx, lo, m->lopt, 2 * m->lsize * sizeof(float));
		for (size_t i = 0; i < m->nlora; i++) {
			struct lvd_mllama_lora *L = &m->lora[i];
			L->A = lp + (L->A - m->lparams);
			L->B = lp + (L->B - m->lparams);
			L->dA = lg + (L->dA - m->lgrads);
			L->dB = lg + (L->dB - m->lgrads);
		}
		free(m->lparams);
		free(m->lgrads);
		free(m->lopt);
		m->lparams = lp;
		m->lgrads = lg;
		m->lopt = lo;
	}
	float fr[512];
	LVD_ASSERT(c->t_head_dim / 2 <= 512);
	lvd_rope_freqs_host(fr, c->t_head_dim, c->rope_theta, c->rope_llama3, c->rope_factor, c->rope_low, c->rope_high,
			    c->rope_orig_max);
	lvd_buf_upload(ctx, d->freq, fr, sizeof(float) * (size_t)(c->t_head_dim / 2));
	/* the host copies go; the mapping of a frozen load is no longer read */
	free(m->pblock);
	free(m->gblock);
	m->pblock = d->pblock;
	m->gblock = d->gblock;
	m->ptotal = total;
	mllama_close_mapping(m);
	mllama_acts_free(m);
	m->fwd_done = 0;
	m->ctx = ctx;
	m->dev = d;
	mllama_rebind(m);
	return 0;
}

void mllama_dev_free(struct lvd_mllama *m)
{
	struct mllama_dev *d = m->dev;
	if (!d)
		return;
	mllama_acts_free(m);
	lvd_buf_free(d->ctx, d->pblock);
	lvd_buf_free(d->ctx, d->gblock);
	lvd_buf_free(d->ctx, d->lblock);
	if (d->w16)
		lvd_buf_free(d->ctx, d->w16);
	lvd_buf_free(d->ctx, d->freq);
	lvd_buf_free(d->ctx, d->in);
	if (m->pblock == d->pblock)
		m->pblock = NULL;
	if (m->gblock == d->gblock)
		m->gblock = NULL;
	if (d->lblock && m->lparams == d->lblock)
		m->lparams = m->lgrads = m->lopt = NULL;
	for (size_t i = 0; d->mir && i < d->nmir; i++)
		free(d->mir[i].host);
	free(d->mir);
	free(d->stage);
	free(d->h_ids);
	free(d);
	m->dev = NULL;
}

int lvd_mllama_on_device(const struct lvd_mllama *m) { return m->dev != NULL; }

int mllama_dev_batch(struct lvd_mllama *m, struct lvd_error *err)
{
	struct mllama_dev *d = m->dev;
	if (!d)
		return 0;
	const struct lvd_mllama_config *c = &m->c;
	struct lvd_mllama_batch *b = &m->batch;
	size_t BT = (size_t)b->B * b->T;
	d->fwd_id++;
	if (grow((void **)&d->h_ids, &d->h_ids_cap, BT, sizeof(int)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	memcpy(d->h_ids, b->input_ids, BT * sizeof(int));
	if (!m->have_image)
		return 0;
	size_t TL = c->v_max_tiles, NV = (size_t)m->NV;
	size_t npx = NV * TL * c->v_channels * c->v_image_size * c->v_image_size;
	size_t nmask = NV * TL, nx = BT * b->M * TL, off = 0;
	size_t need = (mllama_take(NULL, &off, npx), mllama_take(NULL, &off, nmask), mllama_take(NULL, &off, nx), off);
	if (need * sizeof(float) > d->in_cap) {
		lvd_buf_free(d->ctx, d->in);
		d->in = lvd_buf_alloc(d->ctx, need * sizeof(float));
		d->in_cap = d->in ? need * sizeof(float) : 0;
		if (!d->in)
			return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: cannot allocate %zu floats of batch inputs on "
					     "the device", need);
	}
	off = 0;
	float *px = mllama_take(d->in, &off, npx);
	int *mask = (int *)mllama_take(d->in, &off, nmask);
	int *xm = (int *)mllama_take(d->in, &off, nx);
	lvd_buf_upload(d->ctx, px, b->pixel_values, npx * sizeof(float));
	lvd_buf_upload(d->ctx, mask, b->aspect_ratio_mask, nmask * sizeof(int));
	lvd_buf_upload(d->ctx, xm, b->cross_attention_mask, nx * sizeof(int));
	b->pixel_values = px;
	b->aspect_ratio_mask = mask;
	b->cross_attention_mask = xm;
	return 0;
}

void mllama_dev_put_i(struct lvd_mllama *m, int *dst, const int *src, size_t n)
{
	if (m->dev)
		lvd_buf_upload(m->ctx, dst, src, n * sizeof(int));
	else if (dst != src)
		memcpy(dst, src, n * sizeof(int));
}

/* host staging for one int array of n values (the caller fills it, then mllama_dev_put_i);
 * on a CPU model the destination itself */
int *mllama_dev_stage_i(struct lvd_mllama *m, int *dst, size_t n)
{
	struct mllama_dev *d = m->dev;
	if (!d)
		return dst;
	LVD_ASSERTF(!grow((void **)&d->stage, &d->stage_cap, n ? n : 1, sizeof(int)), "mllama: out of memory (%zu "
		    "ints of staging)", n);
	return d->stage;
}

const int *mllama_dev_host_ids(const struct lvd_mllama *m)
{
	return m->dev ? m->dev->h_ids : m->a.ids;
}

const uint16_t *mllama_dev_w16(const struct lvd_mllama *m, const float *W)
{
	const struct mllama_dev *d = m->dev;
	if (!d || !d->w16 || !W)
		return NULL;
	const uint16_t *p = (const uint16_t *)(const void *)W;
	return p >= d->w16 && p < d->w16 + d->n16 ? p : NULL;
}

const float *mllama_dev_freq(const struct lvd_mllama *m)
{
	return m->dev ? m->dev->freq : NULL;
}

const float *mllama_dev_mirror(const struct lvd_mllama *m, int slot, const float *src, size_t n)
{
	struct mllama_dev *d = m->dev;
	if (!d || !src)
		return src;
	LVD_ASSERT(slot >= 0 && (size_t)slot < d->nmir);
	struct mirror *r = &d->mir[slot];
	if (r->id == d->fwd_id && r->src == src)
		return r->host;
	if (grow((void **)&r->host, &r->cap, n ? n : 1, sizeof(float)))
		return NULL;
	lvd_buf_download(d->ctx, r->host, src, n * sizeof(float));
	r->id = d->fwd_id;
	r->src = src;
	return r->host;
}

const float *const *mllama_dev_dprobs(struct lvd_mllama *m, const float *const *dprobs)
{
	struct mllama_dev *d = m->dev;
	if (!d || !dprobs)
		return dprobs;
	const struct lvd_mllama_config *c = &m->c;
	size_t n = (size_t)c->t_heads * m->a.ncap * m->S;
	const float **dl = d->dl;
	for (int k = 0; k < c->n_cross; k++) {
		dl[k] = NULL;
		if (dprobs[k] && n) {
			float *p = lvd_ctx_takef(d->ctx, n);
			lvd_buf_upload(d->ctx, p, dprobs[k], n * sizeof(float));
			dl[k] = p;
		}
	}
	return dl;
}
