/* lvd-sft's mllama part (sft.h struct sft_model): loading with LoRA or --full, the
 * Lavender cfg over the cross-attention layers, the loader's tile geometry, one
 * micro-step through lvd_lstep_run, and the PEFT adapter / transformers folder export. */
#include <stdlib.h>
#include <string.h>

#include "sft.h"
#include "io/fileutil.h"
#include "lavender/lstep.h"
#include "train/loader.h"

/* The model: a frozen base with LoRA adapters, or with --full a mutable copy with full
 * gradients (grads: a run; export loads the weights only). */
static int ml_setup(struct trainer *t, int grads, struct lvd_error *err)
{
	const struct opts *o = t->o;
	int rc = o->full ? lvd_mllama_load(&t->m, o->model, err) : lvd_mllama_load_frozen(&t->m, o->model, err);
	if (rc)
		return rc;
	lvd_mllama_set_ctx(t->m, t->ctx);
	if (o->full) {
		if (!grads)
			return 0;
		lvd_mllama_freeze(t->m, LVD_MLLAMA_ALL_GROUPS & ~o->train_mask);
		if ((rc = lvd_mllama_enable_grads(t->m, err)))
			return rc;
		t->grad_flat = lvd_mllama_grad_block(t->m, &t->n_grad_flat);
		return 0;
	}
	struct lvd_mllama_lora_cfg lc = {o->lora_r, (float)o->lora_alpha, (float)o->lora_dropout, 0, o->lora_targets,
					 o->seed};
	if ((rc = lvd_mllama_add_lora(t->m, &lc, err)))
		return rc;
	t->lora = lvd_mllama_lora_params(t->m, &t->n_lora);
	t->dlora = lvd_mllama_lora_grads(t->m, &t->n_lora);
	t->grad_flat = t->dlora;
	t->n_grad_flat = t->n_lora;
	return 0;
}

static int ml_latt(struct trainer *t, struct lvd_error *err)
{
	const struct lvd_mllama_config *mc = lvd_mllama_cfg(t->m);
	lvd_latt_cfg_default(&t->lcfg, mc->t_heads, mc->n_cross);
	return apply_latt_opts(t->o, &t->lcfg, err);
}

static void ml_loader_opts(const struct trainer *t, struct lvd_loader_opts *lo)
{
	const struct lvd_mllama_config *mc = lvd_mllama_cfg(t->m);
	lo->model_kind = LVD_LOADER_MLLAMA;
	lo->heads = mc->t_heads;
	lo->tile_tok = (mc->v_image_size / mc->v_patch) * (mc->v_image_size / mc->v_patch) + 1;
	lo->official = !strcmp(t->o->geometry, "official");
	lo->image_token = mc->image_token_index;
}

static void ml_zero_grads(struct trainer *t) { lvd_mllama_zero_grads(t->m); }
static void ml_set_eval(struct trainer *t, int eval) { lvd_mllama_set_eval(t->m, eval); }

static int ml_micro(struct trainer *t, const struct lvd_loader_batch *b, const struct sft_micro *mi, float *dal,
		    struct lvd_lstep_out *out, struct lvd_error *err)
{
	struct lvd_mllama_batch mb;
	struct lvd_lstep_in in;
	lvd_loader_batch_view(b, &mb);
	mb.dropout_step = mi->dropout_step;
	memset(&in, 0, sizeof in);
	in.batch = &mb;
	in.plans = b->plans;
	in.params = t->al;
	in.cfg = &t->lcfg;
	in.lambda = mi->lambda;
	in.backward = mi->backward;
	in.ce_scale = mi->ce_scale;
	in.pair_count = mi->pair_count;
	in.key_str = mi->key_str;
	in.key_n = mi->key_n;
	return lvd_lstep_run(t->ctx, t->m, out, dal, NULL, &in, err);
}

/* The PEFT adapter, or with ec->merge or a --full run the complete transformers folder. */
static int ml_export(struct trainer *t, const char *dir, const struct export_cfg *ec, struct lvd_error *err)
{
	if (t->o->full || ec->merge) {
		struct lvd_mllama_save_opts so = {t->o->model, ec->bf16, ec->max_shard, ec->replace};
		return lvd_mllama_save_hf(t->m, dir, &so, err);
	}
	int rc = lvd_mkdir_p(dir, err);
	return rc ? rc : lvd_mllama_lora_save(t->m, dir, t->o->model, 0, err);
}

static void ml_free(struct trainer *t)
{
	lvd_mllama_free(t->m);
	t->m = NULL;
}

const struct sft_model sft_mllama = {"mllama", ml_setup, ml_latt, ml_loader_opts, ml_zero_grads, ml_set_eval,
				     ml_micro, ml_export, ml_free};

const struct sft_model *sft_model_of(int kind)
{
	return kind == LVD_LOADER_MINICPMV ? &sft_minicpmv : &sft_mllama;
}
