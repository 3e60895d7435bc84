/* lvd-sft's MiniCPM-Llama3-V-2.5 part (sft.h struct sft_model; docs/sft.md "MiniCPM-V"):
 * LoRA on the LLM (OpenBMB's targets by default; --train resampler adds the resampler as
 * PEFT modules_to_save), --full of the groups vision / resampler / llm (writable weights:
 * lvd_minicpmv_make_mutable; one AdamW block per trained tensor, by hub name), the Aligner
 * over the captured decoder layers (--layers, d_in = the LLM's heads), the loader's MCV
 * records, one micro-step through lvd_lstep_mcv_run (--minicpm-map), and the export: the
 * PEFT adapter, or with --merge and for --full runs the complete hub folder
 * (lvd_minicpmv_save_hf, LoRA merged). */
#include <stdlib.h>
#include <string.h>

#include "sft.h"
#include "core/log.h"
#include "core/parse.h"
#include "io/fileutil.h"
#include "lavender/lstep_mcv.h"
#include "train/loader.h"

/* LoRA (+ the resampler with --train resampler) or --full of the train_mask groups; the
 * trained weights made writable. grads: the gradient blocks (grad_flat: the LoRA block or
 * the LLM's; grad_flat2: the vision tower + resampler's when they train). */
static int mcv_setup(struct trainer *t, int grads, struct lvd_error *err)
{
	const struct opts *o = t->o;
	const unsigned tm = o->train_mask;
	int rc = lvd_mcv_parse_map(o->minicpm_map ? o->minicpm_map : "rollout", &t->map, err);
	if (rc || (rc = lvd_minicpmv_load(&t->mc, o->model, err)))
		return rc;
	lvd_minicpmv_set_ctx(t->mc, t->ctx);
	if (!o->full) {
		struct lvd_minicpmv_lora_cfg lc = {o->lora_r, (float)o->lora_alpha, (float)o->lora_dropout, 0,
						   o->lora_targets, o->seed};
		if ((rc = lvd_minicpmv_add_lora(t->mc, &lc, err)))
			return rc;
		t->lora = lvd_minicpmv_lora_params(t->mc, &t->n_lora);
		t->dlora = lvd_minicpmv_lora_grads(t->mc, &t->n_lora);
		t->grad_flat = t->dlora;
		t->n_grad_flat = t->n_lora;
	}
	if (tm && (rc = lvd_minicpmv_make_mutable(t->mc, err)))
		return rc;
	if (!grads)
		return 0;
	if (o->full && (tm & SFT_MCV_LLM)) {
		if ((rc = lvd_minicpmv_enable_grads(t->mc, err)))
			return rc;
		t->grad_flat = lvd_minicpmv_llm_grad_block(t->mc, &t->n_grad_flat);
	}
	if (tm & (SFT_MCV_VISION | SFT_MCV_RESAMPLER)) {
		/* the resampler always gets gradients then (the vision tower's flow through it) */
		if ((rc = lvd_minicpmv_vision_train(t->mc, (tm & SFT_MCV_VISION) != 0, err)))
			return rc;
		t->grad_flat2 = lvd_minicpmv_vision_grad_block(t->mc, &t->n_grad_flat2);
		if (!t->grad_flat) { /* --full without llm: one flat block */
			t->grad_flat = t->grad_flat2, t->n_grad_flat = t->n_grad_flat2;
			t->grad_flat2 = NULL, t->n_grad_flat2 = 0;
		}
	}
	return 0;
}

/* {lora} without --full, then one block per trained parameter (its hub name). */
static int mcv_blocks(struct trainer *t, struct lvd_error *err)
{
	const struct opts *o = t->o;
	const struct lvd_minicpmv_param *p = NULL;
	const struct lvd_minicpmv_vparam *vp = NULL;
	const size_t np = lvd_minicpmv_params(t->mc, &p);
	const int nvp = lvd_minicpmv_vision_params(t->mc, &vp);
	t->blocks = calloc(np + 2, sizeof *t->blocks);
	if (!t->blocks)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int nb = 0;
	if (!o->full)
		t->blocks[nb++] = (struct lvd_param_block){"lora", t->lora, t->dlora, t->n_lora, o->wd, NULL, 0};
	for (size_t i = 0; i < np; i++) {
		const unsigned g = lvd_minicpmv_param_group(p[i].name);
		if (!(g & o->train_mask))
			continue;
		float *grad = NULL;
		size_t n = 0;
		if (g == SFT_MCV_LLM)
			grad = lvd_minicpmv_llm_grad(t->mc, p[i].name, &n);
		for (int k = 0; g != SFT_MCV_LLM && k < nvp && !grad; k++)
			if (!strcmp(vp[k].name, p[i].name))
				grad = vp[k].grad, n = vp[k].n;
		if (!grad || n != p[i].n)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: no gradient for %s", o->model, p[i].name);
		t->blocks[nb++] = (struct lvd_param_block){p[i].name, p[i].data, grad, n, o->wd, NULL, 0};
	}
	t->n_blocks = nb;
	return 0;
}

/* export: the LoRA block and the trained groups' tensors over the base's. */
static int mcv_load_trained(struct trainer *t, struct lvd_st *sf, struct lvd_error *err)
{
	int rc = t->o->full ? 0 : load_block(sf, "lora", t->lora, t->n_lora, err);
	const struct lvd_minicpmv_param *p = NULL;
	const size_t np = lvd_minicpmv_params(t->mc, &p);
	for (size_t i = 0; i < np && !rc; i++)
		if (lvd_minicpmv_param_group(p[i].name) & t->o->train_mask)
			rc = load_block(sf, p[i].name, p[i].data, p[i].n, err);
	return rc;
}

/* --layers: decoder layers of the LLM (default all, as the official hook replaces every
 * self-attention layer); the Aligner's d_in = its heads and every captured layer used. */
static int mcv_latt(struct trainer *t, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(t->mc);
	const char *p = t->o->layers;
	free(t->mlayers);
	t->n_mlayers = 0;
	if (!(t->mlayers = calloc((size_t)c->t_layers + 1, sizeof *t->mlayers)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	if (!p) {
		for (int l = 0; l < c->t_layers; l++)
			t->mlayers[t->n_mlayers++] = l;
	}
	while (p && *p) {
		char buf[32];
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof buf || t->n_mlayers >= c->t_layers || t->n_mlayers >= LVD_LATT_MAX_LAYERS)
			return lvd_error_set(err, LVD_ERR_INVALID, "--layers: bad list '%s'", t->o->layers);
		memcpy(buf, p, n);
		buf[n] = 0;
		int64_t v;
		if (lvd_parse_i64(buf, 0, c->t_layers - 1, &v, "--layers entry (a decoder layer)", err))
			return LVD_ERR_INVALID;
		for (int k = 0; k < t->n_mlayers; k++)
			if (t->mlayers[k] == (int)v)
				return lvd_error_set(err, LVD_ERR_INVALID, "--layers: layer %d twice", (int)v);
		t->mlayers[t->n_mlayers++] = (int)v;
		p += n + (p[n] == ',');
	}
	lvd_latt_cfg_default(&t->lcfg, c->t_heads, t->n_mlayers);
	struct opts o = *t->o;
	o.layers = NULL; /* the Aligner uses every captured layer */
	return apply_latt_opts(&o, &t->lcfg, err);
}

static void mcv_loader_opts(const struct trainer *t, struct lvd_loader_opts *lo)
{
	(void)t;
	lo->model_kind = LVD_LOADER_MINICPMV;
}

static void mcv_zero_grads(struct trainer *t)
{
	lvd_minicpmv_zero_grads(t->mc);
	lvd_minicpmv_vision_zero_grads(t->mc);
}
static void mcv_set_eval(struct trainer *t, int eval) { lvd_minicpmv_set_eval(t->mc, eval); }

static int mcv_micro(struct trainer *t, const struct lvd_loader_batch *b, const struct sft_micro *mi, float *dal,
		     struct lvd_lstep_out *out, struct lvd_error *err)
{
	struct lvd_minicpmv_batch mb;
	lvd_loader_batch_view_mcv(b, &mb);
	mb.dropout_step = mi->dropout_step;
	struct lvd_lstep_mcv_in in;
	memset(&in, 0, sizeof in);
	in.batch = &mb;
	in.samples = b->mcv;
	in.n_layers = t->n_mlayers;
	in.layers = t->mlayers;
	in.map = t->map;
	in.params = t->al;
	in.cfg = &t->lcfg;
	in.pair_count = mi->pair_count;
	in.lambda = mi->lambda;
	in.ce_scale = mi->ce_scale;
	in.backward = mi->backward;
	return lvd_lstep_mcv_run(t->ctx, t->mc, out, dal, NULL, &in, err);
}

static int mcv_export(struct trainer *t, const char *dir, const struct export_cfg *ec, struct lvd_error *err)
{
	if (t->o->full || ec->merge) {
		struct lvd_minicpmv_save_opts so = {t->o->model, ec->bf16, ec->max_shard, ec->replace};
		return lvd_minicpmv_save_hf(t->mc, dir, &so, err);
	}
	int rc = lvd_mkdir_p(dir, err);
	return rc ? rc : lvd_minicpmv_lora_save(t->mc, dir, t->o->model,
						(t->o->train_mask & SFT_MCV_RESAMPLER) ? "resampler" : NULL, err);
}

static void mcv_free(struct trainer *t)
{
	lvd_minicpmv_free(t->mc);
	free(t->mlayers);
	t->mc = NULL;
	t->mlayers = NULL;
	t->n_mlayers = 0;
}

static const char *const MCV_GROUPS[3] = {"vision", "resampler", "llm"};

const struct sft_model sft_minicpmv = {"minicpmv", MCV_GROUPS, 3, mcv_setup, mcv_blocks, mcv_load_trained, mcv_latt,
				       mcv_loader_opts, mcv_zero_grads, mcv_set_eval, mcv_micro, mcv_export, mcv_free};
