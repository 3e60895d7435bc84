/* lib/models/sd/sd_dev.c — the SD model on a device context (lvd_sd_to_device): one
 * block of ctx memory holds every weight the forwards use, linear and convolution
 * weights as bf16 (converted on the device by lvd_f32_to_bf16 from an fp32 staging copy
 * in the workspace), norm weights and biases as fp32. Two walks over the weight
 * structures: the first sizes the block, the second uploads and repoints. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/sd/sd_internal.h"
#include "nn/ctx.h"
#include "nn/ops/elem.h"

#define DEV_ALIGN 256   /* bytes: every tensor starts on a 256-byte boundary (cuBLASLt, vector loads) */

struct dev_walk {
	struct lvd_ctx *x;
	int upload;            /* 0: measure, 1: upload and repoint */
	unsigned char *base;
	size_t off;            /* bytes used */
	size_t stage_max;      /* largest fp32 weight converted to bf16 (floats) */
};

static size_t dev_round(size_t n)
{
	return (n + DEV_ALIGN - 1) / DEV_ALIGN * DEV_ALIGN;
}

/* fp32 vector (norm weight, bias): *p repointed into the block. */
static void dv_f32(struct dev_walk *d, const float **p, size_t n)
{
	if (!*p || !n)
		return;
	if (d->upload) {
		float *dst = (float *)(d->base + d->off);
		lvd_buf_upload(d->x, dst, *p, n * sizeof(float));
		*p = dst;
	}
	d->off += dev_round(n * sizeof(float));
}

/* Matrix w (n fp32 values on the host) -> bf16 copy *w16 in the block. */
static void dv_w16(struct dev_walk *d, const float *w, const uint16_t **w16, size_t n)
{
	if (!w || !n)
		return;
	if (d->upload) {
		uint16_t *dst = (uint16_t *)(d->base + d->off);
		size_t mark = lvd_ctx_mark(d->x);
		float *stage = lvd_ctx_takef(d->x, n);
		lvd_buf_upload(d->x, stage, w, n * sizeof(float));
		lvd_f32_to_bf16(d->x, dst, stage, n);
		lvd_ctx_sync(d->x);   /* the stage is reused by the next weight's upload */
		lvd_ctx_release(d->x, mark);
		*w16 = dst;
	}
	d->stage_max = n > d->stage_max ? n : d->stage_max;
	d->off += dev_round(n * sizeof(uint16_t));
}

static void dv_lin(struct dev_walk *d, struct sd_lin *l, int IC, int OC)
{
	dv_w16(d, l->w, &l->w16, (size_t)IC * OC);
	dv_f32(d, &l->b, (size_t)OC);
}

static void dv_norm(struct dev_walk *d, struct sd_norm *n, int C)
{
	dv_f32(d, &n->w, (size_t)C);
	dv_f32(d, &n->b, (size_t)C);
}

static void dv_conv(struct dev_walk *d, struct sd_conv *c)
{
	dv_w16(d, c->w, &c->w16, (size_t)c->cout * c->cin * c->k * c->k);
	dv_f32(d, &c->b, (size_t)c->cout);
}

static void dv_attn(struct dev_walk *d, struct sd_attn *a, int C, int kv_in)
{
	dv_lin(d, &a->q, C, C);
	dv_lin(d, &a->k, kv_in, C);
	dv_lin(d, &a->v, kv_in, C);
	dv_lin(d, &a->o, C, C);
}

static void dv_resnet(struct dev_walk *d, struct sd_resnet *r, int temb_dim)
{
	dv_norm(d, &r->n1, r->cin);
	dv_norm(d, &r->n2, r->cout);
	dv_conv(d, &r->c1);
	dv_conv(d, &r->c2);
	if (r->temb.w)
		dv_lin(d, &r->temb, temb_dim, r->cout);
	if (r->sc.w)
		dv_conv(d, &r->sc);
}

static void dv_tf(struct dev_walk *d, struct sd_transformer *t, int tblocks, int ctx_dim)
{
	int C = t->C;
	dv_norm(d, &t->gn, C);
	dv_lin(d, &t->pin, C, C);
	dv_lin(d, &t->pout, C, C);
	for (int i = 0; i < tblocks; i++) {
		struct sd_tblock *b = &t->tb[i];
		dv_norm(d, &b->ln1, C);
		dv_norm(d, &b->ln2, C);
		dv_norm(d, &b->ln3, C);
		dv_attn(d, &b->a1, C, C);
		dv_attn(d, &b->a2, C, ctx_dim);
		dv_lin(d, &b->ff1, C, 8 * C);
		dv_lin(d, &b->ff2, 4 * C, C);
	}
}

static void dv_walk(struct dev_walk *d, struct lvd_sd *sd)
{
	if (sd->has_text) {
		struct sd_clip *c = &sd->clip;
		int D = c->cfg.width, F = c->cfg.ffn;
		for (int l = 0; l < c->cfg.layers; l++) {
			struct sd_clip_layer *L = &c->layers[l];
			dv_norm(d, &L->ln1, D);
			dv_norm(d, &L->ln2, D);
			dv_attn(d, &L->at, D, D);
			dv_lin(d, &L->fc1, D, F);
			dv_lin(d, &L->fc2, F, D);
		}
		dv_norm(d, &c->final_ln, D);
	}
	if (sd->has_vae) {
		struct sd_vae *v = &sd->vae;
		const struct lvd_sd_vae_cfg *k = &v->cfg;
		int C = k->ch[k->levels - 1];
		dv_conv(d, &v->conv_in);
		for (int i = 0; i < k->levels; i++) {
			for (int j = 0; j < k->layers_per_block; j++)
				dv_resnet(d, &v->down[i][j], 0);
			if (i < k->levels - 1)
				dv_conv(d, &v->downsample[i]);
		}
		dv_resnet(d, &v->mid[0], 0);
		dv_norm(d, &v->mid_gn, C);
		dv_attn(d, &v->mid_attn, C, C);
		dv_resnet(d, &v->mid[1], 0);
		dv_norm(d, &v->norm_out, C);
		dv_conv(d, &v->conv_out);
		dv_conv(d, &v->quant);
	}
	if (sd->has_unet) {
		struct sd_unet *u = &sd->unet;
		const struct lvd_sd_unet_cfg *k = &u->cfg;
		int n = k->levels, L = k->layers_per_block, TE = k->temb_dim;
		dv_conv(d, &u->conv_in);
		dv_lin(d, &u->t1, k->ch[0], TE);
		dv_lin(d, &u->t2, TE, TE);
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < L; j++) {
				dv_resnet(d, &u->down[i][j], TE);
				if (k->down_attn[i])
					dv_tf(d, &u->down_tf[i][j], k->tblocks, k->ctx_dim);
			}
			if (i < n - 1)
				dv_conv(d, &u->downsample[i]);
		}
		dv_resnet(d, &u->mid[0], TE);
		dv_tf(d, &u->mid_tf, k->tblocks, k->ctx_dim);
		dv_resnet(d, &u->mid[1], TE);
		for (int uu = 0; uu < n; uu++) {
			for (int j = 0; j <= L; j++) {
				dv_resnet(d, &u->up[uu][j], TE);
				if (k->up_attn[uu])
					dv_tf(d, &u->up_tf[uu][j], k->tblocks, k->ctx_dim);
			}
			if (uu < n - 1)
				dv_conv(d, &u->upsample[uu]);
		}
		dv_norm(d, &u->norm_out, k->ch[0]);
		dv_conv(d, &u->conv_out);
	}
}

int lvd_sd_to_device(struct lvd_sd *sd, struct lvd_ctx *ctx, struct lvd_error *err)
{
	if (sd->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "lvd_sd_to_device: the model is on a device already");
	struct dev_walk d = {.x = ctx};
	dv_walk(&d, sd);
	size_t ws_need = d.stage_max * sizeof(float) + 64;
	size_t ws_free = ctx->backend == LVD_BACKEND_CUDA ? ctx->dws.cap - ctx->dws.used : ws_need;
	if (ws_free < ws_need)
		return lvd_error_set(err, LVD_ERR_NOMEM,
				     "lvd_sd_to_device: the device workspace (%zu MiB free) cannot stage a %zu MiB weight",
				     ws_free >> 20, ws_need >> 20);
	struct lvd_ctx_opts ho = {.threads = 1, .ws_bytes = (size_t)1 << 20};
	int rc = lvd_ctx_create(&sd->hctx, &ho, err);
	if (rc)
		return rc;
	sd->dev_bytes = d.off;
	if (!(sd->dev_block = lvd_buf_alloc(ctx, d.off))) {
		lvd_ctx_destroy(sd->hctx);
		sd->hctx = NULL;
		return lvd_error_set(err, LVD_ERR_NOMEM, "lvd_sd_to_device: cannot allocate %zu MiB of weights on the device",
				     d.off >> 20);
	}
	d.upload = 1;
	d.base = sd->dev_block;
	d.off = 0;
	dv_walk(&d, sd);
	LVD_ASSERT(d.off == sd->dev_bytes);
	/* the forwards run on ctx from now on */
	sd_ctx_free(sd);
	sd->ctx = ctx;
	sd->dev = 1;
	return 0;
}

void sd_dev_free(struct lvd_sd *sd)
{
	if (sd->dev_block)
		lvd_buf_free(sd->ctx, sd->dev_block);
	if (sd->hctx)
		lvd_ctx_destroy(sd->hctx);
	sd->dev_block = NULL;
	sd->hctx = NULL;
	sd->dev = 0;
}

struct lvd_ctx *lvd_sd_ctx(const struct lvd_sd *sd)
{
	return sd->ctx;
}

size_t lvd_sd_device_bytes(const struct lvd_sd *sd)
{
	return sd->dev ? sd->dev_bytes : 0;
}
