/* lib/models/mllama/mllama_save.c — lvd_mllama_save_hf: the model (LoRA merged) as a
 * complete transformers folder (config.json, sharded safetensors + index, the source
 * folder's tokenizer/processor/generation files) through the shared folder writer
 * (lib/models/hf_save.h): this file lists the tensors under transformers' key names. */
#include <stdlib.h>
#include <string.h>

#include "models/hf_save.h"
#include "models/mllama/mllama_internal.h"

/* The LoRA adapter on parameter p (NULL when none). */
static const struct lvd_mllama_lora *lora_of(const struct lvd_mllama *m, const struct lvd_mllama_param *p)
{
	size_t ml = strlen(p->name);
	if (ml < 8 || strcmp(p->name + ml - 7, ".weight"))
		return NULL;
	for (size_t i = 0; i < m->nlora; i++) {
		size_t n = strlen(m->lora[i].module);
		if (n == ml - 7 && !strncmp(m->lora[i].module, p->name, n))
			return &m->lora[i];
	}
	return NULL;
}

int lvd_mllama_save_hf(struct lvd_mllama *m, const char *dir, const struct lvd_mllama_save_opts *o,
		       struct lvd_error *err)
{
	if (!o || !o->src_dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: save_hf needs the source folder");
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: save_hf of a device model is not written yet");
	struct lvd_hf_tensor *t = calloc(m->nparams + 1, sizeof *t);
	char (*names)[192] = calloc(m->nparams + 1, sizeof *names);
	if (!t || !names) {
		free(t), free(names);
		return lvd_error_set(err, LVD_ERR_NOMEM, "mllama: out of memory");
	}
	for (size_t i = 0; i < m->nparams; i++) {
		const struct lvd_mllama_param *p = &m->params[i];
		const struct lvd_mllama_lora *l = lora_of(m, p);
		mllama_hf_name(names[i], sizeof names[0], p->name);
		t[i].name = names[i], t[i].ndim = p->ndim, t[i].shape = p->shape, t[i].numel = p->numel, t[i].data = p->data;
		if (l) {
			t[i].A = l->A, t[i].B = l->B, t[i].r = m->lora_r, t[i].in = l->in, t[i].out = l->out;
			t[i].s = m->lora_s;
		}
	}
	struct lvd_hf_save_opts ho = { o->src_dir, o->bf16, o->max_shard_bytes, o->replace, NULL, NULL,
				       "mllama" };
	int rc = lvd_hf_save(dir, t, m->nparams, &ho, err);
	free(t);
	free(names);
	return rc;
}
