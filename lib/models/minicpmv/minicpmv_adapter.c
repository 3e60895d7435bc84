/* lib/models/minicpmv/minicpmv_adapter.c — a PEFT adapter folder onto a minicpmv model
 * (minicpmv_adapter.h): LoRA sites from the file's keys, A and B filled, modules_to_save
 * copies replacing the model's weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv_adapter.h"
#include "models/minicpmv/minicpmv_train.h"

static const char PRE[] = "base_model.model.";

/* key -> (layer, site, 0 A / 1 B) for a LoRA weight of the LLM; -1 otherwise */
static int lora_key(const char *key, const struct lvd_minicpmv_config *c, int *layer, int *site)
{
	if (strncmp(key, PRE, sizeof PRE - 1))
		return -1;
	const char *k = key + sizeof PRE - 1, *e = strstr(k, ".lora_");
	if (!e || (e[6] != 'A' && e[6] != 'B') || (strcmp(e + 7, ".weight") && strcmp(e + 7, ".default.weight")))
		return -1;
	char mod[128], want[128];
	snprintf(mod, sizeof mod, "%.*s", (int)(e - k), k);
	for (int l = 0; l < c->t_layers; l++)
		for (int s = 0; s < MCV_NSITE; s++) {
			mcv_site_module(want, sizeof want, l, s);
			if (!strcmp(mod, want)) {
				*layer = l, *site = s;
				return e[6] == 'B';
			}
		}
	return -2;
}

/* a replaceable weight by its name after "base_model.model." (infix removed) */
struct wref {
	const float **p;
	int64_t rows, cols;   /* cols 0: 1-D */
};
static int weight_ref(struct lvd_minicpmv *m, const char *name, struct wref *r)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct mcv_weights *w = &m->w;
	int64_t D = c->t_hidden, Q = c->query_num, V = c->vocab, Dv = c->v_hidden;
	struct {
		const char *n;
		const float **p;
		int64_t rows, cols;
	} t[] = {
		{"llm.model.embed_tokens.weight", &w->embed, V, D}, {"llm.lm_head.weight", &w->lm_head, V, D},
		{"resampler.query", &w->query, Q, D}, {"resampler.kv_proj.weight", &w->kv_proj, D, Dv},
		{"resampler.attn.in_proj_weight", &w->in_w, 3 * D, D}, {"resampler.attn.in_proj_bias", &w->in_b, 3 * D, 0},
		{"resampler.attn.out_proj.weight", &w->out_w, D, D}, {"resampler.attn.out_proj.bias", &w->out_b, D, 0},
		{"resampler.ln_q.weight", &w->lnq_w, D, 0}, {"resampler.ln_q.bias", &w->lnq_b, D, 0},
		{"resampler.ln_kv.weight", &w->lnkv_w, D, 0}, {"resampler.ln_kv.bias", &w->lnkv_b, D, 0},
		{"resampler.ln_post.weight", &w->lnpost_w, D, 0}, {"resampler.ln_post.bias", &w->lnpost_b, D, 0},
		{"resampler.proj", &w->proj, D, D},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(name, t[i].n) && *t[i].p) {
			*r = (struct wref){t[i].p, t[i].rows, t[i].cols};
			return 0;
		}
	return -1;
}

/* "base_model.model.X[.modules_to_save.default].Y" -> "X.Y" */
static int plain_name(const char *key, char *out, size_t n)
{
	if (strncmp(key, PRE, sizeof PRE - 1))
		return -1;
	const char *k = key + sizeof PRE - 1, *inf = strstr(k, ".modules_to_save.default");
	if (inf)
		snprintf(out, n, "%.*s%s", (int)(inf - k), k, inf + 24);
	else
		snprintf(out, n, "%s", k);
	return 0;
}

static const char *site_name(int s)
{
	static const char *const nm[MCV_NSITE] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
						  "down_proj"};
	return nm[s];
}

int lvd_minicpmv_adapter_load(struct lvd_minicpmv *m, const char *dir, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	char path[4200], cpath[4200];
	struct lvd_json j = {0};
	struct lvd_st *st = NULL;
	if (lvd_minicpmv_nlora(m) || m->xblock)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the model already has an adapter", dir);
	snprintf(cpath, sizeof cpath, "%s/adapter_config.json", dir);
	int rc = lvd_json_load(&j, cpath, err);
	if (rc)
		return rc;
	const char *type = NULL;
	int r = 0, rslora = 0, dora = 0;
	double alpha = 0;
	if ((rc = lvd_json_get_string_or(&j, "peft_type", "LORA", &type, err)) ||
	    (rc = lvd_json_get_i32(&j, "r", 1, 65536, &r, err)) || (rc = lvd_json_get_double(&j, "lora_alpha", &alpha, err)) ||
	    (rc = lvd_json_get_bool_or(&j, "use_rslora", 0, &rslora, err)) ||
	    (rc = lvd_json_get_bool_or(&j, "use_dora", 0, &dora, err)))
		goto out;
	if (strcmp(type, "LORA") || dora || !(alpha > 0)) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: only plain LoRA adapters with lora_alpha > 0 are supported "
				   "(peft_type %s%s)", cpath, type, dora ? ", use_dora" : "");
		goto out;
	}
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	if ((rc = lvd_st_open(&st, path, err)))
		goto out;
	/* pass 1: the sites named by the file, the replaced weights' size */
	int used[MCV_NSITE] = {0};
	size_t nrep = 0;
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		int l, s, which = lora_key(t->name, c, &l, &s);
		if (which >= 0) {
			used[s] = 1;
			continue;
		}
		char name[256];
		struct wref wr;
		if (which == -2 || plain_name(t->name, name, sizeof name) || weight_ref(m, name, &wr)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' lands on no LoRA site of the LLM and no "
					   "replaceable weight (embed_tokens, lm_head, resampler.*)", path, t->name);
			goto out;
		}
		int64_t n = wr.cols ? wr.rows * wr.cols : wr.rows;
		if (t->ndim != (wr.cols ? 2 : 1) || t->shape[0] != wr.rows || (wr.cols && t->shape[1] != wr.cols)) {
			char want[64];
			if (wr.cols)
				snprintf(want, sizeof want, "[%lld, %lld]", (long long)wr.rows, (long long)wr.cols);
			else
				snprintf(want, sizeof want, "[%lld]", (long long)wr.rows);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' has the wrong shape, want %s", path, t->name,
					   want);
			goto out;
		}
		nrep += (size_t)n;
	}
	char targets[128] = "";
	for (int s = 0; s < MCV_NSITE; s++)
		if (used[s]) {
			size_t L = strlen(targets);
			snprintf(targets + L, sizeof targets - L, "%s%s", L ? "," : "", site_name(s));
		}
	if (targets[0]) {
		struct lvd_minicpmv_lora_cfg lc = {r, (float)alpha, 0.0f, rslora, targets, 0};
		if ((rc = lvd_minicpmv_add_lora(m, &lc, err))) {
			lvd_error_prefix(err, "%s: ", cpath);
			goto out;
		}
		lvd_minicpmv_set_eval(m, 1);
		/* adapters the file does not fill stay the identity */
		for (size_t k = 0; k < lvd_minicpmv_nlora(m); k++) {
			struct lvd_minicpmv_lora *L = lvd_minicpmv_lora_at(m, k);
			memset(L->B, 0, sizeof(float) * (size_t)r * L->out);
		}
	}
	if (nrep) {
		if (!(m->xblock = lvd_alloc_aligned(nrep, sizeof(float)))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
			goto out;
		}
	}
	/* pass 2: the values */
	size_t off = 0;
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		int l, s, which = lora_key(t->name, c, &l, &s);
		if (which >= 0) {
			struct lvd_minicpmv_lora *L = m->tr->site[(size_t)l * MCV_NSITE + s];
			int64_t shape[2] = {which ? L->out : r, which ? r : L->in};
			if (t->ndim != 2 || t->shape[0] != shape[0] || t->shape[1] != shape[1]) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' has the wrong shape, want [%lld, %lld] "
						   "(r = %d in adapter_config.json)", path, t->name, (long long)shape[0],
						   (long long)shape[1], r);
				goto out;
			}
			if ((rc = lvd_tensor_to_f32(t, which ? L->B : L->A, (size_t)(shape[0] * shape[1]), err)))
				goto out;
			continue;
		}
		char name[256];
		struct wref wr;
		plain_name(t->name, name, sizeof name);
		weight_ref(m, name, &wr);
		size_t n = (size_t)(wr.cols ? wr.rows * wr.cols : wr.rows);
		float *dst = m->xblock + off;
		if ((rc = lvd_tensor_to_f32(t, dst, n, err)))
			goto out;
		*wr.p = dst;
		off += n;
	}
out:
	lvd_st_close(st);
	lvd_json_release(&j);
	return rc;
}
