/* lib/models/minicpmv/minicpmv_lora.c — LoRA adapters on the minicpmv LLM's linears
 * (lvd_minicpmv_add_lora, minicpmv.h): target matching in PEFT's list form, one block of
 * every A and B (and one of their gradients), A seeded, B zero. The numerics are the
 * shared glue of lib/models/llama_layer.c, called from minicpmv_text.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_train.h"
#include "nn/ops/lora.h"

static void site_dims(const struct lvd_minicpmv_config *c, int s, int *in, int *out)
{
	int D = c->t_hidden, KV = c->t_kv_heads * c->t_head_dim, It = c->t_inter;
	*in = s == LVD_LLAMA_DOWN ? It : D;
	*out = (s == LVD_LLAMA_K || s == LVD_LLAMA_V) ? KV : (s == LVD_LLAMA_GATE || s == LVD_LLAMA_UP) ? It : D;
}

int lvd_minicpmv_add_lora(struct lvd_minicpmv *m, const struct lvd_minicpmv_lora_cfg *lc, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	struct mcv_train *tr = mcv_train_get(m);
	if (!tr)
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory");
	if (tr->nlora)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: LoRA already added");
	if (lc->r < 1 || !(lc->alpha > 0) || !(lc->dropout >= 0 && lc->dropout < 1) || !lc->targets)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: LoRA: r >= 1, alpha > 0, 0 <= dropout < 1 and targets "
				     "required");
	if (strlen(lc->targets) >= sizeof tr->lora_targets)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: LoRA target list longer than %zu bytes",
				     sizeof tr->lora_targets - 1);
	char name[96];
	size_t n = 0, fl = 0;
	for (int l = 0; l < c->t_layers; l++)
		for (int s = 0; s < MCV_NSITE; s++) {
			mcv_site_module(name, sizeof name, l, s);
			if (!lvd_lora_matches(name, lc->targets))
				continue;
			int in, out;
			site_dims(c, s, &in, &out);
			mcv_take(NULL, &fl, (size_t)lc->r * in);
			mcv_take(NULL, &fl, (size_t)lc->r * out);
			n++;
		}
	if (!n)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv: LoRA targets '%s' match no module", lc->targets);
	tr->lora = calloc(n, sizeof *tr->lora);
	tr->lparams = lvd_alloc_aligned(fl, sizeof(float));
	tr->lgrads = lvd_alloc_aligned(fl, sizeof(float));
	if (!tr->lora || !tr->lparams || !tr->lgrads) {
		free(tr->lora), free(tr->lparams), free(tr->lgrads);
		tr->lora = NULL, tr->lparams = tr->lgrads = NULL;
		return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: out of memory for LoRA");
	}
	memset(tr->lparams, 0, sizeof(float) * fl);
	memset(tr->lgrads, 0, sizeof(float) * fl);
	size_t off = 0, i = 0;
	for (int l = 0; l < c->t_layers; l++)
		for (int s = 0; s < MCV_NSITE; s++) {
			mcv_site_module(name, sizeof name, l, s);
			if (!lvd_lora_matches(name, lc->targets))
				continue;
			struct lvd_minicpmv_lora *L = &tr->lora[i];
			snprintf(L->module, sizeof L->module, "%s", name);
			L->layer = l, L->site = s;
			site_dims(c, s, &L->in, &L->out);
			L->A = mcv_take(tr->lparams, &off, (size_t)lc->r * L->in);
			L->B = mcv_take(tr->lparams, &off, (size_t)lc->r * L->out);
			L->dA = tr->lgrads + (L->A - tr->lparams);
			L->dB = tr->lgrads + (L->B - tr->lparams);
			lvd_lora_init_a(m->ctx, L->A, lc->r, L->in, lc->seed + i);
			tr->site[(size_t)l * MCV_NSITE + s] = L;
			i++;
		}
	tr->nlora = n;
	tr->lsize = fl;
	tr->lora_r = lc->r;
	tr->lora_s = lc->rslora ? lc->alpha / sqrtf((float)lc->r) : lc->alpha / (float)lc->r;
	tr->lora_p = lc->dropout;
	tr->lora_alpha = lc->alpha;
	tr->rslora = lc->rslora;
	tr->lora_seed = lc->seed;
	snprintf(tr->lora_targets, sizeof tr->lora_targets, "%s", lc->targets);
	return 0;
}

size_t lvd_minicpmv_nlora(const struct lvd_minicpmv *m) { return m->tr ? m->tr->nlora : 0; }

struct lvd_minicpmv_lora *lvd_minicpmv_lora_at(struct lvd_minicpmv *m, size_t i)
{
	return m->tr && i < m->tr->nlora ? &m->tr->lora[i] : NULL;
}

float *lvd_minicpmv_lora_params(struct lvd_minicpmv *m, size_t *n)
{
	*n = m->tr && m->tr->nlora ? m->tr->lsize : 0;
	return *n ? m->tr->lparams : NULL;
}

float *lvd_minicpmv_lora_grads(struct lvd_minicpmv *m, size_t *n)
{
	*n = m->tr && m->tr->nlora ? m->tr->lsize : 0;
	return *n ? m->tr->lgrads : NULL;
}

void lvd_minicpmv_set_eval(struct lvd_minicpmv *m, int eval)
{
	struct mcv_train *tr = mcv_train_get(m);
	if (tr)
		tr->eval = eval != 0;
}
