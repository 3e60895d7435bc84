/* lib/models/minicpmv/minicpmv_peft.c — PEFT adapters of the minicpmv LLM's LoRA:
 * the export (lvd_minicpmv_lora_save, minicpmv.h): adapter_model.safetensors with the
 * hub model's module names under "base_model.model." and full copies of modules_to_save
 * (embed_tokens, resampler) as PEFT 0.21 saves them, and adapter_config.json; and the
 * load (lvd_minicpmv_lora_load): ours or PEFT's folder, targets in list or regex form
 * resolved against the model's modules, modules_to_save copies replacing the weights. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/peft.h"
#include "nn/ops/lora.h"
#include "models/minicpmv/minicpmv_train.h"

#define MAX_SAVE 16

/* the modules_to_save tensors of one module (names after "base_model.model.") */
static int save_list(const struct lvd_minicpmv *m, const char *mod, const char **names, const float **data,
		     int64_t (*shape)[2], int *ndim, int *n)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	int64_t D = c->t_hidden, Dv = c->v_hidden, Q = c->query_num;
#define PUT(nm, p, nd, a, b)                                                            \
	do {                                                                            \
		names[*n] = nm, data[*n] = p, ndim[*n] = nd, shape[*n][0] = a, shape[*n][1] = b; \
		(*n)++;                                                                 \
	} while (0)
	if (!strcmp(mod, "embed_tokens")) {
		PUT("llm.model.embed_tokens.weight", w->embed, 2, c->vocab, D);
		return 0;
	}
	if (!strcmp(mod, "resampler")) {
		PUT("resampler.query", w->query, 2, Q, D);
		if (w->kv_proj)
			PUT("resampler.kv_proj.weight", w->kv_proj, 2, D, Dv);
		PUT("resampler.attn.in_proj_weight", w->in_w, 2, 3 * D, D);
		PUT("resampler.attn.in_proj_bias", w->in_b, 1, 3 * D, 0);
		PUT("resampler.attn.out_proj.weight", w->out_w, 2, D, D);
		PUT("resampler.attn.out_proj.bias", w->out_b, 1, D, 0);
		PUT("resampler.ln_q.weight", w->lnq_w, 1, D, 0);
		PUT("resampler.ln_q.bias", w->lnq_b, 1, D, 0);
		PUT("resampler.ln_kv.weight", w->lnkv_w, 1, D, 0);
		PUT("resampler.ln_kv.bias", w->lnkv_b, 1, D, 0);
		PUT("resampler.ln_post.weight", w->lnpost_w, 1, D, 0);
		PUT("resampler.ln_post.bias", w->lnpost_b, 1, D, 0);
		PUT("resampler.proj", w->proj, 2, D, D);
		return 0;
	}
#undef PUT
	return -1;
}

/* target_modules as a regex PEFT must fully match: our list form (a module whose name
 * equals an entry or ends with "." + entry) restricted to the LLM, so that PEFT does not
 * also put adapters on vpm's q/k/v ("(llm\\..*\\.)?(q_proj|k_proj)", dots escaped) */
static const char *target_regex(char *out, size_t n, const char *csv)
{
	size_t o = (size_t)snprintf(out, n, "(llm\\..*\\.)?(");
	for (const char *p = csv; *p && o + 4 < n; p++) {
		if (*p == ',')
			out[o++] = '|';
		else if (*p == '.')
			out[o++] = '\\', out[o++] = '.';
		else
			out[o++] = *p;
	}
	snprintf(out + o, n - o, ")");
	return out;
}

int lvd_minicpmv_lora_save(struct lvd_minicpmv *m, const char *dir, const char *base_model_name,
			   const char *modules_to_save, struct lvd_error *err)
{
	struct mcv_train *tr = m->tr;
	if (!tr || !tr->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: no LoRA adapters to save");
	char path[4096], rx[1024];
	const char *snames[2 * MAX_SAVE];
	const float *sdata[2 * MAX_SAVE];
	int64_t sshape[2 * MAX_SAVE][2];
	int sndim[2 * MAX_SAVE], ns = 0;
	json_t *mts = lvd_peft_csv_list(modules_to_save);
	for (size_t i = 0; i < json_array_size(mts); i++) {
		const char *mod = json_string_value(json_array_get(mts, i));
		int dup = 0;
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(mod, json_string_value(json_array_get(mts, j)));
		if (dup || ns > MAX_SAVE || save_list(m, mod, snames, sdata, sshape, sndim, &ns)) {
			int rc = lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: modules_to_save: '%s' is %s", mod,
					       dup ? "listed twice" : "not one of embed_tokens, resampler");
			json_decref(mts);
			return rc;
		}
	}
	struct lvd_st_writer *w = lvd_st_writer_new();
	char (*names)[192] = calloc(2 * tr->nlora + (size_t)ns, sizeof *names);
	int rc = 0;
	if (!w || !names) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
		goto out;
	}
	for (size_t i = 0; i < tr->nlora && !rc; i++) {
		const struct lvd_minicpmv_lora *l = &tr->lora[i];
		rc = lvd_peft_add_lora(w, names + 2 * i, l->module, tr->lora_r, l->in, l->out, l->A, l->B, err);
	}
	for (int i = 0; i < ns && !rc; i++) {
		char *nm = names[2 * tr->nlora + (size_t)i];
		snprintf(nm, sizeof names[0], "base_model.model.%s", snames[i]);
		rc = lvd_st_writer_add(w, nm, LVD_DT_F32, sndim[i], sshape[i], sdata[i], err);
	}
	if (!rc)
		rc = lvd_st_writer_meta(w, "format", "pt", err);
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	if (rc)
		goto out;
	/* task_type null, as OpenBMB's get_peft_model without a task type writes it: the hub's
	 * MiniCPMV is not a generation model class, which PEFT's CAUSAL_LM wrapper needs */
	struct lvd_peft_config pc = { tr->lora_r, tr->lora_alpha, tr->lora_p, tr->rslora, NULL, NULL,
				      target_regex(rx, sizeof rx, tr->lora_targets), modules_to_save, base_model_name };
	rc = lvd_peft_config_write(dir, &pc, err);
out:
	json_decref(mts);
	lvd_st_writer_free(w);
	free(names);
	return rc;
}

/* ---- adapter load (lvd_minicpmv_lora_load) ------------------------------------------ */

/* One target decision against the model's modules. */
struct tmatch {
	const char *csv;              /* list form, or NULL */
	pcre2_code *re;               /* regex form (PEFT's re.fullmatch), or NULL */
	pcre2_match_data *md;
};

static int tmatch_hit(const struct tmatch *t, const char *name)
{
	if (t->csv)
		return lvd_lora_matches(name, t->csv);
	return pcre2_match(t->re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, t->md,
			   NULL) >= 0;
}

/* A tensor name's module: the name without its last part ("….q_proj.weight" ->
 * "….q_proj", "resampler.query" -> "resampler"). */
static void module_of(char *out, size_t n, const char *name)
{
	const char *d = strrchr(name, '.');
	snprintf(out, n, "%.*s", d ? (int)(d - name) : 0, name);
}

/* Resolves the targets against every module of the model (the LLM sites, and the modules
 * of every other tensor: vpm's and the resampler's linears, embeddings, norms) into
 * on[l·MCV_NSITE + s] and the site list sites ("q_proj,v_proj"); PEFT would put an
 * adapter on each match. Refuses a match outside the LLM sites and a site matched on
 * only some layers. */
static int resolve_targets(struct lvd_minicpmv *m, const struct tmatch *tm, const struct mcv_wspec *ws, size_t nw,
			   unsigned char *on, char *sites, size_t ns, const char *path, const char *tdesc,
			   struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	char name[128];
	for (size_t i = 0; i < nw; i++) {
		module_of(name, sizeof name, ws[i].name);
		int site = 0;   /* an LLM site's weight: decided below */
		for (int s = 0; s < MCV_NSITE && !site; s++) {
			char mod[128];
			for (int l = 0; l < c->t_layers && !site; l++) {
				mcv_site_module(mod, sizeof mod, l, s);
				site = !strcmp(mod, name);
			}
		}
		if (!site && tmatch_hit(tm, name))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: target_modules %s matches '%s': adapters can only sit on "
					     "the LLM's q/k/v/o/gate/up/down_proj here", path, tdesc, name);
	}
	size_t o = 0;
	int any = 0;
	sites[0] = 0;
	for (int s = 0; s < MCV_NSITE; s++) {
		int cnt = 0;
		for (int l = 0; l < c->t_layers; l++) {
			mcv_site_module(name, sizeof name, l, s);
			cnt += on[(size_t)l * MCV_NSITE + s] = (unsigned char)tmatch_hit(tm, name);
		}
		if (cnt && cnt != c->t_layers)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: target_modules %s matches %s on %d of the %d decoder "
					     "layers; adapters on some layers only are not supported", path, tdesc,
					     strrchr(name, '.') + 1, cnt, c->t_layers);
		if (cnt) {
			o += (size_t)snprintf(sites + o, ns - o, "%s%s", any ? "," : "", strrchr(name, '.') + 1);
			any = 1;
		}
	}
	if (!any)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: target_modules %s matches no module of the model", path, tdesc);
	return 0;
}

/* adapter_config.json: r, alpha, rslora and the targets (tm->csv points into csv, or
 * tm->re is compiled); refuses what the loader cannot honour. */
static int read_config(struct lvd_json *j, const char *path, int *r, double *alpha, int *rslora, struct tmatch *tm,
		       char *csv, size_t ncsv, char *tdesc, size_t ndesc, struct lvd_error *err)
{
	const char *type = NULL, *bias = NULL, *tgt[512];
	size_t nt = 0;
	int rc;
	if ((rc = lvd_json_load(j, path, err)))
		return rc;
	if ((rc = lvd_json_get_string_or(j, "peft_type", "LORA", &type, err)) ||
	    (rc = lvd_json_get_i32(j, "r", 1, 65536, r, err)) || (rc = lvd_json_get_double(j, "lora_alpha", alpha, err)) ||
	    (rc = lvd_json_get_bool_or(j, "use_rslora", 0, rslora, err)) ||
	    (rc = lvd_json_get_string_or(j, "bias", "none", &bias, err)))
		return rc;
	if (strcmp(type, "LORA") || strcmp(bias, "none"))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: only plain LoRA adapters are supported (peft_type %s, bias "
				     "%s)", path, type, bias);
	/* PEFT options that change what the adapter computes or where it sits: refused when set
	 * (anything but absent, null, false, {} or []) */
	static const char *const unsupported[] = { "use_dora", "fan_in_fan_out", "lora_bias", "use_qalora", "use_bdlora",
						   "rank_pattern", "alpha_pattern", "layers_to_transform",
						   "layers_pattern", "exclude_modules", "target_parameters",
						   "trainable_token_indices", "layer_replication", NULL };
	for (int i = 0; unsupported[i]; i++) {
		json_t *v = json_object_get(j->obj, unsupported[i]);
		if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_object(v) && !json_object_size(v)) &&
		    !(json_is_array(v) && !json_array_size(v)))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: key '%s' is set; not supported (plain LoRA with one "
					     "r and lora_alpha on every targeted module)", path, unsupported[i]);
	}
	if (!(*alpha > 0))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: key 'lora_alpha': expected a positive number", path);
	json_t *tv = json_object_get(j->obj, "target_modules");
	if (json_is_string(tv)) {
		const char *rx = json_string_value(tv);
		int ec;
		PCRE2_SIZE eo;
		tm->re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
		if (!tm->re) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(ec, msg, sizeof msg);
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: key 'target_modules': regex '%s': %s at offset %zu",
					     path, rx, (char *)msg, (size_t)eo);
		}
		tm->md = pcre2_match_data_create_from_pattern(tm->re, NULL);
		if (!tm->md)
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		snprintf(tdesc, ndesc, "'%s'", rx);
		return 0;
	}
	if ((rc = lvd_json_get_string_array(j, "target_modules", tgt, 512, &nt, err)))
		return rc;
	size_t o = 0;
	csv[0] = 0;
	for (size_t i = 0; i < nt; i++) {
		if (o + strlen(tgt[i]) + 2 > ncsv)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: key 'target_modules': list too long", path);
		o += (size_t)snprintf(csv + o, ncsv - o, "%s%s", i ? "," : "", tgt[i]);
	}
	tm->csv = csv;
	snprintf(tdesc, ndesc, "[%s]", csv);
	return 0;
}

/* Splits a key of adapter_model.safetensors: "base_model.model.<module>.lora_A[.default]
 * .weight" -> module, returns 0 (A) or 1 (B); any other key -> the model tensor it names
 * in `out` with PEFT's modules_to_save infixes removed, returns 2; -1: no
 * "base_model.model." prefix. */
static int split_key(const char *key, char *out, size_t n)
{
	static const char pre[] = "base_model.model.";
	if (strncmp(key, pre, sizeof pre - 1))
		return -1;
	const char *k = key + sizeof pre - 1, *e = strstr(k, ".lora_");
	if (e && (e[6] == 'A' || e[6] == 'B') && (!strcmp(e + 7, ".weight") || !strcmp(e + 7, ".default.weight"))) {
		snprintf(out, n, "%.*s", (int)(e - k), k);
		return e[6] == 'B';
	}
	snprintf(out, n, "%s", k);
	static const char *const infix[] = { ".modules_to_save.default.", ".modules_to_save." };
	for (int i = 0; i < 2; i++) {
		char *p = strstr(out, infix[i]);
		if (p) {
			memmove(p + 1, p + strlen(infix[i]), strlen(p + strlen(infix[i])) + 1);
			break;
		}
	}
	return 2;
}

int lvd_minicpmv_lora_load(struct lvd_minicpmv *m, const char *dir, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	char path[4200], csv[2048], tdesc[2100], sites[128];
	if (m->tr && m->tr->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: %s: the model already has LoRA adapters", dir);
	if (m->vt)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: %s: load the adapter before "
				     "lvd_minicpmv_vision_train", dir);
	struct lvd_json j = { 0 };
	struct tmatch tm = { 0 };
	struct lvd_st *st = NULL;
	size_t nw = mcv_weight_table(m, NULL), nsites = (size_t)c->t_layers * MCV_NSITE;
	struct mcv_wspec *ws = calloc(nw, sizeof *ws);
	unsigned char *on = calloc(nsites, 1), *have = calloc(2 * nsites, 1);
	const struct lvd_tensor_view **src = calloc(2 * nsites + nw, sizeof *src);   /* LoRA A/B by site, then replacements */
	int r = 0, rslora = 0, rc = 0;
	double alpha = 0;
	if (!ws || !on || !have || !src) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
		goto out;
	}
	mcv_weight_table(m, ws);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	if ((rc = read_config(&j, path, &r, &alpha, &rslora, &tm, csv, sizeof csv, tdesc, sizeof tdesc, err)) ||
	    (rc = resolve_targets(m, &tm, ws, nw, on, sites, sizeof sites, path, tdesc, err)))
		goto out;

	/* every key checked before the model changes */
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	if ((rc = lvd_st_open(&st, path, err)))
		goto out;
	size_t nrep = 0, xfl = 0;
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		char name[256], wname[300];
		int which = split_key(t->name, name, sizeof name);
		if (which < 0) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': expected a key starting with "
					   "'base_model.model.'", path, t->name);
			goto out;
		}
		int64_t want[2] = { 0, 0 };
		size_t k = 0;
		if (which < 2) {   /* a LoRA matrix: its module must be a targeted site */
			for (k = 0; k < nsites; k++) {
				char mod[128];
				mcv_site_module(mod, sizeof mod, (int)(k / MCV_NSITE), (int)(k % MCV_NSITE));
				if (on[k] && !strcmp(mod, name))
					break;
			}
			if (k == nsites) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': module '%s' is not among the targets %s",
						   path, t->name, name, tdesc);
				goto out;
			}
			snprintf(wname, sizeof wname, "%s.weight", name);
			size_t wi = 0;
			while (wi < nw && strcmp(ws[wi].name, wname))
				wi++;
			LVD_ASSERT(wi < nw);
			want[0] = which ? ws[wi].shape[0] : r, want[1] = which ? r : ws[wi].shape[1];
			if (t->ndim != 2 || t->shape[0] != want[0] || t->shape[1] != want[1]) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' has the wrong shape, want [%lld, %lld]",
						   path, t->name, (long long)want[0], (long long)want[1]);
				goto out;
			}
			if (have[2 * k + (size_t)which]) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': lora_%c of '%s' given twice", path,
						   t->name, which ? 'B' : 'A', name);
				goto out;
			}
			have[2 * k + (size_t)which] = 1;
			src[2 * k + (size_t)which] = t;
			continue;
		}
		/* a full module copy (modules_to_save): it replaces the model's tensor */
		size_t wi = 0;
		while (wi < nw && strcmp(ws[wi].name, name))
			wi++;
		if (wi == nw) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' is neither a LoRA weight nor a weight of the "
					   "model ('%s', modules_to_save)", path, t->name, name);
			goto out;
		}
		int ok = t->ndim == ws[wi].ndim;
		for (int d = 0; ok && d < t->ndim; d++)
			ok = t->shape[d] == ws[wi].shape[d];
		if (!ok) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' has the wrong shape for the model's '%s'", path,
					   t->name, ws[wi].name);
			goto out;
		}
		if (src[2 * nsites + wi]) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': '%s' given twice", path, t->name, name);
			goto out;
		}
		src[2 * nsites + wi] = t;
		size_t ne = 1;
		for (int d = 0; d < t->ndim; d++)
			ne *= (size_t)t->shape[d];
		mcv_take(NULL, &xfl, ne);
		nrep++;
	}
	for (size_t k = 0; k < 2 * nsites; k++)
		if (on[k / 2] && !have[k]) {
			char mod[128];
			mcv_site_module(mod, sizeof mod, (int)(k / 2 / MCV_NSITE), (int)(k / 2 % MCV_NSITE));
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: no lora_%c weight for module '%s'", path, k % 2 ? 'B' : 'A',
					   mod);
			goto out;
		}

	/* apply: the adapters (dropout 0), their A and B, then the replaced weights */
	float *xb = NULL;
	if (nrep && !(xb = lvd_alloc_aligned(xfl, sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot allocate %zu weights", path, xfl);
		goto out;
	}
	struct lvd_minicpmv_lora_cfg lc = { r, (float)alpha, 0.0f, rslora, sites, 0 };
	if ((rc = lvd_minicpmv_add_lora(m, &lc, err))) {
		free(xb);
		lvd_error_prefix(err, "%s: ", dir);
		goto out;
	}
	struct mcv_train *tr = m->tr;
	for (size_t i = 0; i < tr->nlora && !rc; i++) {
		struct lvd_minicpmv_lora *L = &tr->lora[i];
		size_t k = (size_t)L->layer * MCV_NSITE + (size_t)L->site;
		rc = lvd_tensor_to_f32(src[2 * k], L->A, (size_t)r * L->in, err);
		if (!rc)
			rc = lvd_tensor_to_f32(src[2 * k + 1], L->B, (size_t)L->out * r, err);
	}
	size_t off = 0;
	for (size_t wi = 0; wi < nw && !rc; wi++) {
		const struct lvd_tensor_view *t = src[2 * nsites + wi];
		if (!t)
			continue;
		size_t ne = 1;
		for (int d = 0; d < t->ndim; d++)
			ne *= (size_t)t->shape[d];
		float *p = mcv_take(xb, &off, ne);
		if (!(rc = lvd_tensor_to_f32(t, p, ne, err)))
			*ws[wi].dst = p;
	}
	free(m->xblock);   /* NULL: the adapters could only be added once */
	m->xblock = xb;
out:
	pcre2_match_data_free(tm.md);
	pcre2_code_free(tm.re);
	lvd_st_close(st);
	lvd_json_release(&j);
	free(ws), free(on), free(have), free(src);
	return rc;
}
