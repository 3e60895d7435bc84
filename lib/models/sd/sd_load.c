/* lib/models/sd/sd_load.c — SD 1.x loading: diffusers folder or ldm single file into one
 * internal structure (sd_internal.h). Configs come from config.json files (diffusers) or
 * tensor shapes (single file). Weight names are resolved once here. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/safetensors.h"
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

static const struct lvd_tensor_view *findf(const struct lvd_st *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const struct lvd_tensor_view *findf(const struct lvd_st *st, const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	return find(st, name);
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
			      tv->file ? tv->file : lvd_st_path(b->st), tv->name, lvd_dtype_name(tv->dtype));
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

/* ---- JSON config helpers --------------------------------------------------------------- */

struct jcfg {
	json_t *root;
	const char *path;
	struct lvd_error *err;
	int failed;
};

static int jopen(struct jcfg *j, const char *path, struct lvd_error *err)
{
	json_error_t je;
	j->path = path;
	j->err = err;
	j->failed = 0;
	j->root = json_load_file(path, 0, &je);
	if (!j->root)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
	if (!json_is_object(j->root)) {
		json_decref(j->root);
		j->root = NULL;
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a JSON object", path);
	}
	return 0;
}

static int jint(struct jcfg *j, const char *key, int def, int required, int lo, int hi)
{
	if (j->failed)
		return def;
	json_t *v = json_object_get(j->root, key);
	if (!v || json_is_null(v)) {
		if (required) {
			j->failed = 1;
			lvd_error_set(j->err, LVD_ERR_INVALID, "%s: missing field '%s'", j->path, key);
		}
		return def;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		j->failed = 1;
		lvd_error_set(j->err, LVD_ERR_INVALID, "%s: field '%s' must be an integer in [%d, %d]",
			      j->path, key, lo, hi);
		return def;
	}
	return (int)json_integer_value(v);
}

static double jnum(struct jcfg *j, const char *key, double def)
{
	json_t *v = json_object_get(j->root, key);
	if (!v || json_is_null(v) || j->failed)
		return def;
	if (!json_is_number(v)) {
		j->failed = 1;
		lvd_error_set(j->err, LVD_ERR_INVALID, "%s: field '%s' must be a number", j->path, key);
		return def;
	}
	return json_number_value(v);
}

static int jbool(struct jcfg *j, const char *key, int def)
{
	json_t *v = json_object_get(j->root, key);
	if (!v || json_is_null(v))
		return def;
	return json_is_true(v);
}

static const char *jstr(struct jcfg *j, const char *key)
{
	json_t *v = json_object_get(j->root, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An int or a list of ints into out[n]; returns the number read or -1. */
static int jints(struct jcfg *j, const char *key, int *out, int n_expect, int required)
{
	if (j->failed)
		return -1;
	json_t *v = json_object_get(j->root, key);
	if (!v || json_is_null(v)) {
		if (required) {
			j->failed = 1;
			lvd_error_set(j->err, LVD_ERR_INVALID, "%s: missing field '%s'", j->path, key);
		}
		return -1;
	}
	if (json_is_integer(v) && n_expect > 0) {
		for (int i = 0; i < n_expect; i++)
			out[i] = (int)json_integer_value(v);
		return n_expect;
	}
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > LVD_SD_MAX_LEVELS ||
	    (n_expect > 0 && (int)json_array_size(v) != n_expect))
		goto bad;
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 65536)
			goto bad;
		out[i] = (int)json_integer_value(e);
	}
	return (int)json_array_size(v);
bad:
	j->failed = 1;
	lvd_error_set(j->err, LVD_ERR_INVALID, "%s: field '%s' must be a positive integer or a list of %d (at most %d)",
		      j->path, key, n_expect > 0 ? n_expect : LVD_SD_MAX_LEVELS, LVD_SD_MAX_LEVELS);
	return -1;
}

static int jdone(struct jcfg *j)
{
	json_decref(j->root);
	j->root = NULL;
	return j->failed ? (j->err->code ? j->err->code : LVD_ERR_INVALID) : 0;
}

/* ---- CLIP text encoder ----------------------------------------------------------------- */

static int clip_has_text_model(const struct lvd_st *st, const char *pfx)
{
	return findf(st, "%stext_model.embeddings.token_embedding.weight", pfx) != NULL;
}

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
	snprintf(full, sizeof full, "%s%s", pfx, clip_has_text_model(b->st, pfx) ? "text_model." : "");
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

static int clip_check_cfg(const struct lvd_sd_clip_cfg *k, const char *where, struct lvd_error *err)
{
	if (k->width <= 0 || k->heads <= 0 || k->width % k->heads || k->layers <= 0 || k->ffn <= 0 ||
	    k->n_pos <= 0 || k->vocab <= 0)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "%s: inconsistent text encoder config (width %d, heads %d, layers %d, ffn %d)",
				     where, k->width, k->heads, k->layers, k->ffn);
	return 0;
}

static int clip_cfg_json(struct lvd_sd_clip_cfg *k, const char *path, struct lvd_error *err)
{
	struct jcfg j;
	int rc = jopen(&j, path, err);
	if (rc)
		return rc;
	k->vocab = jint(&j, "vocab_size", 49408, 0, 1, 1 << 24);
	k->width = jint(&j, "hidden_size", 0, 1, 1, 65536);
	k->ffn = jint(&j, "intermediate_size", 0, 1, 1, 1 << 20);
	k->layers = jint(&j, "num_hidden_layers", 0, 1, 1, 1024);
	k->heads = jint(&j, "num_attention_heads", 0, 1, 1, 1024);
	k->n_pos = jint(&j, "max_position_embeddings", 77, 0, 1, 1 << 20);
	k->eps = (float)jnum(&j, "layer_norm_eps", 1e-5);
	const char *act = jstr(&j, "hidden_act");
	if (!j.failed) {
		if (!act || !strcmp(act, "quick_gelu"))
			k->act = LVD_SD_ACT_QUICK_GELU;
		else if (!strcmp(act, "gelu"))
			k->act = LVD_SD_ACT_GELU;
		else {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (quick_gelu, gelu)", path, act);
		}
	}
	rc = jdone(&j);
	return rc ? rc : clip_check_cfg(k, path, err);
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

static int vae_check_cfg(const struct lvd_sd_vae_cfg *k, const char *where, struct lvd_error *err)
{
	if (k->levels < 1 || k->levels > LVD_SD_MAX_LEVELS || k->layers_per_block < 1 ||
	    k->layers_per_block > LVD_SD_MAX_RES || k->groups < 1 || k->latent_ch < 1 || k->in_ch < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: unsupported VAE config (levels %d, layers_per_block %d)",
				     where, k->levels, k->layers_per_block);
	for (int i = 0; i < k->levels; i++)
		if (k->ch[i] < 1 || k->ch[i] % k->groups)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: VAE channels %d not divisible by %d groups",
					     where, k->ch[i], k->groups);
	return 0;
}

static int vae_cfg_json(struct lvd_sd_vae_cfg *k, const char *path, struct lvd_error *err)
{
	struct jcfg j;
	int rc = jopen(&j, path, err);
	if (rc)
		return rc;
	k->in_ch = jint(&j, "in_channels", 3, 0, 1, 64);
	k->latent_ch = jint(&j, "latent_channels", 4, 0, 1, 1024);
	k->levels = jints(&j, "block_out_channels", k->ch, 0, 1);
	k->layers_per_block = jint(&j, "layers_per_block", 2, 0, 1, LVD_SD_MAX_RES);
	k->groups = jint(&j, "norm_num_groups", 32, 0, 1, 4096);
	k->scaling = (float)jnum(&j, "scaling_factor", 0.18215);
	k->eps = 1e-6f;
	if (!j.failed && !jbool(&j, "mid_block_add_attention", 1)) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: mid_block_add_attention=false is not supported", path);
	}
	if (!j.failed && json_object_get(j.root, "shift_factor") && !json_is_null(json_object_get(j.root, "shift_factor"))) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: shift_factor (SD3/Flux VAE) is not supported", path);
	}
	rc = jdone(&j);
	return rc ? rc : vae_check_cfg(k, path, err);
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

static int unet_check_cfg(const struct lvd_sd_unet_cfg *k, const char *where, struct lvd_error *err)
{
	if (k->levels < 1 || k->levels > LVD_SD_MAX_LEVELS || k->layers_per_block < 1 ||
	    k->layers_per_block + 1 > LVD_SD_MAX_RES || k->tblocks < 1 || k->tblocks > LVD_SD_MAX_TBLOCKS ||
	    k->groups < 1 || k->in_ch < 1 || k->out_ch < 1 || k->temb_dim < 1 || k->ctx_dim < 1)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "%s: unsupported UNet config (levels %d, layers_per_block %d, transformer layers %d)",
				     where, k->levels, k->layers_per_block, k->tblocks);
	for (int i = 0; i < k->levels; i++) {
		if (k->ch[i] < 1 || k->ch[i] % k->groups)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: UNet channels %d not divisible by %d groups",
					     where, k->ch[i], k->groups);
		if (k->heads[i] < 1 || k->ch[i] % k->heads[i])
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: UNet level %d: %d channels not divisible by %d heads",
					     where, i, k->ch[i], k->heads[i]);
	}
	if (k->ch[0] % 2)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: odd timestep embedding size %d", where, k->ch[0]);
	return 0;
}

static int unet_cfg_json(struct lvd_sd_unet_cfg *k, const char *path, struct lvd_error *err)
{
	struct jcfg j;
	int rc = jopen(&j, path, err);
	if (rc)
		return rc;
	static const char *const unsupported[] = {
		"addition_embed_type", "class_embed_type", "encoder_hid_dim_type", "num_class_embeds",
		"projection_class_embeddings_input_dim", "time_cond_proj_dim", NULL};
	for (int i = 0; unsupported[i] && !j.failed; i++) {
		json_t *v = json_object_get(j.root, unsupported[i]);
		if (v && !json_is_null(v)) {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: '%s' is set: this UNet variant (e.g. SDXL) is not supported",
				      path, unsupported[i]);
		}
	}
	k->in_ch = jint(&j, "in_channels", 4, 0, 1, 1024);
	k->out_ch = jint(&j, "out_channels", 4, 0, 1, 1024);
	k->levels = jints(&j, "block_out_channels", k->ch, 0, 1);
	k->layers_per_block = jint(&j, "layers_per_block", 2, 0, 1, LVD_SD_MAX_RES - 1);
	k->groups = jint(&j, "norm_num_groups", 32, 0, 1, 4096);
	k->eps = (float)jnum(&j, "norm_eps", 1e-5);
	k->ctx_dim = jint(&j, "cross_attention_dim", 1280, 0, 1, 65536);
	k->flip_sin_to_cos = jbool(&j, "flip_sin_to_cos", 1);
	k->freq_shift = (float)jnum(&j, "freq_shift", 0);
	k->linear_proj = jbool(&j, "use_linear_projection", 0);
	int n = k->levels > 0 ? k->levels : 1;
	k->temb_dim = jint(&j, "time_embedding_dim", 4 * k->ch[0], 0, 1, 1 << 20);
	if (jints(&j, "num_attention_heads", k->heads, n, 0) < 0 && !j.failed)
		jints(&j, "attention_head_dim", k->heads, n, 1);
	int tl[LVD_SD_MAX_LEVELS] = {0};
	k->tblocks = 1;
	if (jints(&j, "transformer_layers_per_block", tl, n, 0) > 0) {
		k->tblocks = tl[0];
		for (int i = 1; i < n; i++)
			if (tl[i] != tl[0] && !j.failed) {
				j.failed = 1;
				lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: per-level transformer_layers_per_block is not supported", path);
			}
	}
	json_t *db = json_object_get(j.root, "down_block_types"), *ub = json_object_get(j.root, "up_block_types");
	if (!j.failed && (!json_is_array(db) || !json_is_array(ub) || (int)json_array_size(db) != n ||
			  (int)json_array_size(ub) != n)) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_INVALID, "%s: down_block_types/up_block_types must list %d blocks", path, n);
	}
	for (int i = 0; i < n && !j.failed; i++) {
		const char *ds = json_string_value(json_array_get(db, i));
		const char *us = json_string_value(json_array_get(ub, i));
		if (ds && !strcmp(ds, "CrossAttnDownBlock2D"))
			k->down_attn[i] = 1;
		else if (!ds || strcmp(ds, "DownBlock2D")) {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: down block type '%s' is not supported", path, ds ? ds : "?");
		}
		if (us && !strcmp(us, "CrossAttnUpBlock2D"))
			k->up_attn[i] = 1;
		else if (!us || strcmp(us, "UpBlock2D")) {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: up block type '%s' is not supported", path, us ? us : "?");
		}
	}
	const char *mid = jstr(&j, "mid_block_type");
	if (!j.failed && mid && strcmp(mid, "UNetMidBlock2DCrossAttn")) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: mid block type '%s' is not supported", path, mid);
	}
	if (!j.failed && (jbool(&j, "dual_cross_attention", 0) || jbool(&j, "only_cross_attention", 0))) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: dual/only cross-attention UNets are not supported", path);
	}
	rc = jdone(&j);
	return rc ? rc : unet_check_cfg(k, path, err);
}

/* ---- single file: configs from shapes --------------------------------------------------- */

static int shape_of(const struct lvd_st *st, const char *name, int dim)
{
	const struct lvd_tensor_view *tv = find(st, name);
	if (!tv || dim >= tv->ndim)
		return -1;
	return (int)tv->shape[dim];
}

static int ldm_clip_cfg(struct lvd_sd_clip_cfg *k, const struct lvd_st *st, const char *pfx,
			const struct lvd_sd_opts *o, struct lvd_error *err)
{
	char n[256], full[128];
	snprintf(full, sizeof full, "%s%s", pfx, clip_has_text_model(st, pfx) ? "text_model." : "");
	pfx = full;
	snprintf(n, sizeof n, "%sembeddings.token_embedding.weight", pfx);
	k->vocab = shape_of(st, n, 0);
	k->width = shape_of(st, n, 1);
	snprintf(n, sizeof n, "%sembeddings.position_embedding.weight", pfx);
	k->n_pos = shape_of(st, n, 0);
	k->layers = 0;
	while (findf(st, "%sencoder.layers.%d.layer_norm1.weight", pfx, k->layers))
		k->layers++;
	snprintf(n, sizeof n, "%sencoder.layers.0.mlp.fc1.weight", pfx);
	k->ffn = shape_of(st, n, 0);
	k->heads = o->clip_heads > 0 ? o->clip_heads : (k->width > 0 ? k->width / 64 : 0);
	k->act = LVD_SD_ACT_QUICK_GELU;
	k->eps = 1e-5f;
	if (k->vocab <= 0 || k->width <= 0 || k->n_pos <= 0 || k->layers == 0 || k->ffn <= 0)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: missing or malformed text encoder tensors under '%s'",
				     lvd_st_path(st), pfx);
	return clip_check_cfg(k, lvd_st_path(st), err);
}

static int ldm_vae_cfg(struct lvd_sd_vae_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
		       struct lvd_error *err)
{
	const char *P = "first_stage_model.";
	char n[256];
	snprintf(n, sizeof n, "%sencoder.conv_in.weight", P);
	k->in_ch = shape_of(st, n, 1);
	k->levels = 0;
	while (k->levels < LVD_SD_MAX_LEVELS && findf(st, "%sencoder.down.%d.block.0.conv1.weight", P, k->levels)) {
		snprintf(n, sizeof n, "%sencoder.down.%d.block.0.conv1.weight", P, k->levels);
		k->ch[k->levels] = shape_of(st, n, 0);
		k->levels++;
	}
	k->layers_per_block = 0;
	while (k->layers_per_block < LVD_SD_MAX_RES &&
	       findf(st, "%sencoder.down.0.block.%d.conv1.weight", P, k->layers_per_block))
		k->layers_per_block++;
	snprintf(n, sizeof n, "%squant_conv.weight", P);
	int q = shape_of(st, n, 0);
	k->latent_ch = q > 0 ? q / 2 : -1;
	k->groups = o->norm_groups > 0 ? o->norm_groups : 32;
	k->eps = 1e-6f;
	k->scaling = 0.18215f;
	if (k->in_ch <= 0 || k->levels == 0 || k->latent_ch <= 0)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: missing or malformed VAE encoder tensors under '%s'",
				     lvd_st_path(st), P);
	return vae_check_cfg(k, lvd_st_path(st), err);
}

static int ldm_unet_cfg(struct lvd_sd_unet_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
			struct lvd_error *err)
{
	const char *P = "model.diffusion_model.";
	const char *path = lvd_st_path(st);
	char n[256];
	memset(k, 0, sizeof *k);
	if (findf(st, "%slabel_emb.0.0.weight", P))
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: '%slabel_emb.0.0.weight' present: SDXL-style UNets are not supported",
				     path, P);
	snprintf(n, sizeof n, "%sinput_blocks.0.0.weight", P);
	k->ch[0] = shape_of(st, n, 0);
	k->in_ch = shape_of(st, n, 1);
	snprintf(n, sizeof n, "%sout.2.weight", P);
	k->out_ch = shape_of(st, n, 0);
	snprintf(n, sizeof n, "%stime_embed.0.weight", P);
	k->temb_dim = shape_of(st, n, 0);
	if (k->ch[0] <= 0 || k->in_ch <= 0 || k->out_ch <= 0 || k->temb_dim <= 0)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: missing tensor '%sinput_blocks.0.0.weight', "
				     "'%sout.2.weight' or '%stime_embed.0.weight'", path, P, P, P);
	int nb = 1;
	while (nb < 64 && (findf(st, "%sinput_blocks.%d.0.in_layers.0.weight", P, nb) ||
			   findf(st, "%sinput_blocks.%d.0.op.weight", P, nb)))
		nb++;
	int L = 0;
	while (L + 1 < nb && !findf(st, "%sinput_blocks.%d.0.op.weight", P, L + 1))
		L++;
	k->layers_per_block = L;
	if (L < 1 || nb % (L + 1) != 0 || nb / (L + 1) > LVD_SD_MAX_LEVELS || L + 1 > LVD_SD_MAX_RES)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: cannot infer the UNet layout from %d input blocks",
				     path, nb);
	k->levels = nb / (L + 1);
	k->tblocks = 0;
	k->ctx_dim = 0;
	for (int i = 0; i < k->levels; i++) {
		int ib = i * (L + 1) + 1;
		snprintf(n, sizeof n, "%sinput_blocks.%d.0.out_layers.3.weight", P, ib);
		k->ch[i] = shape_of(st, n, 0);
		k->down_attn[i] = findf(st, "%sinput_blocks.%d.1.proj_in.weight", P, ib) != NULL;
		k->up_attn[i] = findf(st, "%soutput_blocks.%d.1.proj_in.weight", P, i * (L + 1)) != NULL;
		if (k->down_attn[i] && !k->ctx_dim) {
			snprintf(n, sizeof n, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", P, ib);
			k->ctx_dim = shape_of(st, n, 1);
			const struct lvd_tensor_view *pin = findf(st, "%sinput_blocks.%d.1.proj_in.weight", P, ib);
			k->linear_proj = pin && pin->ndim == 2;
			while (k->tblocks < LVD_SD_MAX_TBLOCKS &&
			       findf(st, "%sinput_blocks.%d.1.transformer_blocks.%d.norm1.weight", P, ib, k->tblocks))
				k->tblocks++;
		}
	}
	if (!k->ctx_dim) {
		snprintf(n, sizeof n, "%smiddle_block.1.transformer_blocks.0.attn2.to_k.weight", P);
		k->ctx_dim = shape_of(st, n, 1);
		k->tblocks = 1;
	}
	for (int i = 0; i < k->levels; i++) {
		if (o->unet_heads > 0)
			k->heads[i] = o->unet_heads;
		else if (k->ctx_dim == 1024)
			k->heads[i] = k->ch[i] / 64;   /* SD 2.x: head dim 64 */
		else
			k->heads[i] = 8;              /* SD 1.x: 8 heads */
	}
	k->groups = o->norm_groups > 0 ? o->norm_groups : 32;
	k->eps = 1e-5f;
	k->flip_sin_to_cos = 1;
	k->freq_shift = 0;
	return unet_check_cfg(k, path, err);
}

/* ---- top level ------------------------------------------------------------------------- */

static int is_dir(const char *p)
{
	struct stat s;
	return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int file_exists(const char *p)
{
	struct stat s;
	return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

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
	if (!file_exists(f) && !file_exists(fi) && file_exists(v))
		return lvd_st_open(st, v, err);
	if (!file_exists(f) && !file_exists(fi))
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
		if ((rc = clip_cfg_json(&sd->clip.cfg, p, err)))
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
		if ((rc = vae_cfg_json(&sd->vae.cfg, p, err)))
			goto out;
		if ((rc = open_component(&sd->st[1], dir, "vae", "diffusion_pytorch_model", err)))
			goto out;
		b.st = sd->st[1];
		vae_bind(&b, &sd->vae, 0, "");
		sd->has_vae = 1;
	}
	if (comps & LVD_SD_UNET) {
		snprintf(p, sizeof p, "%s/unet/config.json", dir);
		if ((rc = unet_cfg_json(&sd->unet.cfg, p, err)))
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
				     "%s: this is an SDXL checkpoint (conditioner.embedders / label_emb); only SD 1.x is supported", path);
	struct binder b = {.err = err, .st = st};
	if (comps & LVD_SD_TEXT) {
		if (find(st, "cond_stage_model.model.token_embedding.weight"))
			return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
					     "%s: OpenCLIP text encoder ('cond_stage_model.model.token_embedding.weight', SD 2.x) is not supported yet",
					     path);
		const char *pfx = "cond_stage_model.transformer.";
		if ((rc = ldm_clip_cfg(&sd->clip.cfg, st, pfx, o, err)))
			goto out;
		if ((rc = clip_bind(&b, &sd->clip, pfx)))
			goto out;
		sd->has_text = 1;
	}
	if (comps & LVD_SD_VAE) {
		if ((rc = ldm_vae_cfg(&sd->vae.cfg, st, o, err)))
			goto out;
		vae_bind(&b, &sd->vae, 1, "first_stage_model.");
		sd->has_vae = 1;
	}
	if (comps & LVD_SD_UNET) {
		if ((rc = ldm_unet_cfg(&sd->unet.cfg, st, o, err)))
			goto out;
		unet_bind(&b, &sd->unet, 1, "model.diffusion_model.");
		sd->has_unet = 1;
	}
	rc = binder_finish(&b, sd);
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
		if (!(rc = clip_cfg_json(&sd->clip.cfg, p, err)))
			rc = clip_bind(&b, &sd->clip, "text_model.");
	}
	if (!rc && (comps & LVD_SD_VAE)) {
		snprintf(p, sizeof p, "%s/vae/config.json", dir);
		if (!(rc = vae_cfg_json(&sd->vae.cfg, p, err)))
			vae_bind(&b, &sd->vae, 0, "");
	}
	if (!rc && (comps & LVD_SD_UNET)) {
		snprintf(p, sizeof p, "%s/unet/config.json", dir);
		if (!(rc = unet_cfg_json(&sd->unet.cfg, p, err)))
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
	if (is_dir(path))
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
