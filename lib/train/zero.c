/* lib/train/zero.c — ZeRO-1 sharded AdamW (contract in zero.h). */
#include "train/zero.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "nn/ops/adamw.h"
#include "nn/ops/elem.h"

void lvd_zero_destroy(struct lvd_ctx *ctx, struct lvd_zero *z)
{
	if (!z)
		return;
	lvd_optim_destroy(ctx, z->opt);
	for (int b = 0; z->stage && b < z->n_blocks; b++)
		free(z->stage[b]);
	for (int b = 0; z->gshard && b < z->n_blocks; b++)
		free(z->gshard[b]);
	free(z->stage);
	free(z->gshard);
	free(z->full);
	free(z->shard);
	free(z->lo);
	free(z->hi);
	free(z->part);
	free(z);
}

int lvd_zero_create(struct lvd_zero **out, struct lvd_ctx *ctx, const struct lvd_comm *comm,
		    const struct lvd_param_block *blocks, int n_blocks, const struct lvd_optim_cfg *cfg,
		    struct lvd_error *err)
{
	*out = NULL;
	if (n_blocks < 1 || !blocks)
		return lvd_error_set(err, LVD_ERR_INVALID, "optimiser: no parameter blocks");
	struct lvd_zero *z = calloc(1, sizeof *z);
	if (!z)
		return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
	size_t nb = (size_t)n_blocks;
	z->n_blocks = n_blocks;
	z->rank = lvd_comm_rank(comm);
	z->world = lvd_comm_world(comm);
	z->full = lvd_alloc_array(nb, sizeof *z->full);
	z->shard = lvd_alloc_array(nb, sizeof *z->shard);
	z->lo = lvd_alloc_array(nb, sizeof *z->lo);
	z->hi = lvd_alloc_array(nb, sizeof *z->hi);
	z->stage = calloc(nb, sizeof *z->stage);
	z->gshard = calloc(nb, sizeof *z->gshard);
	struct lvd_param_block *views = lvd_alloc_array(nb, sizeof *views);
	int rc = LVD_OK;
	if (!z->full || !z->shard || !z->lo || !z->hi || !z->stage || !z->gshard || !views) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
		goto out;
	}
	for (int b = 0; b < n_blocks; b++) {
		const struct lvd_param_block *f = &blocks[b];
		z->full[b] = *f;
		z->n_norms += f->tensor_off ? f->n_tensors : 1;
		size_t W = (size_t)z->world, s = f->n / W + (f->n % W != 0), tot;
		if (lvd_size_mul(&tot, s ? s : 1, W)) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: block '%s' size overflows", f->name);
			goto out;
		}
		z->shard[b] = s;
		z->lo[b] = s * (size_t)z->rank < f->n ? s * (size_t)z->rank : f->n;
		z->hi[b] = z->lo[b] + s < f->n ? z->lo[b] + s : f->n;
		z->stage[b] = lvd_alloc_array(tot, sizeof(float));
		z->gshard[b] = lvd_alloc_array(s ? s : 1, sizeof(float));
		if (!z->stage[b] || !z->gshard[b]) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory (block '%s')", f->name);
			goto out;
		}
		views[b] = *f;
		views[b].param = f->param ? f->param + z->lo[b] : NULL;
		views[b].grad = z->gshard[b];
		views[b].n = z->hi[b] - z->lo[b];
		views[b].tensor_off = NULL;
		views[b].n_tensors = 0;
	}
	if (!(z->part = lvd_alloc_array((size_t)z->n_norms, sizeof *z->part))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
		goto out;
	}
	rc = lvd_optim_create(&z->opt, ctx, views, n_blocks, cfg, err);
out:
	free(views);
	if (rc) {
		lvd_zero_destroy(ctx, z);
		return rc;
	}
	*out = z;
	return LVD_OK;
}

int lvd_zero_reduce(struct lvd_zero *z, struct lvd_ctx *ctx, struct lvd_comm *comm, double max_norm, float *norm,
		    struct lvd_error *err)
{
	int k = 0;
	for (int b = 0; b < z->n_blocks; b++) {
		const struct lvd_param_block *f = &z->full[b];
		size_t s = z->shard[b], tot = s * (size_t)z->world;
		memcpy(z->stage[b], f->grad, f->n * sizeof(float));
		memset(z->stage[b] + f->n, 0, (tot - f->n) * sizeof(float));
		int rc = lvd_comm_reduce_scatter(comm, z->gshard[b], z->stage[b], s, LVD_COMM_F32, LVD_COMM_SUM, err);
		if (rc)
			return rc;
		/* Partial sums of squares of each tensor's part inside [lo, hi). */
		int nt = f->tensor_off ? f->n_tensors : 1;
		for (int t = 0; t < nt; t++) {
			size_t tl = f->tensor_off ? f->tensor_off[t] : 0, th = f->tensor_off ? f->tensor_off[t + 1] : f->n;
			size_t a = tl > z->lo[b] ? tl : z->lo[b], e = th < z->hi[b] ? th : z->hi[b];
			z->part[k++] = a < e ? lvd_sumsq(ctx, z->gshard[b] + (a - z->lo[b]), e - a) : 0.0;
		}
	}
	int rc = lvd_comm_all_reduce(comm, z->part, (size_t)z->n_norms, LVD_COMM_F64, LVD_COMM_SUM, err);
	if (rc)
		return rc;
	double total = 0.0;
	for (int i = 0; i < z->n_norms; i++) {
		float nrm = (float)sqrt(z->part[i]);
		total += (double)nrm * (double)nrm;
	}
	*norm = (float)sqrt(total);
	float coef = lvd_optim_clip_coef(*norm, max_norm);
	if (coef == 1.0f)
		return LVD_OK;
	for (int b = 0; b < z->n_blocks; b++)
		lvd_scale(ctx, z->gshard[b], coef, z->hi[b] - z->lo[b]);
	return LVD_OK;
}

/* All-gather of src's range [lo, hi) of block b (src[n] full-size) into dst[n]. */
static int gather_block(struct lvd_zero *z, struct lvd_comm *comm, int b, const float *src, float *dst,
			struct lvd_error *err)
{
	size_t s = z->shard[b], n = z->full[b].n, lo = z->lo[b], hi = z->hi[b];
	float *mine = z->stage[b] + (size_t)z->rank * s;
	memcpy(mine, src, (hi - lo) * sizeof(float));
	memset(mine + (hi - lo), 0, (s - (hi - lo)) * sizeof(float));
	int rc = lvd_comm_all_gather(comm, z->stage[b], mine, s * sizeof(float), err);
	if (!rc)
		memcpy(dst, z->stage[b], n * sizeof(float));
	return rc;
}

int lvd_zero_update(struct lvd_zero *z, struct lvd_ctx *ctx, struct lvd_comm *comm, double lr,
		    struct lvd_error *err)
{
	lvd_optim_step(ctx, z->opt, lr);
	for (int b = 0; b < z->n_blocks; b++) {
		const struct lvd_param_block *f = &z->full[b];
		int rc = gather_block(z, comm, b, f->param + z->lo[b], f->param, err);
		if (rc)
			return rc;
	}
	return LVD_OK;
}

int lvd_zero_gather_state(struct lvd_zero *z, struct lvd_comm *comm, float **m, float **v, struct lvd_error *err)
{
	for (int b = 0; b < z->n_blocks; b++) {
		int rc = gather_block(z, comm, b, z->opt->m[b], m[b], err);
		if (!rc)
			rc = gather_block(z, comm, b, z->opt->v[b], v[b], err);
		if (rc)
			return rc;
	}
	return LVD_OK;
}

void lvd_zero_set_state(struct lvd_zero *z, float *const *m, float *const *v, int64_t step)
{
	for (int b = 0; b < z->n_blocks; b++) {
		size_t k = z->hi[b] - z->lo[b];
		memcpy(z->opt->m[b], m[b] + z->lo[b], k * sizeof(float));
		memcpy(z->opt->v[b], v[b] + z->lo[b], k * sizeof(float));
	}
	z->opt->step = step;
}
