/* lvd-sft's MiniCPM-Llama3-V-2.5 part (sft.h struct sft_model; docs/sft.md "MiniCPM-V"):
 * LoRA on the LLM (OpenBMB's targets by default), the Aligner over the captured decoder
 * layers (--layers, d_in = the LLM's heads), the loader's MCV records, one micro-step
 * through lvd_lstep_mcv_run (--minicpm-map), and the PEFT adapter export. --full is
 * refused: the model's weights load read-only (minicpmv.h) and it has no full save yet. */
#include <stdlib.h>
#include <string.h>

#include "sft.h"
#include "core/parse.h"
#include "io/fileutil.h"
#include "lavender/lstep_mcv.h"
#include "train/loader.h"

static int mcv_setup(struct trainer *t, int grads, struct lvd_error *err)
{
	const struct opts *o = t->o;
	(void)grads;
	if (o->full)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: --full is not supported for MiniCPM-V yet (its weights "
				     "load read-only and there is no full-model save); train LoRA", o->model);
	int rc = lvd_mcv_parse_map(o->minicpm_map ? o->minicpm_map : "rollout", &t->map, err);
	if (rc || (rc = lvd_minicpmv_load(&t->mc, o->model, err)))
		return rc;
	lvd_minicpmv_set_ctx(t->mc, t->ctx);
	struct lvd_minicpmv_lora_cfg lc = {o->lora_r, (float)o->lora_alpha, (float)o->lora_dropout, 0, o->lora_targets,
					   o->seed};
	if ((rc = lvd_minicpmv_add_lora(t->mc, &lc, err)))
		return rc;
	t->lora = lvd_minicpmv_lora_params(t->mc, &t->n_lora);
	t->dlora = lvd_minicpmv_lora_grads(t->mc, &t->n_lora);
	t->grad_flat = t->dlora;
	t->n_grad_flat = t->n_lora;
	return 0;
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

static void mcv_zero_grads(struct trainer *t) { lvd_minicpmv_zero_grads(t->mc); }
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
	if (ec->merge)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: --merge: there is no MiniCPM-V full-model save yet "
				     "(export the PEFT adapter)", t->o->model);
	int rc = lvd_mkdir_p(dir, err);
	return rc ? rc : lvd_minicpmv_lora_save(t->mc, dir, t->o->model, NULL, err);
}

static void mcv_free(struct trainer *t)
{
	lvd_minicpmv_free(t->mc);
	free(t->mlayers);
	t->mc = NULL;
	t->mlayers = NULL;
	t->n_mlayers = 0;
}

const struct sft_model sft_minicpmv = {"minicpmv", mcv_setup, mcv_latt, mcv_loader_opts, mcv_zero_grads,
				       mcv_set_eval, mcv_micro, mcv_export, mcv_free};
