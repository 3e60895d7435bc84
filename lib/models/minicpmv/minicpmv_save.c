/* lib/models/minicpmv/minicpmv_save.c — lvd_minicpmv_save_hf: the model (LoRA merged,
 * trained weights as they are) as a hub MiniCPM-Llama3-V-2.5 folder through the shared
 * folder writer (lib/models/hf_save.h): the tensors of the load table under their hub
 * names (llm.*, vpm.*, resampler.*), the source folder's config.json, remote code (*.py)
 * and tokenizer / processor / generation files. */
#include <stdlib.h>
#include <string.h>

#include "models/hf_save.h"
#include "models/minicpmv/minicpmv_train.h"

/* Copied from the source folder when present, besides transformers' common set
 * (hf_save.h) and the remote code (*.py). */
static const char *const COPY_EXTRA[] = { "processor_config.json", "added_tokens.json", "tokenizer.model", NULL };

/* The LoRA adapter on the tensor `name` (NULL when none). */
static const struct lvd_minicpmv_lora *lora_of(const struct mcv_train *tr, const char *name)
{
	size_t nl = strlen(name);
	if (!tr || nl < 8 || strcmp(name + nl - 7, ".weight"))
		return NULL;
	for (size_t i = 0; i < tr->nlora; i++) {
		size_t n = strlen(tr->lora[i].module);
		if (n == nl - 7 && !strncmp(tr->lora[i].module, name, n))
			return &tr->lora[i];
	}
	return NULL;
}

int lvd_minicpmv_save_hf(struct lvd_minicpmv *m, const char *dir, const struct lvd_minicpmv_save_opts *o,
			 struct lvd_error *err)
{
	if (!o || !o->src_dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: save_hf needs the source folder");
	size_t n = mcv_weight_table(m, NULL);
	struct mcv_wspec *ws = calloc(n, sizeof *ws);
	struct lvd_hf_tensor *t = calloc(n, sizeof *t);
	if (!ws || !t) {
		free(ws), free(t);
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
	}
	mcv_weight_table(m, ws);
	for (size_t i = 0; i < n; i++) {
		size_t numel = 1;
		for (int d = 0; d < ws[i].ndim; d++)
			numel *= (size_t)ws[i].shape[d];
		t[i].name = ws[i].name, t[i].ndim = ws[i].ndim, t[i].shape = ws[i].shape;
		t[i].numel = numel, t[i].data = *ws[i].dst;
		const struct lvd_minicpmv_lora *l = lora_of(m->tr, ws[i].name);
		if (l) {
			t[i].A = l->A, t[i].B = l->B, t[i].r = m->tr->lora_r, t[i].in = l->in, t[i].out = l->out;
			t[i].s = m->tr->lora_s;
		}
	}
	struct lvd_hf_save_opts ho = { o->src_dir, o->bf16, o->max_shard_bytes, o->replace, COPY_EXTRA, ".py",
				       "minicpmv" };
	int rc = lvd_hf_save(dir, t, n, &ho, err);
	free(ws);
	free(t);
	return rc;
}
