/* lib/train/optim.c — AdamW over parameter blocks and gradient clipping (contract in
 * optim.h; the per-element update is lib/nn/ops/adamw_cpu.c). */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "nn/ops/adamw.h"
#include "nn/ops/elem.h"

static int check_block(const struct lvd_param_block *b, int i, struct lvd_error *err)
{
	const char *nm = b->name ? b->name : "(unnamed)";
	if (b->n > 0 && (!b->param || !b->grad))
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: block %d '%s': NULL parameter or gradient buffer", i, nm);
	if (!(b->wd >= 0.0) || !isfinite(b->wd))
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: block %d '%s': weight decay %g must be finite and >= 0", i, nm, b->wd);
	if (b->tensor_off) {
		if (b->n_tensors < 1 || b->tensor_off[0] != 0 || b->tensor_off[b->n_tensors] != b->n)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "optimiser: block %d '%s': tensor offsets must run from 0 to %zu over %d tensors",
					     i, nm, b->n, b->n_tensors);
		for (int t = 0; t < b->n_tensors; t++)
			if (b->tensor_off[t + 1] < b->tensor_off[t])
				return lvd_error_set(err, LVD_ERR_INVALID,
						     "optimiser: block %d '%s': tensor offset %d decreases", i, nm, t + 1);
	}
	return LVD_OK;
}

int lvd_optim_create(struct lvd_optim **out, struct lvd_ctx *ctx, const struct lvd_param_block *blocks,
		     int n_blocks, const struct lvd_optim_cfg *cfg, struct lvd_error *err)
{
	*out = NULL;
	if (n_blocks < 1 || !blocks)
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: no parameter blocks");
	if (!(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0) || !(cfg->beta2 >= 0.0 && cfg->beta2 < 1.0))
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: betas (%g, %g) must lie in [0, 1)",
				     cfg->beta1, cfg->beta2);
	if (!(cfg->eps >= 0.0) || !isfinite(cfg->eps))
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: eps %g must be finite and >= 0", cfg->eps);
	size_t total = 0;
	for (int i = 0; i < n_blocks; i++) {
		int rc = check_block(&blocks[i], i, err);
		if (rc)
			return rc;
		if (lvd_size_add(&total, total, blocks[i].n))
			return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: parameter count overflows");
	}
	size_t floats, bytes;
	if (lvd_size_mul(&floats, total, 2) || lvd_size_mul(&bytes, floats, sizeof(float)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: state size overflows");

	struct lvd_optim *o = calloc(1, sizeof *o);
	if (!o)
		return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
	o->blocks = lvd_alloc_array((size_t)n_blocks, sizeof *o->blocks);
	o->m = lvd_alloc_array((size_t)n_blocks, sizeof *o->m);
	o->v = lvd_alloc_array((size_t)n_blocks, sizeof *o->v);
	o->state = lvd_buf_alloc(ctx, bytes);
	if (!o->blocks || !o->m || !o->v || !o->state) {
		lvd_optim_destroy(ctx, o);
		return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: cannot allocate %zu bytes of moments", bytes);
	}
	lvd_buf_zero(ctx, o->state, bytes);
	o->n_blocks = n_blocks;
	o->state_floats = floats;
	size_t off = 0;
	for (int i = 0; i < n_blocks; i++) {
		o->blocks[i] = blocks[i];
		o->m[i] = o->state + off;
		o->v[i] = o->state + total + off;
		off += blocks[i].n;
	}
	o->beta1 = cfg->beta1;
	o->beta2 = cfg->beta2;
	o->eps = cfg->eps;
	o->step = 0;
	*out = o;
	return LVD_OK;
}

void lvd_optim_destroy(struct lvd_ctx *ctx, struct lvd_optim *opt)
{
	if (!opt)
		return;
	if (opt->state)
		lvd_buf_free(ctx, opt->state);
	free(opt->blocks);
	free(opt->m);
	free(opt->v);
	free(opt);
}

float lvd_optim_grad_norm(struct lvd_ctx *ctx, const struct lvd_optim *opt)
{
	/* torch: norms = [vector_norm(g) for g] (fp32 each), total = vector_norm(stack(norms)) */
	double total = 0.0;
	for (int i = 0; i < opt->n_blocks; i++) {
		const struct lvd_param_block *b = &opt->blocks[i];
		int nt = b->tensor_off ? b->n_tensors : 1;
		for (int t = 0; t < nt; t++) {
			size_t lo = b->tensor_off ? b->tensor_off[t] : 0;
			size_t hi = b->tensor_off ? b->tensor_off[t + 1] : b->n;
			float nrm = (float)sqrt(lvd_sumsq(ctx, b->grad + lo, hi - lo));
			total += (double)nrm * (double)nrm;
		}
	}
	return (float)sqrt(total);
}

float lvd_optim_clip_coef(float norm, double max_norm)
{
	if (!(max_norm > 0.0))
		return 1.0f;
	/* torch: clip_coef = max_norm / (total_norm + 1e-6) on an fp32 tensor, which
	 * Tensor.__rtruediv__ evaluates as reciprocal(total_norm + 1e-6) * max_norm;
	 * clamp(max = 1.0) keeps a NaN. */
	float d = norm + (float)1e-6;
	float coef = (1.0f / d) * (float)max_norm;
	return coef > 1.0f ? 1.0f : coef;
}

float lvd_optim_clip(struct lvd_ctx *ctx, struct lvd_optim *opt, double max_norm)
{
	float norm = lvd_optim_grad_norm(ctx, opt);
	float coef = lvd_optim_clip_coef(norm, max_norm);
	if (coef == 1.0f)       /* torch multiplies by 1.0 here: the same values */
		return norm;
	for (int i = 0; i < opt->n_blocks; i++)
		lvd_scale(ctx, opt->blocks[i].grad, coef, opt->blocks[i].n);
	return norm;
}

void lvd_optim_step(struct lvd_ctx *ctx, struct lvd_optim *opt, double lr)
{
	opt->step++;
	for (int i = 0; i < opt->n_blocks; i++) {
		const struct lvd_param_block *b = &opt->blocks[i];
		lvd_adamw_step(ctx, b->param, opt->m[i], opt->v[i], b->grad, b->n, lr,
			       opt->beta1, opt->beta2, opt->eps, b->wd, opt->step);
	}
}
