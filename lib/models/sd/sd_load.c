/* lib/models/sd/sd_load.c — SD 1.x/2.x loading: diffusers folder or ldm single file into one
 * internal structure (sd_internal.h). Configs come from config.json files (diffusers) or
 * tensor shapes (single file), both read in sd_config.c. Weight names are resolved once
 * here. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "models/sd/sd_config.h"
#include "models/sd/sd_internal.h"

/* ---- binder: name -> slot, checked shapes, conversion at the end ----------------------- */

struct bind_ent {
	const float **slot;
	const struct lvd_tensor_view *tv;
};

struct binder {
	struct bind_ent *e;
	size_t n, cap;
	const struct lvd_st *st;
	struct lvd_error *err;
	int failed;
	sd_declare_fn declare;   /* declare mode: report names and shapes, bind nothing */
	void *user;
};

static const struct lvd_tensor_view *find(const struct lvd_st *st, const char *name)
{
	return st ? lvd_st_find(st, name) : NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int i = 0; i < ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Binds `name` (or `alt` when name is absent and alt != NULL) with the expected shape.
 * lin_ok: a [O, I, 1, 1] expectation also accepts [O, I] and vice versa. */
static int bind_full(struct binder *b, const float **slot, const char *name, const char *alt,
		     int ndim, const int64_t *shape, int lin_ok)
{
	if (b->failed)
		return -1;
	if (b->declare) {
		b->declare(b->user, name, ndim, shape);
		*slot = NULL;
		return 0;
	}
	const struct lvd_tensor_view *tv = find(b->st, name);
	if (!tv && alt)
		tv = find(b->st, alt);
	if (!tv) {
		b->failed = 1;
		lvd_error_set(b->err, LVD_ERR_NOTFOUND, "%s: missing tensor '%s'",
			      lvd_st_path(b->st), name);
		return -1;
	}
	int ok = tv->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		ok = tv->shape[i] == shape[i];
	if (!ok && lin_ok) {
		int64_t s4[4] = {shape[0], shape[1], 1, 1};
		if (ndim == 4 && tv->ndim == 2)
			ok = tv->shape[0] == shape[0] && tv->shape[1] == shape[1] && shape[2] == 1 && shape[3] == 1;
		else if (ndim == 2 && tv->ndim == 4)
			ok = tv->shape[0] == s4[0] && tv->shape[1] == s4[1] && tv->shape[2] == 1 && tv->shape[3] == 1;
	}
	if (!ok) {
		char got[128], want[128];
		shape_str(got, sizeof got, tv->ndim, tv->shape);
		shape_str(want, sizeof want, ndim, shape);
		b->failed = 1;
		lvd_error_set(b->err, LVD_ERR_INVALID, "%s: tensor '%s' has shape %s, expected %s",
			      tv->file ? tv->file : lvd_st_path(b->st), tv->name, got, want);
		return -1;
	}
	if (tv->dtype != LVD_DT_F32 && tv->dtype != LVD_DT_F16 && tv->dtype != LVD_DT_BF16) {
		b->failed = 1;
		lvd_error_set(b->err, LVD_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (want F32, F16 or BF16)",
			      tv->file ? tv->file : lvd_st_path(b->st), tv->name, lvd_st_dtype_name(tv->dtype));
		return -1;
	}
	if (b->n == b->cap) {
		size_t nc = b->cap ? 2 * b->cap : 256;
		struct bind_ent *ne = lvd_realloc_array(b->e, nc, sizeof *ne);
		if (!ne) {
			b->failed = 1;
			lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory binding weights");
			return -1;
		}
		b->e = ne;
		b->cap = nc;
	}
	b->e[b->n].slot = slot;
	b->e[b->n].tv = tv;
	b->n++;
	*slot = NULL;
	return 0;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

static void bindn(struct binder *b, const float **slot, int ndim, const int64_t *shape, int lin_ok,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void bindn(struct binder *b, const float **slot, int ndim, const int64_t *shape, int lin_ok,
		  const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	bind_full(b, slot, name, NULL, ndim, shape, lin_ok);
}

/* Converts every bound tensor that is not usable in place into one block. */
static int binder_finish(struct binder *b, struct lvd_sd *sd)
{
	if (b->failed)
		return b->err->code ? b->err->code : LVD_ERR_INVALID;
	size_t total = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct lvd_tensor_view *tv = b->e[i].tv;
		int inplace = tv->dtype == LVD_DT_F32 && ((uintptr_t)tv->data % sizeof(float)) == 0;
		if (!inplace && lvd_size_add(&total, total, (size_t)tv->numel))
			return lvd_error_set(b->err, LVD_ERR_NOMEM, "weight size overflow");
	}
	if (total) {
		sd->converted = lvd_alloc_aligned(total, sizeof(float));
		if (!sd->converted)
			return lvd_error_set(b->err, LVD_ERR_NOMEM, "cannot allocate %zu floats for converted weights", total);
		sd->converted_bytes = total * sizeof(float);
	}
	size_t off = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct lvd_tensor_view *tv = b->e[i].tv;
		int inplace = tv->dtype == LVD_DT_F32 && ((uintptr_t)tv->data % sizeof(float)) == 0;
		if (inplace) {
			*b->e[i].slot = (const float *)tv->data;
			continue;
		}
		float *dst = sd->converted + off;
		int rc = lvd_tensor_to_f32(tv, dst, (size_t)tv->numel, b->err);
		if (rc)
			return rc;
		*b->e[i].slot = dst;
		off += (size_t)tv->numel;
	}
	return 0;
}

/* ---- shared binding helpers ------------------------------------------------------------ */

static void bind_norm(struct binder *b, struct sd_norm *n, int C, const char *pfx)
{
	bindn(b, &n->w, 1, SHAPE(C), 0, "%sweight", pfx);
	bindn(b, &n->b, 1, SHAPE(C), 0, "%sbias", pfx);
}

static void bind_lin(struct binder *b, struct sd_lin *l, int O, int I, int bias, int lin_ok, const char *pfx)
{
	if (lin_ok)
		bindn(b, &l->w, 4, SHAPE(O, I, 1, 1), 1, "%sweight", pfx);
	else
		bindn(b, &l->w, 2, SHAPE(O, I), 0, "%sweight", pfx);
	l->b = NULL;
	if (bias)
		bindn(b, &l->b, 1, SHAPE(O), 0, "%sbias", pfx);
}

static void bind_conv(struct binder *b, struct sd_conv *c, int O, int I, int k, const char *pfx)
{
	c->cin = I;
	c->cout = O;
	c->k = k;
	bindn(b, &c->w, 4, SHAPE(O, I, k, k), 0, "%sweight", pfx);
	bindn(b, &c->b, 1, SHAPE(O), 0, "%sbias", pfx);
}

/* ResNet names: [0] norm1 [1] conv1 [2] time_emb_proj [3] norm2 [4] conv2 [5] shortcut */
static const char *const RES_DIFFUSERS[6] = {"norm1", "conv1", "time_emb_proj", "norm2", "conv2", "conv_shortcut"};
static const char *const RES_LDM_UNET[6] = {"in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3", "skip_connection"};
static const char *const RES_LDM_VAE[6] = {"norm1", "conv1", NULL, "norm2", "conv2", "nin_shortcut"};

static void bind_resnet(struct binder *b, struct sd_resnet *r, int cin, int cout, int temb_dim,
			const char *const names[6], const char *pfx)
{
	char p[256];
	r->cin = cin;
	r->cout = cout;
	snprintf(p, sizeof p, "%s%s.", pfx, names[0]);
	bind_norm(b, &r->n1, cin, p);
	snprintf(p, sizeof p, "%s%s.", pfx, names[1]);
	bind_conv(b, &r->c1, cout, cin, 3, p);
	r->temb.w = r->temb.b = NULL;
	if (temb_dim) {
		snprintf(p, sizeof p, "%s%s.", pfx, names[2]);
		bind_lin(b, &r->temb, cout, temb_dim, 1, 0, p);
	}
	snprintf(p, sizeof p, "%s%s.", pfx, names[3]);
	bind_norm(b, &r->n2, cout, p);
	snprintf(p, sizeof p, "%s%s.", pfx, names[4]);
	bind_conv(b, &r->c2, cout, cout, 3, p);
	r->sc.w = r->sc.b = NULL;
	if (cin != cout) {
		snprintf(p, sizeof p, "%s%s.", pfx, names[5]);
		bind_conv(b, &r->sc, cout, cin, 1, p);
	}
}

/* ---- CLIP text encoder ----------------------------------------------------------------- */

static int clip_bind(struct binder *b, struct sd_clip *c, const char *pfx)
{
	const struct lvd_sd_clip_cfg *k = &c->cfg;
	int D = k->width, F = k->ffn;
	char p[256];
	c->layers = calloc((size_t)k->layers, sizeof *c->layers);
	if (!c->layers)
		return lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory");
	/* HF files name everything text_model.*; transformers 5 saves without that prefix */
	char full[128];
	snprintf(full, sizeof full, "%s%s", pfx, b->st && sd_clip_has_text_model(b->st, pfx) ? "text_model." : "");
	pfx = full;
	bindn(b, &c->tok_emb, 2, SHAPE(k->vocab, D), 0, "%sembeddings.token_embedding.weight", pfx);
	bindn(b, &c->pos_emb, 2, SHAPE(k->n_pos, D), 0, "%sembeddings.position_embedding.weight", pfx);
	for (int i = 0; i < k->layers; i++) {
		struct sd_clip_layer *L = &c->layers[i];
		const char *lp = "encoder.layers";
		snprintf(p, sizeof p, "%s%s.%d.layer_norm1.", pfx, lp, i);
		bind_norm(b, &L->ln1, D, p);
		snprintf(p, sizeof p, "%s%s.%d.layer_norm2.", pfx, lp, i);
		bind_norm(b, &L->ln2, D, p);
		snprintf(p, sizeof p, "%s%s.%d.self_attn.q_proj.", pfx, lp, i);
		bind_lin(b, &L->at.q, D, D, 1, 0, p);
		snprintf(p, sizeof p, "%s%s.%d.self_attn.k_proj.", pfx, lp, i);
		bind_lin(b, &L->at.k, D, D, 1, 0, p);
		snprintf(p, sizeof p, "%s%s.%d.self_attn.v_proj.", pfx, lp, i);
		bind_lin(b, &L->at.v, D, D, 1, 0, p);
		snprintf(p, sizeof p, "%s%s.%d.self_attn.out_proj.", pfx, lp, i);
		bind_lin(b, &L->at.o, D, D, 1, 0, p);
		snprintf(p, sizeof p, "%s%s.%d.mlp.fc1.", pfx, lp, i);
		bind_lin(b, &L->fc1, F, D, 1, 0, p);
		snprintf(p, sizeof p, "%s%s.%d.mlp.fc2.", pfx, lp, i);
		bind_lin(b, &L->fc2, D, F, 1, 0, p);
	}
	snprintf(p, sizeof p, "%sfinal_layer_norm.", pfx);
	bind_norm(b, &c->final_ln, D, p);
	return 0;
}

/* SD 2.x ldm OpenCLIP tower: cond_stage_model.model.{token_embedding.weight,
 * positional_embedding, transformer.resblocks.N.{ln_1, attn.in_proj_weight/bias (q, k, v
 * stacked), attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_final}. Only the first
 * cfg.layers resblocks are bound (the penultimate rule); text_projection is ignored.
 * clip_split_qkv points at.q/k/v into the fused weights once they are bound. */
static int openclip_bind(struct binder *b, struct sd_clip *c)
{
	const struct lvd_sd_clip_cfg *k = &c->cfg;
	const char *P = "cond_stage_model.model.";
	int D = k->width, F = k->ffn;
	char p[256];
	c->openclip = 1;
	c->layers = calloc((size_t)k->layers, sizeof *c->layers);
	if (!c->layers)
		return lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory");
	bindn(b, &c->tok_emb, 2, SHAPE(k->vocab, D), 0, "%stoken_embedding.weight", P);
	bindn(b, &c->pos_emb, 2, SHAPE(k->n_pos, D), 0, "%spositional_embedding", P);
	for (int i = 0; i < k->layers; i++) {
		struct sd_clip_layer *L = &c->layers[i];
		snprintf(p, sizeof p, "%stransformer.resblocks.%d.ln_1.", P, i);
		bind_norm(b, &L->ln1, D, p);
		snprintf(p, sizeof p, "%stransformer.resblocks.%d.ln_2.", P, i);
		bind_norm(b, &L->ln2, D, p);
		bindn(b, &L->qkv.w, 2, SHAPE(3 * D, D), 0, "%stransformer.resblocks.%d.attn.in_proj_weight", P, i);
		bindn(b, &L->qkv.b, 1, SHAPE(3 * D), 0, "%stransformer.resblocks.%d.attn.in_proj_bias", P, i);
		snprintf(p, sizeof p, "%stransformer.resblocks.%d.attn.out_proj.", P, i);
		bind_lin(b, &L->at.o, D, D, 1, 0, p);
		snprintf(p, sizeof p, "%stransformer.resblocks.%d.mlp.c_fc.", P, i);
		bind_lin(b, &L->fc1, F, D, 1, 0, p);
		snprintf(p, sizeof p, "%stransformer.resblocks.%d.mlp.c_proj.", P, i);
		bind_lin(b, &L->fc2, D, F, 1, 0, p);
	}
	snprintf(p, sizeof p, "%sln_final.", P);
	bind_norm(b, &c->final_ln, D, p);
	return 0;
}

static void clip_split_qkv(struct sd_clip *c)
{
	size_t D = (size_t)c->cfg.width;
	for (int i = 0; c->openclip && i < c->cfg.layers; i++) {
		struct sd_clip_layer *L = &c->layers[i];
		L->at.q = (struct sd_lin){L->qkv.w, L->qkv.b, NULL};
		L->at.k = (struct sd_lin){L->qkv.w + D * D, L->qkv.b + D, NULL};
		L->at.v = (struct sd_lin){L->qkv.w + 2 * D * D, L->qkv.b + 2 * D, NULL};
	}
}

/* ---- VAE encoder ----------------------------------------------------------------------- */

static void vae_bind(struct binder *b, struct sd_vae *v, int ldm, const char *pfx)
{
	const struct lvd_sd_vae_cfg *k = &v->cfg;
	char p[256], alt[256];
	snprintf(p, sizeof p, "%sencoder.conv_in.", pfx);
	bind_conv(b, &v->conv_in, k->ch[0], k->in_ch, 3, p);
	int cin = k->ch[0];
	for (int i = 0; i < k->levels; i++) {
		for (int j = 0; j < k->layers_per_block; j++) {
			if (ldm)
				snprintf(p, sizeof p, "%sencoder.down.%d.block.%d.", pfx, i, j);
			else
				snprintf(p, sizeof p, "%sencoder.down_blocks.%d.resnets.%d.", pfx, i, j);
			bind_resnet(b, &v->down[i][j], cin, k->ch[i], 0, ldm ? RES_LDM_VAE : RES_DIFFUSERS, p);
			cin = k->ch[i];
		}
		if (i < k->levels - 1) {
			if (ldm)
				snprintf(p, sizeof p, "%sencoder.down.%d.downsample.conv.", pfx, i);
			else
				snprintf(p, sizeof p, "%sencoder.down_blocks.%d.downsamplers.0.conv.", pfx, i);
			bind_conv(b, &v->downsample[i], k->ch[i], k->ch[i], 3, p);
		}
	}
	int C = k->ch[k->levels - 1];
	for (int j = 0; j < 2; j++) {
		if (ldm)
			snprintf(p, sizeof p, "%sencoder.mid.block_%d.", pfx, j + 1);
		else
			snprintf(p, sizeof p, "%sencoder.mid_block.resnets.%d.", pfx, j);
		bind_resnet(b, &v->mid[j], C, C, 0, ldm ? RES_LDM_VAE : RES_DIFFUSERS, p);
	}
	/* mid attention: ldm norm/q/k/v/proj_out (1x1 convs); diffusers group_norm/to_q/...;
	 * older diffusers files use query/key/value/proj_attn. */
	static const char *const AN[3][5] = {
		{"norm", "q", "k", "v", "proj_out"},
		{"group_norm", "to_q", "to_k", "to_v", "to_out.0"},
		{"group_norm", "query", "key", "value", "proj_attn"},
	};
	const char *ap = ldm ? "encoder.mid.attn_1." : "encoder.mid_block.attentions.0.";
	struct sd_lin *lins[4] = {&v->mid_attn.q, &v->mid_attn.k, &v->mid_attn.v, &v->mid_attn.o};
	const char *sfx[2] = {"weight", "bias"};
	for (int s = 0; s < 2; s++) {
		snprintf(p, sizeof p, "%s%s%s.%s", pfx, ap, AN[ldm ? 0 : 1][0], sfx[s]);
		snprintf(alt, sizeof alt, "%s%s%s.%s", pfx, ap, AN[2][0], sfx[s]);
		bind_full(b, s ? &v->mid_gn.b : &v->mid_gn.w, p, NULL, 1, SHAPE(C), 0);
	}
	for (int q = 0; q < 4; q++) {
		snprintf(p, sizeof p, "%s%s%s.weight", pfx, ap, AN[ldm ? 0 : 1][q + 1]);
		snprintf(alt, sizeof alt, "%s%s%s.weight", pfx, ap, AN[2][q + 1]);
		bind_full(b, &lins[q]->w, p, ldm ? NULL : alt, 2, SHAPE(C, C), 1);
		snprintf(p, sizeof p, "%s%s%s.bias", pfx, ap, AN[ldm ? 0 : 1][q + 1]);
		snprintf(alt, sizeof alt, "%s%s%s.bias", pfx, ap, AN[2][q + 1]);
		bind_full(b, &lins[q]->b, p, ldm ? NULL : alt, 1, SHAPE(C), 0);
	}
	snprintf(p, sizeof p, "%sencoder.%s.", pfx, ldm ? "norm_out" : "conv_norm_out");
	bind_norm(b, &v->norm_out, C, p);
	snprintf(p, sizeof p, "%sencoder.conv_out.", pfx);
	bind_conv(b, &v->conv_out, 2 * k->latent_ch, C, 3, p);
	snprintf(p, sizeof p, "%squant_conv.", pfx);
	bind_conv(b, &v->quant, 2 * k->latent_ch, 2 * k->latent_ch, 1, p);
}

/* ---- UNet ------------------------------------------------------------------------------ */

static void tf_bind(struct binder *b, struct sd_transformer *t, int C, int heads, const struct lvd_sd_unet_cfg *k,
		    const char *pfx, const char *dname)
{
	char p[320];
	t->C = C;
	t->heads = heads;
	snprintf(p, sizeof p, "%snorm.", pfx);
	bind_norm(b, &t->gn, C, p);
	snprintf(p, sizeof p, "%sproj_in.", pfx);
	bind_lin(b, &t->pin, C, C, 1, 1, p);
	snprintf(p, sizeof p, "%sproj_out.", pfx);
	bind_lin(b, &t->pout, C, C, 1, 1, p);
	for (int i = 0; i < k->tblocks; i++) {
		struct sd_tblock *tb = &t->tb[i];
		snprintf(t->name[i], sizeof t->name[i], "%stransformer_blocks.%d.attn2", dname, i);
		const char *nn[3] = {"norm1", "norm2", "norm3"};
		struct sd_norm *ln[3] = {&tb->ln1, &tb->ln2, &tb->ln3};
		for (int q = 0; q < 3; q++) {
			snprintf(p, sizeof p, "%stransformer_blocks.%d.%s.", pfx, i, nn[q]);
			bind_norm(b, ln[q], C, p);
		}
		for (int a = 0; a < 2; a++) {
			struct sd_attn *at = a ? &tb->a2 : &tb->a1;
			int kv = a ? k->ctx_dim : C;
			snprintf(p, sizeof p, "%stransformer_blocks.%d.attn%d.to_q.", pfx, i, a + 1);
			bind_lin(b, &at->q, C, C, 0, 0, p);
			snprintf(p, sizeof p, "%stransformer_blocks.%d.attn%d.to_k.", pfx, i, a + 1);
			bind_lin(b, &at->k, C, kv, 0, 0, p);
			snprintf(p, sizeof p, "%stransformer_blocks.%d.attn%d.to_v.", pfx, i, a + 1);
			bind_lin(b, &at->v, C, kv, 0, 0, p);
			snprintf(p, sizeof p, "%stransformer_blocks.%d.attn%d.to_out.0.", pfx, i, a + 1);
			bind_lin(b, &at->o, C, C, 1, 0, p);
		}
		snprintf(p, sizeof p, "%stransformer_blocks.%d.ff.net.0.proj.", pfx, i);
		bind_lin(b, &tb->ff1, 8 * C, C, 1, 0, p);
		snprintf(p, sizeof p, "%stransformer_blocks.%d.ff.net.2.", pfx, i);
		bind_lin(b, &tb->ff2, C, 4 * C, 1, 0, p);
	}
}

static void unet_bind(struct binder *b, struct sd_unet *u, int ldm, const char *pfx)
{
	const struct lvd_sd_unet_cfg *k = &u->cfg;
	int L = k->layers_per_block, n = k->levels, TE = k->temb_dim;
	char p[256], d[256];
	const char *const *RN = ldm ? RES_LDM_UNET : RES_DIFFUSERS;
	snprintf(p, sizeof p, "%s%s.", pfx, ldm ? "input_blocks.0.0" : "conv_in");
	bind_conv(b, &u->conv_in, k->ch[0], k->in_ch, 3, p);
	snprintf(p, sizeof p, "%s%s.", pfx, ldm ? "time_embed.0" : "time_embedding.linear_1");
	bind_lin(b, &u->t1, TE, k->ch[0], 1, 0, p);
	snprintf(p, sizeof p, "%s%s.", pfx, ldm ? "time_embed.2" : "time_embedding.linear_2");
	bind_lin(b, &u->t2, TE, TE, 1, 0, p);
	int cin = k->ch[0];
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < L; j++) {
			if (ldm)
				snprintf(p, sizeof p, "%sinput_blocks.%d.0.", pfx, i * (L + 1) + j + 1);
			else
				snprintf(p, sizeof p, "%sdown_blocks.%d.resnets.%d.", pfx, i, j);
			bind_resnet(b, &u->down[i][j], cin, k->ch[i], TE, RN, p);
			cin = k->ch[i];
			if (k->down_attn[i]) {
				snprintf(d, sizeof d, "down_blocks.%d.attentions.%d.", i, j);
				if (ldm)
					snprintf(p, sizeof p, "%sinput_blocks.%d.1.", pfx, i * (L + 1) + j + 1);
				else
					snprintf(p, sizeof p, "%s%s", pfx, d);
				tf_bind(b, &u->down_tf[i][j], k->ch[i], k->heads[i], k, p, d);
			}
		}
		if (i < n - 1) {
			if (ldm)
				snprintf(p, sizeof p, "%sinput_blocks.%d.0.op.", pfx, (i + 1) * (L + 1));
			else
				snprintf(p, sizeof p, "%sdown_blocks.%d.downsamplers.0.conv.", pfx, i);
			bind_conv(b, &u->downsample[i], k->ch[i], k->ch[i], 3, p);
		}
	}
	int C = k->ch[n - 1];
	for (int j = 0; j < 2; j++) {
		if (ldm)
			snprintf(p, sizeof p, "%smiddle_block.%d.", pfx, 2 * j);
		else
			snprintf(p, sizeof p, "%smid_block.resnets.%d.", pfx, j);
		bind_resnet(b, &u->mid[j], C, C, TE, RN, p);
	}
	snprintf(p, sizeof p, "%s%s", pfx, ldm ? "middle_block.1." : "mid_block.attentions.0.");
	tf_bind(b, &u->mid_tf, C, k->heads[n - 1], k, p, "mid_block.attentions.0.");
	/* up block u works at level n-1-u; resnet j input = h + skip */
	int skip_ch[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1], ns = 0;
	skip_ch[ns++] = k->ch[0];
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < L; j++)
			skip_ch[ns++] = k->ch[i];
		if (i < n - 1)
			skip_ch[ns++] = k->ch[i];
	}
	int hc = C;
	for (int uu = 0; uu < n; uu++) {
		int lvl = n - 1 - uu;
		for (int j = 0; j <= L; j++) {
			int sc = skip_ch[--ns];
			if (ldm)
				snprintf(p, sizeof p, "%soutput_blocks.%d.0.", pfx, uu * (L + 1) + j);
			else
				snprintf(p, sizeof p, "%sup_blocks.%d.resnets.%d.", pfx, uu, j);
			bind_resnet(b, &u->up[uu][j], hc + sc, k->ch[lvl], TE, RN, p);
			hc = k->ch[lvl];
			if (k->up_attn[uu]) {
				snprintf(d, sizeof d, "up_blocks.%d.attentions.%d.", uu, j);
				if (ldm)
					snprintf(p, sizeof p, "%soutput_blocks.%d.1.", pfx, uu * (L + 1) + j);
				else
					snprintf(p, sizeof p, "%s%s", pfx, d);
				tf_bind(b, &u->up_tf[uu][j], hc, k->heads[lvl], k, p, d);
			}
		}
		if (uu < n - 1) {
			if (ldm)
				snprintf(p, sizeof p, "%soutput_blocks.%d.%d.conv.", pfx, uu * (L + 1) + L,
					 k->up_attn[uu] ? 2 : 1);
			else
				snprintf(p, sizeof p, "%sup_blocks.%d.upsamplers.0.conv.", pfx, uu);
			bind_conv(b, &u->upsample[uu], hc, hc, 3, p);
		}
	}
	snprintf(p, sizeof p, "%s%s.", pfx, ldm ? "out.0" : "conv_norm_out");
	bind_norm(b, &u->norm_out, k->ch[0], p);
	snprintf(p, sizeof p, "%s%s.", pfx, ldm ? "out.2" : "conv_out");
	bind_conv(b, &u->conv_out, k->out_ch, k->ch[0], 3, p);
}

/* ---- top level ------------------------------------------------------------------------- */

/* Opens <dir>/<sub>: the folder itself, else a .fp16 variant file. */
static int open_component(struct lvd_st **st, const char *dir, const char *sub, const char *base,
			  struct lvd_error *err)
{
	char p[4096], v[4096];
	snprintf(p, sizeof p, "%s/%s", dir, sub);
	snprintf(v, sizeof v, "%s/%s/%s.fp16.safetensors", dir, sub, base);
	char f[4096];
	snprintf(f, sizeof f, "%s/%s/%s.safetensors", dir, sub, base);
	char fi[4096];
	snprintf(fi, sizeof fi, "%s/%s/%s.safetensors.index.json", dir, sub, base);
	if (!lvd_path_is_file(f) && !lvd_path_is_file(fi) && lvd_path_is_file(v))
		return lvd_st_open(st, v, err);
	if (!lvd_path_is_file(f) && !lvd_path_is_file(fi))
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no %s.safetensors (only .safetensors weights are read)",
				     p, base);
	return lvd_st_open(st, p, err);
}

static int load_diffusers(struct lvd_sd *sd, const char *dir, int comps, struct lvd_error *err)
{
	char p[4096];
	struct binder b = {.err = err};
	int rc = 0;
	if (comps & LVD_SD_TEXT) {
		snprintf(p, sizeof p, "%s/text_encoder/config.json", dir);
		if ((rc = sd_clip_cfg_json(&sd->clip.cfg, p, err)))
			goto out;
		if ((rc = open_component(&sd->st[0], dir, "text_encoder", "model", err)))
			goto out;
		b.st = sd->st[0];
		if ((rc = clip_bind(&b, &sd->clip, "")))
			goto out;
		sd->has_text = 1;
	}
	if (comps & LVD_SD_VAE) {
		snprintf(p, sizeof p, "%s/vae/config.json", dir);
		if ((rc = sd_vae_cfg_json(&sd->vae.cfg, p, err)))
			goto out;
		if ((rc = open_component(&sd->st[1], dir, "vae", "diffusion_pytorch_model", err)))
			goto out;
		b.st = sd->st[1];
		vae_bind(&b, &sd->vae, 0, "");
		sd->has_vae = 1;
	}
	if (comps & LVD_SD_UNET) {
		snprintf(p, sizeof p, "%s/unet/config.json", dir);
		if ((rc = sd_unet_cfg_json(&sd->unet.cfg, p, err)))
			goto out;
		if ((rc = open_component(&sd->st[2], dir, "unet", "diffusion_pytorch_model", err)))
			goto out;
		b.st = sd->st[2];
		unet_bind(&b, &sd->unet, 0, "");
		sd->has_unet = 1;
	}
	rc = binder_finish(&b, sd);
out:
	free(b.e);
	return rc;
}

static int load_single(struct lvd_sd *sd, const char *path, int comps, const struct lvd_sd_opts *o,
		       struct lvd_error *err)
{
	int rc = lvd_st_open(&sd->st[0], path, err);
	if (rc)
		return rc;
	const struct lvd_st *st = sd->st[0];
	if (find(st, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight") ||
	    find(st, "conditioner.embedders.1.model.token_embedding.weight") ||
	    find(st, "model.diffusion_model.label_emb.0.0.weight"))
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "%s: this is an SDXL checkpoint (conditioner.embedders / label_emb); only SD 1.x and 2.x are supported", path);
	struct binder b = {.err = err, .st = st};
	if (comps & LVD_SD_TEXT) {
		if (find(st, "cond_stage_model.model.token_embedding.weight")) {
			/* SD 2.x: OpenCLIP ViT-H/14 text tower */
			if ((rc = sd_ldm_openclip_cfg(&sd->clip.cfg, st, o, err)))
				goto out;
			if ((rc = openclip_bind(&b, &sd->clip)))
				goto out;
		} else {
			const char *pfx = "cond_stage_model.transformer.";
			if ((rc = sd_ldm_clip_cfg(&sd->clip.cfg, st, pfx, o, err)))
				goto out;
			if ((rc = clip_bind(&b, &sd->clip, pfx)))
				goto out;
		}
		sd->has_text = 1;
	}
	if (comps & LVD_SD_VAE) {
		if ((rc = sd_ldm_vae_cfg(&sd->vae.cfg, st, o, err)))
			goto out;
		vae_bind(&b, &sd->vae, 1, "first_stage_model.");
		sd->has_vae = 1;
	}
	if (comps & LVD_SD_UNET) {
		if ((rc = sd_ldm_unet_cfg(&sd->unet.cfg, st, o, err)))
			goto out;
		unet_bind(&b, &sd->unet, 1, "model.diffusion_model.");
		sd->has_unet = 1;
	}
	rc = binder_finish(&b, sd);
	if (!rc && sd->has_text)
		clip_split_qkv(&sd->clip);
out:
	free(b.e);
	return rc;
}

int sd_declare_diffusers(const char *dir, int comps, sd_declare_fn fn, void *user, struct lvd_error *err)
{
	struct lvd_sd *sd = calloc(1, sizeof *sd);
	if (!sd)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	struct binder b = {.err = err, .declare = fn, .user = user};
	char p[4096];
	int rc = 0;
	if (comps & LVD_SD_TEXT) {
		snprintf(p, sizeof p, "%s/text_encoder/config.json", dir);
		if (!(rc = sd_clip_cfg_json(&sd->clip.cfg, p, err)))
			rc = clip_bind(&b, &sd->clip, "text_model.");
	}
	if (!rc && (comps & LVD_SD_VAE)) {
		snprintf(p, sizeof p, "%s/vae/config.json", dir);
		if (!(rc = sd_vae_cfg_json(&sd->vae.cfg, p, err)))
			vae_bind(&b, &sd->vae, 0, "");
	}
	if (!rc && (comps & LVD_SD_UNET)) {
		snprintf(p, sizeof p, "%s/unet/config.json", dir);
		if (!(rc = sd_unet_cfg_json(&sd->unet.cfg, p, err)))
			unet_bind(&b, &sd->unet, 0, "");
	}
	lvd_sd_free(sd);
	return rc;
}

int lvd_sd_load(struct lvd_sd **out, const char *path, const struct lvd_sd_opts *opts,
		struct lvd_error *err)
{
	static const struct lvd_sd_opts defaults;
	const struct lvd_sd_opts *o = opts ? opts : &defaults;
	int comps = o->components ? o->components & LVD_SD_ALL : LVD_SD_ALL;
	*out = NULL;
	struct lvd_sd *sd = calloc(1, sizeof *sd);
	if (!sd)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int rc;
	if (lvd_path_is_dir(path))
		rc = load_diffusers(sd, path, comps, err);
	else
		rc = load_single(sd, path, comps, o, err);
	sd->winograd = o->winograd;
	if (!rc)
		rc = sd_ctx_init(sd, o->ctx, o->threads, err);
	if (rc) {
		lvd_sd_free(sd);
		return rc;
	}
	*out = sd;
	return 0;
}

void lvd_sd_free(struct lvd_sd *sd)
{
	if (!sd)
		return;
	for (int i = 0; i < 3; i++)
		lvd_st_close(sd->st[i]);
	free(sd->clip.layers);
	free(sd->converted);
	sd_dev_free(sd);
	sd_ctx_free(sd);
	free(sd);
}

const struct lvd_sd_clip_cfg *lvd_sd_clip_config(const struct lvd_sd *sd)
{
	return sd->has_text ? &sd->clip.cfg : NULL;
}

const struct lvd_sd_vae_cfg *lvd_sd_vae_config(const struct lvd_sd *sd)
{
	return sd->has_vae ? &sd->vae.cfg : NULL;
}

const struct lvd_sd_unet_cfg *lvd_sd_unet_config(const struct lvd_sd *sd)
{
	return sd->has_unet ? &sd->unet.cfg : NULL;
}

size_t lvd_sd_converted_bytes(const struct lvd_sd *sd)
{
	return sd->converted_bytes;
}
