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
	for (int b = 0; z->gshard && b < z->n_blocks; b++)
		free(z->gshard[b]);
	free(z->gshard);
	free(z->full);
	free(z->shard);
	free(z->lo);
	free(z->hi);
	free(z->tail);
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
	z->gshard = calloc(nb, sizeof *z->gshard);
	struct lvd_param_block *views = lvd_alloc_array(nb, sizeof *views);
	int rc = LVD_OK;
	if (!z->full || !z->shard || !z->lo || !z->hi || !z->gshard || !views) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
		goto out;
	}
	const size_t W = (size_t)z->world, last = W - 1;
	for (int b = 0; b < n_blocks; b++) {
		const struct lvd_param_block *f = &blocks[b];
		z->full[b] = *f;
		z->n_norms += f->tensor_off ? f->n_tensors : 1;
		size_t s = f->n / W;
		z->shard[b] = s;
		z->n_tail += f->n - s * W;
		z->lo[b] = s * (size_t)z->rank;
		z->hi[b] = (size_t)z->rank == last ? f->n : z->lo[b] + s;
		size_t k = z->hi[b] - z->lo[b];
		if (!(z->gshard[b] = lvd_alloc_array(k ? k : 1, sizeof(float)))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory (block '%s')", f->name);
			goto out;
		}
		views[b] = *f;
		views[b].param = f->param ? f->param + z->lo[b] : NULL;
		views[b].grad = z->gshard[b];
		views[b].n = k;
		views[b].tensor_off = NULL;
		views[b].n_tensors = 0;
	}
	z->part = lvd_alloc_array((size_t)z->n_norms, sizeof *z->part);
	z->tail = lvd_alloc_array(z->n_tail ? z->n_tail : 1, sizeof *z->tail);
	if (!z->part || !z->tail) {
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
	const size_t W = (size_t)z->world;
	const int last = z->rank == z->world - 1;
	/* The aligned part of each block straight from the gradient buffer; the tails (fewer
	 * than W values per block) of every block in one all-reduce. */
	size_t k = 0;
	for (int b = 0; b < z->n_blocks; b++) {
		const struct lvd_param_block *f = &z->full[b];
		size_t s = z->shard[b], nt = f->n - s * W;
		if (s > 0) {
			int rc = lvd_comm_reduce_scatter(comm, z->gshard[b], f->grad, s, LVD_COMM_F32, LVD_COMM_SUM, err);
			if (rc)
				return rc;
		}
		memcpy(z->tail + k, f->grad + s * W, nt * sizeof(float));
		k += nt;
	}
	if (z->n_tail > 0) {
		int rc = lvd_comm_all_reduce(comm, z->tail, z->n_tail, LVD_COMM_F32, LVD_COMM_SUM, err);
		if (rc)
			return rc;
	}
	k = 0;
	int i = 0;
	for (int b = 0; b < z->n_blocks; b++) {
		const struct lvd_param_block *f = &z->full[b];
		size_t s = z->shard[b], nt = f->n - s * W;
		if (last)
			memcpy(z->gshard[b] + s, z->tail + k, nt * sizeof(float));
		k += nt;
		/* Partial sums of squares of each tensor's part inside [lo, hi). */
		int ntens = f->tensor_off ? f->n_tensors : 1;
		for (int t = 0; t < ntens; t++) {
			size_t tl = f->tensor_off ? f->tensor_off[t] : 0, th = f->tensor_off ? f->tensor_off[t + 1] : f->n;
			size_t a = tl > z->lo[b] ? tl : z->lo[b], e = th < z->hi[b] ? th : z->hi[b];
			z->part[i++] = a < e ? lvd_sumsq(ctx, z->gshard[b] + (a - z->lo[b]), e - a) : 0.0;
		}
	}
	int rc = lvd_comm_all_reduce(comm, z->part, (size_t)z->n_norms, LVD_COMM_F64, LVD_COMM_SUM, err);
	if (rc)
		return rc;
	double total = 0.0;
	for (int t = 0; t < z->n_norms; t++) {
		float nrm = (float)sqrt(z->part[t]);
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

/* All-gather of every block's ranges: src[b] holds this rank's [lo, hi) of block b
 * (src[b] == dst[b] + lo: already in place); dst[b] ([n] each) receives the whole block.
 * The aligned parts by an in-place all-gather, the tails by one broadcast from the last
 * rank. */
static int gather(struct lvd_zero *z, struct lvd_comm *comm, float *const *src, float *const *dst,
		  struct lvd_error *err)
{
	const size_t W = (size_t)z->world;
	const int last = z->rank == z->world - 1;
	size_t k = 0;
	for (int b = 0; b < z->n_blocks; b++) {
		size_t s = z->shard[b], nt = z->full[b].n - s * W;
		if (src[b] != dst[b] + z->lo[b])
			memcpy(dst[b] + z->lo[b], src[b], (z->hi[b] - z->lo[b]) * sizeof(float));
		if (s > 0) {
			int rc = lvd_comm_all_gather(comm, dst[b], dst[b] + z->lo[b], s * sizeof(float), err);
			if (rc)
				return rc;
		}
		if (last)
			memcpy(z->tail + k, dst[b] + s * W, nt * sizeof(float));
		k += nt;
	}
	if (z->n_tail == 0)
		return LVD_OK;
	int rc = lvd_comm_broadcast(comm, z->tail, z->n_tail * sizeof(float), z->world - 1, err);
	if (rc)
		return rc;
	k = 0;
	for (int b = 0; b < z->n_blocks; b++) {
		size_t s = z->shard[b], nt = z->full[b].n - s * W;
		memcpy(dst[b] + s * W, z->tail + k, nt * sizeof(float));
		k += nt;
	}
	return LVD_OK;
}

int lvd_zero_update(struct lvd_zero *z, struct lvd_ctx *ctx, struct lvd_comm *comm, double lr,
		    struct lvd_error *err)
{
	lvd_optim_step(ctx, z->opt, lr);
	float **p = lvd_alloc_array(2 * (size_t)z->n_blocks, sizeof *p);
	if (!p)
		return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
	for (int b = 0; b < z->n_blocks; b++) {
		p[b] = z->full[b].param;
		p[z->n_blocks + b] = z->opt->blocks[b].param; /* = p[b] + lo: in place */
	}
	int rc = gather(z, comm, p + z->n_blocks, p, err);
	free(p);
	return rc;
}

/* m (or v) of every block into dst[b], or into a temporary buffer where dst is NULL. */
static int gather_moments(struct lvd_zero *z, struct lvd_comm *comm, float **mom, float **dst,
			  struct lvd_error *err)
{
	float **d = calloc((size_t)z->n_blocks, sizeof *d);
	int rc = d ? LVD_OK : lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory");
	for (int b = 0; !rc && b < z->n_blocks; b++) {
		d[b] = dst ? dst[b] : lvd_alloc_array(z->full[b].n ? z->full[b].n : 1, sizeof(float));
		if (!d[b])
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory (block '%s')", z->full[b].name);
	}
	if (!rc)
		rc = gather(z, comm, mom, d, err);
	for (int b = 0; d && !dst && b < z->n_blocks; b++)
		free(d[b]);
	free(d);
	return rc;
}

int lvd_zero_gather_state(struct lvd_zero *z, struct lvd_comm *comm, float **m, float **v, struct lvd_error *err)
{
	int rc = gather_moments(z, comm, z->opt->m, m, err);
	return rc ? rc : gather_moments(z, comm, z->opt->v, v, err);
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

int lvd_zero_share_state(struct lvd_zero *z, struct lvd_comm *comm, int root, float *const *m, float *const *v,
			 int64_t step, struct lvd_error *err)
{
	const int me = z->rank == root;
	int rc = lvd_comm_broadcast(comm, &step, sizeof step, root, err);
	for (int b = 0; !rc && b < z->n_blocks; b++) {
		size_t n = z->full[b].n;
		for (int k = 0; !rc && k < 2; k++) {
			float *full = me ? (k ? v[b] : m[b]) : lvd_alloc_array(n ? n : 1, sizeof(float));
			if (!full)
				return lvd_error_set(err, LVD_ERR_NOMEM, "optimiser: out of memory (block '%s')",
						     z->full[b].name);
			rc = lvd_comm_broadcast(comm, full, n * sizeof(float), root, err);
			if (!rc)
				memcpy((k ? z->opt->v : z->opt->m)[b], full + z->lo[b], (z->hi[b] - z->lo[b]) * sizeof(float));
			if (!me)
				free(full);
		}
	}
	if (!rc)
		z->opt->step = step;
	return rc;
}
