/* lib/models/sd/sd_config.c — SD component configs: read from a diffusers folder's
 * config.json files (through io/json.h) or inferred from the tensor shapes of an ldm
 * single file, and checked for what this implementation supports (see sd_config.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/sd/sd_config.h"

static const struct lvd_tensor_view *findf(const struct lvd_st *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const struct lvd_tensor_view *findf(const struct lvd_st *st, const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	return lvd_st_find(st, name);
}

/* ---- JSON config helpers --------------------------------------------------------------- */

/* Sticky-failure adapters over io/json.h: after the first error every getter returns its
 * default and jdone reports the error. */
struct jcfg {
	struct lvd_json doc;
	struct lvd_error *err;
	int failed;
};

static int jopen(struct jcfg *j, const char *path, struct lvd_error *err)
{
	j->err = err;
	j->failed = 0;
	/* an unopenable file as "cannot open PATH: reason" (jansson gives it line -1) */
	FILE *f = fopen(path, "rb");
	if (!f)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open %s", path);
	fclose(f);
	return lvd_json_load(&j->doc, path, err);
}

static int jint(struct jcfg *j, const char *key, int def, int required, int lo, int hi)
{
	int v = def;
	if (!j->failed && (required ? lvd_json_get_i32(&j->doc, key, lo, hi, &v, j->err)
				    : lvd_json_get_i32_or(&j->doc, key, def, lo, hi, &v, j->err)))
		j->failed = 1;
	return j->failed ? def : v;
}

static double jnum(struct jcfg *j, const char *key, double def)
{
	double v = def;
	if (!j->failed && lvd_json_get_double_or(&j->doc, key, def, &v, j->err))
		j->failed = 1;
	return j->failed ? def : v;
}

static int jbool(struct jcfg *j, const char *key, int def)
{
	int v = def;
	if (!j->failed && lvd_json_get_bool_or(&j->doc, key, def, &v, j->err))
		j->failed = 1;
	return j->failed ? def : v;
}

static const char *jstr(struct jcfg *j, const char *key)
{
	const char *v = NULL;
	if (!j->failed && lvd_json_get_string_or(&j->doc, key, NULL, &v, j->err))
		j->failed = 1;
	return j->failed ? NULL : v;
}

/* Config values this implementation does not implement are refused by name, never
 * silently ignored: each key, when present (and not null), must equal its SD value. */
struct jwant {
	const char *key;
	const char *str;     /* string value wanted, or NULL: a number */
	double num;          /* number wanted (booleans: 0/1) */
	int is_bool;
};

static void jrequire(struct jcfg *j, const struct jwant *w, const char *what)
{
	for (; w->key && !j->failed; w++) {
		if (!lvd_json_has(&j->doc, w->key))
			continue;
		if (w->str) {
			const char *v = jstr(j, w->key);
			if (!j->failed && strcmp(v, w->str)) {
				j->failed = 1;
				lvd_error_set(j->err, LVD_ERR_UNSUPPORTED, "%s: %s '%s' = \"%s\" is not supported (only \"%s\")",
					      j->doc.file, what, w->key, v, w->str);
			}
		} else if (w->is_bool) {
			int v = jbool(j, w->key, (int)w->num);
			if (!j->failed && v != (int)w->num) {
				j->failed = 1;
				lvd_error_set(j->err, LVD_ERR_UNSUPPORTED, "%s: %s '%s' = %s is not supported (only %s)",
					      j->doc.file, what, w->key, v ? "true" : "false", w->num ? "true" : "false");
			}
		} else {
			double v = jnum(j, w->key, w->num);
			if (!j->failed && v != w->num) {
				j->failed = 1;
				lvd_error_set(j->err, LVD_ERR_UNSUPPORTED, "%s: %s '%s' = %g is not supported (only %g)",
					      j->doc.file, what, w->key, v, w->num);
			}
		}
	}
}

/* Keys that must be absent or null. */
static void jabsent(struct jcfg *j, const char *const *keys, const char *what)
{
	for (; *keys && !j->failed; keys++)
		if (lvd_json_has(&j->doc, *keys)) {
			j->failed = 1;
			lvd_error_set(j->err, LVD_ERR_UNSUPPORTED, "%s: %s '%s' is set: not supported", j->doc.file, what,
				      *keys);
		}
}

/* An int or a list of ints (each in [1, 65536]) into out[n]; an int is repeated n_expect
 * times. Returns the number read or -1 (absent and not required, or failed). */
static int jints(struct jcfg *j, const char *key, int *out, int n_expect, int required)
{
	if (j->failed || (!required && !lvd_json_has(&j->doc, key)))
		return -1;
	json_t *v = lvd_json_find(&j->doc, key);
	if (json_is_integer(v) && n_expect > 0) {
		int x;
		if (lvd_json_get_i32(&j->doc, key, 1, 65536, &x, j->err)) {
			j->failed = 1;
			return -1;
		}
		for (int i = 0; i < n_expect; i++)
			out[i] = x;
		return n_expect;
	}
	size_t n = 0;
	if (lvd_json_get_i32_array(&j->doc, key, 1, 65536, out, LVD_SD_MAX_LEVELS, &n, j->err)) {
		j->failed = 1;
		return -1;
	}
	if (n == 0 || (n_expect > 0 && (int)n != n_expect)) {
		j->failed = 1;
		lvd_error_set(j->err, LVD_ERR_INVALID, "%s: key '%s' must be a positive integer or a list of %d",
			      j->doc.file, key, n_expect > 0 ? n_expect : LVD_SD_MAX_LEVELS);
		return -1;
	}
	return (int)n;
}

static int jdone(struct jcfg *j)
{
	lvd_json_release(&j->doc);
	return j->failed ? (j->err->code ? j->err->code : LVD_ERR_INVALID) : 0;
}

int sd_clip_has_text_model(const struct lvd_st *st, const char *pfx)
{
	return findf(st, "%stext_model.embeddings.token_embedding.weight", pfx) != NULL;
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

int sd_clip_cfg_json(struct lvd_sd_clip_cfg *k, const char *path, struct lvd_error *err)
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
	/* the latent is [latent_ch, H/8, W/8] by contract (sd.h; callers size it so) */
	if (k->levels != 4)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "%s: the VAE downsamples by %d (%d down blocks); only Stable Diffusion's factor 8 "
				     "(4 down blocks, latent H/8 x W/8) is supported",
				     where, 1 << (k->levels - 1), k->levels);
	return 0;
}

int sd_vae_cfg_json(struct lvd_sd_vae_cfg *k, const char *path, struct lvd_error *err)
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
	if (!j.failed && lvd_json_has(&j.doc, "shift_factor")) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: shift_factor (SD3/Flux VAE) is not supported", path);
	}
	static const struct jwant want[] = {
		{"act_fn", "silu", 0, 0},
		{"use_quant_conv", NULL, 1, 1},
		{NULL, NULL, 0, 0},
	};
	jrequire(&j, want, "VAE");
	static const char *const absent[] = {"latents_mean", "latents_std", NULL};
	jabsent(&j, absent, "VAE");
	const char *db[LVD_SD_MAX_LEVELS];
	size_t ndb = 0;
	if (!j.failed && lvd_json_has(&j.doc, "down_block_types")) {
		if (lvd_json_get_string_array(&j.doc, "down_block_types", db, LVD_SD_MAX_LEVELS, &ndb, err))
			j.failed = 1;
		for (size_t i = 0; i < ndb && !j.failed; i++)
			if (!db[i] || strcmp(db[i], "DownEncoderBlock2D")) {
				j.failed = 1;
				lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: VAE down block type '%s' is not supported", path,
					      db[i] ? db[i] : "?");
			}
		if (!j.failed && (int)ndb != k->levels) {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_INVALID, "%s: down_block_types lists %zu blocks, block_out_channels %d",
				      path, ndb, k->levels);
		}
	}
	rc = jdone(&j);
	return rc ? rc : vae_check_cfg(k, path, err);
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

int sd_unet_cfg_json(struct lvd_sd_unet_cfg *k, const char *path, struct lvd_error *err)
{
	struct jcfg j;
	int rc = jopen(&j, path, err);
	if (rc)
		return rc;
	static const char *const unsupported[] = {
		"addition_embed_type", "class_embed_type", "encoder_hid_dim_type", "num_class_embeds",
		"projection_class_embeddings_input_dim", "time_cond_proj_dim", NULL};
	for (int i = 0; unsupported[i] && !j.failed; i++) {
		if (lvd_json_has(&j.doc, unsupported[i])) {
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
	k->upcast_attention = jbool(&j, "upcast_attention", 0);
	int n = k->levels > 0 ? k->levels : 1;
	k->temb_dim = jint(&j, "time_embedding_dim", 4 * k->ch[0], 0, 1, 1 << 20);
	/* diffusers' misnomer: attention_head_dim holds the HEAD COUNT (an int, or one per
	 * level: SD 2.x [5, 10, 20, 20] at 320/640/1280/1280 channels = head dim 64);
	 * UNet2DConditionModel uses it as num_attention_heads when that key is null. */
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
	const char *db[LVD_SD_MAX_LEVELS], *ub[LVD_SD_MAX_LEVELS];
	size_t ndb = 0, nub = 0;
	if (!j.failed && (lvd_json_get_string_array(&j.doc, "down_block_types", db, LVD_SD_MAX_LEVELS, &ndb, err) ||
			  lvd_json_get_string_array(&j.doc, "up_block_types", ub, LVD_SD_MAX_LEVELS, &nub, err)))
		j.failed = 1;
	if (!j.failed && ((int)ndb != n || (int)nub != n)) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_INVALID, "%s: down_block_types/up_block_types must list %d blocks", path, n);
	}
	for (int i = 0; i < n && !j.failed; i++) {
		const char *ds = db[i], *us = ub[i];
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
	/* what the forward hard-codes (unet.c, sd_blocks.c) */
	static const struct jwant want[] = {
		{"act_fn", "silu", 0, 0},
		{"time_embedding_type", "positional", 0, 0},
		{"resnet_time_scale_shift", "default", 0, 0},
		{"attention_type", "default", 0, 0},
		{"conv_in_kernel", NULL, 3, 0},
		{"conv_out_kernel", NULL, 3, 0},
		{"downsample_padding", NULL, 1, 0},
		{"mid_block_scale_factor", NULL, 1, 0},
		{"resnet_out_scale_factor", NULL, 1, 0},
		{"center_input_sample", NULL, 0, 1},
		{"resnet_skip_time_act", NULL, 0, 1},
		{"class_embeddings_concat", NULL, 0, 1},
		{NULL, NULL, 0, 0},
	};
	jrequire(&j, want, "UNet");
	static const char *const absent[] = {"time_embedding_act_fn", "timestep_post_act", "cross_attention_norm",
					     "encoder_hid_dim", "reverse_transformer_layers_per_block", NULL};
	jabsent(&j, absent, "UNet");
	rc = jdone(&j);
	return rc ? rc : unet_check_cfg(k, path, err);
}

int sd_sched_cfg_json(const char *path, int *T, double *beta_start, double *beta_end, int *pred,
		      struct lvd_error *err)
{
	struct jcfg j;
	int rc = jopen(&j, path, err);
	if (rc)
		return rc;
	*T = jint(&j, "num_train_timesteps", 1000, 0, 1000, 1000);   /* what callers index */
	*beta_start = jnum(&j, "beta_start", 0.00085);
	*beta_end = jnum(&j, "beta_end", 0.012);
	if (!j.failed && (*beta_start <= 0 || *beta_end <= 0 || *beta_end >= 1 || *beta_start >= 1)) {
		j.failed = 1;
		lvd_error_set(err, LVD_ERR_INVALID, "%s: beta_start %g / beta_end %g outside (0, 1)", path, *beta_start,
			      *beta_end);
	}
	static const struct jwant want[] = {
		{"beta_schedule", "scaled_linear", 0, 0},
		{"rescale_betas_zero_snr", NULL, 0, 1},
		{NULL, NULL, 0, 0},
	};
	jrequire(&j, want, "scheduler");
	static const char *const absent[] = {"trained_betas", NULL};
	jabsent(&j, absent, "scheduler");
	const char *pt = jstr(&j, "prediction_type");
	*pred = LVD_SD_PRED_EPSILON;
	if (!j.failed && pt) {
		if (!strcmp(pt, "v_prediction"))
			*pred = LVD_SD_PRED_V;
		else if (!strcmp(pt, "sample"))
			*pred = LVD_SD_PRED_SAMPLE;
		else if (strcmp(pt, "epsilon")) {
			j.failed = 1;
			lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: scheduler prediction_type '%s' is not supported "
				      "(epsilon, v_prediction, sample)", path, pt);
		}
	}
	return jdone(&j);
}

/* ---- single file: configs from shapes --------------------------------------------------- */

static int shape_of(const struct lvd_st *st, const char *name, int dim)
{
	const struct lvd_tensor_view *tv = lvd_st_find(st, name);
	if (!tv || dim >= tv->ndim)
		return -1;
	return (int)tv->shape[dim];
}

int sd_ldm_clip_cfg(struct lvd_sd_clip_cfg *k, const struct lvd_st *st, const char *pfx,
			const struct lvd_sd_opts *o, struct lvd_error *err)
{
	char n[256], full[128];
	snprintf(full, sizeof full, "%s%s", pfx, sd_clip_has_text_model(st, pfx) ? "text_model." : "");
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

int sd_ldm_openclip_cfg(struct lvd_sd_clip_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
			struct lvd_error *err)
{
	const char *P = "cond_stage_model.model.";
	char n[256];
	snprintf(n, sizeof n, "%stoken_embedding.weight", P);
	k->vocab = shape_of(st, n, 0);
	k->width = shape_of(st, n, 1);
	snprintf(n, sizeof n, "%spositional_embedding", P);
	k->n_pos = shape_of(st, n, 0);
	int blocks = 0;
	while (blocks < 1024 && findf(st, "%stransformer.resblocks.%d.ln_1.weight", P, blocks))
		blocks++;
	snprintf(n, sizeof n, "%stransformer.resblocks.0.mlp.c_fc.weight", P);
	k->ffn = shape_of(st, n, 0);
	/* SD 2.x (FrozenOpenCLIPEmbedder, layer "penultimate"): the last resblock is skipped,
	 * ln_final is applied to the one before */
	k->layers = blocks - 1;
	k->heads = o->clip_heads > 0 ? o->clip_heads : (k->width > 0 ? k->width / 64 : 0);
	k->act = LVD_SD_ACT_GELU;
	k->eps = 1e-5f;
	if (k->vocab <= 0 || k->width <= 0 || k->n_pos <= 0 || k->ffn <= 0)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: missing or malformed OpenCLIP text tensors under '%s'",
				     lvd_st_path(st), P);
	if (blocks < 2)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "%s: OpenCLIP text tower has %d resblock(s); SD 2.x uses the penultimate, so it needs 2 or more",
				     lvd_st_path(st), blocks);
	return clip_check_cfg(k, lvd_st_path(st), err);
}

int sd_ldm_vae_cfg(struct lvd_sd_vae_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
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

int sd_ldm_unet_cfg(struct lvd_sd_unet_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
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
		const struct lvd_tensor_view *pin = findf(st, "%smiddle_block.1.proj_in.weight", P);
		k->linear_proj = pin && pin->ndim == 2;
	}
	/* Heads are not in the shapes. SD 1.x (conv proj_in, context 768): 8 heads per
	 * level (ldm num_heads = 8). SD 2.x (linear proj_in, context 1024): ldm
	 * num_head_channels = 64, so heads = channels / 64 per level (5, 10, 20, 20). */
	int hd = o->unet_head_dim > 0 ? o->unet_head_dim : (k->linear_proj || k->ctx_dim == 1024) ? 64 : 0;
	for (int i = 0; i < k->levels; i++) {
		if (o->unet_heads > 0) {
			k->heads[i] = o->unet_heads;
		} else if (hd) {
			if (k->ch[i] <= 0 || k->ch[i] % hd)
				return lvd_error_set(err, LVD_ERR_INVALID,
						     "%s: UNet level %d has %d channels, not a multiple of the head dim %d "
						     "(SD 2.x rule num_head_channels = 64; set the head dim or count explicitly)",
						     path, i, k->ch[i], hd);
			k->heads[i] = k->ch[i] / hd;
		} else {
			k->heads[i] = 8;
		}
	}
	k->groups = o->norm_groups > 0 ? o->norm_groups : 32;
	k->eps = 1e-5f;
	k->flip_sin_to_cos = 1;
	k->freq_shift = 0;
	return unet_check_cfg(k, path, err);
}
