/* lib/train/zero.h — ZeRO-1: AdamW with its state sharded over the ranks of a
 * communicator (llm.c's zero_stage 1, ../shared/reference/sft-eval-anchors.md).
 *
 * Each block of n values is split into world shards of s = ceil(n / world) values; rank
 * r owns [lo, hi) = [r·s, min((r+1)·s, n)) and keeps AdamW moments for that range only
 * (an lvd_optim over the shard views, so 2·Σ(hi − lo) floats instead of 2·Σ n). A step:
 *   lvd_zero_reduce   the gradient blocks are reduce-scattered (sum over ranks) into the
 *                     shard gradients; the global norm (lvd_optim_grad_norm's rule: per
 *                     tensor, then over tensors) from per-tensor partial sums of squares
 *                     all-reduced in fp64; clipping scales the shard gradients;
 *   lvd_zero_update   AdamW on the shard (lvd_adamw_step on [lo, hi): element for element
 *                     the unsharded update of that range, so bit-identical to lvd_optim on
 *                     the summed gradient), then the parameters are all-gathered.
 * The full gradient buffers are read, never written. Checkpoints hold the full state
 * (lvd_zero_gather_state on every rank, then rank 0 writes it), so a run can resume
 * with another rank count (lvd_zero_set_state takes this rank's ranges of the full
 * moments).
 *
 * Host buffers only (a CPU lvd_ctx) for now. Staging: one host buffer of world·s floats per block (padded gradients and gathered
 * parameters). Errors: those of lib/dist's collectives (the communicator is then
 * unusable: lvd_comm_abort), LVD_ERR_NOMEM, and lvd_optim_create's. */
#ifndef LVD_TRAIN_ZERO_H
#define LVD_TRAIN_ZERO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "dist/dist.h"
#include "nn/ctx.h"
#include "train/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_zero {
	int n_blocks, rank, world;
	struct lvd_param_block *full;  /* [n_blocks] the caller's blocks (copied; buffers borrowed) */
	size_t *shard, *lo, *hi;       /* [n_blocks] s, and this rank's range */
	float **stage;                 /* [n_blocks] world·s staging floats each */
	float **gshard;                /* [n_blocks] the reduced gradient of the range [s] */
	double *part;                  /* [n_norms] per-tensor sums of squares */
	int n_norms;
	struct lvd_optim *opt;         /* AdamW over the shard views; opt->step is the step */
};

int lvd_zero_create(struct lvd_zero **out, struct lvd_ctx *ctx, const struct lvd_comm *comm,
		    const struct lvd_param_block *blocks, int n_blocks, const struct lvd_optim_cfg *cfg,
		    struct lvd_error *err);
void lvd_zero_destroy(struct lvd_ctx *ctx, struct lvd_zero *z);

/* Reduce-scatter the gradients, the global norm into *norm (before clipping), clip the
 * shard gradients when max_norm > 0 (lvd_optim_clip's rule). */
int lvd_zero_reduce(struct lvd_zero *z, struct lvd_ctx *ctx, struct lvd_comm *comm, double max_norm, float *norm,
		    struct lvd_error *err);
/* AdamW on this rank's ranges with lr, then all-gather every block's parameters. */
int lvd_zero_update(struct lvd_zero *z, struct lvd_ctx *ctx, struct lvd_comm *comm, double lr,
		    struct lvd_error *err);
/* The full moments into m[b], v[b] (caller's [blocks[b].n] buffers) on every rank. */
int lvd_zero_gather_state(struct lvd_zero *z, struct lvd_comm *comm, float **m, float **v, struct lvd_error *err);
/* Sets this rank's moments from the full m[b], v[b] and the step count. */
void lvd_zero_set_state(struct lvd_zero *z, float *const *m, float *const *v, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
