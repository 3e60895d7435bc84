/* lib/models/minicpmv/minicpmv_peft.c — the PEFT adapter export of the minicpmv LLM's
 * LoRA (lvd_minicpmv_lora_save, minicpmv.h): adapter_model.safetensors with the hub
 * model's module names under "base_model.model." and full copies of modules_to_save
 * (embed_tokens, resampler) as PEFT 0.21 saves them, and adapter_config.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/peft.h"
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
