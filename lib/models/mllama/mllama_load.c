/* lib/models/mllama/mllama_load.c — mllama config.json, parameter layout, weight
 * loading from HF safetensors (both key schemes), gradients and LoRA set-up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/llama_rope.h"
#include "models/peft.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ctx.h"
#include "nn/ops/lora.h"

/* ---- config ---------------------------------------------------------------------- */

/* a list of integers in [0, hi) or the default list */
static int get_list(const struct lvd_json *o, const char *key, const int *def, int ndef, int *out, int *n, int hi,
		    struct lvd_error *err)
{
	if (!lvd_json_has(o, key)) {
		memcpy(out, def, sizeof(int) * ndef);
		*n = ndef;
		return 0;
	}
	size_t k = 0;
	int rc = lvd_json_get_i32_array(o, key, 0, hi - 1, out, LVD_MLLAMA_MAX_LIST, &k, err);
	*n = (int)k;
	return rc;
}

/* vision_config.supported_aspect_ratios when present ([[tiles_high, tiles_wide], ...], each
 * product <= max_num_tiles), else the list computed from max_num_tiles */
static int get_aspects(const struct lvd_json *v, struct lvd_mllama_config *c, struct lvd_error *err)
{
	if (!lvd_json_has(v, "supported_aspect_ratios")) {
		c->n_aspect = lvd_mllama_aspect_ratios(c->v_max_tiles, c->aspect);
		return 0;
	}
	json_t *arr;
	int rc = lvd_json_get_array(v, "supported_aspect_ratios", &arr, err);
	if (rc)
		return rc;
	size_t n = json_array_size(arr);
	if (n < 1 || n > LVD_MLLAMA_MAX_LIST)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: key '%s.supported_aspect_ratios': %zu pairs, 1 to %d "
				     "expected", v->file, v->where, n, LVD_MLLAMA_MAX_LIST);
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(arr, i), *a = json_array_get(e, 0), *b = json_array_get(e, 1);
		if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_integer(a) || !json_is_integer(b) ||
		    json_integer_value(a) < 1 || json_integer_value(b) < 1 ||
		    json_integer_value(a) * json_integer_value(b) > c->v_max_tiles)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: key '%s.supported_aspect_ratios': element %zu: "
					     "expected [tiles_high, tiles_wide], positive integers with a product <= "
					     "max_num_tiles (%d)", v->file, v->where, i, c->v_max_tiles);
		c->aspect[i][0] = (int)json_integer_value(a);
		c->aspect[i][1] = (int)json_integer_value(b);
	}
	c->n_aspect = (int)n;
	return 0;
}

int lvd_mllama_config_load(struct lvd_mllama_config *c, const char *path, struct lvd_error *err)
{
	struct lvd_json doc = { 0 }, v = { 0 }, t = { 0 };
	memset(c, 0, sizeof *c);
	int rc = lvd_json_load(&doc, path, err);
	if (rc)
		return rc;
	if (!lvd_json_has(&doc, "vision_config") || !lvd_json_has(&doc, "text_config")) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: vision_config and text_config objects are required", path);
		goto out;
	}
	const char *mt;
	if ((rc = lvd_json_object(&doc, "vision_config", &v, err)) || (rc = lvd_json_object(&doc, "text_config", &t, err)) ||
	    (rc = lvd_json_get_string_or(&doc, "model_type", "mllama", &mt, err)))
		goto out;
	if (strcmp(mt, "mllama") != 0) {
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: model_type: expected \"mllama\"", path);
		goto out;
	}
	static const int def_inter[] = { 3, 7, 15, 23, 30 };
	static const int def_cross[] = { 3, 8, 13, 18, 23, 28, 33, 38 };
	const int BIG = 1 << 24;
	double eps;
	if ((rc = lvd_json_get_i32_or(&v, "hidden_size", 1280, 1, 65536, &c->v_hidden, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "attention_heads", 16, 1, 1024, &c->v_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "intermediate_size", 5120, 1, BIG, &c->v_inter, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_hidden_layers", 32, 1, 1024, &c->v_layers, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_global_layers", 8, 0, 1024, &c->v_global_layers, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "image_size", 448, 1, 16384, &c->v_image_size, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "patch_size", 14, 1, 1024, &c->v_patch, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "max_num_tiles", 4, 1, 16, &c->v_max_tiles, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_channels", 3, 3, 3, &c->v_channels, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "vision_output_dim", 7680, 1, BIG, &c->v_out_dim, err)) ||
	    (rc = get_list(&v, "intermediate_layers_indices", def_inter, 5, c->v_inter_idx, &c->v_n_inter, c->v_layers,
			   err)) ||
	    (rc = lvd_json_get_positive_or(&v, "norm_eps", 1e-5, &eps, err)))
		goto out;
	c->v_eps = (float)eps;
	if (c->v_hidden % c->v_heads || c->v_image_size % c->v_patch ||
	    c->v_out_dim != c->v_hidden * (1 + c->v_n_inter)) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: vision_config: inconsistent sizes (hidden_size %% "
				   "attention_heads, image_size %% patch_size, vision_output_dim = hidden_size * (1 + "
				   "#intermediate layers))", path);
		goto out;
	}
	if ((rc = get_aspects(&v, c, err)))
		goto out;
	if ((rc = lvd_json_get_i32_or(&t, "vocab_size", 128256, 1, BIG, &c->vocab, err)) ||
	    (rc = lvd_json_get_i32_or(&t, "hidden_size", 4096, 1, 65536, &c->t_hidden, err)) ||
	    (rc = lvd_json_get_i32_or(&t, "num_attention_heads", 32, 1, 1024, &c->t_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&t, "num_key_value_heads", 8, 1, 1024, &c->t_kv_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&t, "intermediate_size", 14336, 1, BIG, &c->t_inter, err)) ||
	    (rc = lvd_json_get_i32_or(&t, "num_hidden_layers", 40, 1, 1024, &c->t_layers, err)) ||
	    (rc = get_list(&t, "cross_attention_layers", def_cross, 8, c->cross_layers, &c->n_cross, c->t_layers, err)) ||
	    (rc = lvd_json_get_positive_or(&t, "rms_norm_eps", 1e-5, &eps, err)))
		goto out;
	c->t_eps = (float)eps;
	if (c->t_hidden % c->t_heads || c->t_heads % c->t_kv_heads) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: text_config: hidden_size %% num_attention_heads and "
				   "num_attention_heads %% num_key_value_heads must be 0", path);
		goto out;
	}
	c->t_head_dim = c->t_hidden / c->t_heads;
	c->n_embed = c->vocab + 8;
	/* rope: rope_parameters (transformers 5) or rope_theta + rope_scaling (4.x) */
	struct lvd_llama_rope rope;
	if ((rc = lvd_llama_rope_load(&rope, &t, path, "text_config", err)))
		goto out;
	c->rope_theta = rope.theta, c->rope_llama3 = rope.llama3, c->rope_factor = rope.factor;
	c->rope_low = rope.low, c->rope_high = rope.high, c->rope_orig_max = rope.orig_max;
	if ((rc = lvd_json_get_i32_or(&doc, "image_token_index", 128256, 0, c->n_embed - 1, &c->image_token_index,
				      err)) ||
	    (rc = lvd_json_get_i32_or(&t, "pad_token_id", -1, -1, c->n_embed - 1, &c->pad_token_id, err)))
		goto out;
out:
	lvd_json_release(&t);
	lvd_json_release(&v);
	lvd_json_release(&doc);
	return rc;
}

/* ---- parameter layout --------------------------------------------------------------- */

struct carver {
	float *base;
	size_t off;
	struct lvd_mllama_param *tab;
	size_t n;
	int remap;   /* take pointers from tab[].data instead of carving */
};

static float *P(struct carver *cv, size_t ndim, const int64_t *shape, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static float *P(struct carver *cv, size_t ndim, const int64_t *shape, const char *fmt, ...)
{
	size_t numel = 1;
	for (size_t i = 0; i < ndim; i++)
		numel *= (size_t)shape[i];
	if (cv->remap)
		return cv->tab[cv->n++].data;
	float *p = mllama_take(cv->base, &cv->off, numel);
	if (cv->tab) {
		struct lvd_mllama_param *e = &cv->tab[cv->n];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->name, sizeof e->name, fmt, ap);
		va_end(ap);
		e->ndim = (int)ndim;
		for (size_t i = 0; i < ndim; i++)
			e->shape[i] = shape[i];
		e->numel = numel;
		e->data = p;
		e->dtype = LVD_F32;
	}
	cv->n++;
	return p;
}
#define S1(a) 1, (const int64_t[]){ (a) }
#define S2(a, b) 2, (const int64_t[]){ (a), (b) }
#define S4(a, b, c, d) 4, (const int64_t[]){ (a), (b), (c), (d) }

/* Walks every parameter in a fixed order: measures (cv->base NULL) or carves. */
static void layout(const struct lvd_mllama_config *c, struct carver *cv, struct mllama_w *w)
{
	int D = c->v_hidden, I = c->v_inter, TL = c->v_max_tiles, na = c->n_aspect + 1;
	int P1 = (c->v_image_size / c->v_patch) * (c->v_image_size / c->v_patch) + 1;
	const char *vp = "vision_model.";
	w->patch = P(cv, S4(D, c->v_channels, c->v_patch, c->v_patch), "%spatch_embedding.weight", vp);
	w->cls = P(cv, S1(D), "%sclass_embedding", vp);
	w->pos = P(cv, S2(P1, D), "%sgated_positional_embedding.embedding", vp);
	w->pos_gate = P(cv, S1(1), "%sgated_positional_embedding.gate", vp);
	w->tile_pos = P(cv, S2(na, (int64_t)TL * P1 * D), "%sgated_positional_embedding.tile_embedding.weight", vp);
	w->pre_tile = P(cv, S2(na, (int64_t)TL * D), "%spre_tile_positional_embedding.embedding.weight", vp);
	w->pre_gate = P(cv, S1(1), "%spre_tile_positional_embedding.gate", vp);
	w->post_tile = P(cv, S2(na, (int64_t)TL * D), "%spost_tile_positional_embedding.embedding.weight", vp);
	w->post_gate = P(cv, S1(1), "%spost_tile_positional_embedding.gate", vp);
	w->ln_pre_w = P(cv, S1(D), "%slayernorm_pre.weight", vp);
	w->ln_pre_b = P(cv, S1(D), "%slayernorm_pre.bias", vp);
	w->ln_post_w = P(cv, S1(D), "%slayernorm_post.weight", vp);
	w->ln_post_b = P(cv, S1(D), "%slayernorm_post.bias", vp);
	for (int l = 0; l < c->v_layers + c->v_global_layers; l++) {
		struct vlayer_w *L = &w->vl[l];
		int gl = l >= c->v_layers;
		char pre[96];
		snprintf(pre, sizeof pre, "%s%s.layers.%d.", vp, gl ? "global_transformer" : "transformer",
			 gl ? l - c->v_layers : l);
		L->q = P(cv, S2(D, D), "%sself_attn.q_proj.weight", pre);
		L->k = P(cv, S2(D, D), "%sself_attn.k_proj.weight", pre);
		L->v = P(cv, S2(D, D), "%sself_attn.v_proj.weight", pre);
		L->o = P(cv, S2(D, D), "%sself_attn.o_proj.weight", pre);
		L->fc1_w = P(cv, S2(I, D), "%smlp.fc1.weight", pre);
		L->fc1_b = P(cv, S1(I), "%smlp.fc1.bias", pre);
		L->fc2_w = P(cv, S2(D, I), "%smlp.fc2.weight", pre);
		L->fc2_b = P(cv, S1(D), "%smlp.fc2.bias", pre);
		L->ln1_w = P(cv, S1(D), "%sinput_layernorm.weight", pre);
		L->ln1_b = P(cv, S1(D), "%sinput_layernorm.bias", pre);
		L->ln2_w = P(cv, S1(D), "%spost_attention_layernorm.weight", pre);
		L->ln2_b = P(cv, S1(D), "%spost_attention_layernorm.bias", pre);
		L->gate_attn = gl ? P(cv, S1(1), "%sgate_attn", pre) : NULL;
		L->gate_ffn = gl ? P(cv, S1(1), "%sgate_ffn", pre) : NULL;
	}
	int Dt = c->t_hidden, Hd = c->t_head_dim, KV = c->t_kv_heads * Hd, It = c->t_inter;
	w->proj_w = P(cv, S2(Dt, c->v_out_dim), "multi_modal_projector.weight");
	w->proj_b = P(cv, S1(Dt), "multi_modal_projector.bias");
	w->embed = P(cv, S2(c->n_embed, Dt), "language_model.model.embed_tokens.weight");
	for (int l = 0; l < c->t_layers; l++) {
		struct tlayer_w *L = &w->tl[l];
		L->cross = 0;
		for (int k = 0; k < c->n_cross; k++)
			L->cross |= c->cross_layers[k] == l;
		char pre[96], at[128];
		snprintf(pre, sizeof pre, "language_model.model.layers.%d.", l);
		snprintf(at, sizeof at, "%s%s.", pre, L->cross ? "cross_attn" : "self_attn");
		L->q = P(cv, S2(Dt, Dt), "%sq_proj.weight", at);
		L->k = P(cv, S2(KV, Dt), "%sk_proj.weight", at);
		L->v = P(cv, S2(KV, Dt), "%sv_proj.weight", at);
		L->o = P(cv, S2(Dt, Dt), "%so_proj.weight", at);
		if (L->cross) {
			L->q_norm = P(cv, S1(Hd), "%sq_norm.weight", at);
			L->k_norm = P(cv, S1(Hd), "%sk_norm.weight", at);
			L->attn_gate = P(cv, S1(1), "%scross_attn_attn_gate", pre);
			L->mlp_gate = P(cv, S1(1), "%scross_attn_mlp_gate", pre);
		} else {
			L->q_norm = L->k_norm = L->attn_gate = L->mlp_gate = NULL;
		}
		L->gate = P(cv, S2(It, Dt), "%smlp.gate_proj.weight", pre);
		L->up = P(cv, S2(It, Dt), "%smlp.up_proj.weight", pre);
		L->down = P(cv, S2(Dt, It), "%smlp.down_proj.weight", pre);
		L->ln1 = P(cv, S1(Dt), "%sinput_layernorm.weight", pre);
		L->ln2 = P(cv, S1(Dt), "%spost_attention_layernorm.weight", pre);
	}
	w->norm = P(cv, S1(Dt), "language_model.model.norm.weight");
	w->lm_head = P(cv, S2(c->vocab, Dt), "language_model.lm_head.weight");
}

/* on-disk name under the newer scheme (transformers >= 4.52 save format) */
void mllama_hf_name(char *out, size_t n, const char *canon)
{
	if (strncmp(canon, "language_model.model.", 21) == 0)
		snprintf(out, n, "model.language_model.%s", canon + 21);
	else if (strncmp(canon, "language_model.lm_head.", 23) == 0)
		snprintf(out, n, "lm_head.%s", canon + 23);
	else
		snprintf(out, n, "model.%s", canon);
}

static void free_model(struct lvd_mllama *m)
{
	mllama_dev_free(m);   /* device blocks and activations go back to the borrowed ctx */
	mllama_acts_free(m);
	lvd_ctx_destroy(m->own_ctx);
	lvd_st_close(m->st);
	free(m->pblock);
	free(m->gblock);
	free(m->params);
	free(m->w.vl);
	free(m->w.tl);
	free(m->g.vl);
	free(m->g.tl);
	free(m->lora);
	free(m->lparams);
	free(m->lgrads);
	free(m->lopt);
	free(m->vsite);
	free(m->tsite);
	free(m->a.vl);
	free(m->a.tl);
	free(m);
}

void lvd_mllama_free(struct lvd_mllama *m)
{
	if (m)
		free_model(m);
}

const struct lvd_mllama_config *lvd_mllama_cfg(const struct lvd_mllama *m) { return &m->c; }
size_t lvd_mllama_nparams(const struct lvd_mllama *m) { return m->nparams; }
struct lvd_mllama_param *lvd_mllama_param_at(struct lvd_mllama *m, size_t i)
{
	return i < m->nparams ? &m->params[i] : NULL;
}
struct lvd_mllama_param *lvd_mllama_param_find(struct lvd_mllama *m, const char *name)
{
	for (size_t i = 0; i < m->nparams; i++)
		if (strcmp(m->params[i].name, name) == 0)
			return &m->params[i];
	return NULL;
}

static int load(struct lvd_mllama **out, const char *dir, int frozen, struct lvd_error *err)
{
	*out = NULL;
	char path[4096];
	struct lvd_mllama *m = calloc(1, sizeof *m);
	if (!m)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	snprintf(path, sizeof path, "%s/config.json", dir);
	int rc = lvd_mllama_config_load(&m->c, path, err);
	if (rc) {
		free_model(m);
		return rc;
	}
	const struct lvd_mllama_config *c = &m->c;
	int nvl = c->v_layers + c->v_global_layers;
	m->w.vl = calloc(nvl, sizeof *m->w.vl);
	m->w.tl = calloc(c->t_layers, sizeof *m->w.tl);
	m->g.vl = calloc(nvl, sizeof *m->g.vl);
	m->g.tl = calloc(c->t_layers, sizeof *m->g.tl);
	if (!m->w.vl || !m->w.tl || !m->g.vl || !m->g.tl) {
		free_model(m);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	}
	struct carver cv = { 0 };
	layout(c, &cv, &m->w);
	m->ptotal = cv.off;
	m->nparams = cv.n;
	m->params = calloc(m->nparams, sizeof *m->params);
	if (!m->params) {
		free_model(m);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	}
	/* names and shapes only */
	cv = (struct carver){ .tab = m->params };
	layout(c, &cv, &m->w);
	if (frozen == -2) {
		/* lvd_mllama_create_shape: the table without parameter memory */
		frozen = 1;
		goto ctx;
	}
	if (frozen < 0) {
		/* lvd_mllama_create: zeroed parameters, no weights file */
		m->pblock = lvd_alloc_aligned(m->ptotal ? m->ptotal : 1, sizeof(float));
		if (!m->pblock) {
			free_model(m);
			return lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot allocate %zu parameters", dir, m->ptotal);
		}
		memset(m->pblock, 0, m->ptotal * sizeof(float));
		size_t off = 0;
		for (size_t i = 0; i < m->nparams; i++)
			m->params[i].data = mllama_take(m->pblock, &off, m->params[i].numel);
		frozen = 0;
		goto ctx;
	}
	struct lvd_st *st;
	if ((rc = lvd_st_open(&st, dir, err))) {
		free_model(m);
		return rc;
	}
	int newscheme = !lvd_st_find(st, "language_model.model.embed_tokens.weight") &&
			lvd_st_find(st, "model.language_model.embed_tokens.weight");
	char (*names)[160] = calloc(m->nparams, sizeof *names);
	if (!names) {
		lvd_st_close(st);
		free_model(m);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	}
	/* frozen: map what can be mapped (shape-checked F32, 4-byte aligned); the rest is
	 * converted into pblock */
	size_t need = 0;
	for (size_t i = 0; i < m->nparams; i++) {
		struct lvd_mllama_param *p = &m->params[i];
		if (newscheme)
			mllama_hf_name(names[i], sizeof names[i], p->name);
		else
			snprintf(names[i], sizeof names[i], "%s", p->name);
		const struct lvd_tensor_view *t = frozen ? lvd_st_find(st, names[i]) : NULL;
		int ok = t && t->dtype == LVD_DT_F32 && t->ndim == p->ndim && ((uintptr_t)t->data & 3) == 0;
		for (int d = 0; ok && d < p->ndim; d++)
			ok = t->shape[d] == p->shape[d];
		p->data = ok ? (float *)(uintptr_t)t->data : NULL;
		if (!ok)
			mllama_take(NULL, &need, p->numel);
	}
	m->ptotal = need;
	m->pblock = lvd_alloc_aligned(need ? need : 1, sizeof(float));
	if (!m->pblock)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot allocate %zu parameters", dir, need);
	size_t off = 0;
	for (size_t i = 0; i < m->nparams && !rc; i++) {
		struct lvd_mllama_param *p = &m->params[i];
		if (p->data)
			continue;
		p->data = mllama_take(m->pblock, &off, p->numel);
		rc = lvd_st_load_f32(st, names[i], p->ndim, p->shape, p->data, p->numel, err);
		if (rc)
			lvd_error_prefix(err, "%s: ", dir);
	}
	free(names);
	if (frozen && !rc)
		m->st = st;
	else
		lvd_st_close(st);
	if (rc) {
		free_model(m);
		return rc;
	}
ctx:
	m->frozen = frozen;
	/* a model-owned one-thread CPU context until set_threads / set_ctx */
	if ((rc = lvd_ctx_create(&m->own_ctx, NULL, err))) {
		free_model(m);
		return rc;
	}
	m->ctx = m->own_ctx;
	cv = (struct carver){ .tab = m->params, .remap = 1 };
	layout(c, &cv, &m->w);
	*out = m;
	return 0;
}

int lvd_mllama_load(struct lvd_mllama **out, const char *dir, struct lvd_error *err)
{
	return load(out, dir, 0, err);
}

int lvd_mllama_load_frozen(struct lvd_mllama **out, const char *dir, struct lvd_error *err)
{
	return load(out, dir, 1, err);
}

int lvd_mllama_create(struct lvd_mllama **out, const char *dir, struct lvd_error *err)
{
	return load(out, dir, -1, err);
}

int lvd_mllama_create_shape(struct lvd_mllama **out, const char *dir, struct lvd_error *err)
{
	return load(out, dir, -2, err);
}

void lvd_mllama_set_ctx(struct lvd_mllama *m, struct lvd_ctx *ctx)
{
	LVD_ASSERTF(!m->dev, "mllama: set_ctx on a model moved to a device (lvd_mllama_to_device)");
	m->ctx = ctx ? ctx : m->own_ctx;
}

void mllama_rebind(struct lvd_mllama *m)
{
	struct carver cv = { .tab = m->params, .remap = 1 };
	layout(&m->c, &cv, &m->w);
	if (m->gblock) {
		cv = (struct carver){ .base = m->gblock };
		layout(&m->c, &cv, &m->g);
	}
}

void mllama_close_mapping(struct lvd_mllama *m)
{
	lvd_st_close(m->st);
	m->st = NULL;
}

struct lvd_ctx *lvd_mllama_ctx(const struct lvd_mllama *m) { return m->ctx; }

int lvd_mllama_set_threads(struct lvd_mllama *m, int n, struct lvd_error *err)
{
	if (n < 1 || n > 1024)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: threads: %d not in [1, 1024]", n);
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: set_threads on a model moved to a device");
	struct lvd_ctx *ctx;
	struct lvd_ctx_opts o = { .backend = LVD_BACKEND_CPU, .threads = n };
	int rc = lvd_ctx_create(&ctx, &o, err);
	if (rc)
		return rc;
	lvd_ctx_destroy(m->own_ctx);
	m->own_ctx = m->ctx = ctx;
	return 0;
}

int lvd_mllama_enable_grads(struct lvd_mllama *m, struct lvd_error *err)
{
	if (m->frozen)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: full gradients need lvd_mllama_load (weights are frozen)");
	if (m->dev && !m->gblock)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: enable_grads before lvd_mllama_to_device");
	if (!m->gblock) {
		m->gblock = lvd_alloc_aligned(m->ptotal, sizeof(float));
		if (!m->gblock)
			return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: cannot allocate %zu gradients", m->ptotal);
		struct carver cv = { .base = m->gblock };
		layout(&m->c, &cv, &m->g);
		cv = (struct carver){ .tab = m->params };
		for (size_t i = 0; i < m->nparams; i++) {
			m->params[i].grad = mllama_take(m->gblock, &cv.off, m->params[i].numel);
		}
	}
	lvd_mllama_zero_grads(m);
	return 0;
}

void lvd_mllama_zero_grads(struct lvd_mllama *m)
{
	if (m->gblock)
		lvd_buf_zero(m->ctx, m->gblock, m->ptotal * sizeof(float));
	if (m->lgrads)
		lvd_buf_zero(m->ctx, m->lgrads, m->lsize * sizeof(float));
}

float *lvd_mllama_param_block(struct lvd_mllama *m, size_t *n)
{
	*n = m->frozen ? 0 : m->ptotal;
	return m->frozen ? NULL : m->pblock;
}

float *lvd_mllama_grad_block(struct lvd_mllama *m, size_t *n)
{
	*n = m->frozen || !m->gblock ? 0 : m->ptotal;
	return m->frozen ? NULL : m->gblock;
}

void lvd_mllama_freeze(struct lvd_mllama *m, unsigned frozen) { m->frozen_groups = frozen & LVD_MLLAMA_ALL_GROUPS; }

unsigned lvd_mllama_param_group(const struct lvd_mllama_config *c, const char *name)
{
	if (!strncmp(name, "vision_model.", 13))
		return LVD_MLLAMA_VISION;
	if (!strncmp(name, "multi_modal_projector.", 22))
		return LVD_MLLAMA_PROJECTOR;
	int l;
	if (sscanf(name, "language_model.model.layers.%d.", &l) == 1)
		for (int k = 0; k < c->n_cross; k++)
			if (c->cross_layers[k] == l)
				return LVD_MLLAMA_CROSS;
	return LVD_MLLAMA_TEXT;
}

void lvd_mllama_set_eval(struct lvd_mllama *m, int eval)
{
	if (eval && !m->eval)
		m->lora_p_train = m->lora_p, m->lora_p = 0.0f;
	else if (!eval && m->eval)
		m->lora_p = m->lora_p_train;
	m->eval = eval != 0;
}

int mllama_train_base(const struct lvd_mllama *m) { return m->gblock != NULL && m->nlora == 0; }
size_t lvd_mllama_nlora(const struct lvd_mllama *m) { return m->nlora; }
struct lvd_mllama_lora *lvd_mllama_lora_at(struct lvd_mllama *m, size_t i) { return i < m->nlora ? &m->lora[i] : NULL; }
int lvd_mllama_lora_rank(const struct lvd_mllama *m) { return m->lora_r; }
float *lvd_mllama_lora_params(struct lvd_mllama *m, size_t *n)
{
	*n = m->lsize;
	return m->lparams;
}
float *lvd_mllama_lora_grads(struct lvd_mllama *m, size_t *n)
{
	*n = m->lsize;
	return m->lgrads;
}
float *lvd_mllama_lora_opt_state(struct lvd_mllama *m, size_t *n)
{
	*n = 2 * m->lsize;
	return m->lopt;
}

/* module names and shapes of each LoRA site: returns 0 when the site does not exist */
static int site_info(const struct lvd_mllama_config *c, int tower, int l, int s, char *name, size_t n,
		     int *in, int *out)
{
	if (tower == 0) {
		int gl = l >= c->v_layers, D = c->v_hidden, I = c->v_inter;
		static const char *nm[] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
					    "self_attn.o_proj", "mlp.fc1", "mlp.fc2", NULL };
		if (!nm[s])
			return 0;
		snprintf(name, n, "vision_model.%s.layers.%d.%s", gl ? "global_transformer" : "transformer",
			 gl ? l - c->v_layers : l, nm[s]);
		*in = s == L_M2 ? I : D;
		*out = s == L_M1 ? I : D;
		return 1;
	}
	int cross = 0, Dt = c->t_hidden, KV = c->t_kv_heads * c->t_head_dim, It = c->t_inter;
	for (int k = 0; k < c->n_cross; k++)
		cross |= c->cross_layers[k] == l;
	static const char *nm[] = { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };
	snprintf(name, n, "language_model.model.layers.%d.%s.%s", l,
		 s >= L_M1 ? "mlp" : cross ? "cross_attn" : "self_attn", nm[s]);
	*in = s == L_M3 ? It : Dt;
	*out = (s == L_K || s == L_V) ? KV : (s == L_M1 || s == L_M2) ? It : Dt;
	return 1;
}

int lvd_mllama_add_lora(struct lvd_mllama *m, const struct lvd_mllama_lora_cfg *lc, struct lvd_error *err)
{
	if (m->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: LoRA already added");
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: add LoRA before lvd_mllama_to_device");
	if (lc->r < 1 || !(lc->alpha > 0) || !(lc->dropout >= 0 && lc->dropout < 1) || !lc->targets)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: LoRA: r >= 1, alpha > 0, 0 <= dropout < 1 required");
	if (strlen(lc->targets) >= sizeof m->lora_targets)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: LoRA target list longer than %zu bytes",
				     sizeof m->lora_targets - 1);
	const struct lvd_mllama_config *c = &m->c;
	int nvl = c->v_layers + c->v_global_layers;
	m->vsite = calloc((size_t)nvl * L_NSITE, sizeof *m->vsite);
	m->tsite = calloc((size_t)c->t_layers * L_NSITE, sizeof *m->tsite);
	if (!m->vsite || !m->tsite)
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	size_t n = 0, fl = 0;
	char name[128];
	int in, outd;
	for (int pass = 0; pass < 2; pass++) {
		n = 0;
		size_t off = 0;
		for (int tower = 0; tower < 2; tower++)
			for (int l = 0; l < (tower ? c->t_layers : nvl); l++)
				for (int s = 0; s < L_NSITE; s++) {
					if (!site_info(c, tower, l, s, name, sizeof name, &in, &outd) ||
					    !lvd_lora_matches(name, lc->targets))
						continue;
					if (pass == 1) {
						struct lvd_mllama_lora *L = &m->lora[n];
						snprintf(L->module, sizeof L->module, "%s", name);
						L->in = in;
						L->out = outd;
						size_t o = off;
						L->A = mllama_take(m->lparams, &off, (size_t)lc->r * in);
						L->B = mllama_take(m->lparams, &off, (size_t)lc->r * outd);
						L->dA = m->lgrads + (L->A - m->lparams);
						L->dB = m->lgrads + (L->B - m->lparams);
						L->dtype = LVD_F32;
						LVD_ASSERT((size_t)(L->A - m->lparams) == o);
						lvd_lora_init_a(m->ctx, L->A, lc->r, in, lc->seed + n);
						(tower ? m->tsite : m->vsite)[(size_t)l * L_NSITE + s].l = L;
					} else {
						mllama_take(NULL, &off, (size_t)lc->r * in);
						mllama_take(NULL, &off, (size_t)lc->r * outd);
					}
					n++;
				}
		if (pass == 0) {
			if (n == 0)
				return lvd_error_set(err, LVD_ERR_INVALID, "mllama: LoRA targets '%s' match no module",
						     lc->targets);
			fl = off;
			m->lora = calloc(n, sizeof *m->lora);
			m->lparams = lvd_alloc_aligned(fl, sizeof(float));
			m->lgrads = lvd_alloc_aligned(fl, sizeof(float));
			m->lopt = lvd_alloc_aligned(2 * fl, sizeof(float));
			if (!m->lora || !m->lparams || !m->lgrads || !m->lopt)
				return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory for LoRA");
			memset(m->lparams, 0, fl * sizeof(float));
			memset(m->lgrads, 0, fl * sizeof(float));
			memset(m->lopt, 0, 2 * fl * sizeof(float));
			m->lsize = fl;
		}
	}
	m->nlora = n;
	m->lora_r = lc->r;
	m->lora_s = lc->rslora ? lc->alpha / sqrtf((float)lc->r) : lc->alpha / (float)lc->r;
	m->lora_p = lc->dropout;
	m->lora_seed = lc->seed;
	m->lora_alpha = lc->alpha;
	m->lora_rslora = lc->rslora;
	snprintf(m->lora_targets, sizeof m->lora_targets, "%s", lc->targets);
	return 0;
}

int lvd_mllama_lora_save(struct lvd_mllama *m, const char *dir, const char *base_model_name, int legacy_names,
			 struct lvd_error *err)
{
	if (!m->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: no LoRA adapters to save");
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: lora_save of a device model is not written yet");
	char path[4096];
	struct lvd_st_writer *w = lvd_st_writer_new();
	char (*names)[192] = calloc(2 * m->nlora, sizeof *names);
	int rc = 0;
	if (!w || !names) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->nlora && !rc; i++) {
		struct lvd_mllama_lora *l = &m->lora[i];
		char mod[160];
		if (legacy_names)
			snprintf(mod, sizeof mod, "%s", l->module);
		else
			mllama_hf_name(mod, sizeof mod, l->module);
		rc = lvd_peft_add_lora(w, names + 2 * i, mod, m->lora_r, l->in, l->out, l->A, l->B, err);
	}
	if (!rc)
		rc = lvd_st_writer_meta(w, "format", "pt", err);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	if (rc)
		goto out;
	struct lvd_peft_config pc = { m->lora_r, m->lora_alpha, m->lora_p, m->lora_rslora, "CAUSAL_LM",
				      m->lora_targets, NULL, NULL, base_model_name };
	rc = lvd_peft_config_write(dir, &pc, err);
out:
	lvd_st_writer_free(w);
	free(names);
	return rc;
}
