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
/* The training memory modes (issue #20): --recompute, and the fused LM head + CE (no
 * [B·T, V] logits) unless --word-keys argmax, which reads the logits. */
static void ml_memory_modes(struct lvd_mllama *m, const struct opts *o)
{
	lvd_mllama_set_recompute(m, (enum lvd_mllama_recompute)o->recompute);
	lvd_mllama_set_xent_chunk(m, o->argmax_keys ? 0 : LVD_MLLAMA_XENT_CHUNK);
}

static int ml_setup(struct trainer *t, int grads, struct lvd_error *err)
{
	const struct opts *o = t->o;
	int rc = o->full ? lvd_mllama_load(&t->m, o->model, err) : lvd_mllama_load_frozen(&t->m, o->model, err);
	if (rc)
		return rc;
	lvd_mllama_set_ctx(t->m, t->ctx);
	ml_memory_modes(t->m, o);
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

/* Optimiser blocks. LoRA: {lora}. --full: the trainable parameters lie in the model's one
 * parameter block (and their gradients at the same offsets in its one gradient block);
 * each maximal run of consecutive trainable parameters is one block "model" (all four
 * groups: the whole parameter block) with per-tensor offsets for the clipping norm;
 * frozen groups get no block and no moments. */
static int ml_blocks(struct trainer *t, struct lvd_error *err)
{
	const struct opts *o = t->o;
	size_t np = o->full ? lvd_mllama_nparams(t->m) : 0;
	t->blocks = calloc(np + 2, sizeof *t->blocks);
	t->toff = calloc(np + 2, sizeof *t->toff);
	if (!t->blocks || !t->toff)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int nb = 0;
	if (!o->full) {
		t->blocks[nb++] = (struct lvd_param_block){"lora", t->lora, t->dlora, t->n_lora, o->wd, NULL, 0};
	} else {
		const struct lvd_mllama_config *c = lvd_mllama_cfg(t->m);
		for (size_t i = 0; i < np;) {
			struct lvd_mllama_param *p0 = lvd_mllama_param_at(t->m, i);
			if (!(lvd_mllama_param_group(c, p0->name) & o->train_mask)) {
				i++;
				continue;
			}
			size_t j = i;
			while (j < np && (lvd_mllama_param_group(c, lvd_mllama_param_at(t->m, j)->name) & o->train_mask))
				j++;
			size_t *off = malloc((j - i + 1) * sizeof *off);
			if (!off)
				return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
			for (size_t k = i; k < j; k++)
				off[k - i] = (size_t)(lvd_mllama_param_at(t->m, k)->data - p0->data);
			struct lvd_mllama_param *pl = lvd_mllama_param_at(t->m, j - 1);
			size_t n = (size_t)(pl->data - p0->data) + pl->numel;
			off[j - i] = n;
			t->toff[nb] = off;
			t->blocks[nb++] = (struct lvd_param_block){"model", p0->data, p0->grad, n, o->wd, off, (int)(j - i)};
			i = j;
		}
	}
	t->n_blocks = nb;
	return 0;
}

/* export: the LoRA block, or (--full) the trained groups' parameters over the base's. */
static int ml_load_trained(struct trainer *t, struct lvd_st *sf, struct lvd_error *err)
{
	if (!t->o->full)
		return load_block(sf, "lora", t->lora, t->n_lora, err);
	for (size_t i = 0; i < lvd_mllama_nparams(t->m); i++) {
		struct lvd_mllama_param *pa = lvd_mllama_param_at(t->m, i);
		int rc = (lvd_mllama_param_group(lvd_mllama_cfg(t->m), pa->name) & t->o->train_mask) ?
			load_block(sf, pa->name, pa->data, pa->numel, err) : 0;
		if (rc)
			return rc;
	}
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

/* in LVD_MLLAMA_* bit order */
static const char *const ML_GROUPS[4] = {"vision", "projector", "text", "cross"};

const struct sft_model sft_mllama = {"mllama", ML_GROUPS, 4, ml_setup, ml_blocks, ml_load_trained, ml_latt,
				     ml_loader_opts, ml_zero_grads, ml_set_eval, ml_micro, ml_export, ml_free};

const struct sft_model *sft_model_of(int kind)
{
	return kind == LVD_LOADER_MINICPMV ? &sft_minicpmv : &sft_mllama;
}
