/* lib/train/zero.h — ZeRO-1: AdamW with its state sharded over the ranks of a
 * communicator (llm.c's zero_stage 1, ../shared/reference/sft-eval-anchors.md).
 *
 * Each block of n values is split into world shards of s = floor(n / world) values; rank
 * r owns [lo, hi) = [r·s, (r+1)·s), and the last rank also the tail [world·s, n) (fewer
 * than world values). A rank keeps AdamW moments for its range only (an lvd_optim over
 * the shard views, so 2·Σ(hi − lo) floats instead of 2·Σ n), plus its reduced shard
 * gradient (Σ(hi − lo) floats); no full-size staging. A step:
 *   lvd_zero_reduce   the aligned part [0, world·s) of each gradient block is
 *                     reduce-scattered (sum over ranks) straight from the gradient buffer
 *                     into the shard gradient; the tails of all blocks go in one
 *                     all-reduce; the global norm (lvd_optim_grad_norm's rule: per tensor,
 *                     then over tensors) from per-tensor partial sums of squares
 *                     all-reduced in fp64; clipping scales the shard gradients;
 *   lvd_zero_update   AdamW on the shard (lvd_adamw_step on [lo, hi): element for element
 *                     the unsharded update of that range, so bit-identical to lvd_optim on
 *                     the summed gradient), then the parameters are all-gathered in place
 *                     (the tails: one broadcast from the last rank).
 * The full gradient buffers are read, never written. Checkpoints hold the full state
 * (lvd_zero_gather_state, then rank 0 writes it), so a run can resume with another rank
 * count (lvd_zero_share_state from rank 0's full moments, or lvd_zero_set_state where
 * every rank has them).
 *
 * Host buffers only (a CPU lvd_ctx) for now. Errors: those of lib/dist's collectives
 * (the communicator is then unusable: lvd_comm_abort), LVD_ERR_NOMEM, and
 * lvd_optim_create's. */
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
	float **gshard;                /* [n_blocks] the reduced gradient of the range [hi - lo] */
	float *tail;                   /* [n_tail] the blocks' tails, packed */
	size_t n_tail;
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
/* Collective. The full moments into m[b], v[b] (caller's [blocks[b].n] buffers); a rank
 * that does not need them passes m = v = NULL (a temporary buffer per block is then used
 * and freed). */
int lvd_zero_gather_state(struct lvd_zero *z, struct lvd_comm *comm, float **m, float **v, struct lvd_error *err);
/* Sets this rank's moments from the full m[b], v[b] and the step count. */
void lvd_zero_set_state(struct lvd_zero *z, float *const *m, float *const *v, int64_t step);
/* Collective (resume with several ranks): rank root's full m[b], v[b] and step (the other
 * ranks pass m = v = NULL) set every rank's moments of its range and the step. Each block
 * is broadcast in full through a temporary buffer on the other ranks. */
int lvd_zero_share_state(struct lvd_zero *z, struct lvd_comm *comm, int root, float *const *m, float *const *v,
			 int64_t step, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
