/* lib/train/optim.h — the optimiser of lvd-sft: AdamW equal to torch.optim.AdamW over
 * flat parameter blocks, and global-norm gradient clipping equal to
 * torch.nn.utils.clip_grad_norm_. Learning-rate schedules are lib/train/sched.h; the
 * per-element update is the op lvd_adamw_step (lib/nn/ops/adamw.h).
 *
 * Parameter blocks and groups. A block is one flat fp32 buffer of trainable values
 * (e.g. every LoRA A/B matrix laid end to end, or the whole Aligner) with its gradient
 * buffer beside it; it plays the part of a torch param_group: it carries its own weight
 * decay (torch's per-group "weight_decay"), so "LoRA with wd 0.01, Aligner without" is
 * two blocks. The learning rate is shared by all blocks (one schedule, as lvd-sft has).
 * A block may list the tensors laid out inside it (tensor_off): the clipping norm is
 * then computed per tensor first, as torch does, instead of over the flat block.
 *
 * State. lvd_optim_create allocates the moments of every block in ONE buffer on the
 * context's device (lvd_buf_alloc), zeroed, and carves m[b], v[b] (each [blocks[b].n])
 * out of it; step counts the updates done (torch's state["step"], the same for every
 * parameter). These fields are public so checkpoints can save and restore them
 * (write m/v of each block and step; on resume upload them and set step). beta1, beta2,
 * eps are fixed for the optimiser's life.
 *
 * One training step, as torch's loop (backward → clip_grad_norm_ → optimizer.step() →
 * scheduler.step()):
 *     float norm = lvd_optim_clip(ctx, opt, max_norm);     // max_norm 0: norm only
 *     lvd_optim_step(ctx, opt, lvd_sched_lr(&sched, opt->step, epoch));
 *
 * Determinism: every result is bit-identical for any thread count of ctx.
 * Ownership: blocks are copied at create; the param/grad buffers and tensor_off arrays
 * they point to are borrowed and must outlive the optimiser. */
#ifndef LVD_TRAIN_OPTIM_H
#define LVD_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_param_block {
	const char *name;          /* "lora", "aligner", ... (messages, checkpoint keys); borrowed */
	float *param;              /* [n] ctx buffer, updated in place; borrowed */
	float *grad;               /* [n] ctx buffer, scaled in place by clipping; borrowed */
	size_t n;
	double wd;                 /* decoupled weight decay of this group (torch: weight_decay) */
	const size_t *tensor_off;  /* NULL (the block is one tensor) or [n_tensors + 1]
				    * non-decreasing offsets, tensor_off[0] = 0,
				    * tensor_off[n_tensors] = n; borrowed */
	int n_tensors;             /* used when tensor_off != NULL */
};

struct lvd_optim_cfg {
	double beta1, beta2;       /* torch betas, default (0.9, 0.999) */
	double eps;                /* default 1e-8 */
};

struct lvd_optim {
	int n_blocks;
	struct lvd_param_block *blocks;   /* [n_blocks], a copy owned by the optimiser */
	float **m, **v;                   /* [n_blocks] first / second moments, each [blocks[b].n] */
	float *state;                     /* the one allocation m and v are carved from */
	size_t state_floats;              /* 2·Σ n */
	double beta1, beta2, eps;
	int64_t step;                     /* updates done so far (0 before the first) */
};

/* Creates the optimiser over n_blocks blocks (at least one; empty blocks are allowed)
 * with zeroed moments and step 0. Errors: LVD_ERR_INVALID (no blocks, a NULL buffer
 * with n > 0, bad tensor_off, betas outside [0, 1), eps < 0, wd < 0 or not finite —
 * naming the block), LVD_ERR_NOMEM (allocation or size overflow). */
int lvd_optim_create(struct lvd_optim **out, struct lvd_ctx *ctx, const struct lvd_param_block *blocks,
		     int n_blocks, const struct lvd_optim_cfg *cfg, struct lvd_error *err);
/* Frees the state and the optimiser (NULL is a no-op). */
void lvd_optim_destroy(struct lvd_ctx *ctx, struct lvd_optim *opt);

/* Total gradient norm over all blocks as torch.nn.utils.get_total_norm computes it for
 * fp32 CPU tensors (per-tensor 2-norms rounded to fp32, then the 2-norm of those).
 * Sums of squares run in double (torch: fp32 lanes), so the value may differ from
 * torch's by a few fp32 ulps. Reads the gradients only. */
float lvd_optim_grad_norm(struct lvd_ctx *ctx, const struct lvd_optim *opt);

/* clip_grad_norm_(params, max_norm): computes the total norm, and when max_norm > 0
 * multiplies every gradient by min(max_norm / (norm + 1e-6), 1) evaluated in fp32 as
 * torch does (reciprocal of norm + 1e-6, times max_norm, clamped to 1; a NaN norm gives
 * NaN gradients, an infinite one zeros, as in torch). max_norm <= 0 (--clip 0) leaves
 * the gradients alone. Returns the total norm before clipping (check it for NaN/Inf). */
float lvd_optim_clip(struct lvd_ctx *ctx, struct lvd_optim *opt, double max_norm);

/* The factor clip_grad_norm_ multiplies the gradients by for a total norm and max_norm
 * (1 when max_norm <= 0 or the norm is small enough; NaN for a NaN norm). */
float lvd_optim_clip_coef(float norm, double max_norm);

/* One AdamW update of every block with learning rate lr (the schedule's value for this
 * step): step += 1, then lvd_adamw_step on each block with its wd. */
void lvd_optim_step(struct lvd_ctx *ctx, struct lvd_optim *opt, double lr);

#ifdef __cplusplus
}
#endif
#endif
