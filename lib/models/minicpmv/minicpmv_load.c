/* lib/models/minicpmv/minicpmv_load.c — minicpmv configuration (config.json), the
 * weight table from the hub key names (llm.*, vpm.*, resampler.*), memory-mapped loading
 * and the execution context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/llama_rope.h"
#include "models/minicpmv/minicpmv_internal.h"

/* ---- config ---------------------------------------------------------------------- */

int lvd_minicpmv_config_load(struct lvd_minicpmv_config *c, const char *path, struct lvd_error *err)
{
	struct lvd_json doc = { 0 }, v = { 0 }, s = { 0 };
	memset(c, 0, sizeof *c);
	int rc = lvd_json_load(&doc, path, err);
	if (rc)
		return rc;
	const int BIG = 1 << 24;
	const char *mt, *act;
	double eps;
	if ((rc = lvd_json_get_string_or(&doc, "model_type", "minicpmv", &mt, err)))
		goto out;
	if (strcmp(mt, "minicpmv") != 0) {
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: model_type: expected \"minicpmv\", got \"%s\"", path, mt);
		goto out;
	}
	if (!lvd_json_has(&doc, "vision_config")) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: the vision_config object is required", path);
		goto out;
	}
	if ((rc = lvd_json_object(&doc, "vision_config", &v, err)))
		goto out;
	/* vision: Idefics2VisionConfig defaults where the hub file leaves a key out */
	if ((rc = lvd_json_get_i32_or(&v, "hidden_size", 1152, 1, 65536, &c->v_hidden, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_attention_heads", 16, 1, 1024, &c->v_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "intermediate_size", 4304, 1, BIG, &c->v_inter, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_hidden_layers", 27, 1, 1024, &c->v_layers_cfg, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "image_size", 980, 1, 65536, &c->v_image_size, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "patch_size", 14, 1, 1024, &c->v_patch, err)) ||
	    (rc = lvd_json_get_i32_or(&v, "num_channels", 3, 3, 3, &c->v_channels, err)) ||
	    (rc = lvd_json_get_positive_or(&v, "layer_norm_eps", 1e-6, &eps, err)) ||
	    (rc = lvd_json_get_string_or(&v, "hidden_act", "gelu_pytorch_tanh", &act, err)))
		goto out;
	c->v_eps = (float)eps;
	if (strcmp(act, "gelu_pytorch_tanh") == 0)
		c->v_gelu_tanh = 1;
	else if (strcmp(act, "gelu") != 0) {
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: vision_config.hidden_act '%s' (gelu_pytorch_tanh or gelu)",
				   path, act);
		goto out;
	}
	if (c->v_hidden % c->v_heads || c->v_image_size < c->v_patch) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: vision_config: hidden_size %% num_attention_heads must be 0 "
				   "and image_size >= patch_size", path);
		goto out;
	}
	c->v_side = c->v_image_size / c->v_patch;
	/* top level: the Llama text config, the resampler and slicing */
	if ((rc = lvd_json_get_bool_or(&doc, "drop_vision_last_layer", 1, &c->drop_vision_last_layer, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "query_num", 96, 1, 65536, &c->query_num, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "vocab_size", 128256, 1, BIG, &c->vocab, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "hidden_size", 4096, 1, 65536, &c->t_hidden, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "num_attention_heads", 32, 1, 1024, &c->t_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "num_key_value_heads", 8, 1, 1024, &c->t_kv_heads, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "intermediate_size", 14336, 1, BIG, &c->t_inter, err)) ||
	    (rc = lvd_json_get_i32_or(&doc, "num_hidden_layers", 32, 1, 1024, &c->t_layers, err)) ||
	    (rc = lvd_json_get_positive_or(&doc, "rms_norm_eps", 1e-5, &eps, err)) ||
	    (rc = lvd_json_get_bool_or(&doc, "slice_mode", 1, &c->slice_mode, err)))
		goto out;
	c->t_eps = (float)eps;
	c->v_layers = c->v_layers_cfg - (c->drop_vision_last_layer ? 1 : 0);
	if (c->v_layers < 1) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: vision_config.num_hidden_layers: no layer left after "
				   "drop_vision_last_layer", path);
		goto out;
	}
	if (c->t_hidden % c->t_heads || c->t_heads % c->t_kv_heads || c->t_hidden % 128) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: hidden_size %% num_attention_heads, num_attention_heads %% "
				   "num_key_value_heads and hidden_size %% 128 (resampler heads) must be 0", path);
		goto out;
	}
	c->t_head_dim = c->t_hidden / c->t_heads;
	c->r_heads = c->t_hidden / 128;
	if (c->t_hidden % 4) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: hidden_size must be a multiple of 4 (2-D sin-cos)", path);
		goto out;
	}
	struct lvd_llama_rope rope;
	if ((rc = lvd_llama_rope_load(&rope, &doc, path, "config", err)))
		goto out;
	c->rope_theta = rope.theta, c->rope_llama3 = rope.llama3, c->rope_factor = rope.factor;
	c->rope_low = rope.low, c->rope_high = rope.high, c->rope_orig_max = rope.orig_max;
	c->max_slice_nums = 9, c->scale_resolution = 448, c->slice_patch = 14;
	if (json_is_object(lvd_json_find(&doc, "slice_config"))) {
		if ((rc = lvd_json_object(&doc, "slice_config", &s, err)) ||
		    (rc = lvd_json_get_i32_or(&s, "max_slice_nums", 9, 1, 1024, &c->max_slice_nums, err)) ||
		    (rc = lvd_json_get_i32_or(&s, "scale_resolution", 448, 1, 65536, &c->scale_resolution, err)) ||
		    (rc = lvd_json_get_i32_or(&s, "patch_size", 14, 1, 1024, &c->slice_patch, err)))
			goto out;
	}
out:
	lvd_json_release(&s);
	lvd_json_release(&v);
	lvd_json_release(&doc);
	return rc;
}

/* ---- weight table ------------------------------------------------------------------ */

static void add(struct mcv_wspec *t, size_t *n, const float **dst, int ndim, const int64_t *shape, const char *fmt,
		int layer)
{
	struct mcv_wspec *s = &t[(*n)++];
	snprintf(s->name, sizeof s->name, fmt, layer);
	s->ndim = ndim;
	memcpy(s->shape, shape, sizeof(int64_t) * ndim);
	s->dst = dst;
}

size_t mcv_weight_table(struct lvd_minicpmv *m, struct mcv_wspec *t)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct mcv_weights *w = &m->w;
	size_t n = 0;
	int64_t Dv = c->v_hidden, Iv = c->v_inter, D = c->t_hidden, KV = (int64_t)c->t_kv_heads * c->t_head_dim;
#define A4(dst, nd, a, b, c2, d, fmt, l) \
	(t ? add(t, &n, (const float **)&(dst), nd, (const int64_t[4]){ a, b, c2, d }, fmt, l) : (void)n++)
#define A(dst, nd, a, b, fmt, l) A4(dst, nd, a, b, 0, 0, fmt, l)
	A4(w->patch_w, 4, Dv, c->v_channels, c->v_patch, c->v_patch, "vpm.embeddings.patch_embedding.weight", 0);
	A(w->patch_b, 1, Dv, 0, "vpm.embeddings.patch_embedding.bias", 0);
	A(w->pos, 2, (int64_t)c->v_side * c->v_side, Dv, "vpm.embeddings.position_embedding.weight", 0);
	for (int l = 0; l < c->v_layers; l++) {
		struct mcv_vlayer *L = &w->vl[l];
		A(L->ln1_w, 1, Dv, 0, "vpm.encoder.layers.%d.layer_norm1.weight", l);
		A(L->ln1_b, 1, Dv, 0, "vpm.encoder.layers.%d.layer_norm1.bias", l);
		A(L->q_w, 2, Dv, Dv, "vpm.encoder.layers.%d.self_attn.q_proj.weight", l);
		A(L->q_b, 1, Dv, 0, "vpm.encoder.layers.%d.self_attn.q_proj.bias", l);
		A(L->k_w, 2, Dv, Dv, "vpm.encoder.layers.%d.self_attn.k_proj.weight", l);
		A(L->k_b, 1, Dv, 0, "vpm.encoder.layers.%d.self_attn.k_proj.bias", l);
		A(L->v_w, 2, Dv, Dv, "vpm.encoder.layers.%d.self_attn.v_proj.weight", l);
		A(L->v_b, 1, Dv, 0, "vpm.encoder.layers.%d.self_attn.v_proj.bias", l);
		A(L->o_w, 2, Dv, Dv, "vpm.encoder.layers.%d.self_attn.out_proj.weight", l);
		A(L->o_b, 1, Dv, 0, "vpm.encoder.layers.%d.self_attn.out_proj.bias", l);
		A(L->ln2_w, 1, Dv, 0, "vpm.encoder.layers.%d.layer_norm2.weight", l);
		A(L->ln2_b, 1, Dv, 0, "vpm.encoder.layers.%d.layer_norm2.bias", l);
		A(L->fc1_w, 2, Iv, Dv, "vpm.encoder.layers.%d.mlp.fc1.weight", l);
		A(L->fc1_b, 1, Iv, 0, "vpm.encoder.layers.%d.mlp.fc1.bias", l);
		A(L->fc2_w, 2, Dv, Iv, "vpm.encoder.layers.%d.mlp.fc2.weight", l);
		A(L->fc2_b, 1, Dv, 0, "vpm.encoder.layers.%d.mlp.fc2.bias", l);
	}
	A(w->post_w, 1, Dv, 0, "vpm.post_layernorm.weight", 0);
	A(w->post_b, 1, Dv, 0, "vpm.post_layernorm.bias", 0);
	A(w->query, 2, c->query_num, D, "resampler.query", 0);
	if (Dv != D)
		A(w->kv_proj, 2, D, Dv, "resampler.kv_proj.weight", 0);
	A(w->in_w, 2, 3 * D, D, "resampler.attn.in_proj_weight", 0);
	A(w->in_b, 1, 3 * D, 0, "resampler.attn.in_proj_bias", 0);
	A(w->out_w, 2, D, D, "resampler.attn.out_proj.weight", 0);
	A(w->out_b, 1, D, 0, "resampler.attn.out_proj.bias", 0);
	A(w->lnq_w, 1, D, 0, "resampler.ln_q.weight", 0);
	A(w->lnq_b, 1, D, 0, "resampler.ln_q.bias", 0);
	A(w->lnkv_w, 1, D, 0, "resampler.ln_kv.weight", 0);
	A(w->lnkv_b, 1, D, 0, "resampler.ln_kv.bias", 0);
	A(w->lnpost_w, 1, D, 0, "resampler.ln_post.weight", 0);
	A(w->lnpost_b, 1, D, 0, "resampler.ln_post.bias", 0);
	A(w->proj, 2, D, D, "resampler.proj", 0);
	A(w->embed, 2, c->vocab, D, "llm.model.embed_tokens.weight", 0);
	for (int l = 0; l < c->t_layers; l++) {
		struct lvd_llama_layer_w *L = &w->tl[l];
		A(L->ln1, 1, D, 0, "llm.model.layers.%d.input_layernorm.weight", l);
		A(L->q, 2, D, D, "llm.model.layers.%d.self_attn.q_proj.weight", l);
		A(L->k, 2, KV, D, "llm.model.layers.%d.self_attn.k_proj.weight", l);
		A(L->v, 2, KV, D, "llm.model.layers.%d.self_attn.v_proj.weight", l);
		A(L->o, 2, D, D, "llm.model.layers.%d.self_attn.o_proj.weight", l);
		A(L->ln2, 1, D, 0, "llm.model.layers.%d.post_attention_layernorm.weight", l);
		A(L->gate, 2, c->t_inter, D, "llm.model.layers.%d.mlp.gate_proj.weight", l);
		A(L->up, 2, c->t_inter, D, "llm.model.layers.%d.mlp.up_proj.weight", l);
		A(L->down, 2, D, c->t_inter, "llm.model.layers.%d.mlp.down_proj.weight", l);
	}
	A(w->norm, 1, D, 0, "llm.model.norm.weight", 0);
	A(w->lm_head, 2, c->vocab, D, "llm.lm_head.weight", 0);
#undef A
#undef A4
	return n;
}

static size_t numel(const struct mcv_wspec *s)
{
	size_t n = 1;
	for (int d = 0; d < s->ndim; d++)
		n *= (size_t)s->shape[d];
	return n;
}

void lvd_minicpmv_free(struct lvd_minicpmv *m)
{
	if (!m)
		return;
	mcv_train_free(m);
	mcv_vision_train_free(m);
	free(m->w.vl);
	free(m->w.tl);
	free(m->pblock);
	free(m->xblock);
	free(m->ablock);
	free(m->params);
	free(m->pnames);
	lvd_st_close(m->st);
	lvd_ctx_destroy(m->own_ctx);
	free(m);
}

int lvd_minicpmv_load(struct lvd_minicpmv **out, const char *dir, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_minicpmv *m = calloc(1, sizeof *m);
	if (!m)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	int rc = lvd_minicpmv_config_load(&m->c, path, err);
	struct mcv_wspec *t = NULL;
	if (rc)
		goto fail;
	m->w.vl = calloc((size_t)m->c.v_layers, sizeof *m->w.vl);
	m->w.tl = calloc((size_t)m->c.t_layers, sizeof *m->w.tl);
	size_t nt = mcv_weight_table(m, NULL);
	t = calloc(nt, sizeof *t);
	if (!m->w.vl || !m->w.tl || !t) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
		goto fail;
	}
	mcv_weight_table(m, t);
	if ((rc = lvd_st_open(&m->st, dir, err)))
		goto fail;
	/* map shape-checked, aligned F32 tensors; convert the rest into one block */
	size_t need = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct lvd_tensor_view *v = lvd_st_find(m->st, t[i].name);
		int ok = v && v->dtype == LVD_DT_F32 && v->ndim == t[i].ndim && ((uintptr_t)v->data & 3) == 0;
		for (int d = 0; ok && d < t[i].ndim; d++)
			ok = v->shape[d] == t[i].shape[d];
		*t[i].dst = ok ? (const float *)v->data : NULL;
		if (!ok)
			mcv_take(NULL, &need, numel(&t[i]));
	}
	m->pblock = lvd_alloc_aligned(need ? need : 1, sizeof(float));
	if (!m->pblock) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot allocate %zu weights", dir, need);
		goto fail;
	}
	size_t off = 0;
	for (size_t i = 0; i < nt; i++) {
		if (*t[i].dst)
			continue;
		float *p = mcv_take(m->pblock, &off, numel(&t[i]));
		if ((rc = lvd_st_load_f32(m->st, t[i].name, t[i].ndim, t[i].shape, p, numel(&t[i]), err))) {
			lvd_error_prefix(err, "%s: ", dir);
			goto fail;
		}
		*t[i].dst = p;
	}
	if ((rc = lvd_ctx_create(&m->own_ctx, NULL, err)))
		goto fail;
	m->ctx = m->own_ctx;
	free(t);
	*out = m;
	return 0;
fail:
	free(t);
	lvd_minicpmv_free(m);
	return rc;
}

void lvd_minicpmv_set_ctx(struct lvd_minicpmv *m, struct lvd_ctx *ctx)
{
	m->ctx = ctx ? ctx : m->own_ctx;
}

const struct lvd_minicpmv_config *lvd_minicpmv_cfg(const struct lvd_minicpmv *m) { return &m->c; }

/* ---- writable weights (full fine-tuning) ------------------------------------------- */

#define PNAME 96

int lvd_minicpmv_make_mutable(struct lvd_minicpmv *m, struct lvd_error *err)
{
	if (m->params)
		return 0;
	if (m->vt)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: make_mutable after vision_train");
	size_t nt = mcv_weight_table(m, NULL), need = 0;
	struct mcv_wspec *t = calloc(nt, sizeof *t);
	struct lvd_minicpmv_param *p = calloc(nt, sizeof *p);
	char *names = calloc(nt, PNAME);
	if (t)
		mcv_weight_table(m, t);
	for (size_t i = 0; t && i < nt; i++)
		mcv_take(NULL, &need, numel(&t[i]));
	float *blk = t && p && names ? lvd_alloc_aligned(need ? need : 1, sizeof(float)) : NULL;
	if (!blk) {
		free(t), free(p), free(names);
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate %zu writable weights", need);
	}
	size_t off = 0;
	for (size_t i = 0; i < nt; i++) {
		const size_t n = numel(&t[i]);
		float *d = mcv_take(blk, &off, n);
		memcpy(d, *t[i].dst, n * sizeof *d);
		*t[i].dst = d;
		snprintf(names + i * PNAME, PNAME, "%s", t[i].name);
		p[i] = (struct lvd_minicpmv_param){names + i * PNAME, d, n};
	}
	free(t);
	free(m->pblock);
	m->pblock = blk;
	lvd_st_close(m->st);
	m->st = NULL;
	m->params = p;
	m->nparams = nt;
	m->pnames = names;
	return 0;
}

unsigned lvd_minicpmv_param_group(const char *name)
{
	return !strncmp(name, "vpm.", 4) ? LVD_MINICPMV_VISION
	       : !strncmp(name, "resampler.", 10) ? LVD_MINICPMV_RESAMPLER : LVD_MINICPMV_LLM;
}

size_t lvd_minicpmv_params(const struct lvd_minicpmv *m, const struct lvd_minicpmv_param **out)
{
	*out = m->params;
	return m->params ? m->nparams : 0;
}
